"""The per-resource state table and the timeline lines of job steps (pure)."""

from __future__ import annotations

import pytest

from hasync.failover.resource_state import (
    Progress,
    ResourceTable,
    fsm_report,
    progress_event,
    state_after,
)


@pytest.mark.parametrize(
    ("op", "outcome", "old", "state", "report"),
    [
        ("start", "ok", "stopped", "running", "started"),
        ("start", "failed", "stopped", "failed", None),
        ("start", "timeout", "stopped", "failed", None),
        ("probe", "running", "unknown", "running", "running"),
        ("probe", "stopped", "unknown", "stopped", None),
        ("probe", "failed", "running", "stopped", None),  # a failed probe: not running here
        ("stop", "ok", "running", "stopped", "stopped"),
        ("stop", "failed", "running", "failed", None),
        ("status", "stopped", "failed", "stopped", "stopped"),  # after failed stops: it is down after all
        ("status", "running", "failed", "failed", None),
        ("monitor", "running", "running", "running", None),
        ("monitor", "stopped", "running", "failed", None),
        ("vip-up", "ok", "stopped", "stopped", None),  # the VIP fast path says nothing about the agent
    ],
)
def test_state_after_each_step(op, outcome, old, state, report):
    assert state_after(op, outcome, old) == state
    assert fsm_report(op, outcome) == report


def test_table_keeps_the_last_operation():
    t = ResourceTable(("fs", "vip"))
    assert t.row("vip") == {"state": "unknown"}
    assert t.record(Progress("vip", "start", "ok", "", 0.0123, job=3), wall=1700000000.5) == "started"
    assert t.row("vip") == {"state": "running", "last_op": "start", "outcome": "ok", "duration_ms": 12.3, "detail": "", "at": 1700000000.5,
                              "started_at": 1700000000.5}
    assert t.record(Progress("vip", "monitor", "failed", "monitor exited 7 NOT_RUNNING", 0.5), wall=1700000001.0) is None
    assert t.row("vip")["state"] == "failed" and t.row("vip")["detail"] == "monitor exited 7 NOT_RUNNING"
    assert t.row("fs") == {"state": "unknown"}
    t.row("fs")["state"] = "x"  # a copy: the table is not changed from outside
    assert t.row("fs") == {"state": "unknown"}


def test_progress_events():
    ev = progress_event(Progress("vip", "start", "ok", "", 0.0424))
    assert (ev.kind, ev.message, ev.level) == ("resource", "vip start: ok in 42 ms", "info")
    assert dict(ev.data) == {"resource": "vip", "op": "start", "outcome": "ok", "duration_ms": 42.4}
    ev = progress_event(Progress("fs", "stop", "failed", "umount: busy", 1.0))
    assert (ev.message, ev.level) == ("fs stop: failed in 1000 ms (umount: busy)", "error")
    ev = progress_event(Progress("fs", "probe", "failed", "monitor exited 5", 0.01))
    assert ev.level == "info" and ev.message == "fs probe: failed in 10 ms"  # a probe's answer is information
    assert progress_event(Progress("vip", "monitor", "running", "", 0.01)) is None  # routine: no line
    assert progress_event(Progress("vip", "monitor", "failed", "exited 1", 0.01)).level == "error"
    ev = progress_event(Progress("", "fence", "failed", "BMC unreachable", 2.0))
    assert (ev.kind, ev.message, ev.level) == ("fence", "fence: failed in 2000 ms (BMC unreachable)", "warn")
    ev = progress_event(Progress("", "ping", "ok", "10.0.0.254", 0.002))
    assert (ev.kind, ev.message, ev.level) == ("ping", "ping: ok in 2 ms (10.0.0.254)", "info")
