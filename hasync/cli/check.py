"""The config's verbs: `hasync check`, `hasync config show` and `hasync haresources import`."""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape

from hasync import config
from hasync.cli import common, views
from hasync.config import ConfigError

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

IMPORT_HELP = (
    "Print the cluster.toml equivalent to a heartbeat v1 haresources file (with --ha-cf "
    "also [[node]], [heartbeat], its links and [fencing]). Each resource.d script becomes "
    "the OCF agent its wrapper runs (--no-ocf: a heartbeat-type resource with args); a bare "
    "IP means IPaddr::IP; [storage] and [nfs] are read off the chain. Several lines are "
    "several resource groups ([[group]], each with its line's node as preferred_node). The order is kept: "
    "started left to right, stopped right to left. What the import cannot know is written "
    "as 0.0.0.0 or with a `check:` comment, which `hasync check` warns about until it is gone."
)

IMPORT_EPILOG = (
    "Example:\n  hasync haresources import /etc/ha.d/haresources --ha-cf /etc/ha.d/ha.cf "
    "--authkeys /etc/ha.d/authkeys > cluster.toml\n\nExit status: 0 written (warnings may be shown), 2 unreadable input."
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

    h = sub.add_parser("haresources", description="Work with Linux-HA heartbeat v1 configuration files.")
    hs = h.add_subparsers(dest="haresources_cmd", metavar="ACTION")
    imp = hs.add_parser("import", help="print the hasync TOML equivalent of a haresources file", description=IMPORT_HELP,
                        epilog=IMPORT_EPILOG, formatter_class=fmt)
    imp.add_argument("haresources", help="the haresources file")
    imp.add_argument("--ha-cf", metavar="HA.CF", help="also map ha.cf (nodes, timing, links, stonith_host -> [fencing])")
    imp.add_argument("--authkeys", metavar="AUTHKEYS", help="say how heartbeat's authkeys secret becomes hasync's key "
                     "file (the secret itself is never printed)")
    imp.add_argument("--ocf", action=argparse.BooleanOptionalAction, default=True,
                     help="write each heartbeat resource.d script as the OCF agent its wrapper runs (IPaddr -> "
                          "ocf:heartbeat:IPaddr2 with ip, cidr_netmask, nic), so the chain keeps working once heartbeat "
                          "is uninstalled (default); --no-ocf keeps the scripts")
    imp.set_defaults(func=cmd_import)
    h.set_defaults(func=common.show_help(h))


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


def cmd_import(args: argparse.Namespace) -> int:
    # only this verb needs the importer (start-up)
    from hasync.config.importer import import_heartbeat

    err = views.console(stderr=True)
    try:
        imported = import_heartbeat(args.haresources, args.ha_cf, args.authkeys, ocf=args.ocf)
    except ConfigError as e:
        views.issues(err, e.issues)
        return 2
    views.issues(err, [], imported.warnings)
    for note in imported.notes:
        err.print(f"note: {escape(note)}")
    # TOML is UTF-8 whatever the locale says: write bytes, never a UnicodeEncodeError
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(imported.toml)
        return 0
    sys.stdout.flush()
    out.write(imported.toml.encode("utf-8"))
    out.flush()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    # `config show` alone needs it (start-up)
    from hasync.failover.effective import effective

    doc = effective(common.load_cluster(args))
    if args.json:
        common.print_json(doc)
    else:
        views.effective_config(doc)
    return 0
