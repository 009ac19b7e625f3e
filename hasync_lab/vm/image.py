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
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hasync_lab.ns.spec import lab_root
from hasync_lab.vm.image_build import (
    BASE_FILES,
    BUILDER_VERSION,
    GUEST_DIR,
    INITRD_MODULES,
    MIRROR,
    PACKAGES,
    PY_DEPS,
    SUITE,
    TRIM_MODULES,
    Report,
    build_image,
    resolve_kernel,
)


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
            kver = build_image(spec, key, root, final, report)
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
