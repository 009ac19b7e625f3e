"""The ns campaign's unit supervisor notices every boot of a node, also one the lab did.

Seed 33537240 (ns tier, fault 14): a heal powered node2 on, the lab's own heal booted it
once more (killing its units), and the supervisor missed that second boot because it
compared mount-namespace inode numbers, which the kernel hands out again as soon as the
old namespace is gone. The units came back with the lab's own cluster.toml (a chain
without the campaign's third resource); the survivor then ran fs and vip without demo and
the liveness audit fired. The lab now gives every boot an id; the supervisor compares it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from hasync_lab.campaign.ns.services import Services


class FakeLab:
    """Just what the supervisor asks of a lab: two nodes that are up, their boot ids, a
    mount-namespace file whose inode never changes (as a reused inode number), exec and spawn."""

    def __init__(self, tmp: Path):
        self.nodes = ("node1", "node2")
        self.boots = {"node1": "b1", "node2": "b2"}
        self.ns = tmp / "mnt"
        self.ns.write_text("")
        self.store = SimpleNamespace(ns_file=lambda node, kind: self.ns)
        self.execs: list[tuple[str, str]] = []
        self.spawned: list[subprocess.Popen] = []

    def boot_id(self, node: str) -> str | None:
        return self.boots[node]

    def status_of(self, node: str) -> str:
        return "up"

    def exec(self, node, argv, input=None, **kw):
        self.execs.append((node, input or " ".join(argv)))
        return SimpleNamespace(ok=True, exit_code=0, stdout="", stderr="")

    def spawn(self, node, argv, log=None, env=None):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        self.spawned.append(p)
        return p


def test_a_boot_by_the_lab_is_noticed_though_the_namespace_inode_is_the_same(tmp_path):
    lab = FakeLab(tmp_path)
    traces: list[tuple[str, str, str]] = []
    sv = Services(lab, tmp_path, lambda n, k, m: traces.append((n, k, m)), threading.RLock())
    sv.config = {n: f"# campaign config of {n}\n" for n in lab.nodes}
    try:
        for n in lab.nodes:
            sv.boot(n)
        sv.tick()
        assert not [t for t in traces if t[1] == "power"]  # nothing rebooted yet
        lab.execs.clear()

        lab.boots["node2"] = "b2-again"  # the lab booted node2 once more (same inode)
        sv.tick()

        assert ("node2", "power", "booted by the lab (a heal): boot steps and units") in traces
        assert ("node2", "# campaign config of node2\n") in lab.execs  # its cluster.toml laid again
        assert not [e for e in lab.execs if e[0] == "node1"]
        sv.tick()  # once per boot
        assert sum(t[1] == "power" for t in traces) == 1
    finally:
        for p in lab.spawned:
            p.kill()
            p.wait()


def test_a_power_on_is_booted_once_though_the_supervisor_ticks_meanwhile(tmp_path):
    """Seed 96637587 (ns tier, fault 333): a heal powered node2 on; the supervisor's tick,
    running meanwhile in its own thread, saw the new boot id before power_on had recorded
    it as its own and booted the node a second time: the second boot rewrote cluster.toml
    while the first one's watcher read it (empty: exit 2)."""
    lab = FakeLab(tmp_path)
    status = {"node1": "up", "node2": "crashed"}
    lab.status_of = lambda node: status[node]
    traces: list[tuple[str, str, str]] = []
    sv = Services(lab, tmp_path, lambda n, k, m: traces.append((n, k, m)), threading.RLock())
    sv.config = {n: f"# campaign config of {n}\n" for n in lab.nodes}
    ticks: list[threading.Thread] = []

    def power_on(node):  # the lab boots the node; the supervisor's thread ticks right then
        status[node] = "up"
        lab.boots[node] = "b2-again"
        t = threading.Thread(target=sv.tick)
        t.start()
        t.join(0.3)
        ticks.append(t)

    lab.power_on = power_on
    try:
        sv.boot("node1")
        sv.booted["node2"] = "b2"
        sv.power_on("node2")
        for t in ticks:
            t.join(5)
        sv.tick()
        assert not [t for t in traces if "booted by the lab" in t[2]]
        assert [e for e in lab.execs if e == ("node2", "# campaign config of node2\n")] == [("node2", "# campaign config of node2\n")]
    finally:
        for p in lab.spawned:
            p.kill()
            p.wait()


class _Exited:
    """An old unit process that has exited 0 (a graceful stop): polled by the supervisor's
    tick at the moment the injector's thread starts the unit again (``on_poll``)."""

    pid = 999_999_01

    def __init__(self):
        self.on_poll = None

    def poll(self):
        run, self.on_poll = self.on_poll, None
        if run is not None:
            run()  # the other thread runs now: start() puts the new process in
        return 0


def test_a_graceful_restart_keeps_the_new_daemon_though_the_tick_sees_the_old_one_exit(tmp_path):
    """Seed 94661234 (ns tier, fault 56, a graceful restart of the standby's daemon): the
    supervisor's tick polled the old process (exit 0 after its SIGTERM) while the
    injector's thread had already started the new one, and dropped the *new* process from
    its table: the daemon ran, but to the campaign it was gone, nothing restarted it, and
    the liveness audit fired ("a daemon is not running") on a healthy cluster."""
    lab = FakeLab(tmp_path)
    sv = Services(lab, tmp_path, lambda n, k, m: None, threading.RLock())
    key = ("node1", "failover")
    try:
        sv.wanted[key] = False  # stop(): not wanted until started again
        old = sv.procs[key] = _Exited()
        old.on_poll = lambda: sv.start(*key)  # stop() returned: start() (it polls the old one too: exited)
        sv.tick()
        assert sv.pid(*key) == lab.spawned[-1].pid
        assert sv.alive(*key)
        assert [e.code for e in sv.exits] == [0]  # the old one's exit is still recorded
    finally:
        for p in lab.spawned:
            p.kill()
            p.wait()
