"""The on-call commands on the daemon put together in this process (a lone node whose
peer never answers, UDP over loopback, a recording runner): the control socket's new
commands, the operator files in the state directory across a daemon restart, the
history file, and the exit of a daemon stopped while stop-failed."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import threading
import time

import pytest

from hasync import model
from hasync.effects.run import Result
from hasync.failover import client, protocol
from hasync.failover.daemon import persist
from hasync.failover.daemon.loop import Daemon
from hasync.failover.host import Paths
from hasync.failover.membership import Persisted
from hasync.failover.timeline import read_history
from tests.unit.test_failover_daemon import (
    KEY,
    MONITOR,
    START,
    STOP,
    cluster,
    runner,
    signals_restored,  # noqa: F401 (a fixture)
    wait_active,
)


def command(paths: Paths, cmd: str, **kw) -> list[dict]:
    lines: list[dict] = []
    client.command(paths.socket, protocol.Request(cmd, **kw), lines.append, wait=10)
    return lines


def run_with(d: Daemon, paths: Paths, operator, *, active: bool = True) -> tuple[int, dict]:
    """Run the daemon until *operator* (in a thread, after the node is active) is done."""
    seen: dict = {}

    def body():
        try:
            if active:
                wait_active(paths)
            operator(seen)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    rc = d.run()
    t.join(10)
    return rc, seen


def daemon(paths: Paths, r, **fencing) -> Daemon:
    c = cluster()
    if fencing:
        c = dataclasses.replace(c, fencing=model.Fencing(**fencing))
    return Daemon(c, "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False, log=io.StringIO())


@pytest.mark.usefixtures("signals_restored")
def test_maintenance_stop_start_and_the_files_they_leave(tmp_path):
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()

    def operator(seen):
        seen["on"] = command(paths, "maintenance-on")
        seen["status"] = client.status(paths.socket)
        seen["stop_refused"] = command(paths, "stop")
        seen["off_refused"] = command(paths, "maintenance-off")
        seen["off"] = command(paths, "maintenance-off", force=True)
        wait_active(paths)
        seen["stop"] = command(paths, "stop")
        seen["stopped_file"] = (paths.state_dir / "stopped").read_text()
        seen["start"] = command(paths, "start")
        seen["cleanup"] = command(paths, "cleanup", resource="vip")
        seen["online"] = command(paths, "online")

    rc, seen = run_with(daemon(paths, r), paths, operator)
    assert rc == 0
    assert seen["on"][0]["ok"] and seen["on"][-1]["done"] and seen["on"][-1]["ok"]
    st = seen["status"]
    assert st["maintenance"] is True and any("MAINTENANCE" in w for w in st["warnings"])
    assert st["operator_since"]["maintenance"] > 1e9
    assert seen["stop_refused"] == [{"ok": False, "message": "maintenance mode: nothing moves; `hasync maintenance off` first",
                                     "node": "node1", "role": "active"}]
    assert "node2 is dead" in seen["off_refused"][0]["message"]
    assert seen["off"][-1]["done"] and seen["off"][-1]["ok"]
    assert seen["stop"][-1]["ok"] and seen["stop"][-1]["role"] == "standby"
    assert seen["stopped_file"].startswith("since ")
    assert seen["start"][-1]["ok"] and seen["start"][-1]["role"] == "active"
    assert [e["event"]["message"] for e in seen["cleanup"] if "event" in e][-1] == "nothing was failed here: nothing to clear"
    assert seen["cleanup"][-1]["ok"] and seen["online"][-1]["ok"]
    assert not (paths.state_dir / "maintenance").exists() and not (paths.state_dir / "stopped").exists()
    kinds = [h["kind"] for h in read_history(paths.state_dir)]
    assert kinds.count("command") >= 5 and all(h.get("duration_ms") is not None for h in read_history(paths.state_dir))


@pytest.mark.usefixtures("signals_restored")
def test_a_daemon_started_in_maintenance_probes_and_touches_nothing(tmp_path):
    paths = Paths(tmp_path / "state", tmp_path / "run")
    persist.edit_offline(paths.state_dir, "node2", maintenance=True)  # `hasync maintenance on` with the daemon down
    assert (paths.state_dir / "settings-new").exists()
    r = runner()

    def operator(seen):
        end = time.monotonic() + 5
        while time.monotonic() < end:  # the probe, then initdead (0.2 s) passes: nobody is fenced or started
            try:
                seen["status"] = client.status(paths.socket)
            except (client.NotRunning, OSError):
                pass
            if seen.get("status") and seen["status"]["peer"]["state"] == "dead":
                break
            time.sleep(0.05)
        time.sleep(0.3)

    rc, seen = run_with(daemon(paths, r), paths, operator, active=False)
    assert rc == 0
    assert seen["status"]["maintenance"] and seen["status"]["role"] == "standby"
    assert START not in r.calls and STOP not in r.calls and MONITOR in r.calls
    assert persist.load(paths.state_dir, "node2")[0].maintenance  # still on after the exit


@pytest.mark.usefixtures("signals_restored")
def test_a_daemon_stopped_while_stop_failed_exits_at_once_with_status_1(tmp_path):
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()
    r.responses[STOP] = lambda argv: Result(argv, 1, "", "device busy")  # it never stops

    def operator(seen):
        pass  # SIGTERM once active: the stop fails (3 tries), stop-failed, then the exit

    t0 = time.monotonic()
    rc, _ = run_with(daemon(paths, r, mode="off", on_stop_failure="block"), paths, operator)
    assert rc == 1 and time.monotonic() - t0 < 8
    lines = [json.loads(x) for x in (paths.state_dir / "timeline.jsonl").read_text().splitlines()]
    assert "exiting while stop-failed" in lines[-1]["message"] and lines[-1]["level"] == "error"
    assert r.calls.count(STOP) == 3


def test_operator_files_offline_and_their_times(tmp_path):
    assert persist.edit_offline(tmp_path, "node2", operator_standby=True) == Persisted(operator_standby=True)
    assert persist.since(tmp_path, "operator_standby") > 1e9 and persist.since(tmp_path, "maintenance") is None
    (tmp_path / "stopped").write_text("")  # made by hand: counts from its mtime
    assert persist.load(tmp_path, "node2")[0] == Persisted(stopped=True, operator_standby=True)
    assert abs(persist.since(tmp_path, "stopped") - time.time()) < 60
    new = persist.edit_offline(tmp_path, "node2", stopped=False)
    assert new == Persisted(operator_standby=True, settings_new=True) and not (tmp_path / "stopped").exists()


def test_a_record_stays_open_while_its_operator_command_waits(tmp_path):
    """`hasync takeover` on a standby node: no job runs here until the peer released, and
    the record closed at once with outcome "standby" (seen in the lab's `hasync history`)."""
    import types

    from hasync.effects.clock import FakeClock
    from hasync.failover.daemon.executor import Executor
    from hasync.failover.states import Role
    from hasync.failover.timeline import Timeline

    clock = FakeClock()
    fsm = types.SimpleNamespace(role=Role.STANDBY, job=None, gate="")
    tl = Timeline(tmp_path, "node1", clock=clock)
    ex = Executor(fsm, local="node1", sender=None, worker=None, mailbox=None, timeline=tl, resources=None,  # type: ignore[arg-type]
                  role_path=tmp_path / "role", notifier=types.SimpleNamespace(status=lambda s: True), clock=clock, log=io.StringIO())
    ex.role_written = Role.STANDBY
    waiting = ["takeover"]
    ex.control = types.SimpleNamespace(under_way=lambda: bool(waiting), check_waiting=lambda: None)  # type: ignore[assignment]
    tl.add("command", "operator: takeover")
    ex.after()
    assert tl.current is not None  # still under way: not settled as "standby"
    clock.t += 1.5
    fsm.role = Role.ACTIVE
    waiting.clear()  # the FSM says the takeover is over: settled in this same wake-up
    ex.after()
    [rec] = read_history(tmp_path)
    assert (rec["trigger"], rec["result"], rec["duration_ms"]) == ("operator: takeover", "active", 1500.0)


def test_a_takeovers_record_closes_while_interval_monitors_run(tmp_path):
    """The VM bench (2026-12-07): on an active node whose two 5 s monitors took 2-3 s each,
    a monitor was under way at every wake-up, and the takeover's record stayed open (no
    duration in last-failover.json in 4 trials of 5). A monitor is not part of the record;
    a start, stop or restart is, in any group."""
    import types

    from hasync.effects.clock import FakeClock
    from hasync.failover.daemon.executor import Executor
    from hasync.failover.membership_data import FsmConfig, Job
    from hasync.failover.membership_groups import GroupMembership
    from hasync.failover.states import JobKind, Role
    from hasync.failover.timeline import Timeline

    clock = FakeClock()
    fsm = types.SimpleNamespace(role=Role.STARTING, job=Job(1, JobKind.START), gate="")
    tl = Timeline(tmp_path, "node1", clock=clock)
    ex = Executor(fsm, local="node1", sender=None, worker=None, mailbox=None, timeline=tl, resources=None,  # type: ignore[arg-type]
                  role_path=tmp_path / "role", notifier=types.SimpleNamespace(status=lambda s: True), clock=clock, log=io.StringIO())
    ex.role_written = Role.STARTING
    tl.add("detect", "node2 declared dead")
    ex.after()
    assert tl.current is not None  # the chain's start runs: open
    clock.t += 31.9
    fsm.role, fsm.job = Role.ACTIVE, Job(2, JobKind.MONITOR, "vip")  # the chain is up, the first monitor already runs
    ex.after()
    [rec] = read_history(tmp_path)
    assert (rec["result"], rec["duration_ms"]) == ("active", 31900.0)
    # several groups: a monitor in one does not hide a start in the other
    from hasync.failover.daemon.executor import record_job_under_way

    base = FsmConfig(cluster="c", local="node1", peer="node2", order=("node1", "node2"), links=("hb",), resources=(),
                     keepalive=0.1, warntime=0.3, deadtime=0.5, initdead=1.0)
    g = GroupMembership((("web", dataclasses.replace(base, resources=("fs", "vip"))),
                         ("db", dataclasses.replace(base, resources=("db",)))), 100.0, 7)
    g.groups["web"].job = Job(3, JobKind.MONITOR, "vip")
    assert not record_job_under_way(g)
    g.groups["db"].job = Job(4, JobKind.START)
    assert record_job_under_way(g)
