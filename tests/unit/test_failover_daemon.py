"""The daemon put together, in this process: one node whose peer never answers, on UDP
over loopback, a recording runner instead of resource agents. The loop, the control
socket (client and server sharing protocol.py), the executor, the worker, the status
document and the typed start-up errors."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from hasync import model
from hasync.effects.run import RecordingRunner, Result
from hasync.failover import client, protocol
from hasync.failover.daemon.control import ControlServer
from hasync.failover.daemon.loop import Daemon, Poller, next_generation
from hasync.failover.errors import AlreadyRunning, BadTiming
from hasync.failover.host import Paths
from hasync.failover.states import Command
from tests.unit.test_failover_daemon_io import free_port

KEY = b"0123456789abcdef0123456789abcdef"
VIP = model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"})
MONITOR = ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "monitor")
START = ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start")
STOP = ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "stop")


def cluster(**hb) -> model.Cluster:
    link = model.Link("hb", "udp-unicast", port=free_port(), addresses={"node1": "127.0.0.1", "node2": "127.0.0.2"})
    timing = {"keepalive": 0.01, "warntime": 0.03, "deadtime": 0.05, "initdead": 0.2, **hb}
    return model.Cluster(
        path="t.toml",
        cluster=model.ClusterInfo(name="t", profile="lab", preferred_node="node1"),
        nodes=(model.Node("node1", "127.0.0.1"), model.Node("node2", "127.0.0.2")),
        heartbeat=model.Heartbeat(links=(link,), **timing), sync=model.Sync(), storage=model.Storage(), nfs=model.Nfs(),
        resources=(VIP,), fencing=model.Fencing(mode="off"),
    )


def run_with_operator(d: Daemon, operator) -> None:
    """Run the daemon here (it owns the signals) while *operator* talks to its control
    socket from a thread and ends it with SIGTERM; the daemon must exit 0."""
    t = threading.Thread(target=operator, daemon=True)
    t.start()
    assert d.run() == 0
    t.join(5)


@pytest.fixture
def signals_restored():
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    signal.set_wakeup_fd(-1)
    for s, h in old.items():
        signal.signal(s, h)


def runner() -> RecordingRunner:
    r = RecordingRunner()
    state = {"up": False}

    def monitor(argv):
        return Result(argv, 0 if state["up"] else 7, "", "")

    def start(argv):
        state["up"] = True
        return Result(argv, 0, "", "")

    def stop(argv):
        state["up"] = False
        return Result(argv, 0, "", "")

    r.responses.update({MONITOR: monitor, START: start, STOP: stop})
    return r


def ask(path, req: dict) -> list[dict]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    s.sendall(protocol.encode(req))
    reader = protocol.LineReader()
    out: list[dict] = []
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += reader.feed(data)
    s.close()
    return out


def wait_active(paths: Paths, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if paths.role.read_text() == "active\n":
                return
        except OSError:
            pass
        time.sleep(0.01)


def test_a_lone_node_takes_the_chain_answers_commands_and_leaves_cleanly(tmp_path, signals_restored):
    c = cluster()
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()
    d = Daemon(c, "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False, log=io.StringIO())
    seen: dict = {}

    def operator():
        wait_active(paths)
        seen["status"] = client.status(paths.socket)
        seen["standby"] = ask(paths.socket, {"cmd": "standby"})  # the peer is not up: refused
        seen["unknown"] = ask(paths.socket, {"cmd": "frobnicate"})
        seen["migrate"] = ask(paths.socket, {"cmd": "migrate", "to": "node9"})
        seen["takeover"] = []
        client.command(paths.socket, protocol.Request(Command.TAKEOVER), seen["takeover"].append, wait=5)
        os.kill(os.getpid(), signal.SIGTERM)

    run_with_operator(d, operator)
    st = seen["status"]
    assert st["role"] == "active" and st["peer"]["state"] == "dead" and st["owned"] == ["vip"]
    assert st["resources"][0]["state_here"] == "running" and st["resources"][0]["running_on"] == ["node1"]
    assert st["daemon"]["packets_fast"] == 0 and st["daemon"]["wakes"] > 0 and st["daemon"]["rss_mb"] > 0
    assert st["fencing"] == {"mode": "off", "configured": False, "on_stop_failure": "fence-self"}
    assert "only one heartbeat link: a single failure looks like a dead peer" in st["warnings"]
    assert seen["standby"] == [{"ok": False, "message": "node2 is not up (dead): nobody would run the chain; not going standby", "node": "node1", "role": "active"}]
    assert seen["unknown"] == [{"ok": False, "message": "unknown command 'frobnicate'", "bad_request": True}]
    assert seen["migrate"] == [{"ok": False, "message": "no node named 'node9'; nodes: node1, node2", "bad_request": True}]
    assert seen["takeover"][0]["message"] == "already active" and seen["takeover"][-1]["done"] is True
    assert START in r.calls and r.calls[-1] == STOP  # stopped on the way out
    assert not paths.role.exists() and not paths.socket.exists()
    lines = [json.loads(x) for x in (paths.state_dir / "timeline.jsonl").read_text().splitlines()]
    assert lines[-1]["message"] == "left the cluster cleanly"
    assert any(x["kind"] == "resource" and x["message"].startswith("vip start: ok") for x in lines)


def test_typed_start_up_errors(tmp_path, monkeypatch):
    with pytest.raises(BadTiming, match="invalid heartbeat timing: deadtime"):
        Daemon(cluster(deadtime=0.015), "node1", KEY, Paths(tmp_path, tmp_path))
    # which node this host is: hasync.config.identity (test_config_identity.py), through
    # run_daemon in test_cli_maps_start_up_errors_to_exit_codes
    # a second daemon on the same control socket
    p1, p2 = Poller(), Poller()
    first = ControlServer(tmp_path / "s.sock", p1, None, None, local="node1", peer="node2", status=dict, clock_now=time.monotonic)
    first.listen()
    second = ControlServer(tmp_path / "s.sock", p2, None, None, local="node1", peer="node2", status=dict, clock_now=time.monotonic)
    with pytest.raises(AlreadyRunning, match="another hasync failover daemon is running"):
        second.listen()
    first.close()
    second.listen()  # a stale socket file (nobody answers) is replaced
    second.close()


def test_generation_grows_and_survives_a_lost_file(tmp_path):
    assert next_generation(tmp_path, 1.5) == 1500  # the wall clock in ms is the floor
    assert next_generation(tmp_path, 1.0) == 1501  # the clock went back: still higher
    (tmp_path / "generation").write_text("junk")
    assert next_generation(tmp_path, 2.0) == 2000


def test_cli_maps_start_up_errors_to_exit_codes(tmp_path, monkeypatch, capsys):
    from hasync.cli import main

    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123\n")
    os.chmod(key, 0o644)
    conf = tmp_path / "c.toml"
    conf.write_text(f"""
[cluster]
name = "t"
[[node]]
name = "node1"
address = "127.0.0.1"
[[node]]
name = "node2"
address = "127.0.0.2"
[heartbeat]
auth_key = "{key}"
[[heartbeat.link]]
name = "hb"
kind = "udp-unicast"
interface = "lo"
addresses = {{ node1 = "127.0.0.1", node2 = "127.0.0.2" }}
[fencing]
mode = "off"
""")
    monkeypatch.setenv("HASYNC_NODE", "node9")
    # this host is no node: a config error like every other verb's (exit 2, the one rule's message)
    assert main(["-c", str(conf), "failover", "run", "--priority", "none", "--no-mlock"]) == 2
    assert capsys.readouterr().err == (f"error: {conf}: node: $HASYNC_NODE says this host is 'node9', but the config "
                                       "names the nodes node1, node2; give --node NAME or set HASYNC_NODE\n")
    monkeypatch.setenv("HASYNC_NODE", "node1.example.org")  # its short name is a node: it gets past that
    assert main(["-c", str(conf), "failover", "run", "--priority", "none", "--no-mlock"]) == 2  # the key is readable by others
    assert capsys.readouterr().err.startswith("hasync failover: ")
    assert main(["-c", str(conf), "failover", "run", "--node", "node1"]) == 2
    assert "hasync failover: " in capsys.readouterr().err


# ------------------------------------------------------------------ issue 12 item 11: bad requests


BAD = [
    (b"[" * 30_000 + b"]" * 30_000 + b"\n", "brackets"),  # killed the daemon: RecursionError
    (b'{"cmd":' + b"[" * 50_000 + b"]" * 50_000 + b"}\n", "too long"),  # the 50,000 deep
    (b'{"cmd": "status"' + b" " * 70_000 + b"}\n", "too long"),
    (b'{"cmd": "st\xffatus"}\n', "not UTF-8"),
    (b'["status"]\n', "expected a JSON object"),
    (b'{"cmd": ["status"]}\n', "must be strings"),
    (b"not json\n", "not JSON"),
]


class _Ex:
    dirty = False


def test_the_control_server_answers_a_bad_request_and_goes_on(tmp_path):
    import socket as socketlib

    poller = Poller()
    srv = ControlServer(tmp_path / "s.sock", poller, _Ex(), None, local="node1", peer="node2",
                        status=lambda now: {"role": "active"}, clock_now=time.monotonic)
    for data, why in BAD:
        a, b = socketlib.socketpair()
        a.setblocking(False)
        srv.conns[a] = bytearray()
        b.sendall(data)
        for _ in range(10):
            if a not in srv.conns:
                break
            srv._on_readable(a)  # the whole line may take a few reads
        reply = json.loads(b.recv(65536))
        assert reply["ok"] is False and why in reply["message"], (why, reply)
        b.close()
    # and a good one still works
    a, b = socketlib.socketpair()
    srv.conns[a] = bytearray()
    b.sendall(b'{"cmd": "status"}\n')
    srv._on_readable(a)
    assert json.loads(b.recv(65536)) == {"role": "active"}


class _WaitingFsm:
    """Accepts every command and never finishes one (the control server's view)."""

    role = "active"
    peer = SimpleNamespace(role="standby", state="up")

    def command(self, now, cmd, **kw):
        return True, f"{cmd} under way", []

    def command_result(self, cmd, node=""):
        return None


class _WaitingEx:
    dirty = False
    timeline = SimpleNamespace(last=None)

    def apply(self, actions):
        pass

    def after(self):
        pass


def test_a_later_command_ends_an_earlier_waiting_one_and_says_so(tmp_path):
    """`hasync standby` still waiting when the operator runs `hasync takeover` on the same
    node: the standby's client is told it is over, superseded, instead of waiting for a
    result that will never come (the campaign's operator-unanswered audit). The same
    command twice shares one result: both keep waiting."""
    import socket as socketlib

    srv = ControlServer(tmp_path / "s.sock", Poller(), _WaitingEx(), _WaitingFsm(), local="node1", peer="node2",
                        status=dict, clock_now=time.monotonic)

    def send(line: bytes):
        a, b = socketlib.socketpair()
        srv.conns[a] = bytearray()
        b.sendall(line)
        srv._on_readable(a)
        b.settimeout(1)
        return a, b

    def lines(b) -> list[dict]:
        b.setblocking(False)
        try:
            data = b.recv(65536)
        except BlockingIOError:
            return []
        return [json.loads(x) for x in data.splitlines()]

    a1, b1 = send(b'{"cmd": "standby"}\n')
    a2, b2 = send(b'{"cmd": "standby"}\n')
    assert [x.get("done") for x in lines(b1)] == [None] and [x.get("done") for x in lines(b2)] == [None]
    a3, b3 = send(b'{"cmd": "takeover"}\n')
    for b in (b1, b2):
        last = lines(b)[-1]
        assert last["done"] is True and last["ok"] is False and last["why"] == "superseded by `hasync takeover`"
    assert [w.cmd for w in srv.waiting] == ["takeover"]
    assert lines(b3)[0]["ok"] is True


def test_a_running_daemon_survives_bad_requests_and_keeps_its_state_files(tmp_path, signals_restored):
    c = cluster()
    paths = Paths(tmp_path / "state", tmp_path / "run")
    d = Daemon(c, "node1", KEY, paths, runner=runner(), priority="none", mlock=False, vip_fast=False, log=io.StringIO())
    seen: dict = {"bad": []}

    def operator():
        wait_active(paths)
        for data, _ in BAD:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(paths.socket))
            s.sendall(data)
            seen["bad"].append(json.loads(s.recv(65536)))
            s.close()
        seen["forget"] = ask(paths.socket, {"cmd": "forget-peer", "to": "node2"})
        seen["status"] = client.status(paths.socket)
        os.kill(os.getpid(), signal.SIGTERM)

    run_with_operator(d, operator)
    assert [r["ok"] for r in seen["bad"]] == [False] * len(BAD)
    assert seen["forget"][0]["ok"] is True and seen["status"]["node"] == "node1"
    assert "config_digest" in seen["status"] and seen["status"]["daemon"]["send_encode_errors"] == 0
    assert (paths.state_dir / "epoch").read_text() == "1\n"  # the chain was taken: epoch 1, kept for a restart


def test_the_persisted_state_and_forget_peer_with_the_daemon_down(tmp_path, capsys):
    from hasync.cli import main
    from hasync.failover.daemon import persist
    from hasync.failover.membership import Persisted

    assert persist.load(tmp_path, "node2") == (Persisted(), [])
    persist.save(tmp_path, "node2", Persisted(peer_generation=1700000000123, epoch=4), Persisted())
    assert (tmp_path / "peer-generation").read_text() == "node2 1700000000123\n" and (tmp_path / "epoch").read_text() == "4\n"
    assert persist.load(tmp_path, "node2") == (Persisted(1700000000123, 4), [])
    assert persist.load(tmp_path, "node3")[0] == Persisted(0, 4)  # about another node: not this peer's
    (tmp_path / "epoch").write_text("junk")
    kept, problems = persist.load(tmp_path, "node2")
    assert kept == Persisted(1700000000123, 0) and "cannot read the last epoch" in problems[0]
    assert main(["failover", "forget-peer", "node3", "--state-dir", str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 0
    assert "nothing kept about node3" in capsys.readouterr().out and (tmp_path / "peer-generation").exists()
    assert main(["failover", "forget-peer", "node2", "--state-dir", str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 0
    assert "forgot node2's generation" in capsys.readouterr().out and not (tmp_path / "peer-generation").exists()


SVC2 = model.Resource("svc2", "lsb", "svc2")


def test_a_lone_node_runs_two_groups_one_job_queue_each_and_migrate_names_a_group(tmp_path, signals_restored):
    """Several resource groups (issue 17): the daemon no longer refuses them. Alone (the
    peer never answers), it takes both groups, shows each with its owner and chain, and a
    migrate names a group it has (the peer is not up: refused, nothing moves)."""
    c = dataclasses.replace(cluster(), resources=(VIP, SVC2),
                            groups=(model.Group("a", (VIP,), "node1"), model.Group("b", (SVC2,), "node2")))
    paths = Paths(tmp_path / "state", tmp_path / "run")
    r = runner()
    svc = {"up": False}

    def svc_op(up: bool | None):
        def answer(argv):
            if up is not None:
                svc["up"] = up
                return Result(argv, 0, "", "")
            return Result(argv, 0 if svc["up"] else 3, "", "")
        return answer

    r.responses.update({("/etc/init.d/svc2", "start"): svc_op(True), ("/etc/init.d/svc2", "stop"): svc_op(False),
                        ("/etc/init.d/svc2", "status"): svc_op(None)})
    d = Daemon(c, "node1", KEY, paths, runner=r, priority="none", mlock=False, vip_fast=False, log=io.StringIO())
    seen: dict = {}

    def operator():
        wait_active(paths)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            seen["status"] = client.status(paths.socket)
            if seen["status"]["owned"] == ["vip", "svc2"]:
                break
            time.sleep(0.02)
        seen["no-group"] = ask(paths.socket, {"cmd": "migrate", "to": "node2", "group": "zz"})
        seen["migrate"] = ask(paths.socket, {"cmd": "migrate", "to": "node2", "group": "b"})
        os.kill(os.getpid(), signal.SIGTERM)

    run_with_operator(d, operator)
    st = seen["status"]
    assert st["owned"] == ["vip", "svc2"] and st["role"] == "active"
    assert [(g["id"], g["owner"], g["resources"], g["role"]) for g in st["groups"]] == [
        ("a", "node1", ["vip"], "active"), ("b", "node1", ["svc2"], "active")]
    assert seen["no-group"] == [{"ok": False, "message": "no resource group 'zz'; groups: a, b", "bad_request": True}]
    assert seen["migrate"][0]["ok"] is False and "node2 is not up" in seen["migrate"][0]["message"]
    # one job queue per group: each group's jobs ran in its own thread, both started
    assert START in r.calls and ("/etc/init.d/svc2", "start") in r.calls
    assert STOP in r.calls and ("/etc/init.d/svc2", "stop") in r.calls  # both released on the way out
    assert (paths.state_dir / "epoch.a").read_text() == "1\n" and (paths.state_dir / "epoch.b").read_text() == "1\n"
