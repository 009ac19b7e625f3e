"""The status document: what `hasync status` shows (its keys: docs/failover.md).

The FSM's snapshot (roles, peer, links, warnings, timing) plus what only the daemon
knows: where each resource runs and its last operation, the last failover's timeline,
the recent events, and the daemon's own health (priority, memory, wake-ups, stalls).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hasync import __version__
from hasync.effects.process import proc_stats
from hasync.failover import nfs_grace
from hasync.failover.daemon import persist
from hasync.failover.membership_groups import GroupMembership
from hasync.failover.states import PeerStatus, ResourceStatus

if TYPE_CHECKING:
    from hasync.failover.daemon.loop import Daemon


def document(d: Daemon, now: float) -> dict:
    fsm = d.fsm
    snap = fsm.snapshot(now)
    peer_up = fsm.peer.state == PeerStatus.UP
    owned_here = set(fsm.owned)
    owned_peer = set(fsm.peer_owned if isinstance(fsm, GroupMembership) else fsm.peer.owned) if peer_up else set()
    resources = []
    for r in d.cluster.resources:
        rs = d.resources.row(r.id)
        where = [n for n, o in ((d.local, owned_here), (d.peer.name, owned_peer)) if r.id in o]
        resources.append({
            "id": r.id,
            "type": r.type,
            "agent": r.agent,
            "running_on": where,
            "state_here": rs.get("state", ResourceStatus.UNKNOWN),
            "last_op": rs.get("last_op"),
            "last_outcome": rs.get("outcome"),
            "last_duration_ms": rs.get("duration_ms"),
            "detail": rs.get("detail", ""),
            "monitor_interval_s": r.monitor_interval,
        })
    warnings = list(snap["warnings"])
    if len(d.links) < 2:
        warnings.append("only one heartbeat link: a single failure looks like a dead peer")
    for g in d.cluster.resource_groups():  # (one group: the chain)
        ids = {r.id for r in g.resources}
        if ids & owned_here and ids & owned_peer:
            warnings.append(f"group {g.id} runs on BOTH nodes" if isinstance(fsm, GroupMembership) else "the chain runs on BOTH nodes")
    p = fsm.peer
    fencing = d.cluster.fencing
    grace = None
    nfs_id = nfs_grace.server_resource(d.cluster.resources, d.cluster.nfs.vip)
    if nfs_id is not None and d.resources.row(nfs_id).get("state") == ResourceStatus.RUNNING:
        grace = nfs_grace.grace_state(_read(nfs_grace.END_GRACE), d.resources.row(nfs_id).get("started_at"),
                                      d.cluster.nfs.grace_time, d.clock.wall())
    ex = d.executor
    snap.update({
        "nodes": [
            {"name": d.local, "this": True, "state": PeerStatus.UP, "role": fsm.role, "owned": list(fsm.owned)},
            {"name": p.name, "this": False, "state": p.state, "role": snap["peer"]["role"] if peer_up else p.state, "owned": sorted(owned_peer, key=d.cfg_ids.index)},
        ],
        "cluster": d.cluster.cluster.name,
        "config": d.cluster.path,
        "preferred_node": d.cfg.order[0],
        "auto_failback": d.cfg.auto_failback,
        "fencing": {"mode": fencing.mode, "configured": bool(fencing.command), "on_stop_failure": fencing.on_stop_failure},
        "resources": resources,
        "warnings": warnings,
        "last_failover": d.timeline.last,
        "nfs_grace": grace,
        "recent": list(ex.recent)[-15:],
        "daemon": {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(d.clock.wall() - d.started_wall, 1),
            "priority": d.priority,
            "memory_locked": d.mlocked,
            "wakes": d.n_wakes,
            "packets_fast": d.receiver.n_fast,
            "packets_parsed": d.receiver.n_parsed,
            "ticks": d.n_ticks,
            "late_heartbeats": ex.late_throttle.total,
            "send_encode_errors": d.sender.encode_errors,
            **d.stall.snapshot(now),
            **proc_stats(),
        },
        "files": {"role": str(d.paths.role), "socket": str(d.paths.socket), "timeline": str(d.timeline.path),
                  "history": str(d.timeline.history_path)},
        # when each operator setting kept in the state directory was set (unix time, or None)
        "operator_since": {f: persist.since(d.paths.state_dir, f) for f in ("maintenance", "stopped", "operator_standby")},
    })
    return snap


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read(16)
    except OSError:
        return None
