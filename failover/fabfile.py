"""Fabric tasks that drive a hasync cluster from an admin machine.

    fab -r failover status                  # -r: the folder holding this fabfile
    fab -r failover status --as-json
    fab -r failover standby                 # on the active node
    fab -r failover takeover                # on the node that is not active
    fab -r failover migrate --to node2      # [--dry-run]
    fab -r failover migrate --to node2 --group b   # one resource group only
    fab -r failover standby --group b       # group b away from the node that runs it
    fab -r failover takeover --group b --node node1
    fab -r failover sync                    # one `hasync sync --once`, on the active node

(`fab -f` names an invoke *config* file, not the fabfile: use -r/--search-root, or run
fab from this folder. In an installed wheel the folder is hasync/_data/failover.)

The hosts are the [[node]] addresses of cluster.toml (--config, else $HASYNC_CONFIG,
else /etc/hasync/cluster.toml); ssh logs in as root (--user) with --key, else
$HASYNC_SSH_KEY, else [sync].ssh_key. Every task runs `hasync <command>` on the nodes
(--hasync names the program there, --remote-config its config file) and prints one row
per host; the exit status is 1 when any host failed or could not be reached.

The tasks are thin on purpose: what they decide lives in hasync.fab.
"""

from __future__ import annotations

import json
import sys

from fabric import task
from rich.console import Console

from hasync import fab as ft
from hasync.config import ConfigError, load

COMMON_HELP = {
    "config": "local cluster.toml with the nodes (default: $HASYNC_CONFIG or /etc/hasync/cluster.toml)",
    "key": "ssh private key (default: $HASYNC_SSH_KEY or [sync].ssh_key)",
    "user": "ssh user on the nodes (default: root)",
    "hasync": "the hasync program on the nodes (default: hasync)",
    "remote_config": "cluster.toml path on the nodes (default: their own default)",
    "timeout": "seconds each remote command may take (default: 120)",
}

# Tests replace this to hand the tasks fake connections (invoke.MockContext).
make_group = ft.fabric_group


def _console():
    return Console(soft_wrap=True)


def _err(message: str) -> None:
    Console(stderr=True).print(f"[red]error[/red]: {message}", highlight=False)


def _load(config):
    path = ft.config_path(config)
    try:
        return load(path)
    except ConfigError as e:
        for issue in e.issues:
            _err(issue)
        sys.exit(2)
    except OSError as e:
        _err(f"{path}: {e.strerror or e}")
        sys.exit(2)


def _timeout(value) -> float:
    return float(value) if value not in (None, "") else ft.DEFAULT_TIMEOUT


def _nodes(cluster, only):
    try:
        return ft.select_nodes(cluster, only)
    except ValueError as e:
        _err(str(e))
        sys.exit(2)


def _group(cluster, nodes, key, user):
    return make_group(nodes, key=ft.ssh_key(cluster, key), user=user)


def _finish(title, results, detail=ft.status_line):
    _console().print(ft.results_table(title, results, detail=detail))
    code = ft.exit_status(results)
    if code:
        sys.exit(code)


def _group_id(cluster, group):
    """--group: a resource group of the config (bad input exits 2 before any ssh)."""
    if not group:
        return ""
    ids = [g.id for g in cluster.resource_groups()]
    if group not in ids:
        _err(f"--group {group!r} is not a resource group of {cluster.path}; groups: {', '.join(ids)}")
        sys.exit(2)
    return group


def _status_results(cluster, nodes, key, user, hasync, remote_config, timeout):
    cmd = ft.remote_command(("status", "--json"), hasync=hasync, remote_config=remote_config)
    return ft.with_json(ft.run_on(_group(cluster, nodes, key, user), cmd, timeout=_timeout(timeout)))


def _run_plan(cluster, plan, key, user, hasync, remote_config, timeout, title):
    if plan.problem:
        _err(plan.problem)
        sys.exit(1)
    for note in plan.notes:
        _console().print(f"[yellow]note[/yellow]: {note}", highlight=False)
    nodes = _nodes(cluster, ",".join(plan.nodes))
    cmd = ft.remote_command(plan.subcommand, hasync=hasync, remote_config=remote_config)
    results = ft.run_on(_group(cluster, nodes, key, user), cmd, timeout=_timeout(timeout))
    _finish(title, results)


@task(help=dict(COMMON_HELP, node="only these nodes (comma-separated names)", as_json="print the nodes' JSON instead of a table"))
def status(c, config=None, key=None, user="root", hasync="hasync", remote_config=None, timeout=None, node=None, as_json=False):
    """Run `hasync status --json` on every node and show each node's view."""
    cluster = _load(config)
    results = _status_results(cluster, _nodes(cluster, node), key, user, hasync, remote_config, timeout)
    if as_json:
        print(json.dumps({r.node: r.data if r.ok else {"error": ft.status_line(r)} for r in results}, indent=2))
        sys.exit(ft.exit_status(results))
    _finish("hasync status", results)


GROUP_HELP = "one resource group only (`hasync migrate GROUP --to NODE`); default: every group"


def _seen(cluster, key, user, hasync, remote_config, timeout):
    """(the active nodes, group id -> the node running it) from every node's status."""
    results = _status_results(cluster, cluster.nodes, key, user, hasync, remote_config, timeout)
    return ft.active_nodes(results), ft.group_owners(results)


@task(help=dict(COMMON_HELP, node="the node to put in standby (default: the active one)", group=GROUP_HELP))
def standby(c, config=None, key=None, user="root", hasync="hasync", remote_config=None, timeout=None, node=None, group=None):
    """Hand the chain over: `hasync standby` on the active node (or --node); --group G:
    `hasync migrate G --to <the other node>` on the node running G."""
    cluster = _load(config)
    gid = _group_id(cluster, group)
    names = [n.name for n in cluster.nodes]
    if node:
        _nodes(cluster, node)  # exits 2 on an unknown name
    active, owners = ([], {}) if node else _seen(cluster, key, user, hasync, remote_config, timeout)
    _run_plan(cluster, ft.plan_standby(names, active, node, group=gid, owners=owners), key, user, hasync, remote_config, timeout,
              "hasync standby" + (f" (group {gid})" if gid else ""))


@task(help=dict(COMMON_HELP, node="the node that takes over (default: the one not active)", group=GROUP_HELP))
def takeover(c, config=None, key=None, user="root", hasync="hasync", remote_config=None, timeout=None, node=None, group=None):
    """Take the chain: `hasync takeover` on the passive node (or --node); --group G:
    `hasync migrate G --to NODE` on the node that takes G (--node, else the one not running it)."""
    cluster = _load(config)
    gid = _group_id(cluster, group)
    names = [n.name for n in cluster.nodes]
    if node:
        _nodes(cluster, node)
    active, owners = ([], {}) if node else _seen(cluster, key, user, hasync, remote_config, timeout)
    _run_plan(cluster, ft.plan_takeover(names, active, node, group=gid, owners=owners), key, user, hasync, remote_config, timeout,
              "hasync takeover" + (f" (group {gid})" if gid else ""))


@task(help=dict(COMMON_HELP, to="the node the chain moves to (required)", dry_run="only show the plan", group=GROUP_HELP))
def migrate(c, to, config=None, key=None, user="root", hasync="hasync", remote_config=None, timeout=None, dry_run=False, group=None):
    """Move the chain (--group G: that group) to --to NODE: `hasync migrate [G] --to NODE`
    on the node running it."""
    cluster = _load(config)
    gid = _group_id(cluster, group)
    names = [n.name for n in cluster.nodes]
    active, owners = _seen(cluster, key, user, hasync, remote_config, timeout)
    _run_plan(cluster, ft.plan_migrate(names, active, to, dry_run=bool(dry_run), group=gid, owners=owners), key, user, hasync,
              remote_config, timeout, "hasync migrate" + (f" (group {gid})" if gid else ""))


@task(help=dict(COMMON_HELP, node="run on these nodes (default: the active one, else the first)", dry_run="only show what would move"))
def sync(c, config=None, key=None, user="root", hasync="hasync", remote_config=None, timeout=None, node=None, dry_run=False):
    """One `hasync sync --once` (two-way: config files between the nodes) on the active node."""
    cluster = _load(config)
    names = [n.name for n in cluster.nodes]
    if node:
        _nodes(cluster, node)  # exits 2 on an unknown name
        active = []
    else:
        active = ft.active_nodes(_status_results(cluster, cluster.nodes, key, user, hasync, remote_config, timeout))
    _run_plan(cluster, ft.plan_sync(names, active, node, dry_run=bool(dry_run)), key, user, hasync, remote_config, timeout, "hasync sync")
