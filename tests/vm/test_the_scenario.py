"""Issue 6 with hasync itself on real DRBD 8.4, LVM and kernel NFS (runs after
test_storage.py: it leaves bootstrap's files on the nodes).

Covered: `hasync bootstrap` on node1 and `--join node1` on node2 (real resource,
create-md, initial sync, LVM on /dev/drbd0, ext4, /var/lib/nfs on the replicated disk,
exports with fsid, NFS off at boot); `hasync failover run` on both bringing the chain up
on node1; the client's hard NFSv3 mount on the VIP with a checksummed fsync'd record
stream; `hasync migrate --to node2` and back with the client writing (no client error);
node1 powered off; node2 detects it and fences it through the lab's BMC wire;
then node2 must promote DRBD, take the chain and the client must resume with every
acknowledged record intact.

Not yet covered (see docs/vm.md): node1's return and resync, `hasync status`/`doctor`
clean afterwards, the split-brain guard, the VM benchmark.
"""

from __future__ import annotations

import time

import pytest

from hasync.lab.vm import manual
from hasync.lab.vm.seed import VIP

from .conftest import TIMINGS

pytestmark = pytest.mark.vm

DAEMON_LOG = "/var/log/hasync-failover.log"


def role(lab, node: str) -> str:
    return lab.exec(node, ("cat", "/run/hasync/role")).stdout.strip()


def wait_role(lab, node: str, want: str, timeout: float) -> float:
    t0 = time.monotonic()
    seen = ""
    while time.monotonic() - t0 < timeout:
        seen = role(lab, node)
        if seen == want:
            return time.monotonic() - t0
        time.sleep(1)
    log = lab.exec(node, ("tail", "-30", DAEMON_LOG)).stdout
    raise AssertionError(f"{node}: role {seen!r}, not {want!r} after {timeout:.0f}s; daemon log:\n{log}")


def test_bootstrap_failover_crash_and_no_acknowledged_write_lost(vm_lab):
    lab = vm_lab
    t0 = time.monotonic()
    # 1. bootstrap: node1 first, node2 joins over ssh
    r = lab.exec("node1", ("hasync", "bootstrap", "--yes"), timeout=600)
    assert r.ok, r.stdout[-3000:] + r.stderr[-3000:]
    r = lab.exec("node2", ("hasync", "bootstrap", "--join", "node1", "--yes"), timeout=600)
    assert r.ok, r.stdout[-3000:] + r.stderr[-3000:]
    TIMINGS["scenario_bootstrap_s"] = round(time.monotonic() - t0, 2)
    assert lab.sh("node1", "readlink /var/lib/nfs").strip().startswith("/srv/ha")
    assert "fsid=" in lab.sh("node2", "cat /etc/exports")
    # lab-only tuning: DRBD 8.4's default resync rate would take ~10 min for the sync
    for n in lab.nodes:
        lab.sh(n, "drbdadm disk-options --c-plan-ahead=0 --resync-rate=200M r0")
    manual.wait_drbd(lab, "node2", "UpToDate/UpToDate", timeout=180)
    # bootstrap leaves the export directory to the admin; the client writes as nobody
    lab.sh("node1", "mkdir -p /srv/ha/export && chmod 1777 /srv/ha/export")

    # 2. the failover daemons: the chain comes up on node1 (preferred), node2 stands by
    for n in lab.nodes:
        lab.spawn(n, "hasync failover run", DAEMON_LOG)
    wait_role(lab, "node1", "active", timeout=240)
    wait_role(lab, "node2", "standby", timeout=60)
    assert f"{VIP}/24" in lab.sh("node1", "ip -o addr show eth0")
    assert manual.drbd_state(lab, "node1")["ro"] == "Primary/Secondary"
    TIMINGS["scenario_chain_up_s"] = round(time.monotonic() - t0, 2)

    # 3. the client: hard NFSv3 mount on the VIP, numbered checksummed fsync'd records
    lab.sh("client1", f"mkdir -p /mnt/ha\nmount -t nfs -o vers=3,hard,timeo=10 {VIP}:/srv/ha/export /mnt/ha\n",
           timeout=120)
    w = manual.start_writer(lab, "client1", "/mnt/ha/stream", "scenario")
    manual.wait_acked(lab, "client1", w, 20, timeout=90)

    # 6 (before the crash). graceful `hasync migrate` to node2 and back while the client
    # writes: the client sees no error at all
    for target in ("node2", "node1"):
        before = manual.acked(lab, "client1", w)
        t_mig = time.monotonic()
        r = lab.exec("node1", ("hasync", "migrate", "--to", target, "--wait", "240"), timeout=300)
        assert r.ok, f"migrate --to {target}: " + r.stdout[-2000:] + r.stderr[-2000:]
        wait_role(lab, target, "active", timeout=120)
        manual.wait_acked(lab, "client1", w, before + 10, timeout=180)
        TIMINGS[f"scenario_migrate_to_{target}_s"] = round(time.monotonic() - t_mig, 2)
        assert manual.drbd_state(lab, target)["ro"] == "Primary/Secondary"
    errors = lab.exec("client1", ("cat", w["log"])).stdout
    assert errors.strip() == "", f"the client saw errors during migrate:\n{errors[-2000:]}"

    # 4. power node1 off: node2 detects, fences, takes over
    lab.crash("node1")
    at_crash = manual.acked(lab, "client1", w)
    t_crash = time.monotonic()
    deadline = t_crash + 90
    log = ""
    while time.monotonic() < deadline:
        full = lab.exec("node2", ("cat", DAEMON_LOG)).stdout
        # only what node2 logged since it noticed the crash (the migrations started drbd too)
        log = full[full.rfind("node1 declared dead"):] if "node1 declared dead" in full else ""
        if "fenced node1" in log and ("drbd start" in log or role(lab, "node2") == "active"):
            break
        time.sleep(1)
    assert "node1 declared dead" in log, full[-3000:]
    assert "fenced node1" in log, log[-3000:]
    assert not lab.running("node1")

    wait_role(lab, "node2", "active", timeout=120)
    resumed = manual.wait_acked(lab, "client1", w, at_crash + 5, timeout=180)
    TIMINGS["scenario_crash_to_client_resumed_s"] = round(time.monotonic() - t_crash, 2)
    assert resumed >= 0
    writer_log = manual.stop_writer(lab, "client1", w)
    assert "Stale" not in writer_log, writer_log

    # 5. every acknowledged record is on node2, intact
    ack_text = lab.exec("client1", ("cat", w["ack"])).stdout
    data_text = lab.exec("node2", ("cat", "/srv/ha/export/stream")).stdout
    missing, bad = manual.check_records(ack_text, data_text)
    assert missing == [], f"acknowledged records lost: {missing[:20]}"
    assert len(bad) <= 1, f"corrupt records: {bad[:5]}"

