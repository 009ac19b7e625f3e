"""DRBD's state for `hasync status` and `hasync doctor`: the parsers on DRBD 9's and 8.4's
outputs (tests/unit/data/drbd/README.md says where they come from), the verdicts, the
split brain's runbook in doctor."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from hasync.bootstrap import doctor_drbd, drbd_state
from hasync.bootstrap.drbd_state import Drbd
from hasync.effects.run import RecordingRunner, Result
from hasync.failover.host import DEFAULT_STATE_DIR
from tests.unit.test_bootstrap_doctor import cluster

DATA = Path(__file__).parent / "data" / "drbd"
CAPTURED = Path(__file__).parent / "data" / "bootstrap" / "captured"


def one(text: str) -> Drbd:
    found = drbd_state.parse_status(text)
    assert len(found) == 1
    return found[0]


def test_drbd9_verbose_statistics_resync_has_progress_rate_and_drbds_estimate():
    d = one((DATA / "drbd9-verbose-statistics-syncsource.txt").read_text())
    assert (d.resource, d.role, d.disk, d.peer, d.connection, d.peer_role) == ("r0", "Primary", "UpToDate", "node2", "Connected", "Secondary")
    assert (d.replication, d.peer_disk, d.done, d.eta_s, d.out_of_sync_kib) == ("SyncSource", "Inconsistent", 45.2, 169.0, 5745664)
    assert round(d.rate_kib_s or 0) == round(33.12 * 1024)
    level, line = drbd_state.health(d)
    assert level == "warn" and "45.2% done" in line and "about 2 min left" in line
    t = one((DATA / "drbd9-verbose-statistics-synctarget.txt").read_text())
    assert (t.role, t.disk, t.replication, t.peer_disk) == ("Secondary", "Inconsistent", "SyncTarget", "UpToDate")
    assert drbd_state.health(t)[0] == "warn"


def test_drbd9_plain_status_captures():
    d = one((CAPTURED / "drbd9-status-primary-uptodate.txt").read_text())
    assert (d.connection, d.replication, d.peer_disk) == ("Connected", "Established", "UpToDate")
    assert drbd_state.health(d)[0] == "ok"
    s = one((CAPTURED / "drbd9-status-syncsource.txt").read_text())
    assert (s.replication, s.done, s.eta_s) == ("SyncSource", 37.52, None)
    assert "time left unknown" in drbd_state.health(s)[1]
    c = one((CAPTURED / "drbd9-status-fresh-connecting.txt").read_text())
    assert (c.connection, c.peer_role, c.replication) == ("Connecting", "", "")
    assert drbd_state.health(c)[0] == "warn"
    sb = one((DATA / "drbd9-status-standalone-primary.txt").read_text())
    assert sb.connection == "StandAlone"
    level, line = drbd_state.health(sb)
    assert level == "bad" and "split brain" in line


def test_drbd84_status_through_the_9_utils():
    d = one((CAPTURED / "drbd84-status-synctarget.txt").read_text())
    assert (d.peer, d.peer_role, d.replication, d.done) == ("peer", "Primary", "SyncTarget", 80.1)


def test_proc_drbd_84():
    [d] = drbd_state.parse_proc((DATA / "proc-drbd-84-syncsource.txt").read_text(), {"0": "r0"})
    assert (d.resource, d.role, d.peer_role, d.disk, d.peer_disk) == ("r0", "Primary", "Secondary", "UpToDate", "Inconsistent")
    assert (d.connection, d.replication, d.done, d.eta_s, d.rate_kib_s, d.out_of_sync_kib) == (
        "Connected", "SyncSource", 25.1, 78.0, 39404.0, 3148160)
    assert "about 78 s left" in drbd_state.health(d)[1]
    [ok] = drbd_state.parse_proc((DATA / "proc-drbd-84-connected.txt").read_text())
    assert ok.resource == "minor 0" and ok.replication == "Established" and drbd_state.health(ok)[0] == "ok"
    [sb] = drbd_state.parse_proc((DATA / "proc-drbd-84-standalone.txt").read_text())
    assert (sb.connection, sb.peer_role, sb.peer_disk) == ("StandAlone", "", "")
    assert drbd_state.health(sb)[0] == "bad"
    [wf] = drbd_state.parse_proc((DATA / "proc-drbd-84-wfconnection.txt").read_text())
    assert wf.connection == "WFConnection" and drbd_state.health(wf)[0] == "warn"


def test_the_estimate_falls_back_to_out_of_sync_over_the_rate():
    d = Drbd("r0", replication="SyncSource", out_of_sync_kib=600 * 1024, rate_kib_s=1024.0)
    assert drbd_state.estimate(d) == "about 10 min left"
    assert drbd_state.duration(2 * 3600 + 5 * 60) == "2 h 05 min"


def test_health_no_uptodate_disk_on_the_primary_is_a_problem():
    assert drbd_state.health(Drbd("r0", role="Primary", disk="Diskless", connection="Connected"))[0] == "bad"
    assert drbd_state.health(Drbd("r0", role="Primary", disk="Outdated", connection="Connected"))[0] == "bad"


def test_split_brain_needs_a_standalone_node_with_data():
    sa = Drbd("r0", role="Primary", disk="UpToDate", connection="StandAlone")
    other = Drbd("r0", role="Secondary", disk="UpToDate", connection="Connecting")
    assert drbd_state.split_brain(sa, other)
    assert not drbd_state.split_brain(replace(sa, connection="Connected"), replace(other, connection="Connected"))
    assert not drbd_state.split_brain(replace(sa, disk="Diskless"), other)


# --------------------------------------------------------------------------- doctor


def probe(status: str = "", proc: str = "", **extra: str) -> dict[str, str]:
    enc = lambda t: base64.b64encode(t.encode()).decode()  # noqa: E731
    return {"drbd.status": enc(status), "drbd.proc": enc(proc), "clock": "1000000", **extra}


def drbd_cluster():
    c = cluster()
    return replace(c, storage=replace(c.storage, use_drbd=True, drbd_resource="r0", drbd_device="/dev/drbd0"))


def test_doctor_split_brain_keeps_the_primarys_data_and_prints_the_commands():
    c = drbd_cluster()
    a = probe((DATA / "drbd9-status-standalone-primary.txt").read_text())
    b = probe((DATA / "drbd9-status-connecting-secondary.txt").read_text())
    [f] = doctor_drbd.check_pair(c, "node1", "node2", a, b)
    assert f.check == "drbd-split-brain" and f.level == "error"
    assert f.fix.startswith("keep the data of node1 (it is Primary")
    assert "on node2: " in f.fix and "drbdadm connect --discard-my-data r0" in f.fix
    assert "hasync maintenance on" in f.fix
    # each node's own check leaves the split brain to the pair check (no second error)
    assert not [x for x in doctor_drbd.check_node(c, "node1", a) if x.level == "error"]
    # the other way round: node2 is the Primary one
    [f2] = doctor_drbd.check_pair(c, "node1", "node2", b, a)
    assert f2.fix.startswith("keep the data of node2") and "on node1: " in f2.fix


def test_doctor_reads_84s_proc_drbd_and_reports_drbd_not_up():
    c = drbd_cluster()
    [f] = [x for x in doctor_drbd.check_node(c, "node1", probe("", (DATA / "proc-drbd-84-syncsource.txt").read_text()))
           if x.check == "drbd-state"]
    assert f.level == "warning" and "resync" in f.message
    [down] = doctor_drbd.check_node(c, "node1", probe("", ""))
    assert down.level == "error" and "not up" in down.message


def test_doctor_warns_when_maintenance_stays_on_long():
    now = 1_000_000.0
    fresh = doctor_drbd.check_operator("node1", {"clock": str(now), "oncall.maintenance": f"since {now - 600:.0f} 2026-12-07T01:00:00Z"})
    assert [(f.check, f.level) for f in fresh] == [("maintenance", "info")]
    old = doctor_drbd.check_operator("node1", {"clock": str(now), "oncall.maintenance": f"since {now - 5 * 3600:.0f} x",
                                              "oncall.stopped": ""})
    assert [(f.check, f.level, f.fix) for f in old] == [("maintenance", "warning", "hasync maintenance off")]
    assert "5 h 00 min" in old[0].message


def test_doctors_state_dir_is_the_daemons():
    assert doctor_drbd.FAILOVER_STATE_DIR == DEFAULT_STATE_DIR


def test_read_local_tries_drbdsetup_then_proc_drbd():
    c = drbd_cluster()
    r = RecordingRunner({doctor_drbd.status_argv("r0"): Result(doctor_drbd.status_argv("r0"), 10, "", "no such resource"),
                         ("cat", "/proc/drbd"): Result(("cat", "/proc/drbd"), 0, (DATA / "proc-drbd-84-connected.txt").read_text(), "")})
    d = doctor_drbd.read_local(c, r)
    assert d is not None and d.resource == "r0" and d.disk == "UpToDate"
    no_drbd = replace(c, storage=replace(c.storage, use_drbd=False))
    calls = len(r.calls)
    assert doctor_drbd.read_local(no_drbd, r) is None and len(r.calls) == calls  # nothing run
