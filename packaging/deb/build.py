"""`make deb`: the Debian package of hasync (the product; not the lab harness), built with
dpkg-deb from a tree laid out here -- no debhelper or pybuild needed, so it builds on any
Debian machine with the checkout's venv.

What goes where (Debian 12's layout):

    /usr/bin/hasync                                   the command (hasync.cli:main)
    /usr/lib/python3/dist-packages/hasync/            the package, its data in _data/ as
                                                      in the wheel (pyproject's force-include)
    /usr/lib/python3/dist-packages/hasync-V.dist-info the metadata (no `hasync.verbs`: the
                                                      lab is not in the package)
    /lib/systemd/system/hasync-{failover,watch}.service  the units (not enabled: `hasync
                                                      bootstrap` installs and enables them)
    /usr/share/man/man8/hasync.8.gz                   generated from the parsers
    /usr/share/bash-completion/completions/hasync     generated from the parsers
    /usr/share/doc/hasync/                            README, docs, examples/example.toml

Runtime dependencies are Debian's own packages (DEPENDS below); the maintainer scripts
byte-compile the package (py3compile, as dh_python3's do) and reload systemd.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "hasync"
PYDIR = Path("usr/lib/python3/dist-packages")

# What the product needs at run time on Debian 12 (python 3.11: tomllib is built in, so no
# python3-tomli; `sh` is the lab harness's only). The versions are Debian 12's, which the
# product works with (the unit tier passes on Debian 12's python3-rich 13.3 and
# python3-watchdog 2.2).
DEPENDS = ("python3 (>= 3.11)", "python3-rich (>= 13)", "python3-watchdog (>= 2.2)", "unison", "openssh-client",
           "iproute2")
# what a cluster node runs through hasync (the chain, bootstrap, fencing)
RECOMMENDS = ("drbd-utils", "lvm2", "nfs-kernel-server", "resource-agents", "fence-agents", "openssh-server")
# `fab -r /usr/lib/python3/dist-packages/hasync/_data/failover ...` from an admin box
SUGGESTS = ("fabric",)
UNITS = ("hasync-failover.service", "hasync-watch.service")

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && command -v py3compile >/dev/null 2>&1; then
    py3compile -p hasync
fi
# the units are enabled by `hasync bootstrap` once the node is configured, not here
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
"""
PRERM = """#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    # a clean stop: the failover daemon stops the chain in reverse and the peer takes over
    systemctl stop hasync-watch.service hasync-failover.service >/dev/null 2>&1 || true
fi
if command -v py3clean >/dev/null 2>&1; then
    py3clean -p hasync
fi
exit 0
"""
POSTRM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
"""
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hasync

Files: *
Copyright: the hasync authors
License: GPL-2+
 On Debian systems, the full text of the GNU General Public License version 2 can be
 found in /usr/share/common-licenses/GPL-2.
"""


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def version() -> str:
    v = project()["project"]["version"]
    sys.path.insert(0, str(REPO))
    from hasync import __version__

    if v != __version__:
        raise SystemExit(f"pyproject.toml says {v}, hasync/__init__.py {__version__}")
    return v


def copy_tree(src: Path, dst: Path) -> None:
    """Files of *src* into *dst*, keeping only the exec bit of each (no caches, no .pyc)."""
    for path in sorted(src.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def generated() -> tuple[str, str]:
    """The man page and the bash completion, from the parsers of this checkout."""
    from hasync.cli import completion, manpage, reference

    commands = reference.product_commands()
    return manpage.render(commands), completion.bash(commands)


def lay_out(root: Path, v: str) -> None:
    meta = project()
    pkg = root / PYDIR / PACKAGE
    copy_tree(REPO / PACKAGE, pkg)
    # the data the code lays down or runs, where the wheel puts it (hasync.resources)
    for src, dst in meta["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"].items():
        if dst.startswith(PACKAGE + "/"):
            copy_tree(REPO / src, root / PYDIR / dst)
    info = root / PYDIR / f"{PACKAGE}-{v}.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {v}\n"
                             f"Summary: {meta['project']['description']}\nRequires-Python: {meta['project']['requires-python']}\n")
    write(info / "entry_points.txt", "[console_scripts]\nhasync = hasync.cli:main\n")
    write(info / "top_level.txt", f"{PACKAGE}\n")
    write(info / "INSTALLER", "dpkg\n")
    write(root / "usr/bin/hasync", "#!/usr/bin/python3\nimport sys\n\nfrom hasync.cli import main\n\nsys.exit(main())\n", 0o755)
    for unit in UNITS:
        write(root / "lib/systemd/system" / unit, (REPO / "bootstrap/units/systemd" / unit).read_text())
    man, bash = generated()
    write(root / "usr/share/man/man8/hasync.8.gz", gz(man))
    write(root / "usr/share/bash-completion/completions/hasync", bash)
    doc = root / "usr/share/doc" / PACKAGE
    write(doc / "copyright", COPYRIGHT)
    write(doc / "changelog.gz", gz(f"{PACKAGE} ({v}) unstable; urgency=medium\n\n  * Built from the source "
                                   "checkout by `make deb`.\n\n -- hasync authors <hasync@localhost>  "
                                   "Thu, 01 Jan 1970 00:00:00 +0000\n"))
    write(doc / "README.md", (REPO / "README.md").read_text())
    for md in sorted((REPO / "docs").glob("*.md")):
        write(doc / "docs" / md.name, md.read_text())
    write(doc / "examples/example.toml", (REPO / "profiles/cluster/example.toml").read_text())


def control(root: Path, v: str) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and "DEBIAN" not in p.relative_to(root).parts)
    size_kib = sum((p.stat().st_size + 1023) // 1024 for p in files)
    fields = {
        "Package": PACKAGE,
        "Version": v,
        "Architecture": "all",
        "Maintainer": "hasync authors <hasync@localhost>",
        "Installed-Size": str(size_kib),
        "Depends": ", ".join(DEPENDS),
        "Recommends": ", ".join(RECOMMENDS),
        "Suggests": ", ".join(SUGGESTS),
        "Section": "admin",
        "Priority": "optional",
        "Description": "two-node active/passive HA storage cluster (DRBD, LVM, NFS)\n"
                       " hasync builds and runs a two-node active/passive HA storage cluster: DRBD,\n"
                       " LVM, a filesystem, a virtual IP and an NFS server, with one config file:\n"
                       " config sync between the nodes (unison), bootstrap of DRBD/LVM/NFS state,\n"
                       " and a failover daemon with heartbeat links, fencing and an ordered\n"
                       " resource chain. See hasync(8).",
    }
    deb = root / "DEBIAN"
    write(deb / "control", "".join(f"{k}: {val}\n" for k, val in fields.items()))
    write(deb / "postinst", POSTINST, 0o755)
    write(deb / "prerm", PRERM, 0o755)
    write(deb / "postrm", POSTRM, 0o755)
    sums = "".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n" for p in files)
    write(deb / "md5sums", sums)


def build(out: Path) -> Path:
    v = version()
    root = out / f"{PACKAGE}_{v}_all"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lay_out(root, v)
    control(root, v)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
    if epoch:  # reproducible: every file dated to the release
        for p in root.rglob("*"):
            os.utime(p, (epoch, epoch), follow_symlinks=False)
    deb = out / f"{PACKAGE}_{v}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(root)
    return deb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "dist"), help="where the .deb goes (default: dist/)")
    args = ap.parse_args(argv)
    print(build(Path(args.out).resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
