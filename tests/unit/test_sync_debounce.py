"""The debouncer on a fake clock: quiet time, bounded delay, one batch per burst."""

from hasync.effects.clock import FakeClock
from hasync.sync.debounce import Debouncer, coalesce


def test_single_event_waits_for_quiet_time():
    c = FakeClock()
    d = Debouncer(quiet=0.1, max_delay=1.0)
    d.add("/etc/exports", c.now())
    assert d.take(c.now()) == ()
    c.advance(0.099)
    assert not d.due(c.now())
    c.advance(0.001)
    assert d.take(c.now()) == ("/etc/exports",)
    assert d.take(c.now() + 10) == ()  # taken: a new batch starts empty
    assert d.deadline() is None


def test_burst_is_one_batch_with_each_path_once():
    c = FakeClock()
    d = Debouncer(quiet=0.1, max_delay=1.0)
    batches = []
    for i in range(300):
        d.add(f"/etc/d/f{i % 100}", c.now())
        c.advance(0.002)
        if b := d.take(c.now()):
            batches.append(b)
    c.advance(d.burst_quiet)  # 100 paths: a burst, which waits for its longer pause
    batches.append(d.take(c.now()))
    assert len(batches) == 1
    assert len(batches[0]) == 100


def test_trickle_is_bounded_by_max_delay():
    c = FakeClock()
    d = Debouncer(quiet=0.1, max_delay=1.0)
    start = c.now()
    taken_at = None
    while taken_at is None:
        d.add("/etc/x", c.now())
        c.advance(0.05)  # never quiet for 0.1 s
        if d.take(c.now()):
            taken_at = c.now()
    assert 1.0 <= taken_at - start < 1.06


def test_deadline_is_min_of_quiet_and_max_delay():
    d = Debouncer(quiet=0.2, max_delay=0.5)
    d.add("/a", 10.0)
    assert d.deadline() == 10.2
    d.add("/b", 10.45)
    assert d.deadline() == 10.5  # first + max_delay beats last + quiet (10.65)


def test_max_delay_below_quiet_means_quiet():
    d = Debouncer(quiet=0.3, max_delay=0.1)
    d.add("/a", 0.0)
    assert not d.due(0.2)
    assert d.due(0.3)


def test_coalesce_drops_children_and_duplicates():
    assert coalesce(["/etc/d/a", "/etc/d", "/etc/d/b/c", "/etc/d-x", "/etc/d-x"]) == ("/etc/d", "/etc/d-x")


def test_coalesce_lifts_to_parents_but_not_above_roots():
    paths = [f"/etc/hasync/sub{i}/f{j}" for i in range(10) for j in range(50)]
    out = coalesce(paths, limit=20, roots=["/etc/hasync"])
    assert out == tuple(f"/etc/hasync/sub{i}" for i in range(10))
    out = coalesce(paths, limit=5, roots=["/etc/hasync"])
    assert out == ("/etc/hasync",)
    assert coalesce(["/etc/exports", "/etc/hosts"], limit=1, roots=["/etc/exports", "/etc/hosts"]) == (
        "/etc/exports",
        "/etc/hosts",
    )


def test_burst_waits_for_quiet_up_to_its_own_bound():
    c = FakeClock()
    d = Debouncer(quiet=0.1, max_delay=1.0, burst_size=32, burst_max_delay=10.0)
    start = c.now()
    i = 0
    while not d.due(c.now()):
        for _ in range(5):  # a writer that never pauses for 0.1 s
            d.add(f"/etc/d/f{i}", c.now())
            i += 1
        c.advance(0.05)
    assert 10.0 <= c.now() - start < 10.1
    assert len(d.take(c.now())) == i


def test_small_batches_keep_max_delay():
    d = Debouncer(quiet=0.1, max_delay=1.0, burst_size=32, burst_max_delay=10.0)
    for k in range(20):
        d.add(f"/etc/f{k % 3}", k * 0.05)
    assert d.deadline() == 1.0


def test_burst_needs_a_longer_pause_than_a_small_batch():
    """A writer stalling 0.2 s mid-burst (a loaded machine) does not cut its burst in two;
    a small batch still runs after the plain quiet time."""
    c = FakeClock()
    d = Debouncer(quiet=0.1, max_delay=1.0, burst_size=32, burst_max_delay=10.0, burst_quiet=0.5)
    for i in range(100):
        d.add(f"/etc/d/f{i}", c.now())
        c.advance(0.001)
    c.advance(0.2)  # the stall
    assert d.take(c.now()) == ()
    for i in range(100, 200):
        d.add(f"/etc/d/f{i}", c.now())
        c.advance(0.001)
    last = c.now() - 0.001
    assert abs(d.deadline() - (last + 0.5)) < 1e-9
    c.advance(0.45)  # 0.451 s after the last event: longer than quiet, shorter than burst_quiet
    assert d.take(c.now()) == ()
    c.advance(0.05)
    assert len(d.take(c.now())) == 200

    small = Debouncer(quiet=0.1, max_delay=1.0, burst_size=32, burst_max_delay=10.0, burst_quiet=0.5)
    small.add("/etc/exports", 5.0)
    assert abs(small.deadline() - 5.1) < 1e-9
