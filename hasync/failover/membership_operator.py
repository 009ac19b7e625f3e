"""The membership FSM's operator commands and settings (pure; split from membership.py,
whose rules read ``Membership.frozen()``, ``settings``, ``operator_standby``).

``command`` accepts or refuses what the control socket asks (standby, takeover, online,
cleanup, maintenance on/off, stop/start) and returns the actions; ``command_result``
says when an accepted command is over (the waiting `hasync VERB` hears "done").
``merge_settings`` runs for every fresh packet whose state changed: the cluster-wide
settings travel in the flags (operator.py says how the two copies agree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hasync.failover import operator
from hasync.failover.membership_data import Action, Event, JobResult, Send
from hasync.failover.operator import CleanupInput, Settings
from hasync.failover.packets import (
    F_FAILED,
    F_MAINTENANCE,
    F_OPERATOR_STANDBY,
    F_SETTINGS_NEW,
    F_STANDBY,
    F_STOPPED,
    REQ_RELEASE,
    REQ_TAKE,
)
from hasync.failover.states import ALIVE, Command, JobKind, Level, PeerStatus, Role

if TYPE_CHECKING:
    from hasync.failover.membership import Membership

RESUME = "maintenance off"  # the probe after maintenance: the start-up rules again
CLEANUP = "cleanup"  # the probe of `hasync cleanup`: clears only what it says is safe
# the jobs that change what runs (or the peer): maintenance waits until none runs here
MOVING_JOBS = (JobKind.START, JobKind.STOP, JobKind.RESTART, JobKind.FENCE, JobKind.FENCE_SELF)
MAINTENANCE_FIRST = "maintenance mode: nothing moves; `hasync maintenance off` first"
# `hasync migrate --to PEER`: the standby of a one-off move (not kept: the peer's death
# still brings the chain back here), not a command of its own on the wire
HANDOVER = "handover"

Reply = tuple[bool, str, list[Action]]


# --------------------------------------------------------------------------- commands


def command(m: Membership, now: float, cmd: str, node: str = "", resource: str = "", force: bool = False) -> Reply:
    """An operator command (*node*: the node it names, "" = this one). (accepted, message,
    actions); a refusal changes nothing."""
    pr = m.peer
    if node and node not in (m.cfg.local, pr.name):
        return False, f"no node named {node!r}; nodes: {m.cfg.local}, {pr.name}", []
    on_peer = node == pr.name
    if cmd in (Command.STANDBY, HANDOVER, Command.TAKEOVER, Command.STOP, Command.START) and m.frozen():
        return False, MAINTENANCE_FIRST, []
    if cmd == Command.STANDBY:
        return _standby_peer(m, now) if on_peer else _standby(m, now, sticky=True)
    if cmd == HANDOVER:
        return _standby(m, now, sticky=False)
    if cmd == Command.TAKEOVER:
        return _takeover(m, now)
    if cmd == Command.ONLINE:
        return _online_peer(m, now) if on_peer else _online(m, now)
    if cmd in (Command.MAINTENANCE_ON, Command.MAINTENANCE_OFF):
        return _maintenance(m, now, cmd == Command.MAINTENANCE_ON, force)
    if cmd in (Command.STOP, Command.START):
        return _stop_start(m, now, cmd == Command.STOP)
    if cmd == Command.CLEANUP:
        return _cleanup(m, now, resource)
    return False, f"unknown command {cmd!r}", []


def _standby(m: Membership, now: float, sticky: bool) -> Reply:
    pr = m.peer
    if pr.state != PeerStatus.UP:
        return False, f"{pr.name} is not up ({pr.state}): nobody would run the chain; not going standby", []
    if m.role == Role.STOP_FAILED:
        return False, "this node could not stop its resources (stop-failed): fix that first (`hasync cleanup`)", []
    if pr.flags & F_OPERATOR_STANDBY:
        return False, f"{pr.name} is in operator standby: nobody would run the chain; `hasync online {pr.name}` first", []
    m.takeover_wanted = False  # (a takeover given earlier is over: this one counts)
    if sticky:
        out: list[Action] = [Event("command", "operator: standby (kept until `hasync online`)", Level.INFO)]
        out += set_operator_standby(m, True)
    else:
        out = [Event("command", f"operator: migrate to {pr.name}", Level.INFO)]
        m.ask_standby()  # not eligible while the peer is up (as `hasync takeover` there does)
    m._request(REQ_TAKE)  # the peer: clear your standby and failed marks, run the chain
    out.append(Send())
    out += m._decide(now)
    return True, "going standby" if m.role in (Role.ACTIVE, Role.STARTING, Role.STOPPING) else "standby (not holding the chain)", out


def _standby_peer(m: Membership, now: float) -> Reply:
    pr = m.peer
    if pr.state != PeerStatus.UP:
        return False, f"{pr.name} is not up ({pr.state}): it cannot be told; run `hasync standby` on {pr.name} when it is up", []
    if m.operator_standby or m.failed or m.role == Role.STOP_FAILED:
        why = "is in operator standby" if m.operator_standby else ("could not stop its resources" if m.role == Role.STOP_FAILED else "failed to run the chain")
        return False, f"this node {why}: nobody would run the chain; not putting {pr.name} in standby", []
    out: list[Action] = [Event("command", f"operator: standby {pr.name} (kept there until `hasync online {pr.name}`)", Level.INFO)]
    m._request(REQ_RELEASE)
    m.request_operator = True
    out.append(Send())
    out += m._decide(now)
    return True, f"asking {pr.name} to go standby", out


def _takeover(m: Membership, now: float) -> Reply:
    pr = m.peer
    if m.role == Role.STOP_FAILED:
        return False, "this node could not stop its resources (stop-failed): fix that first (`hasync cleanup`)", []
    if m.settings.stopped:
        return False, "the chain is stopped on purpose (`hasync stop`): `hasync start` first", []
    m.standby_req = False
    m.failed = False
    out: list[Action] = [Event("command", "operator: takeover", Level.INFO)]
    out += set_operator_standby(m, False)
    # until this node runs the chain (and after: the peer stands by): asked again of a
    # peer that could not be asked (not heard yet, looked dead) or forgot it (its daemon
    # restarted before it released); with several groups a group that runs here already
    # stays here when a fault moves it meanwhile
    m.takeover_wanted = True
    m.takeover_overridden = False
    m.takeover_done = False
    if m.role == Role.ACTIVE:
        return True, "already active", out
    if pr.state in ALIVE:
        m._request(REQ_RELEASE)
        m.request_operator = False
    out.append(Send())
    out += m._decide(now)
    return True, "taking over", out


def _online(m: Membership, now: float) -> Reply:
    was = m.operator_standby or m.standby_req or m.failed
    m.standby_req = False
    m.failed = False
    out: list[Action] = [Event("command", "operator: online", Level.INFO)]
    out += set_operator_standby(m, False)
    out.append(Send())
    out += m._decide(now)
    return True, "online: this node may run the chain" if was else "already online", out


def _online_peer(m: Membership, now: float) -> Reply:
    pr = m.peer
    if pr.state != PeerStatus.UP:
        return False, f"{pr.name} is not up ({pr.state}): it cannot be told; run `hasync online` on {pr.name} when it is up", []
    m._request(REQ_TAKE)  # clears the receiver's standby (operator and handover) and failed marks
    return True, f"asking {pr.name} to go online", [Event("command", f"operator: online {pr.name}", Level.INFO), Send()]


def _maintenance(m: Membership, now: float, on: bool, force: bool) -> Reply:
    pr = m.peer
    if on == m.settings.maintenance:
        return True, f"maintenance mode is already {'on' if on else 'off'}", []
    if on and m.job is not None and m.job.kind in MOVING_JOBS:
        return False, f"a {m.job.kind} runs here ({m.job.reason}): wait until it is over (`hasync status`), then again", []
    if not on and pr.state != PeerStatus.UP and not force:
        what = {PeerStatus.DEAD: f"fence {pr.name} and take the chain over (rule 5)",
                PeerStatus.UNKNOWN: f"wait initdead for {pr.name}, then fence it and take the chain over",
                PeerStatus.LEFT: f"take the chain over ({pr.name} left cleanly)",
                PeerStatus.UNVERIFIED: "wait until it verifies the peer"}.get(pr.state, "act")
        return False, (f"{pr.name} is {pr.state}: leaving maintenance now makes this node {what}; start {pr.name}'s daemon "
                       "first (it takes maintenance off with this node), or --force"), []
    out: list[Action] = [Event("command", f"operator: maintenance {'on' if on else 'off'}", Level.INFO)]
    out += change_settings(m, now, Settings(on, m.settings.stopped), "hasync maintenance", mine=True)
    out += m._decide(now)
    if pr.state != PeerStatus.UP:
        return True, f"maintenance {'on' if on else 'off'} here; {pr.name} is {pr.state}: it takes it when it hears this node", out
    return True, f"maintenance {'on' if on else 'off'}", out


def _stop_start(m: Membership, now: float, stop: bool) -> Reply:
    if stop == m.settings.stopped:
        return True, "the chain is already stopped on purpose" if stop else "the chain is not stopped (nothing to start)", []
    if stop:
        m.takeover_wanted = False
    out: list[Action] = [Event("command", f"operator: {'stop' if stop else 'start'} (cluster-wide)", Level.INFO)]
    out += change_settings(m, now, Settings(m.settings.maintenance, stop), f"hasync {'stop' if stop else 'start'}", mine=True)
    out += m._decide(now)
    if stop:
        return True, "stopping the chain on both nodes", out
    return True, "the chain may run again: the usual rules decide where", out


def _cleanup(m: Membership, now: float, resource: str) -> Reply:
    if resource and resource not in m.cfg.resources:
        return False, f"no resource {resource!r}; the chain: {', '.join(m.cfg.resources)}", []
    if m.role == Role.PROBING:
        return False, "the start-up probe runs: wait for it (`hasync status`)", []
    if m.gate:
        return False, f"a takeover is under way ({m.gate}): wait for it", []
    m.cleanup_wanted = resource
    m.cleanup_ok = None
    out: list[Action] = [Event("command", f"operator: cleanup{' ' + resource if resource else ''}", Level.INFO)]
    out += m._decide(now)
    return True, "probing the chain" + (" (after the running job)" if m.job is not None and m.job.reason != CLEANUP else ""), out


def command_result(m: Membership, cmd: str, node: str = "") -> bool | None:
    """Whether an accepted operator command is done: None while it is under way, else True
    (it did what was asked) or False (it cannot: stop-failed, the chain failed ...)."""
    pr = m.peer
    up = pr.state == PeerStatus.UP
    if cmd == Command.CLEANUP:
        busy = m.cleanup_wanted is not None or (m.job is not None and m.job.reason == CLEANUP)
        return None if busy else m.cleanup_ok
    if cmd == Command.MAINTENANCE_ON:
        return True if not up or pr.flags & F_MAINTENANCE else None
    if cmd == Command.ONLINE and node == pr.name:
        return True if up and not pr.flags & (F_OPERATOR_STANDBY | F_STANDBY) else None
    if cmd == Command.ONLINE:
        return True
    if m.job is not None or m.gate:
        return None
    if cmd == Command.MAINTENANCE_OFF:
        return True if m.role != Role.PROBING and not m.resume_probe and not (up and pr.flags & F_MAINTENANCE) else None
    peer_stuck = up and pr.role == Role.STOP_FAILED
    if cmd == Command.STOP:
        if m.role == Role.STOP_FAILED or peer_stuck:
            return False
        if m.role == Role.STANDBY and not m.owned and (not up or (pr.flags & F_STOPPED and not pr.holds)):
            return True
        return None
    if cmd == Command.START:
        if m.role == Role.ACTIVE or (up and pr.role == Role.ACTIVE):
            return True
        here_out = m.failed or m.operator_standby or m.role == Role.STOP_FAILED
        return False if here_out and (not up or not pr.eligible or peer_stuck) else None
    if cmd == Command.STANDBY and node == pr.name:
        if m.role == Role.STOP_FAILED or m.failed or peer_stuck:
            return False
        return True if up and pr.flags & F_OPERATOR_STANDBY and not pr.holds and m.role == Role.ACTIVE else None
    if cmd in (Command.STANDBY, HANDOVER):
        if m.role == Role.ACTIVE and not (m.standby_req or m.operator_standby):
            return False  # the chain came back here: the peer went standby (its request cleared ours) or could not run it
        if m.role == Role.STANDBY and (pr.role == Role.ACTIVE or not up):
            return pr.role == Role.ACTIVE and up  # the peer took it, or nobody can
        if m.role == Role.STOP_FAILED:
            return False
        if m.role == Role.STANDBY and up and pr.flags & F_FAILED:
            return False  # stopped here, but the chain failed on the peer
    elif cmd == Command.TAKEOVER:
        # (with several groups each group answers once it ran here: an auto_failback of one
        # group after the peer rebooted must not leave the whole command unanswered)
        if m.role == Role.ACTIVE or m.takeover_done:
            return True
        if m.role == Role.STOP_FAILED or (m.role == Role.STANDBY and m.failed):
            return False
        if m.takeover_overridden and m.role in (Role.STANDBY, Role.STOPPING):
            return False  # the peer's takeover came after ours: it runs the chain
    return None


# --------------------------------------------------------------------------- settings


def operator_warnings(m: Membership) -> None:
    w = m.warnings
    for key, on, text in (
        ("maintenance", m.settings.maintenance,
         "MAINTENANCE MODE: nothing is started, stopped, restarted or fenced, on either node (`hasync maintenance off`)"),
        ("stopped", m.settings.stopped, "the chain is stopped on purpose on both nodes (`hasync start`)"),
        ("operator-standby", m.operator_standby,
         f"{m.cfg.local} is in operator standby: it does not run the chain, not even if {m.cfg.peer} fails (`hasync online`)"),
    ):
        if on:
            w[key] = text
        else:
            w.pop(key, None)


def set_operator_standby(m: Membership, on: bool) -> list[Action]:
    out: list[Action] = []
    if on != m.operator_standby:
        m.operator_standby = on
        m._persist(out, operator_standby=on)
        operator_warnings(m)
        out.append(Send())
    return out


def chain_runs(m: Membership) -> bool:
    """The chain runs or starts somewhere, as both nodes see it (for the settings merge)."""
    pr = m.peer
    running = (Role.STARTING, Role.ACTIVE)
    return bool(m.owned or pr.owned) or m.role in running or (pr.state == PeerStatus.UP and pr.role in running)


def merge_settings(m: Membership, now: float) -> list[Action]:
    """A fresh packet: take the peer's cluster-wide settings when they are newer (or merge)."""
    pr = m.peer
    theirs = Settings.of(pr.flags)
    if theirs == m.settings:
        if m.settings_new:  # the peer shows our change: it has it
            out: list[Action] = [Event("settings", f"{pr.name} has taken this node's settings ({theirs.describe()})", Level.INFO)]
            m.settings_new = False
            m._persist(out, settings_new=False)
            return out + [Send()]
        return []
    merged = operator.merge(m.settings, m.settings_new, theirs, bool(pr.flags & F_SETTINGS_NEW), chain_runs(m))
    if merged == m.settings:
        return []  # ours is newer: the peer takes it
    return change_settings(m, now, merged, f"from {pr.name}", mine=False)


def change_settings(m: Membership, now: float, new: Settings, why: str, *, mine: bool) -> list[Action]:
    """Take *new* (an operator command here when *mine*, else the peer's): persisted at
    once; entering maintenance abandons a takeover that only waits, leaving it probes again."""
    old, m.settings = m.settings, new
    m.settings_new = mine
    out: list[Action] = []
    m._persist(out, maintenance=new.maintenance, stopped=new.stopped, settings_new=mine)
    operator_warnings(m)
    if new.maintenance != old.maintenance:
        if new.maintenance:
            out.append(Event("maintenance", f"maintenance mode on ({why}): nothing is started, stopped, restarted or "
                                            "fenced until `hasync maintenance off`", Level.WARN))
            m.reprobe_at = None  # leaving maintenance probes again anyway
            m.probe_retry_at = None
            m.resume_probe = False
            if m.gate and m.job is None:
                out += m._abort_gate("maintenance mode")
        else:
            out.append(Event("maintenance", f"maintenance mode off ({why}): probing the chain again, then the usual rules", Level.WARN))
            m.resume_probe = True
    if new.stopped != old.stopped:
        out.append(Event("stopped", f"the chain is stopped on purpose ({why}) until `hasync start`" if new.stopped
                         else f"the chain may run again ({why})", Level.WARN))
    return out + [Send()]


def resume(m: Membership, now: float) -> list[Action]:
    """Maintenance is over: probe the chain as at start-up (what runs may have changed by
    hand), with the failure marks forgotten as a restart would (the operator standby stays)."""
    out: list[Action] = []
    m.resume_probe = False
    m.failed = False
    m.restarts = {}
    m.probe_failures = 0
    m.known_stopped = False
    m._set_role(Role.PROBING, out, RESUME)
    out.append(Event("probe", "probing the chain after maintenance: the start-up rules decide what happens to it", Level.INFO))
    out.append(m._new_job(JobKind.PROBE, reason=RESUME))
    return out


# --------------------------------------------------------------------------- cleanup


def start_cleanup(m: Membership, now: float) -> list[Action]:
    rid = m.cleanup_wanted or ""
    m.cleanup_wanted = None
    m.cleanup_resource = rid
    return [Event("cleanup", f"cleanup{' of ' + rid if rid else ''}: probing the chain", Level.INFO), m._new_job(JobKind.PROBE, reason=CLEANUP)]


def cleanup_done(m: Membership, now: float, res: JobResult, found: list[str]) -> list[Action]:
    """The cleanup's probe is back: clear what it says is safe (operator.cleanup_verdict)."""
    out: list[Action] = []
    bad = res.detail.removeprefix("status failed: ").split(", ") if not res.ok and res.detail else []
    pr = m.peer
    v = operator.cleanup_verdict(CleanupInput(
        role=m.role, failed=m.failed, restarts=dict(m.restarts), resources=m.cfg.resources, running=tuple(found),
        cannot_tell=tuple(f"{r}: its status failed" for r in bad), resource=m.cleanup_resource,
        peer_holds=pr.state == PeerStatus.UP and pr.holds, peer=pr.name))
    if res.ok or not bad:
        m.owned = list(found)
    for line in v.lines:
        out.append(Event("cleanup", line, Level.INFO if v.ok else Level.WARN))
    if v.role is not None and v.role != m.role:
        m.warnings.pop("stop", None)
        if v.role == Role.STANDBY:
            m.known_stopped = True
        else:
            m.next_monitor = {rid: now + mon.interval for rid, mon in m.monitors.items()}
        m._set_role(v.role, out, "cleanup")
    if v.clear_failed:
        m.failed = False
    for rid in v.clear_restarts:
        m.restarts.pop(rid, None)
    m.cleanup_ok = v.ok
    return out

