"""hasync installed in the VM lab's nodes the way the README tells an admin (issue 13's
field run): from the Debian package `make deb` builds.

The host builds dist/hasync_VERSION_all.deb once per lab with the very code `make deb` runs
(packaging/deb/build.py), the lab's seed disk carries it to each node
(/opt/hasync/seed/pkg/), and the field run installs it there with apt, offline: the guests
have no network and no package lists, so apt takes every dependency from what the image
already has (image_build.PACKAGES holds the package's Depends; tests/vm/test_pure.py
checks it). What the busybox-init lab runs instead is the checkout's source tree from the
seed in the image's venv (/usr/local/bin/hasync); the install takes that wrapper away,
so every `hasync` on the node, the units' included, is the package's /usr/bin/hasync.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from hasync.effects.run import Result

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "deb" / "build.py"
SEED_PKG = "pkg"  # the seed disk's folder for it (seed.make_seed)
GUEST_SEED_PKG = f"/opt/hasync/seed/{SEED_PKG}"  # where a node sees it (read-only)
GUEST_DEB_DIR = "/tmp"  # copied here first: apt's _apt user can read it (/root it cannot)
VENV_WRAPPER = "/usr/local/bin/hasync"  # the image's hasync (seed source + venv): first on PATH
PACKAGED_BIN = "/usr/bin/hasync"
# the README's `apt install ./hasync_V_all.deb drbd-utils lvm2 nfs-kernel-server
# resource-agents fence-agents`, but fence-agents: the image has none (the lab fences
# through its own BMC wire, /usr/local/sbin/hasync-vm-fence)
CLUSTER_TOOLS = ("drbd-utils", "lvm2", "nfs-kernel-server", "resource-agents")
MAN_PAGE = "/usr/share/man/man8/hasync.8.gz"
COMPLETION = "/usr/share/bash-completion/completions/hasync"
UNITS = ("hasync-failover.service", "hasync-watch.service")
PACKAGED_UNIT_DIR = "/lib/systemd/system"  # Debian 12's, where build.py puts them


def build_deb(out: Path) -> Path:
    """`make deb`'s build into *out* (packaging/deb/build.py, run by this Python: the
    harness's venv, which has what the man page and completion are generated with)."""
    p = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(out)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"building the .deb failed (exit {p.returncode}): {(p.stderr or p.stdout)[-2000:]}")
    deb = Path(p.stdout.strip().splitlines()[-1])
    if not deb.is_file():
        raise RuntimeError(f"packaging/deb/build.py printed {deb}, which is no file")
    return deb


def deb_field(deb: Path, name: str) -> str:
    """A field of the package's control file (dpkg-deb -f)."""
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def depends_names(depends: str) -> list[tuple[str, ...]]:
    """The package names of a Depends: field, each entry its alternatives:
    "python3 (>= 3.11), a | b" -> [("python3",), ("a", "b")]."""
    out = []
    for entry in depends.split(","):
        alts = tuple(re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in entry.split("|"))
        if any(alts):
            out.append(alts)
    return out


def guest_deb(deb_name: str) -> str:
    return f"{GUEST_DEB_DIR}/{deb_name}"


def apt_install_argv(deb_name: str) -> tuple[str, ...]:
    """The README's `apt install ./hasync_V_all.deb` with the cluster tools, for a node
    without network and without package lists: apt can fetch nothing, so it installs from
    what the image has or fails. Not `--no-download`: apt 2.6 then refuses any local .deb
    ("Internal Error, Pathname to install is not absolute", relative or absolute path;
    the field run's first install on the VMs, reproduced on the host's apt 2.6.1)."""
    if "/" in deb_name or not deb_name.endswith(".deb"):
        raise ValueError(f"a .deb file name, not {deb_name!r}")
    return ("apt-get", "install", "-y", f"./{deb_name}", *CLUSTER_TOOLS)


def install_script(deb_name: str) -> str:
    """The shell script that installs the package on a node, offline: the seed's copy
    to /tmp, the venv wrapper away, `apt-get install ./hasync_V_all.deb`
    with the cluster tools (all in the image: apt only marks them installed by hand)."""
    apt = apt_install_argv(deb_name)
    q = shlex.quote
    return "\n".join((
        f"cp {q(f'{GUEST_SEED_PKG}/{deb_name}')} {q(guest_deb(deb_name))}",
        f"rm -f {VENV_WRAPPER}",
        "mkdir -p /var/cache/apt/archives/partial /var/lib/apt/lists/partial",  # the image emptied them
        f"cd {GUEST_DEB_DIR}",
        "DEBIAN_FRONTEND=noninteractive " + shlex.join(apt),
    )) + "\n"


def install(lab, node: str, deb_name: str) -> Result:
    """Install the package on *node* (install_script); the caller checks the result."""
    return lab.exec(node, ("/bin/sh", "-ec", install_script(deb_name)), timeout=600)


def installed_view(lab, node: str) -> dict[str, str]:
    """What the install left on *node*: the `hasync` on PATH and its version, the
    package's version as dpkg has it, where man finds the page, each unit's file and
    Documentation=, the completion file."""
    script = (
        "echo which=$(command -v hasync)\n"
        "echo version=$(hasync --version 2>&1)\n"
        "echo dpkg=$(dpkg-query -W -f='${Version}' hasync)\n"
        "echo man=$(man -w hasync 2>&1)\n"
        f"echo completion=$(test -f {COMPLETION} && echo yes)\n"
    )
    for u in UNITS:
        script += (f"echo {u}.fragment=$(systemctl show -p FragmentPath --value {u})\n"
                   f"echo {u}.doc=$(systemctl show -p Documentation --value {u})\n")
    out = lab.sh(node, script, errexit=False, timeout=120)
    return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)
