"""`hasync check` and `hasync haresources import`."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync import config
from hasync.config import ConfigError, format_duration


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="validate the cluster config",
        description=(
            "Validate the cluster config: types, unknown keys, durations, heartbeat's timing "
            "rules (deadtime > 2 x keepalive, initdead >= deadtime), unique node names, "
            "links, the resource chain and fencing; then the sections against each other: "
            "[nfs].vip and [storage] against the chain's parameters, the chain's order, agents "
            "that do not exist or cannot run, IPv6 on links, a link on DRBD's addresses, and "
            "placeholders an import left in. Every problem names file:line and the key, in "
            "line order; docs/config.md lists each rule."
        ),
        epilog="Exit status: 0 valid (warnings may be shown), 2 invalid.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", nargs="?", help="config file (default: -c, $HASYNC_CONFIG, /etc/hasync/cluster.toml)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and warnings")
    p.set_defaults(func=cmd_check)

    h = sub.add_parser(
        "haresources",
        help="import a heartbeat v1 haresources (and ha.cf) setup",
        description="Work with Linux-HA heartbeat v1 configuration files.",
    )
    hs = h.add_subparsers(dest="haresources_cmd", metavar="ACTION")
    imp = hs.add_parser(
        "import",
        help="print the hasync TOML equivalent of a haresources file",
        description=(
            "Print the cluster.toml equivalent to a heartbeat v1 haresources file (with --ha-cf "
            "also [[node]], [heartbeat], its links and [fencing]). Each resource.d script becomes "
            "the OCF agent its wrapper runs (--no-ocf: a heartbeat-type resource with args); a bare "
            "IP means IPaddr::IP; [storage] and [nfs] are read off the chain. The order is kept: "
            "started left to right, stopped right to left. What the import cannot know is written "
            "as 0.0.0.0 or with a `check:` comment, which `hasync check` warns about until it is gone."
        ),
        epilog=("Example:\n  hasync haresources import /etc/ha.d/haresources --ha-cf /etc/ha.d/ha.cf "
                "--authkeys /etc/ha.d/authkeys > cluster.toml\n\nExit status: 0 written (warnings may be shown), 2 unreadable input."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("haresources", help="the haresources file")
    imp.add_argument("--ha-cf", metavar="HA.CF", help="also map ha.cf (nodes, timing, links, stonith_host -> [fencing])")
    imp.add_argument("--authkeys", metavar="AUTHKEYS", help="say how heartbeat's authkeys secret becomes hasync's key "
                     "file (the secret itself is never printed)")
    imp.add_argument("--ocf", action=argparse.BooleanOptionalAction, default=True,
                     help="write each heartbeat resource.d script as the OCF agent its wrapper runs (IPaddr -> "
                          "ocf:heartbeat:IPaddr2 with ip, cidr_netmask, nic), so the chain keeps working once heartbeat "
                          "is uninstalled (default); --no-ocf keeps the scripts")
    imp.set_defaults(func=cmd_import)
    h.set_defaults(func=lambda a: (h.print_help(), 2)[1])


def cmd_check(args) -> int:
    path = args.file or config.config_path(getattr(args, "config", None))
    cluster, report = config.check(path)
    if args.json:
        print(json.dumps({"file": str(path), "valid": not report.errors, "errors": report.errors, "warnings": report.warnings}, indent=2))
        return 2 if report.errors else 0
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for e in report.errors:
        err.print(f"[bold red]error[/]: {escape(e)}")
    for w in report.warnings:
        err.print(f"[yellow]warning[/]: {escape(w)}")
    if report.errors:
        err.print(f"[red]{path}: {len(report.errors)} error(s); not usable[/]")
        return 2
    if not args.quiet and cluster is not None:
        _summary(cluster)
    return 0


def _summary(c) -> None:
    out = Console(highlight=False)
    e = escape  # every value is the user's text: "[/x]" in a name is not rich markup
    out.print(f"[green]✓[/] {e(c.path)}: cluster [bold]{e(c.cluster.name)}[/], profile {e(c.cluster.profile)}, preferred node {e(c.cluster.preferred_node or '(none)')}")
    hb = c.heartbeat
    out.print(
        f"  heartbeat: keepalive {format_duration(hb.keepalive)}, warntime {format_duration(hb.warntime)}, "
        f"deadtime {format_duration(hb.deadtime)}, initdead {format_duration(hb.initdead)}, "
        f"auto_failback {'on' if hb.auto_failback else 'off'}, fencing {c.fencing.mode}"
    )
    t = Table(title="nodes and links", title_justify="left")
    t.add_column("link")
    t.add_column("kind")
    t.add_column("where")
    for n in c.nodes:
        t.add_row(f"node {e(n.name)}", "address", e(n.address))
    for lk in hb.links:
        where = lk.device if lk.kind == "serial" else f"{lk.interface} port {lk.port}"
        if lk.kind == "udp-multicast":
            where += f" group {lk.group}"
        if lk.addresses:
            where += " (" + ", ".join(f"{k}={v}" for k, v in lk.addresses.items()) + ")"
        if lk.kind == "serial":
            where += f" @ {lk.baud} baud"
        t.add_row(e(lk.name), e(lk.kind), e(where))
    out.print(t)
    ch = Table(title="resource chain (start top-down, stop bottom-up)", title_justify="left")
    ch.add_column("#", justify="right")
    ch.add_column("id")
    ch.add_column("type")
    ch.add_column("agent / arguments")
    for i, r in enumerate(c.resources, 1):
        detail = r.agent
        if r.args:
            detail += "::" + "::".join(r.args)
        if r.params:
            detail += " " + " ".join(f"{k}={v}" for k, v in r.params.items())
        ch.add_row(str(i), e(r.id), e(r.type), e(detail))
    out.print(ch)


def cmd_import(args) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        imported = config.import_heartbeat(args.haresources, args.ha_cf, args.authkeys, ocf=args.ocf)
    except ConfigError as e:
        for i in e.issues:
            err.print(f"[bold red]error[/]: {escape(i)}")
        return 2
    for w in imported.warnings:
        err.print(f"[yellow]warning[/]: {escape(w)}")
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
