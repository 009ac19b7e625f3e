"""The on-call verbs in the CLI: argv -> the control socket's request (the shape the
server parses), exit statuses, the state directory of a daemon that is down, history,
`hasync resource` (its refusal rule and a real run of a script), `config show`,
`status`'s exit codes and banners, -c after the verb."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from hasync import cli, config
from hasync.cli import failover as cli_failover
from hasync.failover import client, hand_run, oncall, protocol
from hasync.failover.daemon import persist
from hasync.failover.states import Health, OpOutcome
from hasync.failover.status_view import health, operator_banner
from tests.unit.test_cli import MINIMAL
from tests.unit.test_failover_status_view import status as status_doc
from tests.unit.test_failover_status_view import text as status_text


class FakeDaemon:
    """A control socket answering one request with *replies* (each a dict), recording it."""

    def __init__(self, run_dir: Path, replies: list[dict]):
        self.path = run_dir / "failover.sock"
        self.replies = replies
        self.seen: list[bytes] = []
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(str(self.path))
        self.s.listen(1)
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self) -> None:
        conn, _ = self.s.accept()
        buf = b""
        while b"\n" not in buf:
            buf += conn.recv(4096)
        self.seen.append(buf.split(b"\n")[0])
        for r in self.replies:
            conn.sendall(protocol.encode(r))
        conn.close()
        self.s.close()

    def request(self) -> dict:
        self.t.join(5)
        return json.loads(self.seen[0])


def dirs(tmp_path: Path) -> list[str]:
    (tmp_path / "run").mkdir(exist_ok=True)
    return ["--run-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state"), "-c", str(MINIMAL)]


DONE = [{"ok": True, "message": "accepted", "node": "alpha", "role": "active"},
        {"event": {"message": "cleanup: vip: running here", "level": "info"}},
        {"done": True, "ok": True, "role": "active", "peer_role": "standby", "peer_state": "up", "timeline": None}]


@pytest.mark.parametrize("argv, wire", [
    (["cleanup"], {"cmd": "cleanup"}),
    (["cleanup", "vip"], {"cmd": "cleanup", "resource": "vip"}),
    (["maintenance", "on"], {"cmd": "maintenance-on"}),
    (["maintenance", "off", "--force"], {"cmd": "maintenance-off", "force": True}),
    (["stop"], {"cmd": "stop"}),
    (["start"], {"cmd": "start"}),
    (["standby"], {"cmd": "standby"}),
    (["standby", "beta"], {"cmd": "standby", "to": "beta"}),
    (["online"], {"cmd": "online"}),
    (["online", "beta"], {"cmd": "online", "to": "beta"}),
])
def test_each_verb_sends_one_request_the_server_understands(tmp_path, capsys, argv, wire):
    args = dirs(tmp_path)
    d = FakeDaemon(tmp_path / "run", DONE)
    assert cli.main([*argv, *args]) == 0
    assert d.request() == wire
    req = protocol.parse_request(json.dumps(wire).encode())  # what the daemon reads
    assert oncall.request(req.cmd, req.to, req.resource, req.force) == req
    out = capsys.readouterr().out
    assert "cleanup: vip: running here" in out and "done" in out  # the daemon's found/did lines


def test_a_refusal_or_a_command_that_is_not_done_exits_1(tmp_path, capsys):
    args = dirs(tmp_path)
    FakeDaemon(tmp_path / "run", [{"ok": False, "message": "maintenance mode: nothing moves; `hasync maintenance off` first"}])
    assert cli.main(["stop", *args]) == 1
    assert "refused" in capsys.readouterr().err
    (tmp_path / "run" / "failover.sock").unlink()
    FakeDaemon(tmp_path / "run", [DONE[0], dict(DONE[2], ok=False)])
    assert cli.main(["cleanup", *args]) == 1


def test_no_daemon_the_settings_go_to_its_state_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(config.identity.ENV_NODE, "alpha")
    state = tmp_path / "state"
    assert cli.main(["maintenance", "on", *dirs(tmp_path)]) == 0
    assert "not running here: maintenance mode on" in capsys.readouterr().out
    p, _ = persist.load(state, "beta")
    assert p.maintenance and p.settings_new and persist.since(state, "maintenance") is not None
    assert cli.main(["stop", *dirs(tmp_path)]) == 0 and persist.load(state, "beta")[0].stopped
    assert cli.main(["standby", "alpha", *dirs(tmp_path)]) == 0 and persist.load(state, "beta")[0].operator_standby
    assert cli.main(["online", *dirs(tmp_path)]) == 0 and not persist.load(state, "beta")[0].operator_standby
    capsys.readouterr()
    assert cli.main(["standby", "beta", *dirs(tmp_path)]) == 3  # the peer's own daemon must be told
    assert "run `hasync standby` on beta" in capsys.readouterr().err
    assert cli.main(["cleanup", *dirs(tmp_path)]) == 0
    assert "nothing to clean up" in capsys.readouterr().out


def test_no_daemon_and_no_usable_config_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(config.identity.ENV_NODE, "nobody")
    assert cli.main(["maintenance", "on", *dirs(tmp_path)]) == 3
    assert "not running" in capsys.readouterr().err
    assert not (tmp_path / "state" / "maintenance").exists()


# --------------------------------------------------------------------------- history


def write_history(state: Path) -> None:
    state.mkdir(parents=True)
    recs = [{"node": "alpha", "began": "2026-12-07T03:00:00.000Z", "trigger": "beta declared dead", "kind": "detect",
             "result": "active", "duration_ms": 812.5, "events": [{"offset_ms": 0.0, "message": "beta declared dead", "level": "warn"},
                                                                  {"offset_ms": 800.0, "message": "demo start: ok", "level": "info"}]},
            {"node": "alpha", "began": "2026-12-07T03:10:00.000Z", "trigger": "operator: standby (kept until `hasync online`)",
             "kind": "command", "result": "standby", "duration_ms": 15000.0, "events": []}]
    (state / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_history_lists_time_cause_duration_outcome(tmp_path, capsys):
    write_history(tmp_path / "state")
    assert cli.main(["history", "--json", *dirs(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["number"], r["cause"], r["duration_ms"], r["outcome"]) for r in rows] == [
        (1, "beta declared dead", 812.5, "active"), (2, "operator: standby (kept until `hasync online`)", 15000.0, "standby")]
    assert cli.main(["history", *dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "beta declared dead" in out and "812 ms" in out and "15.0 s" in out
    assert cli.main(["history", "show", "1", *dirs(tmp_path)]) == 0
    assert "demo start: ok" in capsys.readouterr().out
    assert cli.main(["history", "show", "-1", "--json", *dirs(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == "standby"
    assert cli.main(["history", "show", "3", *dirs(tmp_path)]) == 2
    assert "no record 3: there are 2" in capsys.readouterr().err


def test_history_record_numbers():
    recs = [{"n": 1}, {"n": 2}]
    assert oncall.history_record(recs, 1) == {"n": 1} and oncall.history_record(recs, -1) == {"n": 2}
    for bad in (0, 3, -3):
        with pytest.raises(oncall.NoSuchRecord):
            oncall.history_record(recs, bad)
    with pytest.raises(oncall.NoSuchRecord, match="no failover"):
        oncall.history_record([], 1)


def test_history_help_names_the_journal_units(capsys):
    with pytest.raises(SystemExit):
        cli.main(["history", "--help"])
    out = capsys.readouterr().out
    assert "journalctl -u hasync-failover" in out and "journalctl -u hasync-watch" in out


# --------------------------------------------------------------------------- resource


def st(role="standby", peer_state="up", peer_role="active", owned=(), fenced=False, **kw) -> dict:
    return {"role": role, "peer": {"node": "beta", "state": peer_state, "role": peer_role, "owned": list(owned), "fenced": fenced}, **kw}


@pytest.mark.parametrize("op, doc, force, refused", [
    ("start", st(peer_role="active", owned=("vip",)), False, "runs on beta"),
    ("start", st(peer_role="active"), False, "beta is active"),
    ("start", st(peer_state="unverified"), False, "cannot tell"),
    ("start", st(peer_state="dead"), False, "not fenced"),
    ("start", st(peer_state="dead", fenced=True), False, "maintenance on"),  # standby here, nothing keeps it still
    ("start", st(peer_state="dead", fenced=True, maintenance=True), False, ""),
    ("start", st(role="active", peer_role="standby"), False, ""),
    ("start", st(peer_role="standby", stopped=True), False, ""),
    ("promote", st(peer_role="standby", maintenance=True), False, ""),
    ("start", None, False, "not running here"),
    ("start", None, True, ""),
    ("stop", st(peer_role="active", owned=("vip",)), False, ""),
    ("monitor", None, False, ""),
])
def test_resource_refuses_a_second_copy(op, doc, force, refused):
    why, _ = hand_run.verdict(op, "vip", doc, force=force)
    assert (refused in why) if refused else why == ""


def test_resource_commands_come_from_the_chain_and_promote_is_refused():
    c = config.load(str(MINIMAL))
    vip = hand_run.resource(c, "vip")
    [cmd] = hand_run.commands(vip, "monitor", c.profile)
    assert cmd.argv[-1] == "monitor" and ("OCF_RESKEY_ip", "192.0.2.10") in cmd.env
    with pytest.raises(hand_run.Refused, match="not promotable"):
        hand_run.commands(vip, "promote", c.profile)
    with pytest.raises(hand_run.NoSuchResource, match="the chain: vip"):
        hand_run.resource(c, "nfs")
    assert hand_run.outcome(vip, "monitor", 7, "") == hand_run.Outcome(OpOutcome.STOPPED, "exit 7 (NOT_RUNNING)")
    assert hand_run.outcome(vip, "start", 124, "").word == OpOutcome.TIMEOUT


def script_cluster(tmp_path: Path) -> Path:
    script = tmp_path / "demo"
    script.write_text("#!/bin/sh\necho \"demo $1 here\"\n[ \"$1\" = status ] && { [ -e " + str(tmp_path / "up") + " ] && echo running "
                      "&& exit 0; echo stopped; exit 3; }\n[ \"$1\" = start ] && touch " + str(tmp_path / "up") + "\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    demo = f'[[resource]]\nid = "demo"\ntype = "heartbeat"\nagent = "{script}"\n\n'
    cfg = tmp_path / "c.toml"
    cfg.write_text(MINIMAL.read_text().replace("[fencing]", demo + "[fencing]"))  # the chain: vip, then demo
    return cfg


def test_resource_runs_the_script_and_reads_it_as_the_chain_does(tmp_path, capsys):
    cfg = script_cluster(tmp_path)
    base = ["--run-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state"), "-c", str(cfg)]
    assert cli.main(["resource", "demo", "monitor", *base]) == 3  # stopped
    out = capsys.readouterr().out
    assert "demo status here" in out and "demo monitor: stopped" in out
    assert cli.main(["resource", "demo", "start", *base]) == 4  # no daemon to ask: refused
    assert "not running here" in capsys.readouterr().err and not (tmp_path / "up").exists()
    assert cli.main(["resource", "demo", "start", "--force", *base]) == 0
    assert "demo start: ok (exit 0)" in capsys.readouterr().out and (tmp_path / "up").exists()
    assert cli.main(["resource", "demo", "monitor", "--foreground", *base]) == 0
    assert cli.main(["resource", "demo", "promote", *base]) == 4
    assert "not promotable" in capsys.readouterr().err
    assert cli.main(["resource", "nope", "stop", *base]) == 2


def test_resource_json_gives_every_command_and_its_outcome(tmp_path, capsys):
    cfg = script_cluster(tmp_path)
    base = ["--run-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state"), "-c", str(cfg)]
    assert cli.main(["resource", "demo", "monitor", "--json", *base]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert (doc["resource"], doc["op"], doc["outcome"], doc["exit"]) == ("demo", "monitor", "stopped", 3)
    [c] = doc["commands"]
    assert c["argv"][-1] == "status" and c["exit"] == 3 and "demo status here" in c["stdout"] and c["duration_s"] >= 0
    assert cli.main(["resource", "demo", "start", "--force", "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out)["commands"][0]["outcome"] == "ok"
    assert cli.main(["resource", "demo", "start", "--json", *base]) == 4  # refused: an error object
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is False
    assert cli.main(["resource", "demo", "monitor", "--json", "--foreground", *base]) == 2
    assert "do not go together" in capsys.readouterr().err


# --------------------------------------------------------------------------- config show, -c, status


def test_config_show_fills_in_the_defaults_and_resolves_the_commands(capsys):
    assert cli.main(["config", "show", "--json", "-c", str(MINIMAL)]) == 0
    doc = json.loads(capsys.readouterr().out)
    # not in the file: derived from deadtime (warntime, initdead) or the built-in defaults
    assert (doc["heartbeat"]["warntime"], doc["heartbeat"]["initdead"], doc["heartbeat"]["history"]) == (0.25, 0.5, 200)
    assert doc["storage"]["use_drbd"] is True and doc["nfs"]["grace_time"] == 20.0
    [vip] = doc["resources"]
    assert vip["commands"]["start"] == ["OCF_RESKEY_cidr_netmask=24 OCF_RESKEY_ip=192.0.2.10 /usr/lib/ocf/resource.d/heartbeat/IPaddr2 start"]
    assert "promote" not in vip["commands"]
    assert doc["fencing"]["resolved"]["beta"]["fence"] == "fence_ipmilan -a 192.0.2.2 -o off"
    assert cli.main(["config", "show", "-c", str(MINIMAL)]) == 0
    out = capsys.readouterr().out
    assert "[heartbeat]" in out and "warntime = 0.25" in out and "# monitor: OCF_RESKEY_cidr_netmask=24" in out


def test_c_is_accepted_after_the_verb(tmp_path):
    assert cli.main(["check", "-q", "-c", str(MINIMAL)]) == 0
    assert cli.main(["check", "-q", "-c", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.parametrize("doc, level, code", [
    (status_doc(), Health.OK, 0),
    (status_doc(warnings=["link serial is dead"]), Health.WARN, 1),
    (status_doc(role="standby", peer_role="standby"), Health.BAD, 2),
    (dict(status_doc(role="standby", peer_role="standby"), stopped=True), Health.WARN, 1),
    (dict(status_doc(role="standby", peer_role="standby"), maintenance=True), Health.WARN, 1),
    (dict(status_doc(), peer=dict(status_doc()["peer"], flags=["operator-standby"])), Health.WARN, 1),  # no failover
    (dict(status_doc(), warnings=[], drbd={"level": "bad", "summary": "DRBD r0 is StandAlone"}), Health.BAD, 2),
    (dict(status_doc(), warnings=[], drbd={"level": "warn", "summary": "DRBD r0: resync"}), Health.WARN, 1),
])
def test_status_exit_codes_0_ok_1_warning_2_problem(monkeypatch, capsys, doc, level, code):
    assert health(doc)[0] == level
    monkeypatch.setattr(client, "status_or_last", lambda paths: client.Answer(doc))
    monkeypatch.setattr(cli_failover, "drbd_here", lambda args: None)
    assert cli.main(["status", "-c", "/nonexistent"]) == code


def test_status_shows_the_operators_settings_loudly():
    doc = dict(status_doc(role="standby", peer_role="standby"), maintenance=True, stopped=True, operator_standby=True)
    doc["peer"] = dict(doc["peer"], flags=["operator-standby"])
    banners = operator_banner(doc)
    assert [b.split(":")[0] for b in banners] == ["MAINTENANCE MODE", "STOPPED ON PURPOSE", "STANDBY", "STANDBY"]
    out = status_text(doc)
    assert "MAINTENANCE MODE" in out and "hasync online node2" in out
    assert operator_banner(status_doc()) == []


def test_status_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 ok" in out and "1 warning" in out and "2 problem" in out and "3 the daemon is not running" in out


def test_offline_change_names_the_file(tmp_path):
    paths = client.Paths.default(str(tmp_path / "s"), str(tmp_path / "r"))
    msg = oncall.offline_change(paths, oncall.request("stop"), local="alpha", peer="beta")
    assert str(tmp_path / "s" / "stopped") in msg and (tmp_path / "s" / "stopped").exists()
    assert oncall.offline_change(paths, oncall.request("cleanup"), local="alpha", peer="beta") == ""
    assert oncall.offline_change(paths, oncall.request("standby", node="beta"), local="alpha", peer="beta") == ""
    assert os.path.exists(tmp_path / "s" / "settings-new")


def test_progress_lines_are_not_broken_when_piped(capsys, monkeypatch):
    """A cleanup's "did" line is one line in a pipe too (rich wrapped it at 80 columns)."""
    from hasync.cli import failover_views

    monkeypatch.setenv("COLUMNS", "40")
    show = failover_views.move_progress("cleanup", as_json=False, clock=lambda: 0.0)
    line = "nothing of the chain runs here: stop-failed cleared, this node is standby"
    show({"event": {"message": line, "level": "info"}})
    show({"done": True, "ok": True, "role": "standby", "peer_role": "active", "peer_state": "up"})
    out = capsys.readouterr().out
    assert line in out and "this node is standby, peer active (up)" in out
