"""`hasync status` for people: one glance tells whether all is well (rich renderables).

Pure functions of the status dict the daemon returns (tested on captured output).
"""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hasync.failover.nfs_grace import grace_line
from hasync.failover.states import (
    Health,
    Level,
    LinkStatus,
    OpOutcome,
    PeerStatus,
    ResourceStatus,
    Role,
)

ROLE_STYLE = {
    Role.ACTIVE: "bold green",
    Role.STANDBY: "cyan",
    Role.ACQUIRING: "yellow",
    Role.STARTING: "yellow",
    Role.STOPPING: "yellow",
    Role.STOP_FAILED: "bold white on red",
}
LEVEL_STYLE = {Level.WARN: "yellow", Level.ERROR: "bold red"}
HEALTH_STYLE = {Health.OK: "bold green", Health.WARN: "bold yellow", Health.BAD: "bold white on red"}
HEALTH_MARK = {Health.OK: "OK", Health.WARN: "WARNING", Health.BAD: "PROBLEM"}


def _age(s) -> str:
    if s is None:
        return "never"
    if s < 1:
        return f"{s * 1000:.0f} ms ago"
    if s < 120:
        return f"{s:.1f} s ago"
    return f"{s / 60:.0f} min ago"


def health(st: dict) -> tuple[Health, str]:
    """(OK|WARN|BAD, one line) for the headline and the exit status: the chain's, made
    worse by DRBD's state when the command added it (``st["drbd"]``: level, summary)."""
    level, line = chain_health(st)
    drbd = st.get("drbd") or {}
    worse = {Health.OK: 0, Health.WARN: 1, Health.BAD: 2}
    dl = Health(drbd.get("level", Health.OK))
    if worse[dl] > worse[level]:
        return dl, f"{line}; {drbd.get('summary', '')}"
    return level, line


def chain_health(st: dict) -> tuple[Health, str]:
    """The chain's verdict (where it runs, the operator's settings, the warnings); with
    several resource groups, each group's, the worst first."""
    if st.get("groups"):
        return groups_health(st)
    return _one_chain_health(st)


def groups_health(st: dict) -> tuple[Health, str]:
    """Every group judged as a chain of its own (its roles on both nodes), then the worst
    level, and one line naming each group: "g1: chain running on node1; g2: ..."."""
    rank = {Health.OK: 0, Health.WARN: 1, Health.BAD: 2}
    verdicts = []
    for g in st["groups"]:
        sub = dict(st, role=g["role"], peer=dict(st["peer"], role=g["peer_role"]), groups=None)
        level, line = _one_chain_health(sub)
        verdicts.append((level, f"{g['id']}: {line.replace('the chain', 'the group').replace('chain running', 'running')}"))
    worst = max((lv for lv, _ in verdicts), key=rank.__getitem__)
    return worst, "; ".join(line for _, line in verdicts)


def _one_chain_health(st: dict) -> tuple[Health, str]:
    peer = st["peer"]
    peer_up = peer["state"] == PeerStatus.UP
    here = st["role"] == Role.ACTIVE
    there = peer_up and peer["role"] == Role.ACTIVE
    if st["role"] == Role.STOP_FAILED or (peer_up and peer["role"] == Role.STOP_FAILED):
        who = st["node"] if st["role"] == Role.STOP_FAILED else peer["node"]
        return Health.BAD, f"{who} could not stop its resources: operator needed"
    if here and there:
        return Health.BAD, "the chain runs on BOTH nodes"
    if not here and not there:
        if st["role"] in (Role.STARTING, Role.ACQUIRING, Role.PROBING) or (peer_up and peer["role"] in (Role.STARTING, Role.STOPPING, Role.PROBING)):
            return Health.WARN, "failover in progress"
        if st.get("stopped"):  # on purpose: a warning (someone must `hasync start`), not a fault
            return Health.WARN, "the chain is stopped on purpose (hasync start)"
        if st.get("maintenance"):
            return Health.WARN, "maintenance mode: the chain runs nowhere and nothing starts it"
        return Health.BAD, "the chain runs nowhere"
    who = st["node"] if here else peer["node"]
    other = peer if here else {"node": st["node"], "state": PeerStatus.UP, "role": st["role"]}
    line = f"chain running on {who}"
    if other["state"] != PeerStatus.UP:
        line += f"; {other['node']} is {other['state']}"
        return Health.WARN, line
    line += f"; {other['node']} {other['role']}"
    if st.get("warnings") or operator_banner(st):  # (the peer's operator standby: no failover either)
        return Health.WARN, line
    return Health.OK, line


def operator_banner(st: dict) -> list[str]:
    """The operator's settings, loud: what keeps the cluster from acting on its own."""
    out = []
    if st.get("maintenance"):
        out.append("MAINTENANCE MODE: nothing is started, stopped, restarted or fenced on either node "
                   "(hasync maintenance off)")
    if st.get("stopped"):
        out.append("STOPPED ON PURPOSE: the chain runs on neither node until `hasync start`")
    if st.get("operator_standby"):
        out.append(f"STANDBY: {st['node']} never runs the chain, not even if {st['peer']['node']} fails (hasync online)")
    p = st["peer"]
    if p.get("state") == PeerStatus.UP and "operator-standby" in p.get("flags", ()):
        out.append(f"STANDBY: {p['node']} never runs the chain, not even if {st['node']} fails (hasync online {p['node']})")
    return out


def render(st: dict):
    level, line = health(st)
    style = HEALTH_STYLE[level]
    mark = HEALTH_MARK[level]
    head = Text.assemble((f" {mark} ", style), "  ", (line, "bold"), f"   cluster {st['cluster']}, seen from {st['node']}")
    parts: list = [head]
    for banner in operator_banner(st):
        parts.append(Text(f" {banner} ", style="bold black on yellow"))

    nodes = Table(title="Nodes", title_justify="left", expand=False)
    for c in ("node", "role", "state", "owns", "last heard", "flags", "epoch"):
        nodes.add_column(c)
    pref = st.get("preferred_node")
    me_flags = ", ".join(st.get("flags", []))
    nodes.add_row(
        st["node"] + (" *" if st["node"] == pref else "") + " (this node)",
        Text(st["role"], ROLE_STYLE.get(st["role"], "")),
        "up",
        ", ".join(st["owned"]) or "-",
        "-",
        me_flags or "-",
        str(st["epoch"]),
    )
    p = st["peer"]
    pstate_style = {PeerStatus.UP: "green", PeerStatus.DEAD: "bold red", PeerStatus.LEFT: "yellow", PeerStatus.UNKNOWN: "yellow",
                    PeerStatus.UNVERIFIED: "bold yellow"}.get(p["state"], "")
    p_up = p["state"] == PeerStatus.UP
    nodes.add_row(
        p["node"] + (" *" if p["node"] == pref else ""),
        Text(p["role"] if p_up else f"({p['role']})", ROLE_STYLE.get(p["role"], "") if p_up else "dim"),
        Text(p["state"] + (" (fenced)" if p.get("fenced") and not p_up else ""), pstate_style),
        (", ".join(p["owned"]) or "-") if p_up else Text(f"({', '.join(p['owned']) or '-'})", "dim"),
        _age(p.get("last_seen_s")),
        ", ".join(p.get("flags", [])) or "-",
        str(p.get("epoch", "")),
    )
    parts.append(nodes)
    if st.get("groups"):
        parts.append(groups_table(st))

    links = Table(title=f"Heartbeat links (keepalive {st['timing']['keepalive'] * 1000:.0f} ms, deadtime {st['timing']['deadtime'] * 1000:.0f} ms)", title_justify="left")
    for c in ("link", "state", "heard", "loss", "recv", "badMAC", "replay", "other"):
        links.add_column(c, justify="right" if c not in ("link", "state") else "left", no_wrap=True)
    for lk in st["links"]:
        ls = {LinkStatus.UP: "green", LinkStatus.DEAD: "bold red", LinkStatus.UNKNOWN: "yellow"}.get(lk["state"], "")
        other = lk["malformed"] + lk["old_generation"] + lk.get("stale", 0) + lk["foreign"] + lk["send_errors"]
        loss = lk["loss_pct"]
        links.add_row(
            lk["name"],
            Text(lk["state"], ls),
            _age(lk["last_seen_s"]),
            Text(f"{loss:.1f}%", "yellow" if loss >= 1 else ""),
            str(lk["received"]),
            Text(str(lk["bad_mac"]), "red" if lk["bad_mac"] else ""),
            Text(str(lk["replay"]), "red" if lk["replay"] else ""),
            str(other),
        )
    parts.append(links)

    res = Table(title="Resources (start order; stop is the reverse)", title_justify="left")
    for c in ("#", "resource", "agent", "running on", "here", "last op"):
        res.add_column(c)
    for i, r in enumerate(st["resources"], 1):
        on = r["running_on"]
        last = "-"
        if r.get("last_op"):
            last = f"{r['last_op']} {r['last_outcome']} {r['last_duration_ms']:.0f} ms"
            if r.get("detail") and r.get("last_outcome") not in (OpOutcome.OK, OpOutcome.RUNNING):
                last += f" ({r['detail']})"
        res.add_row(
            str(i),
            r["id"],
            Text(f"{r['type']}:{r['agent']}"),
            Text(", ".join(on) or "nowhere", "bold red" if len(on) != 1 else "green"),
            Text(r["state_here"], {ResourceStatus.RUNNING: "green", ResourceStatus.FAILED: "bold red"}.get(r["state_here"], "")),
            escape(last),
        )
    parts.append(res)

    drbd = st.get("drbd")
    if drbd:
        parts.append(Text(drbd["summary"], style={Health.WARN: "yellow", Health.BAD: "bold red"}.get(drbd["level"], "green")))
    parts.append(render_failover(st.get("last_failover")))
    grace = grace_line(st.get("nfs_grace"))
    if grace:
        parts.append(Text(grace, style="bold yellow" if st["nfs_grace"]["in_grace"] else "green"))

    warns = list(st.get("warnings", []))
    if warns:
        parts.append(Panel("\n".join(f"[yellow]![/yellow] {escape(w)}" for w in warns), title="Warnings", title_align="left", border_style="yellow"))
    d = st.get("daemon", {})
    parts.append(Text(f"daemon pid {d.get('pid')}, up {d.get('uptime_s', 0):.0f} s, {d.get('priority')}, RSS {d.get('rss_mb', '?')} MB, "
                      f"fencing {st['fencing']['mode']}, auto_failback {'on' if st.get('auto_failback') else 'off'}"
                      + (f", settings digest {st['config_digest']}" if st.get("config_digest") else ""), style="dim"))
    if p.get("config_agrees") is False:
        parts.append(Text(f"the nodes' settings differ ({st.get('config_digest')} here, {p.get('config_digest')} on {p['node']}): "
                          "ties go by node name, no auto_failback", style="bold yellow"))
    stalls = stall_line(d)
    if stalls:
        parts.append(Text(stalls, style="yellow"))
    return Group(*parts)


def groups_table(st: dict) -> Table:
    """Several resource groups: each one's owner, chain and roles (issue 17)."""
    t = Table(title="Resource groups (each fails over on its own)", title_justify="left")
    for c in ("group", "runs on", "chain (start order)", f"{st['node']}", f"{st['peer']['node']}", "preferred", "failback"):
        t.add_column(c)
    for g in st["groups"]:
        owner = g.get("owner")
        t.add_row(g["id"], Text(owner or "nowhere", "bold red" if owner in (None, "both") else "green"),
                  ", ".join(g["resources"]), Text(g["role"], ROLE_STYLE.get(g["role"], "")),
                  Text(g["peer_role"], ROLE_STYLE.get(g["peer_role"], "")), g["preferred_node"],
                  "on" if g["auto_failback"] else "off")
    return t


def stall_line(d: dict) -> str:
    """One line about late wake-ups of the daemon (the host did not run it), or ""."""
    n = d.get("scheduler_stalls") or 0
    if not n:
        return ""
    ago = d.get("last_stall_ago_s")
    return (f"{n} scheduler stall{'s' if n != 1 else ''}: the daemon woke up to {d.get('worst_late_wake_ms')} ms late "
            f"(threshold {d.get('stall_threshold_ms')} ms; last {d.get('last_stall_ms')} ms, {ago} s ago): "
            "this host did not run it; late heartbeats then are not the network's fault")


def render_failover(rec: dict | None, last: int = 25, title: str = "Last failover"):
    """A failover record's events (the *last* ones; 0: all)."""
    if not rec:
        return Text(f"{title}: none recorded", style="dim")
    t = Table(title=f"{title} on {rec.get('node')}: {rec.get('began')} — {rec.get('trigger')}", title_justify="left")
    t.add_column("+ms", justify="right")
    t.add_column("event")
    events = rec.get("events", [])
    for e in events[-last:] if last else events:
        style = LEVEL_STYLE.get(e.get("level"), "")
        t.add_row(f"{e.get('offset_ms', 0):.0f}", Text(e["message"], style))
    dur = rec.get("duration_ms")
    t.caption = f"result: {rec.get('result')}" + (f" after {dur:.0f} ms" if dur is not None else "")
    if rec.get("events_dropped"):
        t.caption += f" ({rec['events_dropped']} events in the middle not kept)"
    return t


def render_down(error: str, last: dict | None):
    return Group(
        Text.assemble((" DOWN ", "bold white on red"), "  ", (error, "bold")),
        Text("start it with `systemctl start hasync-failover` (or `hasync failover run`)", style="dim"),
        render_failover(last),
    )
