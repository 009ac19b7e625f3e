"""Ground truth on the lab's nodes, read from the kernel, never from the daemons.

Per node, straight from /proc of a process inside it (no command, no nsenter): is the
VIP a local address of its network namespace (fib_trie), is the filesystem mounted in
its mount namespace, is the demo service listening (net/tcp). The sampler reads both
nodes every 10 ms and records every interval where a piece of the chain is on both; a
second thread asks the public network who answers ARP for the VIP (an arping from the
client) every 250 ms and records every answer from more than one MAC.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hasync_lab.campaign.live import CONTROL_SOCKET, control_status
from hasync_lab.campaign.ns.netns import ArpProbe, link_mac
from hasync_lab.campaign.ns.prep import DEMO_PORT, PIECES
from hasync_lab.ns.config_gen import MOUNT_POINT2, VIP2

DEMO_HEX = f":{DEMO_PORT:04X}"


@dataclass
class Overlap:
    what: str  # fs | vip | demo | arp (| fs2 | vip2: group b of a two-group run)
    t0: float
    t1: float | None
    fault_index: int
    detail: str = ""


@dataclass
class GroupStop:
    """A resource group that stopped, wholly or in part, on the node that ran it while
    the other node was down: from ``t0`` until it ran whole again (``t1``), or until the
    node went down itself or the other came back (``ended``)."""

    group: str
    node: str
    t0: float
    fault_index: int
    missing: tuple[str, ...]
    t1: float | None = None
    ended: str = ""  # whole again | node down | peer up


def _has_vip(text: str, vip: str) -> bool:
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == f"|-- {vip}" and "/32 host LOCAL" in lines[i + 1]:
            return True
    return False


class NodeView:
    """One node through /proc/<its sshd>/...; 'down' when it has no sshd (crashed)."""

    def __init__(self, lab, node: str):
        self.lab = lab
        self.node = node
        self.pid = 0
        self.next_look = 0.0

    def root(self) -> str | None:
        if self.pid and os.path.exists(f"/proc/{self.pid}/root/run"):
            return f"/proc/{self.pid}"
        now = time.monotonic()
        if now < self.next_look:
            return None
        self.next_look = now + 0.05
        try:
            self.pid = self.lab.sshd_pid(self.node)
        except Exception:
            self.pid = 0
        return f"/proc/{self.pid}" if self.pid else None

    def read(self) -> dict:
        r = self.root()
        down = {"up": False, **dict.fromkeys(PIECES, False), "role": "down"}
        if r is None:
            return down
        try:
            fib = open(f"{r}/net/fib_trie").read()
            mounts = [line.split()[1] for line in open(f"{r}/mounts")]
            demo = any(DEMO_HEX in ln.split()[1] and ln.split()[3] == "0A" for ln in open(f"{r}/net/tcp").readlines()[1:])
        except (OSError, IndexError):
            self.pid = 0
            return down
        return {"up": True, "fs": self.lab.mount_point in mounts, "vip": _has_vip(fib, self.lab.vip), "demo": demo,
                "fs2": MOUNT_POINT2 in mounts, "vip2": _has_vip(fib, VIP2), "role": self.role(r)}

    @staticmethod
    def role(r: str) -> str:
        try:
            return open(f"{r}/root/run/hasync/role").read().strip() or "none"
        except OSError:
            return "none"

    def path(self, p: str) -> str | None:
        """A node's file seen from the host (None when the node is down)."""
        r = self.root()
        return f"{r}/root{p}" if r else None


@dataclass
class Sampler:
    lab: Any
    nodes: tuple[str, str]
    trace: Any
    interval: float = 0.01
    views: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    overlaps: list[Overlap] = field(default_factory=list)
    fault_index: int = -1
    samples: int = 0
    arp_samples: int = 0
    groups: dict = field(default_factory=dict)  # group -> its pieces: watched for own-group stops (two groups)
    stops: list[GroupStop] = field(default_factory=list)

    def __post_init__(self):
        self.views = {n: NodeView(self.lab, n) for n in self.nodes}
        self.kept: dict[tuple[str, str], bool] = {}  # (group, node): ran whole while the other node was down
        self.open_stops: dict[tuple[str, str], GroupStop] = {}
        self.stop_ev = threading.Event()
        self.open: dict[str, Overlap] = {}
        self.lock = threading.Lock()
        spec = self.lab.spec
        self.macs = {link_mac(f"/run/netns/{spec.netns(n)}", self.lab.public_if): n for n in self.nodes}
        client = self.lab.clients[0]
        self.client = client
        self.arp = ArpProbe(f"/run/netns/{spec.netns(client)}", self.lab.public_if, self.lab.public_addr(client))
        self.arp_last: set[str] = set()
        self.threads = [threading.Thread(target=self._loop, name="campaign-sampler", daemon=True),
                        threading.Thread(target=self._arp_loop, name="campaign-arp", daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop_ev.set()
        for t in self.threads:
            t.join(2)
        self.arp.close()

    def snapshot(self) -> dict:
        with self.lock:
            return {n: dict(v) for n, v in self.last.items()}

    # ------------------------------------------------------------------ the chain on both
    def _loop(self) -> None:
        while not self.stop_ev.is_set():
            cur = {n: v.read() for n, v in self.views.items()}
            now = time.monotonic()
            with self.lock:
                self.last = cur
                self.samples += 1
                for what in PIECES:
                    self._mark(what, all(cur[n][what] for n in self.nodes), now, "")
                self._own_groups(cur, now)
            self.stop_ev.wait(self.interval)

    def _own_groups(self, cur: dict, now: float) -> None:
        """While one node is down, every group the other ran whole must stay whole there
        (the survivor never stops its own group): a stop opens a GroupStop."""
        for gid, pieces in self.groups.items():
            for n in self.nodes:
                other = self.nodes[1] if n == self.nodes[0] else self.nodes[0]
                key = (gid, n)
                alone = cur[n]["up"] and not cur[other]["up"]
                whole = alone and all(cur[n][p] for p in pieces)
                o = self.open_stops.get(key)
                if o is not None and (whole or not alone):
                    o.t1, o.ended = now, "whole again" if whole else ("node down" if not cur[n]["up"] else "peer up")
                    del self.open_stops[key]
                    self.trace(n, "truth", f"group {gid} stopped on {n} (the other node down): {o.ended} after {now - o.t0:.3f} s")
                if not alone:
                    self.kept[key] = False
                elif whole:
                    self.kept[key] = True
                elif self.kept.get(key) and key not in self.open_stops:
                    o = GroupStop(gid, n, now, self.fault_index, tuple(p for p in pieces if not cur[n][p]))
                    self.open_stops[key] = o
                    self.stops.append(o)
                    self.kept[key] = False
                    self.trace(n, "truth", f"group {gid} STOPPED on {n} while the other node is down (missing {list(o.missing)})")

    def stops_since(self, index: int) -> list[GroupStop]:
        with self.lock:
            return [o for o in self.stops if o.fault_index >= index]

    def _mark(self, what: str, both: bool, now: float, detail: str) -> None:
        o = self.open.get(what)
        if both and o is None:
            o = Overlap(what, now, None, self.fault_index, detail)
            self.open[what] = o
            self.overlaps.append(o)
            self.trace("both", "truth", f"{what} on BOTH nodes" + (f" ({detail})" if detail else ""))
        elif not both and o is not None:
            o.t1 = now
            del self.open[what]
            self.trace("both", "truth", f"{what} on one node again after {now - o.t0:.3f} s")

    def _arp_loop(self) -> None:
        while not self.stop_ev.is_set():
            try:
                macs = self.arp.who_has(self.lab.vip)
            except OSError:
                macs = set()
            now = time.monotonic()
            with self.lock:
                self.arp_last = macs
                self.arp_samples += 1
                names = sorted(self.macs.get(m, m) for m in macs)
                self._mark("arp", len(macs) > 1, now, "answered by " + ", ".join(names))
            self.stop_ev.wait(0.13)

    def arp_answer(self) -> list[str]:
        """Who answers ARP for the VIP right now (node names, or MACs nobody owns)."""
        return sorted(self.macs.get(m, m) for m in self._fresh_arp())

    def _fresh_arp(self) -> set[str]:
        with self.lock:
            n = self.arp_samples
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            with self.lock:
                if self.arp_samples >= n + 2:
                    return set(self.arp_last)
            time.sleep(0.02)
        with self.lock:
            return set(self.arp_last)

    def overlaps_since(self, index: int) -> list[Overlap]:
        with self.lock:
            return [o for o in self.overlaps if o.fault_index >= index]


def daemon_status(view, timeout: float = 2.0) -> dict:
    """The failover daemon's status over its control socket (reached through /proc)."""
    p = view.path(CONTROL_SOCKET)
    return control_status(p, timeout) if p is not None else {}


def tcp_answer(lab, client: str, timeout: float = 1.0) -> str:
    """What the service on the VIP says to a client ("hasync-demo on node1"), or ""."""
    from hasync_lab.campaign.ns.netns import in_netns

    def ask() -> str:
        try:
            with socket.create_connection((lab.vip, DEMO_PORT), timeout=timeout) as s:
                s.settimeout(timeout)
                return s.recv(200).decode(errors="replace").strip()
        except OSError:
            return ""

    return in_netns(f"/run/netns/{lab.spec.netns(client)}", ask)
