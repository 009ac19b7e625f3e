"""The control socket's language (shared by the daemon and the client) and the fence
commands (shared by the daemon and `hasync fence`)."""

from __future__ import annotations

import json

import pytest

from hasync import model
from hasync.failover import protocol
from hasync.failover.fencing import fence_command, self_fence_command
from hasync.failover.states import Command, Role


def test_requests_round_trip():
    for req in (protocol.Request(Command.STATUS), protocol.Request(Command.STANDBY), protocol.Request(Command.MIGRATE, "node2")):
        line = protocol.encode(req.as_dict())
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert protocol.parse_request(line.rstrip(b"\n")) == req
    assert protocol.encode(protocol.Request("status").as_dict()) == b'{"cmd":"status"}\n'
    assert protocol.parse_request(b'{"cmd": "takeover", "to": "x"}') == protocol.Request("takeover")  # "to" only for migrate
    assert protocol.parse_request(b'{"cmd": "frobnicate"}').cmd == "frobnicate"  # the daemon answers "unknown command"
    for bad in (b"not json", b"[1, 2]", b'"cmd"'):
        with pytest.raises(protocol.BadRequest, match="bad request"):
            protocol.parse_request(bad)


def test_replies_and_the_end_of_a_command():
    assert protocol.answer(False, "bad request") == {"ok": False, "message": "bad request"}
    a = protocol.answer(True, "going standby", "node1", Role.ACTIVE)
    assert json.loads(protocol.encode(a)) == {"ok": True, "message": "going standby", "node": "node1", "role": "active"}
    d = protocol.done(True, Role.STANDBY, Role.ACTIVE, "up", None)
    assert json.loads(protocol.encode(d)) == {"done": True, "ok": True, "role": "standby", "peer_role": "active", "peer_state": "up", "timeline": None}
    assert protocol.is_last(d) and protocol.is_last(protocol.answer(False, "no")) and not protocol.is_last(a)
    assert not protocol.is_last(protocol.event({"kind": "role"}))


def test_line_reader_reassembles_split_lines():
    r = protocol.LineReader()
    assert list(r.feed(b'{"a": 1}\n{"b"')) == [{"a": 1}]
    assert list(r.feed(b': 2}\n\n{"c": 3}')) == [{"b": 2}]
    assert list(r.rest()) == [{"c": 3}] and list(r.rest()) == []


def test_fence_commands_fill_node_and_address():
    f = model.Fencing(mode="required", command=("fence_ipmilan", "-a", "{address}", "--plug={node}"), timeout=7.0,
                      self_command=("/usr/local/sbin/off", "{node}"))
    peer, me = model.Node("node1", "10.0.0.1"), model.Node("node2", "10.0.0.2")
    c = fence_command(f, peer)
    assert c.argv == ("fence_ipmilan", "-a", "10.0.0.1", "--plug=node1") and c.timeout == 7.0
    assert dict(c.env) == {"HASYNC_FENCE_NODE": "node1", "HASYNC_FENCE_ADDRESS": "10.0.0.1"}
    assert c.text == "fence_ipmilan -a 10.0.0.1 --plug=node1"
    assert self_fence_command(f, me, "fence-self").argv == ("/usr/local/sbin/off", "node2")
    assert self_fence_command(f, me, "reboot").argv == ("reboot", "-f")
    assert self_fence_command(model.Fencing(), me, "fence-self").argv == ("reboot", "-f")  # no self_command configured


def test_forget_peer_names_its_node_and_bad_requests_say_what_is_wrong():
    req = protocol.Request(Command.FORGET_PEER, "node2")
    assert protocol.parse_request(protocol.encode(req.as_dict()).rstrip(b"\n")) == req
    for line, why in ((b"[" * 3000 + b"]" * 3000, "brackets"), (b"x" * (protocol.MAX_REQUEST + 1), "too long"),
                      (b'{"cmd": "\xff"}', "not UTF-8"), (b'{"cmd": 7}', "must be strings"), (b'{"cmd": "migrate", "to": []}', "must be strings")):
        with pytest.raises(protocol.BadRequest, match=why):
            protocol.parse_request(line)
