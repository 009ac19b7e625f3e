"""The failover area's closed sets, each named once.

This module must not depend on anything but the standard library: the pure core, the
daemon, the status view and the client all import it.

Every set is a ``StrEnum``: a member IS its string ("active" == Role.ACTIVE, it hashes
and formats the same and ``json.dumps`` writes it as "active"), so the wire format, the
status document, the timeline and any caller comparing with plain strings see exactly
what they saw before the names existed.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A node's role in the heartbeat packets. The ORDER is the wire code (packets.ROLES):
    append, never reorder."""

    STANDBY = "standby"
    ACQUIRING = "acquiring"  # the peer is gone: ping tiebreak / fencing before the start
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOP_FAILED = "stop-failed"  # could not stop its resources: may still hold them
    PROBING = "probing"  # start-up: finding out what already runs here


# roles in which a node may hold (part of) the chain
HOLDING_ROLES = (Role.STARTING, Role.ACTIVE, Role.STOPPING, Role.STOP_FAILED, Role.PROBING)


class PeerStatus(StrEnum):
    UNKNOWN = "unknown"  # never heard from (within initdead)
    UP = "up"  # alive, and what it says is believed (its packets are fresh)
    DEAD = "dead"  # silent on every link for deadtime
    LEFT = "left"  # said goodbye (a clean shutdown, nothing held)
    # alive, but what it says is not verified: its packets do not echo this node's
    # generation (it has not heard this node since this daemon started, or they are
    # replays, or it runs a version before the echo): it may hold the chain
    UNVERIFIED = "unverified"


ALIVE = (PeerStatus.UP, PeerStatus.UNVERIFIED)  # heard within deadtime


class LinkStatus(StrEnum):
    UNKNOWN = "unknown"  # never heard on this link yet
    UP = "up"
    DEAD = "dead"


class JobKind(StrEnum):
    """What the worker thread runs, one at a time."""

    PROBE = "probe"  # start-up: the status of every resource
    START = "start"
    STOP = "stop"
    RESTART = "restart"  # one resource and the ones after it
    MONITOR = "monitor"
    PING = "ping"  # the tiebreak
    FENCE = "fence"  # the peer
    FENCE_SELF = "fence-self"


CHAIN_JOBS = (JobKind.START, JobKind.STOP, JobKind.RESTART, JobKind.MONITOR)


class Gate(StrEnum):
    """What a takeover waits for after the peer died (NONE: not waiting)."""

    NONE = ""
    PING = "ping"
    FENCE = "fence"
    WAIT_FENCE = "wait-fence"  # start-up: the preferred node fences first
    WAIT_PING = "wait-ping"
    WAIT_PEER = "wait-peer"  # no fence command: the peer or an operator must act


class JobOutcome(StrEnum):
    """How a job ended (JobResult.outcome; the chain's ChainResult.outcome)."""

    NONE = ""
    STARTED = "started"
    STOPPED = "stopped"
    START_FAILED = "start_failed"
    STOP_FAILED = "stop_failed"
    MONITOR_OK = "monitor_ok"
    MONITOR_FAILED = "monitor_failed"
    PROBED = "probed"
    FENCED = "fenced"
    FENCE_FAILED = "fence_failed"
    ERROR = "error"  # the worker itself failed (a bug)
    INTERNAL = "internal"


class OpOutcome(StrEnum):
    """How one command on one resource ended: start/stop give OK, FAILED or TIMEOUT;
    status/probe/monitor give RUNNING, STOPPED or FAILED."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    RUNNING = "running"
    STOPPED = "stopped"


class StepOp(StrEnum):
    """One step of a chain job (chain.ChainPlan)."""

    PROBE = "probe"  # status before a start
    PROBE_ALL = "probe-all"  # the status of several resources at once
    START = "start"
    STOP = "stop"
    STATUS = "status"  # after the last failed stop: does it still run?
    MONITOR = "monitor"
    WAIT = "wait"


class ResourceStatus(StrEnum):
    """A resource's state on this node, as the daemon last saw it."""

    UNKNOWN = "unknown"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Level(StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Health(StrEnum):
    """`hasync status`'s verdict."""

    OK = "ok"
    WARN = "warn"
    BAD = "bad"


class Command(StrEnum):
    """What the control socket accepts."""

    STATUS = "status"
    STANDBY = "standby"
    TAKEOVER = "takeover"
    MIGRATE = "migrate"
    FORGET_PEER = "forget-peer"  # the peer was reinstalled: accept a lower generation from it
    ONLINE = "online"  # leave the operator standby (this node or the peer: "to")
    CLEANUP = "cleanup"  # probe again, clear the failure marks the probe says are safe to clear
    MAINTENANCE_ON = "maintenance-on"  # cluster-wide: nothing is started, stopped, restarted or fenced
    MAINTENANCE_OFF = "maintenance-off"  # probe again, then the usual rules
    STOP = "stop"  # cluster-wide: stop the chain and keep it stopped (hasync stop)
    START = "start"  # cluster-wide: the chain may run again (hasync start)
