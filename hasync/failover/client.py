"""Client side of the daemon's control socket (the language: protocol.py)."""

from __future__ import annotations

import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hasync.failover import protocol
from hasync.failover.host import Paths
from hasync.failover.shapes import status_problem
from hasync.failover.states import Command
from hasync.failover.timeline import read_last


class NotRunning(Exception):
    pass


class BadAnswer(Exception):
    """What answered on the control socket is not the failover daemon of this hasync (not
    JSON objects, or a status this version cannot read: another version of hasync, or
    another program on the socket)."""


WHY_BAD = "another version of hasync (`hasync --version` on both sides) or another program on the socket?"


def _connect(path: Path, timeout: float) -> socket.socket:
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None  # connect() says why
    if mode is not None and not stat.S_ISSOCK(mode):
        raise NotRunning(f"the failover daemon is not running here ({path} is not a socket: the daemon makes it "
                         "when it starts; does --run-dir or HASYNC_RUN_DIR name the right directory?)")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as e:
        s.close()
        raise NotRunning(f"the failover daemon is not running here ({path}: {e.strerror})") from None
    except PermissionError as e:
        s.close()
        raise NotRunning(f"{path}: {e.strerror} (run as root)") from None
    except OSError as e:  # ENOTSOCK is not raised for a file: ECONNREFUSED; ENAMETOOLONG, ENOTDIR ...
        s.close()
        raise NotRunning(f"the failover daemon is not running here ({path}: {e.strerror or e})") from None
    return s


def _objects(lines: Iterator[dict]) -> Iterator[dict]:
    """The answer's lines, each a JSON object, or BadAnswer."""
    try:
        for obj in lines:
            if not isinstance(obj, dict):
                raise BadAnswer(f"the control socket answered a line that is not a JSON object ({WHY_BAD})")
            yield obj
    except ValueError as e:  # JSONDecodeError, a line that is not UTF-8
        raise BadAnswer(f"the control socket answered something that is not JSON ({e}; {WHY_BAD})") from None


def _lines(s: socket.socket, deadline: float) -> Iterator[dict]:
    reader = protocol.LineReader()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the failover daemon in time")
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except TimeoutError:
            raise TimeoutError("no answer from the failover daemon in time") from None
        if not data:
            yield from reader.rest()
            return
        yield from reader.feed(data)


def status(path: Path, timeout: float = 5.0) -> dict:
    s = _connect(path, timeout)
    try:
        s.sendall(protocol.encode(protocol.Request(Command.STATUS).as_dict()))
        for obj in _objects(_lines(s, time.monotonic() + timeout)):
            found = status_problem(obj)
            if found:
                raise BadAnswer(f"the failover daemon's status cannot be read here: {found} ({WHY_BAD})")
            return obj
        raise NotRunning("the failover daemon closed the connection")
    finally:
        s.close()


def command(path: Path, req: protocol.Request, on_line: Callable[[dict], None], wait: float = 120.0) -> dict:
    """Send a command and feed every answer line to *on_line*; return the last one."""
    s = _connect(path, 5.0)
    last: dict = {}
    try:
        s.sendall(protocol.encode(req.as_dict()))
        for obj in _objects(_lines(s, time.monotonic() + wait)):
            last = obj
            on_line(obj)
            if protocol.is_last(obj):
                break
    finally:
        s.close()
    if "ok" not in last and "done" not in last:  # nothing, or lines that say neither
        raise BadAnswer(f"the failover daemon closed the connection without answering the command ({WHY_BAD})")
    return last


@dataclass(frozen=True)
class Answer:
    """`hasync status`: the daemon's status document, or why there is none and the last
    failover it recorded on disk (*unreadable*: something answered, but not a status
    this hasync reads: BadAnswer)."""

    status: dict | None
    error: str = ""
    last_failover: dict | None = None
    unreadable: bool = False


def status_or_last(paths: Paths) -> Answer:
    try:
        return Answer(status(paths.socket))
    except BadAnswer as e:
        return Answer(None, str(e), read_last(paths.state_dir), unreadable=True)
    except (NotRunning, TimeoutError, OSError, ValueError) as e:
        return Answer(None, str(e), read_last(paths.state_dir))

