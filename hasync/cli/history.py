"""`hasync history` and `hasync history show N`: the failovers and operator actions the
daemon recorded in its state directory (oncall.history; no daemon needed)."""

from __future__ import annotations

import argparse
import sys

from hasync.cli import common, failover_views
from hasync.failover import oncall
from hasync.failover.host import Paths

ERRORS: common.ErrorMap = {**common.ERRORS, oncall.NoSuchRecord: (2, "error"), oncall.StateUnreadable: (2, "error")}

HISTORY_HELP = """\
List the failovers and operator actions this node recorded, oldest first: when each began,
what caused it (the peer dead, a failed start or monitor, an operator command ...), how
long it took and how it ended (the role the node settled in). `hasync history show N`
prints record N event by event (1 is the oldest, -1 the newest).

Each node records what it did: run it on both nodes for the whole story. Kept in
<state-dir>/history.jsonl, the last [heartbeat].history records (default 200), whatever
the rotation of timeline.jsonl (every transition) does. The daemon's own log is in the
journal: journalctl -u hasync-failover (the sync watcher: journalctl -u hasync-watch).
"""


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = common.daemon_parser(sub, "history", HISTORY_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--last", type=common.count, default=0, metavar="N", help="only the last N records (0: all)")
    p.set_defaults(func=cmd_list)
    hs = p.add_subparsers(dest="history_command", metavar="ACTION")
    s = hs.add_parser("show", help="one record, event by event", description=HISTORY_HELP, formatter_class=fmt)
    common.dirs_options(s)
    common.config_option(s)
    s.add_argument("number", type=int, metavar="N", help="the record's number in `hasync history` (-1: the newest)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_show)


def _records(args: argparse.Namespace) -> list[dict]:
    """The records; a warning on stderr for lines that are not records (skipped)."""
    state_dir = Paths.default(args.state_dir, args.run_dir).state_dir
    records, skipped = oncall.history(state_dir)
    if skipped:
        print(f"warning: {state_dir / 'history.jsonl'}: {skipped} line(s) are not failover records (a torn write "
              "or a hand edit): skipped", file=sys.stderr)
    return records


def cmd_list(args: argparse.Namespace) -> int:
    rows = oncall.history_rows(_records(args))
    if args.last > 0:
        rows = rows[-args.last :]
    if args.json:
        common.print_json([r.as_dict() for r in rows])
    else:
        failover_views.history(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    rec = oncall.history_record(_records(args), args.number)
    if args.json:
        common.print_json(rec)
    else:
        failover_views.history_record(rec)
    return 0
