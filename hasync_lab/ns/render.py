"""`hasync lab status` as rich tables (data from Lab.status())."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table

_STYLE = {"up": "green", "cut": "yellow", "down": "red", "crashed": "red", "none": "dim"}
_SHORT = {"public": "pub", "heartbeat": "hb", "serial": "ser"}


def _c(word: str, text: str | None = None) -> str:
    style = _STYLE.get(word, "")
    text = text or word
    return f"[{style}]{text}[/{style}]" if style else text


def status_table(st: dict) -> Group:
    spec = st["spec"]
    t = Table(
        title=f"lab {st['name']!r}: {spec['nodes']} nodes, {spec['clients']} clients, "
        f"VIP {st['vip']} on {', '.join(st['vip_on']) or 'no node'}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("node", "state", "public", "heartbeat", "links", "more addrs", "procs", "disk"):
        t.add_column(col, no_wrap=True)
    for name, n in st["nodes"].items():
        links = " ".join(
            _c(v, _SHORT.get(k, k) if v == "up" else f"{_SHORT.get(k, k)}:{v}")
            for k, v in n["links"].items()
        )
        extra = [a for a in n["addresses"] if a not in (n["public"], n["heartbeat"])]
        t.add_row(
            name,
            _c(n["state"]),
            n["public"],
            n["heartbeat"] or "-",
            links,
            ",".join(extra) or "-",
            str(n["processes"]),
            n["disk"] or "-",
        )
    serial = st["serial"]
    ttys = ", ".join(f"{k}={v}" for k, v in serial["ttys"].items()) or "-"
    foot = Table.grid(padding=(0, 1))
    relay = serial["relay_pid"] or "[red]dead[/red]"
    foot.add_row("serial:", f"{serial['device']} in node1/node2 (relay pid {relay}; host {ttys})")
    foot.add_row("nets:", "public 10.200.0.0/24 on eth0, heartbeat 10.201.0.0/24 on eth1")
    foot.add_row("disks:", "/dev/vdb in each cluster node; ext4, mount point /srv/ha")
    foot.add_row("state:", st["dir"])
    return Group(t, foot)
