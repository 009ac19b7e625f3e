"""Late wake-ups of the daemon's main loop (StallMeter), on a fake clock."""

from __future__ import annotations

from hasync.failover.stall import StallMeter, stall_threshold


def test_threshold_is_half_warntime_with_a_floor():
    assert stall_threshold(0.025) == 0.0125
    assert stall_threshold(15.0) == 7.5
    assert stall_threshold(0.004) == 0.005  # never below timer granularity


def test_on_time_and_slightly_late_wake_ups_are_not_stalls():
    m = StallMeter(threshold=0.0125)
    assert m.observe(due=10.0, now=9.990) is None  # woken early (an event)
    assert m.observe(due=10.0, now=10.001) is None  # timer granularity
    assert m.observe(due=10.0, now=10.0125) is None  # exactly the threshold: not yet
    assert m.count == 0 and m.last_at is None and not m.recent(11.0)


def test_a_late_wake_up_is_reported_with_how_late():
    m = StallMeter(threshold=0.0125)
    st = m.observe(due=10.0, now=10.3)
    assert st is not None
    assert abs(st.late_s - 0.3) < 1e-9 and st.due == 10.0 and st.count == 1 and st.unreported == 0
    msg = st.message(m.threshold)
    assert "300 ms late" in msg and "threshold 12 ms" in msg and "not the network" in msg
    snap = m.snapshot(now=15.0)
    assert snap["scheduler_stalls"] == 1
    assert snap["worst_late_wake_ms"] == 300.0 and snap["last_stall_ms"] == 300.0
    assert snap["last_stall_ago_s"] == 4.7
    assert m.recent(15.0) and not m.recent(71.0)


def test_reports_are_rate_limited_and_the_rest_summed_up():
    m = StallMeter(threshold=0.01, report_interval=1.0)
    assert m.observe(0.0, 0.05) is not None  # first: reported
    assert m.observe(0.1, 0.13) is None  # 0.08 s after the report: counted only
    assert m.observe(0.2, 0.4) is None  # worst of the unreported: 200 ms
    assert m.count == 3
    st = m.observe(1.5, 1.52)  # past the interval: reported, with the two in between
    assert st is not None and st.count == 4 and st.unreported == 2
    assert abs(st.worst_unreported_s - 0.2) < 1e-9
    assert "2 more since the last warning (worst 200 ms)" in st.message(m.threshold)
    st2 = m.observe(3.0, 3.05)
    assert st2 is not None and st2.unreported == 0  # the summary starts over
    assert abs(m.worst_s - 0.2) < 1e-9


def test_snapshot_before_any_stall():
    snap = StallMeter(threshold=0.5).snapshot(now=100.0)
    assert snap == {"scheduler_stalls": 0, "stall_threshold_ms": 500.0, "worst_late_wake_ms": 0.0,
                    "last_stall_ms": None, "last_stall_ago_s": None}


def test_a_loop_still_busy_past_its_deadline_is_told_apart_from_a_host_stall():
    m = StallMeter(threshold=0.0125, report_interval=0.0)
    st = m.observe(due=10.0, now=10.05, waited_at=10.04)  # 40 of the 50 ms: our own work
    assert st is not None and abs(st.busy_s - 0.04) < 1e-9
    msg = st.message(m.threshold)
    assert msg.startswith("slow main loop: it ran 50 ms late") and "40 ms of it in the daemon's own work" in msg
    st = m.observe(due=20.0, now=20.3, waited_at=19.99)  # began to wait in time: the host
    assert st is not None and st.busy_s == 0.0 and st.message(m.threshold).startswith("scheduler stall")
    st = m.observe(due=30.0, now=30.02, waited_at=30.005)  # mostly the host
    assert st is not None and st.message(m.threshold).startswith("scheduler stall")
    assert m.count == 3  # both kinds are counted


def test_throttle_admits_one_a_second_and_names_the_held_ones():
    from hasync.failover.stall import Throttle

    t = Throttle(1.0)
    assert t.admit(10.0) == 0  # the first is always logged
    assert t.admit(10.2) is None and t.admit(10.9) is None  # held back, counted
    assert t.admit(11.0) == 2  # a second later: logged, naming the two held back
    assert t.admit(11.5) is None
    assert t.admit(30.0) == 1
    assert t.total == 6


def test_the_worst_wake_up_is_kept_below_the_threshold_too():
    # deadtime 5 s / warntime 2 s: the threshold is 1 s, and a week of wake-ups at most
    # 40 ms late must say 40 ms (how close the host came), not 0 (the figure an operator
    # shortens deadtime by, docs/failover.md "Choosing timings")
    m = StallMeter(threshold=1.0)
    assert m.watch_above() == 0.0  # nothing seen yet: the first late wake-up is observed
    assert m.observe(due=10.0, now=10.004) is None
    assert abs(m.watch_above() - 0.004) < 1e-9  # only a later one is worth a call now
    assert m.observe(due=11.0, now=11.040) is None
    assert m.observe(due=12.0, now=12.010) is None  # not a new worst
    snap = m.snapshot(now=20.0)
    assert snap["worst_late_wake_ms"] == 40.0 and snap["scheduler_stalls"] == 0
    assert snap["last_stall_ms"] is None and not m.recent(20.0)
    assert m.observe(due=13.0, now=14.5) is not None  # a stall: counted and reported
    assert m.watch_above() == 1.0  # from now on every stall is observed, new worst or not
    assert m.count == 1 and m.snapshot(now=15.0)["worst_late_wake_ms"] == 1500.0
