"""The lab's locks: an flock on a file, shared by every process that changes a lab
(tests, `hasync lab ...`, a fence from inside a node), that one process may take again.

Why reentrant: an interrupt (Ctrl-C) can land after the lock was granted and before the
`with` block began. The `with` then never releases it, and whoever keeps the
KeyboardInterrupt's traceback (pytest does, for its report) keeps the open file, so the
flock stays held by this process. The clean-up that follows in the same process (a
fixture's teardown: `lab.down()`) used to open the file again and wait on its own lock
forever. Here a process that holds a lab's lock takes it again at once (threads of the
process still take turns, an RLock), and the flock goes when the last hold ends or the
process exits.

The holder writes "PID COMMAND" into the file, so a command that waits says for whom.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from pathlib import Path

WAIT_NOTICE_S = 5.0  # say who holds the lock after waiting this long

_registry_guard = threading.Lock()
_held: dict[str, _Hold] = {}  # path -> this process's hold on it


class _Hold:
    def __init__(self) -> None:
        self.rlock = threading.RLock()  # the threads of this process take turns
        self.fd = -1
        self.depth = 0
        self.pid = os.getpid()  # a forked child holds nothing of its parent's


def _hold(path: Path) -> _Hold:
    with _registry_guard:
        h = _held.get(str(path))
        if h is None or h.pid != os.getpid():
            h = _held[str(path)] = _Hold()
        return h


class FileLock:
    """``with FileLock(path):`` -- exclusive across processes, reentrant in one."""

    def __init__(self, path: Path, what: str = "the lab"):
        self.path = Path(path)
        self.what = what
        self.hold = _hold(self.path)

    def __enter__(self) -> FileLock:
        h = self.hold
        h.rlock.acquire()
        try:
            if h.depth == 0:
                h.fd = self._take()
            h.depth += 1
        except BaseException:
            h.rlock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        h = self.hold
        try:
            h.depth -= 1
            if h.depth == 0:
                fd, h.fd = h.fd, -1
                os.close(fd)  # the flock goes with the last descriptor
        finally:
            h.rlock.release()

    def _take(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._wait(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv)[:200]}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # interrupted while waiting: nothing held
            raise
        return fd

    def _wait(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        deadline = time.monotonic() + WAIT_NOTICE_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                continue
        print(f"waiting for {self.what}'s lock ({self.path}), held by {holder(self.path) or 'another process'}",
              file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)


def holder(path: Path) -> str:
    """"PID COMMAND" of the lock's last holder, as it wrote it ("" if unknown)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
