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


def bootstrap_and_read_back(lab) -> dict[str, float]:
    """bootstrap on node1, node2 joining over ssh (sc.bootstrap_pair, its timings returned),
    with a VG of node1's own present that the LVM filter bootstrap writes must leave
    visible; then read back what it laid down: /var/lib/nfs on the replicated disk, the
    export's fsid, LVM as bootstrap left it. The extra VG is removed again after."""
    other_pv = fc.make_other_vg(lab, "node1")
    timings = sc.bootstrap_pair(lab)
    assert lab.sh("node1", "readlink /var/lib/nfs").strip().startswith("/srv/ha")
    assert "fsid=" in lab.sh("node2", "cat /etc/exports")
    assert_lvm_as_bootstrap_left_it(lab, "node1", other_pv)
    fc.drop_other_vg(lab, "node1", other_pv)
    return timings


def assert_nfs_v4_served(lab, node: str, standby: str) -> None:
    """On the active node: grace and lease 20 s in nfsd, nfsdcld running with its records
    on the replicated disk and nfsd tracking clients through it, server scope the VIP."""
    v = fc.nfs_v4_state(lab, node)
    assert (v.get("grace"), v.get("lease")) == ("20", "20"), v
    assert v.get("nfsdcld"), v
    assert v.get("cld_dir") == f"{fc.NFS_STATE}/nfsdcld" and "main.sqlite" in v.get("cld_db", ""), v
    assert v.get("tracking") == "Using nfsdcld client tracking operations", v
    if v.get("init") == "systemd":  # rpc.nfsd, started in the agent's UTS namespace, is gone
        assert v.get("scope_env") == VIP and v.get("scope_unshare", "0") != "0", v
    else:
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


def assert_migrate_there_and_back(lab, writers: tuple[dict, ...], notified: dict[str, int]) -> dict[str, float]:
    """`hasync migrate --to node2` and back (run on node1) while *writers* write: each
    move done, the target Primary, NFSv4 on node2 with the same scope, sm-notify reaching
    the locking client from the VIP only (*notified*: the counts before), no client
    error. Returns the timings (migrate_to_NODE_s)."""
    out: dict[str, float] = {}
    addrs = tuple(notified)
    for target in ("node2", "node1"):
        acked = {w["ack"]: manual.acked(lab, "client1", w) for w in writers}
        t_mig = time.monotonic()
        r = lab.exec("node1", ("hasync", "migrate", "--to", target, "--wait", "480"), timeout=540)
        assert r.ok, f"migrate --to {target}: " + r.stdout[-2000:] + r.stderr[-2000:]
        sc.wait_role(lab, target, "active", timeout=300)
        for w in writers:
            manual.wait_acked(lab, "client1", w, acked[w["ack"]] + 10, timeout=300)
        out[f"migrate_to_{target}_s"] = round(time.monotonic() - t_mig, 2)
        assert manual.drbd_state(lab, target)["ro"] == "Primary/Secondary"
        if target == "node2":
            assert_nfs_v4_served(lab, "node2", "node1")  # the same scope on both nodes
            now = fc.count_udp_from(lab, "client1", addrs)
            assert now[VIP] > notified[VIP], (f"no sm-notify from the VIP reached client1: {notified} -> {now}\n"
                                              + "\n".join(fc.statd_view(lab, n) for n in ("node2", "node1")))
            assert all(now[a] == notified[a] for a in addrs if a != VIP), f"sm-notify from a node's own address: {notified} -> {now}"
    fc.release_lock(lab, "client1")
    for w in writers:
        errors = lab.exec("client1", ("cat", w["log"])).stdout
        assert errors.strip() == "", f"the client saw errors during migrate:\n{errors[-2000:]}"
    return out


def assert_crash_taken_over(lab, crash) -> None:
    """node1 powered off (scenario.crash_and_wait): node2 declared it dead and fenced it."""
    events = " | ".join(e.get("message", "") for e in crash.record.get("events", []))
    assert "node1 declared dead" in crash.record.get("trigger", ""), crash.record
    assert "fenced node1" in events, events
    assert not lab.running("node1")


def assert_bootstrap_again_refused(result) -> None:
    """`hasync bootstrap --yes` re-run on the crashed node1 before its DRBD is up: the
    metadata is not new (it held replicated data), so it refuses to force DRBD Primary,
    names --allow-data-loss and changes nothing."""
    out = " ".join((result.stdout + result.stderr).split())  # rich wraps at 80 columns
    assert result.exit_code == 1 and "step drbd-primary refused, nothing changed" in out, out[-3000:]
    assert "re-run with --allow-data-loss /dev/drbd0" in out and "run drbdadm primary --force" not in out, out[-3000:]
