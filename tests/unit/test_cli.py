"""The CLI package: the static verb table and its one lazy import, -c after the verb,
typed errors mapped to exit statuses, and the use cases the handlers call."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from hasync import cli, config, model
from hasync.cli import common
from hasync.effects.run import RecordingRunner, Result
from hasync.failover.fence_peer import Verdict, fence_node
from hasync.failover.migrate_plan import NOBODY, UNKNOWN, MigratePlan, active_node
from hasync.sync import transport
from hasync.sync.engine import Syncer
from hasync.sync.transport import IncompatiblePeer, PeerLink
from hasync.sync.watcher import Watcher

REPO = Path(__file__).resolve().parents[2]
MINIMAL = Path(__file__).parent / "data" / "config" / "good" / "minimal.toml"  # nodes alpha, beta


# ------------------------------------------------------------------ the verb table


def test_each_verb_module_registers_exactly_its_verbs_of_the_table():
    by_module: dict[str, set[str]] = {}
    for verb in cli.VERBS:
        by_module.setdefault(verb.module, set()).add(verb.name)
    for name, verbs in by_module.items():
        parser = cli.build_parser(importlib.import_module(name).register)
        sub = next(a for a in parser._actions if a.dest == "command")
        assert set(sub.choices) == verbs, name  # type: ignore[arg-type]


def test_help_lists_the_table_in_order(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per verb
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    positions = [out.index(f"    {v.name} ") for v in cli.VERBS]
    assert positions == sorted(positions)
    assert all(f"    {v.name:<20}{v.help}\n" in out for v in cli.VERBS)


def _modules_after(argv: list[str]) -> set[str]:
    code = ("import sys\nfrom hasync.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    return set(out.splitlines()[-1].split())


def test_the_daemon_verb_loads_its_module_only_and_no_rich():
    """`hasync failover run` runs for months with its memory locked: it must not carry the
    renderings (rich) nor the other verbs' modules."""
    mods = _modules_after(["failover", "run", "--help"])
    assert "hasync.cli.daemon" in mods
    assert not any(m == "rich" or m.startswith("rich.") for m in mods)
    assert not {"hasync.cli.failover", "hasync.cli.sync", "hasync.cli.check", "hasync.cli.views"} & mods
    assert "hasync.cli.failover" in _modules_after(["status", "--help"])


def test_help_and_the_plugin_verbs_load_no_config_code():
    """`hasync lab ...` (twice per lab fence from inside a node) and `--help` start fast."""
    assert not any(m.startswith("hasync.config") for m in _modules_after(["--help"]))
    assert cli.CONFIG_HELP == common.CONFIG_HELP  # the root's -c and the verbs' say the same


def test_check_loads_no_failover_client_chain_or_daemon_and_no_importer():
    """`hasync check` (run by admins and by bootstrap) renders findings only: the failover
    client, chain planner and daemon, and the haresources importer, are other verbs'
    (CLI start-up, docs/benchmarks.md): views.py holds no failover renderings, the
    haresources verb has its own module, the daemon package imports nothing."""
    mods = _modules_after(["-c", str(MINIMAL), "check"])
    assert "hasync.cli.check" in mods and "hasync.config" in mods
    heavy = {"hasync.failover.client", "hasync.failover.chain", "hasync.failover.daemon", "hasync.failover.oncall",
             "hasync.failover.migrate_plan", "hasync.failover.daemon.loop", "hasync.config.importer"}
    assert not heavy & mods
    # the on-call verbs read the daemon's state files, not its loop
    assert not {"hasync.failover.daemon.loop", "hasync.failover.daemon.run"} & _modules_after(["history", "--help"])


def test_a_plugin_verb_is_found_without_importlib_metadata(tmp_path, monkeypatch, capsys):
    """`hasync lab` reads the entry point from the installed distribution's
    entry_points.txt: importing importlib.metadata cost a third of `hasync lab status`."""
    assert "importlib.metadata" not in _modules_after(["lab", "status", "--name", "no-such-lab"])
    from hasync.cli import plugin

    dist = tmp_path / "site" / "fake_tool-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "entry_points.txt").write_text("[console_scripts]\nlab = wrong:main\n\n[hasync.verbs]\n"
                                           "# a comment\nlab = fake_lab_verb:Tool.main [extra]\n")
    (tmp_path / "site" / "fake_lab_verb.py").write_text(
        "class Tool:\n    @staticmethod\n    def main(argv):\n        print('ran', argv)\n        return 3\n")
    path = [str(tmp_path / "missing"), str(tmp_path / "site")]
    assert plugin.entry_point("lab", path) == "fake_lab_verb:Tool.main [extra]"
    with pytest.raises(LookupError):
        plugin.entry_point("lab", [str(tmp_path / "missing")])
    monkeypatch.setattr(sys, "path", path + sys.path)
    assert cli.main(["lab", "x", "--help"]) == 3
    assert "ran ['x', '--help']" in capsys.readouterr().out
    # not installed: one line saying how, exit 2 (no traceback)
    (dist / "entry_points.txt").write_text("[hasync.verbs]\nlab = no_such_module_here:main\n")
    assert cli.main(["lab", "status"]) == 2
    assert "the lab harness is not installed" in capsys.readouterr().err


def test_every_verb_module_that_reads_the_config_maps_its_errors():
    for name in {v.module for v in cli.VERBS} - {"hasync.cli.plugin"}:
        assert importlib.import_module(name).ERRORS[config.ConfigError] == (2, "error"), name


def test_config_after_the_verb(tmp_path, capsys):
    """issue 18: the missing-file error says `-c PATH`, and `hasync check -c FILE` failed."""
    assert cli.main(["check", "-c", str(MINIMAL), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(MINIMAL)
    assert cli.main(["check", "--json", "-c", str(tmp_path / "none.toml")]) == 2
    assert "no such config file (give one with -c PATH" in capsys.readouterr().out
    state = tmp_path / "state"
    text = MINIMAL.read_text().replace("[[resource]]", f'[sync]\nstate_dir = "{state}"\n\n[[resource]]')
    (tmp_path / "c.toml").write_text(text)
    assert cli.main(["sync", "status", "--json", "--node", "alpha", "-c", str(tmp_path / "c.toml")]) == 0
    assert json.loads(capsys.readouterr().out)["peer"] == "beta"
    # after the verb wins over before it
    assert cli.main(["-c", str(tmp_path / "none.toml"), "check", "-q", "-c", str(MINIMAL)]) == 0


def test_failover_without_an_action_prints_its_help(capsys):
    """`hasync failover` alone no longer runs the daemon (the units say `failover run`)."""
    assert cli.main(["failover"]) == 2
    assert "run the failover daemon in the foreground" in capsys.readouterr().out


def test_typed_errors_become_exit_statuses(capsys):
    assert cli.main(["-c", str(MINIMAL), "migrate", "--to", "gamma", "--dry-run", "--run-dir", "/nonexistent"]) == 2
    assert capsys.readouterr().err == "error: no node named 'gamma'; nodes: alpha, beta\n"
    assert cli.main(["-c", str(MINIMAL), "doctor", "--node", "gamma"]) == 2
    assert "node: --node says this host is 'gamma'" in capsys.readouterr().err


def test_the_daemon_verb_maps_its_start_up_errors(monkeypatch, capsys):
    from hasync.cli import daemon
    from hasync.effects.keyfile import KeyFileError
    from hasync.failover.errors import AlreadyRunning

    for error, status, err in ((AlreadyRunning("another hasync failover daemon is running"), 1,
                                "another hasync failover daemon is running\n"),
                               (KeyFileError("/k: readable by others"), 2, "hasync failover: /k: readable by others\n")):
        monkeypatch.setattr(daemon, "run_daemon", lambda cluster, error=error, **kw: (_ for _ in ()).throw(error))
        assert cli.main(["failover", "run", "-c", str(MINIMAL)]) == status
        assert capsys.readouterr().err == err


def test_an_unmapped_error_is_not_swallowed(monkeypatch):
    module = types.SimpleNamespace(register=lambda sub: sub.add_parser("check").set_defaults(func=_boom))
    monkeypatch.setattr(importlib, "import_module", lambda name: module)
    with pytest.raises(ZeroDivisionError):
        cli.main(["check"])


def _boom(args) -> int:
    raise ZeroDivisionError


def test_print_error_colours_only_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    common.print_error("x")
    common.print_error("y", "hasync watch")
    common.print_error("z", None)
    assert capsys.readouterr().err == "error: x\nhasync watch: y\nz\n"


def test_no_systemexit_in_the_library():
    """Library code returns values or raises typed errors; the CLI maps them."""
    found = []
    for path in (REPO / "hasync").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "SystemExit" or \
                    isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "exit" and \
                    getattr(node.func.value, "id", "") == "sys":  # type: ignore[attr-defined]
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []


# ------------------------------------------------------------------ fence (the use case)


def _cluster(tmp_path, *, command=("fence_test", "{node}", "{address}")) -> model.Cluster:
    return replace(config.load(MINIMAL), fencing=model.Fencing(mode="required", command=tuple(command), timeout=5.0))


def test_fence_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "alpha")
    c = _cluster(tmp_path)
    sock = tmp_path / "none.sock"
    runner = RecordingRunner()
    runner.responses[("fence_test", "beta", c.node("beta").address)] = Result((), 0, "", "", 0.25)
    assert fence_node(c, "gamma", runner=runner, socket=sock).verdict == Verdict.NO_SUCH_NODE
    assert fence_node(c, "alpha", runner=runner, socket=sock).verdict == Verdict.SELF
    done = fence_node(c, "beta", runner=runner, socket=sock)
    assert (done.verdict, done.node_is_down) == (Verdict.FENCED, True)
    assert done.message == f"fenced beta in 0.25s (`fence_test beta {c.node('beta').address}`)"
    # the daemon fenced beta and has not heard it since: not twice, unless forced
    fenced = {"peer": {"node": "beta", "fenced": True, "state": "dead"}}
    runner.calls.clear()
    assert fence_node(c, "beta", runner=runner, socket=sock, status=lambda s, timeout: fenced).verdict == Verdict.ALREADY_FENCED
    assert runner.calls == []
    assert fence_node(c, "beta", runner=runner, socket=sock, status=lambda s, timeout: fenced, force=True).verdict == Verdict.FENCED
    back = {"peer": {"node": "beta", "fenced": True, "state": "up"}}
    assert fence_node(c, "beta", runner=runner, socket=sock, status=lambda s, timeout: back).verdict == Verdict.FENCED
    no_cmd = _cluster(tmp_path, command=())
    assert fence_node(no_cmd, "beta", runner=runner, socket=sock).verdict == Verdict.NO_COMMAND


def test_fence_of_a_host_that_is_no_node_refuses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "admin-box")
    runner = RecordingRunner()
    c = _cluster(tmp_path)
    runner.responses[("fence_test", "alpha", c.node("alpha").address)] = Result((), 1, "", "power: BMC says no\n")
    r = fence_node(c, "alpha", runner=runner, socket=tmp_path / "none.sock")
    assert (r.verdict, r.message) == (Verdict.FAILED, f"`fence_test alpha {c.node('alpha').address}` exited 1: power: BMC says no")


# ------------------------------------------------------------------ migrate --dry-run


def test_who_holds_the_chain():
    assert active_node(None) == UNKNOWN
    assert active_node({"node": "a", "role": "active", "peer": {"node": "b", "role": "standby", "state": "up"}}) == "a"
    assert active_node({"node": "a", "role": "standby", "peer": {"node": "b", "role": "active", "state": "up"}}) == "b"
    assert active_node({"node": "a", "role": "standby", "peer": {"node": "b", "role": "active", "state": "dead"}}) == NOBODY


def test_who_holds_a_group():
    st = {"node": "a", "role": "active", "peer": {"node": "b", "role": "active", "state": "up"},
          "groups": [{"id": "g1", "owner": "a"}, {"id": "g2", "owner": "b"}, {"id": "g3", "owner": None}]}
    assert [active_node(st, g) for g in ("g1", "g2", "g3", "nope")] == ["a", "b", NOBODY, UNKNOWN]


def test_migrate_of_one_group_dry_run_plans_that_group_only(tmp_path, capsys):
    from tests.unit.test_config_groups import HEAD, A, B

    cfg = tmp_path / "c.toml"
    cfg.write_text(HEAD + A + B)
    assert cli.main(["-c", str(cfg), "migrate", "b", "--to", "alpha", "--dry-run", "--json", "--run-dir", str(tmp_path)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["start"] == ["b-drbd", "b-fs", "b-ip"] and plan["active"] == UNKNOWN
    assert cli.main(["-c", str(cfg), "migrate", "zz", "--to", "alpha", "--dry-run", "--run-dir", str(tmp_path)]) == 2
    assert "no resource group 'zz'; groups: a, b" in capsys.readouterr().err


def test_migrate_steps_stop_on_the_holder_then_start_on_the_target():
    res = [{"id": "drbd", "start": ["s1"], "stop": ["t1"]}, {"id": "vip", "start": ["s2"], "stop": ["t2", "t3"]}]
    assert MigratePlan("b", "a", res).steps() == [("a", "stop", "vip", "t2; t3"), ("a", "stop", "drbd", "t1"),
                                                  ("b", "start", "drbd", "s1"), ("b", "start", "vip", "s2")]
    assert MigratePlan("b", UNKNOWN, res).steps()[0] == ("b", "start", "drbd", "s1")
    assert MigratePlan("a", "a", res).nothing_to_do


# ------------------------------------------------------------------ sync


def test_an_incompatible_peer_unison_is_a_typed_error_not_systemexit(tmp_path):
    """watcher.py raised SystemExit from inside the library; now IncompatiblePeer, which
    the CLI prints as "hasync watch: ..." with exit 1."""
    sync = model.Sync(paths=(str(tmp_path / "etc"),), state_dir=str(tmp_path / "state"), backup_dir=str(tmp_path / "bak"))
    link = PeerLink(local_name="alpha", peer_name="beta", address="192.0.2.2", ssh_key="", known_hosts="",
                    state_dir=sync.state_dir, run_dir=str(tmp_path / "run"))
    link.alive = lambda: False  # type: ignore[method-assign]
    link.start = lambda: "unison version 2.48.4"  # type: ignore[method-assign]
    link.stop = lambda: None  # type: ignore[method-assign]
    syncer = Syncer(sync=sync, local_name="alpha", peer_name="beta", link=link, runner=RecordingRunner())
    w = Watcher(sync=sync, syncer=syncer, link=link, clock=None, local_unison_version="unison version 2.51.5")
    with pytest.raises(IncompatiblePeer, match="unison versions cannot talk to each other"):
        w._connect()
    assert issubclass(IncompatiblePeer, transport.LinkError)
