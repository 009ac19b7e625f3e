"""sd_notify(3) in a few lines: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1 (no dependency).

The one notifier of hasync (the failover daemon and the sync watcher). Each message is a
datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace) on a
socket opened for it, as libsystemd does: it survives a re-executed systemd.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        asked = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # systemd(1), WatchdogSec=: ping at about half the interval, so one late ping is
        # not yet a missed deadline
        self.watchdog_interval: float | None = int(usec) / 1e6 / 2 if asked else None

    def notify(self, text: str) -> bool:
        """Send one message; False when not under systemd or the socket is gone."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(text.encode())
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
