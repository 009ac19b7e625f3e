"""Renderings for people (rich): the consoles, the check summary, `hasync status` (its
panel is failover/status_view.py), standby/takeover progress, the migrate dry run.

Every value shown is the user's or the daemon's text: escaped, so "[/x]" in a name is
not rich markup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync import model
from hasync.config import format_duration

# The failover area's views are imported where they are used: `check` renders its
# findings with this module and should not load the failover client, chain and daemon
# state (CLI start-up, docs/benchmarks.md).
if TYPE_CHECKING:
    from hasync.failover.migrate_plan import MigratePlan
    from hasync.failover.oncall import HistoryRow


def console(*, stderr: bool = False, emoji: bool = True) -> Console:
    """Plain text (no highlighting of numbers and paths), long lines never broken."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=emoji)


def issues(err: Console, errors: Sequence[str], warnings: Sequence[str] = ()) -> None:
    for e in errors:
        err.print(f"[bold red]error[/]: {escape(e)}")
    for w in warnings:
        err.print(f"[yellow]warning[/]: {escape(w)}")


# --------------------------------------------------------------------------- check


def check_summary(c: model.Cluster) -> None:
    out = Console(highlight=False)
    e = escape
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
    for g in c.resource_groups():
        title = "resource chain" if not c.groups else (f"group {g.id} (preferred node {g.preferred_node or '-'}, "
                                                       f"auto_failback {'on' if g.auto_failback else 'off'})")
        ch = Table(title=f"{title} (start top-down, stop bottom-up)", title_justify="left")
        ch.add_column("#", justify="right")
        ch.add_column("id")
        ch.add_column("type")
        ch.add_column("agent / arguments")
        for i, r in enumerate(g.resources, 1):
            detail = r.agent
            if r.args:
                detail += "::" + "::".join(r.args)
            if r.params:
                detail += " " + " ".join(f"{k}={v}" for k, v in r.params.items())
            ch.add_row(str(i), e(r.id), e(r.type), e(detail))
        out.print(ch)


# --------------------------------------------------------------------------- failover


def status(st: dict) -> None:
    from hasync.failover.status_view import render

    Console(emoji=False).print(render(st))


def daemon_down(error: str, last: dict | None) -> None:
    from hasync.failover.status_view import render_down

    Console(emoji=False).print(render_down(error, last))


def move_progress(verb: str, *, as_json: bool, clock: Callable[[], float] = time.monotonic) -> Callable[[dict], None]:
    """What standby/takeover/migrate print for each line the daemon sends: its events with
    the time since the start, then done or refused (--json: the lines as they come)."""
    from hasync.failover.status_view import LEVEL_STYLE

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
                err.print(f"[red]not done[/red]: {where}", highlight=False)
        elif "message" in obj:
            if obj.get("ok"):
                con.print(f"[bold]{verb}[/bold]: {escape(obj['message'])}", highlight=False)
            else:
                err.print(f"[red]refused[/red]: {escape(obj['message'])}", highlight=False)

    return show


def migrate_plan(plan: MigratePlan) -> None:
    from hasync.failover.migrate_plan import UNKNOWN

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
    from hasync.failover.status_view import render_failover

    Console(emoji=False, highlight=False).print(render_failover(rec, last=0, title="Record"))


# --------------------------------------------------------------------------- config show


def effective_config(doc: dict) -> None:
    """The effective config as TOML-like text: each section, then [[node]] and the chain
    (each resource with its commands)."""
    out: list[str] = [f"# {doc['path']}: the effective config (defaults filled in, durations in seconds)"]

    def table(name: str, d: dict, array: bool = False) -> None:
        out.append("")
        out.append(f"[[{name}]]" if array else f"[{name}]")
        nested = []
        for k, v in d.items():
            if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                nested.append((k, v))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                nested.extend((f"{k}[{i}]", x) for i, x in enumerate(v))
            else:
                out.append(f"{k} = {json.dumps(v)}")
        for k, v in nested:
            out.append(f"  # {k}:")
            out.extend(f"  {kk} = {json.dumps(vv)}" for kk, vv in v.items())

    for section in ("cluster", "heartbeat", "fencing", "storage", "nfs", "sync"):
        table(section, doc[section])
    for n in doc["nodes"]:
        table("node", n, array=True)
    for r in doc["resources"]:
        cmds = r.pop("commands")
        table("resource", r, array=True)
        out.extend(f"  # {op}: {line}" for op, lines in cmds.items() for line in lines)
    print("\n".join(out))
