"""Renderings for people (rich): the consoles, the check summary, `hasync status` (its
panel is failover/status_view.py), standby/takeover progress, the migrate dry run.

Every value shown is the user's or the daemon's text: escaped, so "[/x]" in a name is
not rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync import model
from hasync.config import format_duration


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
