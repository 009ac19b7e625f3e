"""`systemctl restart hasync-failover` keeps the chain where it runs
(hasync/failover/restart.py): the pure parts, then the daemon in this process told by a
recording runner what systemd's job for its unit is."""

from __future__ import annotations

import io
import json
import os
import signal

from hasync.effects.run import Result
from hasync.failover.daemon.loop import Daemon
from hasync.failover.host import Paths
from hasync.failover.restart import detach_refusal, job_type, list_jobs_argv, unit_of_cgroup
from hasync.failover.states import Gate, Role
from tests.unit.test_failover_daemon import (
    KEY,
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
    assert detach_refusal(Role.ACTIVE, None, Gate.NONE, False) == ""
    assert detach_refusal(Role.STANDBY, None, Gate.NONE, False) == ""
    assert detach_refusal(Role.ACTIVE, object(), Gate.NONE, False) == "a job is under way"
    assert detach_refusal(Role.ACQUIRING, None, Gate.FENCE, False) == "a takeover is being decided"
    assert detach_refusal(Role.STOP_FAILED, None, Gate.NONE, False) == "role stop-failed"
    assert detach_refusal(Role.ACTIVE, None, Gate.NONE, True) == "already leaving"


def _run(tmp_path, job: str):
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()
    r.responses[list_jobs_argv(UNIT)] = Result(list_jobs_argv(UNIT), 0, f"  80 {UNIT} {job} running\n" if job else "", "")
    d = Daemon(cluster(), "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False,
               log=io.StringIO(), unit=UNIT)

    def operator():
        wait_active(paths)
        os.kill(os.getpid(), signal.SIGTERM)

    run_with_operator(d, operator)
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
