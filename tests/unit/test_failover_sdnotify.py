"""sd_notify: READY/WATCHDOG datagrams to $NOTIFY_SOCKET (path or abstract)."""

from __future__ import annotations

import os
import socket

from hasync.failover.sdnotify import Notifier


def test_notify_to_a_path_socket(tmp_path):
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_s == 10.0
    assert n.ready("node1: standby")
    assert srv.recv(100) == b"READY=1\nSTATUS=node1: standby"
    assert n.watchdog()
    assert srv.recv(100) == b"WATCHDOG=1"
    srv.close()


def test_abstract_socket_and_no_socket():
    name = f"hasync-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    assert n.stopping() and srv.recv(100) == b"STOPPING=1"
    srv.close()
    quiet = Notifier({})
    assert not quiet.ready() and quiet.watchdog_s == 0.0
    other = Notifier({"NOTIFY_SOCKET": "/nonexistent/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_s == 0.0 and not other.ready()
