"""Membership and ownership of the chain: a pure state machine, ``now`` passed in.

(Over 400 lines on purpose: it is ONE state machine whose rules call each other --
inputs, _decide, _acquire, the job results -- and reading them in one place is how they
are checked. Its data types are in membership_data.py, re-exported here.)

The daemon feeds it everything that happens (valid packets, decode errors, the ticks of
its monotonic clock, the results of the jobs it ran, operator commands) and executes the
actions it returns (send a heartbeat now, run a job, log/record an event). Nothing in
here touches a socket, a clock or a process, so every rule below is tested on a fake
clock with fake links (tests/unit/test_failover_membership.py).

Timing, as heartbeat defines it:
- every ``keepalive`` the daemon sends one packet on every link;
- a gap longer than ``warntime`` is a *late heartbeat* (warned once per gap, and again
  with the measured interval when the packet finally arrives);
- the peer is *dead* only when no valid packet arrived on ANY link for ``deadtime``;
  each link is tracked on its own and a link silent for ``deadtime`` while the peer is
  alive elsewhere is reported *dead* (no failover);
- at start, a peer never heard from is declared dead after ``initdead``.

What is believed (issue 12 item 1): only *fresh* packets, whose echo is this node's
generation (made after this daemon started). An authentic stale one (a replay, a peer
that has not heard us since our restart, a version 1 node) only says "alive": the peer
is UNVERIFIED, may hold the chain, and nothing moves until it echoes us (we answer at
once). Generations never go back, across restarts too (``Persisted``).

Start-up: probe what runs here; nothing -> standby; the whole chain -> adopted with the
persisted epoch; a part -> stopped, never completed; a probe that cannot tell -> still
probing (a holding role), probed again. A second probe once any agent of a killed
predecessor must be over.

Who runs the chain (the rules both nodes compute from the same packets):
1. Both up, nobody holds it: the *eligible* node first in the preference order
   (``preferred_node``, then the [[node]] order) starts it. A node is not eligible while
   it is in operator standby (``hasync standby``) or after the chain failed on it.
2. Both up, one holds it: it stays there, unless ``auto_failback`` is on and the holder is
   not the preferred node while the preferred node is up, eligible and idle: then the
   holder stops the chain (in reverse) and the preferred node starts it.
3. Both hold it (the peer returned after a partition): the node with the higher takeover
   *epoch* keeps it (it took over last: the survivor); equal epochs -> the preferred
   node keeps it. The other node stops its chain. This is heartbeat's "a node that
   returns after a partition gives up its resources". (While the two nodes' settings
   differ -- the digest in the packets -- "preferred" means first by node name, and
   auto_failback moves nothing: issue 12 item 5.)
4. The peer died silently: ping tiebreak (decided afresh for every death), then
   fencing per ``[fencing].mode`` (required: no takeover without a successful fence;
   optional: try, then go on; off: go on with a loud warning), then start. If the peer
   was last seen unable to stop its resources (``stop-failed``), a successful fence is
   needed whatever the mode: the peer may still hold them. A peer that left cleanly
   (``leaving`` with nothing owned) needs no fence.
5. Start failure: the chain was stopped again in reverse; this node marks itself
   *failed* (not eligible) so the peer takes it. Stop failure: role ``stop-failed``
   (the peer never starts while we may hold resources) and escalation per
   ``[fencing].on_stop_failure``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hasync.failover import membership_operator, membership_status
from hasync.failover.membership_data import (  # noqa: F401 (the FSM's public names, re-exported)
    Action,
    Event,
    FsmConfig,
    Job,
    JobResult,
    LinkState,
    Monitor,
    PeerState,
    Persist,
    Persisted,
    Send,
    fsm_config,
    preference_order,
    settings_digest,
)
from hasync.failover.membership_operator import CLEANUP
from hasync.failover.operator import Settings
from hasync.failover.packets import (
    F_FAILED,
    F_LEAVING,
    F_MAINTENANCE,
    F_OPERATOR_STANDBY,
    F_REQ_OPERATOR,
    F_SETTINGS_NEW,
    F_STANDBY,
    REQ_NONE,
    REQ_RELEASE,
    REQ_TAKE,
    Packet,
    ReplayGuard,
    flag_names,
)
from hasync.failover.states import (
    ALIVE,
    HOLDING_ROLES,
    Gate,
    JobKind,
    JobOutcome,
    Level,
    PeerStatus,
    Role,
)

# For on_repeat (every heartbeat received) and next_deadline (most wake-ups), on CPython
# 3.11: the members are bound once (reading one off its enum class goes through
# EnumType.__getattr__, ~0.25 us), and the usual case is tested by identity first (a
# StrEnum is not an exact str, so `==` misses the interpreter's str fast path: ~40 ns,
# measured on on_repeat); `==` still answers for a plain string.
_UP, _UNVERIFIED, _UNKNOWN, _ACTIVE = PeerStatus.UP, PeerStatus.UNVERIFIED, PeerStatus.UNKNOWN, Role.ACTIVE
PROBE_ATTEMPTS = 3  # a start-up probe that cannot tell this often: stop what may run here
REPROBE = "re-probe"  # the reason of the second probe (a killed daemon's agents have finished)


class Membership:
    """The pure core of the failover daemon. All methods take ``now`` (monotonic seconds)."""

    def __init__(self, cfg: FsmConfig, now: float, generation: int = 1, persisted: Persisted | None = None):
        self.cfg = cfg
        self.t0 = now
        self.generation = generation
        self.role: Role = Role.PROBING  # until begin()'s probe says what already runs here
        self.owned: list[str] = []
        self.known_stopped = False
        # what the daemon kept in its state directory: the epoch this node last took (a
        # restart that adopts the running chain keeps its claim) and the peer's highest
        # generation (nothing lower is accepted again, across restarts too)
        self.persisted = persisted or Persisted()
        self.epoch = self.persisted.epoch
        self.digest = settings_digest(cfg)  # in every packet: the peer compares it with its own
        self.standby_req = False  # a handover: not eligible while the peer is up (in memory)
        # how many times a handover was asked for, and the count when the running start
        # began: one asked for during a start is honoured once the start is over
        self.standby_asks = 0
        self.standby_asks_at_start = 0
        # `hasync takeover` under way until this node runs the chain: a peer that could not
        # be asked (not heard yet, looked dead) or forgot (its daemon restarted before it
        # released) is asked again, and is asked to stand by once the chain runs here
        self.takeover_wanted = False
        self.takeover_overridden = False  # ... and one the peer's later takeover replaced
        self.takeover_done = False  # ... and one that ran the chain here (latched: a later move does not undo the answer)
        self.failed = False
        self.leaving = False
        # the operator's settings (operator.py), kept in the state directory
        self.settings = Settings(self.persisted.maintenance, self.persisted.stopped)
        self.settings_new = self.persisted.settings_new
        self.operator_standby = self.persisted.operator_standby
        self.request_operator = False  # our release request is `hasync standby PEER` (F_REQ_OPERATOR)
        self.resume_probe = False  # maintenance is over: probe again before anything else
        self.cleanup_wanted: str | None = None  # `hasync cleanup [RESOURCE]` waiting for the job slot
        self.cleanup_resource = ""
        self.cleanup_ok: bool | None = None  # the last cleanup's verdict (None: under way / none)
        self.peer = PeerState(cfg.peer)
        self.links = {n: LinkState(n, window_start=now) for n in cfg.links}
        self.guard = ReplayGuard()
        if self.persisted.peer_generation:
            self.guard.generation[cfg.peer] = self.persisted.peer_generation
        self.job: Job | None = None
        # the start-up probe: retried while it cannot tell; done a second time once the
        # agents a killed predecessor may have left running have finished
        self.probe_failures = 0
        self.probe_retry_at: float | None = None
        self.reprobe_at: float | None = None
        self.refused_generations: set[int] = set()  # lower generations already reported
        self.refused_at: float | None = None
        self._ids = itertools.count(1)
        # acquisition gates (peer dead, we are standby)
        self.gate: Gate = Gate.NONE
        self.gate_retry_at: float | None = None
        self.ping_ok_at: float | None = None
        self.peer_fenced = False
        # several groups (membership_groups): the peer is stop-failed in another group, so it
        # may still hold resources whatever this group's record says (rule 5 for the node)
        self.peer_stop_failed_elsewhere = False
        self.gate_passed_ping = False
        self.fence_failures = 0
        self.fenced_until: float | None = None
        # requests we make of the peer
        self.request = REQ_NONE
        self.request_id = 0
        self._req_counter = 0
        # monitors
        self.monitors = dict(cfg.monitors)
        self.next_monitor: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self.warnings: dict[str, str] = {}
        self.last_transition: float = now
        self.counters = {"false_dead": 0, "takeovers": 0, "releases": 0, "late": 0}
        if cfg.fencing_mode == "off":
            self.warnings["fencing"] = "fencing is off: shared data is not protected (a node that only looks dead may still write)"
        membership_operator.operator_warnings(self)

    def begin(self, now: float) -> list[Action]:
        """Start-up: probe what already runs here (a restarted daemon adopts a running chain)."""
        if not self.cfg.resources:
            self.role = Role.STANDBY
            return [Send()]
        kept: list[Action] = [Event("maintenance", "maintenance mode (kept in the state directory): the chain is probed, nothing is "
                                     "started, stopped, restarted or fenced until `hasync maintenance off`", Level.WARN)] if self.settings.maintenance else []
        if self.settings.stopped:
            kept.append(Event("stopped", "the chain is stopped on purpose (`hasync stop`, kept in the state directory): "
                                         "it runs nowhere until `hasync start`", Level.WARN))
        if self.operator_standby:
            kept.append(Event("standby", "this node is in operator standby (kept in the state directory): it does not run "
                                         "the chain until `hasync online`", Level.WARN))
        if self.cfg.agent_timeout > 0:
            # KillMode=process: an agent of a daemon that was killed runs on (a stop that
            # takes a piece down after this probe saw it up): look again once it must be over
            self.reprobe_at = now + self.cfg.agent_timeout + self.cfg.probe_retry
        return kept + [Event("probe", "probing the chain's resources", Level.INFO), self._new_job(JobKind.PROBE, reason="start-up"), Send()]

    # ------------------------------------------------------------------ helpers
    def _new_job(self, kind: JobKind, resource: str = "", reason: str = "") -> Job:
        self.job = Job(next(self._ids), kind, resource, reason)
        return self.job

    def _set_role(self, role: Role, out: list, why: str = "") -> None:
        if role != self.role:
            old = self.role
            self.role = role
            out.append(Event("role", f"role {old} -> {role}" + (f" ({why})" if why else ""), Level.INFO, (("from", old), ("to", role))))
            out.append(Send())

    def ask_standby(self) -> None:
        """A handover of the chain was asked for (the peer's takeover, a migrate here)."""
        self.standby_req = True
        self.standby_asks += 1

    def flags(self) -> int:
        f = self.settings.flags()
        if self.standby_req or self.operator_standby:
            f |= F_STANDBY
        if self.operator_standby:
            f |= F_OPERATOR_STANDBY
        if self.failed:
            f |= F_FAILED
        # (in maintenance never: what runs here was not stopped, whatever the last probe saw)
        if self.leaving and self.role == Role.STANDBY and not self.owned and not self.settings.maintenance:
            f |= F_LEAVING
        if self.settings_new:
            f |= F_SETTINGS_NEW
        if self.request == REQ_RELEASE and self.request_operator:
            f |= F_REQ_OPERATOR
        return f

    def packet_fields(self) -> dict:
        """What goes into the next heartbeat (the daemon adds link and sequence)."""
        return {
            "cluster": self.cfg.cluster,
            "node": self.cfg.local,
            "generation": self.generation,
            "role": self.role,
            "owned": tuple(self.owned),
            "flags": self.flags(),
            "epoch": self.epoch,
            "request": self.request,
            "request_id": self.request_id,
            "ack_id": self.peer.handled_request,
            # the peer's generation as accepted here (its packets to us are fresh once
            # they carry our generation in theirs: the same rule on both sides)
            "echo": self.guard.generation.get(self.cfg.peer, 0),
            "digest": self.digest,
        }

    def _persist(self, out: list, **changes) -> None:
        new = replace(self.persisted, **changes)
        if new != self.persisted:
            self.persisted = new
            out.append(Persist(new))

    def agreed(self) -> bool:
        """Both nodes' settings are the same (the peer's digest, from a fresh packet)."""
        return self.peer.digest == self.digest

    def _rank(self, node: str) -> int:
        # settings that differ (issue 12 item 5) may rank the nodes differently on each
        # side: then both rank them by name, the one order they cannot disagree on
        order = self.cfg.order if self.agreed() else tuple(sorted((self.cfg.local, self.cfg.peer)))
        return order.index(node) if node in order else len(order)

    @property
    def preferred(self) -> str:
        return self.cfg.order[0] if self.cfg.order else self.cfg.local

    def _i_win_conflict(self) -> bool:
        if self.epoch != self.peer.epoch:
            return self.epoch > self.peer.epoch
        return self._rank(self.cfg.local) < self._rank(self.cfg.peer)

    # ------------------------------------------------------------------ inputs
    def on_decode_errors(self, link: str, bad_mac: int = 0, malformed: int = 0, garbage_bytes: int = 0) -> None:
        ls = self.links.get(link)
        if ls is None:
            return
        ls.bad_mac += bad_mac
        ls.malformed += malformed
        ls.garbage_bytes += garbage_bytes

    def on_send_error(self, link: str) -> None:
        if link in self.links:
            self.links[link].send_errors += 1

    def on_repeat(self, now: float, link: str, seq: int) -> list[Action] | None:
        """A packet (valid MAC) identical to the last one accepted on *link* but for its
        sequence number: the daemon's fast path, no parsing. None: use on_packet."""
        ls = self.links.get(link)
        pr = self.peer
        st = pr.state
        # (a repeat of an unverified peer's frame is a sign of life too: nothing it says is used)
        if ls is None or ls.up is not True or (st is not _UP and st is not _UNVERIFIED and st not in ALIVE) or pr.generation <= pr.fenced_generation:
            return None
        key = (pr.name, link)
        last = self.guard.last_seq.get(key)
        if last is None or self.guard.generation.get(pr.name) != pr.generation:
            return None
        if seq <= last:
            ls.replay += 1
            return []
        # the steady state, 100-200 times a second at fast settings: kept lean
        self.guard.last_seq[key] = seq
        if now - ls.window_start >= 10.0:
            self._roll_window(ls, now)
        ls.received += 1
        ls.recent_received += 1
        gap = seq - last - 1
        if gap:
            ls.missed += gap
            ls.recent_missed += gap
        if ls.last_seen is None or now > ls.last_seen:
            ls.last_seen = now
        prev = pr.last_seen
        pr.late_warned = False
        if prev is None or now > prev:
            pr.last_seen = now
        if prev is not None and now - prev > self.cfg.warntime:
            gap_s = now - prev
            return [Event("late", f"late heartbeat from {pr.name}: {gap_s * 1000:.0f} ms after the previous one (warntime {self.cfg.warntime * 1000:.0f} ms)", Level.WARN, (("gap_s", round(gap_s, 4)),))]
        return []

    def on_packet(self, now: float, link: str, pkt: Packet) -> list[Action]:
        """A packet with a valid MAC arrived on *link*."""
        out: list[Action] = []
        ls = self.links.get(link)
        if ls is None:
            return out
        if pkt.cluster != self.cfg.cluster or pkt.link != link:
            ls.foreign += 1
            return out
        if pkt.node == self.cfg.local:
            return out  # our own multicast/broadcast looping back
        if pkt.node != self.cfg.peer:
            ls.foreign += 1
            return out
        highest = self.guard.generation.get(pkt.node, 0)
        why = self.guard.check(pkt)
        if why == "replay":
            ls.replay += 1
            return out
        if why == "old-generation":
            # never accepted again, whatever the peer's state: a replayed old packet, or a
            # peer that lost its state and whose clock went back (the operator says so:
            # forget_peer)
            ls.old_generation += 1
            return self._refuse_generation(now, pkt, highest)
        if pkt.generation > self.persisted.peer_generation:
            self._persist(out, peer_generation=pkt.generation)
        if pkt.generation <= self.peer.fenced_generation:
            if self.fenced_until is not None and now < self.fenced_until:
                ls.old_generation += 1  # sent before we fenced it, still in flight
                return out
            out.append(Event("fence", f"{pkt.node} is still alive after a successful fence (generation {pkt.generation}): the fence did not work", Level.ERROR))
            self.peer.fenced_generation = -1
        self._roll_window(ls, now)
        ls.received += 1
        ls.recent_received += 1
        ls.missed += self.guard.last_gap
        ls.recent_missed += self.guard.last_gap
        ls.last_seen = max(ls.last_seen or now, now)
        if ls.up is False:
            out.append(Event("link-up", f"link {link}: heartbeats from {pkt.node} again", Level.INFO, (("link", link),)))
        ls.up = True
        self.warnings.pop(f"link:{link}", None)
        if pkt.echo != self.generation:
            return out + self._not_fresh(now, ls, pkt)

        # a fresh packet: made after this daemon started (it echoes our generation): believed
        pr = self.peer
        leaving = bool(pkt.flags & F_LEAVING) and not pkt.owned and pkt.role not in HOLDING_ROLES
        if leaving and pr.state == PeerStatus.LEFT:
            pr.last_seen = now
            return out  # the repeats of its goodbye
        if pr.state == PeerStatus.UP and pr.last_seen is not None:
            gap = now - pr.last_seen
            if gap > self.cfg.warntime:
                out.append(Event("late", f"late heartbeat from {pr.name}: {gap * 1000:.0f} ms after the previous one (warntime {self.cfg.warntime * 1000:.0f} ms)", Level.WARN, (("gap_s", round(gap, 4)),)))
        pr.late_warned = False
        if (
            pr.state == PeerStatus.UP
            and pkt.generation == pr.generation
            and pkt.role == pr.role
            and pkt.owned == pr.owned
            and pkt.flags == pr.flags
            and pkt.epoch == pr.epoch
            and pkt.request_id == pr.request_id
            and pkt.ack_id == pr.ack_id
            and pkt.digest == pr.digest
            and not out
        ):
            pr.last_seen = max(pr.last_seen or now, now)  # the common case: nothing new, nothing to decide
            return out
        if pr.generation and pkt.generation > pr.generation:
            out.append(Event("peer-restart", f"{pr.name} restarted (generation {pr.generation} -> {pkt.generation})", Level.INFO))
            pr.handled_request = 0
        if pr.state != PeerStatus.UP and not leaving:
            if pr.state in (PeerStatus.DEAD, PeerStatus.LEFT):
                out.append(Event("peer-up", f"{pr.name} is back (role {pkt.role}, owns {', '.join(pkt.owned) or 'nothing'})", Level.WARN if pkt.owned else Level.INFO))
                if pr.state == PeerStatus.DEAD and pkt.generation == pr.generation:
                    self.counters["false_dead"] += 1
            elif pr.state == PeerStatus.UNVERIFIED:
                out.append(Event("peer-up", f"{pr.name} is up and verified (role {pkt.role}, owns {', '.join(pkt.owned) or 'nothing'})", Level.INFO))
            else:
                out.append(Event("peer-up", f"{pr.name} is up (role {pkt.role})", Level.INFO))
            pr.state = PeerStatus.UP
            self.gate_passed_ping = False  # the tiebreak is decided afresh for its next death
            self.warnings.pop("peer", None)
            out.append(Send())
        pr.last_seen = max(pr.last_seen or now, now)
        pr.generation = pkt.generation
        pr.role = pkt.role
        pr.owned = pkt.owned
        pr.flags = pkt.flags
        pr.epoch = pkt.epoch
        pr.request, pr.request_id, pr.ack_id = pkt.request, pkt.request_id, pkt.ack_id
        if pkt.digest != pr.digest:
            pr.digest = pkt.digest
            out += self._compare_settings()

        # the peer leaves cleanly: it released everything, no fence needed
        if leaving:
            pr.state = PeerStatus.LEFT
            pr.died_at = now
            pr.dead_role, pr.dead_owned = pkt.role, ()
            self.gate_passed_ping = False
            out.append(Event("detect", f"{pr.name} leaves cleanly (released everything)", Level.INFO, (("reason", "peer-left"),)))

        out += membership_operator.merge_settings(self, now)
        # requests the peer makes of us
        if pkt.request != REQ_NONE and pkt.request_id and pkt.request_id != pr.handled_request:
            pr.handled_request = pkt.request_id
            if pkt.request == REQ_RELEASE and pkt.flags & F_REQ_OPERATOR:
                out.append(Event("request", f"{pr.name} puts this node in operator standby (hasync standby {self.cfg.local} there): "
                                            "it does not run the chain until `hasync online`", Level.WARN))
                out += membership_operator.set_operator_standby(self, True)
            elif pkt.request == REQ_RELEASE:
                self.ask_standby()
                # a takeover of ours, under way or done, is over: the peer's later one wins
                self.takeover_wanted = False
                self.takeover_overridden = True
                out.append(Event("request", f"{pr.name} asks for the chain (hasync takeover there): going standby", Level.INFO))
            elif pkt.request == REQ_TAKE:
                self.standby_req = False
                self.failed = False
                out += membership_operator.set_operator_standby(self, False)
                out.append(Event("request", f"{pr.name} hands the chain over or puts this node online (hasync standby or "
                                            f"online there): this node may run the chain", Level.INFO))
            out.append(Send())
        # our own request acknowledged
        if self.request != REQ_NONE and pkt.ack_id == self.request_id:
            self.request = REQ_NONE
            self.request_operator = False
        out += self._decide(now)
        return out

    def frozen(self) -> bool:
        """Maintenance here or on the peer: nothing moves (the peer's copy counts until it
        takes ours: a node that left maintenance waits for the other)."""
        return self.settings.maintenance or (self.peer.state == PeerStatus.UP and bool(self.peer.flags & F_MAINTENANCE))

    def _not_fresh(self, now: float, ls: LinkState, pkt: Packet) -> list[Action]:
        """An authentic packet that does not echo our generation: it may have been made
        before this daemon started (a replay, or the peer has not heard us since), or the
        peer runs a version before the echo. A sign of life, never a statement: the peer
        is alive and may hold the chain -- no takeover, no fence while we hear it, and it
        is never believed to be idle or to have left. We answer at once: our heartbeat
        carries its generation, its next ones carry ours (one round trip)."""
        pr = self.peer
        pr.late_warned = False
        if pr.state == PeerStatus.UP and pkt.generation == pr.generation:
            ls.stale += 1  # its believed generation, sent before we started: proves nothing new
            pr.last_seen = max(pr.last_seen or now, now)
            return []
        out: list[Action] = []
        if pkt.generation > pr.generation:
            if pr.generation:
                out.append(Event("peer-restart", f"{pr.name} restarted (generation {pr.generation} -> {pkt.generation})", Level.INFO))
            pr.generation = pkt.generation
            pr.handled_request = 0
        if pr.state != PeerStatus.UNVERIFIED:
            v1 = " (its packets are format version 1: a node not upgraded yet)" if pkt.version == 1 else ""
            msg = (f"{pr.name} is alive (generation {pkt.generation}) but its packets do not echo this node's generation "
                   f"yet{v1}: what it says is not believed, it may hold the chain: no takeover and no fence while it talks")
            out.append(Event("peer-up", msg, Level.WARN, (("fresh", False),)))
            self.warnings["peer"] = msg
            pr.state = PeerStatus.UNVERIFIED
            self.gate_passed_ping = False
            out.append(Send())
        pr.last_seen = max(pr.last_seen or now, now)
        return out + self._decide(now)

    def _refuse_generation(self, now: float, pkt: Packet, highest: int) -> list[Action]:
        """A generation lower than the highest ever accepted from the peer: refused, loudly
        (once per generation), with what to do if the peer was really reinstalled."""
        self.refused_at = now
        if pkt.generation in self.refused_generations:
            return []
        if len(self.refused_generations) > 64:
            self.refused_generations.clear()
        self.refused_generations.add(pkt.generation)
        msg = (f"{pkt.node} sent generation {pkt.generation}, lower than {highest}, the highest ever accepted from it: "
               f"refused. Either an old packet was replayed, or {pkt.node} lost its state directory and its clock went "
               f"back: if {pkt.node} was reinstalled, run `hasync failover forget-peer {pkt.node}` on {self.cfg.local}")
        self.warnings["generation"] = msg
        return [Event("old-generation", msg, Level.ERROR, (("generation", pkt.generation), ("highest", highest)))]

    def forget_peer(self, now: float) -> list[Action]:
        """The operator says the peer was reinstalled: its generations may start lower."""
        self.guard.generation.pop(self.cfg.peer, None)
        for key in [k for k in self.guard.last_seq if k[0] == self.cfg.peer]:
            del self.guard.last_seq[key]
        self.peer.generation = 0
        self.peer.fenced_generation = -1
        self.refused_generations.clear()
        self.warnings.pop("generation", None)
        out: list[Action] = [Event("command", f"operator: forget-peer {self.cfg.peer}: its next generation is accepted, whatever it is", Level.WARN)]
        self._persist(out, peer_generation=0)
        return out

    def _compare_settings(self) -> list[Action]:
        pr = self.peer
        if self.agreed():
            if self.warnings.pop("config", None):
                return [Event("config", f"{pr.name}'s settings agree with this node's again", Level.INFO)]
            return []
        msg = (f"the nodes' settings differ (digest {self.digest:016x} here, {pr.digest:016x} on {pr.name}): compare "
               "preferred_node, the [[node]] order, the chain's [[resource]] ids and their order, auto_failback and "
               "[fencing].mode on both nodes; until they agree, ties go by node name and auto_failback is off")
        self.warnings["config"] = msg
        return [Event("config", msg, Level.WARN)]

    def _roll_window(self, ls: LinkState, now: float, window: float = 10.0) -> None:
        if now - ls.window_start >= window:
            ls.prev_received, ls.prev_missed = ls.recent_received, ls.recent_missed
            ls.recent_received = ls.recent_missed = 0
            ls.window_start = now

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        c = self.cfg
        pr = self.peer
        # per-link liveness
        for ls in self.links.values():
            ref = ls.last_seen if ls.last_seen is not None else self.t0
            limit = c.deadtime if ls.last_seen is not None else c.initdead
            if now - ref > limit and ls.up is not False:
                alive = [n for n, o in self.links.items() if o.up and o.last_seen is not None and now - o.last_seen <= c.deadtime]
                if pr.state == PeerStatus.UP and alive:
                    msg = f"link {ls.name} dead: nothing from {pr.name} for {now - ref:.2f}s ({pr.name} still alive via {', '.join(alive)})"
                    self.warnings[f"link:{ls.name}"] = f"link {ls.name} is dead ({pr.name} alive via {', '.join(alive)})"
                    out.append(Event("link-dead", msg, Level.WARN, (("link", ls.name),)))
                elif ls.up is True:
                    out.append(Event("link-dead", f"link {ls.name} dead", Level.WARN, (("link", ls.name),)))
                ls.up = False
        # the peer
        if self.refused_at is not None and now - self.refused_at > max(10.0, 2 * c.deadtime):
            self.refused_at = None  # no lower generation for a while: the warning goes
            self.warnings.pop("generation", None)
        if pr.state in ALIVE and pr.last_seen is not None:
            gap = now - pr.last_seen
            if gap > c.deadtime:
                out += self._peer_dead(now, f"no heartbeat on any link for {gap * 1000:.0f} ms (deadtime {c.deadtime * 1000:.0f} ms)")
            elif gap > c.warntime and not pr.late_warned:
                pr.late_warned = True
                self.counters["late"] += 1
                out.append(Event("late", f"heartbeat from {pr.name} is late: {gap * 1000:.0f} ms (warntime {c.warntime * 1000:.0f} ms)", Level.WARN))
        elif pr.state == PeerStatus.UNKNOWN and now - self.t0 > c.initdead:
            out += self._peer_dead(now, f"never heard from {pr.name} within initdead ({c.initdead:g}s)")
        out += self._decide(now)
        return out

    def _peer_dead(self, now: float, why: str) -> list[Action]:
        pr = self.peer
        pr.dead_role, pr.dead_owned = pr.role, pr.owned
        pr.state = PeerStatus.DEAD
        pr.died_at = now
        self.peer_fenced = False
        self.fence_failures = 0
        self.gate = Gate.NONE
        self.gate_retry_at = None
        self.gate_passed_ping = False  # issue 12 item 4: the tiebreak is decided afresh for every death
        self.failed = False  # availability first: try the chain again now that nobody else can
        for k in [k for k in self.warnings if k.startswith("link:")]:
            del self.warnings[k]  # every link is silent because the peer is: not a link problem
        self.warnings["peer"] = f"{pr.name} is dead"
        return [Event("detect", f"{pr.name} declared dead: {why}", Level.WARN, (("reason", why), ("peer_role", pr.dead_role))), Send()]

    # ------------------------------------------------------------------ decisions
    def _decide(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self.job is not None:
            return out
        if self.cleanup_wanted is not None and self.role != Role.PROBING:
            return membership_operator.start_cleanup(self, now)  # read-only: also in maintenance
        if self.resume_probe and not self.leaving and not self.frozen():
            return membership_operator.resume(self, now)  # maintenance is over: probe as at start-up
        if self.role == Role.PROBING:
            return self._probing(now)
        if self.frozen():  # maintenance: the packets and the status go on, nothing else
            return self._abort_gate("maintenance mode") if self.gate else out
        if self.leaving:
            self.reprobe_at = None
            if self.role != Role.STOP_FAILED and (self.owned or self.role in (Role.ACTIVE, Role.STARTING, Role.ACQUIRING)):
                out += self._start_job(JobKind.STOP, now, reason="shutdown")
            return out
        pr = self.peer
        if self.role == Role.STOP_FAILED:
            return out
        if self.reprobe_at is not None and now >= self.reprobe_at:
            if self.role in (Role.ACTIVE, Role.STANDBY) and not self.gate:
                self.reprobe_at = None
                out.append(Event("probe", "probing the chain again: any agent a killed daemon left running is over by now", Level.INFO))
                out.append(self._new_job(JobKind.PROBE, reason=REPROBE))
                return out
            self.reprobe_at = now + self.cfg.probe_retry  # not now (a takeover under way): later
        if self.settings.stopped:  # hasync stop: nothing starts, whatever runs here stops
            if self.gate:
                out += self._abort_gate("the chain is stopped on purpose")
            if self.owned or self.role in (Role.ACTIVE, Role.STARTING):
                out += self._start_job(JobKind.STOP, now, reason="hasync stop: the chain is stopped on purpose")
            return out
        if pr.state == PeerStatus.UP:
            out += self._with_peer_up(now)
        elif pr.state == PeerStatus.UNVERIFIED:
            # alive, what it says unknown: it may hold the chain. Nothing moves (no
            # start, no fence, no stop for a conflict we cannot see) until it echoes us.
            if self.gate:
                out += self._abort_gate()
        elif pr.state in (PeerStatus.DEAD, PeerStatus.LEFT):
            if self.role in (Role.STANDBY, Role.ACQUIRING):
                out += self._acquire(now)
        # (unknown: within initdead)
        if self.role == Role.ACTIVE and self.job is None:
            out += self._monitors(now)  # whatever else was decided: next_deadline counts on it
        return out

    def _abort_gate(self, why: str = "") -> list[Action]:
        why = why or f"{self.peer.name} is alive again"
        out: list[Action] = [Event("abort", f"{why}: takeover abandoned", Level.INFO)]
        self.gate = Gate.NONE
        self.gate_retry_at = None
        self._set_role(Role.STANDBY, out, why)
        return out

    def _with_peer_up(self, now: float) -> list[Action]:
        """Both up, the peer's state verified: rules 1-3 of the module's docstring."""
        out: list[Action] = []
        pr = self.peer
        if self.gate:
            out += self._abort_gate()
        if self.role == Role.ACTIVE:
            if pr.holds and pr.role in (Role.STARTING, Role.ACTIVE):
                if not self._i_win_conflict():
                    self.counters["releases"] += 1
                    out.append(Event("conflict", f"{pr.name} also holds the chain (epoch {pr.epoch} vs ours {self.epoch}): it keeps it, we stop ours", Level.WARN))
                    out += self._start_job(JobKind.STOP, now, reason="conflict")
                return out  # we keep it: the peer stops its own
            if self.takeover_wanted and self.request == REQ_NONE:
                # our takeover is done; a peer that did not release by it (it looked dead,
                # or restarted) is asked to stand by, as one asked at the time would be:
                # an auto_failback must not undo the operator's takeover at once
                self.takeover_wanted = False
                self.takeover_done = True
                if not pr.flags & F_STANDBY:
                    self._request(REQ_RELEASE)
                    out.append(Send())
            if self.standby_req or self.operator_standby:
                out += self._start_job(JobKind.STOP, now, reason="standby")
            elif (
                self.cfg.auto_failback
                and self.agreed()  # settings that differ: no preference-driven moves
                and self.cfg.local != self.preferred
                and pr.name == self.preferred
                and pr.eligible
                and pr.role == Role.STANDBY
                and not pr.holds
                and self.request == REQ_NONE  # (what the peer says predates our request)
            ):
                out.append(Event("failback", f"auto_failback: {pr.name} is the preferred node and is up: handing the chain back", Level.INFO))
                out += self._start_job(JobKind.STOP, now, reason="failback")
            return out
        # A request of ours the peer has not acknowledged yet (takeover's release, standby
        # or online of the peer): its last packet predates it, so "the peer is standby"
        # may already be false -- it may be starting on what it knew of us before (found
        # by the long fsm run, seed 2863881429: `hasync takeover` on a node the operator
        # had just put in standby started the chain while the peer, released by that
        # standby, was starting it). Its answer carries its role as of our request.
        if (self.takeover_wanted and self.role == Role.STANDBY and self.request == REQ_NONE and not self.failed
                and not pr.flags & F_STANDBY):
            # our takeover: the peer has not released (it was not asked, or its daemon
            # restarted since and forgot): ask it (again)
            self._request(REQ_RELEASE)
            out.append(Send())
            out.append(Event("request", f"asking {pr.name} for the chain (hasync takeover here; it had not released)", Level.INFO))
            return out
        if (self.role == Role.STANDBY and not pr.holds and pr.role == Role.STANDBY and self.request == REQ_NONE
                and self._should_start()):
            out += self._start_job(JobKind.START, now, reason="both up, chain idle: ours by preference" if pr.eligible else f"{pr.name} is not eligible ({', '.join(flag_names(pr.flags))})")
        return out

    def _probing(self, now: float) -> list[Action]:
        """Start-up, no probe running: one that could not tell is due again (or we leave)."""
        if self.leaving and not self.frozen():
            return self._start_job(JobKind.STOP, now, reason="shutdown while the probe cannot tell")
        if self.probe_retry_at is not None and now >= self.probe_retry_at:
            self.probe_retry_at = None
            return [Event("probe", f"probing the chain's resources again (attempt {self.probe_failures + 1})", Level.INFO),
                    self._new_job(JobKind.PROBE, reason="start-up, again")]
        return []

    def _should_start(self) -> bool:
        if self.failed or self.standby_req or self.operator_standby or self.settings.stopped:
            return False
        if not self.peer.eligible:
            return True
        return self._rank(self.cfg.local) < self._rank(self.cfg.peer)

    def _acquire(self, now: float) -> list[Action]:
        """Peer gone and we hold nothing: ping tiebreak, fencing, then start."""
        out: list[Action] = []
        pr = self.peer
        c = self.cfg
        if self.failed:
            return out  # the chain failed here already during this death of the peer
        if self.operator_standby:  # `hasync standby`: never runs the chain, not even alone (crm node standby)
            if self.gate or self.role == Role.ACQUIRING:
                return self._abort_gate("operator standby")
            self.gate_retry_at = None
            return out
        if self.gate_retry_at is not None and now < self.gate_retry_at:
            return out
        self.gate_retry_at = None
        if pr.state == PeerStatus.LEFT:
            self._set_role(Role.ACQUIRING, out, f"{pr.name} left")
            return out + self._start_job(JobKind.START, now, reason=f"{pr.name} left cleanly")
        if c.ping_configured and not self.gate_passed_ping:
            self.gate = Gate.PING
            out.append(self._new_job(JobKind.PING, reason="tiebreak"))
            return out
        risky = self._peer_risky()
        need_fence = not self.peer_fenced and (c.fencing_mode in ("required", "optional") or risky)
        if need_fence:
            if not c.fence_configured:
                msg = f"{pr.name} may still hold resources (it could not stop them) and no fence command is configured: waiting for it to come back, or for an operator"
                if self.warnings.get("fence") != msg:
                    self.warnings["fence"] = msg
                    out.append(Event("fence", msg, Level.ERROR))
                self.gate = Gate.WAIT_PEER
                return out
            if pr.dead_role not in HOLDING_ROLES and not pr.dead_owned and pr.generation == 0 and self._startup_delay_pending(now):
                # both nodes may be starting at once without a link: the preferred node fences first
                self.gate = Gate.WAIT_FENCE
                self.gate_retry_at = self.t0 + c.initdead + self._startup_fence_delay()
                return out
            self._set_role(Role.ACQUIRING, out, f"{pr.name} dead")
            self.gate = Gate.FENCE
            out.append(Event("fence", f"fencing {pr.name} before taking over", Level.INFO))
            out.append(self._new_job(JobKind.FENCE, reason="peer dead"))
            return out
        if c.fencing_mode == "off" and not self.peer_fenced:
            out.append(Event("fence", "fencing is off: taking over WITHOUT fencing; shared data is not protected", Level.ERROR))
        self._set_role(Role.ACQUIRING, out, f"{pr.name} dead")
        self.counters["takeovers"] += 1
        return out + self._start_job(JobKind.START, now, reason=f"{pr.name} dead")

    def _peer_risky(self) -> bool:
        """The dead peer may still hold resources: it was stop-failed (in any group)."""
        return self.peer.dead_role == Role.STOP_FAILED or self.peer_stop_failed_elsewhere

    def _startup_fence_delay(self) -> float:
        if self.cfg.local == (self.cfg.fence_first or self.preferred):
            return 0.0
        d = self.cfg.startup_fence_delay
        return self.cfg.deadtime if d < 0 else d

    def _startup_delay_pending(self, now: float) -> bool:
        d = self._startup_fence_delay()
        return d > 0 and now < self.t0 + self.cfg.initdead + d

    def _start_job(self, kind: JobKind, now: float, reason: str = "", resource: str = "") -> list[Action]:
        out: list[Action] = []
        if kind in (JobKind.START, JobKind.RESTART):
            self.standby_asks_at_start = self.standby_asks
        if kind == JobKind.START:
            # a start comes only after the peer died, left, or is up and idle (checked by
            # the callers): the new epoch says this node took the chain last
            self.epoch = max(self.epoch, self.peer.epoch) + 1
            self._persist(out, epoch=self.epoch)
            self._set_role(Role.STARTING, out, reason)
        elif kind == JobKind.STOP:
            self._set_role(Role.STOPPING, out, reason)
        job = self._new_job(kind, resource, reason)
        if kind == JobKind.START and self.known_stopped:
            job = self.job = Job(job.id, kind, resource, reason, trusted_stopped=True)
        out.insert(0, Event(kind, f"{kind} chain: {reason}" if kind in (JobKind.START, JobKind.STOP) else f"{kind} {resource}: {reason}", Level.INFO, (("reason", reason),)))
        out.append(job)
        return out

    def _monitors(self, now: float) -> list[Action]:
        for rid, m in self.monitors.items():
            due = self.next_monitor.get(rid)
            if due is None:
                self.next_monitor[rid] = now + m.interval
                continue
            if now >= due:
                return [self._new_job(JobKind.MONITOR, rid, "interval")]
        return []

    # ------------------------------------------------------------------ job results
    def on_progress(self, now: float, resource: str, state: str) -> list[Action]:
        """A chain job started/stopped one resource: keep ``owned`` live for the packets."""
        if state in ("started", "running") and resource not in self.owned:
            self.owned.append(resource)
            self.owned.sort(key=self.cfg.resources.index)
        elif state == "stopped" and resource in self.owned:
            self.owned.remove(resource)
        return [Send()]

    def on_job_done(self, now: float, res: JobResult) -> list[Action]:
        out: list[Action] = []
        job = self.job
        if job is None or job.id != res.job_id:
            return out
        self.job = None
        if res.owned is not None and job.kind != JobKind.PROBE:  # (a probe's: see _probe_done)
            self.owned = [r for r in self.cfg.resources if r in res.owned]
        k = job.kind
        if k == JobKind.PROBE:
            found = [r for r in self.cfg.resources if r in (res.owned or ())]
            if job.reason == CLEANUP:
                out += membership_operator.cleanup_done(self, now, res, found)
            elif job.reason == REPROBE:
                out += self._reprobe_done(now, res, found)
            else:
                out += self._probe_done(now, res, found)
        elif k == JobKind.PING:
            if res.ok:
                self.gate_passed_ping = True
                self.ping_ok_at = now
                self.warnings.pop("ping", None)
            else:
                self.gate_passed_ping = False
                if "ping" not in self.warnings:
                    out.append(Event("ping", "no ping node answers: no takeover (this node may be the isolated one)", Level.WARN))
                self.warnings["ping"] = "no ping node answers: not taking over"
                self.gate_retry_at = now + self.cfg.ping_retry
        elif k == JobKind.FENCE:
            if res.ok:
                self.peer_fenced = True
                self.peer.fenced_generation = self.peer.generation
                self.fenced_until = now + max(2 * self.cfg.deadtime, 1.0)
                if self.peer.state in ALIVE:
                    self.peer.state = PeerStatus.DEAD  # its packets were older than the fence
                self.warnings.pop("fence", None)
                out.append(Event("fence", f"fenced {self.peer.name}", Level.INFO, (("ok", True),)))
            else:
                self.fence_failures += 1
                if self.cfg.fencing_mode == "optional" and not self._peer_risky():
                    out.append(Event("fence", f"fencing {self.peer.name} failed ({res.detail}); mode optional: taking over anyway", Level.WARN, (("ok", False),)))
                    self.peer_fenced = True  # do not try again for this death
                else:
                    msg = f"fencing {self.peer.name} failed ({res.detail}): no takeover until a fence succeeds"
                    self.warnings["fence"] = msg
                    out.append(Event("fence", msg, Level.ERROR, (("ok", False),)))
                    self.gate_retry_at = now + self.cfg.fence_retry
                    self._set_role(Role.STANDBY, out, "fence failed")
        elif k in (JobKind.START, JobKind.RESTART):
            self.known_stopped = False
            if res.ok:
                self._set_role(Role.ACTIVE, out, "chain started")
                # A handover asked for before this start is over (it started anyway: the
                # peer died or was not eligible); one asked for while it ran is not: the
                # peer's `hasync takeover` (or a migrate here) during a start was lost, the
                # chain stayed here and the takeover never finished.
                if self.standby_asks == self.standby_asks_at_start:
                    self.standby_req = False
                self.failed = False
                self.gate = Gate.NONE
                self.gate_passed_ping = False
                if k == JobKind.START:
                    self.restarts = {}
                self.next_monitor = {rid: now + m.interval for rid, m in self.monitors.items()}
                out.append(Event("active", "chain running here", Level.INFO))
            elif res.outcome == JobOutcome.STOP_FAILED:
                out += self._stop_failed(now, res)
            else:
                self.failed = True
                self.known_stopped = True  # rolled back cleanly
                self._set_role(Role.STANDBY, out, f"start failed: {res.detail}")
                out.append(Event("start-failed", f"chain failed to start here ({res.detail}); stopped again, handing it to {self.peer.name}", Level.ERROR))
        elif k == JobKind.STOP:
            if res.ok:
                self._set_role(Role.STANDBY, out, job.reason)
                self.gate_passed_ping = False
                self.known_stopped = True
            else:
                out += self._stop_failed(now, res)
        elif k == JobKind.MONITOR:
            rid = job.resource
            m = self.monitors.get(rid)
            self.next_monitor[rid] = now + (m.interval if m else 0)
            if not res.ok and self.role == Role.ACTIVE and not self.frozen():  # (maintenance: nothing restarts)
                n = self.restarts.get(rid, 0) + 1
                self.restarts[rid] = n
                if m is not None and n <= m.max_restarts:
                    out.append(Event("monitor", f"{rid} failed its monitor ({res.detail}): local restart {n} of {m.max_restarts}", Level.WARN))
                    self._set_role(Role.STARTING, out, f"restart {rid}")
                    out.append(self._new_job(JobKind.RESTART, rid, "monitor failed"))
                else:
                    out.append(Event("monitor", f"{rid} failed its monitor ({res.detail}) after {n - 1} restarts: failing over", Level.ERROR))
                    self.failed = True
                    out += self._start_job(JobKind.STOP, now, reason=f"{rid} keeps failing")
                return out
        elif k == JobKind.FENCE_SELF:
            out.append(Event("escalate", f"self-fence did not take this node down ({res.detail}); still holding resources: operator needed", Level.ERROR))
        out += self._decide(now)
        return out

    def _probe_done(self, now: float, res: JobResult, found: list[str]) -> list[Action]:
        """The start-up probe. A probe that cannot tell is not "nothing runs here": the node
        stays probing (a holding role: the peer does not start) and probes again; after
        PROBE_ATTEMPTS it stops whatever may run here. A part of the chain is never
        completed: it is stopped, and the usual rules decide where the chain runs. The
        whole chain (a daemon restart) is adopted with the persisted epoch: if the peer
        took over since, its epoch is higher and the conflict rule stops ours."""
        out: list[Action] = []
        self.owned = found
        if self.frozen():
            return self._probe_in_maintenance(res, found)
        if not res.ok:
            self.probe_failures += 1
            what = f"the start-up probe cannot tell what runs here ({res.detail})"
            if self.probe_failures < PROBE_ATTEMPTS:
                self.probe_retry_at = now + self.cfg.probe_retry
                self.warnings["probe"] = f"{what}: still probing; {self.peer.name} does not start the chain meanwhile"
                out.append(Event("probe", f"{what}: that is not 'nothing runs here': probing again in {self.cfg.probe_retry:g}s", Level.WARN))
                return out
            self.warnings["probe"] = f"{what}, {self.probe_failures} times: stopping whatever may run here"
            out.append(Event("probe", self.warnings["probe"] + " (in reverse)", Level.ERROR))
            return out + self._start_job(JobKind.STOP, now, reason="the start-up probe cannot tell")
        self.probe_failures = 0
        self.warnings.pop("probe", None)
        if not found:
            self.known_stopped = True
            self._set_role(Role.STANDBY, out, "nothing runs here")
        elif len(found) == len(self.cfg.resources):
            self._set_role(Role.ACTIVE, out, "the whole chain already runs here: adopted")
            self.next_monitor = {rid: now + m.interval for rid, m in self.monitors.items()}
            out.append(Event("adopt", f"the chain already runs here ({', '.join(found)}): adopted (epoch {self.epoch})", Level.WARN))
        else:
            out.append(Event("adopt", f"part of the chain runs here ({', '.join(found)}): stopping it; a partly running "
                                      "chain is never completed at start-up (the usual rules decide where it runs)", Level.WARN))
            out += self._start_job(JobKind.STOP, now, reason="stray pieces of the chain at start-up")
        return out

    def _probe_in_maintenance(self, res: JobResult, found: list[str]) -> list[Action]:
        """A probe in maintenance only says what runs here: nothing is stopped or completed
        (leaving maintenance probes again, with the start-up rules)."""
        out: list[Action] = []
        if not res.ok:
            self.warnings["probe"] = (f"the probe cannot tell what runs here ({res.detail}); maintenance mode: "
                                      "probed again when it is off")
            return [Event("probe", self.warnings["probe"], Level.WARN)]
        self.warnings.pop("probe", None)
        whole = bool(found) and len(found) == len(self.cfg.resources)
        self._set_role(Role.ACTIVE if whole else Role.STANDBY, out, "maintenance mode: what runs here")
        out.append(Event("probe", f"maintenance mode: {', '.join(found) or 'nothing of the chain'} runs here; "
                                  "nothing is started or stopped", Level.INFO))
        return out

    def _reprobe_done(self, now: float, res: JobResult, found: list[str]) -> list[Action]:
        """The second probe (begin): what a killed predecessor's agent did after the first."""
        out: list[Action] = []
        if self.frozen():
            self.owned = [r for r in self.cfg.resources if r in found or (not res.ok and r in self.owned)]
            return out
        if not res.ok:  # what it could not tell about stays as it was
            self.owned = [r for r in self.cfg.resources if r in found or r in self.owned]
            self.probe_failures += 1
            if self.probe_failures < PROBE_ATTEMPTS:
                self.reprobe_at = now + self.cfg.probe_retry
            out.append(Event("probe", f"the second probe cannot tell ({res.detail})", Level.WARN))
            return out
        self.owned = found
        self.probe_failures = 0
        missing = [r for r in self.cfg.resources if r not in found]
        if self.role == Role.ACTIVE and missing:
            out.append(Event("probe", f"{', '.join(missing)} no longer run here (an agent of the previous daemon?): "
                                      f"restarting from {missing[0]}", Level.WARN))
            self._set_role(Role.STARTING, out, f"restart {missing[0]}")
            out.append(self._new_job(JobKind.RESTART, missing[0], "second probe"))
        elif self.role == Role.STANDBY and found:
            out.append(Event("probe", f"{', '.join(found)} run here on a standby node (an agent of the previous daemon?): stopping", Level.WARN))
            out += self._start_job(JobKind.STOP, now, reason="stray pieces found by the second probe")
        return out

    def _stop_failed(self, now: float, res: JobResult) -> list[Action]:
        out: list[Action] = []
        self._set_role(Role.STOP_FAILED, out, f"{res.detail}")
        self.warnings["stop"] = f"could not stop {res.detail}: this node may still hold resources"
        how = self.cfg.on_stop_failure
        if self.frozen():
            out.append(Event("stop-failed", f"stop failed ({res.detail}); maintenance mode: no escalation "
                                            "(`hasync cleanup` once it is stopped by hand)", Level.ERROR))
            return out
        out.append(Event("stop-failed", f"stop failed ({res.detail}); escalation: {how}"
                                        + (" (`hasync cleanup` once it is stopped by hand)" if how == "block" else ""), Level.ERROR))
        if how in ("fence-self", "reboot"):
            out.append(self._new_job(JobKind.FENCE_SELF, reason=how))
        return out

    # ------------------------------------------------------------------ commands
    def command(self, now: float, cmd: str, node: str = "", resource: str = "", force: bool = False) -> tuple[bool, str, list[Action]]:
        """Operator commands (membership_operator.py): standby/online [NODE], takeover,
        cleanup [RESOURCE], maintenance on/off, stop/start. (accepted, message, actions)."""
        return membership_operator.command(self, now, cmd, node, resource, force)

    def command_result(self, cmd: str, node: str = "") -> bool | None:
        """Whether an accepted operator command is done: None while it is still under way,
        else True (it did what was asked) or False (it cannot: the node is stop-failed,
        the chain failed to start, the peer is gone ...). The control socket tells the
        waiting `hasync standby|takeover|migrate|...` when this is no longer None."""
        return membership_operator.command_result(self, cmd, node)

    def _request(self, kind: int) -> None:
        self._req_counter += 1
        self.request = kind
        self.request_id = (self.generation % 1_000_000) * 1000 + self._req_counter

    def begin_leave(self, now: float) -> list[Action]:
        """Shutdown: stop the chain if we hold it; the daemon sends ``leaving`` when done."""
        self.leaving = True
        return self._decide(now) + [Send()]

    @property
    def can_exit(self) -> bool:
        """Shutdown finished: nothing held and nothing running -- or nothing more will be
        done (stop-failed, maintenance: see exit_note)."""
        if not self.leaving or self.job is not None:
            return False
        return (self.role == Role.STANDBY and not self.owned) or self.role == Role.STOP_FAILED or self.frozen()

    @property
    def exit_note(self) -> str:
        """Why the daemon exits without having released the chain ("" when it did): sent
        without ``leaving``, so the peer treats this node as dead (rule 5: it fences first;
        a stop-failed node needs a fence whatever the mode)."""
        if not self.leaving or (self.role == Role.STANDBY and not self.owned and not self.settings.maintenance):
            return ""
        if self.role == Role.STOP_FAILED:
            return (f"exiting while stop-failed: resources may still run here ({', '.join(self.owned) or 'unknown'}); "
                    f"{self.peer.name} does not start the chain before it has fenced this node (without a fence "
                    f"command it waits for this node to come back)")
        return (f"maintenance mode: exiting without stopping anything ({', '.join(self.owned) or 'nothing of the chain'} "
                f"ran here at the last probe); {self.peer.name} does nothing while in maintenance")

    # ------------------------------------------------------------------ timing
    def next_deadline(self, now: float) -> float:
        """When tick() must run next at the latest (sending every keepalive is the daemon's
        own timer: nothing in here needs a tick per keepalive)."""
        c = self.cfg
        cands = [now + max(1.0, c.deadtime)]
        pr = self.peer
        if (pr.state is _UP or pr.state in ALIVE) and pr.last_seen is not None:
            if not pr.late_warned:
                cands.append(pr.last_seen + c.warntime + 1e-4)
            cands.append(pr.last_seen + c.deadtime + 1e-4)
        elif pr.state == _UNKNOWN:
            cands.append(self.t0 + c.initdead + 1e-4)
        for ls in self.links.values():
            if ls.up and ls.last_seen is not None:
                cands.append(ls.last_seen + c.deadtime + 1e-4)
        if self.job is None and not (self.settings.maintenance or (pr.flags & F_MAINTENANCE and pr.state is _UP)):
            # while a job runs nothing else can happen; a deadline in the past would spin
            # (so would one in maintenance, where nothing of this is acted on)
            if self.gate_retry_at is not None:
                cands.append(self.gate_retry_at)
            if self.role is _ACTIVE or self.role == _ACTIVE:
                cands.extend(self.next_monitor.values())
            if self.probe_retry_at is not None and self.role == Role.PROBING:
                cands.append(self.probe_retry_at)
            if self.reprobe_at is not None and self.role in (Role.ACTIVE, Role.STANDBY):
                cands.append(self.reprobe_at)
        return max(now, min(cands))

    # ------------------------------------------------------------------ status
    def snapshot(self, now: float) -> dict:
        return membership_status.snapshot(self, now)
