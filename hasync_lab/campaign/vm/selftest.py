"""Every audit of the vm tier, run once against a violation made on purpose on the live
VM lab before any fault: it must fire, or the campaign refuses to report success.

Real where it can be: the VIP put on the standby node behind hasync's back (both
nodes hold it, two MACs answer ARP), the VIP pulled from the active node with a short
bound (liveness), a forbidden line in a daemon's log and a daemon exit the campaign did
not cause in the unit loop's log (read back from the guest by the audits' own path), a
record removed from a copy of the server's record file (the checker must name it),
4 KiB written under DRBD's back on the standby's backing disk (the digests must differ;
`drbdadm invalidate` then resyncs it and they must agree again), a bootstrap plan that
is allowed to destroy /dev/vdb. DRBD primary on both nodes cannot be made while they
are connected (DRBD refuses, as it should) and is not worth a split brain: the
sampler's bookkeeping is fed two sample pairs that say so.
"""

from __future__ import annotations

import time

from hasync_lab.campaign.live import wait_for
from hasync_lab.campaign.ns.selftest import case_stray_and_limits
from hasync_lab.campaign.vm import audits as A
from hasync_lab.campaign.vm.prep import DAEMON_LOG, EXITS_LOG
from hasync_lab.campaign.vm.truth import Sampler
from hasync_lab.vm import manual
from hasync_lab.vm.seed import VIP


def _wait(pred, timeout: float) -> bool:
    return wait_for(pred, timeout, 0.2)


def case_dual_run_and_arp(run) -> dict[str, bool]:
    act, stb = run.inj.resolve("active")
    before = len(run.sampler.overlaps)
    lab = run.lab
    seen = lambda: {o.what for o in run.sampler.overlaps[before:]}  # noqa: E731
    lab.sh(stb, f"ip addr add {VIP}/24 dev eth0")
    try:
        _wait(lambda: {"vip", "arp"} <= seen(), 20.0)
    finally:
        lab.sh(stb, f"ip addr del {VIP}/24 dev eth0", errexit=False)
        lab.sh(act, f"busybox arping -U -c 2 -I eth0 {VIP}", errexit=False)  # the clients' ARP caches back
    hits = A.overlap_hits(run.sampler.overlaps[before:], [], -1, run.t.stray_bound_s, False, time.monotonic())
    fake = Sampler(lab, run.nodes, "", lambda *a: None)
    for k in range(2):
        fake.observe({n: {"up": True, "pieces": {"drbd"}, "ro": "Primary/Unknown"} for n in run.nodes}, k, k + 0.1)
    drbd = A.overlap_hits(fake.overlaps, [], -1, run.t.stray_bound_s, False, time.monotonic())
    return {"dual-run": any(h.audit == "dual-run" and not h.limit and h.evidence["what"] == "vip" for h in hits)
            and [h.evidence["what"] for h in drbd] == ["drbd"],
            "arp": any(h.audit == "arp" and not h.limit for h in hits)}


def case_liveness(run) -> bool:
    act, _ = run.inj.resolve("active")
    run.lab.sh(act, f"ip addr del {VIP}/24 dev eth0")
    ok, _why = run.await_clean(1.0)
    back, why = run.await_clean(run.t.liveness_bound_s)  # the VIP's monitor brings it back
    if not back:
        raise RuntimeError(f"self-test: the cluster did not recover from a pulled VIP: {why}")
    return not ok


def case_log_and_died(run) -> dict[str, bool]:
    _, stb = run.inj.resolve("active")
    run.lab.sh(stb, f"echo 'Traceback (most recent call last): campaign self-test' >> {DAEMON_LOG}; "
                    f"echo \"$(date +%s.%N) 99999 134\" >> {EXITS_LOG}")
    logged = A.log_hits(run.logs, run.nodes, -1, False)
    died = A.died_hits(run.logs, run.nodes, run.expected_exits, -1)
    return {"log": any(h.audit == "log" and not h.limit for h in logged),
            "daemon-died": any(h.evidence.get("pid") == 99999 and h.evidence.get("signal") == 6 for h in died)}


def case_records(run) -> bool:
    act, _ = run.inj.resolve("active")
    w = next(iter(run.writers.values()))
    manual.wait_acked(run.lab, "client1", w, 3, timeout=60)
    n = A.acked_count(run.lab, "client1", w)
    path = f"{A.EXPORT_DIR}/{w['data'].rsplit('/', 1)[1]}"
    run.lab.sh(act, f"grep -v '^00000002 ' {path} > /tmp/campaign-selftest-records")
    missing, _bad, first = A.check_file(run.lab, act, "/tmp/campaign-selftest-records", n)
    whole, _, _ = A.check_file(run.lab, act, path, n)
    run.lab.sh(act, "rm -f /tmp/campaign-selftest-records")
    return missing == 1 and first == [2] and whole == 0 and not A.records_hits(run.lab, "client1", run.writers, act, -1)


def case_drbd_data(run) -> bool:
    act, stb = run.inj.resolve("active")
    lab = run.lab
    for n in run.nodes:
        manual.wait_drbd(lab, n, "UpToDate/UpToDate", timeout=300)
    lab.sh(stb, "head -c 4096 /dev/urandom > /tmp/junk && dd if=/tmp/junk of=/dev/vdb bs=4096 seek=256 "
                "oflag=direct conv=notrunc status=none && rm /tmp/junk")
    differ = A.drbd_digests(lab, act, run.nodes)
    fired = bool(A.data_hits(differ, -1, {}))
    lab.sh(stb, "drbdadm invalidate r0")
    time.sleep(2)
    manual.wait_drbd(lab, stb, "UpToDate/UpToDate", timeout=300)
    again = A.drbd_digests(lab, act, run.nodes)  # and it does not fire on disks that agree
    if A.data_hits(again, -1, {}):
        raise RuntimeError(f"self-test: the backing disks differ after a full resync: {again}")
    return fired


def case_bootstrap(run) -> bool:
    _, stb = run.inj.resolve("active")
    r = run.lab.exec(stb, ("hasync", "bootstrap", "--dry-run", "--allow-data-loss", "/dev/vdb"), timeout=180)
    real = A.plan_hits(stb, r.stdout, -1)
    fed = A.plan_hits(stb, "  run mkfs.ext4 /dev/havg/data\n  run wipefs -a /dev/vdb\n", -1)
    run.trace(stb, "selftest", f"bootstrap --dry-run --allow-data-loss /dev/vdb plans: "
                               f"{sorted(h.evidence['plans'] for h in real) or 'nothing destructive'}")
    return len(fed) == 2 and not A.plan_hits(stb, "  run drbdadm up r0\n", -1)


def run_selftest(run) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for name, case in (("dual-run", case_dual_run_and_arp), ("limits", case_stray_and_limits),
                       ("liveness", case_liveness), ("log", case_log_and_died), ("nfs-records", case_records),
                       ("drbd-data", case_drbd_data), ("bootstrap-plan", case_bootstrap)):
        try:
            got = case(run)
        except Exception as e:  # a case that cannot run did not fire
            run.trace("both", "selftest", f"{name}: could not run: {e!r}")
            got = False
        if isinstance(got, dict):
            out.update({k: v for k, v in got.items() if k != "stray"})
        else:
            out[name] = bool(got)
        run.trace("both", "selftest", f"{name}: {got}")
    return out
