"""Heartbeat media on real file descriptors: a pty pair as the serial cable, UDP on lo."""

from __future__ import annotations

import os
import socket
import time

import pytest

from hasync import model
from hasync.failover import packets
from hasync.failover.links import open_serial, open_udp

KEY = b"k" * 32


def frame(seq: int, link: str) -> bytes:
    return packets.encode(packets.Packet("c", "node1", link, 5, seq, role="active", owned=("vip",)), KEY)


def read_until(link, n: int, dec: packets.FrameDecoder, timeout: float = 2.0) -> list[packets.Packet]:
    got: list[packets.Packet] = []
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        for _t, data in link.receive_stamped(time.monotonic(), time.time()):
            got += dec.feed(data)
        time.sleep(0.005)
    return got


def test_serial_link_over_a_pty_in_raw_mode():
    master, slave = os.openpty()
    try:
        link = open_serial(model.Link("serial", "serial", device=os.ttyname(slave), baud=115200))
        # what we send arrives byte-exact on the other end of the "cable" (raw: no CR/LF mangling)
        f = frame(1, "serial") + b"\n\r\x11\x13"
        assert link.send(f)
        got_raw = b""
        end = time.monotonic() + 2
        while len(got_raw) < len(f) and time.monotonic() < end:
            got_raw += os.read(master, 4096)
        assert got_raw == f
        # the other side sends noise + two frames in pieces: both decoded, in order
        blob = b"\x00noise\r\n" + frame(2, "serial") + frame(3, "serial")
        os.write(master, blob[:17])
        os.write(master, blob[17:])
        got = read_until(link, 2, packets.FrameDecoder(KEY))
        assert [p.seq for p in got] == [2, 3]
        link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_serial_link_refuses_a_non_tty(tmp_path):
    from hasync.failover.links import LinkError

    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(LinkError, match="not a tty"):
        open_serial(model.Link("serial", "serial", device=str(f), baud=19200))


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs root")
def test_udp_unicast_on_lo_with_kernel_timestamps():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("", 0))  # a port nobody uses (a fixed one can collide with a lab's daemons)
    port = probe.getsockname()[1]
    probe.close()
    a = open_udp(model.Link("hb", "udp-unicast", interface="lo", port=port, addresses={"node1": "127.0.0.1", "node2": "127.0.0.1"}), "node1")
    try:
        assert a.dests == [("127.0.0.1", port)]
        # The kernel turns receive timestamps on lazily (a deferred static key) when the
        # first socket asks: a datagram that arrives before that is stamped at read time.
        # The daemon then falls back to its own clock; here, warm up first.
        assert a.send(frame(6, "hb"))
        time.sleep(0.05)
        a.receive_stamped(time.monotonic(), time.time())
        assert a.send(frame(7, "hb"))
        time.sleep(0.05)
        before = time.monotonic()
        items = a.receive_stamped(before, time.time())
        assert len(items) == 1
        t, data = items[0]
        assert before - 1.0 < t < before - 0.02  # arrival time from the kernel (50 ms ago), not the read time
        assert packets.decode_datagram(data, KEY)[0].seq == 7
        assert a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    finally:
        a.close()
