"""The config's verbs: `hasync check` and `hasync config show` (`haresources import`: haresources.py)."""

from __future__ import annotations

import argparse

from hasync import config
from hasync.cli import common, views
from hasync.failover.effective import effective

ERRORS = common.ERRORS

CHECK_HELP = (
    "Validate the cluster config: types, unknown keys, durations, heartbeat's timing "
    "rules (deadtime > 2 x keepalive, initdead >= deadtime), unique node names, "
    "links, the resource chain and fencing; then the sections against each other: "
    "[nfs].vip and [storage] against the chain's parameters, the chain's order, agents "
    "that do not exist or cannot run, IPv6 on links, a link on DRBD's addresses, and "
    "placeholders an import left in. Every problem names file:line and the key, in "
    "line order; docs/config.md lists each rule."
)

SHOW_HELP = (
    "Print the cluster config as hasync understands it (crm configure show): every section "
    "with the defaults filled in (durations in seconds: timings, storage, NFS, fencing), "
    "the fence command filled in for each node, and the chain in start order with the "
    "commands the failover daemon runs for each resource (start, stop, monitor; "
    "promote/demote for a promotable agent). Exit status: 0, or 2 when the config is invalid."
)

def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("check", description=CHECK_HELP, epilog="Exit status: 0 valid (warnings may be shown), 2 invalid.",
                       formatter_class=fmt)
    p.add_argument("file", nargs="?", help="config file (default: -c, $HASYNC_CONFIG, /etc/hasync/cluster.toml)")
    common.config_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and warnings")
    p.set_defaults(func=cmd_check)

    c = sub.add_parser("config", description="The cluster config as hasync understands it.")
    common.config_option(c)
    cs = c.add_subparsers(dest="config_cmd", metavar="ACTION")
    show = cs.add_parser("show", help="the effective config, defaults filled in", description=SHOW_HELP, formatter_class=fmt)
    common.config_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)
    c.set_defaults(func=common.show_help(c))



def cmd_check(args: argparse.Namespace) -> int:
    path = args.file or common.config_path(args)
    cluster, report = config.check(path)
    if args.json:
        common.print_json({"file": str(path), "valid": not report.errors, "errors": report.errors, "warnings": report.warnings})
        return 2 if report.errors else 0
    err = views.console(stderr=True)
    views.issues(err, report.errors, report.warnings)
    if report.errors:
        err.print(f"[red]{path}: {len(report.errors)} error(s); not usable[/]")
        return 2
    if not args.quiet and cluster is not None:
        views.check_summary(cluster)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    doc = effective(common.load_cluster(args))
    if args.json:
        common.print_json(doc)
    else:
        views.effective_config(doc)
    return 0
