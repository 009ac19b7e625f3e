"""Membership of several resource groups (issue 17): one FSM for the pair, each group with
its own owner (pure, ``now`` passed in).

heartbeat v1's active/active: one haresources line per group, each with its preferred
node, so both nodes serve and each takes the other's groups when it dies. What is per
*peer* and what is per *group* (docs/failover.md, "Resource groups"):

- per peer: liveness (deadtime, initdead, late heartbeats, links), generations and the
  freshness handshake, the ping tiebreak and fencing. A dead peer is fenced ONCE (one
  fence job whichever group asks first; the others wait for its result and share it),
  then each of its groups is started, in the configured order; a peer that is
  stop-failed in any group needs a fence whatever the mode (rule 5, for the node);
- per group: role, owned resources, takeover epoch, start/stop/monitor failures,
  operator requests (standby/takeover of every group, ``migrate GROUP`` of one),
  preference and ``auto_failback`` (rules 2-4 and 7-9, each group on its own).

How: one ``Membership`` per group (the rules, unchanged and tested as one chain), all
fed the SAME packets and ticks, so their view of the peer cannot diverge (what "one FSM
per group, each on its own packets" would get wrong: liveness per group). A format 3
packet carries one record per group (``packets.GroupRecord``); each group's FSM sees the
peer's fixed fields with its own record's role, owned, flags, epoch and requests. The
fence, ping and self-fence jobs are the node's: one runs, the other groups' copies are
parked and get its result. A one-group cluster does not use this class (``Membership``
alone, format 2 on the wire).

Jobs carry their group (``Job.group``): the daemon runs one job at a time per group.
Events of a group say so (``data["group"]``, and the message starts with "GROUP: "
unless the event is about the peer or the links, which are reported once).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace

from hasync import model
from hasync.failover.membership import (
    Action,
    Event,
    FsmConfig,
    Job,
    JobResult,
    Membership,
    Persist,
    Persisted,
    fsm_config,
    preference_order,
)
from hasync.failover.membership_data import digest_of, monitors_of
from hasync.failover.packets import F_LEAVING, GroupRecord, Packet, flag_names
from hasync.failover.states import ALIVE, Gate, JobKind, PeerStatus, Role
from hasync.packet_layout import VERSION, VERSION_GROUPS

# the node's jobs: one runs, the other groups' copies wait for its result
SHARED_JOBS = (JobKind.FENCE, JobKind.PING, JobKind.FENCE_SELF)
# events about the peer, the links or the node: said once, not once per group
NODE_EVENTS = frozenset({"detect", "late", "link-dead", "link-up", "peer-up", "peer-restart", "fence", "ping", "config",
                         "old-generation", "maintenance", "stopped", "escalate"})
# the summary role (the role file, the top-level packet field): the most telling of the groups'
_SUMMARY = (Role.STOP_FAILED, Role.PROBING, Role.STOPPING, Role.STARTING, Role.ACQUIRING, Role.ACTIVE, Role.STANDBY)
_JOB_ID_SPAN = 1_000_000_000  # each group's job ids: its own range (never two jobs with one id)


def group_configs(cluster: model.Cluster, local: str) -> tuple[tuple[str, FsmConfig], ...]:
    """Each resource group's FSM config, seen from *local*: the group's chain, preference
    and auto_failback; the timing, links and fencing are the pair's."""
    base = fsm_config(cluster, local)
    first = preference_order(cluster)[0]
    out = []
    for g in cluster.resource_groups():
        out.append((g.id, replace(
            base, order=preference_order(cluster, g.preferred_node), resources=tuple(r.id for r in g.resources),
            auto_failback=bool(g.auto_failback), monitors=monitors_of(g.resources), fence_first=first)))
    return tuple(out)


def groups_digest(cfgs: tuple[tuple[str, FsmConfig], ...]) -> int:
    """The settings digest of a cluster of groups (docs/failover.md, "Config digest"): the
    cluster, the group ids, each group's chain, preference order and auto_failback, the
    fencing mode. Never 0."""
    c0 = cfgs[0][1]
    agreed = {"cluster": c0.cluster, "fencing_mode": c0.fencing_mode,
              "groups": [{"id": gid, "order": list(c.order), "resources": list(c.resources), "auto_failback": c.auto_failback}
                         for gid, c in cfgs]}
    return digest_of(agreed)


class GroupMembership:
    """Several groups' ``Membership``s as one FSM, with the interface the daemon and the
    campaign drive (the same methods as ``Membership``)."""

    def __init__(self, cfgs: tuple[tuple[str, FsmConfig], ...], now: float, generation: int = 1,
                 persisted: Persisted | None = None, member_cls: type[Membership] = Membership):
        if len(cfgs) < 2:
            raise ValueError("GroupMembership is for two groups or more (one group: Membership)")
        self.ids = tuple(gid for gid, _ in cfgs)
        self.cfg = cfgs[0][1]  # the pair's settings (timing, links, fencing): the same in every group
        self.persisted = persisted or Persisted()
        epochs = dict(self.persisted.group_epochs)
        self.digest = groups_digest(cfgs)
        self.groups: dict[str, Membership] = {}
        for i, (gid, c) in enumerate(cfgs):
            m = member_cls(c, now, generation, replace(self.persisted, epoch=epochs.get(gid, 0), group_epochs=()))
            m.digest = self.digest
            m._ids = itertools.count(1 + i * _JOB_ID_SPAN)
            self.groups[gid] = m
        self.first = self.groups[self.ids[0]]
        self.generation = generation
        self.group_of_resource = {r: gid for gid, c in cfgs for r in c.resources}
        self.job_group: dict[int, str] = {}  # a job under way -> its group (its result goes there)
        self.running: dict[str, str] = {}  # kind of a shared job under way -> the group that runs it
        self.parked: dict[str, list[str]] = {}  # kind -> the groups whose copy waits for its result
        # the peer's wire format, per incarnation: an older daemon (format 2, before groups)
        # drops format 3 frames as malformed and would take this node for dead (and fence
        # it from standby), so it is answered in format 2 (packet_fields). One format 3
        # frame of an incarnation shows it reads format 3; an older incarnation's frames
        # (a replay) change nothing
        self.peer_incarnation = 0
        self.peer_reads_groups = False

    # ------------------------------------------------------------------ the pair's view (the first group's)
    @property
    def peer(self):
        return self.first.peer

    @property
    def guard(self):
        return self.first.guard

    @property
    def links(self):
        return self.first.links

    @property
    def role(self) -> Role:
        roles = {m.role for m in self.groups.values()}
        return next(r for r in _SUMMARY if r in roles)

    @property
    def owned(self) -> list[str]:
        return [r for m in self.groups.values() for r in m.owned]

    @property
    def peer_owned(self) -> list[str]:
        """What the peer says it runs, every group (its packets' records)."""
        return [r for m in self.groups.values() for r in m.peer.owned]

    @property
    def peer_role(self) -> Role:
        """The peer's summary role (the most telling of its groups', as for this node)."""
        roles = {m.peer.role for m in self.groups.values()}
        return next(r for r in _SUMMARY if r in roles)

    @property
    def epoch(self) -> int:
        return max(m.epoch for m in self.groups.values())

    @property
    def job(self) -> Job | None:
        """A job under way in any group (the first found)."""
        return next((m.job for m in self.groups.values() if m.job is not None), None)

    @property
    def gate(self) -> Gate:
        return next((m.gate for m in self.groups.values() if m.gate), Gate.NONE)

    @property
    def warnings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for gid, m in self.groups.items():
            for k, v in m.warnings.items():
                if k in ("start", "stop", "probe", "monitor"):
                    out[f"{gid}:{k}"] = f"{gid}: {v}"
                else:
                    out.setdefault(k, v)
        return out

    def frozen(self) -> bool:
        return self.first.frozen()

    def agreed(self) -> bool:
        return self.first.agreed()

    # ------------------------------------------------------------------ plumbing
    def _gather(self, per_group: list[tuple[str, list[Action]]], now: float) -> list[Action]:
        """The groups' actions as one list: events tagged with their group (the node's
        said once), shared jobs run once, Persists merged into one."""
        out: list[Action] = []
        seen: set[tuple[str, str]] = set()
        persist = False
        for gid, acts in per_group:
            for a in acts:
                if isinstance(a, Event):
                    if a.kind in NODE_EVENTS:
                        if (a.kind, a.message) in seen:
                            continue
                        seen.add((a.kind, a.message))
                        out.append(a)
                    else:
                        out.append(replace(a, message=f"{gid}: {a.message}", data=a.data + (("group", gid),)))
                elif isinstance(a, Job):
                    job = replace(a, group=gid)
                    self.job_group[a.id] = gid
                    if a.kind in SHARED_JOBS:
                        if a.kind in self.running:
                            self.parked.setdefault(a.kind, []).append(gid)
                            continue
                        self.running[a.kind] = gid
                    out.append(job)
                elif isinstance(a, Persist):
                    persist = True
                else:
                    out.append(a)
        if persist:
            epochs = tuple((gid, m.persisted.epoch) for gid, m in self.groups.items())
            p0 = self.first.persisted
            new = replace(p0, peer_generation=max(m.persisted.peer_generation for m in self.groups.values()),
                          epoch=self.epoch, group_epochs=epochs)
            if new != self.persisted:
                self.persisted = new
                out.insert(0, Persist(new))
        return out

    def _risk(self) -> None:
        """Rule 5 for the node: a peer stop-failed in any group may hold resources."""
        risky = any(m.peer.dead_role == Role.STOP_FAILED or (m.peer.state in ALIVE and m.peer.role == Role.STOP_FAILED)
                    for m in self.groups.values())
        for m in self.groups.values():
            m.peer_stop_failed_elsewhere = risky

    def _each(self, now: float, call) -> list[Action]:
        self._risk()
        return self._gather([(gid, call(m)) for gid, m in self.groups.items()], now)

    def _group_packet(self, pkt: Packet, index: int) -> Packet:
        rec = next((g for g in pkt.groups if g.index == index), None)
        if rec is None:
            # a peer whose config lacks this group (the digests differ; a format 2 peer):
            # holding (probing) as far as this group knows: nothing moves while it talks
            rec = GroupRecord(index, Role.PROBING, pkt.flags)
        return replace(pkt, role=rec.role, owned=rec.owned, flags=rec.flags, epoch=rec.epoch, request=rec.request,
                       request_id=rec.request_id, ack_id=rec.ack_id, groups=())

    # ------------------------------------------------------------------ inputs
    def begin(self, now: float) -> list[Action]:
        return self._each(now, lambda m: m.begin(now))

    def on_decode_errors(self, link: str, bad_mac: int = 0, malformed: int = 0, garbage_bytes: int = 0) -> None:
        self.first.on_decode_errors(link, bad_mac, malformed, garbage_bytes)

    def on_send_error(self, link: str) -> None:
        self.first.on_send_error(link)

    def on_repeat(self, now: float, link: str, seq: int) -> list[Action] | None:
        """The fast path: the groups' views of the peer are the same, so they all take the
        repeat or none does (None: on_packet; a group that took it counts it a replay there)."""
        results = [(gid, m.on_repeat(now, link, seq)) for gid, m in self.groups.items()]
        if any(r is None for _, r in results):
            return None
        return self._gather([(g, r or []) for g, r in results], now) if any(r for _, r in results) else []

    def on_packet(self, now: float, link: str, pkt: Packet) -> list[Action]:
        if pkt.generation > self.peer_incarnation:
            self.peer_incarnation, self.peer_reads_groups = pkt.generation, pkt.version == VERSION_GROUPS
        elif pkt.generation == self.peer_incarnation and pkt.version == VERSION_GROUPS:
            self.peer_reads_groups = True
        self._risk()
        return self._gather([(gid, m.on_packet(now, link, self._group_packet(pkt, i)))
                             for i, (gid, m) in enumerate(self.groups.items())], now)

    def tick(self, now: float) -> list[Action]:
        return self._each(now, lambda m: m.tick(now))

    def on_progress(self, now: float, resource: str, state: str) -> list[Action]:
        gid = self.group_of_resource.get(resource)
        if gid is None:
            return []
        return self._gather([(gid, self.groups[gid].on_progress(now, resource, state))], now)

    def on_job_done(self, now: float, res: JobResult) -> list[Action]:
        gid = self.job_group.pop(res.job_id, "")
        m = self.groups.get(gid)
        if m is None or m.job is None or m.job.id != res.job_id:
            return []
        kind = m.job.kind
        self._risk()
        per: list[tuple[str, list[Action]]] = [(gid, m.on_job_done(now, res))]
        if kind in SHARED_JOBS and self.running.get(kind) == gid:
            del self.running[kind]
            for other in self.parked.pop(kind, []):
                o = self.groups[other]
                if o.job is not None and o.job.kind == kind:
                    self.job_group.pop(o.job.id, None)
                    per.append((other, o.on_job_done(now, replace(res, job_id=o.job.id))))
            if res.ok and kind == JobKind.FENCE:
                per += self._share_fence(now, m)
            elif res.ok and kind == JobKind.PING:
                for o in self.groups.values():
                    if o is not m and not o.gate_passed_ping:
                        o.gate_passed_ping, o.ping_ok_at = True, now
                        o.warnings.pop("ping", None)
        return self._gather(per, now)

    def _share_fence(self, now: float, m: Membership) -> list[tuple[str, list[Action]]]:
        """The peer is fenced: every group knows (no second fence for this death; the
        packets of the fenced generation still in flight are ignored by all)."""
        per = []
        for gid, o in self.groups.items():
            if o is m or (o.peer_fenced and o.peer.fenced_generation == m.peer.fenced_generation):
                continue
            o.peer_fenced = True
            o.peer.fenced_generation = m.peer.fenced_generation
            o.fenced_until = m.fenced_until
            o.warnings.pop("fence", None)
            if o.peer.state in ALIVE:
                o.peer.state = PeerStatus.DEAD
            if o.gate in (Gate.WAIT_FENCE, Gate.FENCE) and o.job is None:
                o.gate_retry_at = None  # waiting for its own turn to fence: no need any more
            per.append((gid, o._decide(now)))
        return per

    # ------------------------------------------------------------------ commands
    def command(self, now: float, cmd: str, node: str = "", resource: str = "", force: bool = False,
                group: str = "") -> tuple[bool, str, list[Action]]:
        """An operator command for every group (standby, takeover, maintenance ...), or for
        one: *group* (``migrate GROUP``), the group of *resource* (cleanup RESOURCE)."""
        if group and group not in self.groups:
            return False, f"no resource group {group!r}; groups: {', '.join(self.ids)}", []
        if resource and not group:
            group = self.group_of_resource.get(resource, "")
            if not group:
                return False, f"no resource {resource!r} in any group", []
        targets = [group] if group else list(self.ids)
        self._risk()
        replies = [(gid, *self.groups[gid].command(now, cmd, node, resource, force)) for gid in targets]
        ok = any(r[1] for r in replies)
        msgs = {r[2] for r in replies}
        msg = replies[0][2] if len(msgs) == 1 else "; ".join(f"{gid}: {m}" for gid, _, m, _ in replies)
        return ok, msg, self._gather([(gid, acts) for gid, _, _, acts in replies], now)

    def command_result(self, cmd: str, node: str = "", group: str = "") -> bool | None:
        results = [self.groups[gid].command_result(cmd, node) for gid in ([group] if group else self.ids)]
        if any(r is None for r in results):
            return None
        return all(results)

    def forget_peer(self, now: float) -> list[Action]:
        return self._each(now, lambda m: m.forget_peer(now))

    def begin_leave(self, now: float) -> list[Action]:
        return self._each(now, lambda m: m.begin_leave(now))

    @property
    def can_exit(self) -> bool:
        return all(m.can_exit for m in self.groups.values())

    @property
    def exit_note(self) -> str:
        return "; ".join(f"{gid}: {m.exit_note}" for gid, m in self.groups.items() if m.exit_note)

    # ------------------------------------------------------------------ output
    def packet_fields(self) -> dict:
        """Format 3: the node's fields, then one record per group (format 2, the node's
        summary, to a peer that speaks only that). ``leaving`` only once every group
        released everything (the peer's groups see the node leave at once)."""
        f = self.first.packet_fields()
        flags = {gid: m.flags() for gid, m in self.groups.items()}
        leaving = all(fl & F_LEAVING for fl in flags.values())
        if not leaving:
            flags = {gid: fl & ~F_LEAVING for gid, fl in flags.items()}
        records = tuple(GroupRecord(i, m.role, flags[gid], m.epoch, m.request, m.request_id, m.peer.handled_request, tuple(m.owned))
                        for i, (gid, m) in enumerate(self.groups.items()))
        node_flags = 0
        for fl in flags.values():
            node_flags |= fl
        if self.peer_incarnation and not self.peer_reads_groups:
            # format 2 for an older peer: the node's summary (its role, everything it owns),
            # so the peer sees it alive and holding; no requests (they need format 3)
            f.update(role=self.role, owned=tuple(self.owned), flags=node_flags if leaving else node_flags & ~F_LEAVING,
                     epoch=self.epoch, request=0, request_id=0, ack_id=0, version=VERSION, groups=())
            return f
        f.update(role=self.role, owned=(), flags=node_flags if leaving else node_flags & ~F_LEAVING, epoch=self.epoch,
                 request=0, request_id=0, ack_id=0, version=VERSION_GROUPS, groups=records)
        return f

    def next_deadline(self, now: float) -> float:
        return min(m.next_deadline(now) for m in self.groups.values())

    def snapshot(self, now: float) -> dict:
        """The first group's snapshot for the pair (peer, links, settings), with the
        node's summary role and every group's own part under ``groups``."""
        doc = self.first.snapshot(now)
        doc.update(role=self.role, owned=self.owned, epoch=self.epoch, warnings=self.warnings)
        doc["peer"].update(owned=self.peer_owned, epoch=max(m.peer.epoch for m in self.groups.values()))
        if self.peer.state == PeerStatus.UP:
            doc["peer"]["role"] = self.peer_role
        doc["groups"] = [{
            "id": gid, "role": m.role, "owned": list(m.owned), "epoch": m.epoch, "resources": list(m.cfg.resources),
            "preferred_node": m.preferred, "auto_failback": m.cfg.auto_failback,
            "owner": _owner(m), "peer_role": m.peer.role, "peer_owned": list(m.peer.owned),
            "job": {"kind": m.job.kind, "resource": m.job.resource, "reason": m.job.reason} if m.job else None,
            "gate": m.gate, "flags": flag_names(m.flags()),
        } for gid, m in self.groups.items()]
        return doc


def _owner(m: Membership) -> str | None:
    """Where the group runs, as this node sees it (None: nowhere)."""
    here = m.role in (Role.ACTIVE, Role.STARTING, Role.STOPPING, Role.STOP_FAILED) or bool(m.owned)
    there = m.peer.state == PeerStatus.UP and (m.peer.role in (Role.ACTIVE, Role.STARTING, Role.STOPPING) or bool(m.peer.owned))
    if here and there:
        return "both"
    return m.cfg.local if here else (m.peer.name if there else None)


# what the daemon drives: one chain's FSM, or several groups' (the same methods)
AnyMembership = Membership | GroupMembership


def jobs_of(fsm: AnyMembership) -> list[Job | None]:
    """The job under way in each group (None where there is none): one entry for a
    single-group membership."""
    return [m.job for m in fsm.groups.values()] if isinstance(fsm, GroupMembership) else [fsm.job]


def working(jobs: Iterable[Job | None]) -> list[Job]:
    """The jobs that change the chain or the peer (a start, stop, restart, probe, fence):
    every one but an interval monitor, which only reads."""
    return [j for j in jobs if j is not None and j.kind != JobKind.MONITOR]
