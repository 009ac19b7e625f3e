"""Bad input on the on-call verbs, as a confused user or an attacker gives it: unknown
nodes and resources, numbers out of range, a garbled or missing state directory, a
control socket that is not a socket or answers garbage, a config that is not one. Each
gives one clear line, exit 2 for bad input, no traceback, nothing half-written; with
--json an error object on stdout too."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from hasync import cli
from hasync.effects import files
from hasync.failover import client, oncall, shapes
from hasync.failover.daemon import persist
from hasync.failover.timeline import Timeline, load_history, parse_history
from tests.unit.test_cli import MINIMAL
from tests.unit.test_failover_status_view import status as status_doc


@pytest.fixture
def here(tmp_path, monkeypatch) -> list[str]:
    """The dirs and config of a node "alpha" with no daemon, everything under tmp_path."""
    monkeypatch.setenv("HASYNC_NODE", "alpha")
    (tmp_path / "run").mkdir()
    (tmp_path / "state").mkdir()
    return ["--run-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state"), "-c", str(MINIMAL)]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


class Answering:
    """Something on the control socket that answers every connection with *reply* (bytes)."""

    def __init__(self, path: Path, reply: bytes):
        self.reply = reply
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(str(path))
        self.s.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.s.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.s.close()


# --------------------------------------------------------------------------- names and numbers


@pytest.mark.parametrize("argv, says", [
    (["standby", "gamma"], "no node named 'gamma'; nodes: alpha, beta"),
    (["online", "gamma"], "no node named 'gamma'"),
    (["cleanup", "nosuch"], "no resource 'nosuch'; the chain: vip"),
])
def test_an_unknown_node_or_resource_is_bad_input(here, capsys, argv, says):
    assert cli.main([*argv, *here]) == 2
    assert says in capsys.readouterr().err
    assert cli.main([*argv, "--json", *here]) == 2
    doc = last_json(capsys.readouterr().out)
    assert doc["ok"] is False and says in doc["error"] and doc["exit"] == 2


@pytest.mark.parametrize("argv", [
    ["standby", "--wait", "-1"], ["standby", "--wait", "0"], ["takeover", "--wait", "nan"],
    ["maintenance", "on", "--wait", "inf"], ["history", "--last", "-5"], ["history", "--last", "x"],
    ["history", "show", "abc"], ["maintenance", "ON"],
])
def test_numbers_out_of_range_are_refused_by_the_parser(here, capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, *here])
    assert e.value.code == 2 and "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("n", ["0", "3", "-3", "99999999999999999999999", "-99999999999999999999999"])
def test_history_show_a_record_that_is_not_there(here, tmp_path, capsys, n):
    (tmp_path / "state" / "history.jsonl").write_text('{"began": "a"}\n{"began": "b"}\n')
    assert cli.main(["history", "show", n, *here]) == 2
    assert "there are 2 (1 is the oldest, -1 the newest)" in capsys.readouterr().err


# --------------------------------------------------------------------------- the state directory


def test_history_of_a_state_dir_that_is_missing_or_not_a_directory(tmp_path, capsys):
    missing = ["--state-dir", str(tmp_path / "nope"), "--run-dir", str(tmp_path)]
    assert cli.main(["history", *missing]) == 2
    assert "nope: no such directory" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert cli.main(["history", "show", "1", "--json", "--state-dir", str(tmp_path / "afile")]) == 2
    cap = capsys.readouterr()
    assert "afile: not a directory" in cap.err and last_json(cap.out)["exit"] == 2


def test_history_that_cannot_be_read_is_an_error_not_an_empty_list(here, tmp_path, capsys, monkeypatch):
    (tmp_path / "state" / "history.jsonl").mkdir()  # EISDIR
    assert cli.main(["history", *here]) == 2
    assert "history.jsonl: Is a directory" in capsys.readouterr().err
    (tmp_path / "state" / "history.jsonl").rmdir()
    (tmp_path / "state" / "history.jsonl").write_text("{}\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert cli.main(["history", *here]) == 2
    assert "Permission denied (run as root)" in capsys.readouterr().err


GARBLED = [b"{bad", b"[1, 2]", b'"text"', b"42", b"null", b'{"duration_ms": "abc"}', b'{"began": 5}',
           b'{"duration_ms": 1e999}', b'{"duration_ms": 123456789012345678901234567890}', b'{"events": "x"}',
           b'{"events": [{"offset_ms": 1}]}', b'{"events": [5]}', b"\xff\xfe", b'{"events_dropped": true}']


def test_garbled_history_lines_are_skipped_and_counted(here, tmp_path, capsys):
    good = b'{"began": "2026-01-01T00:00:00Z", "trigger": "beta declared dead", "result": "active", "duration_ms": 12.5}'
    (tmp_path / "state" / "history.jsonl").write_bytes(b"\n".join([good, *GARBLED, good]) + b"\n")
    assert parse_history((tmp_path / "state" / "history.jsonl").read_bytes())[1] == len(GARBLED)
    assert cli.main(["history", *here]) == 0
    cap = capsys.readouterr()
    assert f"{len(GARBLED)} line(s) are not failover records" in cap.err and "beta declared dead" in cap.out
    assert cli.main(["history", "--json", *here]) == 0
    assert [r["number"] for r in json.loads(capsys.readouterr().out)] == [1, 2]
    for n in ("1", "-1"):
        assert cli.main(["history", "show", n, *here]) == 0


@pytest.mark.parametrize("bad", [b"[1]", b'{"result": "in progress", "events": "x"}', b"{", b'"x"'])
def test_a_garbled_last_failover_is_no_record(here, tmp_path, capsys, bad):
    (tmp_path / "state" / "last-failover.json").write_bytes(bad)
    for argv in (["status"], ["status", "--json"], ["history"], ["history", "--json"]):
        assert cli.main([*argv, *here]) in (0, 3)
    assert cli.main(["history", "show", "-1", *here]) == 2  # none recorded
    capsys.readouterr()


def test_what_the_daemon_writes_is_a_record(tmp_path):
    """The shapes are not stricter than the daemon: its own records and status pass."""
    tl = Timeline(tmp_path, "alpha")
    tl.add("detect", "beta declared dead", "warn", reason="deadtime")
    tl.add("role", "role standby -> active", "info")
    tl.settle("active")
    tl.add("command", "operator: standby", "info")  # a second one, still in progress
    tl.flush()
    records, skipped = load_history(tmp_path)
    assert skipped == 0 and [r["result"] for r in records] == ["active", "in progress"]
    assert all(shapes.record_problem(r) == "" for r in records) and shapes.record_problem(tl.last) == ""
    assert shapes.status_problem(status_doc()) == ""


def test_shape_problems_name_the_place():
    st = status_doc()
    st["peer"]["state"] = 5
    assert shapes.status_problem(st) == "peer.state: expected text, got a number"
    st = status_doc()
    st["links"][1]["received"] = "many"
    assert shapes.status_problem(st) == "links[1].received: expected an integer, got text"
    assert shapes.status_problem([]) == "the document: expected an object, got a list"
    assert shapes.status_problem({}) == "node: missing"
    assert shapes.record_problem({"duration_ms": True}) == "record.duration_ms: expected a finite number, got true/false"


# --------------------------------------------------------------------------- offline writes


@pytest.mark.parametrize("argv", [["maintenance", "on"], ["stop"], ["standby"]])
def test_a_state_dir_that_is_a_file_is_bad_input_and_nothing_is_written(here, tmp_path, capsys, argv):
    (tmp_path / "state").rmdir()
    (tmp_path / "state").write_text("not a dir")
    assert cli.main([*argv, *here]) == 2
    assert "state: not a directory" in capsys.readouterr().err
    assert (tmp_path / "state").read_text() == "not a dir"
    assert cli.main([*argv, "--json", *here]) == 2
    assert last_json(capsys.readouterr().out)["exit"] == 2


def test_a_mistyped_state_dir_is_not_created(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "alpha")
    argv = ["maintenance", "on", "--run-dir", str(tmp_path), "--state-dir", str(tmp_path / "no" / "such"), "-c", str(MINIMAL)]
    assert cli.main(argv) == 2
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_a_write_that_fails_halfway_is_undone(here, tmp_path, capsys, monkeypatch):
    """maintenance on writes two markers (maintenance, settings-new): the second failing
    must not leave the first (the peer's older copy would then win)."""
    real = files.atomic_write

    def second_fails(path, *a, **kw):
        if Path(path).name == "settings-new":
            raise OSError(28, "No space left on device", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(persist, "atomic_write", second_fails)
    assert cli.main(["maintenance", "on", *here]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == []


def test_a_marker_that_cannot_be_removed_is_an_error(here, tmp_path, capsys):
    (tmp_path / "state" / "maintenance").mkdir()
    assert cli.main(["maintenance", "off", *here]) == 2
    assert "maintenance: Is a directory (nothing changed" in capsys.readouterr().err


# --------------------------------------------------------------------------- the control socket


def test_a_socket_path_that_is_not_a_socket(here, tmp_path, capsys):
    (tmp_path / "run" / "failover.sock").write_text("")
    assert cli.main(["takeover", *here]) == 3
    assert "failover.sock is not a socket" in capsys.readouterr().err
    assert cli.main(["status", "--json", *here]) == 3
    assert "is not a socket" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("reply", [b"garbage\n", b"\xff\xfe\n", b"[1]\n", b'"x"\n', b"{}\n", b"", b'{"ok": true}\n',
                                   json.dumps(dict(status_doc(), peer={"node": 5})).encode() + b"\n"])
def test_garbage_on_the_control_socket(here, tmp_path, capsys, monkeypatch, reply):
    monkeypatch.setattr("hasync.cli.failover.drbd_here", lambda args: None)
    srv = Answering(tmp_path / "run" / "failover.sock", reply)
    try:
        if reply:
            assert cli.main(["status", *here]) == 2
            assert "another version of hasync" in capsys.readouterr().err
            assert cli.main(["status", "--json", *here]) == 0
            doc = json.loads(capsys.readouterr().out)
            assert doc["health"]["level"] == "bad" and "another version" in doc["error"]
        else:  # closed without a word: as good as not running
            assert cli.main(["status", *here]) == 3
            assert "closed the connection" in capsys.readouterr().out
        for argv in (["takeover"], ["maintenance", "on", "--json"], ["cleanup"], ["standby", "beta"]):
            code = cli.main([*argv, *here])
            cap = capsys.readouterr()
            if reply == b'{"ok": true}\n':  # an answer without "done": accepted, nothing more said
                assert code in (0, 1)
                continue
            assert code == 1 and "error:" in cap.err, (argv, cap)
    finally:
        srv.close()


def test_client_bad_answer_is_typed(tmp_path):
    srv = Answering(tmp_path / "s", b"[]\n")
    try:
        with pytest.raises(client.BadAnswer):
            client.status(tmp_path / "s")
        with pytest.raises(client.BadAnswer):
            client.command(tmp_path / "s", oncall.request("cleanup"), lambda obj: None, wait=5)
    finally:
        srv.close()


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize("text, says", [
    ("x = \n", "c.toml:1: TOML syntax"),
    ('[cluster]\nname = 1\n', "c.toml:2: cluster.name"),
    (b"\xff\xfe", "c.toml:1: not UTF-8"),
])
def test_config_show_and_resource_on_a_garbled_config(tmp_path, capsys, text, says):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    for argv in (["config", "show"], ["resource", "vip", "monitor"], ["config", "show", "--json"]):
        assert cli.main([*argv, "-c", str(cfg)]) == 2
        cap = capsys.readouterr()
        assert says in cap.err
        if "--json" in argv:
            assert says in " ".join(last_json(cap.out)["errors"])
    assert cli.main(["config", "show", "-c", str(tmp_path / "none.toml"), "--json"]) == 2
    assert "no such config file" in last_json(capsys.readouterr().out)["error"]


def test_a_setting_not_written_for_a_stopped_daemon_says_why(here, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "gamma")  # the config cannot say which node this is
    assert cli.main(["maintenance", "on", *here]) == 3
    err = capsys.readouterr().err
    assert "nothing was written for it" in err and "gamma" in err
    assert list((tmp_path / "state").iterdir()) == []


def test_a_daemon_refusing_bad_input_gives_exit_2(tmp_path, here, capsys):
    """The daemon, not the local config, knows the groups and nodes it runs: when it says
    the group or node asked for does not exist, that is bad input (exit 2), not a failed
    move (exit 1)."""
    srv = Answering(tmp_path / "run" / "failover.sock",
                    b'{"ok": false, "message": "no resource group \'zz\'; groups: a, b", "bad_request": true}\n')
    try:
        assert cli.main(["migrate", "zz", "--to", "beta", *here]) == 2
        assert "no resource group 'zz'; groups: a, b" in capsys.readouterr().err
    finally:
        srv.close()
        (tmp_path / "run" / "failover.sock").unlink()
    srv = Answering(tmp_path / "run" / "failover.sock", b'{"ok": false, "message": "node2 is not up (dead)"}\n')
    try:
        assert cli.main(["migrate", "--to", "beta", *here]) == 1  # refused by the cluster's state
    finally:
        srv.close()
