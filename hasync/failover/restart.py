"""`systemctl restart hasync-failover` leaves the chain where it runs (pure).

A SIGTERM means "leave the cluster": the daemon stops the chain here and hands it to the
peer (a ``leaving`` heartbeat, no fence). systemd sends the same SIGTERM for a restart,
and there a new daemon starts at once, finds the chain running and adopts it (the
start-up probe, docs/failover.md): handing the chain over first would be a failover
nobody asked for (the clients wait out a stop here and a start there). So on SIGTERM the
daemon asks systemd what its unit's job is (``systemctl list-jobs``): a ``restart`` job
in its stop phase means a restart, and a daemon with nothing under way exits without
stopping anything ("detaches"). Anything else (``systemctl stop``, a shutdown, a SIGTERM
from anyone else, no systemd) leaves as before.

A detached node sends no ``leaving``: to the peer it is a silent node until the new
daemon's heartbeats arrive. If that takes longer than ``deadtime`` the peer declares it
dead and fences it before taking over (safe, but a failover): the restart must fit in
deadtime, as the rolling upgrade's (docs/failover.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from hasync.failover.membership_data import Job
from hasync.failover.membership_groups import working
from hasync.failover.states import Gate, Role


def unit_of_cgroup(text: str) -> str:
    """The systemd service this process runs in, from /proc/self/cgroup ("" when none):
    the unified hierarchy's line (``0::/system.slice/hasync-failover.service``), else the
    ``name=systemd`` one of a hybrid host."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    for key in ("", "name=systemd"):
        last = paths.get(key, "").rstrip("/").rsplit("/", 1)[-1]
        if last.endswith(".service"):
            return last
    return ""


def list_jobs_argv(unit: str) -> tuple[str, ...]:
    return ("systemctl", "list-jobs", "--no-legend", "--full", "--no-pager", unit)


def job_type(listing: str, unit: str) -> str:
    """The type of *unit*'s pending job in ``systemctl list-jobs --no-legend`` output
    (columns JOB UNIT TYPE STATE), "" when it has none."""
    for line in listing.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == unit:
            return f[2]
    return ""


def detach_refusal(role: Role, jobs: Iterable[Job | None], gate: Gate, leaving: bool) -> str:
    """Why this daemon must not exit leaving the chain as it is ("" when it may): only a
    node at rest detaches. A job under way in any group (a start, a stop, a restart, a
    fence) would be cut in the middle, a takeover gate half passed: those leave the usual
    way. An interval monitor is no such job: it reads and changes nothing, and the next
    daemon probes every resource before it does anything. (On an active node the monitors
    follow one another: in the VM field run under systemd, 2026-12-07, a 5 s monitor of
    2-3 s was under way at the restart's SIGTERM and the restart became a failover.)"""
    if leaving:
        return "already leaving"
    busy = working(jobs)
    if busy:
        return f"a job is under way ({busy[0].kind.value})"
    if gate:
        return "a takeover is being decided"
    if role not in (Role.ACTIVE, Role.STANDBY):
        return f"role {role.value}"
    return ""
