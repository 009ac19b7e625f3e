"""Renderings of the failover verbs for people (rich): `hasync status` (its panel is
failover/status_view.py), standby/takeover/cleanup progress, the migrate dry run,
`hasync history`. Apart from views.py so that `check` does not load the failover
client, the chain planner and the daemon's state files (CLI start-up, docs/benchmarks.md).

Every value shown is the user's or the daemon's text: escaped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync.cli.views import console
from hasync.failover.migrate_plan import UNKNOWN, MigratePlan
from hasync.failover.status_view import LEVEL_STYLE, render, render_down, render_failover

if TYPE_CHECKING:  # a type only: `status` does not load the daemon's state files (oncall -> persist)
    from hasync.failover.oncall import HistoryRow

# --------------------------------------------------------------------------- failover


def status(st: dict) -> None:
    Console(emoji=False).print(render(st))


def daemon_down(error: str, last: dict | None) -> None:
    Console(emoji=False).print(render_down(error, last))


def move_progress(verb: str, *, as_json: bool, clock: Callable[[], float] = time.monotonic) -> Callable[[dict], None]:
    """What standby/takeover/migrate print for each line the daemon sends: its events with
    the time since the start, then done or refused (--json: the lines as they come)."""
    # soft wrap: an event is one line also when piped (a width of 80 broke "this node is\nstandby")
    con, err = console(emoji=False), console(stderr=True, emoji=False)
    t0 = clock()

    def show(obj: dict) -> None:
        if as_json:
            print(json.dumps(obj, default=str), flush=True)
            return
        if "event" in obj:
            e = obj["event"]
            style = LEVEL_STYLE.get(e.get("level"), "")
            text = f"[{style}]{escape(e['message'])}[/{style}]" if style else escape(e["message"])
            con.print(f"  [dim]{clock() - t0:6.2f}s[/dim] {text}", highlight=False)
        elif obj.get("done"):
            where = f"this node is {obj['role']}, peer {obj.get('peer_role')} ({obj.get('peer_state')})"
            if obj.get("ok"):
                con.print(f"[green]done[/green] in {clock() - t0:.2f}s: {where}", highlight=False)
            else:
                why = f" ({escape(obj['why'])})" if obj.get("why") else ""
                err.print(f"[red]not done[/red]{why}: {where}", highlight=False)
        elif "message" in obj:
            if obj.get("ok"):
                con.print(f"[bold]{verb}[/bold]: {escape(obj['message'])}", highlight=False)
            else:
                err.print(f"[red]refused[/red]: {escape(obj['message'])}", highlight=False)

    return show


def migrate_plan(plan: MigratePlan) -> None:
    con = Console(emoji=False)
    if plan.nothing_to_do:
        con.print(f"the chain already runs on {plan.to}: nothing to do")
        return
    t = Table(title=f"migrate to {plan.to} (dry run: nothing changes)", show_lines=False)
    for name, justify in (("#", "right"), ("node", "left"), ("op", "left"), ("resource", "left"), ("command", "left")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    if plan.active == UNKNOWN:
        con.print("[yellow]the daemon is not reachable here: whoever holds the chain stops it first[/yellow]")
    for i, (node, op, rid, command) in enumerate(plan.steps(), 1):
        t.add_row(str(i), node, op, rid, escape(command))
    con.print(t)


# --------------------------------------------------------------------------- history


OUTCOME_STYLE = {"active": "green", "standby": "cyan", "stop-failed": "bold white on red", "in progress": "yellow"}


def history(rows: Sequence[HistoryRow]) -> None:
    con = console(emoji=False)
    if not rows:
        con.print("no failover or operator action recorded yet (see `journalctl -u hasync-failover`)")
        return
    t = Table(title="Failovers and operator actions (oldest first; `hasync history show N`)", title_justify="left")
    for name in ("#", "began (UTC)", "node", "cause", "duration", "outcome"):
        t.add_column(name, justify="right" if name in ("#", "duration") else "left")
    for r in rows:
        dur = "-" if r.duration_ms is None else (f"{r.duration_ms:.0f} ms" if r.duration_ms < 10000 else f"{r.duration_ms / 1000:.1f} s")
        t.add_row(str(r.number), escape(r.began), escape(r.node), escape(r.cause), dur,
                  f"[{OUTCOME_STYLE.get(r.outcome, '')}]{escape(r.outcome)}[/]" if r.outcome in OUTCOME_STYLE else escape(r.outcome))
    con.print(t)


def history_record(rec: dict) -> None:
    Console(emoji=False, highlight=False).print(render_failover(rec, last=0, title="Record"))


# --------------------------------------------------------------------------- config show
