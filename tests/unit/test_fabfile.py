"""failover/fabfile.py: the tasks, run on fake connections (invoke.MockContext per node)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from fabric import ThreadingGroup
from invoke import Context, MockContext, Result

from hasync import fab as ft
from hasync.resources import data_file

CONFIG = """
[cluster]
name = "t"
profile = "debian12"
preferred_node = "node1"

[[node]]
name = "node1"
address = "10.9.0.1"

[[node]]
name = "node2"
address = "10.9.0.2"

[heartbeat]
keepalive = "200ms"
deadtime = "1s"
warntime = "500ms"
initdead = "2s"

[[heartbeat.link]]
name = "public"
kind = "udp-broadcast"
interface = "eth0"

[sync]
paths = ["/etc/exports"]
ssh_key = "/etc/hasync/ssh/id_ed25519"

[fencing]
mode = "off"
"""


@pytest.fixture
def fabfile():
    spec = importlib.util.spec_from_file_location("hasync_fabfile_under_test", data_file("failover", "fabfile.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def config(tmp_path: Path) -> str:
    p = tmp_path / "cluster.toml"
    p.write_text(CONFIG)
    return str(p)


class Fake:
    """Per-node MockContexts, plus what make_group was asked for."""

    def __init__(self, runs: dict[str, dict[str, Result]]):
        self.runs = runs
        self.groups: list[tuple[list[str], str | None, str]] = []
        self.contexts: dict[str, MockContext] = {}

    def make_group(self, nodes, *, key, user):
        nodes = list(nodes)
        self.groups.append(([n.name for n in nodes], key, user))
        conns = []
        for n in nodes:
            ctx = MockContext(run=dict(self.runs.get(n.name, {})))
            self.contexts[n.name] = ctx
            conns.append(ft.NodeConnection(n.name, n.address, ctx))
        return ThreadingGroup.from_connections(conns)


def status(**roles) -> Result:
    return Result(stdout=json.dumps({"nodes": [{"name": n, "role": r} for n, r in roles.items()]}))


BOTH_SEE_NODE1_ACTIVE = {
    "node1": {"hasync status --json": status(node1="active", node2="standby")},
    "node2": {"hasync status --json": status(node1="active", node2="standby")},
}


def test_status_all_nodes_ok(fabfile, config, monkeypatch, capsys):
    fake = Fake(BOTH_SEE_NODE1_ACTIVE)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    monkeypatch.delenv("HASYNC_SSH_KEY", raising=False)
    fabfile.status(Context(), config=config)  # no SystemExit: every host ok
    out = capsys.readouterr().out
    assert "node1=active" in out and "10.9.0.2" in out
    assert fake.groups == [(["node1", "node2"], "/etc/hasync/ssh/id_ed25519", "root")]


def test_status_one_host_down_exits_1_and_still_reports_the_other(fabfile, config, monkeypatch, capsys):
    fake = Fake({"node1": BOTH_SEE_NODE1_ACTIVE["node1"], "node2": {}})  # node2: unknown command -> MockContext raises
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.status(Context(), config=config, key="/k")
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "node1=active" in out and "FAILED" in out
    assert fake.groups[0][1] == "/k"


def test_status_json(fabfile, config, monkeypatch, capsys):
    monkeypatch.setattr(fabfile, "make_group", Fake(BOTH_SEE_NODE1_ACTIVE).make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.status(Context(), config=config, as_json=True)
    assert e.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["node2"]["nodes"][0] == {"name": "node1", "role": "active"}


def test_standby_runs_on_the_active_node_only(fabfile, config, monkeypatch):
    runs = {k: dict(v) for k, v in BOTH_SEE_NODE1_ACTIVE.items()}
    runs["node1"]["hasync standby"] = Result(stdout="stopped chain")
    fake = Fake(runs)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    fabfile.standby(Context(), config=config)
    assert fake.groups[-1][0] == ["node1"]
    fake.contexts["node1"].run.assert_called_with(
        "hasync standby", hide=True, warn=True, in_stream=False, timeout=ft.DEFAULT_TIMEOUT
    )


def test_takeover_runs_on_the_passive_node(fabfile, config, monkeypatch):
    runs = {k: dict(v) for k, v in BOTH_SEE_NODE1_ACTIVE.items()}
    runs["node2"]["hasync -c /etc/c.toml takeover"] = Result(stdout="took over")
    runs["node1"]["hasync -c /etc/c.toml status --json"] = runs["node1"].pop("hasync status --json")
    runs["node2"]["hasync -c /etc/c.toml status --json"] = runs["node2"].pop("hasync status --json")
    fake = Fake(runs)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    fabfile.takeover(Context(), config=config, remote_config="/etc/c.toml")
    assert fake.groups[-1][0] == ["node2"]


def test_migrate_failure_exits_1(fabfile, config, monkeypatch, capsys):
    runs = {k: dict(v) for k, v in BOTH_SEE_NODE1_ACTIVE.items()}
    runs["node1"]["hasync migrate --to node2"] = Result(stderr="node2 unreachable", exited=1)
    monkeypatch.setattr(fabfile, "make_group", Fake(runs).make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.migrate(Context(), to="node2", config=config)
    assert e.value.code == 1
    assert "node2 unreachable" in capsys.readouterr().out


def test_migrate_to_unknown_node_runs_nothing(fabfile, config, monkeypatch):
    fake = Fake(BOTH_SEE_NODE1_ACTIVE)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.migrate(Context(), to="node7", config=config)
    assert e.value.code == 1
    assert len(fake.groups) == 1  # only the status probe


def test_sync_on_named_node_and_unknown_node(fabfile, config, monkeypatch):
    fake = Fake({"node2": {"hasync sync --once": Result(stdout="1 file")}})
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    fabfile.sync(Context(), config=config, node="node2")
    assert fake.groups == [(["node2"], "/etc/hasync/ssh/id_ed25519", "root")]
    with pytest.raises(SystemExit) as e:
        fabfile.sync(Context(), config=config, node="node3")
    assert e.value.code == 2


def test_bad_config_exits_2(fabfile, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nname = 3\n")
    monkeypatch.setattr(fabfile, "make_group", Fake({}).make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.status(Context(), config=str(bad))
    assert e.value.code == 2


def test_sync_runs_once_on_the_active_node(fabfile, config, monkeypatch):
    runs = {k: dict(v) for k, v in BOTH_SEE_NODE1_ACTIVE.items()}
    runs["node1"]["hasync sync --once --dry-run"] = Result(stdout="would copy /etc/exports")
    fake = Fake(runs)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    fabfile.sync(Context(), config=config, dry_run=True)
    assert fake.groups[-1][0] == ["node1"]


# --------------------------------------------------------------------------- resource groups

GROUPS = CONFIG + "".join(f"""
[[group]]
id = "{gid}"
preferred_node = "{node}"

[[group.resource]]
id = "{gid}-ip"
type = "ocf"
agent = "heartbeat:IPaddr2"
params = {{ ip = "{ip}", cidr_netmask = "24" }}
""" for gid, node, ip in (("a", "node1", "10.9.0.100"), ("b", "node2", "10.9.0.101")))


def group_status(me: str, peer: str, owners: dict[str, str]) -> Result:
    """The daemon's `status --json` with two groups (membership_groups.snapshot's shape)."""
    return Result(stdout=json.dumps({
        "node": me, "role": "active", "owned": [g for g, o in owners.items() if o == me],
        "peer": {"node": peer, "state": "up", "role": "active", "owned": [g for g, o in owners.items() if o == peer]},
        "groups": [{"id": g, "owner": o} for g, o in owners.items()],
    }))


EACH_RUNS_ITS_OWN = {
    "node1": {"hasync status --json": group_status("node1", "node2", {"a": "node1", "b": "node2"})},
    "node2": {"hasync status --json": group_status("node2", "node1", {"a": "node1", "b": "node2"})},
}


@pytest.fixture
def groups_config(tmp_path: Path) -> str:
    p = tmp_path / "groups.toml"
    p.write_text(GROUPS)
    return str(p)


def runs_with(extra: dict[str, dict[str, Result]]) -> dict[str, dict[str, Result]]:
    runs = {k: dict(v) for k, v in EACH_RUNS_ITS_OWN.items()}
    for node, cmds in extra.items():
        runs[node].update(cmds)
    return runs


def test_status_shows_where_each_group_runs(fabfile, groups_config, monkeypatch, capsys):
    monkeypatch.setattr(fabfile, "make_group", Fake(EACH_RUNS_ITS_OWN).make_group)
    fabfile.status(Context(), config=groups_config)
    out = " ".join(capsys.readouterr().out.split())  # the table folds the detail column
    assert "a@node1" in out and "b@node2" in out
    (r,) = ft.with_json([ft.HostResult("node1", "10.9.0.1", "hasync status --json", 0, EACH_RUNS_ITS_OWN["node1"]["hasync status --json"].stdout)])
    assert ft.status_line(r) == "node1=active, node2=active; groups: a@node1, b@node2"


@pytest.mark.parametrize(("task", "kw", "where", "command"), [
    ("migrate", {"to": "node1", "group": "b"}, "node2", "hasync migrate b --to node1"),  # on the node running b
    ("standby", {"group": "a"}, "node1", "hasync migrate a --to node2"),  # a away from its node, b stays
    ("takeover", {"group": "b"}, "node1", "hasync migrate b --to node1"),  # on the node taking b
])
def test_one_groups_move_runs_migrate_group_on_the_right_node(fabfile, groups_config, monkeypatch, task, kw, where, command):
    fake = Fake(runs_with({where: {command: Result(stdout="moved")}}))
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    getattr(fabfile, task)(Context(), config=groups_config, **kw)
    assert fake.groups[-1][0] == [where]
    fake.contexts[where].run.assert_called_with(command, hide=True, warn=True, in_stream=False, timeout=ft.DEFAULT_TIMEOUT)


def test_standby_without_a_group_when_both_nodes_serve_says_to_name_one(fabfile, groups_config, monkeypatch, capsys):
    fake = Fake(EACH_RUNS_ITS_OWN)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    with pytest.raises(SystemExit) as e:
        fabfile.standby(Context(), config=groups_config)
    assert e.value.code == 1
    assert "--group" in capsys.readouterr().err
    assert len(fake.groups) == 1  # only the status probe


def test_an_unknown_group_is_bad_input_and_runs_nothing(fabfile, groups_config, monkeypatch, capsys):
    fake = Fake(EACH_RUNS_ITS_OWN)
    monkeypatch.setattr(fabfile, "make_group", fake.make_group)
    for task, kw in ((fabfile.migrate, {"to": "node1"}), (fabfile.standby, {}), (fabfile.takeover, {})):
        with pytest.raises(SystemExit) as e:
            task(Context(), config=groups_config, group="zz", **kw)
        assert e.value.code == 2
    assert fake.groups == []  # no ssh at all
    assert "--group 'zz' is not a resource group" in capsys.readouterr().err
