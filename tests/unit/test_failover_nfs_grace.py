"""The NFS server's grace period in `hasync status` (issue 15): the pure reading of
/proc/fs/nfsd/v4_end_grace against the NFS resource's start, the view's line, and the
daemon's status document on a node whose chain runs an nfsserver resource."""

from __future__ import annotations

import dataclasses
import io

import pytest

from hasync import model
from hasync.config import load
from hasync.effects.run import Result
from hasync.failover import client, nfs_grace
from hasync.failover.daemon.loop import Daemon
from hasync.failover.host import Paths
from hasync.failover.resource_state import Progress, ResourceTable
from tests.unit.test_failover_daemon import KEY, VIP, cluster, runner, signals_restored, wait_active  # noqa: F401
from tests.unit.test_failover_oncall_daemon import run_with


def test_in_grace_says_how_long_and_the_most_that_is_left():
    g = nfs_grace.grace_state("N\n", 1000.0, 20.0, 1006.4)
    assert g == {"in_grace": True, "grace_time_s": 20.0, "since_s": 6.4, "left_at_most_s": 13.6}
    assert "grace period for 6 s, at most 14 s left" in nfs_grace.grace_line(g)
    # past the grace time but the kernel still says N (a clock that jumped): never negative
    assert nfs_grace.grace_state("N", 1000.0, 20.0, 1030.0)["left_at_most_s"] == 0.0


def test_ended_early_only_when_it_ended_before_the_grace_time():
    early = nfs_grace.grace_state("Y\n", 1000.0, 20.0, 1003.0)
    assert early["in_grace"] is False and early["ended_early"] is True
    assert "every known client reclaimed" in nfs_grace.grace_line(early)
    late = nfs_grace.grace_state("Y\n", 1000.0, 20.0, 1060.0)
    assert "ended_early" not in late and nfs_grace.grace_line(late) is None


@pytest.mark.parametrize("flag", [None, "", "?\n", "maybe"])
def test_nothing_to_say_without_a_readable_flag(flag):
    assert nfs_grace.grace_state(flag, 1000.0, 20.0, 1001.0) is None
    assert nfs_grace.grace_line(None) is None


def test_no_start_time_still_tells_the_state():
    assert nfs_grace.grace_state("N", None, 90.0, 5.0) == {"in_grace": True, "grace_time_s": 90.0}
    assert nfs_grace.grace_line({"in_grace": True, "grace_time_s": 90.0}).startswith("NFS server in its grace period: ")


def test_the_server_resource_of_the_example_chain_and_of_named_units():
    c = load("profiles/cluster/example.toml")
    rid = nfs_grace.server_resource(c.resources, c.nfs.vip)
    assert rid is not None and next(r for r in c.resources if r.id == rid).agent == "heartbeat:nfsserver"
    unit = model.Resource("nfsd", "service", "nfs-server")
    assert nfs_grace.server_resource((VIP, unit), "") == "nfsd"
    assert nfs_grace.server_resource((VIP,), "") is None


def test_the_resource_table_keeps_when_a_resource_last_started():
    t = ResourceTable(("nfs",))
    t.record(Progress("nfs", "start", "ok"), 100.0)
    t.record(Progress("nfs", "monitor", "running"), 110.0)
    assert t.row("nfs")["started_at"] == 100.0 and t.row("nfs")["at"] == 110.0
    t.record(Progress("nfs", "start", "failed"), 120.0)
    assert t.row("nfs")["started_at"] == 100.0


NFS = model.Resource("nfs", "ocf", "heartbeat:nfsserver", params={"nfs_no_notify": "true"})
NFS_ARGV = ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/nfsserver")


@pytest.mark.usefixtures("signals_restored")
def test_the_status_document_shows_the_grace_of_the_server_running_here(tmp_path, monkeypatch):
    flag = tmp_path / "v4_end_grace"
    flag.write_text("N\n")
    monkeypatch.setattr(nfs_grace, "END_GRACE", str(flag))
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()
    up = {"nfs": False}

    def op(rc_up, rc_down, new=None):
        def f(argv):
            rc = rc_up if up["nfs"] else rc_down
            if new is not None:
                up["nfs"] = new
            return Result(argv, rc, "", "")
        return f

    r.responses.update({NFS_ARGV + ("start",): op(0, 0, True), NFS_ARGV + ("monitor",): op(0, 7), NFS_ARGV + ("stop",): op(0, 0, False)})
    c = dataclasses.replace(cluster(), resources=(NFS, VIP), nfs=model.Nfs(grace_time=20.0))
    d = Daemon(c, "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False, log=io.StringIO())

    def operator(seen):
        wait_active(paths)
        seen["in"] = client.status(paths.socket)
        flag.write_text("Y\n")
        seen["ended"] = client.status(paths.socket)

    rc, seen = run_with(d, paths, operator, active=False)
    assert rc == 0
    g = seen["in"]["nfs_grace"]
    assert g["in_grace"] is True and 0 <= g["since_s"] < 20 and 0 < g["left_at_most_s"] <= 20
    assert seen["ended"]["nfs_grace"]["in_grace"] is False and seen["ended"]["nfs_grace"]["ended_early"] is True
