"""Assertions the VM scenarios share (tests/vm/test_the_scenario.py under busybox init,
tests/vm/test_field_systemd.py under systemd): what a healthy cluster, an intact record
stream and bootstrap's LVM and NFSv4 set-up look like on the real guests."""

from __future__ import annotations

import json
import time

from hasync_lab.vm import field_checks as fc
from hasync_lab.vm import manual
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import VIP


def check_no_acked_write_lost(lab, w: dict, server: str) -> None:
    ack_text = lab.exec("client1", ("cat", w["ack"])).stdout
    data_text = lab.exec(server, ("cat", "/srv/ha/export/" + w["data"].rsplit("/", 1)[1])).stdout
    missing, bad = manual.check_records(ack_text, data_text)
    assert ack_text.strip(), "the client acknowledged nothing"
    assert missing == [], f"acknowledged records lost: {missing[:20]}"
    assert len(bad) <= 1, f"corrupt records: {bad[:5]}"


def assert_healthy(lab, active: str, standby: str) -> None:
    """`hasync status` and `hasync doctor` clean on both nodes, DRBD connected and in sync."""
    for n in lab.nodes:
        st = sc.status_json(lab, n)
        assert st["role"] == ("active" if n == active else "standby"), st
        assert st["peer"]["state"] == "up", st["peer"]
        assert st["warnings"] == [], st["warnings"]
        assert all(ln["state"] == "up" for ln in st["links"]), st["links"]
        rc, doc = sc.doctor_json(lab, n)
        problems = [f for f in doc.get("findings", []) if f.get("level") in ("error", "warning")]
        # the example's chain (nfsserver with nfs_server_scope, nfsnotify, nfsdcld before
        # nfsd) leaves doctor nothing to report: every error or warning fails, in full
        assert rc == 0 and not problems, json.dumps([n, problems])
        assert doc["summary"]["error"] == 0 and doc["summary"]["warning"] == 0, json.dumps([n, doc["summary"]])
        drbd = manual.drbd_state(lab, n)
        assert drbd["cs"] == "Connected" and drbd["ds"] == "UpToDate/UpToDate", drbd
    assert manual.drbd_state(lab, active)["ro"] == "Primary/Secondary"


def assert_lvm_as_bootstrap_left_it(lab, node: str, other_pv: str) -> None:
    """The global_filter bootstrap merged in: the DRBD device and the host's own VG seen,
    the backing disk (same PV label as /dev/drbd0) hidden; the VG owned by this node's
    system ID (lvm_system_id = "uname", for LVM-activate vg_access_mode=system_id)."""
    v = fc.lvm_view(lab, node)
    assert v["pvs"].get("/dev/drbd0") == "havg", v
    assert v["pvs"].get(other_pv) == fc.OTHER_VG, v
    assert not any(pv.startswith("/dev/vdb") for pv in v["pvs"]), v
    assert "r|^/dev/vdb$|" in v["global_filter"] and "a|^/dev/drbd" in v["global_filter"], v
    assert v["system_id"] == f"system ID: {node}" and v["vg_system_id"] == node, v


def assert_nfs_v4_served(lab, node: str, standby: str) -> None:
    """On the active node: grace and lease 20 s in nfsd, nfsdcld running with its records
    on the replicated disk and nfsd tracking clients through it, server scope the VIP."""
    v = fc.nfs_v4_state(lab, node)
    assert (v.get("grace"), v.get("lease")) == ("20", "20"), v
    assert v.get("nfsdcld"), v
    assert v.get("cld_dir") == f"{fc.NFS_STATE}/nfsdcld" and "main.sqlite" in v.get("cld_db", ""), v
    assert v.get("tracking") == "Using nfsdcld client tracking operations", v
    assert v.get("scope") == VIP, v
    assert fc.nfs_v4_state(lab, standby).get("nfsdcld") == "", f"nfsdcld runs on the standby {standby}"


def assert_guard_holds(lab) -> dict[str, float]:
    """The split-brain guard (issue 6), node2 active and node1 standby to begin with:

    1. every cable of the active node2 cut (public, replication, serial; the BMC wire
       stays), fencing required: a sampler reads both nodes' DRBD role and VIP every
       ~0.5 s: never both Primary, never the VIP reachable on both; node1 fences node2
       before it promotes, the client resumes and every acknowledged record is on node1;
    2. node2 rejoins and the *standby* is cut off: it reaches no ping
       node, so it does not take over; node1's DRBD loses its peer, its fence-peer handler
       (`hasync fence --tiebreak`) powers node2 off, node1 keeps serving, nothing lost.
    Returns the timings (seconds)."""
    out: dict[str, float] = {}
    w2 = manual.start_writer(lab, "client1", "/mnt/ha/guard", "guard")
    manual.wait_acked(lab, "client1", w2, 10, timeout=90)
    t_cut = time.monotonic()
    with sc.Sampler(lab) as s:
        sc.isolate(lab, "node2")
        sc.wait_role(lab, "node1", "active", timeout=300)
        at_active = manual.acked(lab, "client1", w2)
        manual.wait_acked(lab, "client1", w2, at_active + 5, timeout=300)
    out["guard_client_resumed_s"] = round(time.monotonic() - t_cut, 2)
    assert len(s.samples) >= 10, s.samples
    assert len(s.blind()) * 2 < len(s.samples), f"the sampler saw nothing in {len(s.blind())} of {len(s.samples)} samples"
    assert s.both_primary() == [], s.both_primary()[:3]
    assert s.two_servers() == [], s.two_servers()[:3]
    assert not lab.running("node2"), "node1 took over without fencing node2"
    log = sc.daemon_log(lab, "node1")
    assert "fenced node2" in log[log.rfind("node2 declared dead"):], log[-3000:]
    writer_log = manual.stop_writer(lab, "client1", w2)
    assert "Stale" not in writer_log, writer_log
    check_no_acked_write_lost(lab, w2, "node1")

    sc.rejoin(lab, "node2", "node1")
    w3 = manual.start_writer(lab, "client1", "/mnt/ha/guard2", "guard2")
    manual.wait_acked(lab, "client1", w3, 10, timeout=90)
    t_cut = time.monotonic()
    with sc.Sampler(lab) as s2:
        sc.isolate(lab, "node2")
        deadline = time.monotonic() + 120
        while lab.running("node2") and time.monotonic() < deadline:
            time.sleep(0.5)
        at_fence = manual.acked(lab, "client1", w3)
        manual.wait_acked(lab, "client1", w3, at_fence + 5, timeout=120)
    out["guard_standby_cut_client_resumed_s"] = round(time.monotonic() - t_cut, 2)
    assert not lab.running("node2"), "node1's DRBD handler did not fence the cut-off standby"
    assert len(s2.samples) >= 10 and len(s2.blind()) * 2 < len(s2.samples), (len(s2.samples), len(s2.blind()))
    assert s2.both_primary() == [], s2.both_primary()[:3]
    assert s2.two_servers() == [], s2.two_servers()[:3]
    assert all(x["node2"].get("vip") is False for x in s2.samples), "the cut-off standby took the VIP"
    assert sc.role(lab, "node1") == "active"
    assert manual.drbd_state(lab, "node1")["ro"].startswith("Primary")
    writer_log = manual.stop_writer(lab, "client1", w3)
    assert "Stale" not in writer_log, writer_log
    check_no_acked_write_lost(lab, w3, "node1")
    return out
