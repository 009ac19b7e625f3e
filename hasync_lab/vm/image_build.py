"""What goes into the VM lab's guest image, and building it (once: image.py names it by a
hash of these inputs, caches it and reuses it).

Debian 12 minbase by debootstrap, the tools below (Debian's python3-rich and
python3-watchdog among them: what `make deb`'s package depends on), a venv with the
product's Python dependencies installed offline from wheels (what the busybox-init lab's
hasync runs in), Debian's kernel (DRBD 8.4, dm, nfsd) with
unneeded modules trimmed, and a busybox initramfs. Needs root and the packages named in
apt-packages.txt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    # the Pacemaker trial (issue 16): the chain handed to Pacemaker from `hasync export
    # pacemaker`; cibadmin/crm_mon from the cli utils (no crmsh or pcs: the CIB is XML)
    "corosync",
    "pacemaker",
    "pacemaker-cli-utils",
    # the systemd field run installs `make deb`'s package with apt, offline (no network, no
    # package lists in the guests: hasync_lab/vm/package.py): every package it Depends on
    # must be here (python3, unison, openssh-client and iproute2 are above; no python3-tomli,
    # Python 3.11 has tomllib; no python3-sh, the harness's only; fabric it only suggests)
    # -- tests/vm/test_pure.py checks the list against packaging/deb/build.py's
    "python3-rich",
    "python3-watchdog",
    "man-db",  # `man -w hasync` finds the page the package installs, as on an admin's node
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


def build_image(spec: dict, key: str, root: Path, final: Path, report: Report) -> str:
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
