"""Processes of a lab node: found by their namespaces (like `ip netns pids`), stopped, killed."""

from __future__ import annotations

import os
import signal
import time


def ns_inode(path: str) -> tuple[int, int] | None:
    """(dev, inode) of a namespace file (a bound ns file or /proc/PID/ns/X); None if gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in(ns_files: dict[str, str]) -> list[int]:
    """PIDs whose namespace of any kind given matches: {"net": path, "mnt": path, ...}."""
    wanted = {kind: ns_inode(p) for kind, p in ns_files.items()}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if not wanted:
        return []
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        for kind, ino in wanted.items():
            if ns_inode(f"/proc/{pid}/ns/{kind}") == ino:
                out.append(pid)
                break
    return sorted(out)


def signal_all(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_and_wait(find, timeout: float = 5.0) -> list[int]:
    """SIGKILL everything ``find()`` returns until it returns nothing; the PIDs left over."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in find() if _alive(p)]
        if not pids or time.monotonic() > deadline:
            return pids
        signal_all(pids, signal.SIGKILL)
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a zombie holds no namespaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def alive(pid: int) -> bool:
    return pid > 0 and _alive(pid)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def pids_with_env(prefix: bytes) -> list[int]:
    """PIDs whose environment has an entry starting with *prefix* (e.g. b"VAR=value")."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if any(v.startswith(prefix) for v in env.split(b"\0")):
            out.append(int(entry))
    return out
