"""Lab fixtures: one namespace lab per pytest process, reset before each test that asks.

    def test_x(clean_lab):            # a healed lab, no leftover processes or addresses
        clean_lab.exec("node1", ["hostname"])

`lab` is session-scoped and named "t<pid>" so parallel pytest runs don't collide; it is
removed at the end of the session, also when tests fail. See docs/lab.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager

import pytest

TOOLS = ("ip", "nsenter", "unshare", "losetup", "mount", "mkfs.ext4", "ssh-keygen", "ssh")


def lab_unavailable() -> str | None:
    """Why the namespace lab can't run here, or None."""
    if os.geteuid() != 0:
        return "the namespace lab needs root (run the lab tests as root, as CI does)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not os.path.exists("/usr/sbin/sshd"):
        missing.append("/usr/sbin/sshd")
    if missing:
        return f"the namespace lab needs {', '.join(missing)} (make setup installs them)"
    r = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"], capture_output=True)
    if r.returncode != 0:
        return f"namespaces are not available here: {r.stderr.decode().strip()}"
    return None


def down_stale_test_labs() -> None:
    """Labs of test processes that died without cleaning up: "t<pid>" (this fixture),
    "u<pid>"/"i<pid>" (test_lab_lifecycle), "b<pid>" (test_bootstrap_lab)."""
    from hasync_lab.ns import Lab
    from hasync_lab.ns.store import all_lab_names

    for name in all_lab_names():
        if name[:1] in ("t", "u", "i", "b") and name[1:].isdigit():
            pid = int(name[1:])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                Lab(name).down()


@contextmanager
def fresh_lab(prefix: str, **up):
    """A namespace lab of this test process, "<prefix><pid>" (the stale labs of dead test
    processes removed first), up (``Lab.up(**up)``) for the block and always taken down;
    the test is skipped where the lab cannot run."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    from hasync_lab.ns import Lab

    down_stale_test_labs()
    the_lab = Lab(f"{prefix}{os.getpid()}")
    try:
        the_lab.up(**up)
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture(scope="session")
def lab():
    with fresh_lab("t", hold=True) as the_lab:
        yield the_lab


@pytest.fixture
def clean_lab(lab):
    lab.reset()
    return lab
