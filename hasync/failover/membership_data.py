"""The membership FSM's data: its config, the actions it returns, the link and peer
state it keeps (pure). ``membership.py`` holds the rules and re-exports these names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from hasync import model
from hasync.failover.packets import F_FAILED, F_STANDBY, REQ_NONE
from hasync.failover.states import (
    HOLDING_ROLES,
    JobKind,
    JobOutcome,
    Level,
    PeerStatus,
    Role,
)

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Monitor:
    interval: float
    max_restarts: int


@dataclass(frozen=True)
class FsmConfig:
    cluster: str
    local: str
    peer: str
    order: tuple[str, ...]  # preference: preferred node first
    links: tuple[str, ...]
    resources: tuple[str, ...]
    # the timings have no defaults here: the built-in ones are model.Heartbeat's, one
    # place (fsm_config copies them from the loaded config)
    keepalive: float
    warntime: float
    deadtime: float
    initdead: float
    auto_failback: bool = False
    fencing_mode: str = "required"
    fence_configured: bool = True
    on_stop_failure: str = "fence-self"
    ping_configured: bool = False
    monitors: tuple[tuple[str, Monitor], ...] = ()
    ping_retry: float = 1.0
    fence_retry: float = 2.0
    startup_fence_delay: float = -1.0  # <0: deadtime (non-preferred node at start-up only)
    # the node that fences first when both start without a link ("": the preferred node);
    # with several groups it is the cluster's preferred node, one for the whole pair
    fence_first: str = ""
    # the longest a resource agent may run (its start/stop/status timeout): a daemon that
    # was killed may have left one running, so the start-up probe is done again once
    # they must have finished (0: no second probe)
    agent_timeout: float = 0.0
    probe_retry: float = 1.0  # a start-up probe that could not tell is tried again after this

    def validate(self) -> list[str]:
        """heartbeat's start-up rules on the timing (errors)."""
        e = []
        if self.keepalive <= 0:
            e.append("keepalive must be positive")
        if self.deadtime <= 2 * self.keepalive:
            e.append(f"deadtime ({self.deadtime}s) must be greater than 2 x keepalive ({self.keepalive}s)")
        if self.initdead < self.deadtime:
            e.append(f"initdead ({self.initdead}s) must be at least deadtime ({self.deadtime}s)")
        if not (0 < self.warntime < self.deadtime):
            e.append(f"warntime ({self.warntime}s) must be between 0 and deadtime ({self.deadtime}s)")
        if self.local == self.peer:
            e.append("local node and peer are the same")
        if not self.links:
            e.append("no heartbeat link")
        return e


def settings_digest(cfg: FsmConfig) -> int:
    """64 bits of the SHA-256 of the settings both nodes must agree on to decide the same
    way (docs/failover.md, "Config digest"): the cluster, the preference order, the chain's
    resource ids in order, auto_failback and the fencing mode. Never 0 (0 on the wire:
    unknown, a sender before the digest)."""
    return digest_of({"cluster": cfg.cluster, "order": list(cfg.order), "resources": list(cfg.resources),
                      "auto_failback": cfg.auto_failback, "fencing_mode": cfg.fencing_mode})


def digest_of(agreed: dict) -> int:
    """64 bits of the SHA-256 of *agreed* as canonical JSON; never 0."""
    raw = hashlib.sha256(json.dumps(agreed, sort_keys=True, separators=(",", ":")).encode()).digest()
    return int.from_bytes(raw[:8], "big") or 1


def preference_order(cluster: model.Cluster, preferred: str | None = None) -> tuple[str, ...]:
    """The nodes, the preferred node first (the cluster's, or a group's *preferred*),
    then the [[node]] order."""
    names = [n.name for n in cluster.nodes]
    pref = cluster.cluster.preferred_node if preferred is None else preferred
    if pref in names:
        names.remove(pref)
        names.insert(0, pref)
    return tuple(names)


def retry_interval(deadtime: float) -> float:
    """How long a failed fence, or a start-up probe that could not tell, waits before it
    is tried again: a deadtime, at least 1 s."""
    return max(1.0, deadtime)


def monitors_of(resources) -> tuple[tuple[str, Monitor], ...]:
    """(resource id, its Monitor) for each monitored resource of a chain, in order."""
    return tuple((r.id, Monitor(r.monitor_interval, r.max_restarts)) for r in resources if r.monitor_interval > 0)


def agent_timeout_of(resources) -> float:
    """The longest any agent of the chain may run (start, stop or monitor); 0: no chain."""
    return max((max(r.start_timeout, r.stop_timeout, r.monitor_timeout) for r in resources), default=0.0)


def fsm_config(cluster: model.Cluster, local: str) -> FsmConfig:
    """The FSM's view of the cluster config, seen from node *local*."""
    hb = cluster.heartbeat
    f = cluster.fencing
    return FsmConfig(
        cluster=cluster.cluster.name,
        local=local,
        peer=cluster.peer_of(local).name,
        order=preference_order(cluster),
        links=tuple(link.name for link in hb.links),
        resources=tuple(r.id for r in cluster.resources),
        keepalive=hb.keepalive,
        warntime=hb.warntime,
        deadtime=hb.deadtime,
        initdead=hb.initdead,
        auto_failback=hb.auto_failback,
        fencing_mode=f.mode,
        fence_configured=bool(f.command),
        on_stop_failure=f.on_stop_failure,
        ping_configured=bool(hb.ping),
        monitors=monitors_of(cluster.resources),
        fence_retry=retry_interval(hb.deadtime),
        agent_timeout=agent_timeout_of(cluster.resources),
        probe_retry=retry_interval(hb.deadtime),
    )


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Send:
    """Send a heartbeat on every link now (a state change the peer must learn fast)."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    resource: str = ""  # restart/monitor: which
    reason: str = ""
    # start: this node knows its resources are stopped (it probed them at start-up and
    # stopped them cleanly since): the runner may skip the status probe of resources
    # whose start is idempotent by contract (OCF, systemd): the takeover path is faster
    trusted_stopped: bool = False
    group: str = ""  # several resource groups: the group whose job queue runs it (membership_groups)


@dataclass(frozen=True)
class Event:
    kind: str  # detect, link-dead, link-up, late, peer-up, peer-dead, fence, role, warn, ...
    message: str
    level: Level = Level.INFO
    data: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class JobResult:
    job_id: int
    ok: bool
    outcome: JobOutcome = JobOutcome.NONE
    detail: str = ""
    owned: tuple[str, ...] | None = None  # what runs here after a chain job


@dataclass(frozen=True)
class Persisted:
    """What the FSM keeps across daemon restarts (the daemon's state directory): the
    daemon loads it before the FSM is built and writes it when the FSM says (``Persist``)."""

    peer_generation: int = 0  # the highest generation ever accepted from the peer: nothing lower is
    epoch: int = 0  # the takeover epoch this node last took: a restart that adopts the chain keeps it
    # the operator's settings (operator.py): cluster-wide ones, this node's copy ...
    maintenance: bool = False  # hasync maintenance on
    stopped: bool = False  # hasync stop (until hasync start)
    settings_new: bool = False  # changed here, not yet shown by the peer's packets
    # ... and this node's own
    operator_standby: bool = False  # hasync standby (until hasync online)
    # several resource groups: each group's takeover epoch, (group id, epoch) in config order
    group_epochs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Persist:
    """Write this to the state directory now (atomically). Rare: when the peer's
    generation rises (it restarted) or this node takes the chain."""

    state: Persisted


Action = Send | Job | Event | Persist


# --------------------------------------------------------------------------- state


@dataclass
class LinkState:
    name: str
    last_seen: float | None = None
    up: bool | None = None  # None: never heard on this link yet
    received: int = 0
    missed: int = 0  # sequence gaps
    recent_received: int = 0
    recent_missed: int = 0
    prev_received: int = 0
    prev_missed: int = 0
    window_start: float = 0.0
    bad_mac: int = 0
    malformed: int = 0
    replay: int = 0
    old_generation: int = 0
    foreign: int = 0  # other cluster / unknown node
    stale: int = 0  # authentic, but not fresh while the peer's state is verified: not believed
    garbage_bytes: int = 0
    send_errors: int = 0

    def loss_pct(self, recent: bool = True) -> float:
        if recent:
            r = self.recent_received + self.prev_received
            m = self.recent_missed + self.prev_missed
        else:
            r, m = self.received, self.missed
        return 100.0 * m / (r + m) if (r + m) else 0.0


@dataclass
class PeerState:
    # state and role: no class-level default (default_factory): on CPython 3.11 a class
    # attribute whose type is a mutable class (an enum) stops the interpreter from
    # specializing reads of that name on instances, and on_repeat reads state for every
    # heartbeat received
    name: str
    state: PeerStatus = field(default_factory=lambda: PeerStatus.UNKNOWN)
    last_seen: float | None = None
    generation: int = 0
    role: Role = field(default_factory=lambda: Role.STANDBY)
    owned: tuple[str, ...] = ()
    flags: int = 0
    epoch: int = 0
    digest: int = 0  # its settings digest (0: not known yet)
    request: int = REQ_NONE
    request_id: int = 0
    ack_id: int = 0
    late_warned: bool = False
    handled_request: int = 0  # the peer's request id we acted on (echoed as ack_id)
    fenced_generation: int = -1  # packets of this generation or older are ignored after a fence
    dead_role: Role | str = ""  # role when it died ("" while it lives)
    dead_owned: tuple[str, ...] = ()
    died_at: float | None = None

    @property
    def holds(self) -> bool:
        return bool(self.owned) or self.role in HOLDING_ROLES

    @property
    def eligible(self) -> bool:
        return not (self.flags & (F_STANDBY | F_FAILED))
