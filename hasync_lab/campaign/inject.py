"""Carrying out a fault's steps on the simulated cluster, and the heal after it."""

from __future__ import annotations

from hasync.failover.packets import F_LEAVING

from .faults import Fault
from .node import Node
from .sim import Sim
from .worker import FAULT


def resolve(sim: Sim, target: str) -> tuple[Node, Node]:
    """(A, B): the fault's target node and the other one, chosen as the fault starts."""
    a, b = sim.node_list
    if target in sim.nodes:
        x = sim.nodes[target]
    elif target in ("preferred", "other"):
        x = sim.nodes[sim.sc.order[0 if target == "preferred" else 1]]
    else:
        active = [n for n in sim.node_list if n.daemon is not None and n.daemon.fsm is not None and n.daemon.fsm.role == "active"]
        act = active[0] if active else a
        x = act if target == "active" else sim.peer_of(act)
    return x, sim.peer_of(x)


def start_fault(sim: Sim, f: Fault) -> None:
    a, b = resolve(sim, f.target)
    nodes = {"A": a, "B": b}
    sim.trace("sim", "fault", f"#{sim.fault_index} {f.kind} on {a.name}" + (f" ({f.note})" if f.note else "") + (" + operator race" if f.race else ""))
    for offset, op, args in f.steps:
        sim.at(sim.now + offset, _run_step, sim, op, args, nodes)


def _run_step(sim: Sim, op: str, args: dict, nodes: dict) -> None:
    _OPS[op](sim, nodes, **args)


# ------------------------------------------------------------------ the steps
def _power_off(sim, nodes, who):
    nodes[who].power_off("fault: power loss")


def _power_on(sim, nodes, who):
    nodes[who].power_on("fault")


def _kill(sim, nodes, who):
    nodes[who].kill_daemon(restart_after=sim.sc.restart_delay_s)


def _freeze(sim, nodes, who):
    nodes[who].freeze()


def _thaw(sim, nodes, who):
    nodes[who].thaw()


def _stop_daemon(sim, nodes, who, then):
    n = nodes[who]
    if then == "restart":
        n.restart_daemon()
    elif then == "poweroff":
        n.stop_daemon(then=lambda: n.power_off("shutdown"))
    else:
        n.stop_daemon()


def _channels(sim, nodes, src, links):
    names = sim.sc.links if links == "all" else [lk for lk in links if lk in sim.sc.links]
    pairs = [(a.name, b.name) for a in sim.node_list for b in sim.node_list if a is not b]
    if src is not None:
        s = nodes[src].name
        pairs = [p for p in pairs if p[0] == s]
    return [(s, d, lk) for s, d in pairs for lk in names]


def _cut(sim, nodes, src, links):
    for s, d, lk in _channels(sim, nodes, src, links):
        sim.net.channel(s, d, lk).cut = True
        sim.net.touch(s, d, lk)
        sim.impaired(s, d)


def _degrade(sim, nodes, src, links, delay, jitter, dup, loss):
    for s, d, lk in _channels(sim, nodes, src, links):
        ch = sim.net.channel(s, d, lk)
        ch.delay, ch.jitter, ch.dup, ch.loss = delay, jitter, dup, loss
        sim.net.touch(s, d, lk)
        sim.impaired(s, d)


def _pick(sim, into: Node, k: int, prefer: str) -> list:
    """Captured packets of *into*'s peer, chosen by the seeded network generator."""
    items = sim.net.capture[sim.peer_of(into).name].packets()
    if not items:
        return []
    rng = sim.net.rng
    if prefer == "leaving":
        pool = [it for it in items if it[2]["flags"] & F_LEAVING] or items
    elif prefer == "standby":
        pool = [it for it in items if it[2]["role"] == "standby" and not it[2]["owned"]] or items
    elif prefer == "oldest":
        pool = items[: max(1, len(items) // 4)]
    else:
        pool = items
    return [rng.choice(pool) for _ in range(k)]


def _replay(sim, nodes, into, k, prefer):
    n = nodes[into]
    items = _pick(sim, n, k, prefer)
    if items:
        sim.inject(n, items)


def _replay_on_start(sim, nodes, into, k, prefer, eps):
    n = nodes[into]
    n.on_daemon_start.append(lambda: sim.at(sim.now + eps, _replay, sim, nodes, into, k, prefer))


def _fence_mode(sim, nodes, who, mode, slow_s):
    n = nodes[who]
    n.fence_behaviour, n.fence_slow_s = mode, slow_s


def _ping(sim, nodes, who, ok):
    nodes[who].set_ping(ok)


def _start_fail(sim, nodes, who, rid):
    nodes[who].start_fail.add(rid)


def _stop_fail(sim, nodes, who, rid):
    nodes[who].stop_fail.add(rid)


def _stop_hang(sim, nodes, who, rid):
    n = nodes[who]
    n.stop_hang.add(rid)  # a unit stuck in "deactivating": the stop and its status time out
    n.status_hang.add(rid)


def _status_hang(sim, nodes, who, rid):
    nodes[who].status_hang.add(rid)


def _boot_enable(sim, nodes, who, rids):
    nodes[who].enabled_at_boot = tuple(rids)


def _start_stray(sim, nodes, who, rids):
    n = nodes[who]
    if n.powered and n.booted:
        for rid in rids:
            if rid not in n.running:
                n.set_running(rid, FAULT)


def _drift(sim, nodes, who):
    n = nodes[who]
    n.drifted = True  # the admin edits one node's config and restarts its daemon
    n.restart_daemon()


def _command(sim, nodes, who, cmd):
    n = nodes[who]
    if n.daemon is not None and not n.frozen:
        # "migrate GROUP": that group to the peer (the daemon's HANDOVER of one group)
        ok, msg = n.daemon.command(sim.now, "handover", group=cmd.split()[1]) if cmd.startswith("migrate ") else n.daemon.command(sim.now, cmd)
        sim.trace(n.name, "command", f"operator: hasync {cmd}: {'accepted' if ok else 'refused'} ({msg})")


def _restart_busy(sim, nodes, how):
    """Restart the daemon of a node that runs a chain start or stop right now."""
    busy = [n for n in sim.node_list if n.daemon is not None and any(
            w.job is not None and w.job.kind in ("start", "stop", "restart") for w in n.daemon.workers.values())]
    n = busy[0] if busy else nodes["A"]
    if how == "kill":
        n.kill_daemon(restart_after=sim.sc.restart_delay_s)
    else:
        n.restart_daemon()


def _crash_resource(sim, nodes, who, rid):
    nodes[who].drop_running(rid)


_OPS = {
    "power_off": _power_off, "power_on": _power_on, "kill": _kill, "freeze": _freeze, "thaw": _thaw,
    "stop_daemon": _stop_daemon, "cut": _cut, "degrade": _degrade, "replay": _replay,
    "replay_on_start": _replay_on_start, "fence_mode": _fence_mode, "ping": _ping,
    "start_fail": _start_fail, "stop_fail": _stop_fail, "stop_hang": _stop_hang, "status_hang": _status_hang,
    "boot_enable": _boot_enable, "start_stray": _start_stray, "drift": _drift, "command": _command, "restart_busy": _restart_busy,
    "crash_resource": _crash_resource,
}


def heal(sim: Sim) -> None:
    """Everything the fault did, undone: links, SIGCONT, power, the switches, the config."""
    sim.trace("sim", "heal", f"#{sim.fault_index} healed")
    sim.net.heal()
    for pair in sim.impaired_at:
        sim.impaired(*pair)
    for n in sim.node_list:
        n.clear_faults()
        n.thaw()
    for n in sim.node_list:
        if n.drifted:
            n.drifted = False
            n.restart_daemon()
        if not n.powered:
            n.power_on("heal")
        else:
            n.ensure_daemon()
