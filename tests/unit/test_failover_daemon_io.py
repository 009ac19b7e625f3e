"""The daemon's steady-state I/O path (send templates, the heartbeat rhythm, draining the
links with the one repeat fast path) on a fake clock, fake send links and UDP on loopback."""

from __future__ import annotations

import os
import socket
import time

import pytest

from hasync import model, packet_layout
from hasync.failover import packets
from hasync.failover.daemon.heartbeat import Receiver, Sender
from hasync.failover.links import open_udp
from hasync.failover.membership import FsmConfig, Membership

KEY = b"0123456789abcdef0123456789abcdef"
CFG = FsmConfig(cluster="t", local="node1", peer="node2", order=("node1", "node2"), links=("hb",), resources=("vip",),
                keepalive=0.01, warntime=0.025, deadtime=0.05, initdead=1.0, fencing_mode="off")


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeLink:
    kind = "udp-unicast"

    def __init__(self, name: str):
        self.name = name
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> bool:
        self.sent.append(frame)
        return True


class SerialPipe:
    """A serial link's receive side on a pipe: bytes, no timestamps."""

    kind = "serial"

    def __init__(self, name: str):
        self.name = name
        self.r, self.w = os.pipe2(os.O_NONBLOCK)

    def fileno(self) -> int:
        return self.r

    def receive_stamped(self, mono_now: float, real_now: float) -> list[tuple[float, bytes]]:
        out = []
        while True:
            try:
                data = os.read(self.r, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            out.append((mono_now, data))
        return out

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class Applied:
    """What the receiver hands on: the FSM's actions and new-state signals."""

    def __init__(self):
        self.actions: list = []
        self.new_states = 0

    def apply(self, acts):
        self.actions += acts

    def new_state(self):
        self.new_states += 1


def sender(links) -> tuple[Sender, Membership]:
    fsm = Membership(CFG, 100.0, generation=5)
    return Sender(links, KEY, packets.Mac(KEY), fsm, CFG.keepalive, lambda: 100.0), fsm


def decode(frames: list[bytes]) -> list[packets.Packet]:
    out = []
    for f in frames:
        out += packets.decode_datagram(f, KEY)
    return out


def test_sequence_numbers_go_on_when_the_state_changes():
    lk = FakeLink("hb")
    s, fsm = sender([lk])
    for i in range(3):
        s.send(100.0 + i * 0.01, scheduled=True)
    fsm.role, fsm.owned, fsm.epoch = "active", ["vip"], 2
    s.send(100.05, scheduled=True)  # not told: the template is reused (the steady state)
    s.stale = True  # the FSM ran (the executor sets this): the next send re-reads its fields
    s.send(100.06, scheduled=True)
    s.send(100.07, scheduled=True)
    pkts = decode(lk.sent)
    assert [p.seq for p in pkts] == [1, 2, 3, 4, 5, 6]  # never back to 1: the peer would drop them as replays
    assert [p.role for p in pkts] == ["probing"] * 4 + ["active"] * 2
    assert pkts[-1].owned == ("vip",) and pkts[-1].epoch == 2 and pkts[-1].generation == 5
    assert all(p.node == "node1" and p.link == "hb" and p.cluster == "t" for p in pkts)


def test_heartbeats_keep_a_fixed_rhythm():
    s, _ = sender([FakeLink("hb")])
    s.next_send = 100.0
    s.send(100.0, scheduled=True)
    assert s.next_send == pytest.approx(100.01)
    s.send(100.0109, scheduled=True)  # woke 0.9 ms late: the next one is still due at 100.02
    assert s.next_send == pytest.approx(100.02)
    s.send(100.015)  # an extra heartbeat (a state change): the rhythm starts again from now
    assert s.next_send == pytest.approx(100.025)
    s.send(100.3, scheduled=True)  # 275 ms late (a stall): no burst to catch up
    assert s.next_send == pytest.approx(100.31)
    s.send()  # no time given: the clock's
    assert s.next_send == pytest.approx(100.01)


def test_a_failed_send_is_counted_on_its_link():
    class Broken(FakeLink):
        def send(self, frame: bytes) -> bool:
            return False

    s, fsm = sender([Broken("hb")])
    s.send(100.0)
    assert fsm.links["hb"].send_errors == 1


@pytest.fixture
def udp_receiver():
    port = free_port()
    rx = open_udp(model.Link("hb", "udp-unicast", port=port, addresses={"node1": "127.0.0.2", "node2": "127.0.0.1"}), "node1")
    fsm = Membership(CFG, 100.0, generation=5)
    out = Applied()
    r = Receiver([rx], KEY, packets.Mac(KEY), fsm, "node2", out.apply, out.new_state, time.time)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(seq: int, role: str = "standby", key: bytes = KEY, raw: bytes | None = None) -> None:
        peer.sendto(raw if raw is not None else packets.encode(packets.Packet("t", "node2", "hb", 9, seq, role=role, echo=5), key), ("127.0.0.1", port))

    yield r, fsm, out, send
    peer.close()
    rx.close()
    r.close()


def drain(r: Receiver) -> None:
    end = time.monotonic() + 2
    while not r.drain(100.0) and time.monotonic() < end:
        time.sleep(0.005)


def test_drain_parses_a_new_state_once_then_takes_the_fast_path(udp_receiver):
    r, fsm, out, send = udp_receiver
    for seq in (1, 2, 3):
        send(seq)
    drain(r)
    ls = fsm.links["hb"]
    assert fsm.peer.state == "up" and fsm.peer.generation == 9
    assert (r.n_parsed, r.n_fast, ls.received) == (1, 2, 3)
    assert out.new_states == 1  # only the parsed one is news
    send(3)  # a replay of the same state: dropped, counted
    send(4, key=b"x" * 32)  # a forged frame: dropped, counted
    send(6, role="active")  # a new state: parsed (4, forged, and 5 counted as missed)
    drain(r)
    assert ls.replay == 1 and ls.bad_mac == 1 and ls.missed == 2
    assert fsm.peer.role == "active" and (r.n_parsed, r.n_fast, ls.received) == (2, 3, 4)  # the replay: fast path, dropped
    send(7, role="active")
    drain(r)
    assert (r.n_parsed, r.n_fast, ls.received) == (2, 4, 5)
    assert not r.drain(100.0)  # nothing left: no work


def test_garbage_and_malformed_frames_are_counted_not_fatal(udp_receiver):
    r, fsm, out, send = udp_receiver
    send(0, raw=b"\x00garbage")
    head = packet_layout.HEADER.pack(packet_layout.MAGIC, packet_layout.FIXED.size) + b"\x09" + bytes(packet_layout.FIXED.size - 1)  # version 9
    send(0, raw=head + packets.Mac(KEY).digest(head))
    drain(r)
    ls = fsm.links["hb"]
    assert ls.garbage_bytes == 8 and ls.malformed == 1 and ls.received == 0
    assert r.n_parsed == 1 and fsm.peer.state == "unknown"
    # two frames glued into one datagram (no hasync sends that): both found by the decoder
    glued = b"".join(packets.encode(packets.Packet("t", "node2", "hb", 9, seq, echo=5), KEY) for seq in (1, 2))
    send(0, raw=glued)
    drain(r)
    assert ls.received == 2 and fsm.peer.state == "up" and r.n_parsed == 3


def test_serial_frames_take_the_same_fast_path():
    link = SerialPipe("serial")
    cfg = FsmConfig(**{**CFG.__dict__, "links": ("serial",)})
    fsm = Membership(cfg, 100.0, generation=5)
    out = Applied()
    r = Receiver([link], KEY, packets.Mac(KEY), fsm, "node2", out.apply, out.new_state, time.time)
    try:
        frames = b"".join(packets.encode(packets.Packet("t", "node2", "serial", 9, seq, echo=5), KEY) for seq in (1, 2, 3))
        os.write(link.w, b"noise" + frames[:50])  # line noise, then a frame split across reads
        assert r.drain(100.0)
        os.write(link.w, frames[50:])
        assert r.drain(100.0)
        ls = fsm.links["serial"]
        assert (r.n_parsed, r.n_fast, ls.received) == (1, 2, 3)
        assert ls.garbage_bytes == 5 and fsm.peer.state == "up"
    finally:
        link.close()
        r.close()


def test_arrivals_are_fed_in_time_order_across_links():
    """Two links read in one drain: the FSM sees the frames by arrival time (the kernel's
    receive stamps), not by the order the links were read."""
    seen = []

    class Stamped:
        kind = "udp-unicast"

        def __init__(self, name, stamps):
            self.name = name
            self.q = [(t, packets.encode(packets.Packet("t", "node2", name, 9, i + 1), KEY)) for i, t in enumerate(stamps)]
            self.r, self.w = os.pipe2(os.O_NONBLOCK)
            os.write(self.w, b"x")

        def fileno(self):
            return self.r

        def recv_one(self, mono, real):
            if not self.q:
                return None
            got = self.q.pop(0)
            if not self.q:
                os.read(self.r, 1)
            return got

    a, b = Stamped("a", [99.1, 99.3]), Stamped("b", [99.2, 99.4])
    cfg = FsmConfig(**{**CFG.__dict__, "links": ("a", "b")})
    fsm = Membership(cfg, 99.0, generation=5)
    orig = fsm.on_repeat

    def on_repeat(now, link, seq):
        seen.append((now, link))
        return orig(now, link, seq)

    fsm.on_repeat = on_repeat
    orig_packet = fsm.on_packet
    fsm.on_packet = lambda now, link, p: seen.append((now, link)) or orig_packet(now, link, p)
    out = Applied()
    r = Receiver([a, b], KEY, packets.Mac(KEY), fsm, "node2", out.apply, out.new_state, time.time)
    assert r.drain(100.0)
    assert seen == [(99.1, "a"), (99.2, "b"), (99.3, "a"), (99.4, "b")]
    r.close()


def test_the_send_path_never_raises_and_keeps_sending_the_last_good_heartbeat():
    """Issue 12 item 10 (belt and braces: `hasync check` bounds every field). Before: a
    field that did not encode raised out of the send path and the daemon died, after most
    of the chain had started."""
    lk = FakeLink("hb")
    s, fsm = sender([lk])
    told = []
    s.on_encode_error = told.append
    fsm.role, fsm.owned = "starting", ["vip"]
    s.stale = True
    s.send(100.0)
    fsm.role, fsm.owned = "active", ["x" * 200] * 20  # over MAX_PAYLOAD
    s.stale = True
    s.send(100.01)
    s.stale = True
    s.send(100.02)
    pkts = decode(lk.sent)
    assert [p.seq for p in pkts] == [1, 2, 3] and {p.role for p in pkts} == {"starting"}  # the last good one: still holding
    assert s.encode_errors == 1 and len(told) == 1 and "packet too large" in told[0]
    fsm.role, fsm.owned = "active", ["vip"]  # fits again
    s.stale = True
    s.send(100.03)
    assert decode(lk.sent[-1:])[0].role == "active"


def test_a_refused_older_generation_never_becomes_the_repeat_reference(udp_receiver):
    """An old generation's frame that happens to carry the link's current sequence number
    is refused, but it used to become the link's fast-path reference: then more frames of
    that old generation (higher numbers) went through on_repeat as live heartbeats, and
    could push the link's sequence past the peer's real one."""
    r, fsm, out, send = udp_receiver
    for seq in (1, 2, 3):
        send(seq)
    drain(r)
    old = lambda seq: packets.encode(packets.Packet("t", "node2", "hb", 8, seq, role="standby", echo=5), KEY)  # noqa: E731
    send(0, raw=old(3))
    drain(r)
    ls = fsm.links["hb"]
    assert ls.old_generation == 1
    for seq in (50, 51):
        send(0, raw=old(seq))
    drain(r)
    assert ls.old_generation == 3 and ls.received == 3 and fsm.guard.last_seq[("node2", "hb")] == 3
    send(4)  # the peer's next real heartbeat is still taken
    drain(r)
    assert ls.received == 4
