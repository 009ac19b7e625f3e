"""The control socket's language, shared by the daemon (daemon/control.py) and the
commands that talk to it (client.py): JSON lines over a unix stream socket.

Requests, one line each::

    {"cmd": "status"}                        -> the status document, then the daemon closes
    {"cmd": "standby"} / {"cmd": "takeover"} -> an answer, events as they happen, a done line
    {"cmd": "migrate", "to": NODE}           -> takeover when NODE is the daemon's node,
                                                standby when it is the peer
    {"cmd": "migrate", "to": NODE, "group": G} -> the same for resource group G only
    {"cmd": "forget-peer", "to": NODE}       -> forget NODE's highest generation (it was
                                                reinstalled and its clock went back)
    {"cmd": "standby"|"online", "to": NODE}  -> operator standby of NODE (this node when
                                                "to" is absent), or its end
    {"cmd": "cleanup", "resource": ID}       -> probe, then clear the failure marks the
                                                probe says are safe ("resource": optional)
    {"cmd": "maintenance-on"|"maintenance-off", "force": bool}
    {"cmd": "stop"} / {"cmd": "start"}       -> the chain stopped on purpose, cluster-wide
                                             (these wait like standby: events, then done)

Anything else (not JSON, not UTF-8, not an object, nested too deep, a line over
MAX_REQUEST bytes) gets ``{"ok": false, "message": ...}`` and the daemon goes on.

Replies::

    {"ok": bool, "message": str, "node": str, "role": str}   the command accepted or not
    {"ok": false, "message": str}                            refused (bad request, ...)
    {"event": {...}}                                         a timeline entry
    {"done": true, "ok": bool, "role", "peer_role", "peer_state", "timeline"}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from hasync.failover.states import Command

MAX_REQUEST = 65536  # bytes of an unfinished request line before the daemon hangs up


class BadRequest(ValueError):
    pass


# the commands that name a node ("to"), a resource, or take "force"
WITH_NODE = (Command.MIGRATE, Command.FORGET_PEER, Command.STANDBY, Command.ONLINE)
WITH_RESOURCE = (Command.CLEANUP,)
WITH_FORCE = (Command.MAINTENANCE_OFF,)
WITH_GROUP = (Command.MIGRATE,)  # several resource groups: `migrate GROUP --to NODE` moves one


@dataclass(frozen=True)
class Request:
    cmd: str  # a Command, or anything a client sent (answered "unknown command")
    to: str = ""  # migrate: the node that should run the chain; standby/online: the node named
    resource: str = ""  # cleanup RESOURCE
    force: bool = False  # maintenance off while the peer is not up
    group: str = ""  # migrate GROUP: the one resource group to move ("": every group, the chain)

    def as_dict(self) -> dict:
        d: dict = {"cmd": self.cmd}
        if self.cmd in WITH_NODE and (self.to or self.cmd in (Command.MIGRATE, Command.FORGET_PEER)):
            d["to"] = self.to
        if self.cmd in WITH_RESOURCE and self.resource:
            d["resource"] = self.resource
        if self.cmd in WITH_FORCE and self.force:
            d["force"] = True
        if self.cmd in WITH_GROUP and self.group:
            d["group"] = self.group
        return d


def encode(obj: dict) -> bytes:
    """One line on the wire."""
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()


MAX_DEPTH = 8  # brackets in a request (one flat object): more is refused before json.loads


def parse_request(line: bytes) -> Request:
    """A request line; BadRequest says what is wrong (never anything else: a line nested
    50,000 deep used to raise RecursionError and kill the daemon)."""
    if len(line) > MAX_REQUEST:
        raise BadRequest(f"request too long: {len(line)} bytes, at most {MAX_REQUEST}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("bad request: not UTF-8") from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # (in strings too: no request has such a string)
        raise BadRequest(f"bad request: more than {MAX_DEPTH} brackets; a request is one flat JSON object")
    try:
        req = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("bad request: not JSON") from None
    if not isinstance(req, dict):
        raise BadRequest('bad request: expected a JSON object like {"cmd": "status"}')
    cmd, to, resource, force = req.get("cmd"), req.get("to", ""), req.get("resource", ""), req.get("force", False)
    group = req.get("group", "")
    if not isinstance(cmd, str) or not isinstance(to, str) or not isinstance(resource, str) or not isinstance(group, str):
        raise BadRequest('bad request: "cmd" (and "to", "resource", "group") must be strings')
    if not isinstance(force, bool):
        raise BadRequest('bad request: "force" must be true or false')
    return Request(cmd, to if cmd in WITH_NODE else "", resource if cmd in WITH_RESOURCE else "", force if cmd in WITH_FORCE else False,
                   group if cmd in WITH_GROUP else "")


def answer(ok: bool, message: str, node: str = "", role: str = "") -> dict:
    """The daemon's first reply to a standby/takeover/migrate (or a refusal, without
    node and role)."""
    if not node:
        return {"ok": ok, "message": message}
    return {"ok": ok, "message": message, "node": node, "role": role}


def bad_request(message: str) -> dict:
    """A refusal of what the caller asked for, not of the cluster's state (a node or group
    that does not exist, an unknown command): the CLI exits 2 for it, as for bad input."""
    return {"ok": False, "message": message, "bad_request": True}


def event(entry: dict) -> dict:
    return {"event": entry}


def done(ok: bool, role: str, peer_role: str, peer_state: str, timeline: dict | None, why: str = "") -> dict:
    d = {"done": True, "ok": ok, "role": role, "peer_role": peer_role, "peer_state": peer_state, "timeline": timeline}
    if why:
        d["why"] = why  # over without its own result (superseded by a later command)
    return d


def supersedes(new: tuple[str, str], old: tuple[str, str]) -> bool:
    """Whether a command accepted now, (cmd, group), ends an earlier one still waiting:
    a different command on the same resource group (or on every group) -- `hasync
    takeover` while a `hasync standby` here still waits. The same command twice (two
    terminals) shares one result."""
    (cmd, group), (old_cmd, old_group) = new, old
    return cmd != old_cmd and (not group or not old_group or group == old_group)


def is_last(reply: dict) -> bool:
    """The daemon has nothing more to say about this command."""
    return bool(reply.get("done")) or reply.get("ok") is False


class LineReader:
    """Reassembles reply lines from the chunks a stream socket returns."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> Iterator[dict]:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)

    def rest(self) -> Iterator[dict]:
        """At end of stream: a last line without its newline."""
        if self.buf.strip():
            yield json.loads(self.buf)
        self.buf = b""
