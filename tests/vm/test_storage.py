"""Real DRBD, LVM and kernel NFS in the guests, by hand (no hasync logic under test here):
the foundation the VM scenario tests stand on."""

from __future__ import annotations

import time

import pytest

from hasync_lab.vm import manual
from hasync_lab.vm.seed import VIP

from .conftest import TIMINGS

pytestmark = pytest.mark.vm


def test_drbd_syncs_and_switches_roles(vm_lab):
    t0 = time.monotonic()
    TIMINGS["drbd_initial_sync_s"] = round(manual.drbd_up(vm_lab, "node1"), 2)
    assert manual.drbd_state(vm_lab, "node1")["ro"] == "Primary/Secondary"
    assert manual.drbd_state(vm_lab, "node2")["ro"] == "Secondary/Primary"

    # protocol C: a write acknowledged on node1 is on node2's disk too
    vm_lab.sh("node1", "head -c 4194304 /dev/urandom > /tmp/pattern\n"
                       "dd if=/tmp/pattern of=/dev/drbd0 bs=1M oflag=direct status=none")
    want = vm_lab.sh("node1", "sha256sum < /tmp/pattern").split()[0]

    # a secondary cannot even open the device
    assert not vm_lab.exec("node2", ("dd", "if=/dev/drbd0", "of=/dev/null", "count=1")).ok

    vm_lab.sh("node1", "drbdadm secondary r0")
    vm_lab.sh("node2", "drbdadm primary r0")
    assert manual.drbd_state(vm_lab, "node2")["ro"] == "Primary/Secondary"
    got = vm_lab.sh("node2", "head -c 4194304 /dev/drbd0 | sha256sum").split()[0]
    assert got == want

    # and back, with a write on node2 that node1 then reads
    vm_lab.sh("node2", "echo from-node2 | dd of=/dev/drbd0 bs=512 seek=100 conv=fsync oflag=direct status=none\n"
                       "drbdadm secondary r0")
    vm_lab.sh("node1", "drbdadm primary r0")
    assert vm_lab.sh("node1", "dd if=/dev/drbd0 bs=512 skip=100 count=1 status=none | head -n1").strip() == "from-node2"
    st = manual.drbd_state(vm_lab, "node1")
    assert st == {"cs": "Connected", "ro": "Primary/Secondary", "ds": "UpToDate/UpToDate"}
    TIMINGS["drbd_test_s"] = round(time.monotonic() - t0, 2)


def test_lvm_on_drbd_and_nfs_to_the_client(vm_lab):
    t0 = time.monotonic()
    manual.drbd_up(vm_lab, "node1")
    manual.lvm_fs_create(vm_lab, "node1")
    # the filter hides the backing disk: exactly one PV, on /dev/drbd0 (no duplicate)
    pvs = vm_lab.sh("node1", "pvs --noheadings -o pv_name").split()
    assert pvs == ["/dev/drbd0"]
    vm_lab.sh("node1", manual.nfs_start_script(VIP), timeout=60)

    for vers in ("3", "4.2"):
        vm_lab.sh("client1", f"mkdir -p /mnt/ha\nmount -t nfs -o vers={vers},hard,timeo=20 {VIP}:/srv/ha/export /mnt/ha\n"
                             f"echo written-over-nfs{vers} > /mnt/ha/v{vers}\nsync\n", timeout=90)
        assert vm_lab.sh("client1", f"cat /mnt/ha/v{vers}").strip() == f"written-over-nfs{vers}"
        vm_lab.sh("client1", "umount /mnt/ha")
        assert vm_lab.sh("node1", f"cat /srv/ha/export/v{vers}").strip() == f"written-over-nfs{vers}"
    TIMINGS["lvm_nfs_test_s"] = round(time.monotonic() - t0, 2)


def test_manual_failover_keeps_the_clients_data(vm_lab):
    """The field notes' chain moved by hand: node1 releases, node2 takes over; the client's
    hard mount on the VIP carries on with the same file handles (fixed fsid)."""
    manual.drbd_up(vm_lab, "node1")
    manual.lvm_fs_create(vm_lab, "node1")
    vm_lab.sh("node1", manual.nfs_start_script(VIP), timeout=60)
    vm_lab.sh("client1", f"mkdir -p /mnt/ha\nmount -t nfs -o vers=3,hard,timeo=10 {VIP}:/srv/ha/export /mnt/ha\n"
                         "seq 1 1000 > /mnt/ha/before\nsync\n", timeout=90)
    t0 = time.monotonic()
    vm_lab.sh("node1", manual.release_script(VIP), timeout=60)
    vm_lab.sh("node2", manual.take_over_script(VIP), timeout=60)
    TIMINGS["manual_handover_s"] = round(time.monotonic() - t0, 2)
    # the same mount keeps working against node2: old file readable, new writes land
    out = vm_lab.sh("client1", "md5sum < /mnt/ha/before; echo after >> /mnt/ha/before; sync; tail -n1 /mnt/ha/before",
                    timeout=120)
    want = vm_lab.sh("node2", "seq 1 1000 | md5sum")
    assert out.splitlines()[0] == want.strip()
    assert out.splitlines()[-1] == "after"
    assert vm_lab.sh("node2", "tail -n1 /srv/ha/export/before").strip() == "after"
    assert manual.drbd_state(vm_lab, "node2")["ro"] == "Primary/Secondary"


def test_crash_loses_no_acknowledged_write(vm_lab):
    """Protocol C's promise with real kernels: node1 is powered off in the middle of the
    client's fsync'd record stream; node2 takes over by hand; every record the client saw
    acknowledged is on node2, intact, and the client's hard mount resumes by itself."""
    manual.drbd_up(vm_lab, "node1")
    manual.lvm_fs_create(vm_lab, "node1")
    vm_lab.sh("node1", manual.nfs_start_script(VIP) + "chmod 1777 /srv/ha/export\n", timeout=60)
    vm_lab.sh("client1", f"mkdir -p /mnt/ha\nmount -t nfs -o vers=3,hard,timeo=10 {VIP}:/srv/ha/export /mnt/ha\n",
              timeout=90)
    w = manual.start_writer(vm_lab, "client1", "/mnt/ha/stream", "crash")
    manual.wait_acked(vm_lab, "client1", w, 20, timeout=60)

    vm_lab.crash("node1")
    at_crash = manual.acked(vm_lab, "client1", w)
    t0 = time.monotonic()
    # by hand, as the chain would: DRBD sees its peer gone, node2 promotes and serves
    manual.wait_drbd_peer_lost(vm_lab, "node2")
    vm_lab.sh("node2", manual.take_over_script(VIP), timeout=90)
    resumed = manual.wait_acked(vm_lab, "client1", w, at_crash + 5, timeout=120)
    TIMINGS["crash_manual_takeover_resume_s"] = round(time.monotonic() - t0, 2)
    assert resumed >= 0
    log = manual.stop_writer(vm_lab, "client1", w)
    assert "Stale" not in log and "ESTALE" not in log, log

    ack_text = vm_lab.exec("client1", ("cat", w["ack"])).stdout
    data_text = vm_lab.exec("node2", ("cat", "/srv/ha/export/stream")).stdout
    missing, bad = manual.check_records(ack_text, data_text)
    assert ack_text.count("\n") > at_crash
    assert missing == [], f"acknowledged records lost: {missing[:20]}"
    assert len(bad) <= 1, f"corrupt records: {bad[:5]}"  # at most the torn, unacknowledged tail
