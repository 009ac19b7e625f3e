"""The on-call admin's verbs on real daemons in the namespace lab (issue 18): cleanup after
a stop failure, with `hasync resource` stopping by hand what the failed stop left; maintenance
mode (a crashed resource is left alone, a debug-start by hand, off resumes the cluster);
an operator standby that survives a daemon restart; stop/start cluster-wide; history
after two failovers. The same chain and invariant watcher as test_failover_lab.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.lab.test_failover_lab import (
    client_sees,
    role,
    running_cluster,
    status,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.lab


def hasync(lab, node: str, *argv: str, timeout: float = 60):
    return lab.exec(node, ["hasync", *argv], timeout=timeout)


def restart_daemon(lab, node: str, tmp_path: Path, n: int) -> None:
    """SIGTERM the daemon of *node* (it leaves cleanly), wait for it to go, start it again."""
    pids = [pid for pid in lab.pids(node) if b"failover\0run" in _cmdline(pid)]
    assert pids
    for pid in pids:
        os.kill(pid, 15)
    wait_for(f"{node}'s daemon gone", lambda: not any(Path(f"/proc/{p}").exists() and b"failover\0run" in _cmdline(p) for p in pids), 30)
    lab.spawn(node, ["hasync", "failover", "run"], log=tmp_path / f"{node}-{n}.log")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def moves(lab) -> list[tuple[str, str, str]]:
    """Every start and stop either daemon ran, as their timelines say."""
    return [(n, e["data"]["resource"], e["data"]["op"]) for n in ("node1", "node2") for e in timeline(lab, n)
            if e["kind"] == "resource" and e.get("data", {}).get("op") in ("start", "stop")]


def test_cleanup_after_a_stop_failure_with_resources_stopped_by_hand(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path, on_stop_failure="block"):
        lab.exec("node1", ["touch", "/etc/hasync/demo-fail-stop"], check=True)
        r = hasync(lab, "node1", "standby", "--wait", "20")
        assert r.exit_code == 1, r.stdout + r.stderr
        wait_for("node1 stop-failed", lambda: role(lab, "node1") == "stop-failed", 20)
        lab.exec("node1", ["rm", "/etc/hasync/demo-fail-stop"], check=True)
        # the failed stop left the whole chain up here: stop its top by hand, as the chain would
        r = hasync(lab, "node1", "resource", "demo", "stop")
        assert r.exit_code == 0 and "demo stop: ok" in r.stdout, r.stdout + r.stderr
        r = hasync(lab, "node1", "cleanup")
        assert r.exit_code == 1, r.stdout + r.stderr  # fs and vip run, demo does not: not safe
        assert "demo: stopped here" in r.stdout and "stop-failed kept" in r.stdout
        assert role(lab, "node1") == "stop-failed" and role(lab, "node2") == "standby"
        for rid in ("vip", "fs"):
            r = hasync(lab, "node1", "resource", rid, "stop")
            assert r.exit_code == 0, r.stdout + r.stderr
        r = hasync(lab, "node1", "cleanup")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "fs: stopped here" in r.stdout and "stop-failed cleared, this node is standby" in r.stdout
        # node1 stays in the operator standby it was asked for: node2 takes the chain
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
        wait_for("the service answering from node2", lambda: "node2" in client_sees(lab), 15)
        r = hasync(lab, "node1", "resource", "demo", "start")
        assert r.exit_code == 4 and "runs on node2" in r.stderr, r.stdout + r.stderr  # a second copy: refused


def test_maintenance_leaves_a_crashed_resource_alone_and_off_resumes(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path, demo_monitor="300ms"):
        r = hasync(lab, "node2", "maintenance", "on")  # either node: it is cluster-wide
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("both nodes in maintenance", lambda: status(lab, "node1")["maintenance"] and status(lab, "node2")["maintenance"], 10, 0.2)
        r = hasync(lab, "node1", "status")
        assert r.exit_code == 1 and "MAINTENANCE MODE" in r.stdout, r.stdout + r.stderr
        moves_before = moves(lab)
        lab.exec("node1", ["sh", "-c", "kill $(cat /run/hasync-demo.8080.pid)"], check=True)
        time.sleep(2.0)  # several monitor intervals and deadtimes: nothing may move
        assert client_sees(lab) == ""
        assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
        assert moves(lab) == moves_before
        # debug-start by hand: allowed (maintenance, node2 standby without it)
        r = hasync(lab, "node1", "resource", "demo", "start")
        assert r.exit_code == 0 and "demo start: ok" in r.stdout, r.stdout + r.stderr
        wait_for("the service answering from node1 again", lambda: "node1" in client_sees(lab), 10)
        r = hasync(lab, "node2", "resource", "demo", "start")
        assert r.exit_code == 4 and ("runs on node1" in r.stderr or "node1 is active" in r.stderr), r.stdout + r.stderr
        lab.exec("node1", ["sh", "-c", "kill $(cat /run/hasync-demo.8080.pid)"], check=True)
        r = hasync(lab, "node1", "maintenance", "off")
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("the cluster resumes: the service answers from node1", lambda: "node1" in client_sees(lab), 20)
        st = status(lab, "node2")
        assert not st["maintenance"] and role(lab, "node1") == "active"


def test_standby_survives_a_restart_stop_start_and_history(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path):
        r = hasync(lab, "node1", "standby")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert role(lab, "node2") == "active"
        restart_daemon(lab, "node1", tmp_path, 2)
        wait_for("node1 back, in operator standby", lambda: role(lab, "node1") == "standby" and status(lab, "node1")["operator_standby"], 30, 0.2)
        r = hasync(lab, "node2", "status")
        assert "STANDBY: node1 never runs the chain" in " ".join(r.stdout.split()) and r.exit_code == 1, r.stdout
        r = hasync(lab, "node1", "takeover")
        assert r.exit_code == 0, r.stdout + r.stderr  # takeover ends the standby: the second failover
        assert role(lab, "node1") == "active" and not status(lab, "node1")["operator_standby"]
        # stop on purpose, cluster-wide; kept across a restart; start
        r = hasync(lab, "node2", "stop")
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("the chain stopped on both", lambda: role(lab, "node1") == "standby" and client_sees(lab) == "", 20)
        restart_daemon(lab, "node1", tmp_path, 3)
        wait_for("node1 back, still stopped", lambda: role(lab, "node1") == "standby" and status(lab, "node1")["stopped"], 30, 0.2)
        time.sleep(1.0)
        assert role(lab, "node2") == "standby" and client_sees(lab) == ""
        r = hasync(lab, "node1", "start")
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("the service answers again", lambda: "hasync-demo" in client_sees(lab), 20)
        # history: the standby and the takeover on node1, with their outcome and duration
        r = hasync(lab, "node1", "history", "--json")
        rows = json.loads(r.stdout)
        causes = [(row["cause"], row["outcome"]) for row in rows]
        assert ("operator: standby (kept until `hasync online`)", "standby") in causes, causes
        assert ("operator: takeover", "active") in causes, causes
        assert all(row["duration_ms"] is not None for row in rows if row["outcome"] != "in progress")
        n = next(row["number"] for row in rows if row["cause"] == "operator: takeover")
        r = hasync(lab, "node1", "history", "show", str(n))
        assert r.exit_code == 0 and "demo" in r.stdout, r.stdout + r.stderr
