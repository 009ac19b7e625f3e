"""Issue 6 with hasync itself on real DRBD 8.4, LVM and kernel NFS (runs after
test_storage.py: it leaves bootstrap's files on the nodes). The steps live in
hasync_lab/vm/scenario.py (shared with `hasync lab bench failover --vm` and the VM demo).

1. `hasync bootstrap` on node1 and `--join node1` on node2 (real resource, create-md,
   initial sync, LVM on /dev/drbd0, ext4, /var/lib/nfs on the replicated disk, exports
   with fsid, NFS off at boot);
2. `hasync failover run` on both: the chain comes up on node1;
3. the client's hard NFSv3 mount on the VIP with a checksummed fsync'd record stream;
6. `hasync migrate --to node2` and back with the client writing: no client error;
4. node1 powered off: node2 detects it, fences it through the lab's BMC wire, promotes
   DRBD, runs the chain; the client resumes by itself, no stale file handle; issue 15's
   trial per client kind: a v4.2 mount (Debian 12's default) writes beside the v3 one,
   each kind holds a flock and an fcntl lock across the crash, none is lost, no
   acknowledged write is lost, and v4.2 is back within v3's time + the grace time (it
   reclaimed; issue 15's v3 + 2 s target is the bench's);
5. every acknowledged record is on node2, intact; node1 powers on again, rejoins as
   DRBD secondary, resyncs, its daemon settles standby; `hasync status` and
   `hasync doctor` are clean on both nodes;
7. split-brain guard: every cable of the active node (node2) cut, fencing required: at
   no sample are both nodes DRBD primary or is the VIP reachable on both; node1 fences
   node2 and takes over; the client resumes with every acknowledged record intact.
   Then node2 rejoins and the *standby* is cut off: it reaches no ping node, so it does
   not take over; the active node1's DRBD loses its peer, its fence-peer handler
   (`hasync fence --tiebreak`) powers node2 off, and node1 keeps serving.
"""

from __future__ import annotations

import time

import pytest

from hasync_lab.bench import vm_clients
from hasync_lab.vm import field_checks as fc
from hasync_lab.vm import grace, manual
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import VIP, default_guests

from .checks import (
    assert_bootstrap_again_refused,
    assert_crash_taken_over,
    assert_guard_holds,
    assert_healthy,
    assert_migrate_there_and_back,
    assert_nfs_v4_served,
    bootstrap_and_read_back,
    check_no_acked_write_lost,
)
from .conftest import TIMINGS

pytestmark = pytest.mark.vm


def test_bootstrap_failover_crash_rejoin_and_split_brain_guard(vm_lab):  # noqa: PLR0915 -- one story
    lab = vm_lab
    t0 = time.monotonic()
    lab.report("step 1: bootstrap")
    # 1. bootstrap: node1 first, node2 joins over ssh; node1 has a VG of its own, which
    # the LVM filter bootstrap writes must leave visible
    TIMINGS.update({f"scenario_{k}": v for k, v in bootstrap_and_read_back(lab).items()})

    lab.report("step 2: the failover daemons")
    # 2. the failover daemons: the chain comes up on node1 (preferred), node2 stands by
    sc.start_cluster(lab)
    assert f"{VIP}/24" in lab.sh("node1", "ip -o addr show eth0")
    assert manual.drbd_state(lab, "node1")["ro"] == "Primary/Secondary"
    TIMINGS["scenario_chain_up_s"] = round(time.monotonic() - t0, 2)
    assert_nfs_v4_served(lab, "node1", "node2")

    lab.report("step 3: the client")
    # 3. the client: hard NFSv3 mount on the VIP, numbered checksummed fsync'd records
    sc.mount_client(lab)
    w = manual.start_writer(lab, "client1", "/mnt/ha/stream", "scenario")
    manual.wait_acked(lab, "client1", w, 20, timeout=90)

    # an NFSv3 lock held: node1's statd records client1 on the replicated disk, and the
    # node that starts the chain next notifies it (nfsnotify: sm-notify -f -v VIP)
    fc.hold_lock(lab, "client1", "/mnt/ha/lockfile")
    assert fc.statd_records(lab, "node1"), "node1's statd keeps no record of the locking client"
    notified = fc.count_udp_from(lab, "client1", (VIP, *(g.public for g in default_guests(0))))

    lab.report("step 6: hasync migrate to node2 and back")
    # 6 (before the crash). graceful `hasync migrate` to node2 and back while the client
    # writes: the client sees no error at all
    TIMINGS.update({f"scenario_{k}": v for k, v in assert_migrate_there_and_back(lab, (w,), notified).items()})

    lab.report("step 4: power node1 off")
    # 4. power node1 off: node2 detects, fences, takes over; the client resumes. Issue 15:
    # one trial per client kind -- beside the v3 stream a v4.2 mount (Debian 12's default)
    # writes its own, and each kind holds a flock and an fcntl lock across the crash that
    # the other mount's attempt must find still theirs (reclaimed, not lost)
    clients = vm_clients.start(lab, "scenario", writers={"v3": w}, kinds=vm_clients.ONE_VM)
    grace_s = vm_clients.grace_time(lab, "node1")
    marked = vm_clients.arm(lab, clients, "scenario", "node2")
    crash = sc.crash_and_wait(lab, "node1", "node2", w)
    TIMINGS["scenario_crash_to_active_s"] = crash.active_s
    TIMINGS["scenario_crash_to_client_resumed_s"] = crash.resumed_s
    assert_crash_taken_over(lab, crash)
    nfs = vm_clients.measure(lab, clients, crash.t_crash_host, "node2", grace_s, marked, resumed={"v3": crash.resumed_s})
    for row in nfs["clients"]:
        TIMINGS[f"scenario_crash_to_{row['kind']}_resumed_s"] = row["resumed_s"]
    lab.report("  clients: " + ", ".join(f"{r['kind']} resumed {r['resumed_s']:.2f}s, lost {r['lost_writes']}, locks lost "
                                         f"{r['locks_lost']}" for r in nfs["clients"]) + f"; {grace.summary(nfs['grace'])}")
    # The bound for the v4.2 client in one trial: back before the v3 client's time + the
    # grace time, i.e. it did not wait out the grace (or a lease) as a client that cannot
    # reclaim does. Issue 15's target, v3 + 2 s, is the bench's (medians over 5 trials):
    # one trial under TCG measured 0.15 s and 4.8 s behind v3 (the v4 client resumes when
    # its reclaim ends the grace), so a 2 s assert here would fail CI at random.
    found = vm_clients.problems(nfs, slack_s=grace_s)
    if found:  # the client's kernel says how it recovered (lost locks, reclaim errors)
        lab.report("  client1's kernel log (NFS):\n" + "\n".join(
            ln for ln in lab.exec("client1", ("dmesg",)).stdout.splitlines() if "nfs" in ln.lower() or "lock" in ln.lower())[-3000:])
    assert not found, (found, nfs)
    v4 = next(c for c in clients if c.k.kind == "v4.2")
    assert "Stale" not in manual.stop_writer(lab, v4.k.vm, v4.w)
    writer_log = manual.stop_writer(lab, "client1", w)
    assert "Stale" not in writer_log, writer_log

    lab.report("step 5: records intact, node1 rejoins")
    # 5. every acknowledged record is on node2, intact; node1 returns and rejoins. Before
    # its DRBD is up, bootstrap re-run there reads the metadata's generation identifiers
    # (not new: it held replicated data) and refuses to force it Primary, changing nothing
    check_no_acked_write_lost(lab, w, "node2")
    again: list = []
    TIMINGS.update({f"scenario_rejoin_{k}": v for k, v in
                    sc.rejoin(lab, "node1", "node2", before_up=lambda: again.append(fc.bootstrap_again(lab, "node1"))).items()})
    assert_bootstrap_again_refused(again[0])
    assert_healthy(lab, active="node2", standby="node1")

    lab.report("step 7: split-brain guard")
    # 7. split-brain guard: node2 (active) loses every cable to node1 (and the client);
    # fencing required: node1 must fence it before promoting, never two primaries. 7b:
    # node2 back, the standby is cut off: node1's DRBD fence-peer handler fences it
    TIMINGS.update({f"scenario_{k}": v for k, v in assert_guard_holds(lab).items()})
