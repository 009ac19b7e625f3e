"""Assertions the VM scenarios share (tests/vm/test_the_scenario.py under busybox init,
tests/vm/test_field_systemd.py under systemd): what a healthy cluster, an intact record
stream and bootstrap's LVM and NFSv4 set-up look like on the real guests."""

from __future__ import annotations

import json

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
