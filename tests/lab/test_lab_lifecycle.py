"""A lab of its own (not the session one): idempotent up, and down leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.lab.conftest import fresh_lab, lab_unavailable

pytestmark = pytest.mark.lab


def netns_of(lab) -> set[str]:
    """The lab's entries in `ip netns list` (other people's labs come and go meanwhile)."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {n for n in names if n.startswith(lab.name + "-")}


def loops_of(path: str) -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout


def test_up_is_idempotent_and_down_leaves_nothing(clean_lab):
    """Also: two labs at once (this one and the session's), same addresses, no crosstalk."""
    from hasync_lab.ns import Lab
    from hasync_lab.ns.procs import alive

    session_lab = clean_lab

    lab = Lab(f"u{os.getpid()}")
    try:
        lab.up(nodes=2, clients=0, disk_size="32M")
        assert netns_of(lab) == {lab.netns("node1"), lab.netns("node2"), f"{lab.name}-sw"}
        st1 = lab.status()
        sshd1 = st1["nodes"]["node1"]["sshd_pid"]
        lab.up(nodes=2, clients=0, disk_size="32M")  # again: nothing restarted
        st2 = lab.status()
        assert st2["nodes"]["node1"]["sshd_pid"] == sshd1
        assert lab.exec("node1", ["ssh", "node2", "hostname"]).stdout.strip() == "node2"
        for one in (lab, session_lab):
            r = one.exec("node1", ["ssh", one.public_addr("node2"), "cat", "/etc/hasync/lab.json"])
            assert json.loads(r.stdout)["lab"] == one.name
        relay = st2["serial"]["relay_pid"]
        sshds = [n["sshd_pid"] for n in st2["nodes"].values()]
        lab.crash("node1")  # down must cope with a crashed node too
    finally:
        lab.down()
    assert netns_of(lab) == set()
    assert str(lab.store.dir) not in loops_of(str(lab.store.dir))
    with open("/proc/self/mountinfo") as f:
        assert str(lab.store.dir) not in f.read()
    assert not alive(relay)
    assert not any(alive(p) for p in sshds)
    assert not lab.store.dir.exists()


@pytest.mark.parametrize("finish", [False, True])
def test_down_after_an_interrupted_up(monkeypatch, finish):
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    from hasync_lab.ns import Lab
    from hasync_lab.ns.lab import Lab as NsLab

    lab = Lab(f"i{os.getpid()}")
    real_boot = NsLab._boot

    def boot_then_fail(self, spec, node):
        real_boot(self, spec, node)
        if node == "node2":
            raise KeyboardInterrupt  # as if ^C arrived in the middle of `up`

    monkeypatch.setattr(NsLab, "_boot", boot_then_fail)
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.up(nodes=2, clients=1, disk_size="32M")
        assert lab.store.dir.exists()
        if finish:
            monkeypatch.setattr(NsLab, "_boot", real_boot)
            lab.up(nodes=2, clients=1, disk_size="32M")  # finishes what was left
            assert lab.exec("client1", ["ssh", "node2", "hostname"]).stdout.strip() == "node2"
    finally:
        lab.down()
    assert netns_of(lab) == set()
    assert str(lab.store.dir) not in loops_of(str(lab.store.dir))
    assert not lab.store.dir.exists()


def test_a_crash_interrupted_halfway_is_a_crashed_node_that_heal_boots(clean_lab, monkeypatch):
    """^C after the node's processes were stopped (SIGSTOP) and before they were killed:
    the node must not be left frozen and reported up (the next ssh to it would hang);
    it is a crashed node, and heal boots it again."""
    from hasync_lab.ns import faults

    def interrupted(find, timeout=5.0):
        raise KeyboardInterrupt

    monkeypatch.setattr(faults.procs, "kill_and_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clean_lab.crash("node1")
    monkeypatch.undo()
    assert clean_lab.status()["nodes"]["node1"]["state"] == "crashed"
    clean_lab.up(hold=True)  # "finishes it": idempotent, leaves a crashed node crashed
    clean_lab.heal("node1")
    r = clean_lab.exec("client1", ["ssh", "-o", "ConnectTimeout=5", "node1", "hostname"], timeout=30)
    assert r.stdout.strip() == "node1"


def test_down_ends_a_serial_relay_an_interrupted_up_never_recorded():
    """^C in `up` between starting the serial relay and recording its PID in state.json:
    `down` must still end it (it kept running, holding two ptys, after the lab was gone),
    and the next `up` must not leave it beside a new one."""
    from hasync_lab.ns.procs import alive

    with fresh_lab("u", nodes=2, clients=0, disk_size="32M") as lab:
        st = lab.store.load()
        first = st.pop("relay_pid")
        lab.store.save(st)  # as if the interrupt came before it was written
        lab.up(nodes=2, clients=0, disk_size="32M")  # `up` finishes the lab: one relay, recorded
        second = lab.store.load()["relay_pid"]
        assert second != first and not alive(first)
        from tests.lab.test_lab_basics import _serial_roundtrip

        assert _serial_roundtrip(lab, "node1", "node2", b"still wired\n") == b"still wired\n"  # the nodes were rebound
        st = lab.store.load()
        st.pop("relay_pid")
        lab.store.save(st)
    assert not alive(second)
