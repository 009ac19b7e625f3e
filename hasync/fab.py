"""The admin-side remote runner behind failover/fabfile.py: run one `hasync` command on
the cluster's nodes over ssh (fabric) and judge each host's outcome.

The fabfile's tasks are thin: they load cluster.toml, build a group of connections to
the nodes' addresses and call one function here. Everything that decides something
(which node is active, which command to send, how a host's outcome is judged) lives in
this module and is tested with ``invoke.MockContext`` standing in for the connections.

A host's outcome is one :class:`HostResult`: the command ran and exited 0, it ran and
failed (exit code and output kept), or it could not run at all (ssh refused, host
unreachable, timeout: ``exit_code`` is None and ``error`` says why). One failing host
never hides the others' results.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fabric import Connection, ThreadingGroup
from fabric.exceptions import GroupException
from invoke.exceptions import CommandTimedOut, UnexpectedExit
from rich.table import Table

from hasync import config
from hasync.config import DEFAULT_CONFIG as DEFAULT_CONFIG  # re-exported (fab.DEFAULT_CONFIG)

DEFAULT_TIMEOUT = 120.0  # seconds a remote hasync command may take (migrate waits for the chain)


@dataclass(frozen=True)
class HostResult:
    """What happened on one node."""

    node: str
    address: str
    command: str
    exit_code: int | None  # None: the command could not be run (connection failure)
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # why it could not run, or why the output was unusable
    data: Any = None  # parsed JSON output (status --json), when asked for

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.error


class NodeConnection:
    """One node's connection, named after the node.

    ``runner`` is anything with ``run(command, **kwargs)`` returning an invoke-style
    result (``.exited``, ``.stdout``, ``.stderr``): a ``fabric.Connection`` on a real
    cluster, an ``invoke.MockContext`` in tests. Identity-hashed, so it can key a
    ``fabric.GroupResult`` (invoke contexts themselves are not hashable).
    """

    def __init__(self, node: str, address: str, runner: Any):
        self.node = node
        self.address = address
        self.runner = runner

    def run(self, command: str, **kwargs: Any) -> Any:
        return self.runner.run(command, **kwargs)

    def close(self) -> None:
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"NodeConnection({self.node!r}, {self.address!r})"


# --------------------------------------------------------------------------- config


def config_path(explicit: str | None = None) -> str:
    """The local cluster.toml: the task's --config, then $HASYNC_CONFIG, then the default
    (the one rule, ``hasync.config.config_path``)."""
    return config.config_path(explicit)


def ssh_key(cluster: Any, override: str | None = None) -> str | None:
    """The private key to log in with: --key, then $HASYNC_SSH_KEY, then [sync].ssh_key."""
    for candidate in (override, os.environ.get("HASYNC_SSH_KEY"), cluster.sync.ssh_key):
        if candidate:
            return candidate
    return None


def select_nodes(cluster: Any, only: str | None = None) -> list[Any]:
    """The nodes a task runs on: all of them, or the comma-separated names in *only*."""
    nodes = list(cluster.nodes)
    if not only:
        return nodes
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    by_name = {n.name: n for n in nodes}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValueError(
            f"unknown node(s) {', '.join(unknown)}; {cluster.path} names {', '.join(by_name)}"
        )
    return [by_name[w] for w in wanted]


def remote_command(
    subcommand: Sequence[str], *, hasync: str = "hasync", remote_config: str | None = None
) -> str:
    """The shell command run on a node, e.g. ``hasync -c /etc/hasync/cluster.toml status --json``."""
    argv: list[str] = [hasync]
    if remote_config:
        argv += ["-c", remote_config]
    argv += list(subcommand)
    return shlex.join(argv)


# --------------------------------------------------------------------------- groups


def fabric_group(
    nodes: Iterable[Any],
    *,
    key: str | None,
    user: str = "root",
    port: int = 22,
    connect_timeout: float = 10.0,
) -> Any:
    """A ``fabric.ThreadingGroup`` of :class:`NodeConnection` to the nodes' addresses."""
    connect_kwargs: dict[str, Any] = {"look_for_keys": key is None, "allow_agent": key is None}
    if key:
        connect_kwargs["key_filename"] = [key]
    conns = [
        NodeConnection(
            n.name,
            n.address,
            Connection(
                n.address,
                user=user,
                port=port,
                connect_timeout=connect_timeout,
                connect_kwargs=dict(connect_kwargs),
            ),
        )
        for n in nodes
    ]
    return ThreadingGroup.from_connections(conns)


def run_on(group: Any, command: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[HostResult]:
    """Run *command* on every connection of *group* at once; one result per host, in order."""
    try:
        group_result = group.run(command, hide=True, warn=True, in_stream=False, timeout=timeout)
    except GroupException as e:  # some hosts raised (connection refused, timeout ...)
        group_result = e.result
    return results_from_group(group, group_result, command)


def results_from_group(group: Iterable[Any], group_result: Any, command: str) -> list[HostResult]:
    """Turn a ``fabric.GroupResult`` (connection -> Result or exception) into HostResults."""
    out: list[HostResult] = []
    for cxn in group:
        node = str(getattr(cxn, "node", None) or getattr(cxn, "host", None) or cxn)
        address = str(getattr(cxn, "address", None) or getattr(cxn, "host", None) or "")
        if cxn not in group_result:
            out.append(HostResult(node, address, command, None, error="no result"))
            continue
        res = group_result[cxn]
        if isinstance(res, BaseException):
            out.append(HostResult(node, address, command, None, error=describe_error(res)))
            continue
        out.append(
            HostResult(
                node,
                address,
                command,
                int(res.exited) if res.exited is not None else None,
                stdout=res.stdout or "",
                stderr=res.stderr or "",
            )
        )
    return out


def describe_error(exc: BaseException) -> str:
    """One line for a host that could not run the command."""
    if isinstance(exc, CommandTimedOut):
        return f"timed out after {exc.timeout}s"
    if isinstance(exc, UnexpectedExit):
        return f"exited {exc.result.exited}"
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {text[-1]}" if text else name


def with_json(results: Iterable[HostResult]) -> list[HostResult]:
    """Parse each successful host's stdout as JSON (status --json); bad JSON marks it failed."""
    out = []
    for r in results:
        if r.exit_code is None:
            out.append(r)
            continue
        try:
            data = json.loads(r.stdout)
        except ValueError as e:
            if r.ok:
                out.append(replace(r, error=f"unreadable JSON from `{r.command}`: {e}"))
            else:
                out.append(r)
            continue
        out.append(replace(r, data=data))
    return out


# --------------------------------------------------------------------------- status


def roles(data: Any) -> dict[str, str]:
    """node name -> role ("active", "standby", "dead", ...) from one `hasync status --json`.

    The daemon's shape is ``{"node": local, "role": r, "peer": {"node", "state", "role"}}``
    (a peer whose state is not "up" is reported as "dead"). Also accepted:
    ``{"nodes": [{"name", "role"}, ...]}``, ``{"nodes": {name: {"role"}}}`` and
    ``{"nodes": {name: "role"}}``; anything else gives {}.
    """
    if not isinstance(data, dict):
        return {}
    out: dict[str, str] = {}
    if isinstance(data.get("node"), str) and "role" in data:
        out[data["node"]] = str(data["role"])
        peer = data.get("peer")
        if isinstance(peer, dict) and isinstance(peer.get("node"), str):
            state = str(peer.get("state") or "")
            out[peer["node"]] = str(peer.get("role") or "") if state in ("", "up") else "dead"
        return out
    nodes = data.get("nodes")
    if isinstance(nodes, list):
        for n in nodes:
            if isinstance(n, dict) and "name" in n:
                out[str(n["name"])] = str(n.get("role") or n.get("state") or "")
    elif isinstance(nodes, dict):
        for name, v in nodes.items():
            if isinstance(v, dict):
                out[str(name)] = str(v.get("role") or v.get("state") or "")
            else:
                out[str(name)] = str(v)
    return out


ACTIVE_ROLES = ("active", "primary", "master", "owner")


def _holds(r: HostResult) -> list[str]:
    """Nodes a status says hold the chain: role active, or an `owned` list not empty."""
    d = r.data
    out = []
    if isinstance(d, dict) and isinstance(d.get("node"), str):
        if d.get("owned"):
            out.append(d["node"])
        peer = d.get("peer")
        if isinstance(peer, dict) and peer.get("state") == "up" and peer.get("owned"):
            out.append(str(peer.get("node")))
    return out


def active_nodes(results: Iterable[HostResult]) -> list[str]:
    """The nodes that some reachable node reports as active (holding the chain)."""
    seen: list[str] = []
    for r in results:
        if not r.ok or r.data is None:
            continue
        for name, role in roles(r.data).items():
            if role.lower() in ACTIVE_ROLES and name not in seen:
                seen.append(name)
        for name in _holds(r):
            if name not in seen:
                seen.append(name)
    return seen


def group_owners(results: Iterable[HostResult]) -> dict[str, str]:
    """Resource group id -> the node that runs it, from the reachable nodes' status
    (``groups[].owner``); "both" when that is what a node sees, or when two nodes name
    different owners; a group no node sees running is left out."""
    out: dict[str, str] = {}
    for r in results:
        d = r.data if r.ok else None
        for g in (d.get("groups") or ()) if isinstance(d, dict) else ():
            if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not isinstance(g.get("owner"), str):
                continue
            seen = out.setdefault(g["id"], g["owner"])
            if seen != g["owner"]:
                out[g["id"]] = "both"
    return out


def status_line(r: HostResult) -> str:
    """A short human summary of one host's status result."""
    if r.exit_code is None:
        return r.error
    if r.error:
        return r.error
    if not r.ok:
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()
        return f"exit {r.exit_code}" + (f": {tail[-1]}" if tail else "")
    rl = roles(r.data)
    if rl:
        owners = group_owners([r])
        return ", ".join(f"{n}={role}" for n, role in rl.items()) + (
            "; groups: " + ", ".join(f"{g}@{o}" for g, o in owners.items()) if owners else "")
    return (r.stdout.strip().splitlines() or ["ok"])[-1]


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    """Which nodes run which hasync subcommand (or why nothing can be done)."""

    subcommand: tuple[str, ...]
    nodes: tuple[str, ...]
    problem: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


SEVERAL_ACTIVE_HINT = " (with resource groups both nodes serve: name the node with --node, or one group with --group)"


def _other(all_nodes: Sequence[str], node: str) -> str:
    return next((n for n in all_nodes if n != node), "")


def plan_standby(all_nodes: Sequence[str], active: Sequence[str], node: str | None, *, group: str = "",
                 owners: Mapping[str, str] | None = None) -> Plan:
    """`standby`: on the given node, else on the active one (it hands the chain over).
    With *group*: that group only, `migrate GROUP --to <the other node>` on the node that
    runs it (--node, else its owner in *owners*)."""
    if group:
        src = node or (owners or {}).get(group, "")
        if src not in all_nodes:
            why = "runs on both nodes" if src == "both" else "runs nowhere"
            return Plan(("migrate", group), (), problem=f"group {group!r} {why} as the nodes see it; name the node to move it from with --node")
        return Plan(("migrate", group, "--to", _other(all_nodes, src)), (src,))
    if node:
        return Plan(("standby",), (node,))
    if len(active) == 1:
        return Plan(("standby",), (active[0],))
    if not active:
        return Plan(("standby",), (), problem="no node reports itself active; name one with --node")
    return Plan(("standby",), (), problem=f"several nodes look active ({', '.join(active)}); name one with --node" + SEVERAL_ACTIVE_HINT)


def plan_takeover(all_nodes: Sequence[str], active: Sequence[str], node: str | None, *, group: str = "",
                  owners: Mapping[str, str] | None = None) -> Plan:
    """`takeover`: on the given node, else on the node that is not active. With *group*:
    that group only, `migrate GROUP --to NODE` on the node that takes it (--node, else the
    node that does not run it)."""
    if group:
        owner = (owners or {}).get(group, "")
        to = node or (_other(all_nodes, owner) if owner in all_nodes else "")
        if not to:
            return Plan(("migrate", group), (), problem=f"cannot tell which node should take group {group!r}; use --node")
        return Plan(("migrate", group, "--to", to), (to,))
    if node:
        return Plan(("takeover",), (node,))
    if len(active) == 1 and len(all_nodes) == 2:
        other = [n for n in all_nodes if n != active[0]]
        return Plan(("takeover",), (other[0],))
    if not active:
        return Plan(("takeover",), (), problem="no node reports itself active; name the one to take over with --node")
    return Plan(("takeover",), (), problem=f"cannot tell which node should take over (active: {', '.join(active)}); use --node"
                + SEVERAL_ACTIVE_HINT)


def plan_migrate(
    all_nodes: Sequence[str], active: Sequence[str], to: str, *, dry_run: bool = False, group: str = "",
    owners: Mapping[str, str] | None = None,
) -> Plan:
    """`migrate [GROUP] --to NODE`: run once, on the node that runs the chain (the group)
    when known, else on the target."""
    if to not in all_nodes:
        return Plan(("migrate",), (), problem=f"--to {to!r} is not a node of this cluster ({', '.join(all_nodes)})")
    sub = ("migrate", *((group,) if group else ()), "--to", to) + (("--dry-run",) if dry_run else ())
    if group:
        owner = (owners or {}).get(group, "")
        return Plan(sub, (owner if owner in all_nodes else to,))
    where = active[0] if len(active) == 1 else to
    return Plan(sub, (where,))


def plan_sync(all_nodes: Sequence[str], active: Sequence[str], node: str | None, *, dry_run: bool = False) -> Plan:
    """`sync`: one `hasync sync --once` (unison is two-way: one run syncs both nodes).

    On the given node(s), else on the active node, else on the first node: never on
    both at once by default, two unison runs over the same pair would fight for locks.
    """
    sub = ("sync", "--once") + (("--dry-run",) if dry_run else ())
    if node:
        return Plan(sub, tuple(n.strip() for n in node.split(",") if n.strip()))
    if len(active) == 1:
        return Plan(sub, (active[0],))
    if not all_nodes:
        return Plan(sub, (), problem="the cluster has no nodes")
    return Plan(sub, (all_nodes[0],), notes=("no single active node known: syncing from the first node",))


def exit_status(results: Iterable[HostResult]) -> int:
    """0 when every host succeeded, 1 otherwise (and when there were no hosts)."""
    rs = list(results)
    return 0 if rs and all(r.ok for r in rs) else 1


def results_table(title: str, results: Iterable[HostResult], *, detail=status_line) -> Any:
    """A rich Table, one row per host: node, address, ok/FAILED, a one-line detail."""
    t = Table(title=title, title_justify="left")
    t.add_column("node")
    t.add_column("address")
    t.add_column("result")
    t.add_column("detail", overflow="fold")
    for r in results:
        mark = "[green]ok[/green]" if r.ok else "[red]FAILED[/red]"
        t.add_row(r.node, r.address, mark, detail(r))
    return t
