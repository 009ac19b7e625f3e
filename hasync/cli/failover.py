"""The commands that talk to the failover daemon or act for it: `hasync status`,
`takeover`, `migrate` and `fence` (the daemon itself: daemon.py; standby, online,
cleanup, maintenance, stop, start: oncall.py)."""

from __future__ import annotations

import argparse
import sys

from hasync import config
from hasync.bootstrap import doctor_drbd, drbd_state
from hasync.cli import common, failover_views
from hasync.effects.run import ProcRunner
from hasync.failover import client, protocol
from hasync.failover.fence_peer import Verdict, fence_node
from hasync.failover.host import NoSuchNode, Paths
from hasync.failover.migrate_plan import migrate_plan
from hasync.failover.states import Command, Health
from hasync.failover.status_view import health

ERRORS: common.ErrorMap = {**common.ERRORS, NoSuchNode: (2, "error")}

STATUS_HELP = """\
Show what the cluster is doing, as this node's failover daemon sees it: both nodes and
their roles, every heartbeat link (last packet, loss, bad/replayed packets), the chain's
resources and where they run, the last failover's timeline and any warnings (a dead
link, fencing off, a node that cannot stop its resources).
Maintenance mode, the chain stopped on purpose and an operator standby are shown on top,
loud. With DRBD ([storage] use_drbd), its state here: connection, disk states, resync
progress with an estimate of the time left; a split brain is a problem (`hasync doctor`
prints the runbook).

Exit status (for monitoring): 0 ok (the chain runs on exactly one node, nothing is
wrong), 1 warning (a dead link, the peer down, maintenance mode, the chain stopped on
purpose, an operator standby, a resync under way ...), 2 problem (the chain runs nowhere
or on both nodes, a node that could not stop its resources, DRBD split brain or no
up-to-date disk), 3 the daemon is not running on this node. With --json: 0 whenever the
daemon answered (the verdict is in "health": {"level": ok|warn|bad, "summary"}).
Logs: journalctl -u hasync-failover; past failovers: hasync history.
"""

TAKEOVER_HELP = """\
Take the chain (heartbeat's hb_takeover): the peer stops it (in reverse order), then this
node starts it (in order), with live progress. Also ends this node's operator standby and
clears its failed mark. Refused while the chain is stopped on purpose (`hasync start`),
in maintenance mode, or while this node is stop-failed (`hasync cleanup`).
Exit status: 0 this node runs the chain, 1 refused or not done, 3 no daemon here.
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

MIGRATE_HELP = """\
Move the chain to NODE: `takeover` when NODE is this node, `standby` when it is the peer.
With several resource groups, `migrate GROUP --to NODE` moves that group only (the
others keep running where they are); without GROUP every group moves.
--dry-run prints what would run, in order, without changing anything.
Exit status: 0 moved, 1 refused or not done, 2 no such node or group (as the running
daemon knows them), 3 no daemon here.
"""

# exit status of `hasync status` (monitoring reads it)
STATUS_EXIT = {Health.OK: 0, Health.WARN: 1, Health.BAD: 2}

# exit status of `hasync fence`: 0 means "the peer is down" to DRBD's handler
FENCE_STATUS = {Verdict.FENCED: 0, Verdict.ALREADY_FENCED: 0, Verdict.NO_SUCH_NODE: 2}


def register(sub) -> None:
    def parser(name: str, description: str) -> argparse.ArgumentParser:
        return common.daemon_parser(sub, name, description)

    s = parser("status", STATUS_HELP)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=cmd_status)

    c = parser("takeover", TAKEOVER_HELP)
    common.wait_option(c)
    c.add_argument("--json", action="store_true", help="print JSON lines instead of progress text")
    c.set_defaults(func=cmd_move, move="takeover")

    fe = parser("fence", FENCE_HELP)
    fe.add_argument("node", metavar="NODE", help="the node to fence (the peer)")
    fe.add_argument("--force", action="store_true", help="run the fence command even if the daemon fenced NODE already")
    fe.add_argument("--tiebreak", action="store_true", help="refuse when no [heartbeat].ping node answers (this node may be the isolated one)")
    fe.set_defaults(func=cmd_fence)

    m = parser("migrate", MIGRATE_HELP)
    m.add_argument("group", nargs="?", default="", metavar="GROUP", help="the resource group to move (default: every group)")
    m.add_argument("--to", required=True, metavar="NODE", help="the node that should run the chain")
    m.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    common.wait_option(m)
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_move, move="migrate")


def _paths(args: argparse.Namespace) -> Paths:
    return Paths.default(args.state_dir, args.run_dir)


def cmd_status(args: argparse.Namespace) -> int:
    answer = client.status_or_last(_paths(args))
    if answer.unreadable:  # something answered, but not a status this hasync reads
        if args.json:
            common.print_json({"daemon_running": True, "error": answer.error,
                               "health": {"level": Health.BAD, "summary": answer.error}})
            return 0
        common.print_error(answer.error)
        return STATUS_EXIT[Health.BAD]
    if answer.status is None:
        if args.json:
            common.print_json({"daemon_running": False, "error": answer.error, "last_failover": answer.last_failover})
        else:
            failover_views.daemon_down(answer.error, answer.last_failover)
        return 3
    st = dict(answer.status, daemon_running=True)
    drbd = drbd_here(args)
    if drbd is not None:
        level, line = drbd_state.health(drbd)
        st["drbd"] = dict(drbd.as_dict(), level=level, summary=line)
    level, summary = health(st)
    st["health"] = {"level": level, "summary": summary}
    if args.json:
        common.print_json(st, default=str)
        return 0  # the daemon answered: the verdict is in "health"
    failover_views.status(st)
    return STATUS_EXIT[level]


def drbd_here(args: argparse.Namespace) -> drbd_state.Drbd | None:
    """DRBD's state on this node, when the config uses DRBD (an unreadable config: none;
    `hasync status` works without one)."""
    try:
        cluster = common.load_cluster(args)
    except (config.ConfigError, OSError):
        return None
    return doctor_drbd.read_local(cluster, ProcRunner())


def cmd_fence(args: argparse.Namespace) -> int:
    result = fence_node(common.load_cluster(args), args.node, runner=ProcRunner(), socket=_paths(args).socket,
                        force=args.force, tiebreak=args.tiebreak)
    if result.node_is_down:
        print(result.message)
    else:
        print(f"hasync fence: {result.message}", file=sys.stderr)
    return FENCE_STATUS.get(result.verdict, 1)


def cmd_move(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if args.move == Command.MIGRATE and args.dry_run:
        cluster = common.load_cluster(args)
        if args.group and args.group not in {g.id for g in cluster.resource_groups()}:
            common.print_error(f"no resource group {args.group!r}; groups: {', '.join(g.id for g in cluster.resource_groups())}")
            return 2
        plan = migrate_plan(cluster, args.to, paths.socket, group=args.group)
        if args.json:
            common.print_json(plan.as_dict())
        else:
            failover_views.migrate_plan(plan)
        return 0
    req = protocol.Request(args.move, args.to if args.move == Command.MIGRATE else "",
                           group=getattr(args, "group", "") if args.move == Command.MIGRATE else "")
    try:
        last = client.command(paths.socket, req, failover_views.move_progress(args.move, as_json=args.json), wait=args.wait)
    except client.NotRunning as e:
        return common.fail(args, str(e), 3)
    except TimeoutError as e:
        return common.fail(args, f"{e} (waited {args.wait:g}s; see `hasync status`)", 1)
    except client.BadAnswer as e:
        return common.fail(args, str(e), 1)
    if last.get("bad_request"):
        return 2  # a node or group that does not exist: bad input, as a config error is
    if last.get("done"):
        return 0 if last.get("ok") else 1
    return 0 if last.get("ok") and last.get("message") == "already active" else 1
