"""`hasync migrate --to NODE --dry-run`: what a migrate would run, in order, changing nothing.

Who holds the chain now comes from this node's daemon when it answers: its own role or
its peer's (an active peer that is up); "nobody" when neither is active, "?" when the
daemon does not answer here (then whoever holds the chain stops it first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hasync import model
from hasync.failover import client
from hasync.failover.chain import plan_summary
from hasync.failover.host import named_node
from hasync.failover.states import PeerStatus, Role

NOBODY = "nobody"
UNKNOWN = "?"


@dataclass(frozen=True)
class MigratePlan:
    to: str
    active: str  # the node holding the chain, NOBODY, or UNKNOWN
    resources: list[dict]  # chain.plan_summary: id, type, start and stop commands, start order

    @property
    def nothing_to_do(self) -> bool:
        return self.active == self.to

    def steps(self) -> list[tuple[str, str, str, str]]:
        """(node, op, resource id, command) in the order they would run: the stops on the
        node holding the chain (when known), then the starts on the target."""
        out = []
        if self.active not in (NOBODY, UNKNOWN):
            out += [(self.active, "stop", r["id"], "; ".join(r["stop"])) for r in reversed(self.resources)]
        out += [(self.to, "start", r["id"], "; ".join(r["start"])) for r in self.resources]
        return out

    def as_dict(self) -> dict:
        return {"to": self.to, "active": self.active, "stop_on": self.active,
                "stop": [r["id"] for r in reversed(self.resources)], "start": [r["id"] for r in self.resources],
                "plan": self.resources}


def active_node(status: dict | None, group: str = "") -> str:
    """The node a daemon's status document says holds the chain, or resource group *group*
    (NOBODY, or UNKNOWN for None)."""
    if status is None:
        return UNKNOWN
    if group:
        owner = next((g.get("owner") for g in status.get("groups", ()) if g.get("id") == group), UNKNOWN)
        return NOBODY if owner is None else (UNKNOWN if owner == "both" else str(owner))
    if status["role"] == Role.ACTIVE:
        return str(status["node"])
    peer = status["peer"]
    if peer["role"] == Role.ACTIVE and peer["state"] == PeerStatus.UP:
        return str(peer["node"])
    return NOBODY


def migrate_plan(cluster: model.Cluster, to: str, socket: Path,
                 status: Callable[[Path], dict] = client.status, group: str = "") -> MigratePlan:
    """The dry run of moving the chain (or resource group *group*: KeyError when there is
    none) to *to* (NoSuchNode when it is not a node)."""
    named_node(cluster, to)
    resources = cluster.group(group).resources if group else cluster.resources
    try:
        active = active_node(status(socket), group)
    except Exception:  # noqa: BLE001 -- no daemon here, or an answer without roles: unknown
        active = UNKNOWN
    return MigratePlan(to, active, plan_summary(resources, profile=cluster.profile))  # profile: resolved by the load
