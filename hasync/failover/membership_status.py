"""The membership FSM's state as a plain dict: the core of `hasync status` (pure).

Split from membership.py so the state machine reads as rules only; the daemon adds what
only it knows (daemon/status.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hasync.failover.operator import Settings
from hasync.failover.packets import FLAG_NAMES, flag_names
from hasync.failover.states import ALIVE, LinkStatus, PeerStatus

if TYPE_CHECKING:
    from hasync.failover.membership import Membership


def snapshot(m: Membership, now: float) -> dict:
    pr = m.peer
    return {
        "node": m.cfg.local,
        "role": m.role,
        "owned": list(m.owned),
        "epoch": m.epoch,
        "generation": m.generation,
        "flags": [n for b, n in FLAG_NAMES.items() if m.flags() & b],
        "job": {"kind": m.job.kind, "resource": m.job.resource, "reason": m.job.reason} if m.job else None,
        "gate": m.gate,
        "config_digest": f"{m.digest:016x}",
        # the operator's settings (cluster-wide: this node's copy; then this node's own)
        "maintenance": m.settings.maintenance,
        "stopped": m.settings.stopped,
        "settings_pending": m.settings_new,
        "operator_standby": m.operator_standby,
        "peer": {
            "node": pr.name,
            "state": pr.state,
            "role": pr.role if pr.state == PeerStatus.UP else (pr.dead_role or pr.role),
            "owned": list(pr.owned),
            "flags": flag_names(pr.flags),
            "epoch": pr.epoch,
            "generation": pr.generation,
            # the highest generation ever accepted from it (persisted): nothing lower is
            "highest_generation": m.guard.generation.get(pr.name, 0),
            # its packets echo this node's generation: what it says is believed
            "verified": pr.state == PeerStatus.UP,
            "alive": pr.state in ALIVE,
            "config_digest": f"{pr.digest:016x}" if pr.digest else None,
            "config_agrees": pr.digest == m.digest if pr.digest else None,
            "last_seen_s": round(now - pr.last_seen, 3) if pr.last_seen is not None else None,
            "fenced": m.peer_fenced,
        },
        "links": [
            {
                "name": ls.name,
                "state": LinkStatus.UP if ls.up else (LinkStatus.DEAD if ls.up is False else LinkStatus.UNKNOWN),
                "last_seen_s": round(now - ls.last_seen, 3) if ls.last_seen is not None else None,
                "received": ls.received,
                "missed": ls.missed,
                "loss_pct": round(ls.loss_pct(), 2),
                "loss_total_pct": round(ls.loss_pct(False), 2),
                "bad_mac": ls.bad_mac,
                "malformed": ls.malformed,
                "replay": ls.replay,
                "old_generation": ls.old_generation,
                "stale": ls.stale,
                "foreign": ls.foreign,
                "garbage_bytes": ls.garbage_bytes,
                "send_errors": ls.send_errors,
            }
            for ls in m.links.values()
        ],
        "restarts": dict(m.restarts),
        "warnings": list(m.warnings.values()) + _derived_warnings(m),
        "counters": dict(m.counters),
        "timing": {
            "keepalive": m.cfg.keepalive,
            "warntime": m.cfg.warntime,
            "deadtime": m.cfg.deadtime,
            "initdead": m.cfg.initdead,
        },
    }


def _derived_warnings(m: Membership) -> list[str]:
    """Warnings that follow from the state as it is now (not kept: nothing to clear)."""
    pr = m.peer
    out = []
    if m.operator_standby and pr.state in (PeerStatus.DEAD, PeerStatus.LEFT) and not m.owned:
        out.append(f"{pr.name} is {pr.state} and {m.cfg.local} is in operator standby: the chain runs nowhere "
                   f"(`hasync online` on {m.cfg.local})")
    if m.settings_new and pr.state == PeerStatus.UP and Settings.of(pr.flags) != m.settings:
        out.append(f"{pr.name} has not taken this node's settings ({m.settings.describe()}) yet: if this stays, "
                   f"{pr.name} runs an older hasync that ignores them")
    return out
