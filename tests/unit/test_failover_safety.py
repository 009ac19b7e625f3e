"""Issue 12's split-brain paths, each on the fake clock of test_failover_membership.py
(two real FSMs wired together, jobs answered after a short simulated time). Every test
here failed on the code before the fix it names (docs/failover.md, "Freshness" and on)."""

from __future__ import annotations

from dataclasses import replace

from hasync.failover import packets
from hasync.failover.membership import JobResult, Membership, Monitor
from tests.unit.test_failover_membership import RES, Sim, SimNode, cfg, settle


def reconfigure(node: SimNode, **kw) -> None:
    """The node's daemon runs with other settings from the start (same generation)."""
    node.cfg = cfg(node.name, **{**_base(node), **kw})
    node.fsm = Membership(node.cfg, node.sim.now, generation=node.gen)
    node.handle(node.fsm.begin(node.sim.now))
    node.jobs = []


def _base(node: SimNode) -> dict:
    c = node.cfg
    return {k: getattr(c, k) for k in ("order", "fencing_mode", "fence_configured", "ping_configured", "monitors", "auto_failback")}


def cut_all(sim: Sim) -> None:
    for link in ("hb", "public", "serial"):
        sim.cut_link(link)


def inject(node: SimNode, pkts: list[packets.Packet]) -> None:
    """Captured packets arrive at *node* (an attacker on the links replays them)."""
    for p in pkts:
        node.handle(node.fsm.on_packet(node.sim.now, p.link, p))


def starts(node: SimNode) -> int:
    return sum(j.kind == "start" for j in node.jobs)


# ------------------------------------------------------------------ 12.1 replays


def test_a_replayed_idle_packet_after_a_restart_is_not_believed():
    """node2 (preferred) restarts while cut off from node1, which holds the chain; an
    attacker replays node1's old "standby, owns nothing" packets. Before: node2's fresh
    guard accepted them, node2 saw an idle peer and started the chain next to node1's."""
    sim = Sim(order=("node2", "node1"))
    sim.run(0.5)
    old_standby = [p for p in sim.sent if p.node == "node1" and p.role == "standby" and not p.owned]
    assert old_standby and sim.n2.fsm.role == "active"
    sim.n1.command("takeover")
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    cut_all(sim)
    sim.n2.restart()
    sim.run(0.06)  # the start-up probe is over, node1 not heard (cut)
    for p in old_standby[-3:]:
        inject(sim.n2, [replace(p, seq=p.seq)])
        sim.run(0.02)
    assert starts(sim.n2) == 0 and sim.both_held == 0
    assert sim.n2.fsm.peer.state == "unverified"  # alive, what it says not believed
    assert any("do not echo" in e.message for e in sim.n2.kinds("peer-up"))


def test_a_replayed_leaving_packet_of_a_dead_peer_is_not_believed():
    """node1 left cleanly once (its `leaving` packets were captured), came back, took the
    chain, and is now cut off; node2's fence fails. Before: the old `leaving` packet (a
    lower generation, accepted while the peer was dead) made node1 "left" and node2
    started without a fence, next to node1's chain."""
    sim = settle(Sim(fence_retry=0.2))
    sim.n1.handle(sim.n1.fsm.begin_leave(sim.now))
    sim.run(0.2)
    leaving = [p for p in sim.sent if p.node == "node1" and p.flags & packets.F_LEAVING]
    assert leaving
    sim.n1.alive = False
    sim.run(0.3)
    assert sim.n2.fsm.role == "active"
    sim.n1.restart()
    sim.run(0.3)
    sim.n1.command("takeover")
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    sim.n2.fence_ok = False
    cut_all(sim)
    sim.run(0.5)  # node1 declared dead, the fence fails: node2 waits
    assert sim.n2.fsm.peer.state == "dead" and starts(sim.n2) == 1
    inject(sim.n2, leaving[-1:])
    sim.run(0.3)
    assert starts(sim.n2) == 1 and sim.n2.fsm.peer.state != "left"
    assert sim.both_held == 0


def test_the_peers_highest_generation_survives_a_restart():
    """Before: the guard lived in memory only; a restarted daemon accepted any generation."""
    sim = settle(Sim())
    older = [p for p in sim.sent if p.node == "node1" and p.link == "hb"][0]
    cut_all(sim)
    sim.n2.restart()
    inject(sim.n2, [replace(older, generation=9, seq=10**6)])
    assert sim.n2.fsm.links["hb"].old_generation == 1 and sim.n2.fsm.peer.generation == 0
    assert sim.n2.disk.peer_generation == 10  # node1's, written when it was first heard


def test_a_fresh_packet_is_needed_one_round_trip_after_a_restart():
    """The handshake: a restarted node sees its peer unverified until the peer's packets
    echo its new generation (one round trip), then up; nothing moves meanwhile."""
    sim = settle(Sim())
    sim.n2.restart()
    sim.n2.send_now = False
    last = [p for p in sim.sent if p.node == "node1"][-1]
    sim.n2.handle(sim.n2.fsm.on_packet(sim.now, last.link, replace(last, seq=10**6)))  # node1's next heartbeat
    assert sim.n2.fsm.peer.state == "unverified" and sim.n2.send_now  # answers at once
    sim.run(0.2)
    assert sim.n2.fsm.peer.state == "up" and sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    assert sim.n2.fsm.packet_fields()["echo"] == 10 and sim.n1.fsm.packet_fields()["echo"] == sim.n2.gen


# ------------------------------------------------------------------ 12.2 partial chain


def test_a_partly_running_chain_at_start_up_is_stopped_and_the_active_peer_keeps_the_chain():
    """node1 reboots with one piece enabled at boot while node2 runs the chain. Before: node1
    completed the chain and its epoch (max + 1) won the conflict: node2 stopped its chain."""
    sim = settle(Sim())
    sim.n1.alive = False
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"
    sim.n1.running_at_start = ("fs",)
    sim.n1.restart()
    sim.run(1.0)
    assert [j.kind for j in sim.n1.jobs] == ["stop"] and sim.n1.fsm.role == "standby"
    assert sim.n2.fsm.role == "active" and "stop" not in [j.kind for j in sim.n2.jobs]
    assert sim.n1.fsm.epoch <= sim.n2.fsm.epoch


def test_a_restarted_active_daemon_adopts_the_chain_with_its_persisted_epoch():
    """Before: a daemon restart adopted the chain with epoch 0 and lost every later
    conflict, also to a node that took over before it."""
    sim = settle(Sim(fencing_mode="off", fence_configured=False))
    cut_all(sim)
    sim.run(0.5)  # fencing off: both take the chain; node2's epoch is higher
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "active"
    sim.heal()
    sim.run(0.5)
    assert sim.n1.fsm.role == "standby" and sim.n2.fsm.role == "active"
    # node1 takes it back (epoch 3), then its daemon restarts with the chain running
    sim.n1.command("takeover")
    sim.run(0.5)
    epoch = sim.n1.fsm.epoch
    assert sim.n1.fsm.role == "active" and epoch > sim.n2.fsm.epoch
    sim.n1.running_at_start = RES
    sim.n1.restart()
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n1.fsm.epoch == epoch


# ------------------------------------------------------------------ 12.3 a probe that cannot tell


def test_a_start_up_probe_that_cannot_tell_holds_the_peer_back():
    """node1's status times out at start-up (a piece may run). Before: "nothing runs here",
    standby, and node2 (preferred) started the chain beside whatever ran on node1."""
    sim = Sim(order=("node2", "node1"))
    n1 = sim.n1
    real = n1.result
    tell = {"ok": False}
    n1.result = lambda job: JobResult(job.id, False, "probed", "status failed: fs", owned=()) if job.kind == "probe" and not tell["ok"] else real(job)
    n1.restart()
    sim.run(0.5)
    assert n1.fsm.role == "probing" and starts(sim.n2) == 0
    assert any("cannot tell" in w for w in n1.fsm.snapshot(sim.now)["warnings"])
    tell["ok"] = True  # the status answers again
    sim.run(1.5)
    assert n1.fsm.role == "standby" and sim.n2.fsm.role == "active"


def test_a_probe_that_never_tells_ends_in_a_stop_not_in_standby():
    sim = Sim(start2_after=None)
    n1 = sim.n1
    n1.result = lambda job, real=n1.result: JobResult(job.id, False, "probed", "status failed: vip", owned=("fs",)) if job.kind == "probe" else real(job)
    n1.restart()
    sim.run(2.1)  # probe_retry: 1 s
    kinds = [j.kind for j in n1.jobs]
    assert kinds[:3] == ["probe", "probe", "stop"]  # two retries (the first probe is begin()'s)


# ------------------------------------------------------------------ 12.4 ping tiebreak


def test_the_ping_tiebreak_is_decided_afresh_for_every_death_of_the_peer():
    """The tiebreak passed during one death that ended without a takeover (the fence
    failed, the peer came back); later this node is the isolated one. Before: the old
    pass still counted, no ping was run, and it fenced."""
    sim = settle(Sim(ping_configured=True, ping_retry=0.1, fence_retry=0.2))
    sim.n2.fence_ok = False
    sim.n1.alive = False
    sim.run(0.4)
    assert [j.kind for j in sim.n2.jobs][:2] == ["ping", "fence"]
    sim.n1.alive = True  # it was only stopped for a while
    sim.run(0.3)
    assert sim.n2.fsm.peer.state == "up"
    sim.n2.jobs = []
    sim.n2.ping_ok = False  # node2 is now the isolated one
    cut_all(sim)
    sim.run(0.6)
    kinds = [j.kind for j in sim.n2.jobs]
    assert kinds and kinds[0] == "ping" and "fence" not in kinds and "start" not in kinds


# ------------------------------------------------------------------ 12.5 settings drift


def test_nodes_whose_settings_differ_break_ties_by_name_and_do_not_both_start():
    """Each node's config names itself preferred. Before: both started the chain when both
    came up, and both kept it (equal epochs: each was "preferred")."""
    sim = Sim(order=("node2", "node1"))
    reconfigure(sim.n1, order=("node1", "node2"))
    sim.run(1.0)
    assert sim.both_held == 0
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"  # node1 < node2 by name
    for n in (sim.n1, sim.n2):
        assert any("settings differ" in w for w in n.fsm.snapshot(sim.now)["warnings"])
        assert n.fsm.snapshot(sim.now)["peer"]["config_agrees"] is False


def test_no_failback_while_the_settings_differ():
    sim = Sim(auto_failback=True, order=("node2", "node1"))
    reconfigure(sim.n1, order=("node1", "node2"))
    sim.run(1.0)
    assert sim.n1.fsm.role == "active"
    sim.n1.alive = False
    sim.run(0.6)
    sim.n1.restart()
    sim.run(1.0)
    assert not sim.n1.kinds("failback") and not sim.n2.kinds("failback")
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"


# ------------------------------------------------------------------ the busy loop


def test_a_node_that_wins_a_conflict_keeps_its_monitors_and_never_spins():
    """node2 wins a conflict while node1 stays active (busy with a long monitor job).
    Before: _decide returned before the monitors while next_deadline kept returning the
    overdue monitor time: the daemon's loop spun."""
    mon = (("vip", Monitor(0.05, 2)),)
    sim = settle(Sim(fencing_mode="off", fence_configured=False, monitors=mon))
    cut_all(sim)
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "active" and sim.n2.fsm.epoch > sim.n1.fsm.epoch
    sim.n1.job_time = 5.0  # node1's next job (a monitor) takes long: it stays active meanwhile
    sim.run(0.1)
    sim.heal()
    for _ in range(40):
        sim.step()
        assert sim.n2.fsm.next_deadline(sim.now) > sim.now
    assert sim.n1.fsm.role == "active" and [j.kind for j in sim.n2.jobs][-1] == "monitor"


# ------------------------------------------------------------------ an orphaned agent


def test_a_restarted_daemon_probes_again_after_its_predecessors_agents_are_done():
    """KillMode=process: a stop agent of the killed daemon takes vip down after the new
    daemon's probe saw it up. Before: adopted, active with vip down, nobody looked again."""
    sim = settle(Sim(agent_timeout=0.2, probe_retry=0.1))
    n1 = sim.n1
    n1.running_at_start = RES
    n1.restart()
    sim.run(0.1)
    assert n1.fsm.role == "active"
    n1.running_at_start = ("fs",)  # the old agent has stopped vip (and svc after it)
    sim.run(0.4)
    kinds = [j.kind for j in n1.jobs]
    assert kinds[:2] == ["probe", "restart"] and n1.jobs[1].resource == "vip"
    assert n1.fsm.role == "active"
