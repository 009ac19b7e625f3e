"""Subcommands of the failover area: failover run, status, standby, takeover, migrate."""

from __future__ import annotations

import argparse
import json
import sys
import time

from hasync.effects import net
from hasync.effects.keyfile import KeyFileError
from hasync.effects.run import ProcRunner
from hasync.failover import client, protocol
from hasync.failover.errors import StartupError, UnknownNode
from hasync.failover.fencing import fence_command
from hasync.failover.host import Paths, local_node_name
from hasync.failover.states import Command, Health, PeerStatus, Role
from hasync.failover.timeline import read_last

RUN_HELP = """\
Run the failover daemon in the foreground (systemd: hasync-failover.service, Type=notify).

It sends a heartbeat every keepalive on every [[heartbeat.link]] (UDP unicast, multicast,
broadcast on the named interface, or a serial tty), signed with HMAC-SHA256 using the key
in [heartbeat].auth_key (the file must be mode 0600), and decides with its peer who runs
the [[resource]] chain: started in order on one node, stopped in reverse. When the peer
is silent on every link for deadtime it fences it ([fencing]) and takes the chain over.

Files: /run/hasync/failover.sock (control socket: status, standby, takeover, migrate),
/run/hasync/role (this node's role, one word), /var/lib/hasync/failover/timeline.jsonl
and last-failover.json (every transition with durations). SIGTERM stops the chain here
(in reverse) and leaves the cluster cleanly: the peer takes over without fencing.
"""

STATUS_HELP = """\
Show what the cluster is doing, as this node's failover daemon sees it: both nodes and
their roles, every heartbeat link (last packet, loss, bad/replayed packets), the chain's
resources and where they run, the last failover's timeline and any warnings (a dead
link, fencing off, a node that cannot stop its resources).
Exit status: 0 the chain runs on exactly one node and nothing is wrong, 1 a warning or
the chain does not run, 3 the daemon is not running on this node. With --json: 0 whenever
the daemon answered (the verdict is in "health": {"level": ok|warn|bad, "summary"}).
"""

STANDBY_HELP = """\
Hand the chain to the peer: stop it here (in reverse order), then the peer starts it (in
order). Progress is shown live; the command returns when the peer runs the chain. This
node stays standby while the peer is up (`hasync takeover` brings it back). Refused when
the peer is not up: nobody would run the services.
"""

TAKEOVER_HELP = """\
Take the chain: the peer stops it (in reverse order), then this node starts it (in order),
with live progress. Also clears this node's standby and failed marks.
"""

FENCE_HELP = """\
Fence NODE with the cluster's [fencing] command ({node} and {address} filled in) and
wait for it: exit 0 when the command reports success, 1 otherwise. This is what DRBD's
fence-peer handler runs (`fencing resource-and-stonith`): exit 0 there means "the peer is
down, IO may resume". When this node's failover daemon has already fenced NODE since
it was last heard (it fences a silent peer before taking over), the command is not run
a second time. Refuses the local node and does nothing useful with fencing off (exit 1).

--tiebreak (what the DRBD handler passes): when [heartbeat].ping names ping nodes and none
of them answers, this node is probably the one cut off: it does not fence NODE (exit 1,
DRBD keeps IO frozen) and leaves the decision to the side that can still reach the
network. Without it, two partitioned nodes could power each other off.
"""

FORGET_PEER_HELP = """\
Forget the highest generation this node ever accepted from NODE (the peer). The daemon
refuses any packet of a lower generation, for good: a replay of an old packet must not
count. A peer's generation only goes back when it lost its state directory AND its
clock went back (a reinstall): then `hasync status` says so, and this is the way out.
Tells the running daemon, or edits <state-dir>/peer-generation when it is not running.
"""

MIGRATE_HELP = """\
Move the chain to NODE: `takeover` when NODE is this node, `standby` when it is the peer.
--dry-run prints what would run, in order, without changing anything.
"""


def _paths(args) -> Paths:
    return Paths.default(getattr(args, "state_dir", None), getattr(args, "run_dir", None))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", metavar="DIR", help="where the control socket and role file live (default: $HASYNC_RUN_DIR or /run/hasync)")
    p.add_argument("--state-dir", metavar="DIR", help="timeline and generation (default: $HASYNC_FAILOVER_STATE_DIR or /var/lib/hasync/failover)")


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("failover", help="the failover daemon (hasync failover [run])", description=RUN_HELP, formatter_class=fmt)
    fsub = p.add_subparsers(dest="failover_command", metavar="ACTION")
    r = fsub.add_parser("run", help="run the failover daemon in the foreground", description=RUN_HELP, formatter_class=fmt)
    _common(r)
    r.add_argument("--node", help="this node's name (default: $HASYNC_NODE or uname -n)")
    r.add_argument("--priority", choices=("fifo", "nice", "none"), default="fifo",
                   help="raise the daemon's scheduling priority so heartbeats keep flowing under load: "
                        "fifo = SCHED_FIFO 10 (children reset to normal), nice = nice -10 (default: fifo, best effort)")
    r.add_argument("--no-mlock", action="store_true", help="do not lock the daemon's memory (mlockall)")
    r.add_argument("--no-vip-fast-path", action="store_true",
                   help="start IPaddr2 VIPs only through the agent (by default hasync adds the address and "
                        "starts send_arp itself first, as the agent would, so the VIP answers ~50-200 ms sooner; "
                        "the agent's start then runs and checks it)")
    r.add_argument("--rx-wake", action="store_true",
                   help="wake up for every received heartbeat (default: read the links, with kernel receive "
                        "timestamps, whenever the daemon wakes to send or at a deadline: fewer wake-ups, same timing)")
    r.add_argument("--agent-nice", type=int, default=-10, metavar="N",
                   help="nice level of OCF agents (start/stop/monitor), so a takeover does not starve "
                        "behind a busy CPU (default -10; 0 = like any process)")
    r.set_defaults(func=cmd_run)
    fp = fsub.add_parser("forget-peer", help="accept a lower generation from a reinstalled peer", description=FORGET_PEER_HELP, formatter_class=fmt)
    _common(fp)
    fp.add_argument("node", metavar="NODE", help="the peer")
    fp.set_defaults(func=cmd_forget_peer)
    # `hasync failover` alone runs the daemon too (units written as `hasync failover`)
    _common(p)
    p.add_argument("--node", help=argparse.SUPPRESS)
    p.add_argument("--priority", choices=("fifo", "nice", "none"), default="fifo", help=argparse.SUPPRESS)
    p.add_argument("--no-mlock", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--agent-nice", type=int, default=-10, help=argparse.SUPPRESS)
    p.add_argument("--no-vip-fast-path", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rx-wake", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="nodes, links, resources, last failover, warnings", description=STATUS_HELP, formatter_class=fmt)
    _common(s)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=cmd_status)

    for name, helptext, desc in (("standby", "hand the chain to the peer", STANDBY_HELP), ("takeover", "take the chain from the peer", TAKEOVER_HELP)):
        c = sub.add_parser(name, help=helptext, description=desc, formatter_class=fmt)
        _common(c)
        c.add_argument("--wait", type=float, default=120.0, metavar="SECONDS", help="give up waiting after this long (default 120)")
        c.add_argument("--json", action="store_true", help="print JSON lines instead of progress text")
        c.set_defaults(func=cmd_move, move=name)

    fe = sub.add_parser("fence", help="fence a node with the [fencing] command (DRBD's fence-peer handler)", description=FENCE_HELP, formatter_class=fmt)
    _common(fe)
    fe.add_argument("node", metavar="NODE", help="the node to fence (the peer)")
    fe.add_argument("--force", action="store_true", help="run the fence command even if the daemon fenced NODE already")
    fe.add_argument("--tiebreak", action="store_true", help="refuse when no [heartbeat].ping node answers (this node may be the isolated one)")
    fe.set_defaults(func=cmd_fence)

    m = sub.add_parser("migrate", help="move the chain to a node", description=MIGRATE_HELP, formatter_class=fmt)
    _common(m)
    m.add_argument("--to", required=True, metavar="NODE", help="the node that should run the chain")
    m.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    m.add_argument("--wait", type=float, default=120.0, metavar="SECONDS", help="give up waiting after this long (default 120)")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_move, move="migrate")


def cmd_run(args) -> int:
    from hasync.cli import load_config
    from hasync.failover.daemon import run_daemon

    cluster = load_config(args)
    try:
        return run_daemon(cluster, node=args.node, state_dir=args.state_dir, run_dir=args.run_dir, priority=args.priority, mlock=not args.no_mlock, agent_nice=args.agent_nice, vip_fast=not args.no_vip_fast_path, rx_wake=args.rx_wake)
    except KeyFileError as e:
        print(f"hasync failover: {e}", file=sys.stderr)
        return 2
    except StartupError as e:
        print(e, file=sys.stderr)
        return 1


def cmd_fence(args) -> int:
    from hasync.cli import load_config

    cluster = load_config(args)
    names = [n.name for n in cluster.nodes]
    if args.node not in names:
        print(f"hasync fence: no node named {args.node!r}; nodes: {', '.join(names)}", file=sys.stderr)
        return 2
    try:
        me = local_node_name(cluster)
    except UnknownNode:
        me = ""
    if args.node == me:
        print(f"hasync fence: {args.node} is this node; refusing to fence myself", file=sys.stderr)
        return 1
    f = cluster.fencing
    if not f.command:
        print(f"hasync fence: no [fencing].command in {cluster.path} (mode {f.mode}): cannot fence {args.node}", file=sys.stderr)
        return 1
    if not args.force:
        try:
            st = client.status(_paths(args).socket, timeout=2.0)
            p = st.get("peer", {})
            if p.get("node") == args.node and p.get("fenced") and p.get("state") != PeerStatus.UP:
                print(f"{args.node} was fenced by the failover daemon (it has not been heard from since)")
                return 0
        except Exception:
            pass  # no daemon: fence ourselves
    ping = cluster.heartbeat.ping
    if getattr(args, "tiebreak", False) and ping:
        if not net.ping_any(ping):
            print(f"hasync fence: no ping node answers ({', '.join(ping)}): this node may be the isolated one; "
                  f"not fencing {args.node}", file=sys.stderr)
            return 1
    node = cluster.node(args.node)
    cmd = fence_command(f, node)
    r = ProcRunner().run(cmd.argv, env=dict(cmd.env), timeout=cmd.timeout)
    out = (r.stderr.strip() or r.stdout.strip()).splitlines()
    if r.ok:
        print(f"fenced {node.name} in {r.duration_s:.2f}s (`{cmd.text}`)")
        return 0
    print(f"hasync fence: `{cmd.text}` exited {r.exit_code}" + (f": {out[-1]}" if out else ""), file=sys.stderr)
    return 1


def cmd_forget_peer(args) -> int:
    from hasync.failover.daemon.persist import forget_peer

    paths = _paths(args)
    try:
        reply = client.command(paths.socket, protocol.Request(Command.FORGET_PEER, args.node), lambda obj: None, wait=5)
    except client.NotRunning:
        forgot = forget_peer(paths.state_dir, args.node)
        print(f"the daemon is not running: {'forgot' if forgot else 'nothing kept about'} {args.node}'s generation "
              f"({paths.state_dir}/peer-generation)")
        return 0
    except (TimeoutError, OSError, ValueError) as e:
        print(f"hasync failover forget-peer: {e}", file=sys.stderr)
        return 1
    print(reply.get("message", reply), file=sys.stdout if reply.get("ok") else sys.stderr)
    return 0 if reply.get("ok") else 1


def cmd_status(args) -> int:
    paths = _paths(args)
    try:
        st = client.status(paths.socket)
    except (client.NotRunning, TimeoutError, OSError, ValueError) as e:
        last = read_last(paths.state_dir)
        if args.json:
            print(json.dumps({"daemon_running": False, "error": str(e), "last_failover": last}, indent=2))
        else:
            from rich.console import Console

            from hasync.failover.status_view import render_down

            Console(emoji=False).print(render_down(str(e), last))
        return 3
    st["daemon_running"] = True
    from hasync.failover.status_view import health

    level, summary = health(st)
    st["health"] = {"level": level, "summary": summary}
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0  # the daemon answered: the verdict is in "health"
    else:
        from rich.console import Console

        from hasync.failover.status_view import render

        Console(emoji=False).print(render(st))
    return 0 if level == Health.OK else 1


def cmd_move(args) -> int:
    from rich.console import Console

    from hasync.failover.status_view import LEVEL_STYLE

    con = Console(emoji=False)
    err = Console(stderr=True, emoji=False)
    paths = _paths(args)
    if args.move == Command.MIGRATE and args.dry_run:
        return _dry_run(args, paths, con)
    req = protocol.Request(args.move, args.to if args.move == Command.MIGRATE else "")
    t0 = time.monotonic()

    def show(obj: dict) -> None:
        if args.json:
            print(json.dumps(obj, default=str), flush=True)
            return
        if "event" in obj:
            e = obj["event"]
            style = LEVEL_STYLE.get(e.get("level"), "")
            con.print(f"  [dim]{time.monotonic() - t0:6.2f}s[/dim] [{style}]{_esc(e['message'])}[/{style}]" if style else f"  [dim]{time.monotonic() - t0:6.2f}s[/dim] {_esc(e['message'])}", highlight=False)
        elif obj.get("done"):
            if obj.get("ok"):
                con.print(f"[green]done[/green] in {time.monotonic() - t0:.2f}s: this node is {obj['role']}, peer {obj.get('peer_role')} ({obj.get('peer_state')})", highlight=False)
            else:
                err.print(f"[red]not done[/red]: this node is {obj['role']}, peer {obj.get('peer_role')} ({obj.get('peer_state')})", highlight=False)
        elif "message" in obj:
            if obj.get("ok"):
                con.print(f"[bold]{args.move}[/bold]: {_esc(obj['message'])}", highlight=False)
            else:
                err.print(f"[red]refused[/red]: {_esc(obj['message'])}", highlight=False)

    try:
        last = client.command(paths.socket, req, show, wait=args.wait)
    except client.NotRunning as e:
        err.print(f"[red]error[/red]: {_esc(str(e))}")
        return 3
    except TimeoutError as e:
        err.print(f"[red]error[/red]: {e} (waited {args.wait:g}s; see `hasync status`)")
        return 1
    if last.get("done"):
        return 0 if last.get("ok") else 1
    return 0 if last.get("ok") and last.get("message") == "already active" else 1


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _dry_run(args, paths, con) -> int:
    from rich.table import Table

    from hasync.cli import load_config
    from hasync.failover.chain import plan_summary

    cluster = load_config(args)
    names = [n.name for n in cluster.nodes]
    if args.to not in names:
        print(f"error: no node named {args.to!r}; nodes: {', '.join(names)}", file=sys.stderr)
        return 2
    active = "?"
    try:
        st = client.status(paths.socket)
        if st["role"] == Role.ACTIVE:
            active = st["node"]
        elif st["peer"]["role"] == Role.ACTIVE and st["peer"]["state"] == PeerStatus.UP:
            active = st["peer"]["node"]
        else:
            active = "nobody"
    except Exception:
        pass
    plan = plan_summary(cluster.resources, profile=cluster.profile)  # resolved by the config load
    if args.json:
        print(json.dumps({"to": args.to, "active": active, "stop_on": active, "stop": [p["id"] for p in reversed(plan)], "start": [p["id"] for p in plan], "plan": plan}, indent=2))
        return 0
    if active == args.to:
        con.print(f"the chain already runs on {args.to}: nothing to do")
        return 0
    t = Table(title=f"migrate to {args.to} (dry run: nothing changes)", show_lines=False)
    t.add_column("#", justify="right")
    t.add_column("node")
    t.add_column("op")
    t.add_column("resource")
    t.add_column("command")
    i = 0
    if active not in ("nobody", "?"):
        for p in reversed(plan):
            i += 1
            t.add_row(str(i), active, "stop", p["id"], _esc("; ".join(p["stop"])))
    elif active == "?":
        con.print("[yellow]the daemon is not reachable here: whoever holds the chain stops it first[/yellow]")
    for p in plan:
        i += 1
        t.add_row(str(i), args.to, "start", p["id"], _esc("; ".join(p["start"])))
    con.print(t)
    return 0
