"""The audits, from the simulator's ground truth (never from what the FSMs believe).

Each audit is evaluated when what it reads changes (a resource starts or stops, a node
loses power, a job is issued, the FSM raises): that is after every simulated event
that could make it fire, without re-reading the world per heartbeat.

1. ``dual-run``: a chain resource started by hasync runs on both powered nodes at once.
   ``stray``: a piece started by a fault (a service enabled at boot) runs on one node
   while the other runs hasync's chain (the same group's), longer than ``Scenario.stray_bound_s``.
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
5. ``own-group-stopped`` (issue 17): while a node is off (a crash, a power loss, a
   fence), the survivor stops a group it ran when the other node went down (unless an
   operator asked for it: an accepted `hasync standby` racing the crash). A failback begun
   before the peer's death could be known (less than deadtime after it, the peer still
   seen up) is the named limit ``failback-race``: liveness then judges the recovery.

With several resource groups (``Scenario.groups``) every audit is per group: a group's
resources on both nodes (``dual-run``), a start of a group the peer runs or holds
(``unsafe-start``), and liveness: each group wholly on one node and none of it on the
other, both FSMs agreeing for each group.

A firing caused by a fault the design cannot survive is named (``LIMITS``) and reported
apart from violations; ``Hit.limit`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hasync.failover.packets import flag_names

from .worker import FAULT, HASYNC

AUDITS = ("dual-run", "stray", "unsafe-start", "tiebreak", "false-dead", "liveness", "fsm-error", "own-group-stopped",
          "operator-unanswered")

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
    "failback-race": "auto_failback began handing the chain back to its preferred node in the "
                     "instant that node died (less than deadtime earlier, so nothing could know): the "
                     "survivor stops it, declares the peer dead at deadtime, fences and starts it again",
    "no-eligible-node": "neither node is eligible (the chain failed to start on one, the other is in "
                        "operator standby or failed too): nobody retries until an operator runs "
                        "`hasync takeover` (the campaign then does)",
}

HOLDING_NOW = ("starting", "active")
# stops an operator asked for (`hasync standby` here, `hasync takeover` on the peer before it
# went down, `hasync stop`): not the survivor giving up its own group by itself
OPERATOR_STOPS = ("standby", "hasync stop: the chain is stopped on purpose")


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
        # (node, group) -> (time, "" | "limit:NAME" | "violation") of its last start ("": the one chain)
        self.start_verdict: dict[tuple[str, str], tuple[float, str]] = {}
        # a node that went off, and the groups the survivor ran then (own-group-stopped)
        self.down: str | None = None
        self.down_at = 0.0
        self.kept: tuple[str, ...] = ()

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
            groups = sorted({sim.sc.group_of(r) for r in new} - {""})
            self.fire("dual-run", {"resources": new, **({"groups": groups} if groups else {})},
                      self._dual_limit({sim.sc.group_of(r) for r in new}))
        # (per group: another group's resources run on the other node by design)
        stray = any(_mixed(ra, rb, ids) or _mixed(rb, ra, ids) for _, ids in sim.sc.chains)
        if not stray:
            self.stray_since = None
        elif self.stray_since is None:
            self.stray_since = sim.now
            sim.at(sim.now + sim.sc.stray_bound_s, self._stray_check, sim.now)

    def _dual_limit(self, groups: set[str]) -> str | None:
        """The most recent start of its group caused it: a start excused by a named limit excuses it."""
        mine = [v for (_, g), v in self.start_verdict.items() if g in groups]  # (another group's start excuses nothing here)
        if not mine:
            return None
        _, verdict = max(mine)
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
            self._check_start(node, now, job.group)
        if (job.kind == "stop" and self.down is not None and node.name != self.down and job.group in self.kept
                and job.reason not in OPERATOR_STOPS):
            self.fire("own-group-stopped", {"node": node.name, "group": job.group or "(the chain)", "down": self.down,
                                            "reason": job.reason}, self._failback_race(node, job, now))
        if self.sim.sc.ping_configured and job.kind in ("fence", "start"):
            self._check_tiebreak(node, job)

    def _check_start(self, x, now: float, group: str = "") -> None:
        y = self.sim.peer_of(x)
        yd = y.daemon
        y_role = _group_fsm(yd.fsm, group).role if yd is not None and yd.fsm is not None else None
        ids = self.sim.sc.group_ids(group)
        risky = y.powered and (any(y.running.get(r) == HASYNC for r in ids) or y_role in HOLDING_NOW)
        view = x.daemon.fsm.peer.state
        # a takeover of a peer that is still alive, excused by a named limit, excuses what
        # that peer does when it wakes up (a SIGSTOPped node acting on its backlog)
        limit = self._takeover_limit(x, y) if view == "dead" and y.powered else None
        if risky and limit is None:
            _, yv = self.start_verdict.get((y.name, group), (0.0, ""))
            limit = yv[6:] if yv.startswith("limit:") else None
        if risky:
            self.fire("unsafe-start", {"node": x.name, "view_of_peer": view, "peer_role": y_role,
                                       "peer_runs": dict(y.running), **({"group": group} if group else {})}, limit)
        self.start_verdict[(x.name, group)] = (now, f"limit:{limit}" if limit else ("violation" if risky else ""))

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

    # ------------------------------------------------------------------ 5. the survivor's own groups
    def _failback_race(self, node, job, now: float) -> str | None:
        """A failback stop decided while the peer still looked up, less than deadtime after
        it died: no heartbeat could have told the survivor yet (found by seed 26283028)."""
        fsm = node.daemon.fsm if node.daemon is not None else None
        if job.reason != "failback" or fsm is None or fsm.peer.state == "dead":
            return None
        return "failback-race" if now - self.down_at < self.sim.sc.deadtime else None

    def on_power_off(self, node) -> None:
        """*node* goes off: the groups its peer runs whole (and is active in) must keep
        running there while it is off."""
        y = self.sim.peer_of(node)
        if not y.powered or self.down is not None:
            self.down, self.kept = None, ()  # both off: nobody survives
            return
        yd = y.daemon
        fsm = yd.fsm if yd is not None else None
        self.down, self.down_at = node.name, self.sim.now
        self.kept = tuple(gid for gid, ids in self.sim.sc.chains
                          if fsm is not None and all(y.running.get(r) == HASYNC for r in ids) and _group_fsm(fsm, gid).role == "active")

    def on_power_on(self, node) -> None:
        if node.name == self.down:
            self.down, self.kept = None, ()

    # ------------------------------------------------------------------ 3. liveness
    def clean(self) -> bool:
        """Per group: one node runs the whole group and is active in it, the other runs
        none of it and is standby, each sees the other up in that role, nothing else
        under way."""
        a, b = self.sim.node_list
        da, db = a.daemon, b.daemon
        if da is None or db is None or a.frozen or b.frozen or da.leaving or db.leaving:
            return False
        if set(a.running) & set(b.running):
            return False
        for gid, ids in self.sim.sc.chains:
            if all(r in a.running for r in ids) and not any(r in b.running for r in ids):
                act, stb = da, db
            elif all(r in b.running for r in ids) and not any(r in a.running for r in ids):
                act, stb = db, da
            else:
                return False
            fa, fs = _group_fsm(act.fsm, gid), _group_fsm(stb.fsm, gid)
            if not (fa.role == "active" and fs.role == "standby" and len(fa.owned) == len(ids) and not fs.owned
                    and fa.peer.state == "up" and fs.peer.state == "up" and fs.peer.role == "active"
                    and fa.peer.role == "standby" and fs.job is None and not stb.workers[gid].busy
                    and (fa.job is None or fa.job.kind == "monitor")):
                return False
        return len(a.running) + len(b.running) == len(self.sim.sc.resources)

    def liveness_failed(self, healed_at: float) -> str | None:
        """Fire the liveness audit; returns the named limit it falls under, if any."""
        sim = self.sim
        limit = None
        fsms = [n.daemon.fsm for n in sim.node_list if n.daemon is not None and n.daemon.fsm is not None]
        if any(n.late_strays for n in sim.node_list):
            limit = "late-stray"
        elif sim.sc.on_stop_failure == "block" and any(f.role == "stop-failed" for f in fsms):
            limit = "stop-failed-block"
        elif len(fsms) == 2 and any(all(_group_fsm(f, gid).role == "standby" and {"failed", "standby"} & set(flag_names(_group_fsm(f, gid).flags()))
                                        for f in fsms) for gid, _ in sim.sc.chains):
            limit = "no-eligible-node"
        self.fire("liveness", {"healed_at": round(healed_at, 4), "bound_s": round(sim.sc.liveness_bound_s, 4)}, limit)
        return limit

    def operator_unanswered(self) -> None:
        """At a clean state: an operator command a running daemon accepted more than the
        liveness bound ago has had no result (the control socket would still keep its
        client waiting: `hasync takeover` at 3 a.m. that never says done or not done)."""
        sim = self.sim
        for n in sim.node_list:
            d = n.daemon
            if d is None or d.fsm is None:
                continue
            for c in d.accepted:
                if sim.now - c[2] > sim.sc.liveness_bound_s and d.verdict(c) is None:
                    self.fire("operator-unanswered", {"node": n.name, "command": c[0], "group": c[1],
                                                      "accepted_s_ago": round(sim.now - c[2], 4)})
                    d.accepted.remove(c)  # once per command
                    return

    # ------------------------------------------------------------------ 4. the FSM itself
    def fsm_error(self, node, where: str, exc: BaseException | None) -> None:
        import traceback

        tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.fire("fsm-error", {"node": node.name, "error": where, "traceback": tb[-4000:]})


def _group_fsm(fsm, gid: str):
    """The FSM of group *gid* (a GroupMembership's member), or the FSM itself (one chain)."""
    groups = getattr(fsm, "groups", None)
    return groups[gid] if groups and gid in groups else fsm


def _mixed(x: dict, y: dict, ids: tuple[str, ...]) -> bool:
    """A piece of this chain started by a fault runs on x while y runs hasync's pieces of it."""
    return any(x.get(r) == FAULT for r in ids) and any(y.get(r) == HASYNC for r in ids)
