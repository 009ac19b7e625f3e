"""`hasync status` rendering and verdict, on status objects built from the real FSM."""

from __future__ import annotations

from rich.console import Console

from hasync.failover import status_view
from hasync.failover.membership import FsmConfig, Membership


def status(role="active", peer_state="up", peer_role="standby", warnings=(), owned=("fs", "vip")):
    cfg = FsmConfig(cluster="c", local="node1", peer="node2", order=("node1", "node2"), links=("hb", "serial"), resources=("fs", "vip"),
                    keepalive=0.1, warntime=0.3, deadtime=0.5, initdead=1.0)
    m = Membership(cfg, 100.0, 7)
    st = m.snapshot(100.2)
    st["role"], st["owned"] = role, list(owned) if role == "active" else []
    st["peer"].update({"state": peer_state, "role": peer_role, "last_seen_s": 0.012})
    st["links"][1]["state"] = "dead"
    st.update({
        "cluster": "nfs-ha",
        "preferred_node": "node1",
        "auto_failback": False,
        "fencing": {"mode": "required", "configured": True, "on_stop_failure": "fence-self"},
        "resources": [
            {"id": "fs", "type": "ocf", "agent": "heartbeat:Filesystem", "running_on": ["node1"], "state_here": "running",
             "last_op": "start", "last_outcome": "ok", "last_duration_ms": 51.0, "detail": ""},
            {"id": "vip", "type": "ocf", "agent": "heartbeat:IPaddr2", "running_on": ["node1"], "state_here": "running",
             "last_op": "start", "last_outcome": "ok", "last_duration_ms": 44.0, "detail": ""},
        ],
        "warnings": list(warnings),
        "last_failover": {"node": "node1", "began": "2026-01-01T03:00:00.000Z", "trigger": "node2 declared dead", "result": "active", "duration_ms": 251.0,
                          "events": [{"offset_ms": 0.0, "message": "node2 declared dead", "level": "warn"},
                                     {"offset_ms": 201.0, "message": "vip start: ok in 44 ms", "level": "info"}]},
        "daemon": {"pid": 1, "uptime_s": 5, "priority": "SCHED_FIFO 10", "rss_mb": 30},
    })
    return st


def text(st) -> str:
    c = Console(record=True, width=140, emoji=False)
    c.print(status_view.render(st))
    return c.export_text()


def test_all_well_is_ok_and_readable():
    st = status()
    assert status_view.health(st) == ("ok", "chain running on node1; node2 standby")
    out = text(st)
    for needle in ("OK", "chain running on node1", "node1 * (this node)", "ocf:heartbeat:IPaddr2", "start ok 44 ms",
                   "Last failover", "node2 declared dead", "+ms", "serial", "dead"):
        assert needle in out, needle


def test_warnings_and_problems():
    assert status_view.health(status(warnings=["link serial is dead"]))[0] == "warn"
    assert status_view.health(status(peer_state="dead"))[0] == "warn"
    assert status_view.health(status(peer_role="active"))[1] == "the chain runs on BOTH nodes"
    assert status_view.health(status(role="standby", peer_role="standby"))[1] == "the chain runs nowhere"
    assert status_view.health(status(role="stop-failed"))[0] == "bad"
    assert "Warnings" in text(status(warnings=["fencing is off"]))


def test_daemon_down_view():
    c = Console(record=True, width=100)
    c.print(status_view.render_down("the failover daemon is not running here", None))
    out = c.export_text()
    assert "DOWN" in out and "none recorded" in out


def test_scheduler_stalls_are_shown_but_do_not_change_the_health():
    st = status()
    assert "scheduler stall" not in text(st)  # none: no line
    st["daemon"].update({"scheduler_stalls": 3, "stall_threshold_ms": 12.5, "worst_late_wake_ms": 280.0,
                         "last_stall_ms": 40.0, "last_stall_ago_s": 12.0})
    out = text(st)
    assert "3 scheduler stalls: the daemon woke up to 280.0 ms late (threshold 12.5 ms; last 40.0 ms, 12.0 s ago)" in out
    assert status_view.health(st)[0] == "ok"  # a host stall is information, not a cluster problem
    st["daemon"]["scheduler_stalls"] = 1
    assert "1 scheduler stall:" in status_view.stall_line(st["daemon"])


def test_an_unverified_peer_and_settings_that_differ_are_shown():
    st = status(peer_state="unverified", warnings=["node2 is alive (generation 9) but its packets do not echo this node's generation yet"])
    st["peer"].update({"config_digest": "00000000000000ff", "config_agrees": False})
    assert status_view.health(st) == ("warn", "chain running on node1; node2 is unverified")
    out = text(st)
    assert "unverified" in out and "settings differ" in out and "ties go by node name" in out and st["config_digest"] in out


def test_several_groups_each_judged_and_shown_with_owner_and_chain():
    from hasync.failover.membership_groups import GroupMembership

    base = FsmConfig(cluster="c", local="node1", peer="node2", order=("node1", "node2"), links=("hb",), resources=(),
                     keepalive=0.1, warntime=0.3, deadtime=0.5, initdead=1.0)
    cfgs = (("web", base.__class__(**{**base.__dict__, "resources": ("fs", "vip")})),
            ("db", base.__class__(**{**base.__dict__, "resources": ("db",), "order": ("node2", "node1")})))
    g = GroupMembership(cfgs, 100.0, 7)
    st = status()
    snap = g.snapshot(100.2)
    st["groups"] = snap["groups"]
    st["groups"][0].update(role="active", peer_role="standby", owner="node1")
    st["groups"][1].update(role="standby", peer_role="active", owner="node2")
    assert status_view.health(st) == ("ok", "web: running on node1; node2 standby; db: running on node2; node1 standby")
    st["groups"][1].update(peer_role="standby", owner=None)
    level, line = status_view.health(st)
    assert level == "bad" and "db: the group runs nowhere" in line
    out = text(st)
    for needle in ("Resource groups", "web", "fs, vip", "db", "nowhere"):
        assert needle in out, needle
