"""What a resource's operations run (pure): the argv and environment of start, stop and
status -- and promote/demote of a promotable OCF agent -- for every kind hasync supports.
The chain (hasync.failover.chain), the hand runs (`hasync resource ID ACTION`), the
effective config, the Pacemaker export and doctor's check that the chain's programs are
installed all take them from here, so they never disagree.

- heartbeat: ``/etc/ha.d/resource.d/NAME`` (else ``/etc/init.d/NAME``) ``arg... start|stop|status``
- lsb:       ``/etc/init.d/NAME start|stop|status`` (status 0 = running)
- systemd:   ``systemctl start|stop UNIT``, ``systemctl is-active UNIT`` (the state word is read)
- ocf:       ``$OCF_ROOT/resource.d/PROVIDER/AGENT start|stop|monitor`` with OCF_RESKEY_*;
             a promotable agent ``start`` + ``promote``, ``demote``, ``monitor`` (ocf.py)
- service:   the distro profile's unit names for a logical service, via systemd or LSB

The NFS server's stop, of any kind, ends with ``nfsd_down``: the kernel's nfsd must be
down when the resource says stopped (see NFSD_DOWN).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from hasync import model
from hasync.operations import ocf
from hasync.operations.ocf import OCF_ROOT

RESOURCE_D = "/etc/ha.d/resource.d"
INIT_D = "/etc/init.d"


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 20.0


# The NFS server resource's stop is followed by this check, whatever its kind: the kernel's
# nfsd must be down (no threads) once the resource says stopped. Debian's nfs-kernel-server
# init script (the nfsserver agent's stop without systemd, and the lsb/heartbeat kinds)
# stops nfsd with `start-stop-daemon --stop --name nfsd`, which does not reach the kernel's
# nfsd threads: nfsd ran on with its NFSv4 state on the node that had handed the chain over,
# the next start there was no start at all (no grace period, the old client records), and
# every client's lock reclaim was refused -- the VM scenario's migrate then crash lost all
# its v3 and v4.2 locks ("lockd: spurious grace period reject"). Under systemd
# nfs-server.service's stop runs `rpc.nfsd 0` and this finds nothing to do.
NFSD_THREADS = "/proc/fs/nfsd/threads"
# lockd stops with nfsd and tells statd to forget each client it monitored (SM_UNMON); with
# statd already stopped (the agent's init-script mode stops it right after the script)
# each call hung until its RPC timed out: the NFS server's stop took 64 s on the VMs (sysrq-w:
# rpc.nfsd in nsm_unmonitor <- nlm_gc_hosts <- lockd_down). So when nfsd has to be brought
# down and statd is gone, a statd runs for the moment (--no-notify; the lists it then
# drops were saved by the agent to sm.ha first, which its next start puts back -- as under
# systemd, where nfs-server's stop runs while statd still runs).
NFSD_DOWN = (
    't="${NFSD_THREADS:-' + NFSD_THREADS + '}"; n=$(cat "$t" 2>/dev/null) || exit 0; '
    '[ "${n:-0}" -gt 0 ] 2>/dev/null || exit 0; '
    'echo "the kernel nfsd still ran $n threads after the NFS server stopped: rpc.nfsd 0" >&2; '
    's=; if ! pgrep -x rpc.statd >/dev/null 2>&1 && command -v rpc.statd >/dev/null 2>&1 '
    '&& rpc.statd --no-notify 2>/dev/null; then s=1; fi; '
    'rpc.nfsd 0 2>/dev/null || echo 0 > "$t"; i=0; rc=0; '
    'while [ "$(cat "$t" 2>/dev/null || echo 0)" -gt 0 ]; do i=$((i+1)); '
    'if [ $i -ge 100 ]; then echo "nfsd still runs $(cat "$t") threads after rpc.nfsd 0" >&2; rc=1; break; fi; sleep 0.1; done; '
    '[ -z "$s" ] || pkill -x rpc.statd; exit $rc'
)
NFS_SERVER_NAMES = ("nfsserver", "nfs-server", "nfs-kernel-server")


def is_nfs_server(res: model.Resource) -> bool:
    """The kernel NFS server's resource: ocf:heartbeat:nfsserver, or a unit, script or
    service named nfs-server, nfs-kernel-server or nfsserver."""
    if res.type == "ocf":
        return res.agent == "heartbeat:nfsserver"
    return res.agent.rsplit("/", 1)[-1].removesuffix(".service") in NFS_SERVER_NAMES


def nfsd_down(timeout: float) -> Command:
    return Command(("/bin/sh", "-c", NFSD_DOWN, "nfsd-down"), (), timeout)


def heartbeat_script(name: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """heartbeat's lookup: resource.d first, then init.d (an absolute path is kept)."""
    if name.startswith("/"):
        return name
    p = f"{RESOURCE_D}/{name}"
    return p if exists(p) else f"{INIT_D}/{name}"


def service_units(res: model.Resource, profile: model.Profile | None) -> tuple[str, ...]:
    if profile is None:
        return (res.agent,)
    names = profile.services.get(res.agent)
    return tuple(names) if names else (res.agent,)


def commands(
    res: model.Resource,
    op: str,
    *,
    profile: model.Profile | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    ocf_root: str = OCF_ROOT,
    interval: float = 0.0,
) -> tuple[Command, ...]:
    """The commands for *op* (start, stop, status; promote, demote of a promotable OCF
    agent) on *res*, run in order until one fails; status of OCF is ``monitor``
    (*interval*: a recurring monitor's period, 0 a probe)."""
    if op not in ("start", "stop", "status") and not (op in ("promote", "demote") and res.type == "ocf" and res.promotable):
        raise ValueError(f"unknown operation {op!r}")
    cmds = _commands(res, op, profile, exists, ocf_root, interval)
    if op == "stop" and is_nfs_server(res):
        cmds += (nfsd_down(ocf.action_timeout(res, op)),)
    return cmds


def _commands(res: model.Resource, op: str, profile: model.Profile | None, exists: Callable[[str], bool],
              ocf_root: str, interval: float) -> tuple[Command, ...]:
    t = ocf.action_timeout(res, op)
    if res.type == "heartbeat":
        return (Command((heartbeat_script(res.agent, exists), *res.args, op), (), t),)
    if res.type == "lsb":
        script = res.agent if res.agent.startswith("/") else f"{INIT_D}/{res.agent}"
        return (Command((script, *res.args, op), (), t),)
    if res.type == "systemd":
        return (_systemctl(res.agent, op, t),)
    if res.type == "ocf":
        # a promotable agent: start+promote, demote, monitor (hasync.operations.ocf)
        provider, _, agent = res.agent.partition(":")
        path = f"{ocf_root}/resource.d/{provider}/{agent}"
        return tuple(Command((path, a), ocf.environment(res, a, ocf_root=ocf_root, interval=interval), ocf.action_timeout(res, a))
                     for a in ocf.actions(res, op))
    if res.type == "service":
        units = service_units(res, profile)
        sysv = profile is not None and profile.init == "sysv"
        cmds = tuple(
            Command((f"{INIT_D}/{u}", op), (), t) if sysv else _systemctl(u, op, t) for u in units
        )
        return cmds if op != "stop" else tuple(reversed(cmds))
    raise ValueError(f"unknown resource type {res.type!r}")


def _systemctl(unit: str, op: str, t: float) -> Command:
    if op == "status":
        # no --quiet: the state word tells "inactive" (stopped) from "deactivating" (not yet)
        return Command(("systemctl", "is-active", unit), (), t)
    return Command(("systemctl", op, unit), (), t)
