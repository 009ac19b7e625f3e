"""`hasync haresources import`: a heartbeat v1 setup -> cluster.toml on stdout."""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape

from hasync.cli import common, views
from hasync.config import ConfigError
from hasync.config.importer import import_heartbeat

ERRORS = common.ERRORS

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



def cmd_import(args: argparse.Namespace) -> int:
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
