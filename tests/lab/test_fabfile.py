"""failover/fabfile.py against the lab's sshd: `fab status` from client1 over ssh to both nodes.

fab runs inside client1 (the nodes' addresses only exist inside the lab), reads the
lab's /etc/hasync/cluster.toml there, logs in as root with the lab's key and runs
`hasync status --json` on node1 and node2, where the failover daemon runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from hasync.resources import data_dir

pytestmark = pytest.mark.lab

FAB = str(Path(sys.executable).with_name("fab"))


def fab(lab, *args: str, timeout: float = 120):
    return lab.exec("client1", [FAB, "-r", str(data_dir("failover")), *args], timeout=timeout)


def node_status(lab, node: str) -> dict | None:
    r = lab.exec(node, ["hasync", "status", "--json"], timeout=30)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def wait_active(lab, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n in lab.nodes:
            st = node_status(lab, n)
            if st and st.get("role") == "active" and (st.get("peer") or {}).get("state") == "up":
                return n
        time.sleep(0.5)
    raise AssertionError("no node became active with its peer up: " + json.dumps(node_status(lab, "node1")))


@pytest.fixture
def daemons(clean_lab, tmp_path):
    procs = {n: clean_lab.spawn(n, ["hasync", "failover", "run"], log=str(tmp_path / f"{n}.log")) for n in clean_lab.nodes}
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(timeout=30)
        except Exception:
            p.kill()
    clean_lab.reset()


def test_fab_status_reports_each_node_over_ssh(clean_lab, daemons):
    active = wait_active(clean_lab)
    r = fab(clean_lab, "status", "--as-json")
    assert r.exit_code == 0, r.stdout + r.stderr
    per_host = json.loads(r.stdout)
    assert set(per_host) == {"node1", "node2"}
    for node, st in per_host.items():
        assert st["node"] == node  # each answer came from that node's own daemon
    assert per_host[active]["role"] == "active"

    table = fab(clean_lab, "status")
    assert table.exit_code == 0, table.stdout + table.stderr
    assert "10.200.0.11" in table.stdout and "10.200.0.12" in table.stdout
    assert f"{active}=active" in table.stdout


def test_fab_status_one_daemon_down_fails_that_host_only(clean_lab, daemons):
    wait_active(clean_lab)
    p = daemons["node2"]
    p.terminate()
    p.wait(timeout=30)
    r = fab(clean_lab, "status", "--as-json")
    assert r.exit_code == 1
    per_host = json.loads(r.stdout)
    assert per_host["node1"]["node"] == "node1"
    assert "error" in per_host["node2"]


def test_fab_migrate_moves_the_chain(clean_lab, daemons):
    active = wait_active(clean_lab)
    other = "node2" if active == "node1" else "node1"
    r = fab(clean_lab, "migrate", "--to", other, timeout=180)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert active in r.stdout  # the command ran on the node that held the chain
    st = node_status(clean_lab, other)
    assert st is not None and st["role"] == "active", st
    assert node_status(clean_lab, active)["role"] != "active"


def test_fab_migrate_and_standby_of_one_group_leave_the_other_group_where_it_runs(clean_lab, tmp_path):
    """Two resource groups (a on node1, b on node2): `fab migrate --to node1 --group b`
    moves b only, `fab standby --group b` hands it back to node2; a never stops on node1."""
    from tests.lab.test_failover_lab import start_daemons, wait_for
    from tests.lab.test_groups_lab import GroupWatcher, install

    lab = clean_lab
    install(lab)
    # fab reads the config on client1 (the admin box): the two groups there too
    before = lab.exec("client1", ["cat", "/etc/hasync/cluster.toml"], check=True).stdout
    install(lab, ("client1",), fresh=False)
    w = GroupWatcher(lab)
    w.start()
    try:
        start_daemons(lab, tmp_path)
        wait_for("a on node1, b on node2", lambda: w.runs_on("a", "node1") and w.runs_on("b", "node2"), 30)
        w.keep = {"a": "node1"}
        table = fab(lab, "status")
        assert table.exit_code == 0 and "a@node1" in " ".join(table.stdout.split()), table.stdout + table.stderr
        r = fab(lab, "migrate", "--to", "node1", "--group", "b", timeout=180)
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "node2" in r.stdout  # ran on the node that ran b
        wait_for("b on node1", lambda: w.runs_on("b", "node1"), 30)
        assert w.runs_on("a", "node1")
        r = fab(lab, "standby", "--group", "b", timeout=180)
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("b back on node2", lambda: w.runs_on("b", "node2"), 30)
        assert w.runs_on("a", "node1")
        bad = fab(lab, "standby", "--group", "zz")
        assert bad.exit_code == 2 and "not a resource group" in bad.stderr
    finally:
        w.stop_ev.set()
        w.join(5)
        lab.exec("client1", ["sh", "-c", "cat > /etc/hasync/cluster.toml"], input=before, check=True)
        lab.reset()
        from hasync_lab.ns.config_gen import MOUNT_POINT2

        for n in lab.nodes:
            lab.exec(n, ["sh", "-c", f"! mountpoint -q {MOUNT_POINT2} || umount -l {MOUNT_POINT2}"])
    w.finish()
