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
