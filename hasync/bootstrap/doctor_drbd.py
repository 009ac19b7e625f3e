"""doctor's incident checks: DRBD's state on each node (a split brain is a problem, with
the runbook: which node's data to keep, the commands) and operator settings left on
(maintenance mode or the chain stopped on purpose, for long). The parsing and the rules
are drbd_state.py's; ``read_local`` is what `hasync status` runs on this node.
"""

from __future__ import annotations

import base64
import binascii
import shlex

from hasync import model
from hasync.bootstrap import doctor_manager, drbd_state
from hasync.bootstrap.drbd_state import Drbd
from hasync.bootstrap.findings import Finding
from hasync.effects.run import Runner

# the failover daemon's state directory (hasync.failover.host.DEFAULT_STATE_DIR; a unit
# test holds them equal): its operator files say "since <unix time> ..."
FAILOVER_STATE_DIR = "/var/lib/hasync/failover"
LONG_S = 4 * 3600.0  # maintenance or a stop on purpose left on longer than this: a warning
PROC_DRBD = "/proc/drbd"


def status_argv(resource: str) -> tuple[str, ...]:
    """DRBD 9's status with the resync's rate and estimate (drbdsetup 9.x prints eta:)."""
    return ("drbdsetup", "status", resource, "--verbose", "--statistics")


def probe_lines() -> list[str]:
    """The node's operator files."""
    return [f"echo oncall.{f}=$(cat {shlex.quote(FAILOVER_STATE_DIR + '/' + f)})" for f in ("maintenance", "stopped")]


def storage_probe_lines(cluster: model.Cluster) -> list[str]:
    """*cluster*'s DRBD resource (a group's: doctor_groups.wrap prefixes them)."""
    if not cluster.storage.use_drbd:
        return []
    q = shlex.quote
    argv = " ".join(map(q, status_argv(cluster.storage.drbd_resource)))
    return [f"echo drbd.status=$({argv} | base64 -w0)", f"echo drbd.proc=$(base64 -w0 {PROC_DRBD})"]


def _b64(p: dict[str, str], key: str) -> str:
    try:
        return base64.b64decode(p.get(key, ""), validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def state_of(cluster: model.Cluster, status_text: str, proc_text: str) -> Drbd | None:
    """The cluster's DRBD resource, from `drbdsetup status` (9) or /proc/drbd (8.4)."""
    name = cluster.storage.drbd_resource
    found = [d for d in drbd_state.parse_status(status_text) if d.resource == name]
    if found:
        return found[0]
    minor = cluster.storage.drbd_device.removeprefix("/dev/drbd")
    found = [d for d in drbd_state.parse_proc(proc_text, {minor: name}) if d.resource == name]
    return found[0] if found else None


def read_local(cluster: model.Cluster, runner: Runner) -> Drbd | None:
    """This node's DRBD state for `hasync status` (None: no DRBD, or not up here)."""
    if not cluster.storage.use_drbd:
        return None
    r = runner.run(status_argv(cluster.storage.drbd_resource), timeout=5)
    proc = ""
    if not r.ok:
        p = runner.run(("cat", PROC_DRBD), timeout=5)
        proc = p.stdout if p.ok else ""
    return state_of(cluster, r.stdout if r.ok else "", proc)


def node_state(cluster: model.Cluster, p: dict[str, str]) -> Drbd | None:
    return state_of(cluster, _b64(p, "drbd.status"), _b64(p, "drbd.proc")) if cluster.storage.use_drbd else None


def check_operator(node: str, p: dict[str, str]) -> list[Finding]:
    """Maintenance mode or the chain stopped on purpose, left on."""
    out: list[Finding] = []
    now = float(p.get("clock") or 0)
    for f, what, fix in (("maintenance", "maintenance mode", "hasync maintenance off"),
                         ("stopped", "the chain stopped on purpose", "hasync start")):
        words = p.get(f"oncall.{f}", "").split()
        if len(words) >= 2 and words[0] == "since":
            try:
                age = now - float(words[1])
            except ValueError:
                continue
            level = "warning" if age > LONG_S else "info"
            out.append(Finding(f, level, node, f"{what} is on, for {drbd_state.duration(max(age, 0))} (since {' '.join(words[2:3])})"
                               + (": nothing protects the service while it stays on" if level == "warning" else ""), fix))
    return out


def check_node(cluster: model.Cluster, node: str, p: dict[str, str]) -> list[Finding]:
    """*cluster*'s DRBD resource on *node* (a group's, from the group's view of the probe)."""
    out: list[Finding] = []
    d = node_state(cluster, p)
    if cluster.storage.use_drbd and "drbd.status" in p:  # (a probe that read DRBD)
        if d is None:
            out.append(Finding("drbd-state", "error", node, f"DRBD {cluster.storage.drbd_resource} is not up here",
                               f"drbdadm up {cluster.storage.drbd_resource} (or hasync bootstrap --yes)"))
        else:
            level, line = drbd_state.health(d)
            if not drbd_state.split_brain(d, None):  # a split brain: check_pair says it, with the runbook
                out.append(Finding("drbd-state", {"ok": "ok", "warn": "warning", "bad": "error"}[level], node, line))
    return out


def check_pair(cluster: model.Cluster, node: str, peer: str, a: dict[str, str], b: dict[str, str]) -> list[Finding]:
    """A split brain: which node's data to keep (the Primary one, the one running the chain)
    and the commands."""
    if not cluster.storage.use_drbd:
        return []
    da, db = node_state(cluster, a), node_state(cluster, b)
    if not drbd_state.split_brain(da, db):
        return []
    pacemaker = any(doctor_manager.manager(p, cluster.cluster.manager).name == "pacemaker" for p in (a, b))
    prim = [n for n, d in ((node, da), (peer, db)) if d is not None and d.role == "Primary"]
    shows, last = (("`crm_mon -1` shows the group Started", "`crm_mon -1 --fence-history=2` and the nodes' journals")
                   if pacemaker else ("`hasync status` shows the chain", "`hasync history` on both"))
    if len(prim) == 1:
        keep, why = prim[0], "it is Primary: the chain runs on its data"
    else:
        keep, why = node, (f"both are Primary: the one where {shows}; here assumed " + node
                           if prim else f"neither is Primary: the one that ran the chain last ({last}); here assumed " + node)
    discard = peer if keep == node else node
    res = cluster.storage.drbd_resource
    states = "; ".join(f"{n}: {d.role} {d.disk} {d.connection}" for n, d in ((node, da), (peer, db)) if d is not None)
    return [Finding("drbd-split-brain", "error", "cluster",
                    f"DRBD {res}: split brain (or disconnected by hand): the two copies may differ ({states})",
                    "\n".join(drbd_state.runbook(res, keep, discard, why, pacemaker=pacemaker)))]
