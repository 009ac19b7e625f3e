"""The control socket's server: `hasync status`, `standby`, `takeover`, `migrate`,
`online`, `cleanup`, `maintenance`, `stop`, `start`, `failover forget-peer`.

A unix stream socket (mode 0600) speaking protocol.py. A status request gets the status
document and the connection is closed. An accepted operator command keeps its
connection: it gets every event as it happens, then a done line when the FSM says the
command is over (``Membership.command_result``). A bad request (too long, not UTF-8, not
JSON, nested, not an object) gets ``{"ok": false, "message": ...}`` and is closed; nothing
a client sends can stop the daemon (issue 12 item 11).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hasync.failover import protocol
from hasync.failover.errors import AlreadyRunning
from hasync.failover.membership_groups import AnyMembership, GroupMembership
from hasync.failover.membership_operator import HANDOVER
from hasync.failover.states import Command

# the commands that wait for the FSM to say they are over (the rest answer at once)
WAITING = (Command.STANDBY, Command.TAKEOVER, HANDOVER, Command.ONLINE, Command.CLEANUP, Command.MAINTENANCE_ON,
           Command.MAINTENANCE_OFF, Command.STOP, Command.START)


@dataclass
class Waiting:
    """A command whose client waits for it to finish."""

    conn: socket.socket
    cmd: str
    since: float
    node: str = ""  # the node the command names ("": this one)
    group: str = ""  # migrate GROUP: the one group it moves ("": every group)
    dead: bool = False  # the client went away: closed at the next check


class ControlServer:
    def __init__(self, path: Path, poller, executor, fsm: AnyMembership, *, local: str, peer: str,
                 status: Callable[[float], dict], clock_now: Callable[[], float], log: Callable[[str, str], None] | None = None,
                 groups: tuple[str, ...] = ()):
        self.path = path
        self.groups = groups  # the resource groups' ids (one group: the chain's)
        self.poller = poller
        self.executor = executor
        self.fsm = fsm
        self.local = local
        self.peer = peer
        self.status = status
        self.now = clock_now
        self.log = log
        self.closing = False  # the daemon is shutting down: no new commands
        self.listener: socket.socket | None = None
        self.conns: dict[socket.socket, bytearray] = {}
        self.waiting: list[Waiting] = []

    def listen(self) -> None:
        path = self.path
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                probe.close()
                raise AlreadyRunning(f"{path}: another hasync failover daemon is running")
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        s.bind(str(path))
        os.chmod(path, 0o600)
        s.listen(8)
        self.listener = s
        self.poller.register(s, self._accept)

    def close(self) -> None:
        for s in list(self.conns):
            try:
                s.close()
            except OSError:
                pass
        try:
            if self.listener is not None:
                self.listener.close()
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, OSError):
            return
        conn.setblocking(False)
        self.conns[conn] = bytearray()
        self.poller.register(conn, functools.partial(self._on_readable, conn))

    def _close(self, conn: socket.socket) -> None:
        self.poller.unregister(conn)
        self.conns.pop(conn, None)
        self.waiting = [w for w in self.waiting if w.conn is not conn]
        try:
            conn.close()
        except OSError:
            pass

    def _on_readable(self, conn: socket.socket) -> None:
        self.executor.dirty = True
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        buf = self.conns.get(conn)
        if buf is None:
            return
        buf += data
        if b"\n" not in buf:
            if len(buf) > protocol.MAX_REQUEST:
                self._last(conn, protocol.answer(False, f"request too long: over {protocol.MAX_REQUEST} bytes without a newline"))
            return
        line = bytes(buf).split(b"\n", 1)[0]
        buf.clear()
        try:
            req = protocol.parse_request(line)
        except protocol.BadRequest as e:
            self._last(conn, protocol.answer(False, str(e)))
            return
        try:
            self._request(conn, req)
        except Exception as e:  # noqa: BLE001 - a bug here must not take the chain's daemon down
            if self.log is not None:
                self.log("error", f"control socket: {req.cmd!r} failed: {e!r}")
            self._last(conn, protocol.answer(False, f"internal error: {e!r}"))

    def _request(self, conn: socket.socket, req: protocol.Request) -> None:
        now = self.now()
        cmd = req.cmd
        if cmd == Command.STATUS:
            self._last(conn, self.status(now))
            return
        node = req.to
        if cmd == Command.MIGRATE:  # a one-off move: no standby that sticks
            if req.to == self.local:
                cmd, node = Command.TAKEOVER, ""
            elif req.to == self.peer:
                cmd, node = HANDOVER, ""
            else:
                self._last(conn, protocol.bad_request(f"no node named {req.to!r}; nodes: {self.local}, {self.peer}"))
                return
        group = req.group
        if group and group not in self.groups:
            self._last(conn, protocol.bad_request(f"no resource group {group!r}; groups: {', '.join(self.groups)}"))
            return
        if len(self.groups) < 2:
            group = ""  # (one group: the chain itself)
        if cmd == Command.FORGET_PEER:
            self._forget_peer(conn, req.to, now)
            return
        if cmd not in WAITING:
            self._last(conn, protocol.bad_request(f"unknown command {cmd!r}"))
            return
        if self.closing:
            self._last(conn, protocol.answer(False, "the daemon is shutting down"))
            return
        node = "" if node == self.local else node
        if group:
            assert isinstance(self.fsm, GroupMembership)
            ok, msg, actions = self.fsm.command(now, cmd, node=node, resource=req.resource, force=req.force, group=group)
        else:
            ok, msg, actions = self.fsm.command(now, cmd, node=node, resource=req.resource, force=req.force)
        reply = protocol.answer(ok, msg, self.local, self.fsm.role)
        if not ok:
            self._last(conn, reply)
            return
        self._send(conn, reply)
        for w in list(self.waiting):  # an earlier command this one replaces is over, not done
            if not w.dead and protocol.supersedes((cmd, group), (w.cmd, w.group)):
                f = self.fsm
                self._send(w.conn, protocol.done(False, f.role, f.peer.role, f.peer.state, self.executor.timeline.last,
                                                 why=f"superseded by `hasync {cmd}`"))
                self._close(w.conn)  # (and out of self.waiting)
        self.waiting.append(Waiting(conn, cmd, now, node, group))
        self.executor.apply(actions)  # (the command's own "command" event opens the timeline record)
        self.executor.after()

    def _forget_peer(self, conn: socket.socket, node: str, now: float) -> None:
        if node != self.peer:
            self._last(conn, protocol.answer(False, f"{node!r} is not this node's peer ({self.peer})"))
            return
        self.executor.apply(self.fsm.forget_peer(now))
        self.executor.after()
        self._last(conn, protocol.answer(True, f"forgot {node}'s highest generation: its next one is accepted"))

    def _send(self, conn: socket.socket, obj: dict) -> bool:
        try:
            conn.sendall(protocol.encode(obj))
            return True
        except (BlockingIOError, OSError):
            return False

    def _last(self, conn: socket.socket, obj: dict) -> None:
        self._send(conn, obj)
        self._close(conn)

    # ------------------------------------------------------------------ waiting commands
    def broadcast(self, entry: dict) -> None:
        """An event for every waiting command's client."""
        for w in self.waiting:
            if not self._send(w.conn, protocol.event(entry)):
                w.dead = True

    def under_way(self) -> bool:
        """Some waiting command is not over yet (the FSM has no result for it)."""
        return any(not w.dead and self._result(w) is None for w in self.waiting)

    def _result(self, w: Waiting) -> bool | None:
        if w.group:
            assert isinstance(self.fsm, GroupMembership)
            return self.fsm.command_result(w.cmd, w.node, group=w.group)
        return self.fsm.command_result(w.cmd, w.node)

    def check_waiting(self) -> None:
        """Tell the clients whose command is over, and hang up."""
        if not self.waiting:
            return
        f = self.fsm
        for w in list(self.waiting):
            if w.dead:
                self._close(w.conn)
                continue
            ok = self._result(w)
            if ok is not None:
                if not self._send(w.conn, protocol.done(ok, f.role, f.peer.role, f.peer.state, self.executor.timeline.last)):
                    w.dead = True
                self._close(w.conn)
