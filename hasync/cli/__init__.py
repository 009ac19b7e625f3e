"""The command line: argv -> the verb's handler (one call into the library, one view) ->
exit status. The only place that parses argv and prints for people.

``VERBS`` is the static table of verbs (table.py): name, one-line help, the module that
handles it. ``hasync --help`` and a mistyped verb need nothing more. For the verb typed,
:func:`main` imports its module (table.load, the one lazy import, so `hasync failover
run` loads neither rich nor the other areas) and parses argv again with the parsers
that module registers.

A verb module has ``register(sub)`` (adds its verbs' parsers to the argparse subparsers
*sub*, each with ``set_defaults(func=handler)``, ``handler(args) -> int``) and
``ERRORS`` (errors.ErrorMap): how the typed errors its library calls raise end the
command, starting from common.ERRORS (a config error: exit 2). This module imports
nothing of hasync but the version: `hasync lab ...` and `--help` load no config code.

``hasync lab ...`` belongs to the harness (package ``hasync_lab``, the ``lab`` extra),
which the product never imports: plugin.py finds it through the ``hasync.verbs`` entry
point group, only when the verb is typed.
"""

from __future__ import annotations

import argparse
import json
import sys

from hasync import __version__
from hasync.cli import errors, table
from hasync.cli.table import Register, Verb, add_verbs

# the root's -c; common.CONFIG_HELP says the same after the verb (a test holds them equal)
CONFIG_HELP = "cluster config (default: $HASYNC_CONFIG or /etc/hasync/cluster.toml)"


# In the order of `hasync --help`.
VERBS = (
    Verb("check", "validate the cluster config", "hasync.cli.check"),
    Verb("haresources", "import a heartbeat v1 haresources (and ha.cf) setup", "hasync.cli.haresources"),
    Verb("failover", "the failover daemon (hasync failover run)", "hasync.cli.daemon"),
    Verb("status", "nodes, links, resources, last failover, warnings", "hasync.cli.failover"),
    Verb("standby", "operator standby of a node, kept until `online` (crm node standby)", "hasync.cli.oncall"),
    Verb("online", "end a node's operator standby", "hasync.cli.oncall"),
    Verb("takeover", "take the chain from the peer", "hasync.cli.failover"),
    Verb("migrate", "move the chain to a node (once)", "hasync.cli.failover"),
    Verb("cleanup", "probe again and clear a failed state when safe (pcs resource cleanup)", "hasync.cli.oncall"),
    Verb("maintenance", "maintenance mode on|off, cluster-wide: nothing moves", "hasync.cli.oncall"),
    Verb("stop", "stop the chain on purpose, cluster-wide, until `start`", "hasync.cli.oncall"),
    Verb("start", "let the chain run again after `stop`", "hasync.cli.oncall"),
    Verb("history", "past failovers and operator actions; `history show N`", "hasync.cli.history"),
    Verb("resource", "run one resource's start/stop/monitor by hand (pcs resource debug-start)", "hasync.cli.resource"),
    Verb("config", "the effective config, defaults filled in (`config show`)", "hasync.cli.check"),
    Verb("fence", "fence a node with the [fencing] command (DRBD's fence-peer handler)", "hasync.cli.failover"),
    Verb("watch", "keep [sync].paths identical on both nodes (foreground service)", "hasync.cli.sync"),
    Verb("sync", "one-off sync, dry run with diffs, status of the watcher", "hasync.cli.sync"),
    Verb("bootstrap", "lay down DRBD/LVM/NFS state on a node", "hasync.cli.bootstrap"),
    Verb("doctor", "find known pitfalls on a running cluster", "hasync.cli.bootstrap"),
    Verb("export", "write the cluster's Pacemaker/Corosync configuration", "hasync.cli.export"),
    Verb("completion", "print a shell completion script (bash)", "hasync.cli.completion"),
    Verb("lab", "a virtual cluster on this machine (namespaces or VMs)", "hasync.cli.plugin"),
)
BY_NAME = {v.name: v for v in VERBS}

DESCRIPTION = """\
hasync builds and runs a two-node active/passive HA storage cluster:
DRBD -> LVM -> filesystem -> virtual IP -> NFS server.

  hasync check                 validate /etc/hasync/cluster.toml
  hasync status                what the cluster is doing, at a glance
  hasync standby|online|takeover|migrate   move services safely
  hasync cleanup|maintenance|stop|start    the on-call admin's verbs (docs/operations.md)
  hasync history               past failovers: time, cause, duration, outcome
  hasync watch                 keep configured files identical on both nodes
  hasync bootstrap             lay down DRBD/LVM/NFS state on a node
  hasync doctor                find known pitfalls on a running cluster
  hasync lab up|down|...       a virtual two-node lab on this machine
"""

EPILOG = """\
The config file is /etc/hasync/cluster.toml unless -c/--config (before or after the verb)
or the HASYNC_CONFIG environment variable names another. Exit status: 0 success, 1
failure, 2 bad input (config errors, bad arguments); `hasync status`: 0 ok, 1 warning,
2 problem, 3 no daemon. With --json an error also prints {"ok": false, "error": ...,
"exit": N} on stdout. Logs: journalctl -u hasync-failover (the failover daemon),
journalctl -u hasync-watch (the sync watcher); past failovers: hasync history.
"""


def build_parser(register: Register | None = None) -> argparse.ArgumentParser:
    """The root parser. Without *register*: every verb from the table, each taking the rest
    of argv as it is (what `--help` lists and what finds the verb typed); with it: the
    verbs *register* adds, with their real arguments."""
    parser = argparse.ArgumentParser(
        prog="hasync",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hasync {__version__}")
    parser.add_argument("-c", "--config", metavar="PATH", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if register is None:
        add_verbs(sub, VERBS)
    else:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parsed = table.parse(build_parser, VERBS, sys.argv[1:] if argv is None else list(argv), dest="command")
    if parsed is None:
        return 2
    args, module = parsed
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        how = errors.lookup(getattr(module, "ERRORS", {}), e)
        if how is None:
            raise
        status, label = how
        lines = list(getattr(e, "issues", None) or [str(e)])  # a ConfigError: each problem
        for line in lines:
            errors.print_error(line, label)
        if getattr(args, "json", False):
            print(json.dumps(errors.error_doc(lines, status)), flush=True)
        return status
