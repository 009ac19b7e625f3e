"""Issue 15's client figures without VMs: the lock holder and contender script (run here,
on a local directory: the same flock/fcntl calls the client VMs make on NFS), the lock
verdict, the server's grace timeline from its kernel log, the per-kind aggregation and
its JSON shape, and the baseline config derived from a cluster config."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from hasync.config import load, loads
from hasync_lab.bench import vm_clients as vc
from hasync_lab.vm import grace, locks, seed
from hasync_lab.vm.image_build import GUEST_DIR

SCRIPT = str(GUEST_DIR / "nfs_locks.py")


# ---- the guest's lock script ---------------------------------------------------------


def _try(d) -> dict:
    out = subprocess.run([sys.executable, SCRIPT, "try", str(d), "v3"], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def test_a_held_lock_is_refused_to_another_process_and_granted_once_released(tmp_path):
    status, stop = tmp_path / "st.json", tmp_path / "stop"
    p = subprocess.Popen([sys.executable, SCRIPT, "hold", str(tmp_path), "v3", str(status), str(stop)])
    try:
        deadline = time.monotonic() + 20
        while not status.exists():
            assert time.monotonic() < deadline and p.poll() is None, "the holder did not lock"
            time.sleep(0.05)
        st = json.loads(status.read_text())
        assert st["errors"] == [] and st["last_ok"] >= st["locked"]
        # the overlapping range and the flock are refused, the control range is not
        assert _try(tmp_path) == {"flock": "refused", "fcntl": "refused", "control": "granted"}
    finally:
        stop.touch()
        p.wait(10)
    assert _try(tmp_path) == {"flock": "granted", "fcntl": "granted", "control": "granted"}


def test_the_script_refuses_bad_usage():
    r = subprocess.run([sys.executable, SCRIPT, "grab"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "Usage" in r.stderr


# ---- the verdict ---------------------------------------------------------------------

HELD = {"locked": 100.0, "last_ok": 150.0, "errors": []}
REFUSED = {"flock": "refused", "fcntl": "refused", "control": "granted"}


def test_locks_kept_when_refused_to_the_other_client_and_the_holder_is_fine():
    v = locks.verdict(HELD, True, REFUSED, since=120.0)
    assert v["locks_lost"] == 0 and v["holder_ok"] and v["conclusive"]


def test_a_lock_granted_to_the_other_client_was_lost():
    v = locks.verdict(HELD, True, {**REFUSED, "fcntl": "granted"}, since=120.0)
    assert v["locks_lost"] == 1 and v["lost"] == ["fcntl"]


def test_the_holders_io_failing_after_the_crash_loses_that_lock_only():
    st = {**HELD, "errors": ["110.0 flock: [Errno 5] old", "130.5 flock: [Errno 5] Input/output error"]}
    v = locks.verdict(st, True, REFUSED, since=120.0)
    assert v["lost"] == ["flock"] and v["holder_errors"] == ["130.5 flock: [Errno 5] Input/output error"]
    # an error from before the crash is not the failover's
    assert locks.verdict({**HELD, "errors": ["110.0 fcntl: x"]}, True, REFUSED, since=120.0)["locks_lost"] == 0


def test_a_dead_holder_lost_both():
    assert locks.verdict(HELD, False, REFUSED, since=120.0)["locks_lost"] == 2
    assert locks.verdict(None, False, REFUSED, since=120.0)["locks_lost"] == 2


@pytest.mark.parametrize("tried", [
    {**REFUSED, "control": "refused"},  # the contender cannot lock at all: a refusal proves nothing
    {"flock": "timeout", "fcntl": "timeout", "control": "timeout"},
    {**REFUSED, "flock": "error: open: [Errno 116] Stale file handle"},
])
def test_an_attempt_that_proves_nothing_is_inconclusive(tried):
    assert locks.verdict(HELD, True, tried, since=120.0)["conclusive"] is False


# ---- the grace timeline --------------------------------------------------------------

BOOT = """[    3.100000] NFSD: Using nfsdcld client tracking operations.
[    3.200000] NFSD: no clients to reclaim, skipping NFSv4 grace period (net f0000000)
[   60.000000] nfsd: last server has exited, flushing export cache
"""
EARLY = BOOT + """[  100.500000] NFSD: Using nfsdcld client tracking operations.
[  100.600000] NFSD: starting 20-second grace period (net f0000000)
[  102.900000] NFSD: all clients done reclaiming, ending NFSv4 grace period (net f0000000)
"""
TIMER = BOOT + """[  100.500000] NFSD: Using legacy client tracking operations.
[  100.600000] NFSD: starting 90-second grace period (net f0000000)
"""


def test_grace_ended_early_when_every_client_reclaimed():
    k = grace.kernel_grace(EARLY)
    assert k == {"started_k": 100.6, "grace_s": 20, "tracking": "nfsdcld", "ended_k": 102.9, "why": "all clients reclaimed"}
    t = grace.timeline(k, lambda x: 1000.0 + x, t_ref=1090.0, end_grace="Y", seen_ended=1110.0)
    assert t == {"grace_s": 20, "started_s": 10.6, "tracking": "nfsdcld", "why": "all clients reclaimed", "ended_s": 12.9, "lasted_s": 2.3}
    assert "all clients reclaimed" in grace.summary(t)


def test_grace_run_out_is_told_by_the_kernels_silence():
    k = grace.kernel_grace(TIMER)
    assert k == {"started_k": 100.6, "grace_s": 90, "tracking": "legacy"}
    t = grace.timeline(k, lambda x: 1000.0 + x, 1090.0, "Y", seen_ended=1191.5)
    assert (t["why"], t["ended_s"], t["lasted_s"]) == ("timer", 101.5, 90.9)
    assert grace.timeline(k, lambda x: 1000.0 + x, 1090.0, "N", None)["why"] == "in grace"
    # seen over long before its 90 s, and the kernel said nothing
    assert grace.timeline(k, lambda x: 1000.0 + x, 1090.0, "Y", seen_ended=1120.0)["why"] == "early, no reason logged"
    umh = TIMER.replace("Using legacy client", "Using UMH upcall client")
    assert grace.kernel_grace(umh)["tracking"] == "UMH upcall"


def test_grace_skipped_with_no_known_client_and_only_the_last_start_counts():
    k = grace.kernel_grace(BOOT)
    assert k == {"started_k": 3.2, "tracking": "nfsdcld", "grace_s": None, "ended_k": 3.2, "why": "no clients to reclaim"}
    assert "skipped" in grace.summary(grace.timeline(k, lambda x: 1000.0 + x, 1000.0, "Y", None))
    # an early end before the last start belongs to an earlier start
    assert "why" not in grace.kernel_grace(EARLY + "[  200.000000] NFSD: starting 20-second grace period (net f0000000)\n")


def test_no_start_in_the_log():
    assert grace.kernel_grace("[ 1.0] random: crng init done\n") is None
    assert grace.timeline(None, lambda x: x, 0.0, "Y", None) == {"why": "unknown", "end_grace": "Y"}
    # a start but no mark to place it in host time
    assert grace.timeline(grace.kernel_grace(EARLY), None, 0.0, "Y", None)["why"] == "unknown"


def test_marks_place_the_kernels_slow_clock_in_host_time():
    # the guest's printk clock runs at 90 % of the host's: two marks correct rate and offset
    log = EARLY + "[   90.000000] hasync-mark a\n[  108.000000] hasync-mark b\n"
    at = grace.marks(log)
    assert at == {"a": 90.0, "b": 108.0}
    to_host = grace.clock([(at["a"], 5000.0), (at["b"], 5020.0)])
    assert to_host(100.6) == pytest.approx(5011.7778, abs=1e-3)
    t = grace.timeline(grace.kernel_grace(log), to_host, t_ref=5000.0, end_grace="Y", seen_ended=None)
    assert (t["started_s"], t["ended_s"]) == (11.778, 14.333) and t["lasted_s"] == pytest.approx(2.556, abs=2e-3)
    # one mark: an offset only; none: nothing to place it with
    assert grace.clock([(90.0, 5000.0)])(100.0) == 5010.0
    assert grace.clock([]) is None


# ---- the figures ---------------------------------------------------------------------


def _trial(v3: float, v4: float, lost4: int = 0, locks4: int = 0, why: str = "all clients reclaimed") -> dict:
    row = {"lost_writes": 0, "corrupt_records": 0, "stale_handles": 0, "locks": {"conclusive": True}}
    return {"clients": [{**row, "kind": "v3", "resumed_s": v3, "locks_lost": 0},
                        {**row, "kind": "v4.2", "resumed_s": v4, "locks_lost": locks4, "lost_writes": lost4}],
            "grace": {"why": why, "lasted_s": 2.0}}


def test_summarize_per_kind_with_the_keys_the_issue_names():
    s = vc.summarize([_trial(10, 11), _trial(12, 14, locks4=1), _trial(11, 12, lost4=2)])
    assert [c["kind"] for c in s] == ["v3", "v4.2"]
    v4 = s[1]
    assert {"kind", "median_s", "min_s", "max_s", "lost_writes", "stale_handles", "locks_lost"} <= set(v4)
    assert (v4["median_s"], v4["min_s"], v4["max_s"], v4["lost_writes"], v4["locks_lost"], v4["trials"]) == (12, 11, 14, 2, 1, 3)
    assert s[0]["median_s"] == 11 and s[0]["locks_lost"] == 0
    json.dumps(s)  # the bench prints it


def test_side_by_side_and_targets():
    ours = vc.summarize([_trial(10, 11)] * 5)
    base = vc.summarize([_trial(30, 95, locks4=2, why="timer")] * 5)
    rows = vc.side_by_side(ours, base)
    assert rows[1] == {"kind": "v4.2", "median_s": 11, "locks_lost": 0, "baseline_median_s": 95, "baseline_locks_lost": 10, "speedup": 8.64}
    assert vc.targets(ours, manual_sum_s=8.0) == {"v4.2_within_v3_plus_2s": True, "v3_within_1.5x_manual": True,
                                                  "v4.2_within_1.5x_manual": True, "nothing_lost": True}
    t = vc.targets(base, manual_sum_s=8.0)
    assert not t["v4.2_within_v3_plus_2s"] and not t["nothing_lost"]
    assert vc.grace_summary([_trial(1, 1), _trial(1, 1, why="timer")]) == {"why": {"all clients reclaimed": 1, "timer": 1}, "median_lasted_s": 2.0}


def test_the_mount_version_read_from_proc_mounts():
    text = ("192.0.2.10:/srv/ha/export /mnt/ha nfs rw,relatime,vers=3,rsize=131072,hard,proto=tcp 0 0\n"
            "192.0.2.10:/srv/ha/export /mnt/ha4 nfs4 rw,relatime,vers=4.2,rsize=262144,hard 0 0\n")
    assert vc.mounted_version(text, "/mnt/ha") == "v3"
    assert vc.mounted_version(text, "/mnt/ha4") == "v4.2"
    assert vc.mounted_version(text, "/mnt/other") == ""


# ---- the baseline config -------------------------------------------------------------


def _scope(c) -> list[str]:
    return [r.params.get("nfs_server_scope", "") for r in c.resources if r.agent == "heartbeat:nfsserver"]


def test_the_baseline_of_the_example_cluster():
    text = open("profiles/cluster/example.toml").read()
    c = load("profiles/cluster/example.toml")
    assert _scope(c) == ["192.0.2.10"] and c.nfs.grace_time == 20
    b = loads(vc.baseline_toml(text), path="baseline.toml")
    assert (b.nfs.grace_time, b.nfs.lease_time) == (90, 90)
    assert _scope(b) == [""]
    # everything else as it was: the same chain, the same notifier, the same state dir
    assert [r.id for r in b.resources] == [r.id for r in c.resources]
    assert b.nfs.state_dir == c.nfs.state_dir
    nfsd = next(r for r in b.resources if r.agent == "heartbeat:nfsserver")
    assert nfsd.params.get("nfs_no_notify") == "true"


@pytest.mark.parametrize("params", ['{ nfs_server_scope = "192.0.2.10" }', '{ nfs_ip = "192.0.2.10", nfs_server_scope = "192.0.2.10" }'])
def test_the_baseline_drops_the_scope_wherever_it_sits_in_the_table(params):
    text = open("profiles/cluster/example.toml").read()
    text = text.replace('params = { nfs_server_scope = "192.0.2.10", nfs_no_notify = "true" }', f"params = {params}")
    b = loads(vc.baseline_toml(text), path="baseline.toml")
    assert _scope(b) == [""]


def test_the_baseline_of_the_vm_cluster_loads():
    b = loads(vc.baseline_toml(seed.cluster_toml(seed.default_guests(2))), path="vm-baseline.toml")
    assert (b.nfs.grace_time, b.nfs.lease_time) == (90, 90) and set(_scope(b)) <= {""}


def test_the_baseline_nfs_conf():
    conf = "[nfsd]\ngrace-time=20\nlease-time=20\nthreads=8\n[sm-notify]\nlift-grace=n\n"
    out = vc.baseline_nfs_conf(conf)
    assert "grace-time=90" in out and "lease-time=90" in out and "threads=8" in out and "lift-grace=n" in out
    assert "[nfsdcld]\nstoragedir=/var/lib/nfsdcld-local" in out
    assert vc.baseline_nfs_conf(out) == out


def test_the_bench_keys_and_the_text_table_put_ours_beside_the_defaults():
    res = vc.figures([_trial(10, 11)] * 5, [_trial(30, 95, locks4=2, why="timer")] * 5, manual_sum_s=8.0)
    assert set(res) == {"clients", "grace", "baseline", "baseline_grace", "side_by_side", "targets"}
    assert [c["kind"] for c in res["baseline"]] == ["v3", "v4.2"] and res["baseline_grace"]["why"] == {"timer": 5}
    json.dumps(res)
    # without a baseline run: no baseline keys, the targets still
    assert set(vc.figures([_trial(10, 11)], [], None)) == {"clients", "grace", "targets"}
    text = vc.table(res)
    assert "v4.2  median 11 (min 11, max 11)" in text and "median 95" in text and "8.64x faster" in text
    assert "nothing_lost yes" in text


def test_problems_of_one_trial_as_the_scenario_asserts_them():
    assert vc.problems(_trial(10, 11.9)) == []
    assert vc.problems(_trial(10, 12.5)) == ["v4.2 resumed 12.50 s after the crash, later than v3 (10.00 s) + 2 s"]
    bad = vc.problems(_trial(10, 11, lost4=1, locks4=1))
    assert any(p.startswith("v4.2: lost_writes 1") for p in bad) and any(p.startswith("v4.2: locks_lost 1") for p in bad)
    t = _trial(10, 11)
    t["clients"][0]["corrupt_records"] = 1  # the torn last record, never acknowledged
    assert vc.problems(t) == []
    t["clients"][0]["locks"] = {"conclusive": False}
    assert vc.problems(t) == ["v3: the lock check proved nothing: {'conclusive': False}"]


def test_the_second_probe_of_a_restarted_daemon_comes_after_the_longest_agent_timeout():
    c = loads(seed.cluster_toml(seed.default_guests(1)), path="vm.toml")
    longest = max(max(r.start_timeout, r.stop_timeout, r.monitor_timeout) for r in c.resources)
    assert vc.reprobe_after(c) == longest + max(1.0, c.heartbeat.deadtime)
