"""The faults of the ns tier, drawn from a seeded generator as plain data.

The same ``Fault`` as the fsm tier (hasync_lab/campaign/faults.py): steps at offsets on
nodes named by role ("A" the target, "B" the other, resolved from ground truth when the
fault starts), a heal at ``duration_s``. The draw is deterministic: the same seed gives
the same faults (what the live lab then does with them is real time, not replayed).
A run of at least len(KINDS) faults has every kind at least once.

Kinds this tier cannot do are named in SKIPPED with the reason.
"""

from __future__ import annotations

import random

from hasync_lab.campaign.faults import (
    RACE,
    Fault,
    _role,
    _u,
    link_impairment,
    peer_lets_go,
    replay_args,
    status_hang_trigger,
)
from hasync_lab.campaign.ns.prep import TIMING, Timing

KINDS = {
    "power-loss": 8,
    "power-loss-both": 2,
    "sigkill": 6,
    "sigstop": 6,
    "restart-mid-job": 4,
    "daemon-stop": 4,
    "cut-link": 4,
    "cut-all": 5,
    "cut-oneway": 4,
    "link-degrade": 5,
    "serial-noise": 3,
    "replay-after-restart": 5,
    "replay-peer-dead": 5,
    "fence-fail": 3,
    "fence-slow": 3,
    "fence-lie": 2,
    "ping-loss": 4,
    "start-failure": 4,
    "stop-failure": 3,
    "stop-timeout": 3,
    "status-timeout": 3,
    "boot-enabled": 7,
    "config-drift": 2,
    "operator": 4,
    "resource-crash": 3,
    "clock-step": 4,
    "sync-enospc": 2,
    "sync-unison-kill": 2,
    "sync-ssh-drop": 2,
    "sync-both-edit": 3,
}
SYNC_KINDS = ("sync-enospc", "sync-unison-kill", "sync-ssh-drop", "sync-both-edit")

SKIPPED = {
    "serial-degrade": "delay, reordering, duplication and loss on the serial line: the relay copies a byte "
                      "stream, a datagram impairment has no meaning there (noise and cuts it does)",
    "clock-step-host": "a real CLOCK_REALTIME step: the realtime clock is not namespaced and stepping it "
                       "would step the whole machine; clock-step steps the daemons' view instead (see docs)",
    "disk-power-cut": "a crash unmounts the lab's ext4 cleanly (the mount namespace goes): a torn write "
                      "needs the vm tier",
}

PEER_DEATHS = ("power_off", "freeze", "cut_all", "kill_daemon")
CLOCK_STEPS = (60.0, -60.0, 3600.0, -3600.0, 10.0, -10.0)


def draw_faults(seed: int, n: int, kinds: tuple[str, ...] | None = None, t: Timing = TIMING, *,
                weights: dict[str, int] = KINDS, tier: str = "ns", gap_s: float = 0.4) -> list[Fault]:
    """N faults for *seed*; the vm tier draws with its own kinds' *weights*, timing and
    quiet gap (the same steps: its injector plays them on qemu guests)."""
    rng = random.Random(f"hasync-campaign:{tier}:{seed}:faults")
    names = [k for k in weights if kinds is None or k in kinds]
    if n >= len(names):  # every kind once, the rest by weight, in a random order
        order = names + rng.choices(names, weights=[weights[k] for k in names], k=n - len(names))
        rng.shuffle(order)
    else:
        order = rng.choices(names, weights=[weights[k] for k in names], k=n)
    out = []
    for kind in order:
        f = _DRAW[kind](rng, t)
        f.kind = kind
        f.gap_s = _u(rng, 0.0, gap_s)
        if rng.random() < 0.15 and kind not in SYNC_KINDS:
            f.race_with_operator(rng, _u(rng, 0.0, max(f.duration_s, t.deadtime) * 0.9), ("standby", "takeover", "migrate"),
                                 t.deadtime)
        f.end_after_steps(0.05, 3)
        out.append(f)
    return out


def _taker(rng) -> str:
    """The node that would take over (the standby one), mostly: where a fence, a replay
    or the tiebreak decides something; sometimes the active one, which only fences."""
    return "standby" if rng.random() < 0.75 else "active"


def _peer_death(rng, who: str = "B") -> tuple[str, list]:
    how = rng.choice(PEER_DEATHS)
    if how == "cut_all":
        return how, [[0.0, "cut", {"who": who, "links": "all"}]]
    if how == "kill_daemon":
        return how, [[0.0, "stop_unit", {"who": who, "unit": "failover", "then": "down", "sig": "KILL"}]]
    return how, [[0.0, how, {"who": who}]]


def _power_loss(rng, t):
    return Fault("", _role(rng), 0, _u(rng, 0.6, 4, t.deadtime), [[0.0, "power_off", {"who": "A"}]])


def _power_loss_both(rng, t):
    steps = [[0.0, "power_off", {"who": "A"}], [_u(rng, 0, 0.8, t.deadtime), "power_off", {"who": "B"}]]
    return Fault("", _role(rng), 0, _u(rng, 1, 3, t.deadtime), steps)


def _sigkill(rng, t):
    return Fault("", _role(rng), 0, 0.1, [[0.0, "kill", {"who": "A"}]])


def _sigstop(rng, t):
    long = rng.random() < 0.7
    d = _u(rng, 1.3, 4, t.deadtime) if long else _u(rng, 0.2, 0.8, t.deadtime)
    return Fault("", _role(rng), 0, d, [[0.0, "freeze", {"who": "A"}]], note="past deadtime" if long else "under deadtime")


def _restart_mid_job(rng, t):
    how = rng.choice(("kill", "graceful"))
    steps = [[0.0, "command", {"who": "A", "cmd": "standby"}], [_u(rng, 0.3, 1.2), "restart_busy", {"how": how}]]
    return Fault("", "active", 0, 2.0, steps, note=how)


def _daemon_stop(rng, t):
    then = rng.choice(("restart", "down", "poweroff"))
    return Fault("", _role(rng), 0, _u(rng, 1, 3, t.deadtime) + 1.0, [[0.0, "stop_unit", {"who": "A", "unit": "failover", "then": then}]], note=then)


def _cut_link(rng, t):
    link = rng.choice(("heartbeat", "public", "serial"))
    return Fault("", _role(rng), 0, _u(rng, 1, 4, t.deadtime), [[0.0, "cut", {"who": "A", "links": [link]}]], note=link)


def _cut_all(rng, t):
    return Fault("", _role(rng), 0, _u(rng, 1, 5, t.deadtime), [[0.0, "cut", {"who": "A", "links": "all"}]])


def _cut_oneway(rng, t):
    links = "all" if rng.random() < 0.7 else [rng.choice(("heartbeat", "public", "serial"))]
    return Fault("", _role(rng), 0, _u(rng, 1, 4, t.deadtime), [[0.0, "oneway", {"src": "A", "links": links}]], note=f"from A, links {links}")


def _link_degrade(rng, t):
    args = {
        "src": rng.choice((None, "A")),
        "links": "all" if rng.random() < 0.5 else [rng.choice(("heartbeat", "public"))],
        **link_impairment(rng, t.deadtime, t.keepalive, 0.85),
    }
    return Fault("", _role(rng), 0, _u(rng, 2, 6, t.deadtime), [[0.0, "degrade", args]])


def _serial_noise(rng, t):
    alone = rng.random() < 0.4
    steps = [[0.0, "noise", {"toward": "A", "rate": rng.choice((200, 2000, 20000)), "magic": rng.random() < 0.5}]]
    if alone:  # the serial line is the only link left: noise must not kill it
        steps.append([0.0, "cut", {"who": "A", "links": ["heartbeat", "public"]}])
    return Fault("", _role(rng), 0, _u(rng, 2, 6, t.deadtime), steps, note="serial only" if alone else "all links up")


def _replay_after_restart(rng, t):
    how = rng.choice(("kill", "graceful"))
    steps = [[0.0, "replay_on_start", replay_args(rng)], [0.0, "restart", {"who": "A", "how": how}]]
    partition = rng.random() < 0.5
    if partition:  # nothing from B reaches A (B still hears A, so B has no reason to fence
        # it): nothing contradicts the replay
        steps.append([0.0, "oneway", {"src": "B", "links": "all"}])
    return Fault("", _taker(rng), 0, round(t.daemon_start_s + _u(rng, 2, 5, t.deadtime), 3), steps,
                 note=("peer unheard" if partition else "peer reachable") + f", restart {how}")


def _replay_peer_dead(rng, t):
    how, steps = _peer_death(rng)
    at = _u(rng, 1.05, 2.5, t.deadtime)
    steps.append([at, "replay", replay_args(rng)])
    fence = rng.choice(("ok", "fail", "slow"))  # a replay must not stand in for the fence
    if fence != "ok":
        steps.append([0.0, "fence_mode", {"who": "A", "mode": fence, "slow_s": _u(rng, 2, 6, t.deadtime)}])
    return Fault("", _taker(rng), 0, round(at + _u(rng, 2, 4, t.deadtime), 3), steps, note=f"peer: {how}, fence {fence}")


def _fence(mode):
    def draw(rng, t):
        how, steps = _peer_death(rng)
        slow = _u(rng, 1, 6, t.deadtime) if mode == "slow" else 0.0
        steps.append([0.0, "fence_mode", {"who": "A", "mode": mode, "slow_s": slow}])
        return Fault("", _taker(rng), 0, round(_u(rng, 4, 8, t.deadtime) + slow, 3), steps, note=f"peer: {how}")
    return draw


def _ping_loss(rng, t):
    variant = rng.choice(("alone", "isolated", "peer-dead", "after-abort"))
    d = _u(rng, 2, 5, t.deadtime)
    steps = [[0.0, "ping", {"who": "A"}]]
    if variant == "isolated":
        steps.append([0.0, "cut", {"who": "A", "links": "all"}])
    elif variant == "peer-dead":
        steps.append([0.0, "power_off", {"who": "B"}])
    elif variant == "after-abort":
        # the tiebreak passes during one death of the peer that ends before the takeover
        # (every fence fails), then this node is isolated: the old pass must not count
        t1 = round(3 * t.deadtime + 1.0, 3)
        t2 = round(t1 + 2 * t.deadtime, 3)
        steps = [[0.0, "freeze", {"who": "B"}], [0.0, "fence_mode", {"who": "A", "mode": "fail", "slow_s": 0.0}],
                 [t1, "thaw", {"who": "B"}], [t2, "ping", {"who": "A"}], [t2, "cut", {"who": "A", "links": "all"}]]
        return Fault("", "standby", 0, round(t2 + _u(rng, 4, 6, t.deadtime), 3), steps, note=variant)
    return Fault("", _taker(rng), 0, d, steps, note=variant)


def _start_failure(rng, t):
    rid = rng.choice(t.chain)
    trigger = rng.choice(("command", "power_off", "kill", "none"))
    steps = [[0.0, "flag", {"who": "A", "rid": rid, "op": "start", "mode": "fail"}], *peer_lets_go(trigger)]
    return Fault("", "standby", 0, round(_u(rng, 4, 8, t.deadtime) + 1.5, 3), steps, note=f"{rid}, trigger {trigger}")


def _stop(hang: bool):
    def draw(rng, t):
        rid = rng.choice(t.chain)
        trigger = rng.choice(("standby", "leave"))
        steps = [[0.0, "flag", {"who": "A", "rid": rid, "op": "stop", "mode": "hang" if hang else "fail"}]]
        if hang:
            steps.append([0.0, "flag", {"who": "A", "rid": rid, "op": "status", "mode": "hang"}])
        steps.append([0.05, "command", {"who": "A", "cmd": "standby"}] if trigger == "standby"
                     else [0.05, "stop_unit", {"who": "A", "unit": "failover", "then": "restart"}])
        d = (4 * t.op_timeout if hang else 2.0) + _u(rng, 4, 8, t.deadtime)
        return Fault("", "active", 0, round(d, 3), steps, note=f"{rid}, trigger {trigger}")
    return draw


def _status_timeout(rng, t):
    rid = rng.choice(t.chain)
    trigger = rng.choice(("kill", "standby", "none"))
    steps = [[0.0, "flag", {"who": "A", "rid": rid, "op": "status", "mode": "hang"}], *status_hang_trigger(trigger)]
    return Fault("", _role(rng), 0, round(t.op_timeout + _u(rng, 4, 8, t.deadtime), 3), steps, note=f"{rid}, trigger {trigger}")


def _boot_enabled(rng, t):
    rids = list(t.chain)
    if rng.random() < 0.85:
        rids = sorted(rng.sample(rids, rng.randint(1, len(rids) - 1)), key=t.chain.index)
    late = rng.random() < 0.25  # up only after the daemon's start-up probe (units in parallel)
    off = _u(rng, 0.2, 1.5, t.deadtime)
    steps = [[0.0, "boot_enable", {"who": "A", "rids": rids, "late": late}], [0.0, "power_off", {"who": "A"}],
             [off, "power_on", {"who": "A"}]]
    d = off + 1.0 + t.daemon_start_s + t.initdead + 2.0 + _u(rng, 2, 4, t.deadtime)
    what = f"{'partial' if len(rids) < len(t.chain) else 'whole'} chain {rids}" + (", up after the start-up probe" if late else "")
    return Fault("", _role(rng), 0, round(d, 3), steps, note=what)


def _config_drift(rng, t):
    trigger = rng.choice(("power-cycle-both", "standby", "none"))
    steps = [[0.0, "drift", {"who": "A"}]]
    d = 2.5 + _u(rng, 2, 4, t.deadtime)
    if trigger == "power-cycle-both":
        steps += [[2.0, "power_off", {"who": "A"}], [2.0, "power_off", {"who": "B"}],
                  [2.5, "power_on", {"who": "A"}], [2.5, "power_on", {"who": "B"}]]
        d = 2.5 + 1.0 + t.daemon_start_s + t.initdead + 3.0
    elif trigger == "standby":
        steps.append([2.0, "command", {"who": "A", "cmd": "standby"}])
        d = 5.0
    return Fault("", _role(rng), 0, round(d, 3), steps, note=f"trigger {trigger}")


def _operator(rng, t):
    cmd = rng.choice(("standby", "takeover", "migrate"))
    if getattr(t, "groups", 1) == 2 and rng.random() < 0.5:  # (the vm tier has one group; drawn only with groups: a one-group seed's faults are unchanged)
        cmd = f"migrate {rng.choice(sorted(t.groups_pieces))}"  # one group moves, the other keeps running
    return Fault("", _role(rng), 0, 2.0, [[0.0, "command", {"who": "A", "cmd": cmd}]], note=cmd)


def _resource_crash(rng, t):
    rid = rng.choice(t.monitored)
    return Fault("", "active", 0, 0.1, [[0.0, "crash_resource", {"who": "A", "rid": rid}]], note=rid)


def _clock_step(rng, t):
    step = rng.choice(CLOCK_STEPS)
    then = rng.choice(("none", "none", "kill", "graceful"))
    steps = [[0.0, "clock", {"who": "A", "step_s": step}]]
    if then != "none":
        steps.append([_u(rng, 0.2, 1.0), "restart", {"who": "A", "how": then}])
    return Fault("", _role(rng), 0, round(_u(rng, 2, 5, t.deadtime) + (t.daemon_start_s if then != "none" else 0), 3),
                 steps, note=f"{step:+g} s" + (f", daemon restart ({then})" if then != "none" else ""))


def _sync_enospc(rng, t):
    return Fault("", _role(rng), 0, _u(rng, 2, 4), [[0.0, "enospc", {"who": "A"}], [0.3, "sync_write", {"who": "A", "n": rng.randint(1, 20)}]])


def _sync_kill(what):
    def draw(rng, t):
        n = rng.choice((50, 200, 400))
        return Fault("", _role(rng), 0, 2.0, [[0.0, "sync_write", {"who": "A", "n": n}], [0.0, "sync_kill", {"who": "A", "what": what}]],
                     note=f"{n} files")
    return draw


def _sync_both_edit(rng, t):
    rounds = rng.randint(1, 8)
    return Fault("", _role(rng), 0, 0.5, [[0.0, "sync_both", {"rounds": rounds, "path": f"both-{rng.randint(1, 2)}.conf",
                                                              "apart": rng.random() < 0.3}]], note=f"{rounds} round(s)")


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
    "serial-noise": _serial_noise,
    "replay-after-restart": _replay_after_restart,
    "replay-peer-dead": _replay_peer_dead,
    "fence-fail": _fence("fail"),
    "fence-slow": _fence("slow"),
    "fence-lie": _fence("lie"),
    "ping-loss": _ping_loss,
    "start-failure": _start_failure,
    "stop-failure": _stop(hang=False),
    "stop-timeout": _stop(hang=True),
    "status-timeout": _status_timeout,
    "boot-enabled": _boot_enabled,
    "config-drift": _config_drift,
    "operator": _operator,
    "resource-crash": _resource_crash,
    "clock-step": _clock_step,
    "sync-enospc": _sync_enospc,
    "sync-unison-kill": _sync_kill("unison"),
    "sync-ssh-drop": _sync_kill("ssh"),
    "sync-both-edit": _sync_both_edit,
}
assert set(_DRAW) == set(KINDS)
__all__ = ["KINDS", "SKIPPED", "SYNC_KINDS", "RACE", "Fault", "draw_faults"]
