"""The faults of the fsm tier, drawn from a seeded generator as plain data.

A ``Fault`` is a small script: steps at offsets from its start, on nodes named by role
("A" is the target, "B" the other node, resolved when the fault starts: the active node
then, the standby one, the preferred one ...), then a heal at ``duration_s`` (links
back, SIGCONT, power back, the fault's switches off). Because a fault is data it goes
into the violation's folder as JSON and replays exactly (``--replay``).

Kinds the fsm tier cannot do (they need real processes, clocks or a serial line):
noise on the serial line, wall-clock steps (the FSM runs on the monotonic clock), and
the sync side's faults (ENOSPC, unison killed, ssh dropped, edits on both nodes).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from .scenario import Scenario

# kind -> weight in the draw
KINDS = {
    "power-loss": 8,
    "power-loss-both": 3,
    "sigkill": 7,
    "sigstop": 8,
    "restart-mid-job": 6,
    "daemon-stop": 4,
    "cut-link": 5,
    "cut-all": 7,
    "cut-oneway": 5,
    "link-degrade": 6,
    "replay-after-restart": 5,
    "replay-peer-dead": 5,
    "fence-fail": 4,
    "fence-slow": 4,
    "fence-lie": 3,
    "ping-loss": 5,
    "start-failure": 5,
    "stop-failure": 4,
    "stop-timeout": 5,
    "status-timeout": 4,
    "boot-enabled": 8,
    "config-drift": 3,
    "operator": 4,
    "resource-crash": 3,
}
RACE = "operator-race"  # an operator command racing a fault (counted on its own in by_fault)
PEER_DEATHS = ("power_off", "freeze", "cut_all", "kill")  # ways the peer looks dead


@dataclass
class Fault:
    kind: str
    target: str  # active | standby | preferred | other | node1 | node2
    gap_s: float  # quiet time before it starts
    duration_s: float  # start -> heal
    steps: list = field(default_factory=list)  # [offset_s, op, {args}]
    race: bool = False
    note: str = ""  # what variant was drawn, for people

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Fault:
        return cls(**d)

    def race_with_operator(self, rng: random.Random, at: float, cmds: tuple[str, ...], deadtime: float) -> None:
        """An operator command on either node, *at* s into the fault, racing it; the fault
        then lasts at least *deadtime* (the command has time to act)."""
        self.race = True
        self.steps.append([at, "command", {"who": rng.choice("AB"), "cmd": rng.choice(cmds)}])
        self.duration_s = max(self.duration_s, deadtime)

    def end_after_steps(self, pad_s: float, digits: int) -> None:
        """Steps in time order, and the heal no earlier than *pad_s* after the last one."""
        self.steps.sort(key=lambda s: s[0])
        self.duration_s = round(max([self.duration_s] + [s[0] + pad_s for s in self.steps]), digits)


def draw_faults(seed: int, sc: Scenario, n: int, kinds: tuple[str, ...] | None = None) -> list[Fault]:
    """N faults for seed *seed* (and its scenario); *kinds* narrows the draw."""
    rng = random.Random(f"hasync-campaign:{seed}:faults")
    names = [k for k in KINDS if kinds is None or k in kinds]
    if not any(r.monitor_interval > 0 for r in sc.resources) and "resource-crash" in names and len(names) > 1:
        names.remove("resource-crash")  # nothing would notice: not a fault hasync claims to handle
    weights = [KINDS[k] for k in names]
    out = []
    for _ in range(n):
        kind = rng.choices(names, weights=weights)[0]
        f = _DRAW[kind](rng, sc)
        f.kind = kind
        f.gap_s = round(sc.deadtime * rng.uniform(0.0, 2.0), 4)
        if rng.random() < 0.15:  # an operator command racing it
            at = round(rng.uniform(0.0, max(f.duration_s, sc.deadtime)) * 0.999, 4)
            f.race_with_operator(rng, at, ("standby", "takeover"), sc.deadtime)
        f.end_after_steps(1e-3, 4)
        out.append(f)
    return out


def _u(rng: random.Random, lo: float, hi: float, scale: float = 1.0) -> float:
    return round(rng.uniform(lo, hi) * scale, 4)


def _role(rng: random.Random) -> str:
    return rng.choice(("active", "standby"))


def _peer_death(rng: random.Random, who: str = "B") -> tuple[str, list]:
    how = rng.choice(PEER_DEATHS)
    if how == "cut_all":
        return how, [[0.0, "cut", {"src": None, "links": "all"}]]
    return how, [[0.0, how, {"who": who}]]


def _power_loss(rng, sc):
    return Fault("", _role(rng), 0, _u(rng, 0.3, 4, sc.deadtime), [[0.0, "power_off", {"who": "A"}]])


def _power_loss_both(rng, sc):
    steps = [[0.0, "power_off", {"who": "A"}], [_u(rng, 0, 0.5, sc.deadtime), "power_off", {"who": "B"}]]
    return Fault("", _role(rng), 0, _u(rng, 0.6, 3, sc.deadtime), steps)


def _sigkill(rng, sc):
    return Fault("", _role(rng), 0, 0.0, [[0.0, "kill", {"who": "A"}]])


def _sigstop(rng, sc):
    long = rng.random() < 0.8
    d = _u(rng, 1.2, 4, sc.deadtime) if long else _u(rng, 0.2, 0.9, sc.deadtime)
    return Fault("", _role(rng), 0, d, [[0.0, "freeze", {"who": "A"}]], note="past deadtime" if long else "under deadtime")


def _restart_mid_job(rng, sc):
    how = rng.choice(("kill", "graceful"))
    at = _u(rng, 0, 1, sc.chain_s)
    steps = [[0.0, "command", {"who": "A", "cmd": "standby"}], [at, "restart_busy", {"how": how}]]
    return Fault("", "active", 0, round(at + sc.deadtime + sc.restart_delay_s, 4), steps, note=how)


def _daemon_stop(rng, sc):
    then = rng.choice(("restart", "down", "poweroff"))
    return Fault("", _role(rng), 0, round(_u(rng, 1, 3, sc.deadtime) + sc.stop_timeout_s, 4),
                 [[0.0, "stop_daemon", {"who": "A", "then": then}]], note=then)


def _cut_link(rng, sc):
    link = rng.choice(sc.links)
    return Fault("", _role(rng), 0, _u(rng, 0.5, 4, sc.deadtime), [[0.0, "cut", {"src": None, "links": [link]}]], note=link)


def _cut_all(rng, sc):
    return Fault("", _role(rng), 0, _u(rng, 0.5, 4, sc.deadtime), [[0.0, "cut", {"src": None, "links": "all"}]])


def _cut_oneway(rng, sc):
    links = "all" if rng.random() < 0.7 else [rng.choice(sc.links)]
    return Fault("", _role(rng), 0, _u(rng, 0.5, 4, sc.deadtime), [[0.0, "cut", {"src": "A", "links": links}]],
                 note=f"from A, links {links}")


def _link_degrade(rng, sc):
    links = "all" if rng.random() < 0.5 else [rng.choice(sc.links)]
    args = {"src": rng.choice((None, "A")), "links": links, **link_impairment(rng, sc.deadtime, sc.keepalive, 0.9)}
    return Fault("", _role(rng), 0, _u(rng, 1, 5, sc.deadtime), [[0.0, "degrade", args]])


def link_impairment(rng: random.Random, deadtime: float, keepalive: float, p_short_delay: float) -> dict:
    """What a degraded link does to each packet: a delay (under the deadtime with
    probability *p_short_delay*, else past it), jitter, duplicates and loss."""
    return {
        "delay": _u(rng, 0, 0.8, deadtime) if rng.random() < p_short_delay else _u(rng, 0.8, 1.5, deadtime),
        "jitter": _u(rng, 0, 3, keepalive),
        "dup": _u(rng, 0, 0.5) if rng.random() < 0.5 else 0.0,
        "loss": _u(rng, 0, 0.9) if rng.random() < 0.7 else 0.0,
    }


def replay_args(rng: random.Random) -> dict:
    """Which captured heartbeats to replay into A: *k* of them, the kind preferred."""
    return {"into": "A", "k": rng.randint(1, 4), "prefer": rng.choice(("leaving", "leaving", "standby", "any", "oldest"))}


def _replay_after_restart(rng, sc):
    steps = [[0.0, "replay_on_start", {**replay_args(rng), "eps": _u(rng, 0, 1, sc.keepalive)}], [0.0, "kill", {"who": "A"}]]
    partition = rng.random() < 0.5
    if partition:  # the peer is unreachable too: nothing contradicts the replay
        steps.append([0.0, "cut", {"src": None, "links": "all"}])
    return Fault("", _role(rng), 0, round(sc.restart_delay_s + _u(rng, 1, 3, sc.deadtime), 4), steps,
                 note="peer unreachable" if partition else "peer reachable")


def _replay_peer_dead(rng, sc):
    how, steps = _peer_death(rng)
    at = _u(rng, 1.05, 2.5, sc.deadtime)
    steps.append([at, "replay", replay_args(rng)])
    return Fault("", _role(rng), 0, round(at + _u(rng, 0.5, 2, sc.deadtime), 4), steps, note=f"peer: {how}")


def _fence(mode):
    def draw(rng, sc):
        how, steps = _peer_death(rng)
        slow = _u(rng, 1, 4, sc.deadtime) if mode == "slow" else 0.0
        steps.append([0.0, "fence_mode", {"who": "A", "mode": mode, "slow_s": slow}])
        return Fault("", _role(rng), 0, round(_u(rng, 2, 5, sc.deadtime) + slow, 4), steps, note=f"peer: {how}")
    return draw


def _ping_loss(rng, sc):
    variant = rng.choice(("alone", "isolated", "peer-dead", "after-abort"))
    d = _u(rng, 1, 4, sc.deadtime)
    steps = [[0.0, "ping", {"who": "A", "ok": False}]]
    if variant == "isolated":
        steps.append([0.0, "cut", {"src": None, "links": "all"}])
    elif variant == "peer-dead":
        steps.append([0.0, "power_off", {"who": "B"}])
    elif variant == "after-abort":
        # the tiebreak passes during one death of the peer that ends before the takeover
        # (a failing fence), then this node is isolated: the old pass must not count
        t1 = round(sc.deadtime * 1.5 + sc.ping_s + sc.fence_s, 4)
        t2 = round(t1 + sc.deadtime, 4)
        steps = [[0.0, "freeze", {"who": "B"}], [0.0, "fence_mode", {"who": "A", "mode": "fail", "slow_s": 0.0}],
                 [t1, "thaw", {"who": "B"}], [t2, "ping", {"who": "A", "ok": False}],
                 [t2, "cut", {"src": None, "links": "all"}]]
        d = round(t2 + _u(rng, 1.5, 3, sc.deadtime), 4)
        return Fault("", "standby", 0, d, steps, note=variant)  # the node that would take over
    return Fault("", _role(rng), 0, d, steps, note=variant)


def peer_lets_go(trigger: str) -> list:
    """The steps that make B give the chain up to A (whose start then fails): an operator
    standby on B, B's death by *trigger* (a step name), or nothing ("none")."""
    if trigger == "command":
        return [[0.0, "command", {"who": "B", "cmd": "standby"}]]
    return [] if trigger == "none" else [[0.0, trigger, {"who": "B"}]]


def status_hang_trigger(trigger: str) -> list:
    """What acts while A's status check hangs: A killed, an operator standby on B (A
    must take over with its status hanging), or nothing ("none")."""
    if trigger == "kill":
        return [[0.0, "kill", {"who": "A"}]]
    return [[0.0, "command", {"who": "B", "cmd": "standby"}]] if trigger == "standby" else []


def _start_failure(rng, sc):
    rid = rng.choice(sc.ids)
    trigger = rng.choice(("command", "power_off", "kill", "none"))
    steps = [[0.0, "start_fail", {"who": "A", "rid": rid}], *peer_lets_go(trigger)]
    return Fault("", "standby", 0, round(2 * sc.chain_s + _u(rng, 2, 4, sc.deadtime), 4), steps, note=f"{rid}, trigger {trigger}")


def _stop(kind):
    def draw(rng, sc):
        rid = rng.choice(sc.ids)
        trigger = rng.choice(("standby", "leave"))
        steps = [[0.0, kind, {"who": "A", "rid": rid}]]
        steps.append([0.0, "command", {"who": "A", "cmd": "standby"}] if trigger == "standby"
                     else [0.0, "stop_daemon", {"who": "A", "then": "restart"}])
        hang = sum(r.stop_timeout for r in sc.resources) * 3 if kind == "stop_hang" else 0.0
        return Fault("", "active", 0, round(hang + 2 * sc.chain_s + _u(rng, 2, 4, sc.deadtime), 4), steps, note=f"{rid}, trigger {trigger}")
    return draw


def _status_timeout(rng, sc):
    rid = rng.choice(sc.ids)
    trigger = rng.choice(("kill", "standby", "none"))
    steps = [[0.0, "status_hang", {"who": "A", "rid": rid}], *status_hang_trigger(trigger)]
    return Fault("", _role(rng), 0, round(2 * sc.chain_s + _u(rng, 1, 3, sc.deadtime), 4), steps, note=f"{rid}, trigger {trigger}")


def _boot_enabled(rng, sc):
    ids = list(sc.ids)
    if len(ids) > 1 and rng.random() < 0.85:
        rids = sorted(rng.sample(ids, rng.randint(1, len(ids) - 1)), key=ids.index)
    else:
        rids = ids
    off = _u(rng, 0.1, 1.5, sc.deadtime)
    steps = [[0.0, "power_off", {"who": "A"}], [off, "power_on", {"who": "A"}]]
    late = rng.random() < 0.25
    if late:  # systemd starts it in parallel with hasync: up only after the daemon's start-up probe
        probed = off + sc.boot_s + sc.daemon_delay_s + max(r.status_s for r in sc.resources)
        steps.append([round(probed + _u(rng, 0.1, 1, sc.deadtime), 4), "start_stray", {"who": "A", "rids": rids}])
    else:
        steps.insert(0, [0.0, "boot_enable", {"who": "A", "rids": rids}])
    d = off + sc.boot_s + sc.daemon_delay_s + sc.initdead + sc.chain_s + _u(rng, 1, 2, sc.deadtime) + (sc.deadtime if late else 0)
    what = f"{'partial' if len(rids) < len(ids) else 'whole'} chain {rids}" + (", up after the start-up probe" if late else "")
    return Fault("", _role(rng), 0, round(d, 4), steps, note=what)


def _config_drift(rng, sc):
    trigger = rng.choice(("power-cycle-both", "standby", "none"))
    steps = [[0.0, "drift", {"who": "A"}]]
    d = _u(rng, 2, 4, sc.deadtime) + sc.stop_timeout_s
    t1 = round(sc.stop_timeout_s + sc.restart_delay_s + sc.deadtime, 4)
    if trigger == "power-cycle-both":
        t2 = round(t1 + _u(rng, 0.2, 1, sc.deadtime), 4)
        steps += [[t1, "power_off", {"who": "A"}], [t1, "power_off", {"who": "B"}],
                  [t2, "power_on", {"who": "A"}], [t2, "power_on", {"who": "B"}]]
        d = t2 + sc.boot_s + sc.daemon_delay_s + sc.initdead + 2 * sc.chain_s + 2 * sc.deadtime
    elif trigger == "standby":
        steps.append([t1, "command", {"who": "A", "cmd": "standby"}])
        d = t1 + 2 * sc.chain_s + 2 * sc.deadtime
    return Fault("", _role(rng), 0, round(d, 4), steps, note=f"trigger {trigger}")


def _operator(rng, sc):
    cmd = rng.choice(("standby", "takeover"))
    if sc.groups and rng.random() < 0.5:  # (drawn only with groups: a one-group seed's faults are unchanged)
        cmd = f"migrate {rng.choice(sc.groups).id}"  # `hasync migrate GROUP --to` the other node, on A
    steps = [[0.0, "command", {"who": "A", "cmd": cmd}]]
    role = _role(rng)
    if cmd == "standby" and rng.random() < 0.4:
        # the operator changes their mind: takeover on the same node while the handover
        # runs (the peer's start under way: a request that arrives mid-start)
        at = round(rng.uniform(0.2, 1.0) * sc.chain_s, 4)
        steps.append([at, "command", {"who": "A", "cmd": "takeover"}])
        cmd = f"standby, takeover after {at:g} s"
        role = "active"  # (A hands the chain over, then wants it back)
    return Fault("", role, 0, round(4 * sc.chain_s + sc.deadtime, 4), steps, note=cmd)


def _resource_crash(rng, sc):
    monitored = [r.id for r in sc.resources if r.monitor_interval > 0] or list(sc.ids)
    rid = rng.choice(monitored)
    return Fault("", "active", 0, 0.0, [[0.0, "crash_resource", {"who": "A", "rid": rid}]], note=rid)


_DRAW = {
    "power-loss": _power_loss,
    "power-loss-both": _power_loss_both,
    "sigkill": _sigkill,
    "sigstop": _sigstop,
    "restart-mid-job": _restart_mid_job,
    "daemon-stop": _daemon_stop,
    "cut-link": _cut_link,
    "cut-all": _cut_all,
    "cut-oneway": _cut_oneway,
    "link-degrade": _link_degrade,
    "replay-after-restart": _replay_after_restart,
    "replay-peer-dead": _replay_peer_dead,
    "fence-fail": _fence("fail"),
    "fence-slow": _fence("slow"),
    "fence-lie": _fence("lie"),
    "ping-loss": _ping_loss,
    "start-failure": _start_failure,
    "stop-failure": _stop("stop_fail"),
    "stop-timeout": _stop("stop_hang"),
    "status-timeout": _status_timeout,
    "boot-enabled": _boot_enabled,
    "config-drift": _config_drift,
    "operator": _operator,
    "resource-crash": _resource_crash,
}
assert set(_DRAW) == set(KINDS)
