"""`hasync lab bench failover --idle-only`: the options and the median of the runs (pure parts)."""

from __future__ import annotations

from hasync_lab.bench import failover as bench
from hasync_lab.bench import failover_lab


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


def test_ticks_count_every_thread_dead_ones_included():
    """The at-rest figure's source (utime + stime of /proc/PID/stat) bills the process for
    all its threads, one that has ended too (summing the live threads' schedstat would
    lose it), and agrees with what the process itself sees (os.times)."""
    import os
    import threading
    import time

    def spin(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    me = [os.getpid()]
    hz = os.sysconf("SC_CLK_TCK")
    k0, t0 = failover_lab.cpu_ticks(me), os.times()
    th = threading.Thread(target=spin, args=(0.3,))
    th.start()
    spin(0.1)
    th.join()
    k1, t1 = failover_lab.cpu_ticks(me), os.times()
    got = (k1 - k0) / hz
    used = (t1.user + t1.system) - (t0.user + t0.system)
    assert got >= 0.35  # both threads' spinning, the ended thread included
    assert abs(got - used) <= 0.05, (got, used)
    assert failover_lab.cpu_ticks([2**22 + 12345]) == 0  # no such process: nothing


def test_the_probe_script_is_where_the_bench_runs_it_from():
    """The listener/client/stall probe runs as a script by path (system python3 in the
    nodes): the path must name the file that ships beside the bench."""
    import os

    from hasync_lab.bench import probe

    assert os.path.samefile(failover_lab.PROBE, probe.__file__)
