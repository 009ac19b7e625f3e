"""`hasync export pacemaker`: argv -> one bundle -> stdout or files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from hasync.cli import common
from hasync.config import ConfigError
from hasync.effects.run import ProcRunner
from hasync.export.bundle import FORMATS, make_bundle
from hasync.export.output import metadata_lookup, write_bundle
from hasync.export.pacemaker import ExportError

ERRORS = common.ERRORS

HELP = """\
Write the cluster's configuration for the field's standard stack, Pacemaker + Corosync 3:
the chain as Pacemaker runs it (DRBD as a promotable ocf:linbit:drbd clone, the rest as
one group started after the promotion, where DRBD is Promoted; heartbeat resource.d
scripts as their OCF agents), one fence device per node from [fencing], preferred_node
as a location preference, auto_failback as stickiness; and corosync.conf from
[heartbeat] (one knet link per UDP link, the token derived from deadtime, two_node).

Forms: cib (complete CIB XML, for cibadmin), crm (crmsh `configure load`), pcs (a
`pcs -f` script ending in cib-push), corosync (corosync.conf alone). Every OCF and
fence parameter is checked against the agent's own metadata when crm_resource is
installed here. Nothing is written when anything has no Pacemaker equivalent.
"""

EPILOG = """\
examples:
  hasync export pacemaker                      the CIB XML on stdout
  hasync export pacemaker --format crm         the crmsh form on stdout
  hasync export pacemaker --out /root/pcmk     cib.xml and corosync.conf in /root/pcmk
  crm_verify -V -x /root/pcmk/cib.xml          check it (pacemaker-cli-utils)

docs/pacemaker.md: the move from hasync to Pacemaker, step by step.
exit status: 0 written, 2 bad input (config errors, a resource with no equivalent).
"""


def register(sub) -> None:
    p = sub.add_parser("export", description="Export the cluster to another cluster stack.")
    ps = p.add_subparsers(dest="export_cmd", metavar="STACK")
    pm = ps.add_parser("pacemaker", help="CIB (XML, crmsh or pcs) and corosync.conf", description=HELP,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.config_option(pm)
    pm.add_argument("--format", choices=FORMATS, default="cib",
                    help="the configuration's form (default: cib); --out always adds corosync.conf")
    pm.add_argument("--out", metavar="DIR", default="", help="write the files into DIR instead of printing")
    pm.add_argument("--json", action="store_true", help="print the result (documents, files, warnings) as JSON")
    pm.set_defaults(func=cmd_pacemaker)
    p.set_defaults(func=common.show_help(p))


def _error(err: Console, issues: list[str], as_json: bool) -> int:
    if as_json:
        common.print_json({"ok": False, "errors": issues})
    else:
        for i in issues:
            err.print(f"[bold red]error[/]: {escape(i)}")
        err.print("[red]nothing written[/]")
    return 2


def cmd_pacemaker(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # ocf:heartbeat: is no emoji
    cluster = common.load_cluster(args)
    try:
        bundle = make_bundle(cluster, profile=cluster.profile, fmt=args.format, lookup=metadata_lookup(ProcRunner()))
    except (ConfigError, ExportError) as e:
        return _error(err, e.issues, args.json)
    written: list[str] = []
    if args.out:
        try:
            written = write_bundle(bundle, Path(args.out))
        except OSError as e:
            return _error(err, [f"{args.out}: cannot write: {e.strerror or e}"], args.json)
    if args.json:
        doc = {"ok": True, "format": args.format, "files": written, "warnings": list(bundle.warnings),
               "token_ms": bundle.token_ms, "agents_checked": list(bundle.checked),
               "agents_not_checked": list(bundle.unchecked)}
        if not args.out:
            doc["documents"] = bundle.documents
        common.print_json(doc)
        return 0
    for w in bundle.warnings:
        err.print(f"[yellow]warning[/]: {escape(w)}")
    if args.out:
        for f in written:
            err.print(f"wrote {escape(f)}")
    else:
        sys.stdout.write(bundle.documents[bundle.primary])
    return 0
