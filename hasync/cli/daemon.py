"""`hasync failover run` (the failover daemon in the foreground) and `hasync failover
forget-peer NODE`.

Apart from failover.py (status, standby, ...) so that the daemon's process imports no
renderings: it runs for months with its memory locked (mlockall) on both nodes, and
rich alone is several MB of it. Imports here stay free of rich (common.py too).
"""

from __future__ import annotations

import argparse
import sys

from hasync.cli import common
from hasync.effects.keyfile import KeyFileError
from hasync.failover.daemon.run import run_daemon
from hasync.failover.errors import StartupError
from hasync.failover.forget_peer import forget_peer
from hasync.failover.host import Paths

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

FORGET_PEER_HELP = """\
Forget the highest generation this node ever accepted from NODE (the peer). The daemon
refuses any packet of a lower generation, for good: a replay of an old packet must not
count. A peer's generation only goes back when it lost its state directory AND its
clock went back (a reinstall): then `hasync status` says so, and this is the way out.
Tells the running daemon, or edits <state-dir>/peer-generation when it is not running.
"""

# A bad key file is bad input (2); any other reason the daemon cannot start is 1 (the
# message says why: bad timing, a link that cannot open, another daemon running).
ERRORS: common.ErrorMap = {**common.ERRORS, KeyFileError: (2, "hasync failover"), StartupError: (1, None)}


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("failover", description=RUN_HELP, formatter_class=fmt)
    common.config_option(p)
    fsub = p.add_subparsers(dest="failover_command", metavar="ACTION")
    p.set_defaults(func=common.show_help(p))
    r = fsub.add_parser("run", help="run the failover daemon in the foreground", description=RUN_HELP, formatter_class=fmt)
    common.dirs_options(r)
    common.config_option(r)
    r.add_argument("--node", help="this node's name (default: $HASYNC_NODE, else uname -n or its short name)")
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
    fp = fsub.add_parser("forget-peer", help="accept a lower generation from a reinstalled peer",
                         description=FORGET_PEER_HELP, formatter_class=fmt)
    common.dirs_options(fp)
    common.config_option(fp)
    fp.add_argument("node", metavar="NODE", help="the peer")
    fp.set_defaults(func=cmd_forget_peer)


def cmd_run(args: argparse.Namespace) -> int:
    cluster = common.load_cluster(args)
    return run_daemon(cluster, node=args.node, state_dir=args.state_dir, run_dir=args.run_dir, priority=args.priority,
                      mlock=not args.no_mlock, agent_nice=args.agent_nice, vip_fast=not args.no_vip_fast_path,
                      rx_wake=args.rx_wake)


def cmd_forget_peer(args: argparse.Namespace) -> int:
    try:
        answer = forget_peer(Paths.default(args.state_dir, args.run_dir), args.node)
    except (TimeoutError, OSError, ValueError) as e:
        print(f"hasync failover forget-peer: {e}", file=sys.stderr)
        return 1
    if answer.status is None:  # no daemon here: its state file forgot
        print(answer.error)
        return 0
    reply = answer.status
    print(reply.get("message", reply), file=sys.stdout if reply.get("ok") else sys.stderr)
    return 0 if reply.get("ok") else 1
