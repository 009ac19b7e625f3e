"""`hasync resource ID start|stop|monitor|promote|demote [--foreground]`: one resource's
operation by hand, exactly as the chain runs it (use case: failover/hand_run.py)."""

from __future__ import annotations

import argparse
import sys
import time

from hasync.cli import common
from hasync.effects.files import ensure_dir
from hasync.effects.run import ProcRunner
from hasync.failover import client, hand_run
from hasync.failover.host import Paths
from hasync.failover.states import OpOutcome
from hasync.operations import ocf

ERRORS: common.ErrorMap = {**common.ERRORS, hand_run.NoSuchResource: (2, "error"), hand_run.Refused: (4, "refused")}

RESOURCE_HELP = """\
Run one operation of one resource of the chain by hand (pcs resource debug-start,
debug-stop, debug-monitor): exactly the commands the failover daemon runs for it (the
agent, its arguments, OCF_RESKEY_* parameters and timeout), with their output; monitor is
the chain's status check (OCF monitor, LSB/heartbeat status, systemctl is-active) read
as the daemon reads it. The daemon does not hear of it: its monitor, a cleanup or the
next failover see the result.

start and promote are refused when they could put the resource on two nodes: this node's
daemon is asked what the peer runs, and the peer must be standby without it, gone
cleanly, or fenced; and this node must be the active one, or the cluster in maintenance
mode (`hasync maintenance on`) or stopped (`hasync stop`), so nobody starts the chain
meanwhile. With no daemon here, check the peer yourself and give --force. promote/demote
answer "not promotable" for agents the chain does not promote.

--foreground: the agent writes to this terminal as it runs (else its output is shown
when it ends, with its exit status). --json: one JSON object at the end instead (the
resource, op, each command with its argv, OCF_RESKEY_* parameters, timeout, exit status,
output, outcome and duration, and the overall outcome and exit status).
Exit status: 0 done (monitor: running), 1 failed or timed out, 2 bad input, 3 monitor:
stopped, 4 refused.
"""


def register(sub) -> None:
    p = common.daemon_parser(sub, "resource", RESOURCE_HELP)
    p.add_argument("resource", metavar="ID", help="the resource's id in the chain ([[resource]] id)")
    p.add_argument("op", choices=hand_run.OPS, metavar="OP", help="start, stop, monitor, promote or demote")
    p.add_argument("--foreground", action="store_true", help="the agent's output on this terminal as it runs")
    p.add_argument("--force", action="store_true", help="start/promote without asking the daemon (you checked the peer)")
    p.add_argument("--json", action="store_true", help="one JSON object at the end (not with --foreground)")
    p.set_defaults(func=cmd_resource)


def cmd_resource(args: argparse.Namespace) -> int:
    if args.json and args.foreground:
        return common.fail(args, "--json and --foreground do not go together (the agent's output goes into the JSON)", 2)
    cluster = common.load_cluster(args)
    res = hand_run.resource(cluster, args.resource)
    cmds = hand_run.commands(res, args.op, cluster.profile)
    asks = args.op in ("stop", "demote") or (args.op in hand_run.ADDING and not args.force)
    st = client.status_or_last(Paths.default(args.state_dir, args.run_dir)).status if asks else None
    refused, note = hand_run.verdict(args.op, res.id, st, force=args.force)
    if refused:
        raise hand_run.Refused(f"{res.id} {args.op}: {refused}")
    if note and not args.json:
        print(f"note: {note}", file=sys.stderr)
    runner = ProcRunner()
    if res.type == "ocf":
        ensure_dir(ocf.RSCTMP, ocf.RSCTMP_MODE)  # as the daemon does (ocf.RSCTMP)
    result = None
    ran: list[dict] = []
    for cmd in cmds:
        params = {k: v for k, v in cmd.env if k.startswith("OCF_RESKEY_") and "meta" not in k}
        env = " ".join(f"{k}={v}" for k, v in params.items())
        if not args.json:
            print(f"$ {env + ' ' if env else ''}{' '.join(cmd.argv)}   (timeout {cmd.timeout:g}s)", flush=True)
        t0 = time.monotonic()
        if args.foreground:
            code, out = runner.run_attached(cmd.argv, env=dict(cmd.env), timeout=cmd.timeout), ""
            err = ""
        else:
            r = runner.run(cmd.argv, env=dict(cmd.env), timeout=cmd.timeout)
            code, out, err = r.exit_code, r.stdout, r.stderr
            if not args.json:
                sys.stdout.write(r.stdout)
                sys.stderr.write(r.stderr)
        result = hand_run.outcome(res, args.op, code, out)
        ran.append({"argv": list(cmd.argv), "params": params, "timeout_s": cmd.timeout, "exit": code, "stdout": out,
                    "stderr": err, "outcome": result.word, "why": result.why, "duration_s": round(time.monotonic() - t0, 3)})
        if not args.json:
            print(f"{res.id} {args.op}: {result.word} ({result.why})", flush=True)
        if args.op != "monitor" and result.word != "ok":
            break
    status = hand_run.EXIT.get(OpOutcome(result.word), 1) if result else 0
    if args.json:
        common.print_json({"resource": res.id, "op": args.op, "note": note, "commands": ran,
                           "outcome": result.word if result else "", "exit": status})
    return status
