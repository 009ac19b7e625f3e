"""The daemon's steady-state I/O path (send templates, the heartbeat rhythm, draining the
links with the repeat fast path) on a fake clock, fake send links and UDP on loopback."""

from __future__ import annotations

import io
import os
import select
import socket
import time
import types

import pytest

from hasync import model
from hasync.failover import packets as P
from hasync.failover.daemon import Daemon, Paths
from hasync.failover.links import open_udp
from hasync.failover.membership import Membership
from hasync.failover.timeline import Timeline

KEY = b"0123456789abcdef0123456789abcdef"
VIP = model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"})


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


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    link = model.Link("hb", "udp-unicast", port=port, addresses={"node1": "127.0.0.1", "node2": "127.0.0.1"})
    hb = model.Heartbeat(keepalive=0.01, warntime=0.025, deadtime=0.05, initdead=1.0, links=(link,))
    cluster = model.Cluster(
        path="t.toml",
        cluster=model.ClusterInfo(name="t", profile="lab", preferred_node="node1"),
        nodes=(model.Node("node1", "127.0.0.1"), model.Node("node2", "127.0.0.1")),
        heartbeat=hb, sync=model.Sync(), storage=model.Storage(), nfs=model.Nfs(),
        resources=(VIP,), fencing=model.Fencing(mode="off"),
    )
    d = Daemon(cluster, "node1", KEY, Paths(tmp_path / "state", tmp_path / "run"), log=io.StringIO())
    d.paths.state_dir.mkdir(parents=True)
    d.clock = types.SimpleNamespace(monotonic=lambda: 100.0)
    d.fsm = Membership(d.cfg, 100.0, generation=5)
    d.timeline = Timeline(d.paths.state_dir, "node1")
    d.jobs = []
    d.worker = types.SimpleNamespace(submit=lambda job, owned: d.jobs.append(job))
    d.decoders = {"hb": P.FrameDecoder(KEY, mac=d.mac)}
    d.seq = {"hb": 0}
    d.port = port
    yield d
    for lk in d.links:
        if hasattr(lk, "close"):
            lk.close()
    os.close(d.wake_r)
    os.close(d.wake_w)


def decode(frames: list[bytes]) -> list[P.Packet]:
    out = []
    for f in frames:
        out += P.decode_datagram(f, KEY)
    return out


def test_sequence_numbers_go_on_when_the_state_changes(daemon):
    d = daemon
    lk = FakeLink("hb")
    d.links = [lk]
    for i in range(3):
        d._send_all(100.0 + i * 0.01, scheduled=True)
    d.fsm.role, d.fsm.owned, d.fsm.epoch = "active", ["vip"], 2
    d._send_all(100.05, scheduled=True)  # not told: the template is reused (the steady state)
    d._apply([])  # the FSM ran: the next send re-reads its fields
    d._send_all(100.06, scheduled=True)
    d._send_all(100.07, scheduled=True)
    pkts = decode(lk.sent)
    assert [p.seq for p in pkts] == [1, 2, 3, 4, 5, 6]  # never back to 1: the peer would drop them as replays
    assert [p.role for p in pkts] == ["probing"] * 4 + ["active"] * 2
    assert pkts[-1].owned == ("vip",) and pkts[-1].epoch == 2 and pkts[-1].generation == 5
    assert all(p.node == "node1" and p.link == "hb" and p.cluster == "t" for p in pkts)


def test_heartbeats_keep_a_fixed_rhythm(daemon):
    d = daemon
    d.links = [FakeLink("hb")]
    d.next_send = 100.0
    d._send_all(100.0, scheduled=True)
    assert d.next_send == pytest.approx(100.01)
    d._send_all(100.0109, scheduled=True)  # woke 0.9 ms late: the next one is still due at 100.02
    assert d.next_send == pytest.approx(100.02)
    d._send_all(100.015)  # an extra heartbeat (a state change): the rhythm starts again from now
    assert d.next_send == pytest.approx(100.025)
    d._send_all(100.3, scheduled=True)  # 275 ms late (a stall): no burst to catch up
    assert d.next_send == pytest.approx(100.31)


def test_drain_parses_a_new_state_once_then_takes_the_fast_path(daemon):
    d = daemon
    rx = open_udp(model.Link("hb", "udp-unicast", port=d.port, addresses={"node1": "127.0.0.2", "node2": "127.0.0.1"}), "node1")
    rx.dests = [("127.0.0.1", free_port())]  # our own heartbeats go nowhere (not back to us)
    d.links = [rx]
    d.rx_poll.register(rx.fileno(), select.EPOLLIN)
    d.rx_links[rx.fileno()] = rx
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        def send(seq: int, role: str = "standby", key: bytes = KEY) -> None:
            peer.sendto(P.encode(P.Packet("t", "node2", "hb", 9, seq, role=role), key), ("127.0.0.1", d.port))

        def drain() -> None:
            end = time.monotonic() + 2
            while not d._drain(100.0) and time.monotonic() < end:
                time.sleep(0.005)

        for seq in (1, 2, 3):
            send(seq)
        drain()
        ls = d.fsm.links["hb"]
        assert d.fsm.peer.state == "up" and d.fsm.peer.generation == 9
        assert (d.n_parsed, d.n_fast, ls.received) == (1, 2, 3)
        assert (d.n_parsed, d.n_fast) == (1, 2)
        send(3)  # a replay of the same state: dropped, counted
        send(4, key=b"x" * 32)  # a forged frame: dropped, counted
        send(6, role="active")  # a new state: parsed (4, forged, and 5 counted as missed)
        drain()
        assert ls.replay == 1 and ls.bad_mac == 1 and ls.missed == 2
        assert d.fsm.peer.role == "active" and (d.n_parsed, d.n_fast, ls.received) == (2, 3, 4)  # the replay: fast path, dropped
        send(7, role="active")
        drain()
        assert (d.n_parsed, d.n_fast, ls.received) == (2, 4, 5)
        assert not d._drain(100.0)  # nothing left: no work
    finally:
        peer.close()
