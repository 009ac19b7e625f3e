"""The timeline on disk, on a fake clock: entries, failover records, trimming."""

from __future__ import annotations

import json

from hasync.effects.clock import FakeClock
from hasync.failover.timeline import Timeline, read_last, read_tail


def test_a_failover_record_from_detection_to_settling(tmp_path):
    clock = FakeClock(t=100.0, epoch=1_700_000_000.0)
    tl = Timeline(tmp_path, "node2", clock=clock)
    e = tl.add("late", "late heartbeat", "warn")
    assert e["t"] == "2023-11-14T22:15:00.000Z" and e["mono"] == 100.0 and "offset_ms" not in e  # no record open
    clock.advance(0.25)
    tl.add("detect", "node1 declared dead", "warn", reason="deadtime")
    clock.advance(0.1234)
    tl.add("role", "role standby -> active", "info")
    assert tl.current is not None and tl.current["events"][-1]["offset_ms"] == 123.4
    tl.settle("active")
    assert tl.current is None and tl.last["result"] == "active" and tl.last["duration_ms"] == 123.4
    tl.flush()
    lines = read_tail(tmp_path)
    assert [x["kind"] for x in lines] == ["late", "detect", "role"] and lines[1]["data"] == {"reason": "deadtime"}
    assert read_last(tmp_path)["trigger"] == "node1 declared dead"
    assert Timeline(tmp_path, "node2", clock=clock).last["result"] == "active"  # kept across restarts


def test_the_file_is_trimmed_by_half_when_it_grows(tmp_path):
    tl = Timeline(tmp_path, "n", max_lines=10, clock=FakeClock())
    for i in range(11):
        tl.add("x", f"m{i}")
    tl.flush()
    kept = [json.loads(x)["message"] for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert kept == ["m6", "m7", "m8", "m9", "m10"]
