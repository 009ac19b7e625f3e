"""The membership FSM on a fake clock with fake links: two nodes wired together in memory.

Jobs (start/stop/fence/ping/monitor) are answered by a fake executor after a short
simulated duration, with outcomes each test chooses.
"""

from __future__ import annotations

import pytest

from hasync.failover import packets
from hasync.failover.membership import (
    Event,
    FsmConfig,
    Job,
    JobResult,
    Membership,
    Monitor,
    fsm_config,
)
from tests.unit.fsm_sim import FakeNode, TwoNodeSim

RES = ("fs", "vip", "svc")
LINKS = ("hb", "public", "serial")


def cfg(local: str, **kw) -> FsmConfig:
    base = dict(
        cluster="t",
        local=local,
        peer="node2" if local == "node1" else "node1",
        order=("node1", "node2"),
        links=LINKS,
        resources=RES,
        keepalive=0.05,
        warntime=0.12,
        deadtime=0.2,
        initdead=0.5,
        fencing_mode="required",
        fence_configured=True,
    )
    base.update(kw)
    return FsmConfig(**base)


class SimNode(FakeNode):
    def __init__(self, sim: Sim, name: str, c: FsmConfig, gen: int):
        self.sim, self.name, self.cfg = sim, name, c
        self.gen = gen
        self.disk = None  # what the FSM asked to persist (its Persist actions): kept across restarts
        self.fsm = Membership(c, sim.now, generation=gen)
        self.alive = True
        self.running_at_start: tuple[str, ...] = ()
        self.seq = {link: 0 for link in c.links}
        self.next_send = sim.now
        self.pending: list[tuple[float, Job]] = []
        self.events: list[Event] = []
        self.jobs: list[Job] = []
        self.send_now = False
        # outcomes
        self.start_ok = True
        self.stop_ok = True
        self.fence_ok = True
        self.ping_ok = True
        self.monitor_ok = True
        self.job_time = 0.03
        self.handle(self.fsm.begin(sim.now))
        self.jobs = []  # the start-up probe is not what the tests count

    def restart(self) -> None:
        self.gen += 1
        kept = {"persisted": self.disk} if self.disk is not None else {}
        self.fsm = Membership(self.cfg, self.sim.now, generation=self.gen, **kept)
        self.alive = True
        self.pending = []
        self.next_send = self.sim.now
        self.handle(self.fsm.begin(self.sim.now))
        self.jobs = []

    @property
    def keepalive(self) -> float:
        return self.cfg.keepalive

    def queue(self, job: Job) -> None:
        self.jobs.append(job)
        self.pending.append((self.sim.now + self.job_time, job))

    def finish_jobs(self) -> None:
        now = self.sim.now
        for item in [p for p in self.pending if p[0] <= now]:
            self.pending.remove(item)
            _, job = item
            self.handle(self.fsm.on_job_done(now, self.result(job)))

    def result(self, job: Job) -> JobResult:
        if job.kind == "probe":
            return JobResult(job.id, True, "probed", owned=self.running_at_start)
        if job.kind == "start" or job.kind == "restart":
            if self.start_ok:
                return JobResult(job.id, True, "started", owned=RES)
            return JobResult(job.id, False, "start_failed", "vip: start exited 1", owned=())
        if job.kind == "stop":
            if self.stop_ok:
                return JobResult(job.id, True, "stopped", owned=())
            return JobResult(job.id, False, "stop_failed", "fs", owned=("fs",))
        if job.kind == "fence":
            if self.fence_ok:
                other = self.sim.other(self)
                other.alive = False  # power off
                return JobResult(job.id, True, "fenced")
            return JobResult(job.id, False, "", "fence_x exited 1")
        if job.kind == "ping":
            return JobResult(job.id, self.ping_ok, "", "" if self.ping_ok else "no answer")
        if job.kind == "monitor":
            return JobResult(job.id, self.monitor_ok, "monitor_ok" if self.monitor_ok else "monitor_failed", "" if self.monitor_ok else "vip: NOT_RUNNING")
        if job.kind == "fence-self":
            self.alive = False
            return JobResult(job.id, True)
        raise AssertionError(job)

    @property
    def holds(self) -> bool:
        return bool(self.fsm.owned) or self.fsm.role in ("active", "starting", "stopping", "stop-failed")


class Sim(TwoNodeSim):
    def __init__(self, *, start2_after: float | None = 0.0, dt: float = 0.005, **kw):
        self.now = 1000.0
        self.dt = dt
        self.cut: set[tuple[str, str]] = set()  # (link, receiving node) dropped
        self.delay_until: float | None = None
        self.sent: list[packets.Packet] = []  # every packet either node sent (for replays)
        self.n1 = SimNode(self, "node1", cfg("node1", **kw), gen=10)
        self.n2 = SimNode(self, "node2", cfg("node2", **kw), gen=20)
        self.nodes = [self.n1, self.n2]
        if start2_after is None:
            self.n2.alive = False
        self.both_held = 0
        self.allow_both = False

    def cut_link(self, link: str) -> None:
        self.cut |= {(link, "node1"), (link, "node2")}

    def heal(self) -> None:
        self.cut = set()

    def after_step(self) -> None:
        if self.n1.alive and self.n2.alive and self.n1.holds and self.n2.holds:
            self.both_held += 1

    def send(self, n: SimNode) -> None:
        dst = self.other(n)
        fields = n.fsm.packet_fields()
        for link in n.cfg.links:
            n.seq[link] += 1
            pkt = packets.Packet(link=link, seq=n.seq[link], **fields)
            self.sent.append(pkt)
            if not dst.alive or (link, dst.name) in self.cut:
                continue
            if self.delay_until is not None and self.now < self.delay_until:
                continue
            dst.handle(dst.fsm.on_packet(self.now, link, pkt))


def settle(sim: Sim) -> Sim:
    sim.run(0.3)
    assert sim.n1.fsm.role == "active", sim.n1.events
    assert sim.n2.fsm.role == "standby"
    return sim


# ------------------------------------------------------------------ timing validation


def test_heartbeat_timing_rules():
    assert cfg("node1").validate() == []
    assert cfg("node1", keepalive=0.05, deadtime=0.2, warntime=0.1, initdead=0.2).validate() == []
    assert any("2 x keepalive" in e for e in cfg("node1", keepalive=0.1, deadtime=0.2).validate())
    assert any("initdead" in e for e in cfg("node1", initdead=0.1).validate())
    assert any("warntime" in e for e in cfg("node1", warntime=0.3).validate())


# ------------------------------------------------------------------ start-up


def test_both_nodes_starting_at_once_preferred_node_gets_the_chain_without_fencing():
    sim = Sim()
    sim.run(1.0)
    assert sim.n1.fsm.role == "active"
    assert sim.n2.fsm.role == "standby"
    assert [j.kind for j in sim.n1.jobs] == ["start"]
    assert sim.n2.jobs == []
    assert sim.both_held == 0
    assert not sim.n1.kinds("fence") and not sim.n2.kinds("fence")


def test_preferred_node_from_order_not_name():
    sim = Sim(order=("node2", "node1"))
    sim.run(1.0)
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"


def test_initdead_waits_then_fences_and_starts():
    sim = Sim(start2_after=None)
    sim.run(0.45)  # initdead is 0.5
    assert sim.n1.fsm.role == "standby" and sim.n1.jobs == []
    sim.run(0.2)
    kinds = [j.kind for j in sim.n1.jobs]
    assert kinds == ["fence", "start"]
    assert sim.n1.fsm.role == "active"
    assert any("initdead" in e.message for e in sim.n1.kinds("detect"))


def test_non_preferred_node_alone_delays_its_startup_fence():
    sim = Sim(start2_after=None)
    sim.n1.alive, sim.n2.alive = False, True
    sim.run(0.6)  # past initdead, within the extra delay (deadtime)
    assert sim.n2.jobs == []
    sim.run(0.3)
    assert [j.kind for j in sim.n2.jobs] == ["fence", "start"]


# ------------------------------------------------------------------ links


def test_one_link_lost_is_reported_and_nobody_fails_over():
    sim = settle(Sim())
    sim.cut_link("hb")
    sim.run(1.0)
    assert sim.n2.fsm.role == "standby" and sim.n1.fsm.role == "active"
    assert sim.n2.jobs == []
    dead = sim.n2.kinds("link-dead")
    assert dead and "hb" in dead[0].message and "still alive" in dead[0].message
    snap = sim.n2.fsm.snapshot(sim.now)
    assert {link["name"]: link["state"] for link in snap["links"]} == {"hb": "dead", "public": "up", "serial": "up"}
    assert any("hb" in w for w in snap["warnings"])
    sim.heal()
    sim.run(0.2)
    assert sim.n2.kinds("link-up")
    assert not any("hb" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])


def test_all_links_lost_peer_dead_after_deadtime_then_fence_then_start():
    sim = settle(Sim())
    t_cut = sim.now
    sim.n1.alive = False  # crash: no more packets on any link
    sim.run(0.15)
    assert sim.n2.fsm.peer.state == "up"  # < deadtime
    sim.run(0.3)
    assert sim.n2.fsm.peer.state == "dead"
    detect = sim.n2.kinds("detect")[0]
    assert "deadtime" in detect.message
    assert [j.kind for j in sim.n2.jobs] == ["fence", "start"]
    assert sim.n2.fsm.role == "active"
    assert sim.now - t_cut >= 0.2


def test_late_heartbeat_warns_but_does_not_fail_over():
    sim = settle(Sim())
    sim.delay_until = sim.now + 0.15  # > warntime 0.12, < deadtime 0.2
    sim.run(0.5)
    late = sim.n2.kinds("late")
    assert late, sim.n2.events
    assert any("ms after the previous one" in e.message for e in late)
    assert sim.n2.fsm.peer.state == "up" and sim.n2.jobs == []


def test_replayed_and_foreign_packets_are_counted_not_used():
    sim = settle(Sim())
    fsm = sim.n2.fsm
    old = packets.Packet("t", "node1", "hb", 10, 1, role="standby")
    fsm.on_packet(sim.now, "hb", old)
    assert fsm.links["hb"].replay == 1
    fsm.on_packet(sim.now, "hb", packets.Packet("t", "node1", "hb", 9, 10**6))
    assert fsm.links["hb"].old_generation == 1
    fsm.on_packet(sim.now, "hb", packets.Packet("other", "node1", "hb", 10, 10**6))
    fsm.on_packet(sim.now, "hb", packets.Packet("t", "node9", "hb", 10, 10**6))
    fsm.on_packet(sim.now, "hb", packets.Packet("t", "node1", "public", 10, 10**6))  # says public, came on hb
    assert fsm.links["hb"].foreign == 3
    assert fsm.peer.role == "active"


# ------------------------------------------------------------------ partitions


def test_peer_returning_after_partition_without_fencing_gives_up_its_chain():
    sim = settle(Sim(fencing_mode="off", fence_configured=False))
    for link in LINKS:
        sim.cut_link(link)
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "active"  # split brain, fencing off
    assert any("WITHOUT fencing" in e.message for e in sim.n2.kinds("fence"))
    assert sim.n2.fsm.epoch > sim.n1.fsm.epoch
    sim.heal()
    sim.run(0.5)
    # node1 (the one that "returns": lower takeover epoch) stops; node2 keeps it
    assert sim.n1.fsm.role == "standby" and sim.n2.fsm.role == "active"
    assert sim.n1.kinds("conflict")
    assert [j.kind for j in sim.n1.jobs][-1] == "stop"


def test_fenced_peer_packets_in_flight_are_ignored():
    sim = settle(Sim())
    sim.n1.alive = False
    sim.run(0.4)
    assert sim.n2.fsm.peer_fenced
    # a stale packet of the fenced generation arrives late: ignored
    sim.n2.fsm.on_packet(sim.now, "hb", packets.Packet("t", "node1", "hb", 10, 10**6, role="active", owned=RES))
    assert sim.n2.fsm.peer.state == "dead"
    assert sim.n2.fsm.role == "active"


def test_rebooted_peer_returns_standby_and_stays_there_without_auto_failback():
    sim = settle(Sim())
    sim.n1.alive = False
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"
    sim.n1.restart()
    sim.run(1.0)
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"
    assert sim.both_held == 0


def test_auto_failback_moves_the_chain_back_to_the_preferred_node():
    sim = settle(Sim(auto_failback=True))
    sim.n1.alive = False
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"
    sim.n1.restart()
    sim.run(1.0)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    assert sim.n2.kinds("failback")
    assert sim.both_held == 0


# ------------------------------------------------------------------ fencing and ping


def test_fencing_required_no_takeover_until_fence_succeeds():
    sim = settle(Sim(fence_retry=0.2))
    sim.n2.fence_ok = False
    sim.n1.alive = False
    sim.run(1.0)
    assert sim.n2.fsm.role == "standby"
    fences = [j for j in sim.n2.jobs if j.kind == "fence"]
    assert len(fences) >= 2  # retried
    assert not [j for j in sim.n2.jobs if j.kind == "start"]
    assert any("no takeover" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])
    sim.n2.fence_ok = True
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"


def test_fencing_optional_takes_over_after_a_failed_fence_with_a_warning():
    sim = settle(Sim(fencing_mode="optional"))
    sim.n2.fence_ok = False
    sim.n1.alive = False
    sim.run(0.6)
    assert sim.n2.fsm.role == "active"
    assert any("taking over anyway" in e.message for e in sim.n2.kinds("fence"))


def test_fencing_off_takes_over_without_fence_and_warns_loudly():
    sim = settle(Sim(fencing_mode="off", fence_configured=False))
    sim.n1.alive = False
    sim.run(0.6)
    assert sim.n2.fsm.role == "active"
    assert not [j for j in sim.n2.jobs if j.kind == "fence"]
    assert [e for e in sim.n2.kinds("fence") if e.level == "error"]
    assert any("fencing is off" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])


def test_ping_tiebreak_blocks_takeover_while_no_ping_node_answers():
    sim = settle(Sim(ping_configured=True, ping_retry=0.1))
    sim.n2.ping_ok = False
    sim.n1.alive = False
    sim.run(1.0)
    assert sim.n2.fsm.role == "standby"
    assert [j.kind for j in sim.n2.jobs].count("ping") >= 2
    assert "fence" not in [j.kind for j in sim.n2.jobs]
    sim.n2.ping_ok = True
    sim.run(0.5)
    assert [j.kind for j in sim.n2.jobs][-3:] == ["ping", "fence", "start"]
    assert sim.n2.fsm.role == "active"


def test_peer_that_failed_to_stop_needs_a_fence_even_with_fencing_off():
    sim = settle(Sim(fencing_mode="off", fence_configured=False, on_stop_failure="block"))
    sim.n1.stop_ok = False
    ok, _ = sim.n1.command("standby")
    sim.run(0.3)
    assert sim.n1.fsm.role == "stop-failed"
    assert sim.n2.fsm.role == "standby"  # never starts while node1 may hold resources
    sim.n1.alive = False
    sim.run(1.0)
    assert sim.n2.fsm.role == "standby"
    assert sim.n2.fsm.gate == "wait-peer"
    assert any("may still hold" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])


# ------------------------------------------------------------------ chain failures


def test_start_failure_hands_the_chain_to_the_peer():
    sim = Sim()
    sim.n1.start_ok = False
    sim.run(1.0)
    assert sim.n1.fsm.role == "standby" and sim.n1.fsm.failed
    assert sim.n1.kinds("start-failed")
    assert sim.n2.fsm.role == "active"
    assert sim.both_held == 0


def test_stop_failure_escalates_and_peer_never_starts_meanwhile():
    sim = settle(Sim())
    sim.n1.stop_ok = False
    ok, msg = sim.n1.command("standby")
    assert ok
    sim.n1.job_time = 0.03
    sim.run(0.1)
    assert sim.n1.fsm.role == "stop-failed"
    assert [j.kind for j in sim.n1.jobs][-1] == "fence-self"
    assert sim.n2.fsm.role == "standby"
    # node1 took itself down (fence-self); node2 fences it too (required) and takes over
    sim.run(1.0)
    assert sim.n2.fsm.role == "active"
    assert [j.kind for j in sim.n2.jobs] == ["fence", "start"]


def test_monitor_failure_restarts_locally_then_fails_over():
    sim = settle(Sim(monitors=(("vip", Monitor(0.1, 2)),)))
    sim.n1.monitor_ok = False
    sim.run(1.5)
    kinds = [j.kind for j in sim.n1.jobs]
    assert kinds.count("restart") == 2
    assert "stop" in kinds
    assert sim.n1.fsm.role == "standby" and sim.n1.fsm.failed
    assert sim.n2.fsm.role == "active"
    assert sim.both_held == 0


# ------------------------------------------------------------------ operator commands


def test_standby_moves_the_chain_to_the_peer_and_takeover_brings_it_back():
    sim = settle(Sim())
    ok, msg = sim.n1.command("standby")
    assert ok
    sim.run(0.5)
    assert sim.n1.fsm.role == "standby" and sim.n2.fsm.role == "active"
    assert sim.both_held == 0
    ok, msg = sim.n1.command("takeover")
    assert ok
    sim.run(0.5)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    assert sim.both_held == 0
    # standby on the passive side, then standby of the other: the first one's flag was cleared by TAKE
    ok, msg = sim.n1.command("standby")
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"


def test_standby_refused_when_peer_is_down():
    sim = settle(Sim(fencing_mode="off", fence_configured=False))
    sim.n2.alive = False
    sim.run(0.5)
    ok, msg, _ = sim.n1.fsm.command(sim.now, "standby")
    assert not ok and "not up" in msg
    assert sim.n1.fsm.role == "active"


def run_until_done(sim: Sim, node: SimNode, cmd: str, limit: float = 2.0) -> tuple[bool | None, float]:
    """Step the simulation until the FSM says the command is over (what the control
    socket waits for): its verdict and how long it took."""
    t0 = sim.now
    while sim.now - t0 < limit:
        verdict = node.fsm.command_result(cmd)
        if verdict is not None:
            return verdict, sim.now - t0
        sim.step()
    return None, sim.now - t0


def test_standby_is_done_when_the_peer_runs_the_chain():
    sim = settle(Sim())
    ok, _ = sim.n1.command("standby")
    assert sim.n1.fsm.command_result("standby") is None  # the stop job runs
    verdict, took = run_until_done(sim, sim.n1, "standby")
    assert verdict is True and sim.n2.fsm.role == "active" and sim.n2.fsm.owned == list(RES)
    assert took >= sim.n1.job_time + sim.n2.job_time - 1e-9  # not before both jobs ran
    # takeover back: done when this node is active
    ok, _ = sim.n1.command("takeover")
    assert sim.n1.fsm.command_result("takeover") is None
    verdict, _ = run_until_done(sim, sim.n1, "takeover")
    assert verdict is True and sim.n1.fsm.role == "active"
    assert sim.n1.fsm.command_result("status") is None  # not a command that waits


def test_standby_is_over_but_not_ok_when_the_stop_fails_or_the_peer_cannot_start():
    sim = settle(Sim(on_stop_failure="block"))
    sim.n1.stop_ok = False
    ok, _ = sim.n1.command("standby")
    verdict, _ = run_until_done(sim, sim.n1, "standby")
    assert verdict is False and sim.n1.fsm.role == "stop-failed"

    sim = settle(Sim())
    sim.n2.start_ok = False
    ok, _ = sim.n1.command("standby")
    verdict, _ = run_until_done(sim, sim.n1, "standby")
    # node1 stopped and the chain failed on node2 (which marks itself failed): over, not ok
    assert verdict is False and sim.n1.fsm.role == "standby"


def test_takeover_is_over_but_not_ok_when_the_chain_fails_here():
    sim = settle(Sim())
    ok, _ = sim.n1.command("standby")
    assert run_until_done(sim, sim.n1, "standby")[0] is True
    sim.n1.start_ok = False
    ok, _ = sim.n1.command("takeover")
    verdict, _ = run_until_done(sim, sim.n1, "takeover")
    assert verdict is False and sim.n1.fsm.failed


def test_fsm_config_from_the_cluster_config():
    from hasync import model

    link = model.Link("hb", "udp-unicast", port=694)
    cluster = model.Cluster(
        path="t.toml", cluster=model.ClusterInfo(name="t", profile="lab", preferred_node="node2"),
        nodes=(model.Node("node1", "10.0.0.1"), model.Node("node2", "10.0.0.2")),
        heartbeat=model.Heartbeat(links=(link,), ping=("10.0.0.254",)), sync=model.Sync(), storage=model.Storage(), nfs=model.Nfs(),
        resources=(model.Resource("vip", "ocf", "heartbeat:IPaddr2", monitor_interval=5.0, max_restarts=1), model.Resource("svc", "lsb", "nfs")),
        fencing=model.Fencing(mode="optional", command=("fence_x",)),
    )
    c = fsm_config(cluster, "node1")
    assert (c.local, c.peer, c.order, c.links, c.resources) == ("node1", "node2", ("node2", "node1"), ("hb",), ("vip", "svc"))
    assert c.fencing_mode == "optional" and c.fence_configured and c.ping_configured
    assert c.monitors == (("vip", Monitor(5.0, 1)),)
    assert c.validate() == []


def test_clean_shutdown_hands_over_without_fencing():
    sim = settle(Sim())
    sim.n1.handle(sim.n1.fsm.begin_leave(sim.now))
    sim.run(0.2)
    assert sim.n1.fsm.can_exit
    sim.n1.alive = False
    sim.run(0.3)
    assert sim.n2.fsm.role == "active"
    assert "fence" not in [j.kind for j in sim.n2.jobs]


@pytest.mark.parametrize("link_lost", LINKS)
def test_any_single_link_alone_keeps_the_peer_alive(link_lost):
    sim = settle(Sim())
    for link in LINKS:
        if link != link_lost:
            sim.cut_link(link)
    sim.run(1.0)
    assert sim.n2.jobs == [] and sim.n2.fsm.peer.state == "up"


def test_restarted_daemon_adopts_a_chain_that_already_runs_here():
    sim = settle(Sim())
    sim.n1.running_at_start = RES
    sim.n1.restart()  # daemon restart while the chain runs: no move, no fence
    sim.run(1.0)
    assert sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    assert sim.n1.kinds("adopt")
    assert not [j for j in sim.n1.jobs + sim.n2.jobs if j.kind in ("start", "stop", "fence")]


def test_partly_running_chain_at_start_is_stopped_not_completed_by_a_lone_node():
    """(Was: completed. Issue 12 item 2: a partial chain found at start-up is stopped; the
    usual rules then start it -- here after initdead, fence first, as any takeover.)"""
    sim = Sim(start2_after=None)
    sim.n1.running_at_start = ("fs",)
    sim.n1.restart()
    sim.run(0.1)
    assert [j.kind for j in sim.n1.jobs] == ["stop"]
    sim.run(1.0)
    assert [j.kind for j in sim.n1.jobs] == ["stop", "fence", "start"] and sim.n1.fsm.role == "active"


def test_takeover_trusts_known_stopped_resources_after_the_start_up_probe():
    sim = settle(Sim())
    sim.n1.alive = False
    sim.run(0.5)
    start = [j for j in sim.n2.jobs if j.kind == "start"][0]
    assert start.trusted_stopped


def test_peer_probing_at_start_up_holds_back_the_other_node():
    sim = Sim()
    sim.n1.job_time = 0.3  # a slow start-up probe on the preferred node
    sim.run(0.2)
    assert sim.n2.fsm.role == "standby" and sim.n2.jobs == []
    sim.run(1.0)
    assert sim.n1.fsm.role == "active" and sim.both_held == 0


def test_next_deadline_never_in_the_past_while_idle_or_busy():
    sim = settle(Sim(monitors=(("vip", Monitor(0.1, 2)),)))
    ok, _ = sim.n1.command("standby")
    sim.run(0.5)
    assert sim.n1.fsm.role == "standby"
    for n in (sim.n1, sim.n2):
        assert n.fsm.next_deadline(sim.now) > sim.now
    # a long job in flight: no stale deadline either
    sim.n2.job_time = 5
    sim.n2.fsm.monitors  # noqa: B018
    sim.run(0.3)
    assert sim.n2.fsm.next_deadline(sim.now) > sim.now


def test_on_repeat_fast_path_counts_and_refuses_when_state_is_unsettled():
    sim = settle(Sim())
    fsm = sim.n2.fsm
    last = fsm.guard.last_seq[("node1", "hb")]
    before = fsm.links["hb"].received
    assert fsm.on_repeat(sim.now, "hb", last + 3) == []
    assert fsm.links["hb"].received == before + 1 and fsm.links["hb"].missed >= 2
    assert fsm.on_repeat(sim.now, "hb", last + 3) == []  # replay
    assert fsm.links["hb"].replay == 1
    sim.n1.alive = False
    sim.run(0.5)
    assert fsm.on_repeat(sim.now, "hb", last + 100) is None  # peer dead: the full path decides


def test_dead_peer_clears_link_warnings():
    sim = settle(Sim())
    sim.cut_link("hb")
    sim.run(0.5)
    assert any("hb" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])
    sim.n1.alive = False
    sim.run(0.5)
    warns = sim.n2.fsm.snapshot(sim.now)["warnings"]
    assert not any("link" in w for w in warns) and any("dead" in w for w in warns)


def test_dead_peer_returning_with_a_lower_generation_is_refused_until_the_operator_forgets_it():
    """(Was: accepted. Issue 12 item 1: a lower generation is never accepted again; the
    operator says when the peer was reinstalled.)"""
    sim = settle(Sim(fencing_mode="off", fence_configured=False))
    sim.n1.alive = False
    sim.run(0.5)
    assert sim.n2.fsm.role == "active"
    sim.n1.gen = 3  # lost its state and its clock went back
    sim.n1.restart()  # restart() adds one: generation 4 < 10
    sim.run(0.5)
    assert sim.n2.fsm.peer.state == "dead" and sim.n2.fsm.links["hb"].old_generation > 0
    warn = [w for w in sim.n2.fsm.snapshot(sim.now)["warnings"] if "lower than 10" in w]
    assert warn and "hasync failover forget-peer node1" in warn[0]
    assert [e.level for e in sim.n2.kinds("old-generation")] == ["error"]  # loud, once
    sim.n2.handle(sim.n2.fsm.forget_peer(sim.now))
    assert sim.n2.disk.peer_generation == 0
    sim.run(0.5)
    assert sim.n2.fsm.peer.state == "up" and sim.n2.fsm.peer.generation == 4
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"


def test_takeover_does_not_start_on_a_view_of_the_peer_older_than_the_request():
    """The long fsm run's seed 2863881429, on the fake clock directly: the operator puts
    node1 in standby (node2 is asked to start) and at once runs `takeover` on node1, while
    node2's packets saying it is starting have not arrived yet. node1's last view says
    "node2 is standby, holds nothing": starting by preference on it would run the chain on
    both nodes. node1 must wait for node2's answer to its request."""
    sim = settle(Sim())
    ok, _ = sim.n1.command("standby")
    assert ok
    sim.cut |= {(link, "node1") for link in LINKS}  # node2's packets are late from here on
    while sim.n2.fsm.role not in ("starting", "active"):  # node1 stops, says so; node2 starts
        sim.step()
    assert sim.n1.fsm.role == "standby"
    assert sim.n1.fsm.peer.role == "standby" and not sim.n1.fsm.peer.holds  # the stale view
    ok, _ = sim.n1.command("takeover")
    assert ok
    t0 = sim.now
    while sim.now - t0 < 0.1:  # under deadtime: node2 is late, not dead
        sim.step()
        assert not sim.n1.holds, f"node1 started on a stale view: {sim.n1.events[-3:]}"
    sim.heal()
    verdict, _ = run_until_done(sim, sim.n1, "takeover")
    assert verdict is True and sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
    assert sim.both_held == 0


# The campaign's operator-unanswered audit (issue 14): an accepted `hasync takeover` must
# finish. Each of these left it waiting for ever (the CLI until --wait ran out).


def test_takeover_given_before_the_peer_is_heard_asks_it_once_it_is_up():
    """fsm seed 5466: the daemon restarted and the operator ran takeover before the first
    packet from the active peer: nothing could be asked then, and nothing was later."""
    sim = settle(Sim())
    sim.n2.restart()
    ok, msg, acts = sim.n2.fsm.command(sim.now, "takeover")
    assert ok and sim.n2.fsm.peer.state not in ("up", "unverified")  # not heard yet
    sim.n2.handle(acts)
    verdict, _ = run_until_done(sim, sim.n2, "takeover")
    assert verdict is True and sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"
    assert sim.both_held == 0


def test_takeover_asked_again_of_a_peer_whose_daemon_restarted_before_it_released():
    """fsm seed 5942: the peer acknowledged the takeover's request, then its daemon
    restarted (a stop that failed, a fence-self) and, having forgotten it, kept or took
    the chain: the request is made again."""
    sim = settle(Sim())
    ok, _ = sim.n2.command("takeover")
    sim.n1.job_time = 5.0  # its stop hangs ...
    while sim.n2.fsm.request:  # (until node2 has node1's acknowledgement)
        sim.step()
    assert sim.n1.fsm.standby_req and sim.n1.fsm.role == "stopping"
    sim.n1.job_time = 0.03
    sim.n1.running_at_start = RES  # ... its daemon restarts and adopts what runs
    sim.n1.restart()
    verdict, _ = run_until_done(sim, sim.n2, "takeover", limit=3.0)
    assert verdict is True and sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"
    assert sim.both_held == 0


def test_a_takeover_while_the_peer_looked_dead_is_not_undone_by_auto_failback():
    """fsm seed 6061: the takeover finished, and in the same instant auto_failback handed
    the chain back to the preferred peer: the operator's takeover never said done."""
    sim = settle(Sim(auto_failback=True, fence_retry=0.1))
    sim.n2.fence_ok = False
    sim.n1.alive = False
    sim.run(0.3)  # node1 declared dead; its fence fails: no takeover yet
    assert sim.n2.fsm.peer.state == "dead" and sim.n2.fsm.role in ("standby", "acquiring") and not sim.n2.fsm.owned
    ok, _ = sim.n2.command("takeover")
    sim.n2.fence_ok = True
    verdict, _ = run_until_done(sim, sim.n2, "takeover")
    assert verdict is True and sim.n2.fsm.role == "active"
    sim.n1.restart()  # the preferred node comes back: it stands by, as when asked at the time
    sim.run(1.0)
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby" and not sim.n2.kinds("failback")
    assert sim.both_held == 0
