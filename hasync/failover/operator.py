"""What the on-call operator leaves behind, and how the two nodes agree on it (pure).

Two kinds of operator state (docs/failover.md, "Operator settings"):

- **Cluster-wide settings** (``Settings``): maintenance mode (`hasync maintenance on`:
  nothing is started, stopped, restarted or fenced) and the chain stopped on purpose
  (`hasync stop` until `hasync start`). Each node keeps its copy in its state directory
  and sends it in every heartbeat (packet flags F_MAINTENANCE, F_STOPPED). A node that
  changed its copy marks its packets F_SETTINGS_NEW until the peer's packets show the
  same settings: the peer adopts a newer copy (``merge``). When neither copy or both are
  newer (the nodes were apart while both changed, or a state directory was lost), the
  merge never moves the chain: maintenance on wins, and "stopped" wins unless the chain
  runs somewhere (then somebody started it since).
- **Per node**: the operator standby (`hasync standby [NODE]`, F_OPERATOR_STANDBY): the
  node never runs the chain, not even alone, until `hasync online [NODE]`; kept in its
  own state directory.

``cleanup_verdict`` is `hasync cleanup`'s rule: what a fresh probe allows to be cleared.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync.failover.packets import F_MAINTENANCE, F_STOPPED
from hasync.failover.states import Role


@dataclass(frozen=True)
class Settings:
    """The cluster-wide operator settings, as one node holds them."""

    maintenance: bool = False
    stopped: bool = False

    @classmethod
    def of(cls, flags: int) -> Settings:
        return cls(bool(flags & F_MAINTENANCE), bool(flags & F_STOPPED))

    def flags(self) -> int:
        return (F_MAINTENANCE if self.maintenance else 0) | (F_STOPPED if self.stopped else 0)

    def describe(self) -> str:
        parts = [w for w, on in (("maintenance", self.maintenance), ("stopped", self.stopped)) if on]
        return ", ".join(parts) or "normal"


def merge(ours: Settings, ours_new: bool, theirs: Settings, theirs_new: bool, chain_runs: bool) -> Settings:
    """The settings this node takes after a fresh packet from its peer. A newer copy wins;
    otherwise a merge that moves nothing: maintenance on wins (nothing moves), "stopped"
    wins unless the chain runs somewhere (*chain_runs*: somebody started it since the stop
    this node remembers). Both nodes compute the same from the same packets."""
    if ours == theirs:
        return ours
    if theirs_new and not ours_new:
        return theirs
    if ours_new and not theirs_new:
        return ours
    return Settings(ours.maintenance or theirs.maintenance, (ours.stopped or theirs.stopped) and not chain_runs)


# --------------------------------------------------------------------------- cleanup


@dataclass(frozen=True)
class CleanupVerdict:
    """What `hasync cleanup` found and may clear (``found``: one line per resource)."""

    ok: bool  # cleared what was failed, or nothing was
    found: tuple[str, ...] = ()
    did: tuple[str, ...] = ()  # what was cleared, one line each ("" when nothing)
    role: Role | None = None  # the role to take (None: unchanged)
    clear_failed: bool = False
    clear_restarts: tuple[str, ...] = ()
    blocked: str = ""  # why nothing was cleared

    @property
    def lines(self) -> list[str]:
        return list(self.found) + list(self.did) + ([self.blocked] if self.blocked else [])


@dataclass
class CleanupInput:
    role: Role
    failed: bool
    restarts: dict[str, int]
    resources: tuple[str, ...]
    running: tuple[str, ...]  # what the probe found running here
    cannot_tell: tuple[str, ...] = ()  # "rid: why" for each status that could not tell
    resource: str = ""  # `hasync cleanup RESOURCE`: only its restart count
    peer_holds: bool = False  # the peer (alive, verified) holds some of the chain
    peer: str = "the peer"


def cleanup_verdict(c: CleanupInput) -> CleanupVerdict:
    """Clear a failure mark only when the probe says it is safe: nothing of the chain runs
    here, or it runs where the cluster thinks it runs (the whole chain on this node, none
    of it on the peer). Never starts or stops anything."""
    found = tuple(f"{rid}: {'running' if rid in c.running else 'stopped'} here" for rid in c.resources
                  if not any(x.startswith(rid + ":") for x in c.cannot_tell))
    found += tuple(f"{x} (cannot tell)" for x in c.cannot_tell)
    if c.cannot_tell:
        return CleanupVerdict(False, found, blocked="a status could not tell whether the resource runs: nothing cleared "
                                                    "(fix what the status says, then `hasync cleanup` again)")
    running = [r for r in c.resources if r in c.running]
    missing = [r for r in c.resources if r not in c.running]
    restarts = tuple(r for r in c.restarts if c.restarts[r] and (not c.resource or r == c.resource))
    if c.role == Role.STOP_FAILED:
        if not running:
            return CleanupVerdict(True, found, ("nothing of the chain runs here: stop-failed cleared, this node is standby",),
                                  role=Role.STANDBY, clear_failed=True, clear_restarts=tuple(c.restarts))
        if not missing and not c.peer_holds:
            return CleanupVerdict(True, found, (f"the whole chain runs here and nothing of it on {c.peer}: stop-failed "
                                                "cleared, this node is active again",), role=Role.ACTIVE, clear_restarts=tuple(c.restarts))
        why = (f"{', '.join(running)} still run{'s' if len(running) == 1 else ''} here"
               + (f" and {', '.join(missing)} do{'es' if len(missing) == 1 else ''} not" if missing else f", and {c.peer} holds part of the chain"))
        return CleanupVerdict(False, found, blocked=f"{why}: stop-failed kept (stop them by hand, e.g. `hasync resource "
                                                    f"{running[-1]} stop`, then `hasync cleanup` again)")
    if c.role == Role.STANDBY:
        if running:
            return CleanupVerdict(False, found, blocked=f"{', '.join(running)} run{'s' if len(running) == 1 else ''} on this standby node "
                                                        f"(started behind hasync's back?): nothing cleared; stop "
                                                        f"{'them' if len(running) > 1 else 'it'} (`hasync resource {running[-1]} stop`)")
        did: tuple[str, ...] = ("the chain's failed mark cleared: this node is eligible again",) if c.failed else ()
        did += tuple(f"restart count of {r} cleared" for r in restarts)
        return CleanupVerdict(True, found, did or ("nothing was failed here: nothing to clear",), clear_failed=c.failed, clear_restarts=restarts)
    if c.role == Role.ACTIVE:
        if missing:
            return CleanupVerdict(False, found, blocked=f"{', '.join(missing)} not running on this active node: nothing cleared "
                                                        f"(a monitor restarts it; or `hasync resource {missing[0]} start`)")
        did = tuple(f"restart count of {r} cleared" for r in restarts)
        return CleanupVerdict(True, found, did or ("nothing was failed here: nothing to clear",), clear_restarts=restarts)
    return CleanupVerdict(False, found, blocked=f"this node is {c.role}: try again when it is active, standby or stop-failed")
