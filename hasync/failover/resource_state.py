"""What the daemon knows of each resource on this node, from its jobs' progress (pure).

The worker reports every command it ran on a resource (``Progress``: the step, its
outcome, how long it took). ``ResourceTable.record`` keeps the state shown in `hasync
status` (running, stopped, failed) and says what the membership FSM must learn so the
``owned`` list in the heartbeats stays live while a chain job runs: a resource STARTED,
found RUNNING, or STOPPED. ``progress_event`` is the timeline line of a step (routine
monitor successes are not worth one).
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync.failover.membership import Event
from hasync.failover.states import Level, OpOutcome, ResourceStatus, StepOp

# what the FSM hears of a step (Membership.on_progress): (op, outcome) -> report
STARTED, RUNNING, STOPPED = "started", "running", "stopped"
_FSM_REPORT: dict[tuple[str, str], str] = {
    (StepOp.START, OpOutcome.OK): STARTED,
    (StepOp.PROBE, OpOutcome.RUNNING): RUNNING,
    (StepOp.STOP, OpOutcome.OK): STOPPED,
    (StepOp.STATUS, OpOutcome.STOPPED): STOPPED,
}


@dataclass(frozen=True)
class Progress:
    """One command of a job, as the worker reports it. ``resource`` is "" for the jobs
    that are not about a resource (fence, ping); ``op`` is a StepOp, or "vip-up" (the VIP
    fast path), "fence", "ping"."""

    resource: str
    op: str
    outcome: str
    detail: str = ""
    duration_s: float = 0.0
    job: int = 0
    attempt: int = 1


def fsm_report(op: str, outcome: str) -> str | None:
    """STARTED, RUNNING or STOPPED when the step changed what runs here, else None."""
    return _FSM_REPORT.get((op, outcome))


def state_after(op: str, outcome: str, old: str) -> str:
    """The resource's state here after a step (*old* when the step says nothing)."""
    report = fsm_report(op, outcome)
    if report in (STARTED, RUNNING):
        return ResourceStatus.RUNNING
    if report == STOPPED:
        return ResourceStatus.STOPPED
    if op == StepOp.PROBE and outcome != OpOutcome.RUNNING:
        return ResourceStatus.STOPPED
    if op == StepOp.MONITOR:
        return ResourceStatus.RUNNING if outcome == OpOutcome.RUNNING else ResourceStatus.FAILED
    if outcome in (OpOutcome.FAILED, OpOutcome.TIMEOUT):
        return ResourceStatus.FAILED
    return old


class ResourceTable:
    """Per resource: state, last op, its outcome, duration and detail, and when (wall)."""

    def __init__(self, ids: tuple[str, ...]):
        self.rows: dict[str, dict] = {rid: {"state": ResourceStatus.UNKNOWN} for rid in ids}

    def record(self, p: Progress, wall: float) -> str | None:
        """Note a step on a resource; returns what the FSM must hear (fsm_report)."""
        row = self.rows[p.resource]
        row.update({"last_op": p.op, "outcome": p.outcome, "duration_ms": round(p.duration_s * 1000, 1), "detail": p.detail, "at": wall})
        row["state"] = state_after(p.op, p.outcome, row["state"])
        report = fsm_report(p.op, p.outcome)
        if report == STARTED:
            row["started_at"] = wall  # when it last started here (the NFS grace period's start)
        return report

    def row(self, rid: str) -> dict:
        return dict(self.rows[rid])


def progress_event(p: Progress) -> Event | None:
    """The timeline/log line of a step, or None for a routine one (a monitor that passed)."""
    ms = round(p.duration_s * 1000, 1)
    if p.resource:
        level = Level.INFO if p.outcome in (OpOutcome.OK, OpOutcome.RUNNING, OpOutcome.STOPPED) or p.op == StepOp.PROBE else Level.ERROR
        if p.op == StepOp.MONITOR and p.outcome == OpOutcome.RUNNING:
            return None
        msg = f"{p.resource} {p.op}: {p.outcome} in {ms:.0f} ms" + (f" ({p.detail})" if p.detail and level != Level.INFO else "")
        return Event("resource", msg, level, (("resource", p.resource), ("op", p.op), ("outcome", p.outcome), ("duration_ms", ms)))
    level = Level.INFO if p.outcome == OpOutcome.OK else Level.WARN
    return Event(p.op, f"{p.op}: {p.outcome} in {ms:.0f} ms" + (f" ({p.detail})" if p.detail else ""), level, (("outcome", p.outcome), ("duration_ms", ms)))
