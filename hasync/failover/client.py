"""Client side of the daemon's control socket (the language: protocol.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hasync.failover import protocol
from hasync.failover.host import Paths
from hasync.failover.states import Command
from hasync.failover.timeline import read_last


class NotRunning(Exception):
    pass


def _connect(path: Path, timeout: float) -> socket.socket:
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
    return s


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
        for obj in _lines(s, time.monotonic() + timeout):
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
        for obj in _lines(s, time.monotonic() + wait):
            last = obj
            on_line(obj)
            if protocol.is_last(obj):
                break
    finally:
        s.close()
    return last


@dataclass(frozen=True)
class Answer:
    """`hasync status`: the daemon's status document, or why there is none and the last
    failover it recorded on disk."""

    status: dict | None
    error: str = ""
    last_failover: dict | None = None


def status_or_last(paths: Paths) -> Answer:
    try:
        return Answer(status(paths.socket))
    except (NotRunning, TimeoutError, OSError, ValueError) as e:
        return Answer(None, str(e), read_last(paths.state_dir))

