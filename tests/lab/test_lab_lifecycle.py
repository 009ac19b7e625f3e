"""A lab of its own (not the session one): idempotent up, and down leaves nothing behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.lab.conftest import lab_unavailable

pytestmark = pytest.mark.lab


def netns_list() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def loops_of(path: str) -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout


def test_up_is_idempotent_and_down_leaves_nothing():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    from hasync.lab import Lab
    from hasync.lab.procs import alive

    before = netns_list()
    lab = Lab(f"u{os.getpid()}")
    try:
        lab.up(nodes=2, clients=0, disk_size="32M")
        st1 = lab.status()
        sshd1 = st1["nodes"]["node1"]["sshd_pid"]
        lab.up(nodes=2, clients=0, disk_size="32M")  # again: nothing restarted
        st2 = lab.status()
        assert st2["nodes"]["node1"]["sshd_pid"] == sshd1
        assert lab.exec("node1", ["ssh", "node2", "hostname"]).stdout.strip() == "node2"
        relay = st2["serial"]["relay_pid"]
        sshds = [n["sshd_pid"] for n in st2["nodes"].values()]
        lab.crash("node1")  # down must cope with a crashed node too
    finally:
        lab.down()
    assert netns_list() == before
    assert str(lab.store.dir) not in loops_of(str(lab.store.dir))
    with open("/proc/self/mountinfo") as f:
        assert str(lab.store.dir) not in f.read()
    assert not alive(relay)
    assert not any(alive(p) for p in sshds)
    assert not lab.store.dir.exists()
