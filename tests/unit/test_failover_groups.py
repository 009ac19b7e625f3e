"""Several resource groups (issue 17) on the fake clock: two nodes, each running the
real ``GroupMembership`` (one ``Membership`` per group, per-peer liveness and fencing),
wired through real format 3 frames (encode, then decode), one job queue per group.

Ground truth (``SimNode.running``) is what the jobs started and stopped; the tests check
it, never only what the FSMs believe.
"""

from __future__ import annotations

from hasync.failover import packets
from hasync.failover.membership import Event, FsmConfig, Job, JobResult
from hasync.failover.membership_groups import GroupMembership, groups_digest
from hasync.failover.states import JobKind, Role
from tests.unit.fsm_sim import FakeNode, TwoNodeSim

KEY = b"k" * 32
LINKS = ("hb", "public")
GROUPS = {"g1": ("fs1", "vip1"), "g2": ("fs2", "vip2")}
PREFERRED = {"g1": "node1", "g2": "node2"}


def cfgs(local: str, *, failback: dict | None = None, **kw) -> tuple[tuple[str, FsmConfig], ...]:
    out = []
    for gid, res in GROUPS.items():
        pref = PREFERRED[gid]
        base = dict(cluster="t", local=local, peer="node2" if local == "node1" else "node1",
                    order=(pref, "node2" if pref == "node1" else "node1"), links=LINKS, resources=res,
                    keepalive=0.05, warntime=0.12, deadtime=0.2, initdead=0.5, fencing_mode="required",
                    fence_configured=True, auto_failback=(failback or {}).get(gid, False), fence_first="node1")
        base.update(kw)
        out.append((gid, FsmConfig(**base)))
    return tuple(out)


class SimNode(FakeNode):
    def __init__(self, sim: Sim, name: str, gen: int, **kw):
        self.sim, self.name, self.gen, self.kw = sim, name, gen, kw
        self.alive = True
        self.running: set[str] = set()  # ground truth: the resources that run here
        self.events: list[Event] = []
        self.jobs: list[Job] = []
        self.stop_ok = {gid: True for gid in GROUPS}
        self.fence_ok = True
        self.job_time = 0.03
        self.job_times: dict[str, float] = {}  # per group, when it differs
        self.disk = None
        self.boot()

    def boot(self) -> None:
        self.fsm = GroupMembership(cfgs(self.name, **self.kw), self.sim.now, generation=self.gen, persisted=self.disk)
        self.seq = dict.fromkeys(LINKS, 0)
        self.next_send = self.sim.now
        self.send_now = False
        self.queues: dict[str, list[tuple[float, Job]]] = {}  # per group: one job at a time
        self.handle(self.fsm.begin(self.sim.now))
        self.jobs = []

    def queue(self, job: Job) -> None:
        assert job.group in GROUPS, job
        q = self.queues.setdefault(job.group, [])
        assert not q, f"{self.name}: a second job in group {job.group}'s queue: {q} + {job}"
        self.jobs.append(job)
        q.append((self.sim.now + self.job_times.get(job.group, self.job_time), job))

    def finish_jobs(self) -> None:
        now = self.sim.now
        for q in list(self.queues.values()):
            if q and q[0][0] <= now:
                _, job = q.pop(0)
                self.handle(self.fsm.on_job_done(now, self.result(job)))

    def result(self, job: Job) -> JobResult:
        res = GROUPS[job.group]
        if job.kind == JobKind.PROBE:
            return JobResult(job.id, True, "probed", owned=tuple(r for r in res if r in self.running))
        if job.kind in (JobKind.START, JobKind.RESTART):
            self.running |= set(res)
            return JobResult(job.id, True, "started", owned=res)
        if job.kind == JobKind.STOP:
            if self.stop_ok[job.group]:
                self.running -= set(res)
                return JobResult(job.id, True, "stopped", owned=())
            return JobResult(job.id, False, "stop_failed", res[0], owned=(res[0],))
        if job.kind == JobKind.FENCE:
            if self.fence_ok:
                other = self.sim.other(self)
                other.alive = False
                other.running = set()  # powered off
                return JobResult(job.id, True, "fenced")
            return JobResult(job.id, False, "", "fence_x exited 1")
        if job.kind == JobKind.FENCE_SELF:
            self.alive = False
            self.running = set()
            return JobResult(job.id, True)
        if job.kind == JobKind.MONITOR:
            return JobResult(job.id, True, "monitor_ok")
        raise AssertionError(job)

    def group_role(self, gid: str) -> Role:
        return self.fsm.groups[gid].role

    def job_kinds(self, gid: str | None = None) -> list[str]:
        return [j.kind for j in self.jobs if gid is None or j.group == gid]


class Sim(TwoNodeSim):
    def __init__(self, *, node2=True, **kw):
        self.now = 1000.0
        self.dt = 0.005
        self.n1 = SimNode(self, "node1", 10, **kw)
        self.n2 = SimNode(self, "node2", 20, **kw)
        self.n2.alive = node2
        self.nodes = [self.n1, self.n2]
        self.dual: set[str] = set()  # every group that ever ran on both nodes at once
        self.cut = False

    def after_step(self) -> None:
        for gid, res in GROUPS.items():
            if self.n1.alive and self.n2.alive and set(res) & self.n1.running and set(res) & self.n2.running:
                self.dual.add(gid)

    def send(self, n: SimNode) -> None:
        dst = self.other(n)
        fields = n.fsm.packet_fields()
        for link in LINKS:
            n.seq[link] += 1
            frame = packets.encode(packets.Packet(link=link, seq=n.seq[link], **fields), KEY)
            if not dst.alive or self.cut:
                continue
            (pkt,) = packets.decode_datagram(frame, KEY)
            self.deliver(dst, link, pkt)

    def deliver(self, dst: SimNode, link: str, pkt: packets.Packet) -> None:
        dst.handle(dst.fsm.on_packet(self.now, link, pkt))

    def crash(self, n: SimNode) -> None:
        n.alive = False
        n.running = set()  # power loss

    def power_on(self, n: SimNode) -> None:
        n.gen += 1
        n.alive = True
        n.boot()


def settled() -> Sim:
    sim = Sim()
    sim.run(1.0)
    return sim


def where(sim: Sim, gid: str) -> list[str]:
    return [n.name for n in sim.nodes if n.alive and set(GROUPS[gid]) <= n.running]


# ------------------------------------------------------------------ both up


def test_each_group_starts_on_its_preferred_node_without_fencing():
    sim = settled()
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node2"]
    assert sim.n1.job_kinds() == ["start"] and sim.n2.job_kinds() == ["start"]
    assert sim.n1.group_role("g1") == Role.ACTIVE and sim.n1.group_role("g2") == Role.STANDBY
    assert sim.n2.group_role("g2") == Role.ACTIVE and sim.n2.group_role("g1") == Role.STANDBY
    assert not sim.n1.kinds("fence") and not sim.n2.kinds("fence")
    assert sim.dual == set()
    # the node's summary: each node is active (it holds a group), and status shows both
    assert sim.n1.fsm.role == Role.ACTIVE and sim.n1.fsm.owned == ["fs1", "vip1"]
    snap = sim.n1.fsm.snapshot(sim.now)
    assert [(g["id"], g["owner"]) for g in snap["groups"]] == [("g1", "node1"), ("g2", "node2")]


def test_a_lone_node_fences_once_then_starts_both_groups_in_order():
    sim = Sim(node2=False)
    sim.run(1.5)
    assert sim.n1.job_kinds().count("fence") == 1
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node1"]
    starts = [j.group for j in sim.n1.jobs if j.kind == JobKind.START]
    assert starts == ["g1", "g2"]


# ------------------------------------------------------------------ a crash


def _crash_and_check(victim_name: str) -> Sim:
    sim = settled()
    victim = sim.n1 if victim_name == "node1" else sim.n2
    survivor = sim.other(victim)
    own = "g1" if survivor is sim.n1 else "g2"
    theirs = "g2" if own == "g1" else "g1"
    survivor.jobs = []
    sim.crash(victim)
    owned_before = set(GROUPS[own])
    for _ in range(300):  # 1.5 s: the survivor's own group never stops, not for one step
        sim.step()
        assert owned_before <= survivor.running, f"{own} stopped on the survivor"
    assert survivor.job_kinds().count("fence") == 1, survivor.jobs  # the peer fenced ONCE
    assert survivor.job_kinds(own) == [], "nothing ran in the survivor's own group"
    assert survivor.job_kinds(theirs) == ["fence", "start"]
    assert where(sim, theirs) == [survivor.name] and where(sim, own) == [survivor.name]
    assert len(survivor.kinds("detect")) == 1  # the death is reported once, not once per group
    return sim


def test_crash_of_node2_moves_only_its_group():
    _crash_and_check("node2")


def test_crash_of_node1_moves_only_its_group():
    _crash_and_check("node1")


def test_both_groups_on_a_node_that_crashes_are_fenced_for_once_and_started_in_order():
    sim = settled()
    sim.n1.fsm.command(sim.now, "takeover")  # node1 takes g2 as well
    sim.run(1.0)
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node1"]
    sim.n2.jobs = []
    sim.crash(sim.n1)
    sim.run(1.5)
    assert sim.n2.job_kinds().count("fence") == 1
    assert [j.group for j in sim.n2.jobs if j.kind == JobKind.START] == ["g1", "g2"]
    assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"]


# ------------------------------------------------------------------ the peer returns


def test_return_without_auto_failback_leaves_the_group_on_the_survivor():
    sim = _crash_and_check("node2")
    sim.power_on(sim.n2)
    sim.run(1.5)
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node1"]
    assert sim.n2.fsm.role == Role.STANDBY and sim.dual == set()


def test_return_with_auto_failback_hands_back_only_that_group():
    sim = Sim(failback={"g2": True})
    sim.run(1.0)
    sim.crash(sim.n2)
    sim.run(1.5)
    assert where(sim, "g2") == ["node1"]
    sim.n1.jobs = []
    sim.power_on(sim.n2)
    sim.run(1.5)
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node2"]
    assert sim.n1.job_kinds("g1") == [] and sim.n1.job_kinds("g2") == ["stop"]
    assert sim.dual == set()


def test_auto_failback_of_one_group_does_not_move_the_other():
    sim = Sim(failback={"g1": True})  # g1 fails back to node1; g2 (no failback) stays where it is
    sim.run(1.0)
    sim.crash(sim.n1)
    sim.run(1.5)
    assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"]
    sim.power_on(sim.n1)
    sim.run(1.5)
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node2"]
    assert sim.dual == set()


# ------------------------------------------------------------------ operator


def test_migrate_one_group_while_the_other_keeps_running():
    sim = settled()
    sim.n1.jobs, sim.n2.jobs = [], []
    ok, msg = sim.n1.command("handover", group="g1")  # migrate g1 --to node2
    assert ok, msg
    for _ in range(200):
        sim.step()
        assert set(GROUPS["g2"]) <= sim.n2.running  # g2 never stops
    assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"]
    assert sim.n1.job_kinds() == ["stop"] and sim.n2.job_kinds() == ["start"]
    assert sim.n1.fsm.command_result("handover", group="g1") is True
    assert sim.dual == set()


def test_migrate_names_an_unknown_group():
    sim = settled()
    ok, msg, _ = sim.n1.fsm.command(sim.now, "handover", group="nope")
    assert not ok and "g1, g2" in msg


def test_standby_hands_over_every_group_the_node_owns_and_takeover_takes_every_group():
    sim = settled()
    ok, _ = sim.n1.command("standby")
    assert ok
    sim.run(1.0)
    assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"]
    assert sim.n1.fsm.command_result("standby") is True
    ok, _ = sim.n1.command("takeover")
    sim.run(1.0)
    assert where(sim, "g1") == ["node1"] and where(sim, "g2") == ["node1"]
    assert sim.dual == set()


# ------------------------------------------------------------------ failures


def test_a_failed_stop_of_either_group_escalates_for_the_whole_node():
    for gid in GROUPS:
        sim = settled()
        sim.n1.fsm.command(sim.now, "takeover")
        sim.run(1.0)
        assert where(sim, "g2") == ["node1"]
        sim.n1.stop_ok[gid] = False
        ok, _ = sim.n1.command("standby")
        sim.run(1.5)
        assert sim.n1.job_kinds().count("fence-self") == 1, (gid, sim.n1.jobs)  # the node reboots, once
        # the peer saw a stop-failed group: it fences node1 before it starts anything
        assert "fence" in sim.n2.job_kinds(), (gid, sim.n2.jobs)
        assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"], gid


def test_a_peer_stop_failed_in_one_group_needs_a_fence_for_every_group_even_with_fencing_off():
    # rule 5 for the node: node2 holds g1 (active) and is stop-failed in g2 (block); when it
    # dies, node1 must not start g1 without a fence either (node2 may not be dead at all)
    sim = Sim(fencing_mode="off", fence_configured=False, on_stop_failure="block")
    sim.run(1.0)
    ok, _ = sim.n2.command("takeover")
    sim.run(1.0)
    assert where(sim, "g1") == ["node2"] and where(sim, "g2") == ["node2"]
    sim.n2.stop_ok["g2"] = False
    ok, _ = sim.n2.command("handover", group="g2")
    sim.run(1.0)
    assert sim.n2.group_role("g2") == Role.STOP_FAILED and sim.n2.group_role("g1") == Role.ACTIVE
    sim.n1.jobs = []
    sim.crash(sim.n2)
    sim.run(1.5)
    # no fence command: node1 waits for node2, it starts neither group
    assert sim.n1.job_kinds() == [], sim.n1.jobs
    assert {m.gate for m in sim.n1.fsm.groups.values()} == {"wait-peer"}


# ------------------------------------------------------------------ wire and settings


def test_the_packet_carries_one_record_per_group_in_format_3():
    sim = settled()
    f = sim.n1.fsm.packet_fields()
    assert f["version"] == 3
    assert [(g.index, g.role, g.owned) for g in f["groups"]] == [(0, Role.ACTIVE, ("fs1", "vip1")), (1, Role.STANDBY, ())]
    frame = packets.encode(packets.Packet(link="hb", seq=1, **f), KEY)
    (back,) = packets.decode_datagram(frame, KEY)
    assert back.groups == f["groups"] and back.version == 3


def test_the_digest_covers_the_groups():
    a = groups_digest(cfgs("node1"))
    assert a == groups_digest(cfgs("node2"))  # both sides compute the same
    assert a != groups_digest(cfgs("node1", failback={"g1": True}))
    swapped = tuple(reversed(cfgs("node1")))
    assert a != groups_digest(swapped)


def test_leaving_is_sent_only_once_every_group_released_everything():
    sim = Sim()
    sim.n1.fsm.command(sim.now, "takeover")
    sim.run(1.0)
    sim.n1.fsm.command(sim.now, "online")
    sim.n2.jobs = []
    sim.n1.job_times["g2"] = 0.4  # g2's stop is slow: g1 is released long before
    sim.n1.handle(sim.n1.fsm.begin_leave(sim.now))
    for _ in range(100):
        sim.step()
        # one view of the peer: node2's groups never disagree on whether node1 left
        assert len({m.peer.state for m in sim.n2.fsm.groups.values()}) == 1
    assert sim.n1.fsm.can_exit
    assert sim.n1.fsm.packet_fields()["flags"] & packets.F_LEAVING
    sim.crash(sim.n1)
    sim.run(0.5)
    assert "fence" not in sim.n2.job_kinds()  # it left cleanly: no fence
    assert where(sim, "g1") == ["node2"]


def test_group_configs_from_a_config_with_two_groups():
    from hasync import config
    from hasync.failover.membership_groups import group_configs
    from tests.unit.test_config_groups import HEAD, A, B

    c = config.loads(HEAD + A + B, "c.toml")
    (ga, ca), (gb, cb) = group_configs(c, "beta")
    assert (ga, ca.order, ca.auto_failback, ca.resources) == ("a", ("alpha", "beta"), False, ("a-drbd", "a-fs", "a-ip"))
    assert (gb, cb.order, cb.auto_failback, cb.resources) == ("b", ("beta", "alpha"), True, ("b-drbd", "b-fs", "b-ip"))
    # one node fences first at start-up for the whole pair: the cluster's preferred node
    assert ca.fence_first == cb.fence_first == "alpha"
    assert (ca.local, ca.peer, ca.deadtime) == (cb.local, cb.peer, cb.deadtime)


def test_check_bounds_the_format_3_packet_of_a_two_group_config():
    """The config check's worst case is the frame the daemon really sends (every resource
    of every group owned, in its group's record): equal to an encoded one."""
    from hasync import config
    from hasync.config.limits import worst_case_payload
    from hasync.failover.membership_groups import group_configs
    from tests.unit.test_config_groups import HEAD, A, B

    c = config.loads(HEAD + A + B, "c.toml")
    g = GroupMembership(group_configs(c, "alpha"), 0.0, generation=1)
    for m in g.groups.values():
        m.owned = list(m.cfg.resources)
    f = g.packet_fields()
    link = max((lk.name for lk in c.heartbeat.links), key=len)
    frame = packets.encode(packets.Packet(link=link, seq=1, **f), KEY)
    assert len(frame) - 5 - packets.MAC_LEN == worst_case_payload(c)
