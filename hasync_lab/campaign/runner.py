"""A campaign run of the fsm tier: one seed (a scenario and N faults, one after
another, each healed and audited to a clean state), or many seeds."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from .audits import Hit
from .faults import RACE, Fault, draw_faults
from .inject import heal, start_fault
from .mutants import Mutant
from .scenario import Scenario, draw_scenario
from .sim import T0, Sim


@dataclass
class SeedResult:
    seed: int
    scenario: Scenario
    faults: list[Fault]
    faults_run: int = 0
    violations: list[Hit] = field(default_factory=list)
    limits: list[Hit] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)  # fault start -> clean audit
    after_heal_s: list[float] = field(default_factory=list)  # heal -> clean audit
    by_fault: Counter = field(default_factory=Counter)
    sim_s: float = 0.0
    timeline: list = field(default_factory=list)
    mutant: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def run_seed(seed: int, n_faults: int, *, mutant: Mutant | None = None, keep_going: bool = False,
             scenario: Scenario | None = None, faults: list[Fault] | None = None,
             kinds: tuple[str, ...] | None = None, groups: int = 1) -> SeedResult:
    sc = scenario or draw_scenario(seed, groups)
    faults = faults if faults is not None else draw_faults(seed, sc, n_faults, kinds)
    kw = {"fsm_cls": mutant.fsm, "classify": mutant.classify} if mutant else {}
    sim = Sim(sc, keep_going=keep_going, **kw)
    res = SeedResult(seed, sc, faults, mutant=mutant.name if mutant else None)
    sim.power_up()
    await_clean(sim, sc.start_gap_s, T0, None, res)
    for i, f in enumerate(faults):
        if sim.halted:
            break
        sim.fault_index = i
        sim.run_until(sim.now + f.gap_s)
        if sim.halted:
            break
        t0 = sim.now
        start_fault(sim, f)
        res.faults_run += 1
        res.by_fault[f.kind] += 1
        if f.race:
            res.by_fault[RACE] += 1
        sim.run_until(t0 + f.duration_s)
        if sim.halted:
            break
        heal(sim)
        await_clean(sim, 0.0, sim.now, t0, res)
    if not sim.halted:
        sim.run_until(sim.now + 2 * sc.deadtime)  # quiescence: the audits keep watching
    res.violations, res.limits = sim.violations, sim.limits
    res.sim_s = sim.now - T0
    res.timeline = sim.timeline
    return res


def await_clean(sim: Sim, extra: float, healed_at: float, started_at: float | None, res: SeedResult) -> None:
    """Audit 3: clean within the bound after the heal, or the liveness audit fires; a
    named limit that needs an operator gets one (as a person would act), then a new bound.
    started_at: when the fault began (None: the cluster's start-up, not a recovery)."""
    bound = sim.sc.liveness_bound_s
    if sim.run_until(sim.now + extra + bound, until=sim.audit.clean):
        # an operator command still under way: the person waits for its answer (up to the
        # bound after it was given) before doing anything else
        pending = [c for n in sim.node_list if n.daemon is not None for c in n.daemon.accepted]
        if pending:
            sim.run_until(max(sim.now, min(c[2] for c in pending) + bound) + 1e-3, until=lambda: not any(
                n.daemon is not None and n.daemon.accepted for n in sim.node_list))
        sim.audit.operator_unanswered()
        if started_at is not None:
            res.recovery_s.append(sim.now - started_at)
            res.after_heal_s.append(sim.now - healed_at)
        sim.audit.forget_starts()
        return
    if sim.halted:
        return
    # A person acts on each named limit in turn (one fault can leave two: a late stray
    # stopped by hand, then the node whose stop of it was blocked); each once, then a new
    # bound. A limit already acted on that is still there, or no limit at all, is a violation.
    acted: list[str] = []
    limit = sim.audit.liveness_failed(healed_at)
    while limit is not None and limit not in acted and not sim.halted:
        acted.append(limit)
        _operator(sim, limit)
        if sim.run_until(sim.now + bound, until=sim.audit.clean):
            sim.audit.forget_starts()
            return
        if sim.halted:
            return
        limit = sim.audit.liveness_failed(healed_at) if len(acted) < 3 else acted[-1]
    if limit is not None and not sim.halted:
        sim.audit.fire("liveness", {"healed_at": round(healed_at, 4), "after_operator": acted[-1] if len(acted) == 1 else acted})


def _operator(sim: Sim, limit: str) -> None:
    if limit == "late-stray":
        for n in sim.node_list:
            for rid in sorted(n.late_strays):
                sim.trace(n.name, "operator", f"operator stops {rid}, started behind hasync's back")
                n.drop_running(rid)
    elif limit == "stop-failed-block":
        for n in sim.node_list:
            d = n.daemon
            if d is not None and d.fsm is not None and d.fsm.role == "stop-failed":
                sim.trace(n.name, "operator", "operator reboots the node that could not stop its resources")
                n.reboot("operator")
    elif limit == "no-eligible-node":
        n = sim.nodes[sim.sc.order[0]]
        if n.daemon is not None:
            ok, msg = n.daemon.command(sim.now, "takeover")
            sim.trace(n.name, "operator", f"operator: hasync takeover: {msg}")


# ------------------------------------------------------------------ many seeds


@dataclass
class CampaignResult:
    first_seed: int
    n_faults: int
    seeds: list[SeedResult] = field(default_factory=list)  # only the ones worth keeping (violations)
    count: int = 0
    faults: int = 0
    violating: list[int] = field(default_factory=list)
    by_fault: Counter = field(default_factory=Counter)
    first_audit: Counter = field(default_factory=Counter)  # per violating seed: the first violation's audit
    first_fault_kind: Counter = field(default_factory=Counter)  # ... and the kind of fault it came under
    limits: Counter = field(default_factory=Counter)
    recovery: list[float] = field(default_factory=list)
    after_heal: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    sim_s: float = 0.0

    def add(self, r: SeedResult) -> None:
        self.count += 1
        self.faults += r.faults_run
        self.by_fault.update(r.by_fault)
        self.recovery.extend(r.recovery_s)
        self.after_heal.extend(r.after_heal_s)
        self.sim_s += r.sim_s
        for h in r.limits:
            self.limits[h.limit] += 1
        if r.violations:
            self.violating.append(r.seed)
            v = r.violations[0]
            self.first_audit[v.audit] += 1
            self.first_fault_kind[r.faults[v.fault_index].kind if v.fault_index >= 0 else "start-up"] += 1
            self.seeds.append(r)


def run_many(first_seed: int, count: int, n_faults: int, *, mutant: Mutant | None = None, keep_going: bool = False,
             kinds: tuple[str, ...] | None = None, on_seed=None, groups: int = 1) -> CampaignResult:
    """Seeds first_seed .. first_seed+count-1; stops after the first violating seed
    unless keep_going (each seed still stops at its first violation)."""
    out = CampaignResult(first_seed, n_faults)
    t0 = time.perf_counter()
    for seed in range(first_seed, first_seed + count):
        r = run_seed(seed, n_faults, mutant=mutant, kinds=kinds, groups=groups)
        if not r.violations:
            r.timeline = []  # nothing to show: keep memory flat over 100,000 seeds
        out.add(r)
        if on_seed is not None:
            on_seed(r)
        if r.violations and not keep_going:
            break
    out.wall_s = time.perf_counter() - t0
    return out


def recovery_stats(values: list[float]) -> dict:
    if not values:
        return {"median": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 4), "max": round(max(values), 4), "n": len(values)}
