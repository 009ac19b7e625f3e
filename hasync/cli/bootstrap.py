"""`hasync bootstrap` and `hasync doctor`: argv, the prompt and the printing (the wanted
state: bootstrap/wanted.py and join.py; facts -> plan -> apply: bootstrap/apply.py)."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.prompt import Confirm

from hasync.bootstrap import apply as bootstrap_apply
from hasync.bootstrap import doctor, join
from hasync.bootstrap import manifest as bootstrap_manifest
from hasync.bootstrap import plan as bootstrap_plan
from hasync.bootstrap.plan import Wanted
from hasync.bootstrap.wanted import wanted_state
from hasync.cli import common
from hasync.config.identity import local_node
from hasync.effects.run import ProcRunner, Runner

ERRORS: common.ErrorMap = {**common.ERRORS, join.JoinError: (1, "error")}

BOOTSTRAP_HELP = """\
Lay down what this node needs for the cluster, per the cluster config and the distro
profile it names (refused on a host the profile does not serve): the DRBD resource file
and metadata, the LVM filter (merged with the host's) and boot-time activation off, the
PV/VG/LV and filesystem (first node only), /var/lib/nfs on the replicated filesystem,
NFSv4 grace and lease in nfs.conf, sm-notify bound to the cluster address, NFS services
off at boot, /etc/exports with fsid= and mountpoint, the heartbeat key (0600), ssh keys
between the nodes and the hasync-watch / hasync-failover units.

Each step reads the node (command output, files), changes only what differs and reads
again. A second run prints `0 changes`. A device that carries any signature (filesystem,
LVM, swap, partition table) is never overwritten unless --allow-data-loss names it.
Every file replaced is kept in /var/lib/hasync/bootstrap/runs/<time>/ and --rollback puts
the last run's files back byte for byte. An interrupted run converges when re-run.
"""

BOOTSTRAP_EPILOG = """\
examples:
  hasync bootstrap --dry-run           show the plan with unified diffs, change nothing
  hasync bootstrap                     show the plan, ask, apply
  hasync bootstrap --join node1        on the second node: fetch the config from node1
  hasync bootstrap --rollback          restore the files of the last run

exit status: 0 done (or nothing to do), 1 a step failed or refused, 2 bad input.
"""

DOCTOR_HELP = """\
Look for the known pitfalls of a two-node HA NFS cluster, on this node and (over ssh) on
its peer: a peer unreachable on a heartbeat link, incompatible unison versions, clocks
apart, an exported device whose identity differs between the nodes without fsid=, a
broken /var/lib/nfs link or bind mount, NFS services enabled at boot, an LVM filter that
lets LVM use the DRBD backing disk or hides an active VG, a host the distro profile does
not serve, programs of the chain missing, a node mounting its cluster's own export, NFS
v4 state (grace and lease, nfsdcld's records, the server scope on both nodes, sm-notify
after the exports and the VIP), a single heartbeat link, fencing off, a readable auth
key, missing or mismatched disks; DRBD's state on both nodes (a split brain is an error,
with the runbook: which node's data to keep and the commands), maintenance mode or the
chain stopped on purpose left on for more than 4 hours.
Each finding comes with its fix. Exit status 1 when any finding is an error.
"""

NODE_HELP = "this node's name in the config (default: $HASYNC_NODE, else uname -n or its short name)"
LEVEL_STYLE = {"error": "red", "warning": "yellow", "ok": "green", "info": "dim"}


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("bootstrap", description=BOOTSTRAP_HELP, epilog=BOOTSTRAP_EPILOG, formatter_class=fmt)
    common.config_option(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan with unified diffs; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--rollback", action="store_true", help="restore the files the last run changed, byte for byte, and its boot enablement (other commands, e.g. mkfs, are not undone); repeat to go further back")
    p.add_argument("--join", metavar="PEER", default="", help="second node: fetch the cluster config and auth key from PEER over ssh, exchange ssh keys, then bootstrap")
    p.add_argument("--allow-data-loss", metavar="DEVICE", action="append", default=[], help="allow erasing DEVICE although it carries a signature; naming the DRBD device (e.g. /dev/drbd0) also allows `drbdadm primary --force` when its metadata is not brand new (repeatable)")
    p.add_argument("--node", metavar="NAME", default="", help=NODE_HELP)
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: files under DIR
    p.add_argument("--state-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--capture-facts", metavar="FILE", default="", help="also write every raw fact read (JSON) to FILE: test data")
    p.set_defaults(func=cmd_bootstrap)

    d = sub.add_parser("doctor", description=DOCTOR_HELP, formatter_class=fmt)
    common.config_option(d)
    d.add_argument("--json", action="store_true", help="print the findings as JSON")
    d.add_argument("--node", metavar="NAME", default="", help=NODE_HELP)
    d.add_argument("--no-peer", action="store_true", help="check this node only (no ssh to the peer)")
    d.add_argument("--root", default="/", help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_doctor)


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- bootstrap


def cmd_bootstrap(args: argparse.Namespace) -> int:
    console = _console()
    state_dir = args.state_dir or bootstrap_manifest.host_path(args.root, bootstrap_manifest.STATE_DIR)
    runner = ProcRunner()
    if args.rollback:
        run, report = bootstrap_manifest.rollback(state_dir, args.root, runner)
        for line in report:
            console.print(("  " if run else "") + line)
        if run:
            console.print(f"rolled back {run.name}")
        return 0 if run else 1
    try:
        return _bootstrap(args, console, runner, state_dir)
    finally:
        if args.join:
            join.close(runner, args.join)


def _bootstrap(args: argparse.Namespace, console: Console, runner: Runner, state_dir: str) -> int:
    w = wanted_state(common.config_path(args), node=args.node or None, join=args.join, runner=runner,
                     allow_data_loss=args.allow_data_loss)
    prober = bootstrap_apply.Prober(runner, root=args.root, init=w.profile.init, peer=args.join)
    try:
        plan = bootstrap_apply.plan_once(w, prober)
    except Exception as e:  # a probe's output we do not understand: name it
        common.print_error(f"probing {w.node}: {e}")
        return 1
    finally:
        if args.capture_facts:
            _capture(args.capture_facts, prober.raw, secret=f"file:{w.cluster.heartbeat.auth_key}")
    role = "joining " + args.join if args.join else ("first node" if w.first else "second node")
    console.print(f"[dim]{w.node} ({role}), profile {w.profile.name}[/dim]")
    for note in bootstrap_plan.notes(w):
        console.print(f"[cyan]note[/cyan]: {escape(note)}")
    print_preflight(console, w, runner)
    total = print_plan(console, plan, diffs=args.dry_run)
    refused = [c for _, cs in plan for c in cs if c.action == "refuse"]
    if args.dry_run or total == 0:
        console.print(f"{total} changes" + (" (dry run)" if args.dry_run and total else ""))
        return 1 if refused else 0
    if refused:
        common.print_error(f"step {refused[0].step} refused, nothing changed: {refused[0].why}")
        return 1
    if not args.yes:
        if not sys.stdin.isatty():
            common.print_error("not a terminal: pass --yes to apply, or --dry-run to look")
            return 2
        if not Confirm.ask(f"apply {total} changes on {w.node}?", default=False):
            console.print("nothing changed")
            return 1
    return _apply(console, w, prober, runner, state_dir, args.root)


def _capture(path: str, raw: dict, *, secret: str) -> None:
    """--capture-facts: every raw fact read, as test data; the key file's content left out."""
    kept = {k: ("<secret: not captured>" if k == secret and v is not None else v) for k, v in raw.items()}
    with open(path, "w") as fh:
        json.dump(kept, fh, indent=1, sort_keys=True)


def print_plan(console: Console, plan, *, diffs: bool) -> int:
    total = 0
    for s, changes in plan:
        if not changes:
            continue
        console.print(f"[bold]{s.name}[/bold]: {escape(s.doc)}")
        for c in changes:
            total += 1
            color = "red" if c.action == "refuse" else "yellow"
            console.print(f"  [{color}]{escape(c.summary())}[/{color}]" + (f"  [dim]# {escape(c.why)}[/dim]" if c.why and c.action != "refuse" else ""))
            if diffs and c.action == "write":
                if c.secret:
                    console.print("    [dim](secret: content not shown)[/dim]")
                    continue
                old = (c.old or "").splitlines(keepends=True)
                new = (c.data or "").splitlines(keepends=True)
                fromfile = c.path if c.old is not None else "/dev/null"
                for line in difflib.unified_diff(old, new, fromfile, c.path, n=2):
                    line = line.rstrip("\n")
                    style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "dim"
                    console.print(f"    [{style}]{escape(line)}[/{style}]")
    return total


def print_preflight(console: Console, w: Wanted, runner: Runner | None = None) -> None:
    """The doctor checks that bootstrap does not fix itself, as warnings (the plan refuses
    what is unsafe): the cluster-wide ones, and when joining the heartbeat links."""
    found = doctor.check_config(w.cluster, w.profile)
    if w.join and runner is not None:
        probes = doctor.link_probes(w.cluster, w.node)
        found += doctor.check_links(w.cluster, w.node, [(link, runner.run(argv, timeout=5).ok) for link, argv in probes])
    for f in found:
        if f.level in ("warning", "error"):
            console.print(f"[yellow]preflight[/yellow]: {escape(f.message)}\n  [dim]fix: {escape(f.fix)}[/dim]")


class _SyncProgress:
    """The DRBD initial sync's progress bar, started at its first report."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: float, rate: str, text: str) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("  DRBD sync"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("sync", total=100.0, rate="")
        assert self.task is not None
        self.bar.update(self.task, completed=done, rate=rate)
        if text == "done":
            self.bar.stop()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _apply(console: Console, w: Wanted, prober, runner: Runner, state_dir: str, root: str) -> int:
    manifest = bootstrap_manifest.Manifest.new(state_dir, w.node, time.time())
    progress = _SyncProgress(console)
    applier = bootstrap_apply.Applier(runner, manifest, root=root, prober=prober, progress=progress)
    prober.invalidate()
    kill_after = os.environ.get("HASYNC_BOOTSTRAP_KILL_AFTER", "")
    if kill_after.isdigit():
        # fault injection for the tests: SIGKILL ourselves after N changes (a power cut)
        real_apply = applier.apply

        def apply_then_maybe_die(ch) -> None:
            real_apply(ch)
            if applier.changes_done >= int(kill_after):
                os.kill(os.getpid(), signal.SIGKILL)

        applier.apply = apply_then_maybe_die  # type: ignore[method-assign]

    def on_step(s, changes) -> None:
        console.print(f"[bold]{s.name}[/bold]: {len(changes)} change{'s' if len(changes) != 1 else ''}")

    try:
        bootstrap_apply.converge(w, prober, applier, on_step=on_step)
    except bootstrap_apply.BootstrapError as e:
        common.print_error(str(e))
        console.print("[dim]fix the cause and re-run: finished steps are skipped; `hasync bootstrap --rollback` restores the files changed so far[/dim]")
        return 1
    finally:
        progress.stop()
    console.print(f"{applier.changes_done} changes applied" + (f"; files kept in {manifest.dir}" if manifest.data["entries"] else ""))
    return 0


# --------------------------------------------------------------------------- doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    cluster = common.load_cluster(args)
    profile = cluster.profile
    assert profile is not None  # config.load resolves it (or fails with file:line)
    node = local_node(cluster, args.node or None)
    findings = doctor.run_doctor(cluster, profile, node, ProcRunner(), root=args.root, with_peer=not args.no_peer)
    if args.json:
        print(json.dumps({"node": node, "summary": doctor.summary(findings), "findings": [f.to_dict() for f in findings]}, indent=1))
        return 1 if any(f.level == "error" for f in findings) else 0
    console = _console()
    for f in findings:
        color = LEVEL_STYLE[f.level]
        where = f.where + (f" (group {f.group})" if f.group else "")
        console.print(f"[{color}]{f.level:7}[/{color}] {escape(where)}: {escape(f.message)}")
        if f.fix:  # a runbook is several lines: each indented under the finding
            console.print("        [dim]fix: " + "\n             ".join(escape(line) for line in f.fix.splitlines()) + "[/dim]")
    bad = [f for f in findings if f.level in ("error", "warning")]
    console.print(f"{len(bad)} findings" if bad else "no findings")
    return 1 if any(f.level == "error" for f in findings) else 0
