"""`hasync lab bench failover --idle-only`: the options and the median of the runs (pure parts)."""

from __future__ import annotations

from hasync.failover import bench


def test_idle_only_options():
    a = bench.build_parser().parse_args(["--idle-only", "--idle-runs", "5", "--idle", "20"])
    assert a.idle_only and a.idle_runs == 5 and a.idle == 20.0
    b = bench.build_parser().parse_args([])
    assert not b.idle_only and b.idle_runs == 1


def test_median_of_the_runs_skips_missing_figures():
    assert bench._median([1.5, 0.9, 1.2]) == 1.2
    assert bench._median([1.0, 2.0, None, 4.0, 3.0]) == 2.5
    assert bench._median([None]) is None
    assert bench._median([]) is None
