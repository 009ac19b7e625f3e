"""Every audit, run once against a violation made on purpose: it must fire.

An audit that was never seen to fire proves nothing (Pacemaker's CTS resource audits
silently never ran). Each case below builds a small settled cluster on the real FSM,
breaks it in the one way its audit looks for, and checks the audit fired. A last case
checks the named-limits classifier in both directions: a lying fence is filed as a
limit, a forced double start is not. The campaign refuses to report success unless
every case fired.
"""

from __future__ import annotations

from dataclasses import replace

from hasync.failover.states import JobKind

from . import mutants
from .audits import AUDITS
from .mutants import Boom
from .runner import SeedResult, await_clean
from .scenario import GroupSpec, ResourceSpec, Scenario
from .sim import Sim
from .worker import FAULT, HASYNC


def _scenario(**kw) -> Scenario:
    res = tuple(ResourceSpec(f"r{i}", t, 0.2, 0.2, 0.05, 1.0, 1.0, 0.5) for i, t in enumerate(("ocf", "systemd", "lsb")))
    base = Scenario(seed=0, order=("node1", "node2"), links=("hb", "public"), resources=res, keepalive=0.5, warntime=2.0,
                    deadtime=3.0, initdead=6.0, auto_failback=False, fencing_mode="required", fence_configured=True,
                    on_stop_failure="fence-self", ping_configured=False, latency_s=0.0005, boot_s=3.0, daemon_delay_s=0.5,
                    restart_delay_s=1.0, stop_timeout_s=10.0, fence_s=1.0, fence_timeout_s=10.0, ping_s=0.3, start_gap_s=0.0)
    return replace(base, **kw)


def _two_groups(**kw) -> Scenario:
    """Two groups (issue 17): g1 = r0, r1 preferred on node1; g2 = r2 preferred on node2."""
    return _scenario(groups=(GroupSpec("g1", ("r0", "r1"), "node1", False), GroupSpec("g2", ("r2",), "node2", False)), **kw)


def _settled(sc: Scenario, **kw) -> tuple[Sim, object, object]:
    sim = Sim(sc, keep_going=True, **kw)
    sim.power_up()
    if not sim.run_until(sim.now + sc.liveness_bound_s, until=sim.audit.clean):
        raise AssertionError("self-test cluster did not settle")
    act = next(n for n in sim.node_list if n.running)
    return sim, act, sim.peer_of(act)


def _cut_all(sim: Sim) -> None:
    for (s, d, lk), ch in sim.net.channels.items():
        ch.cut = True
        sim.net.touch(s, d, lk)
        sim.impaired(s, d)


def case_dual_run() -> bool:
    sim, _, stb = _settled(_scenario())
    for rid in sim.sc.ids:  # the simulator starts the chain on the standby node behind hasync's back
        stb.set_running(rid, HASYNC)
    return any(h.audit == "dual-run" and h.limit is None for h in sim.audit.hits)


def case_stray() -> bool:
    sim, _, stb = _settled(_scenario())
    stb.kill_daemon(restart_after=None)  # no daemon will ever look at it
    stb.set_running(sim.sc.ids[0], FAULT)
    sim.run_until(sim.now + sim.sc.stray_bound_s + 1.0)
    return any(h.audit == "stray" and h.limit is None for h in sim.audit.hits)


def case_unsafe_start() -> bool:
    sim, _, stb = _settled(_scenario())
    stb.fence_behaviour = "lie"  # a fence marked done on a live node
    _cut_all(sim)
    sim.run_until(sim.now + 6 * sim.sc.deadtime)
    return sim.audit.fired("unsafe-start")


def case_tiebreak() -> bool:
    sim, _, stb = _settled(_scenario(ping_configured=True))
    stb.set_ping(False)
    stb.ping_lies = True  # the ping job says yes although the node is isolated
    _cut_all(sim)
    sim.run_until(sim.now + 6 * sim.sc.deadtime)
    return sim.audit.fired("tiebreak")


def case_false_dead() -> bool:
    sim, _, stb = _settled(_scenario())
    sim.run_until(sim.now + 2 * sim.sc.deadtime)  # links clean for a while
    stb.deaf = True  # it stops hearing its peer though nothing is wrong with the links
    sim.run_until(sim.now + 3 * sim.sc.deadtime)
    return sim.audit.fired("false-dead")


def case_liveness() -> bool:
    sim, act, _ = _settled(_scenario())
    sim.run_until(sim.now + 2 * sim.sc.liveness_bound_s)  # past the daemons' second probe (agent_timeout)
    for rid in sim.sc.ids:  # the chain vanishes from under an unmonitored cluster
        act.drop_running(rid)
    await_clean(sim, 0.0, sim.now, sim.now, SeedResult(0, sim.sc, []))
    return sim.audit.fired("liveness")


def case_dual_run_groups() -> bool:
    sim, _, _ = _settled(_two_groups())
    n1 = sim.nodes["node1"]
    n1.set_running("r2", HASYNC)  # node2's group also runs on node1, behind hasync's back
    return any(h.audit == "dual-run" and h.evidence.get("groups") == ["g2"] and h.limit is None for h in sim.audit.hits)


def case_unsafe_start_groups() -> bool:
    sim, _, _ = _settled(_two_groups())
    for n in sim.node_list:
        n.fence_behaviour = "lie"  # each node marks a fence done on a live peer
    _cut_all(sim)
    sim.run_until(sim.now + 6 * sim.sc.deadtime)
    return any(h.audit == "unsafe-start" and h.evidence.get("group") for h in sim.audit.hits)


def case_liveness_groups() -> bool:
    sim, _, _ = _settled(_two_groups())
    sim.run_until(sim.now + 2 * sim.sc.liveness_bound_s)
    sim.nodes["node2"].drop_running("r2")  # one group vanishes, the other is fine
    await_clean(sim, 0.0, sim.now, sim.now, SeedResult(0, sim.sc, []))
    return sim.audit.fired("liveness")


def case_own_group_stopped() -> bool:
    """node2 loses power; node1 then stops its own group g1 (made on purpose)."""
    sim, _, _ = _settled(_two_groups())
    n1, n2 = sim.nodes["node1"], sim.nodes["node2"]
    n2.power_off("self-test")
    d = n1.daemon
    fsm = d.fsm
    g1 = fsm.groups["g1"]
    d.apply(fsm._gather([("g1", g1._start_job(JobKind.STOP, sim.now, reason="self-test"))], sim.now))
    return sim.audit.fired("own-group-stopped")


def case_operator_unanswered() -> bool:
    """node1 goes standby (node2 starts), and node1's takeover arrives while node2's start
    runs, on an FSM that loses a handover asked for during a start (a mutant): node2 keeps
    the chain, node1's takeover never gets a result."""
    sim = Sim(_scenario(), keep_going=True, fsm_cls=mutants.HandoverLostInStart)
    sim.power_up()
    if not sim.run_until(sim.now + sim.sc.liveness_bound_s, until=sim.audit.clean):
        raise AssertionError("self-test cluster did not settle")
    act = next(n for n in sim.node_list if n.running)
    stb = sim.peer_of(act)
    act.daemon.command(sim.now, "standby")
    sim.run_until(sim.now + sim.sc.liveness_bound_s, until=lambda: stb.daemon.fsm.role == "starting")
    act.daemon.command(sim.now, "takeover")
    sim.run_until(sim.now + 2 * sim.sc.liveness_bound_s)
    await_clean(sim, 0.0, sim.now, sim.now, SeedResult(0, sim.sc, []))
    return sim.audit.fired("operator-unanswered")


def case_fsm_error() -> bool:
    sim = Sim(_scenario(), keep_going=True, fsm_cls=Boom)
    sim.power_up()
    sim.run_until(sim.now + 30.0)
    return sim.audit.fired("fsm-error")


def case_limits() -> bool:
    """The classifier: a lying fence's double start is a named limit, a forced one is not."""
    sim, _, stb = _settled(_scenario())
    stb.fence_behaviour = "lie"
    _cut_all(sim)
    sim.run_until(sim.now + 6 * sim.sc.deadtime)
    lied = [h for h in sim.audit.hits if h.audit in ("unsafe-start", "dual-run")]
    return bool(lied) and all(h.limit == "lying-fence" for h in lied) and case_dual_run()


CASES = {
    "dual-run": case_dual_run,
    "stray": case_stray,
    "unsafe-start": case_unsafe_start,
    "tiebreak": case_tiebreak,
    "false-dead": case_false_dead,
    "liveness": case_liveness,
    "fsm-error": case_fsm_error,
    "limits": case_limits,
    # several resource groups (issue 17): the audits per group, and the survivor's own group
    "dual-run:groups": case_dual_run_groups,
    "unsafe-start:groups": case_unsafe_start_groups,
    "liveness:groups": case_liveness_groups,
    "own-group-stopped": case_own_group_stopped,
    "operator-unanswered": case_operator_unanswered,
}
assert set(AUDITS) <= set(CASES), "every audit needs a self-test"


def run_selftest() -> dict[str, bool]:
    out = {}
    for name, case in CASES.items():
        try:
            out[name] = bool(case())
        except Exception:  # a self-test that cannot even run did not fire
            out[name] = False
    return out
