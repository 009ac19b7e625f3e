"""sd_notify(3) in a few lines: a datagram to $NOTIFY_SOCKET (no dependency)."""

from __future__ import annotations

import os
import socket


def notify(message: str, env=os.environ) -> bool:
    """Send e.g. "READY=1", "WATCHDOG=1", "STATUS=..."; False when not under systemd."""
    addr = env.get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval(env=os.environ) -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec), or None when not asked to."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2
