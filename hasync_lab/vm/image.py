"""Build (once) and cache the Debian 12 guest image the VM lab boots.

The image is a directory in the cache, named by a hash of everything that goes into it
(suite, package list, guest kernel package and version, Python wheels, the stage-1 boot
files): ``$HASYNC_VM_CACHE/<hash>/`` (default ``/var/cache/hasync/vm``) holding

    rootfs.img   ext4 root (debootstrap minbase + tools + a venv with hasync's deps),
                 made with ``mkfs.ext4 -d`` -- no loop mount
    vmlinuz      Debian's linux-image-6.1.0-*-amd64 kernel (DRBD 8.4, dm, nfsd)
    initrd.img   busybox + the virtio/ext4 modules + switch_root
    meta.json    what was built, from what, and how long each step took

The hasync source tree is *not* in the base image: each VM gets a small seed disk (see
``seed.py``) so code edits never rebuild this. Building needs root (debootstrap, chroot)
and the packages named in apt-packages.txt; downloads come from the Debian archive and
PyPI through apt/debootstrap/pip.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hasync_lab.ns.spec import lab_root

BUILDER_VERSION = "3"  # bump when the build steps change in a way the inputs don't show
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_DIR = Path(__file__).resolve().parent / "guest"

# What the guest needs for the storage half of the field notes, plus the tools the lab
# itself uses. busybox-static: the initramfs and the fast init come from the guest's own
# busybox, so the image depends on nothing from the host but debootstrap and mkfs.
PACKAGES = (
    "drbd-utils",
    "lvm2",
    "nfs-kernel-server",
    "nfs-common",
    "rpcbind",
    "openssh-server",
    "openssh-client",
    "unison",
    "iproute2",
    "iputils-ping",
    "iptables",  # the portblock agent (NFS port blocked during a takeover, tickle ACKs)
    "kmod",
    "python3",
    "python3-venv",
    "e2fsprogs",
    "udev",
    "procps",
    "psmisc",
    "busybox-static",
    "resource-agents",
    "systemd",  # present so the debian12 profile's systemctl path can be tried (hasync.init=systemd)
    "sysvinit-utils",
    "util-linux",
)

# Module trees nobody in the lab needs: they make up most of the kernel's size.
TRIM_MODULES = (
    "kernel/drivers/gpu",
    "kernel/sound",
    "kernel/drivers/media",
    "kernel/drivers/net/wireless",
    "kernel/drivers/net/ethernet",
    "kernel/drivers/infiniband",
    "kernel/drivers/staging",
    "kernel/drivers/bluetooth",
    "kernel/net/bluetooth",
    "kernel/net/mac80211",
    "kernel/net/wireless",
    "kernel/drivers/isdn",
    "kernel/drivers/iio",
    "kernel/drivers/input/touchscreen",
    "kernel/drivers/usb/gadget",
    "kernel/drivers/net/usb",
    "kernel/drivers/hwmon",
    "kernel/drivers/platform",
    "kernel/fs/ocfs2",
    "kernel/fs/gfs2",
    "kernel/fs/btrfs",
    "kernel/fs/xfs",
    "kernel/fs/f2fs",
)

# The root disk needs these before switch_root (dependencies are added from modules.dep).
INITRD_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")

# Python packages hasync needs in the guest (pyproject's dependencies): fetched as wheels
# on the host with pip and installed offline into /opt/hasync/venv inside the image.
PY_DEPS = ("rich>=13", "sh>=2", "watchdog>=4", "fabric>=3")

BASE_FILES = {  # guest/<name> -> path in the image, mode
    "inittab": ("/etc/inittab", 0o644),
    "boot": ("/etc/hasync-vm/boot", 0o755),
    "agent-stub": ("/etc/hasync-vm/agent", 0o755),
    "hasync-vm-boot.service": ("/etc/systemd/system/hasync-vm-boot.service", 0o644),
    "hasync-vm-agent.service": ("/etc/systemd/system/hasync-vm-agent.service", 0o644),
}

Report = Callable[[str], None]


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    dir: Path
    key: str
    kernel_version: str

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs.img"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"


def cache_root() -> Path:
    return Path(os.environ.get("HASYNC_VM_CACHE") or "/var/cache/hasync/vm")


def _run(argv, *, cwd=None, env=None, what="", timeout=1800) -> str:
    full_env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    if env:
        full_env.update(env)
    p = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if p.returncode != 0:
        out = (p.stderr.strip() or p.stdout.strip())[-3000:]
        raise ImageError(f"{what or argv[0]}: `{' '.join(map(str, argv))}` exited {p.returncode}: {out}")
    return p.stdout


def resolve_kernel() -> tuple[str, str]:
    """(package, version) of the kernel linux-image-amd64 points at, from the host's apt lists."""
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", "linux-image-amd64"], what="kernel lookup")
    except (ImageError, FileNotFoundError) as e:
        raise ImageError(f"cannot find Debian's kernel package (run `apt-get update` first?): {e}") from e
    for line in out.splitlines():
        if line.startswith("Depends:"):
            for dep in line.split(":", 1)[1].split(","):
                name = dep.strip().split()[0]
                if name.startswith("linux-image-") and name.endswith("-amd64"):
                    version = dep.split("=", 1)[1].strip(" )") if "=" in dep else ""
                    return name, version
    raise ImageError(f"linux-image-amd64 has no linux-image-*-amd64 dependency:\n{out}")


def inputs(kernel_pkg: str, kernel_ver: str) -> dict:
    files = {}
    for name in sorted(BASE_FILES) + ["initramfs-init"]:
        files[name] = hashlib.sha256((GUEST_DIR / name).read_bytes()).hexdigest()
    return {
        "builder": BUILDER_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": sorted(PACKAGES),
        "kernel": [kernel_pkg, kernel_ver],
        "trim": list(TRIM_MODULES),
        "initrd_modules": list(INITRD_MODULES),
        "py_deps": list(PY_DEPS),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "files": files,
    }


def image_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def find_cached() -> Image | None:
    """The newest complete image in the cache, without touching apt (for `status`/tests)."""
    root = cache_root()
    best = None
    for meta in root.glob("*/meta.json"):
        if best is None or meta.stat().st_mtime > best.stat().st_mtime:
            best = meta
    if best is None:
        return None
    m = json.loads(best.read_text())
    return Image(best.parent, m["key"], m["kernel_version"])


def ensure_image(report: Report = lambda s: None, *, force: bool = False) -> Image:
    """Return the cached image for the current inputs, building it first if needed."""
    kernel_pkg, kernel_ver = resolve_kernel()
    spec = inputs(kernel_pkg, kernel_ver)
    key = image_key(spec)
    root = cache_root()
    final = root / key
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits for the first, then reuses it
        meta_path = final / "meta.json"
        if meta_path.exists() and not force:
            kver = json.loads(meta_path.read_text())["kernel_version"]
        else:
            report(f"building guest image {key} in {final} (Debian {SUITE}, {kernel_pkg})")
            t0 = time.monotonic()
            kver = _build(spec, key, root, final, report)
            report(f"guest image {key} ready in {time.monotonic() - t0:.1f}s")
    # superseded images (other inputs: an older kernel, package list or guest files) are
    # ~600 MB each; none is booted again unless a lab still runs on it
    for old in prune(root, keep=key, in_use=images_in_use()):
        report(f"removed the superseded guest image {old.name}")
    return Image(final, key, kver)


def images_in_use(lab_dirs_root: Path | None = None) -> set[str]:
    """Image directories a VM lab on this host still boots from (its lab.json names it):
    its qcow2 overlays are backed by that image's rootfs."""
    root = Path(lab_dirs_root or lab_root())
    used = set()
    for lj in root.glob("*/lab.json"):
        try:
            img = json.loads(lj.read_text()).get("image")
        except (OSError, ValueError):
            continue
        if img:
            used.add(str(Path(img)))
    return used


def prune(root: Path, *, keep: str, in_use: set[str]) -> list[Path]:
    """Remove the cached images other than *keep* that no lab uses (each under its own
    lock, skipped when someone holds it: a build or a check in progress). The shared
    downloads (debs, kernel, wheels) stay: the next build reuses them."""
    removed = []
    for meta in sorted(root.glob("*/meta.json")):
        d = meta.parent
        if d.name == keep or str(d) in in_use:
            continue
        with open(root / f"{d.name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(d, ignore_errors=True)
        if d.exists():  # something in it would not go: say nothing was freed
            continue
        (root / f"{d.name}.lock").unlink(missing_ok=True)
        removed.append(d)
    return removed


class _Steps:
    def __init__(self, report: Report):
        self.report = report
        self.timings: dict[str, float] = {}

    def __call__(self, name: str):
        steps = self

        class _Step:
            def __enter__(self):
                self.t0 = time.monotonic()
                steps.report(f"  {name} ...")

            def __exit__(self, et, ev, tb):
                dt = time.monotonic() - self.t0
                steps.timings[name] = round(dt, 2)
                if et is None:
                    steps.report(f"  {name}: done in {dt:.1f}s")

        return _Step()


def _build(spec: dict, key: str, root: Path, final: Path, report: Report) -> str:
    for tool in ("debootstrap", "mkfs.ext4", "cpio", "gzip", "chroot", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} not found: install the packages in apt-packages.txt (qemu-system-x86, debootstrap, cpio, ...)")
    if os.geteuid() != 0:
        raise ImageError("building the guest image needs root (debootstrap and chroot)")
    work = root / f"{key}.tmp"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    rootdir = work / "root"
    steps = _Steps(report)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    kernel_pkg, kernel_ver = spec["kernel"]

    with steps("debootstrap"):
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}",
                SUITE,
                rootdir,
                MIRROR,
            ],
            what="debootstrap",
        )

    with steps("guest kernel"):
        kdir = root / "kernel"
        kdir.mkdir(exist_ok=True)
        debname = f"{kernel_pkg}_{kernel_ver.replace(':', '%3a')}_amd64.deb"
        if not (kdir / debname).exists():
            _run(["apt-get", "download", f"{kernel_pkg}={kernel_ver}"], cwd=kdir, what="apt-get download")
        debs_found = sorted(kdir.glob(f"{kernel_pkg}_*.deb"))
        deb = kdir / debname if (kdir / debname).exists() else (debs_found[-1] if debs_found else None)
        if deb is None:
            raise ImageError(f"apt-get download {kernel_pkg} left no .deb in {kdir}")
        kx = work / "kernel"
        _run(["dpkg-deb", "-x", deb, kx], what="unpack kernel")
        versions = [p.name for p in (kx / "lib/modules").iterdir()]
        if len(versions) != 1:
            raise ImageError(f"expected one module tree in {deb}, found {versions}")
        kver = versions[0]
        shutil.copy2(kx / "boot" / f"vmlinuz-{kver}", work / "vmlinuz")
        dest = rootdir / "lib/modules" / kver
        shutil.copytree(kx / "lib/modules" / kver, dest, symlinks=True)
        for sub in TRIM_MODULES:
            shutil.rmtree(dest / sub, ignore_errors=True)
        _run(["chroot", rootdir, "depmod", "-a", kver], what="depmod")
        shutil.rmtree(kx)

    with steps("python deps (pip download on the host, offline install in the guest)"):
        wheels = root / "wheels" / hashlib.sha256(" ".join(PY_DEPS).encode()).hexdigest()[:12]
        if not wheels.is_dir() or not any(wheels.glob("*.whl")):
            wheels.mkdir(parents=True, exist_ok=True)
            _run(
                [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", wheels, *PY_DEPS],
                what="pip download",
            )
        shutil.copytree(wheels, rootdir / "tmp/wheels")
        _run(["chroot", rootdir, "python3", "-m", "venv", "/opt/hasync/venv"], what="venv")
        _run(
            ["chroot", rootdir, "/opt/hasync/venv/bin/pip", "install", "-q", "--no-index",
             "--find-links", "/tmp/wheels", *PY_DEPS],
            what="pip install (guest)",
        )
        shutil.rmtree(rootdir / "tmp/wheels")
        site = next((rootdir / "opt/hasync/venv/lib").glob("python3*/site-packages"))
        # The source tree arrives at boot on the seed disk (read-only): a .pth finds it.
        (site / "hasync-seed.pth").write_text("/opt/hasync/seed/src\n")
        hs = rootdir / "usr/local/bin/hasync"
        hs.write_text('#!/bin/sh\nexec /opt/hasync/venv/bin/python -m hasync "$@"\n')
        hs.chmod(0o755)

    with steps("configure guest"):
        for name, (path, mode) in BASE_FILES.items():
            target = rootdir / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(GUEST_DIR / name, target)
            target.chmod(mode)
        wants = rootdir / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        for unit in ("hasync-vm-boot.service", "hasync-vm-agent.service"):
            link = wants / unit
            if not link.exists():
                link.symlink_to(f"/etc/systemd/system/{unit}")
        getty = rootdir / "etc/systemd/system/serial-getty@ttyS0.service"
        if not getty.is_symlink():
            getty.symlink_to("/dev/null")  # ttyS0 belongs to the agent
        (rootdir / "etc/fstab").write_text("# the VM lab mounts what it needs itself\n")
        (rootdir / "etc/hostname").write_text("hasync-vm\n")
        _run(["chroot", rootdir, "ssh-keygen", "-A"], what="ssh host keys")
        _run(["chroot", rootdir, "passwd", "-d", "root"], what="root password")
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
            d = rootdir / sub
            if d.is_dir():
                for child in d.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    elif child.name != "lock":
                        child.unlink(missing_ok=True)

    with steps("initramfs"):
        _make_initrd(rootdir, kver, work / "initrd.img")

    with steps("root filesystem (mkfs.ext4 -d)"):
        img = work / "rootfs.img"
        with open(img, "wb") as f:
            f.truncate(1536 * 1024 * 1024)
        _run(["mkfs.ext4", "-q", "-F", "-L", "hasync-root", "-d", rootdir, img], what="mkfs.ext4")
        shutil.rmtree(rootdir)

    meta = {"key": key, "kernel_version": kver, "inputs": spec, "timings_s": steps.timings,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (work / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    return kver


def _module_closure(moddir: Path, names: tuple[str, ...]) -> list[str]:
    """Module paths (relative to moddir) for *names* and their dependencies, deps first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        base = Path(path).name.split(".ko")[0]
        by_name[base] = path
        by_name[base.replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in reversed(deps.get(path, [])):  # modules.dep lists the deepest last
            visit(d)
        order.append(path)

    for name in names:
        found = by_name.get(name)
        if found is not None:  # built in: nothing to load
            visit(found)
    return order


def _make_initrd(rootdir: Path, kver: str, out: Path) -> None:
    moddir = rootdir / "lib/modules" / kver
    stage = out.parent / "initrd"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "bin").mkdir(parents=True)
    (stage / "lib/modules").mkdir(parents=True)
    busybox = rootdir / "bin/busybox"
    if not busybox.exists():
        raise ImageError(f"{busybox} missing: busybox-static should be in the image")
    shutil.copy2(busybox, stage / "bin/busybox")
    order = _module_closure(moddir, INITRD_MODULES)
    for rel in order:
        target = stage / "lib/modules" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, target)
    (stage / "modules.list").write_text("\n".join(order) + "\n")
    init = stage / "init"
    shutil.copy2(GUEST_DIR / "initramfs-init", init)
    init.chmod(0o755)
    files = subprocess.run(["find", "."], cwd=stage, capture_output=True, text=True, check=True).stdout
    with open(out, "wb") as f:
        cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=f)
        assert cpio.stdout is not None and cpio.stdin is not None
        cpio.stdout.close()  # gzip owns it now
        cpio.stdin.write(files.encode())
        cpio.stdin.close()
        cpio.wait()
        gz.wait()
        if cpio.returncode or gz.returncode:
            raise ImageError("making the initramfs failed (cpio/gzip)")
    shutil.rmtree(stage)
