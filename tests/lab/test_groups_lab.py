"""Two resource groups on the namespace lab (issue 17): real daemons, real agents.

Group "a" (the filesystem on the loop disk, the VIP) is preferred on node1, group "b" (a
tmpfs, a second VIP) on node2, both with auto_failback (``cluster_toml(groups=True)``).
Each node is crashed in turn: its group moves to the survivor, and the survivor's own
group never stops (a watcher reads both nodes' addresses and mounts from /proc every few
ms: a group on both nodes at once, or the survivor's own group missing for one sample,
is a violation).
"""

from __future__ import annotations

import time

import pytest

from tests.lab.test_failover_lab import (
    NODES,
    Watcher,
    has_mount,
    has_vip,
    logs_on_failure,
    node_root,
    start_daemons,
    status,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.lab


def groups(lab) -> dict[str, tuple[str, str]]:
    from hasync_lab.ns.config_gen import MOUNT_POINT2, VIP2

    return {"a": (lab.vip, lab.mount_point), "b": (VIP2, MOUNT_POINT2)}


class GroupWatcher(Watcher):
    """Every few ms: where each group runs (its VIP and its mount); ``keep`` names the
    groups that must stay where they are (the survivor's own) while a node is down."""

    def __init__(self, lab):
        super().__init__(lab)
        self.groups = groups(lab)
        self.keep: dict[str, str] = {}  # group -> the node it must stay on

    def where(self, gid: str) -> list[str]:
        vip, mp = self.groups[gid]
        out = []
        for n in NODES:
            r = self._root(n)
            if r is not None and (has_vip(r, vip) or has_mount(r, mp)):
                out.append(n)
        return out

    def runs_on(self, gid: str, node: str) -> bool:
        """The whole group (VIP and mount) on *node*, and none of it elsewhere."""
        vip, mp = self.groups[gid]
        r = node_root(self.lab, node)
        return r is not None and has_vip(r, vip) and has_mount(r, mp) and self.where(gid) == [node]

    def run(self) -> None:
        while not self.stop_ev.is_set():
            for gid in self.groups:
                on = self.where(gid)
                if len(on) > 1:
                    self.violations.append(f"{time.monotonic():.3f}: group {gid} on {on}")
                node = self.keep.get(gid)
                if node is not None and node not in on:
                    self.violations.append(f"{time.monotonic():.3f}: group {gid} stopped on {node}, the survivor")
            self.samples += 1
            time.sleep(0.005)


def install(lab, nodes=NODES, *, fresh: bool = True) -> None:
    """The two-group config on *nodes* (a node's boot writes the lab's one-chain config
    again: a crashed node gets it back before its daemon starts)."""
    from hasync_lab.ns.config_gen import cluster_toml

    text = cluster_toml(lab.spec, groups=True)
    for n in nodes:
        lab.exec(n, ["sh", "-c", "cat > /etc/hasync/cluster.toml"], input=text, check=True)
        if fresh:
            lab.exec(n, ["rm", "-rf", "/var/lib/hasync/failover"], check=True)
        lab.exec(n, ["hasync", "check"], check=True)


@pytest.fixture
def two_groups(clean_lab):
    from hasync_lab.ns.config_gen import MOUNT_POINT2

    lab = clean_lab
    install(lab)
    w = GroupWatcher(lab)
    w.start()
    yield lab, w
    w.stop_ev.set()
    w.join(5)
    lab.reset()  # kills the daemons, unmounts /srv/ha, drops the addresses
    for n in NODES:
        lab.exec(n, ["sh", "-c", f"! mountpoint -q {MOUNT_POINT2} || umount -l {MOUNT_POINT2}"])


def test_each_node_crashed_in_turn_its_group_moves_and_the_survivors_own_group_never_stops(two_groups, tmp_path):
    lab, w = two_groups
    start_daemons(lab, tmp_path)
    with logs_on_failure(tmp_path):
        wait_for("a on node1, b on node2", lambda: w.runs_on("a", "node1") and w.runs_on("b", "node2"), 30)
        st = status(lab, "node1")
        assert [(g["id"], g["owner"]) for g in st["groups"]] == [("a", "node1"), ("b", "node2")]
        assert st["health"]["level"] == "ok", st["health"]

        for victim, survivor, moved, own in (("node1", "node2", "a", "b"), ("node2", "node1", "b", "a")):
            w.keep = {own: survivor}
            lab.crash(victim)
            wait_for(f"{moved} moved to {survivor}", lambda s=survivor, g=moved: w.runs_on(g, s), 30)
            fences = [e for e in timeline(lab, survivor) if e["kind"] == "fence" and e.get("data", {}).get("ok") is True]
            assert len(fences) >= 1
            st = status(lab, survivor)
            assert {g["id"]: g["owner"] for g in st["groups"]} == {"a": survivor, "b": survivor}
            # the victim comes back; with auto_failback its group returns to it, the other stays
            lab.power_on(victim)
            install(lab, (victim,), fresh=False)
            start_daemons(lab, tmp_path, (victim,))
            wait_for(f"{moved} back on {victim}", lambda v=victim, g=moved: w.runs_on(g, v), 30)
            assert w.runs_on(own, survivor)
            w.keep = {}
        # each crash fenced the victim once (not once per group)
        for node in NODES:
            deaths = [e for e in timeline(lab, node) if e["kind"] == "detect" and "declared dead" in e["message"]]
            fenced = [e for e in timeline(lab, node) if e["kind"] == "fence" and e.get("data", {}).get("ok") is True]
            assert len(fenced) <= len(deaths), (node, fenced, deaths)
    w.finish()
