"""A groups daemon next to a format 2 peer (an older daemon, before resource groups), on the
fake clock: neither may fail over while both nodes are up and talking.

The older daemon is modelled by what it does on the wire: it runs the one-chain FSM
(``Membership``) of the config before the second group was added, sends format 2
frames, and drops every format 3 frame as malformed (a version 2 decoder). Its chain is
group g1's resources. Frames go through the real encoder and decoder.

What goes wrong without care: the older node cannot read format 3, so it sees the groups
node as dead after initdead and, when it is the standby, fences it and takes over the
chain -- a failover of two healthy nodes. The groups daemon therefore answers a peer that
speaks format 2 in format 2 (its summary: the node's role and everything it owns), and
each of its groups counts a peer without group records as holding the group (nothing
moves for it while the peer talks).
"""

from __future__ import annotations

from dataclasses import replace

from hasync.failover import packets
from hasync.failover.membership import FsmConfig, Job, JobResult, Membership
from hasync.failover.states import JobKind
from hasync.packet_layout import VERSION, VERSION_GROUPS
from tests.unit.test_failover_groups import GROUPS, LINKS, Sim, SimNode

OLD_CHAIN = GROUPS["g1"]  # the one chain of the config before the second group


class OldNode(SimNode):
    """A node running the older daemon: one chain, format 2, format 3 frames dropped."""

    def boot(self) -> None:
        peer = "node2" if self.name == "node1" else "node1"
        self.fsm = Membership(FsmConfig(cluster="t", local=self.name, peer=peer, order=("node1", "node2"), links=LINKS,
                                        resources=OLD_CHAIN, keepalive=0.05, warntime=0.12, deadtime=0.2, initdead=0.5,
                                        fencing_mode="required", fence_configured=True, auto_failback=False),
                              self.sim.now, generation=self.gen, persisted=self.disk)
        self.seq = dict.fromkeys(LINKS, 0)
        self.next_send = self.sim.now
        self.send_now = False
        self.queues: dict[str, list[tuple[float, Job]]] = {}
        self.dropped = 0
        self.handle(self.fsm.begin(self.sim.now))
        self.jobs = []

    def handle(self, actions) -> None:
        # the one chain's jobs run in one queue (the older daemon's worker)
        for a in actions:
            if isinstance(a, Job):
                a = replace(a, group="g1")
            super().handle([a])

    def result(self, job: Job) -> JobResult:
        if job.kind == JobKind.PROBE:
            return JobResult(job.id, True, "probed", owned=tuple(r for r in OLD_CHAIN if r in self.running))
        return super().result(job)


class MixedSim(Sim):
    """node1 runs the groups daemon, node2 the older one (or the other way round)."""

    def __init__(self, old: str = "node2", running: dict[str, set[str]] | None = None, **kw):
        self.old_name, self.preset = old, running or {}
        super().__init__(**kw)

    def make(self, name: str, gen: int, **kw) -> SimNode:
        cls = OldNode if name == self.old_name else SimNode
        node = cls.__new__(cls)
        node.sim, node.name, node.gen, node.kw = self, name, gen, kw
        node.alive, node.running, node.events, node.jobs = True, set(self.preset.get(name, ())), [], []
        node.stop_ok = {gid: True for gid in GROUPS}
        node.fence_ok, node.job_time, node.job_times, node.disk = True, 0.03, {}, None
        node.boot()
        return node

    def send(self, n: SimNode) -> None:
        self.versions.setdefault(n.name, []).extend([n.fsm.packet_fields().get("version", VERSION)] * len(LINKS))
        super().send(n)

    def deliver(self, dst: SimNode, link: str, pkt: packets.Packet) -> None:
        if isinstance(dst, OldNode) and pkt.version == VERSION_GROUPS:
            dst.dropped += 1  # a version 2 decoder: an unknown version is malformed
            dst.fsm.on_decode_errors(link, malformed=1)
            return
        super().deliver(dst, link, pkt)


def mixed(old: str = "node2", running: dict[str, set[str]] | None = None) -> MixedSim:
    sim = MixedSim.__new__(MixedSim)
    sim.old_name, sim.preset, sim.versions = old, running or {}, {}
    sim.now, sim.dt, sim.dual, sim.cut = 1000.0, 0.005, set(), False
    sim.n1 = sim.make("node1", 10)
    sim.n2 = sim.make("node2", 20)
    sim.nodes = [sim.n1, sim.n2]
    return sim


def fences(sim: MixedSim) -> list[str]:
    return [n.name for n in sim.nodes for j in n.jobs if j.kind == JobKind.FENCE]


def test_an_older_standby_next_to_a_groups_node_running_the_chain_neither_fences_nor_takes_over():
    """The groups node (node1) adopted the chain it ran before its upgrade; the older
    standby (node2) must keep hearing it: no fence, no takeover, for a long while."""
    sim = mixed(running={"node1": set(OLD_CHAIN)})
    sim.run(10.0)
    assert fences(sim) == [] and sim.n1.alive and sim.n2.alive
    assert set(OLD_CHAIN) <= sim.n1.running and not sim.n2.running & set(OLD_CHAIN)
    assert sim.dual == set()
    assert sim.n2.fsm.peer.state == "up"  # the older node reads the groups node's format 2 answers
    assert sim.versions["node2"] and set(sim.versions["node2"]) == {VERSION}


def test_an_older_node_running_the_chain_keeps_it_and_the_groups_node_moves_nothing():
    """The groups node (node1, just upgraded, standby) hears the older active node in
    format 2: none of its groups starts while the older node talks, and nobody is fenced."""
    sim = mixed(running={"node2": set(OLD_CHAIN)})
    sim.run(10.0)
    assert fences(sim) == [] and sim.n1.alive and sim.n2.alive
    assert set(OLD_CHAIN) <= sim.n2.running and not sim.n1.running
    assert sim.dual == set()
    assert [j.kind for j in sim.n1.jobs if j.kind in (JobKind.START, JobKind.FENCE)] == []


def test_the_groups_node_answers_in_format_2_only_while_its_peer_speaks_it():
    sim = mixed(running={"node1": set(OLD_CHAIN)})
    sim.run(2.0)
    first = sim.versions["node1"]
    assert first[0] == VERSION_GROUPS  # before it heard the peer: format 3
    assert set(first[-10:]) == {VERSION}  # the older peer heard: its format
    assert sim.n2.dropped <= 2 * len(LINKS)  # at most the frames before the first answer
    # the peer upgraded: it speaks format 3 again, and so does this node
    sim.old_name = ""
    sim.n2 = sim.make("node2", 21)
    sim.nodes = [sim.n1, sim.n2]
    sim.versions.clear()
    sim.run(2.0)
    assert set(sim.versions["node1"][-10:]) == {VERSION_GROUPS}
    assert fences(sim) == [] and sim.dual == set()


def test_the_older_node_dies_the_groups_node_fences_once_and_starts_its_groups():
    """A real death still fails over: the groups node fences the silent older peer once,
    then starts every group."""
    sim = mixed(running={"node2": set(OLD_CHAIN)})
    sim.run(3.0)
    sim.crash(sim.n2)
    sim.run(5.0)
    assert fences(sim) == ["node1"]
    assert set(GROUPS["g1"]) | set(GROUPS["g2"]) <= sim.n1.running


def test_the_groups_node_dies_the_older_node_fences_it_and_takes_the_chain():
    sim = mixed(running={"node1": set(OLD_CHAIN)})
    sim.run(3.0)
    sim.crash(sim.n1)
    sim.run(5.0)
    assert fences(sim) == ["node2"]
    assert set(OLD_CHAIN) <= sim.n2.running
