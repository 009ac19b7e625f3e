"""A rolling upgrade from packet format 1 (before the echo) to 2, on the fake clock: the
procedure docs/failover.md ("Rolling upgrade") writes down, and what goes wrong in the
other order.

A node still on version 1 is modelled by what it does on the wire: it sends format-1
frames (encoded and decoded for real: no echo, no digest) and drops every format-2 frame
as malformed. Its rules are those of version 1 for everything it can see: it believes
every packet it reads (version 1 has no freshness), which the model gets by handing its
FSM those packets with its own generation as the echo.
"""

from __future__ import annotations

from dataclasses import replace

from hasync.failover import packets
from tests.unit.test_failover_membership import RES, Sim

KEY = b"k" * 32


class MixedSim(Sim):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.v1 = {"node1": True, "node2": True}

    def send(self, n) -> None:
        dst = self.other(n)
        fields = n.fsm.packet_fields()
        for link in n.cfg.links:
            n.seq[link] += 1
            pkt = packets.Packet(link=link, seq=n.seq[link], **fields)
            if not dst.alive or (link, dst.name) in self.cut:
                continue
            if self.v1[n.name]:  # what a version 1 node puts on the wire, read by the receiver's decoder
                (pkt,) = packets.decode_datagram(packets.encode(replace(pkt, version=1, echo=0, digest=0), KEY), KEY)
            if self.v1[dst.name]:
                if not self.v1[n.name]:
                    continue  # version 1 drops a format-2 frame: malformed
                pkt = replace(pkt, echo=dst.fsm.generation, digest=dst.fsm.digest)  # version 1 believes it
            self.sent.append(pkt)
            dst.handle(dst.fsm.on_packet(self.now, link, pkt))


def kinds(node) -> list[str]:
    return [j.kind for j in node.jobs]


def test_upgrade_the_standby_node_first_then_restart_the_active_daemon_without_stopping_the_chain():
    sim = MixedSim()
    sim.run(0.5)
    n1, n2 = sim.n1, sim.n2
    assert n1.fsm.role == "active" and n2.fsm.role == "standby"
    # 1. the standby node: stopped cleanly (it holds nothing), upgraded, started
    n2.handle(n2.fsm.begin_leave(sim.now))
    sim.run(0.1)
    assert n2.fsm.can_exit
    sim.v1["node2"] = False
    n2.restart()
    n2.jobs = []
    sim.run(2.0)  # ten deadtimes: node2 hears node1 (format 1, never fresh), node1 cannot read node2
    assert n2.fsm.role == "standby" and n2.fsm.peer.state == "unverified" and kinds(n2) == []  # no fence, no start
    assert n1.fsm.role == "active" and n1.fsm.peer.state == "left" and sim.both_held == 0
    warn = " ".join(n2.fsm.snapshot(sim.now)["warnings"])
    assert "format version 1" in warn
    # 2. the active node: its daemon restarted WITHOUT the clean stop (systemctl kill), back
    #    within deadtime as version 2; the chain keeps running and is adopted
    n1.alive = False
    sim.run(0.05)
    sim.v1["node1"] = False
    n1.disk = None  # version 1 kept no epoch or peer generation
    n1.running_at_start = RES
    n1.alive = True
    n1.restart()
    n1.jobs = []
    sim.run(1.0)
    assert n1.fsm.role == "active" and n2.fsm.role == "standby" and sim.both_held == 0
    assert n1.fsm.peer.state == "up" and n2.fsm.peer.state == "up"  # both fresh: the handshake is done
    assert kinds(n1) == [] and kinds(n2) == []  # nothing stopped, started or fenced
    # 3. both on version 2: a failover works as before
    n1.alive = False
    sim.run(0.6)
    assert kinds(n2) == ["fence", "start"] and n2.fsm.role == "active"


def test_upgrading_the_active_node_first_gets_it_fenced_by_the_old_standby():
    """The other order: the version 1 standby cannot read the upgraded active node, so it
    declares it dead and fences it (safe, but a failover nobody wanted): docs say why not."""
    sim = MixedSim()
    sim.run(0.5)
    n1, n2 = sim.n1, sim.n2
    n1.alive = False
    sim.run(0.05)
    sim.v1["node1"] = False
    n1.running_at_start = RES
    n1.alive = True
    n1.restart()
    sim.run(1.0)
    assert kinds(n2)[:2] == ["fence", "start"]


def test_a_version_2_node_never_takes_over_from_a_version_1_peer_it_still_hears():
    """The version 1 node's chain failed over to nobody: whatever a format-1 packet says
    (here: standby, owns nothing), the version 2 node neither starts nor fences while it
    hears it -- it cannot tell a live peer from a replay."""
    sim = MixedSim(order=("node2", "node1"))
    sim.v1["node2"] = False
    sim.n1.fence_ok = False  # node1 (version 1) never hears node2: it tries to fence it, in vain
    sim.run(2.0)
    assert sim.n2.alive and sim.n1.fsm.role == "standby" and "fence" in kinds(sim.n1)
    said = [p for p in sim.sent if p.node == "node1"][-1]
    assert said.version == 1 and said.role == "standby" and not said.owned  # what it says: idle
    assert kinds(sim.n2) == [] and sim.n2.fsm.peer.state == "unverified"
