"""`hasync lab status` as rich tables (data from Lab.status())."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

_STYLE = {"up": "green", "cut": "yellow", "down": "red", "crashed": "red", "none": "dim"}


def _c(word: str) -> str:
    style = _STYLE.get(word, "")
    return f"[{style}]{word}[/{style}]" if style else word


def status_table(st: dict) -> Group:
    spec = st["spec"]
    t = Table(
        title=f"lab {st['name']!r}: {spec['nodes']} nodes, {spec['clients']} clients, "
        f"VIP {st['vip']} on {', '.join(st['vip_on']) or 'no node'}",
        title_justify="left",
    )
    for col in ("node", "state", "public", "heartbeat", "links", "procs", "sshd", "disk"):
        t.add_column(col)
    for name, n in st["nodes"].items():
        links = " ".join(f"{k}:{_c(v)}" for k, v in n["links"].items())
        extra = [a for a in n["addresses"] if a not in (n["public"], n["heartbeat"])]
        public = n["public"] + (f" (+{', '.join(extra)})" if extra else "")
        t.add_row(
            name,
            _c(n["state"]),
            public,
            n["heartbeat"] or "-",
            links,
            str(n["processes"]),
            str(n["sshd_pid"] or "-"),
            n["disk"] or "-",
        )
    serial = st["serial"]
    ttys = ", ".join(f"{k}={v}" for k, v in serial["ttys"].items()) or "-"
    foot = Table.grid(padding=(0, 1))
    foot.add_row("serial:", f"{serial['device']} in node1/node2, relay pid "
                 f"{serial['relay_pid'] or '[red]dead[/red]'}, host ptys {ttys}")
    foot.add_row("state:", st["dir"])
    return Group(t, foot)
