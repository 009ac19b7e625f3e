"""`systemctl restart hasync-failover` keeps the chain where it runs
(hasync/failover/restart.py): the pure parts, then the daemon in this process told by a
recording runner what systemd's job for its unit is."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from dataclasses import replace

from hasync.effects.run import Result
from hasync.failover.daemon.loop import Daemon
from hasync.failover.host import Paths
from hasync.failover.membership_data import Job
from hasync.failover.restart import detach_refusal, job_type, list_jobs_argv, unit_of_cgroup
from hasync.failover.states import Gate, JobKind, Role
from tests.unit.test_failover_daemon import (
    KEY,
    MONITOR,
    START,
    STOP,
    cluster,
    run_with_operator,
    runner,
    signals_restored,
    wait_active,
)

__all__ = ["signals_restored"]  # the fixture, used by name

UNIT = "hasync-failover.service"


def test_the_unit_is_read_from_the_cgroup_file():
    assert unit_of_cgroup("0::/system.slice/hasync-failover.service\n") == UNIT
    hybrid = "9:name=systemd:/system.slice/hasync-failover.service\n4:memory:/x\n0::/\n"
    assert unit_of_cgroup(hybrid) == UNIT
    assert unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n") == ""
    assert unit_of_cgroup("0::/\n") == "" and unit_of_cgroup("") == ""


def test_the_job_type_is_read_from_list_jobs():
    listing = "  81 drbd.service        start   waiting\n  80 hasync-failover.service restart running\n"
    assert job_type(listing, UNIT) == "restart"
    assert job_type(listing, "hasync-watch.service") == ""
    assert job_type("", UNIT) == ""
    assert list_jobs_argv(UNIT)[-1] == UNIT


def test_only_a_node_at_rest_detaches():
    assert detach_refusal(Role.ACTIVE, [None], Gate.NONE, False) == ""
    assert detach_refusal(Role.STANDBY, [None, None], Gate.NONE, False) == ""
    assert detach_refusal(Role.ACTIVE, [Job(3, JobKind.STOP)], Gate.NONE, False) == "a job is under way (stop)"
    assert detach_refusal(Role.ACTIVE, [None, Job(4, JobKind.RESTART, "vip")], Gate.NONE, False) == "a job is under way (restart)"
    assert detach_refusal(Role.ACQUIRING, [None], Gate.FENCE, False) == "a takeover is being decided"
    assert detach_refusal(Role.STOP_FAILED, [None], Gate.NONE, False) == "role stop-failed"
    assert detach_refusal(Role.ACTIVE, [None], Gate.NONE, True) == "already leaving"


def test_an_interval_monitor_under_way_does_not_keep_a_restart_from_detaching():
    # the VM field run under systemd (2026-12-07): a 5 s monitor of 2-3 s was under way at
    # the restart's SIGTERM on the active node, and the restart became a failover
    assert detach_refusal(Role.ACTIVE, [Job(5, JobKind.MONITOR, "vip")], Gate.NONE, False) == ""
    assert detach_refusal(Role.ACTIVE, [Job(5, JobKind.MONITOR, "vip"), Job(6, JobKind.MONITOR, "fs")], Gate.NONE, False) == ""
    assert detach_refusal(Role.ACTIVE, [Job(5, JobKind.MONITOR, "vip"), Job(6, JobKind.START)], Gate.NONE, False) != ""


def _run(tmp_path, job: str, cl=None, operator=None, r=None):
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = r or runner()
    r.responses[list_jobs_argv(UNIT)] = Result(list_jobs_argv(UNIT), 0, f"  80 {UNIT} {job} running\n" if job else "", "")
    d = Daemon(cl or cluster(), "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False,
               log=io.StringIO(), unit=UNIT)

    def term():
        wait_active(paths)
        os.kill(os.getpid(), signal.SIGTERM)

    run_with_operator(d, operator or term)
    lines = [json.loads(x) for x in (paths.state_dir / "timeline.jsonl").read_text().splitlines()]
    return r, paths, lines


def test_a_restart_of_the_unit_exits_without_stopping_the_chain(tmp_path, signals_restored):
    r, paths, lines = _run(tmp_path, "restart")
    assert START in r.calls and STOP not in r.calls  # the chain left running for the next daemon
    assert list_jobs_argv(UNIT) in r.calls
    assert paths.role.read_text() == "active\n"  # still what this node is
    assert not paths.socket.exists()
    assert "restarts: exiting without stopping anything (vip runs here, role active)" in lines[-1]["message"]


def test_a_stop_of_the_unit_still_hands_the_chain_over(tmp_path, signals_restored):
    for job in ("stop", ""):
        r, paths, lines = _run(tmp_path / (job or "none"), job)
        assert r.calls[-1] == STOP and lines[-1]["message"] == "left the cluster cleanly"
        assert not paths.role.exists()


def test_a_restart_during_an_interval_monitor_still_leaves_the_chain_running(tmp_path, signals_restored):
    # the active node's monitor is under way when systemd's SIGTERM comes: the daemon
    # detaches all the same (it stopped the chain and handed it over before: the VM field run)
    c = cluster()
    c = replace(c, resources=(replace(c.resources[0], monitor_interval=0.05),))
    r = runner()
    plain = r.responses[MONITOR]
    in_monitor, release = threading.Event(), threading.Event()
    up = {"active": False}

    def slow_monitor(argv):
        if up["active"]:
            in_monitor.set()
            release.wait(5)
        return plain(argv)

    r.responses[MONITOR] = slow_monitor

    def operator():
        wait_active(paths_of(tmp_path))
        up["active"] = True
        assert in_monitor.wait(5), "no interval monitor ran"
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)  # the daemon decides while the monitor is still under way
        release.set()

    r, paths, lines = _run(tmp_path, "restart", cl=c, operator=operator, r=r)
    assert STOP not in r.calls  # the chain left running for the next daemon
    assert paths.role.read_text() == "active\n"
    assert "restarts: exiting without stopping anything (vip runs here, role active)" in lines[-1]["message"], lines[-3:]


def paths_of(tmp_path) -> Paths:
    return Paths(tmp_path / "state", tmp_path / "run")
