"""The audits, from the simulator's ground truth (never from what the FSMs believe).

Each audit is evaluated when what it reads changes (a resource starts or stops, a node
loses power, a job is issued, the FSM raises): that is after every simulated event
that could make it fire, without re-reading the world per heartbeat.

1. ``dual-run``: a chain resource started by hasync runs on both powered nodes at once.
   ``stray``: a piece started by a fault (a service enabled at boot) runs on one node
   while the other runs hasync's chain, longer than ``Scenario.stray_bound_s``.
2. ``unsafe-start``: a node starts the chain while the peer is powered and runs hasync's
   chain (or is starting it / holds it active) -- allowed only if the peer was fenced
   (truly off) or left cleanly, which is then exactly the case where it runs nothing.
   ``tiebreak`` (ping configured): a node fences or takes over from a dead-looking peer
   while its own ping node has been unreachable since before it declared the peer dead.
   ``false-dead``: a node declares its peer dead although the peer's daemon ran, was
   not stopped, and every link from it was clean for longer than deadtime.
3. ``liveness``: after the last fault heals, within ``Scenario.liveness_bound_s``, one
   node runs the whole chain, the other nothing, and both FSMs agree on who.
4. ``fsm-error``: an exception escapes the FSM, or its deadlines make the loop spin.

A firing caused by a fault the design cannot survive is named (``LIMITS``) and reported
apart from violations; ``Hit.limit`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .worker import FAULT, HASYNC

AUDITS = ("dual-run", "stray", "unsafe-start", "tiebreak", "false-dead", "liveness", "fsm-error")

LIMITS = {
    "lying-fence": "a fence that reports success while the node stays up: fencing is the only "
                   "guard against a peer that merely looks dead, so both nodes run the chain until "
                   "they hear each other again (for ever while every link is cut)",
    "fencing-off": "fencing is off and the peer only looked dead (links cut, SIGSTOP, its daemon "
                   "killed): the survivor starts without fencing and both run the chain until they "
                   "hear each other (heartbeat: 'shared disks are not protected')",
    "optional-fence-failed": "fencing optional and every fence attempt failed while the peer only "
                             "looked dead: the survivor starts anyway, by configuration",
    "late-stray": "a piece of the chain started behind hasync's back after the daemon's start-up probe "
                  "(a unit enabled at boot that came up late): hasync probes a standby node's resources "
                  "only at start-up (Pacemaker's default too), so it runs beside the peer's chain unseen "
                  "(the campaign then stops it, as an operator would)",
    "stop-failed-block": "a stop failed with on_stop_failure = block: the chain stays frozen where "
                         "it is until an operator acts (the campaign then reboots the node, as one would)",
    "no-eligible-node": "neither node is eligible (the chain failed to start on one, the other is in "
                        "operator standby or failed too): nobody retries until an operator runs "
                        "`hasync takeover` (the campaign then does)",
}

HOLDING_NOW = ("starting", "active")


@dataclass
class Hit:
    audit: str
    t: float
    fault_index: int
    evidence: dict = field(default_factory=dict)
    limit: str | None = None

    def to_dict(self) -> dict:
        d = {"fault_index": self.fault_index, "audit": self.audit, "t": round(self.t, 4), "evidence": self.evidence}
        if self.limit:
            d["limit"] = self.limit
        return d


class Auditor:
    def __init__(self, sim):
        self.sim = sim
        self.hits: list[Hit] = []
        self.dual: set[str] = set()
        self.stray_since: float | None = None
        self.start_verdict: dict[str, tuple[float, str]] = {}  # node -> (time, "" | "limit:NAME" | "violation")

    def fire(self, audit: str, evidence: dict, limit: str | None = None) -> None:
        sim = self.sim
        hit = Hit(audit, sim.now, sim.fault_index, {**evidence, "state": sim.state_summary()}, limit)
        self.hits.append(hit)
        sim.on_hit(hit)

    def fired(self, audit: str) -> bool:
        return any(h.audit == audit for h in self.hits)

    # ------------------------------------------------------------------ 1. one node only
    def running_changed(self) -> None:
        sim = self.sim
        a, b = sim.node_list
        ra, rb = a.running, b.running
        both = {r for r, o in ra.items() if o == HASYNC and rb.get(r) == HASYNC}
        new = sorted(both - self.dual, key=sim.sc.ids.index)
        self.dual = both
        if new:
            self.fire("dual-run", {"resources": new}, self._dual_limit())
        stray = (FAULT in ra.values() and HASYNC in rb.values()) or (FAULT in rb.values() and HASYNC in ra.values())
        if not stray:
            self.stray_since = None
        elif self.stray_since is None:
            self.stray_since = sim.now
            sim.at(sim.now + sim.sc.stray_bound_s, self._stray_check, sim.now)

    def _dual_limit(self) -> str | None:
        """The most recent start caused it: a start excused by a named limit excuses it."""
        if not self.start_verdict:
            return None
        _, verdict = max(self.start_verdict.values())
        return verdict[6:] if verdict.startswith("limit:") else None

    def _stray_check(self, since: float) -> None:
        if self.stray_since == since:
            strays = {n.name: sorted(r for r, o in n.running.items() if o == FAULT) for n in self.sim.node_list}
            late = all(set(rids) <= n.late_strays for n in self.sim.node_list for rids in [strays[n.name]])
            self.fire("stray", {"since": round(since, 4), "bound_s": round(self.sim.sc.stray_bound_s, 4), "strays": strays},
                      "late-stray" if late else None)
            self.stray_since = None

    # ------------------------------------------------------------------ 2. safe starts
    def on_job(self, node, job, now: float) -> None:
        if job.kind == "start":
            self._check_start(node, now)
        if self.sim.sc.ping_configured and job.kind in ("fence", "start"):
            self._check_tiebreak(node, job)

    def _check_start(self, x, now: float) -> None:
        y = self.sim.peer_of(x)
        yd = y.daemon
        y_role = yd.fsm.role if yd is not None and yd.fsm is not None else None
        risky = y.powered and (HASYNC in y.running.values() or y_role in HOLDING_NOW)
        view = x.daemon.fsm.peer.state
        # a takeover of a peer that is still alive, excused by a named limit, excuses what
        # that peer does when it wakes up (a SIGSTOPped node acting on its backlog)
        limit = self._takeover_limit(x, y) if view == "dead" and y.powered else None
        if risky and limit is None:
            _, yv = self.start_verdict.get(y.name, (0.0, ""))
            limit = yv[6:] if yv.startswith("limit:") else None
        if risky:
            self.fire("unsafe-start", {"node": x.name, "view_of_peer": view, "peer_role": y_role,
                                       "peer_runs": dict(y.running)}, limit)
        self.start_verdict[x.name] = (now, f"limit:{limit}" if limit else ("violation" if risky else ""))

    def forget_starts(self) -> None:
        """The cluster is clean again: what excused the last fault's starts is over."""
        self.start_verdict.clear()

    def _takeover_limit(self, x, y) -> str | None:
        fences = [f for f in x.fences if f[0] >= x.last_detect]  # (t, peer boot, ok, lied) this death
        if any(ok and lied and boot == y.boot_id for _, boot, ok, lied in fences):
            return "lying-fence"
        mode = self.sim.sc.fencing_mode
        if mode == "off":
            return "fencing-off"
        if mode == "optional" and fences and not any(ok for _, _, ok, _ in fences):
            return "optional-fence-failed"
        return None

    def _check_tiebreak(self, x, job) -> None:
        if job.kind == "start" and x.daemon.fsm.peer.state != "dead":
            return
        down = x.ping_down_since
        if down is not None and down <= x.last_detect:
            self.fire("tiebreak", {"node": x.name, "job": job.kind, "ping_down_since": round(down, 4),
                                   "peer_declared_dead_at": round(x.last_detect, 4)})

    def on_detect(self, x, now: float) -> None:
        """x's FSM declared its peer dead: was the peer really silent?"""
        sim = self.sim
        y = sim.peer_of(x)
        yd = y.daemon
        if not y.powered or y.frozen or yd is None or not yd.alive or sim.path_impaired(y.name, x.name):
            return
        quiet = now - sim.impaired_at[(y.name, x.name)]
        margin = sim.sc.deadtime + 2 * sim.sc.keepalive + 4 * sim.sc.latency_s
        if quiet > margin:
            self.fire("false-dead", {"node": x.name, "path_clean_for_s": round(quiet, 4)})

    # ------------------------------------------------------------------ 3. liveness
    def clean(self) -> bool:
        """One node runs the whole chain and is active, the other runs nothing and is
        standby, each sees the other up in that role, nothing else under way."""
        a, b = self.sim.node_list
        n = len(self.sim.sc.resources)
        if len(a.running) == n and not b.running:
            act, stb = a, b
        elif len(b.running) == n and not a.running:
            act, stb = b, a
        else:
            return False
        da, ds = act.daemon, stb.daemon
        if da is None or ds is None or act.frozen or stb.frozen or da.leaving or ds.leaving:
            return False
        fa, fs = da.fsm, ds.fsm
        return (fa.role == "active" and fs.role == "standby" and len(fa.owned) == n and not fs.owned
                and fa.peer.state == "up" and fs.peer.state == "up" and fs.peer.role == "active"
                and fa.peer.role == "standby" and fs.job is None and not ds.worker.busy
                and (fa.job is None or fa.job.kind == "monitor"))

    def liveness_failed(self, healed_at: float) -> str | None:
        """Fire the liveness audit; returns the named limit it falls under, if any."""
        sim = self.sim
        limit = None
        fsms = [n.daemon.fsm for n in sim.node_list if n.daemon is not None and n.daemon.fsm is not None]
        if any(n.late_strays for n in sim.node_list):
            limit = "late-stray"
        elif sim.sc.on_stop_failure == "block" and any(f.role == "stop-failed" for f in fsms):
            limit = "stop-failed-block"
        elif len(fsms) == 2 and all(f.role == "standby" and {"failed", "standby"} & set(f.snapshot(sim.now)["flags"]) for f in fsms):
            limit = "no-eligible-node"
        self.fire("liveness", {"healed_at": round(healed_at, 4), "bound_s": round(sim.sc.liveness_bound_s, 4)}, limit)
        return limit

    # ------------------------------------------------------------------ 4. the FSM itself
    def fsm_error(self, node, where: str, exc: BaseException | None) -> None:
        import traceback

        tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.fire("fsm-error", {"node": node.name, "error": where, "traceback": tb[-4000:]})
