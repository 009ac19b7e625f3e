"""The simulated two-node cluster: a fake clock and an event queue, the two nodes, the
links, the audits and a timeline of everything that is not a routine heartbeat.

Time jumps from event to event (a heartbeat, a packet's arrival, the FSM's next
deadline, the end of a job step, a fault): nothing sleeps and nothing polls. Events at
the same instant run in the order they were scheduled, so a seed replays exactly.
"""

from __future__ import annotations

import heapq
import itertools
import random

from hasync.failover import chain
from hasync.failover.membership import Membership

from .audits import Auditor, Hit
from .net import Network
from .node import Node
from .scenario import NODES, Scenario
from .worker import model_resource

T0 = 1000.0  # simulated monotonic time at power-on


class Sim:
    def __init__(self, sc: Scenario, *, fsm_cls=Membership, classify=chain.classify_status, keep_going: bool = False):
        self.sc = sc
        self.now = T0
        self.q: list = []
        self._n = itertools.count()
        self.fsm_cls = fsm_cls
        self.classify = classify
        self.keep_going = keep_going
        self.spec = {r.id: r for r in sc.resources}
        self.model_res = {r.id: model_resource(r) for r in sc.resources}
        self.net = Network(NODES, sc.links, sc.latency_s, random.Random(f"hasync-campaign:{sc.seed}:net"))
        self.nodes = {n: Node(self, n) for n in NODES}
        self.node_list = [self.nodes[n] for n in NODES]
        self.impaired_at = {(a, b): T0 for a in NODES for b in NODES if a != b}
        self.audit = Auditor(self)
        self.timeline: list = []  # (t, node, kind, message)
        self.fault_index = -1  # -1: the cluster's start-up
        self.violations: list[Hit] = []
        self.limits: list[Hit] = []
        self.halted = False

    # ------------------------------------------------------------------ the clock
    def at(self, t: float, fn, *args) -> None:
        heapq.heappush(self.q, (t if t > self.now else self.now, next(self._n), fn, args))

    def run_until(self, t_end: float, until=None) -> bool:
        """Run the events up to *t_end*; True as soon as ``until()`` holds (checked after
        every event, and once before the first)."""
        if until is not None and until():
            return True
        q = self.q
        pop = heapq.heappop
        while q and not self.halted:
            if q[0][0] > t_end:
                break
            t, _, fn, args = pop(q)
            self.now = t
            fn(*args)
            if until is not None and until():
                return True
        if not self.halted and self.now < t_end:
            self.now = t_end
        return False

    # ------------------------------------------------------------------ wiring
    def peer_of(self, node: Node) -> Node:
        a, b = self.node_list
        return b if node is a else a

    def transmit(self, node: Node, now: float, pairs: list, fields: dict, sig: tuple) -> None:
        dst = self.peer_of(node)
        arrivals = self.net.transmit(node.name, dst.name, now, pairs, fields, sig)
        if dst.powered:
            q, n, deliver = self.q, self._n, dst.deliver
            for t, got in arrivals.items():
                heapq.heappush(q, (t, next(n), deliver, (t, got, fields, sig)))

    def inject(self, into: Node, items: list) -> None:
        """Captured packets (link, seq, fields, sig) put on the wire towards *into* now."""
        self.trace(into.name, "replay", f"{len(items)} captured packet(s) of the peer: " + "; ".join(
            f"{lk} seq {seq} gen {f['generation']} {f['role']} flags {f['flags']} owned {list(f['owned'])}" for lk, seq, f, _ in items))
        for lk, seq, f, sig in items:
            into.deliver(self.now, [(lk, seq)], f, sig)

    def impaired(self, src: str, dst: str) -> None:
        """The path src -> dst was impaired up to now (for the false-dead audit)."""
        self.impaired_at[(src, dst)] = self.now

    def path_impaired(self, src: str, dst: str) -> bool:
        return any((src, dst, lk) in self.net.degraded for lk in self.sc.links)

    # ------------------------------------------------------------------ what the driver reports
    def on_event(self, node: Node, ev, now: float) -> None:
        self.timeline.append((now, node.name, ev.kind, ev.message))
        if ev.kind == "detect" and dict(ev.data).get("reason") != "peer-left" and "declared dead" in ev.message:
            node.last_detect = now
            self.audit.on_detect(node, now)

    def on_job(self, node: Node, job, now: float) -> None:
        if job.kind != "monitor":
            group = f"{job.group}: " if job.group else ""
            self.timeline.append((now, node.name, "job", f"{group}{job.kind} {job.resource} ({job.reason})".replace("  ", " ")))
        self.audit.on_job(node, job, now)

    def fence_result(self, fencer: Node, peer: Node, ok: bool, lied: bool) -> None:
        fencer.fences.append((self.now, peer.boot_id, ok, lied))
        self.trace(fencer.name, "fence", f"fence of {peer.name}: {'ok' if ok else 'failed'}" + (" (a lie: it stays up)" if lied else ""))

    def trace(self, node: str, kind: str, message: str) -> None:
        self.timeline.append((self.now, node, kind, message))

    def on_hit(self, hit: Hit) -> None:
        self.timeline.append((self.now, "audit", hit.audit, f"{'LIMIT ' + hit.limit if hit.limit else 'VIOLATION'}: {hit.evidence.get('node', '')} {hit.audit}"))
        if hit.limit:
            self.limits.append(hit)
        else:
            self.violations.append(hit)
            if not self.keep_going:
                self.halted = True

    def state_summary(self) -> dict:
        out = {}
        for n in self.node_list:
            d = n.daemon
            fsm = d.fsm if d is not None else None
            out[n.name] = {
                "powered": n.powered,
                "frozen": n.frozen,
                "running": dict(n.running),
                "daemon": None if fsm is None else {
                    "generation": d.generation, "role": fsm.role, "owned": list(fsm.owned), "epoch": fsm.epoch,
                    "peer_state": fsm.peer.state, "peer_role": fsm.peer.role, "job": fsm.job.kind if fsm.job else None,
                },
            }
        return out

    # ------------------------------------------------------------------ start-up
    def power_up(self) -> None:
        a, b = self.node_list
        a.power_on("start")
        self.at(self.now + self.sc.start_gap_s, b.power_on, "start")
