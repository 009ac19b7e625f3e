"""`hasync resource ID start|stop|monitor|promote|demote` (pcs resource debug-start): run
one resource's operation by hand, exactly as the chain runs it -- the commands come from
the chain's own builder (operations.commands), so what the chain learns (promotable agents)
this verb knows too -- and refuse when it could put the resource on two nodes.

``verdict`` is the rule (pure, over the daemon's status document); ``commands`` what runs;
``outcome`` how the chain would read the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync import model, operations
from hasync.failover import chain
from hasync.failover.states import OpOutcome, PeerStatus, Role
from hasync.operations import ocf

OPS = ("start", "stop", "monitor", "promote", "demote")
# the operations that make a resource run (or run as the primary): two nodes must not
ADDING = ("start", "promote")


class NoSuchResource(ValueError):
    """The chain has no resource of that id (bad input)."""


class Refused(Exception):
    """The operation could put the resource on two nodes, or the agent cannot do it."""


def resource(cluster: model.Cluster, rid: str) -> model.Resource:
    for r in cluster.resources:
        if r.id == rid:
            return r
    raise NoSuchResource(f"no resource {rid!r}; the chain: {', '.join(r.id for r in cluster.resources) or '(empty)'}")


def commands(res: model.Resource, op: str, profile: model.Profile | None) -> tuple[operations.Command, ...]:
    """What the chain runs for *op* (monitor: the chain's status/monitor). Refused when
    the chain has no such operation for this resource (promote/demote of an agent that is
    not promotable)."""
    try:
        return operations.commands(res, "status" if op == "monitor" else op, profile=profile)
    except ValueError:
        if op in ("promote", "demote"):
            raise Refused(f"{res.id} ({res.type}:{res.agent}) is not promotable: the chain runs no {op} for it") from None
        raise


def verdict(op: str, rid: str, st: dict | None, *, force: bool = False) -> tuple[str, str]:
    """(why it is refused or "", a note or ""). *st*: the local daemon's status document
    (None: no daemon answers here). stop, demote and monitor never add a copy; start and
    promote only when the peer cannot hold the resource (standby and not owning it, left,
    or dead and fenced) and this node is where the chain belongs or nothing moves
    (active here, maintenance, or stopped on purpose). --force: the operator checked."""
    if op not in ADDING:
        if op in ("stop", "demote") and st is not None and not st.get("maintenance") and st.get("role") == Role.ACTIVE:
            return "", (f"the daemon here runs the chain: its monitor or the peer may act on a {op} done by hand "
                        "(`hasync maintenance on` first keeps both still)")
        return "", ""
    if force:
        return "", "--force: not checked against the peer"
    if st is None:
        return ("the failover daemon is not running here: it cannot say whether the peer runs "
                f"{rid}; check the peer by hand, then --force"), ""
    peer = st.get("peer", {})
    name, state = peer.get("node", "the peer"), peer.get("state")
    if state == PeerStatus.UP and rid in peer.get("owned", ()):
        return f"{rid} runs on {name}: starting it here puts it on two nodes (`hasync standby {name}` moves the chain)", ""
    if state == PeerStatus.UP and peer.get("role") != Role.STANDBY:
        return f"{name} is {peer.get('role')}: the chain belongs there; starting {rid} here may put it on two nodes", ""
    if state in (PeerStatus.UNKNOWN, PeerStatus.UNVERIFIED):
        return f"{name} is {state}: this node cannot tell whether it runs {rid}", ""
    if state == PeerStatus.DEAD and not peer.get("fenced"):
        return f"{name} is silent but was not fenced: it may still run {rid} (fence it: `hasync fence {name}`)", ""
    if st.get("role") == Role.ACTIVE or st.get("maintenance") or st.get("stopped"):
        return "", ""
    return (f"this node is {st.get('role')} and the daemons may start the chain on {name} at any moment: "
            "`hasync maintenance on` first (or `hasync stop`)"), ""


@dataclass(frozen=True)
class Outcome:
    word: str  # OpOutcome: ok/failed/timeout (start, stop ...), running/stopped/failed (monitor)
    why: str  # the exit status, by name for OCF


def outcome(res: model.Resource, op: str, exit_code: int, stdout: str) -> Outcome:
    """How the chain reads one command's result."""
    name = ocf.OCF_CODES.get(exit_code, "") if res.type == "ocf" else ""
    why = f"exit {exit_code}" + (f" ({name})" if name else " (timeout)" if exit_code == 124 else "")
    if op == "monitor":
        return Outcome(chain.classify_status(res, exit_code, stdout), why)
    if exit_code == 0:
        return Outcome(OpOutcome.OK, why)
    return Outcome(OpOutcome.TIMEOUT if exit_code == 124 else OpOutcome.FAILED, why)


# the verb's exit status per outcome (refused: 4, no such resource: 2)
EXIT = {OpOutcome.OK: 0, OpOutcome.RUNNING: 0, OpOutcome.STOPPED: 3, OpOutcome.FAILED: 1, OpOutcome.TIMEOUT: 1}
