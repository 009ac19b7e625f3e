"""The on-call admin's verbs on the failover daemon: `hasync cleanup [RESOURCE]`,
`maintenance on|off`, `stop`, `start`, `standby [NODE]`, `online [NODE]` (use cases:
failover/oncall.py; `takeover` and `migrate` stay in failover.py)."""

from __future__ import annotations

import argparse

from hasync import config
from hasync.cli import common, failover_views
from hasync.failover import client, hand_run, oncall
from hasync.failover.host import NoSuchNode, Paths, named_node
from hasync.failover.states import Command

ERRORS = common.ERRORS

EXIT = """\
Exit status: 0 done, 1 refused or not done (the message says why), 3 the failover daemon
is not running here (and nothing could be written for it)."""

CLEANUP_HELP = f"""\
Clear a failed state (pcs/crm `resource cleanup`): the daemon probes the chain (the status
of every resource on this node), says what it found, and clears a failure mark only when
the probe says it is safe: nothing of the chain runs here, or it runs where the cluster
thinks it runs (the whole chain here and nothing on the peer). A node that could not stop
its resources (stop-failed) becomes standby (nothing runs) or active again (everything
runs here); a failed mark or a restart count is forgotten. It never starts or stops
anything: when something still runs where it should not, it says which resource to stop
by hand (`hasync resource ID stop`). RESOURCE: clear only that resource's restart count.

{EXIT}
"""

MAINTENANCE_HELP = f"""\
Maintenance mode (Pacemaker's maintenance-mode), cluster-wide: both daemons keep
heartbeating and reporting but start, stop, monitor-restart and fence nothing; what runs
stays where it is. For DRBD, kernel or resource work. Kept in the state directory of both
nodes (a daemon restart or a reboot keeps it) until `hasync maintenance off`, which probes
the chain again and lets the usual rules decide (as at start-up). `hasync status` shows it
on top; `hasync doctor` warns when it stays on for long. With no daemon running here, the
setting is written to its state directory and the daemon starts in it.

off is refused while the peer is not up (leaving maintenance then means fencing it and
taking the chain over): start the peer's daemon first, or --force.

{EXIT}
"""

STOP_HELP = f"""\
Stop the chain on purpose, cluster-wide (pcs resource disable): the node running it stops
it (in reverse order), and neither node starts it again -- not after a failure, a restart
or a reboot -- until `hasync start`. Kept in both nodes' state directories.

{EXIT}
"""

START_HELP = f"""\
End `hasync stop`: the chain may run again; the usual rules (preferred node, operator
standby) decide where. Waits until it runs.

{EXIT}
"""

STANDBY_HELP = f"""\
Operator standby (crm node standby, heartbeat's hb_standby): NODE (default: this node)
stops the chain if it runs it (in reverse order), the other node starts it (in order), and
NODE never runs the chain -- not even when the other node fails -- until `hasync online
[NODE]`. Kept in NODE's state directory: a daemon restart or a reboot keeps it. Progress is
shown live. Refused when the other node is not up or cannot run the chain (nobody would).
For a one-off move that does not stick, `hasync migrate --to NODE`.

{EXIT}
"""

ONLINE_HELP = f"""\
End the operator standby of NODE (default: this node), and its failed mark: it may run
the chain again (the usual rules decide whether it does: `hasync takeover` to take it).

{EXIT}
"""


def register(sub) -> None:
    def parser(name: str, description: str) -> argparse.ArgumentParser:
        p = common.daemon_parser(sub, name, description)
        common.wait_option(p)
        p.add_argument("--json", action="store_true", help="print the daemon's JSON lines instead of progress text")
        return p

    c = parser("cleanup", CLEANUP_HELP)
    c.add_argument("resource", nargs="?", default="", metavar="RESOURCE", help="only this resource's restart count")
    c.set_defaults(func=cmd_operator, cmd=Command.CLEANUP, node="")
    m = parser("maintenance", MAINTENANCE_HELP)
    m.add_argument("mode", choices=("on", "off"), help="on: nothing moves; off: probe, then the usual rules")
    m.add_argument("--force", action="store_true", help="off although the peer is not up (this node then acts on it)")
    m.set_defaults(func=cmd_operator, node="", resource="")
    for name, desc, cmd in (("stop", STOP_HELP, Command.STOP), ("start", START_HELP, Command.START)):
        s = parser(name, desc)
        s.set_defaults(func=cmd_operator, cmd=cmd, node="", resource="")
    for name, desc, cmd in (("standby", STANDBY_HELP, Command.STANDBY), ("online", ONLINE_HELP, Command.ONLINE)):
        s = parser(name, desc)
        s.add_argument("node", nargs="?", default="", metavar="NODE", help="the node (default: this node)")
        s.set_defaults(func=cmd_operator, cmd=cmd, resource="")


def to_request(args: argparse.Namespace):
    """argv (parsed) -> the control socket's request."""
    if getattr(args, "mode", None) is not None:
        cmd = Command.MAINTENANCE_ON if args.mode == "on" else Command.MAINTENANCE_OFF
        return oncall.request(cmd, force=args.force)
    return oncall.request(args.cmd, node=args.node, resource=args.resource)


def _names(args: argparse.Namespace, why: list[str]) -> tuple[str, str]:
    """(this node, its peer) from the config, for a daemon that is down; ("", "") when the
    config cannot say (the running daemon needs neither), and *why* gets the reason."""
    try:
        cluster = common.load_cluster(args)
        local = config.local_node(cluster)
        return local, cluster.peer_of(local).name
    except (config.ConfigError, KeyError, OSError) as e:
        why.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return "", ""


def unknown_name(args: argparse.Namespace) -> str:
    """Why NODE or RESOURCE is not one of the config's (bad input), or "". Checked here
    when the config loads (else the daemon refuses it), so a typo is exit 2, not 1."""
    if not (args.node or args.resource):
        return ""
    try:
        cluster = common.load_cluster(args)
    except (config.ConfigError, OSError):
        return ""
    if args.node:
        try:
            named_node(cluster, args.node)
        except NoSuchNode as e:
            return str(e)
    if args.resource:
        try:
            hand_run.resource(cluster, args.resource)
        except hand_run.NoSuchResource as e:
            return str(e)
    return ""


def cmd_operator(args: argparse.Namespace) -> int:
    req = to_request(args)
    bad = unknown_name(args)
    if bad:
        return common.fail(args, bad, 2)
    paths = Paths.default(args.state_dir, args.run_dir)
    verb = args.command if req.cmd not in (Command.MAINTENANCE_ON, Command.MAINTENANCE_OFF) else f"maintenance {args.mode}"
    show = failover_views.move_progress(verb, as_json=args.json)
    why: list[str] = []
    try:
        out = oncall.run(paths, req, show, wait=args.wait, names=lambda: _names(args, why))
    except TimeoutError as e:
        return common.fail(args, f"{e} (waited {args.wait:g}s; see `hasync status`)", 1)
    except client.BadAnswer as e:
        return common.fail(args, str(e), 1)
    if out.error:
        if why and req.cmd in oncall.OFFLINE:  # it would have been written for the daemon
            return common.fail(args, f"{out.error}; nothing was written for it: {why[0]}", 3)
        return common.fail(args, out.error, 2 if out.bad_input else 3)
    if out.offline:
        if args.json:
            common.print_json({"ok": True, "offline": out.offline})
        else:
            print(out.offline)
        return 0
    return 0 if out.ok else 1
