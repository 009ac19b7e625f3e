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
