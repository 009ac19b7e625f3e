"""`hasync fence NODE`: what DRBD's fence-peer handler runs."""

from __future__ import annotations

import os

from hasync.cli import main

CONF = """
[cluster]
name = "t"
profile = "lab"
preferred_node = "node1"

[[node]]
name = "node1"
address = "10.9.0.1"

[[node]]
name = "node2"
address = "10.9.0.2"

[heartbeat]
keepalive = "100ms"
deadtime = "500ms"
auth_key = "{key}"

[[heartbeat.link]]
name = "hb"
kind = "udp-unicast"
interface = "eth1"
addresses = {{ node1 = "10.8.0.1", node2 = "10.8.0.2" }}

[[resource]]
id = "vip"
type = "ocf"
agent = "heartbeat:IPaddr2"
params = {{ ip = "10.9.0.100", cidr_netmask = "24", nic = "eth0" }}

[fencing]
mode = "required"
command = ["{script}", "{{node}}", "{{address}}"]
timeout = "5s"
"""


def setup(tmp_path, exit_code: int):
    script = tmp_path / "fence.sh"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/fenced\nexit {exit_code}\n")
    os.chmod(script, 0o755)
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123\n")
    os.chmod(key, 0o600)
    conf = tmp_path / "cluster.toml"
    conf.write_text(CONF.format(key=key, script=script))
    return str(conf)


def test_fence_runs_the_command_for_the_peer(tmp_path, monkeypatch, capsys):
    conf = setup(tmp_path, 0)
    monkeypatch.setenv("HASYNC_NODE", "node2")
    monkeypatch.setenv("HASYNC_RUN_DIR", str(tmp_path / "run"))  # no daemon there
    assert main(["-c", conf, "fence", "node1"]) == 0
    assert (tmp_path / "fenced").read_text() == "node1 10.9.0.1\n"
    assert "fenced node1" in capsys.readouterr().out


def test_fence_failure_and_refusals(tmp_path, monkeypatch):
    conf = setup(tmp_path, 1)
    monkeypatch.setenv("HASYNC_NODE", "node2")
    monkeypatch.setenv("HASYNC_RUN_DIR", str(tmp_path / "run"))
    assert main(["-c", conf, "fence", "node1"]) == 1
    assert main(["-c", conf, "fence", "node2"]) == 1  # myself
    assert main(["-c", conf, "fence", "node9"]) == 2
    assert (tmp_path / "fenced").read_text() == "node1 10.9.0.1\n"  # only the first ran


def _with_ping(conf: str, addr: str) -> str:
    text = open(conf).read().replace('deadtime = "500ms"\n', f'deadtime = "500ms"\nping = ["{addr}"]\n')
    open(conf, "w").write(text)
    return conf


def test_tiebreak_fences_when_a_ping_node_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "node2")
    monkeypatch.setenv("HASYNC_RUN_DIR", str(tmp_path / "run"))
    conf = _with_ping(setup(tmp_path, 0), "127.0.0.1")  # loopback answers
    assert main(["-c", conf, "fence", "--tiebreak", "node1"]) == 0
    assert (tmp_path / "fenced").read_text() == "node1 10.9.0.1\n"


def test_tiebreak_refuses_when_no_ping_node_answers(tmp_path, monkeypatch, capsys):
    import hasync.effects.net as net

    monkeypatch.setenv("HASYNC_NODE", "node2")
    monkeypatch.setenv("HASYNC_RUN_DIR", str(tmp_path / "run"))
    asked = []
    monkeypatch.setattr(net, "ping_any", lambda addrs, wait_s=1: asked.append(tuple(addrs)) or False)
    conf = _with_ping(setup(tmp_path, 0), "10.9.0.254")
    assert main(["-c", conf, "fence", "--tiebreak", "node1"]) == 1
    assert asked == [("10.9.0.254",)]
    assert not (tmp_path / "fenced").exists()
    assert "isolated" in capsys.readouterr().err
    # without --tiebreak (an operator's explicit fence) the ping is not consulted
    assert main(["-c", conf, "fence", "node1"]) == 0
    assert asked == [("10.9.0.254",)]
