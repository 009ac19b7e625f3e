"""The serial relay on its own (ptys only: no root, no namespaces)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest


@pytest.fixture
def relay(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "hasync_lab.ns.serial_relay", str(tmp_path), "a", "b"])
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ttys.json").exists():
            assert p.poll() is None and time.monotonic() < deadline, "relay did not start"
            time.sleep(0.01)
        ttys = json.loads((tmp_path / "ttys.json").read_text())
        fds = {k: os.open(v, os.O_RDWR | os.O_NOCTTY) for k, v in ttys.items()}
        yield tmp_path, fds
        for fd in fds.values():
            os.close(fd)
    finally:
        p.kill()
        p.wait()


def read_for(fd: int, n: int, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        out += os.read(fd, n - len(out))
    return out


def test_bytes_cross_over_exactly_both_ways(relay):
    _, fds = relay
    data = bytes(range(256)) * 4
    os.write(fds["a"], data)
    assert read_for(fds["b"], len(data), 5) == data
    os.write(fds["b"], b"\x00back\xff\n\r")
    assert read_for(fds["a"], 8, 5) == b"\x00back\xff\n\r"


def test_a_cut_side_drops_bytes_until_healed(relay):
    d, fds = relay
    (d / "cut").write_text("b\n")
    os.write(fds["a"], b"lost")
    assert read_for(fds["b"], 4, 0.5) == b""
    (d / "cut").write_text("")
    os.write(fds["a"], b"kept")
    assert read_for(fds["b"], 4, 5) == b"kept"
