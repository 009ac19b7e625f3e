"""hasync.fab: per-host results over a fabric Group of fake connections."""

from __future__ import annotations

import json

import pytest
from fabric import ThreadingGroup
from invoke import MockContext, Result

from hasync import fab as ft
from hasync.model import Cluster, ClusterInfo, Fencing, Heartbeat, Nfs, Node, Storage, Sync


def cluster(key: str = "/etc/hasync/ssh/id_ed25519") -> Cluster:
    return Cluster(
        path="/tmp/cluster.toml",
        cluster=ClusterInfo(),
        nodes=(Node("node1", "10.0.0.1"), Node("node2", "10.0.0.2")),
        heartbeat=Heartbeat(),
        sync=Sync(ssh_key=key),
        storage=Storage(),
        nfs=Nfs(),
        resources=(),
        fencing=Fencing(),
    )


class Unreachable:
    """A connection whose every command fails before running (ssh refused)."""

    def run(self, command, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")


def group(**runners) -> ThreadingGroup:
    addresses = {"node1": "10.0.0.1", "node2": "10.0.0.2"}
    return ThreadingGroup.from_connections(
        [ft.NodeConnection(name, addresses[name], r) for name, r in runners.items()]
    )


STATUS_CMD = "hasync status --json"


def status_json(**roles) -> str:
    return json.dumps({"nodes": [{"name": n, "role": r} for n, r in roles.items()]})


def test_remote_command_quotes_and_passes_config():
    assert ft.remote_command(("status", "--json")) == STATUS_CMD
    assert (
        ft.remote_command(("migrate", "--to", "node 2"), hasync="/opt/h/hasync", remote_config="/etc/my c.toml")
        == "/opt/h/hasync -c '/etc/my c.toml' migrate --to 'node 2'"
    )


def test_ssh_key_order(monkeypatch):
    monkeypatch.delenv("HASYNC_SSH_KEY", raising=False)
    c = cluster(key="/k/from-config")
    assert ft.ssh_key(c) == "/k/from-config"
    monkeypatch.setenv("HASYNC_SSH_KEY", "/k/env")
    assert ft.ssh_key(c) == "/k/env"
    assert ft.ssh_key(c, "/k/flag") == "/k/flag"


def test_config_path_order(monkeypatch):
    monkeypatch.delenv("HASYNC_CONFIG", raising=False)
    assert ft.config_path() == ft.DEFAULT_CONFIG
    monkeypatch.setenv("HASYNC_CONFIG", "/env.toml")
    assert ft.config_path() == "/env.toml"
    assert ft.config_path("/flag.toml") == "/flag.toml"


def test_select_nodes():
    c = cluster()
    assert [n.name for n in ft.select_nodes(c)] == ["node1", "node2"]
    assert [n.address for n in ft.select_nodes(c, "node2")] == ["10.0.0.2"]
    with pytest.raises(ValueError, match="node3"):
        ft.select_nodes(c, "node1,node3")


def test_run_on_reports_each_host_even_when_one_fails():
    g = group(
        node1=MockContext(run={STATUS_CMD: Result(stdout=status_json(node1="active", node2="standby"))}),
        node2=MockContext(run={STATUS_CMD: Result(stdout="", stderr="daemon not running", exited=3)}),
    )
    results = ft.with_json(ft.run_on(g, STATUS_CMD))
    by = {r.node: r for r in results}
    assert by["node1"].ok and by["node1"].data["nodes"][0]["role"] == "active"
    assert not by["node2"].ok and by["node2"].exit_code == 3
    assert "daemon not running" in ft.status_line(by["node2"])
    assert ft.exit_status(results) == 1
    assert ft.active_nodes(results) == ["node1"]


def test_run_on_unreachable_host_is_a_failure_not_a_crash():
    g = group(
        node1=MockContext(run={STATUS_CMD: Result(stdout=status_json(node1="active"))}),
        node2=Unreachable(),
    )
    results = ft.run_on(g, STATUS_CMD)
    by = {r.node: r for r in results}
    assert by["node1"].ok
    assert by["node2"].exit_code is None and "refused" in by["node2"].error.lower()
    assert [r.node for r in results] == ["node1", "node2"]  # group order kept
    assert ft.exit_status(results) == 1


def test_all_ok_exit_zero_and_no_hosts_is_failure():
    g = group(node1=MockContext(run={"hasync sync": Result(stdout="synced")}),
              node2=MockContext(run={"hasync sync": Result(stdout="synced")}))
    results = ft.run_on(g, "hasync sync")
    assert ft.exit_status(results) == 0
    assert ft.exit_status([]) == 1


def test_bad_json_marks_host_failed():
    g = group(node1=MockContext(run={STATUS_CMD: Result(stdout="not json")}))
    (r,) = ft.with_json(ft.run_on(g, STATUS_CMD))
    assert not r.ok and "JSON" in r.error


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"nodes": [{"name": "node1", "role": "active"}, {"name": "node2", "role": "standby"}]}, {"node1": "active", "node2": "standby"}),
        ({"nodes": {"node1": {"role": "standby"}, "node2": {"state": "active"}}}, {"node1": "standby", "node2": "active"}),
        ({"nodes": {"node1": "dead"}}, {"node1": "dead"}),
        ({"node": "node2", "role": "standby", "owned": [], "peer": {"node": "node1", "state": "up", "role": "active", "owned": ["vip"]}},
         {"node2": "standby", "node1": "active"}),
        ({"node": "node2", "role": "active", "peer": {"node": "node1", "state": "dead", "role": "active"}},
         {"node2": "active", "node1": "dead"}),
        ([1, 2], {}),
        ({"other": 1}, {}),
    ],
)
def test_roles_shapes(data, expected):
    assert ft.roles(data) == expected


def test_active_from_the_daemons_status_shape():
    data = {"node": "node2", "role": "starting", "owned": ["vip"], "peer": {"node": "node1", "state": "up", "role": "standby", "owned": []}}
    r = ft.HostResult("node2", "10.0.0.2", STATUS_CMD, 0, stdout=json.dumps(data), data=data)
    assert ft.active_nodes([r]) == ["node2"]
    assert "node1=standby" in ft.status_line(r)


def test_plans():
    names = ["node1", "node2"]
    assert ft.plan_standby(names, ["node1"], None).nodes == ("node1",)
    assert ft.plan_standby(names, [], "node2").nodes == ("node2",)
    assert ft.plan_standby(names, [], None).problem
    assert ft.plan_standby(names, ["node1", "node2"], None).problem
    assert ft.plan_takeover(names, ["node1"], None).nodes == ("node2",)
    assert ft.plan_takeover(names, [], None).problem
    p = ft.plan_migrate(names, ["node1"], "node2", dry_run=True)
    assert p.subcommand == ("migrate", "--to", "node2", "--dry-run") and p.nodes == ("node1",)
    assert ft.plan_migrate(names, [], "node2").nodes == ("node2",)
    assert ft.plan_migrate(names, ["node1"], "node9").problem


def test_plans_of_one_group():
    names, owners = ["node1", "node2"], {"a": "node1", "b": "node2"}
    both = ["node1", "node2"]
    assert ft.plan_standby(names, both, None, group="b", owners=owners) == ft.Plan(("migrate", "b", "--to", "node1"), ("node2",))
    assert ft.plan_standby(names, [], "node1", group="b", owners=owners) == ft.Plan(("migrate", "b", "--to", "node2"), ("node1",))
    assert "runs on both nodes" in ft.plan_standby(names, both, None, group="a", owners={"a": "both"}).problem
    assert "runs nowhere" in ft.plan_standby(names, [], None, group="a", owners={}).problem
    assert ft.plan_takeover(names, both, None, group="a", owners=owners) == ft.Plan(("migrate", "a", "--to", "node2"), ("node2",))
    assert ft.plan_takeover(names, [], "node1", group="a", owners={}) == ft.Plan(("migrate", "a", "--to", "node1"), ("node1",))
    assert ft.plan_takeover(names, [], None, group="a", owners={}).problem
    p = ft.plan_migrate(names, both, "node1", group="b", owners=owners, dry_run=True)
    assert p == ft.Plan(("migrate", "b", "--to", "node1", "--dry-run"), ("node2",))
    assert ft.plan_migrate(names, both, "node1", group="b", owners={}).nodes == ("node1",)  # owner unknown: the target
    assert "--group" in ft.plan_standby(names, both, None).problem  # both serve: name one


def test_group_owners_from_the_daemons_status():
    def r(node, owners, ok=True):
        data = {"node": node, "role": "active", "groups": [{"id": g, "owner": o} for g, o in owners.items()]}
        return ft.HostResult(node, "", STATUS_CMD, 0 if ok else 1, data=data)

    assert ft.group_owners([r("node1", {"a": "node1", "b": "node2"}), r("node2", {"a": "node1", "b": "node2"})]) == {"a": "node1", "b": "node2"}
    assert ft.group_owners([r("node1", {"a": "node1"}), r("node2", {"a": "node2"})]) == {"a": "both"}  # they disagree
    assert ft.group_owners([r("node1", {"a": "node1"}, ok=False)]) == {}
    assert ft.group_owners([ft.HostResult("n", "", STATUS_CMD, 0, data={"groups": [{"id": "a", "owner": None}]})]) == {}


def test_plan_sync():
    names = ["node1", "node2"]
    assert ft.plan_sync(names, ["node2"], None).nodes == ("node2",)
    assert ft.plan_sync(names, ["node2"], None).subcommand == ("sync", "--once")
    p = ft.plan_sync(names, [], None, dry_run=True)
    assert p.nodes == ("node1",) and p.subcommand[-1] == "--dry-run" and p.notes
    assert ft.plan_sync(names, [], "node1,node2").nodes == ("node1", "node2")


def test_results_table_has_a_row_per_host():
    from rich.console import Console

    rs = [ft.HostResult("node1", "10.0.0.1", "x", 0, stdout="fine"),
          ft.HostResult("node2", "10.0.0.2", "x", None, error="timed out after 5s")]
    con = Console(width=120, record=True)
    con.print(ft.results_table("t", rs))
    text = con.export_text()
    assert "node1" in text and "ok" in text and "FAILED" in text and "timed out" in text
