"""`hasync config show` (crm configure show): the config as hasync understands it --
every default filled in, durations in seconds -- and what the daemon will run: each
resource's commands from the chain's own builder, the fence command per node (pure)."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from hasync import model, operations
from hasync.failover.fencing import fence_command, self_fence_command


def _plain(obj: Any) -> Any:
    """Dataclasses as dicts without ``src`` (where a key came from), tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != "src"}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _line(cmd: operations.Command) -> str:
    env = [f"{k}={shlex.quote(v)}" for k, v in cmd.env if k.startswith("OCF_RESKEY_") and "CRM_meta" not in k]
    return " ".join([*env, *map(shlex.quote, cmd.argv)])


def resolved(res: model.Resource, profile: model.Profile | None) -> dict[str, list[str]]:
    """op -> the command lines the chain runs for *res* (monitor: its status check)."""
    out = {}
    for op, chain_op in (("start", "start"), ("stop", "stop"), ("monitor", "status"), ("promote", "promote"), ("demote", "demote")):
        try:
            out[op] = [_line(c) for c in operations.commands(res, chain_op, profile=profile)]
        except ValueError:
            continue  # not promotable
    return out


def effective(cluster: model.Cluster) -> dict:
    doc = _plain(dataclasses.replace(cluster, profile=None))
    del doc["profile"]  # the distro profile's tables: its name is [cluster].profile
    doc["cluster"]["profile_init"] = cluster.profile.init if cluster.profile else None
    doc["resources"] = [dict(_plain(r), commands=resolved(r, cluster.profile)) for r in cluster.resources]
    f = cluster.fencing
    doc["fencing"]["resolved"] = {
        n.name: {"fence": " ".join(map(shlex.quote, fence_command(f, n).argv)) if f.command else None,
                 "on_stop_failure": " ".join(map(shlex.quote, self_fence_command(f, n, f.on_stop_failure).argv))
                 if f.on_stop_failure != "block" else "block (wait for an operator: `hasync cleanup`)"}
        for n in cluster.nodes}
    return doc
