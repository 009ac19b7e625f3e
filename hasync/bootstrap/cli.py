"""`hasync bootstrap` and `hasync doctor`: argv, prompts and printing (the rest is in the library)."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys

from hasync.config.identity import NodeIdentityError, local_node

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
key, missing or mismatched disks.
Each finding comes with a one-line fix. Exit status 1 when any finding is an error.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "bootstrap",
        help="lay down DRBD/LVM/NFS state on a node",
        description=BOOTSTRAP_HELP,
        epilog=BOOTSTRAP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan with unified diffs; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--rollback", action="store_true", help="restore the files the last run changed, byte for byte, and its boot enablement (other commands, e.g. mkfs, are not undone); repeat to go further back")
    p.add_argument("--join", metavar="PEER", default="", help="second node: fetch the cluster config and auth key from PEER over ssh, exchange ssh keys, then bootstrap")
    p.add_argument("--allow-data-loss", metavar="DEVICE", action="append", default=[], help="allow erasing DEVICE although it carries a signature; naming the DRBD device (e.g. /dev/drbd0) also allows `drbdadm primary --force` when its metadata is not brand new (repeatable)")
    p.add_argument("--node", metavar="NAME", default="", help="this node's name in the config (default: $HASYNC_NODE, else uname -n or its short name)")
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: files under DIR
    p.add_argument("--state-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--capture-facts", metavar="FILE", default="", help="also write every raw fact read (JSON) to FILE: test data")
    p.set_defaults(func=cmd_bootstrap)

    d = sub.add_parser(
        "doctor",
        help="find known pitfalls on a running cluster",
        description=DOCTOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--json", action="store_true", help="print the findings as JSON")
    d.add_argument("--node", metavar="NAME", default="", help="this node's name in the config (default: $HASYNC_NODE, else uname -n or its short name)")
    d.add_argument("--no-peer", action="store_true", help="check this node only (no ssh to the peer)")
    d.add_argument("--root", default="/", help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_doctor)


# --------------------------------------------------------------------------- helpers


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _err(msg: str) -> None:
    from rich.markup import escape

    _console(True).print(f"[red]error[/red]: {escape(msg)}")


def load_units(init: str) -> dict[str, str]:
    from hasync.resources import data_dir

    d = data_dir("bootstrap") / "units" / ("systemd" if init == "systemd" else "sysv")
    return {p.name: p.read_text() for p in sorted(d.iterdir()) if p.is_file()}


def fence_peer_script() -> str:
    from hasync.resources import data_dir

    return (data_dir("bootstrap") / "drbd-fence-peer").read_text()


def _fetch(runner, peer: str, path: str) -> str:
    from hasync.bootstrap.facts import peer_ssh

    res = runner.run(peer_ssh(peer, "cat", path), timeout=30)
    if not res.ok:
        raise RuntimeError(f"`ssh root@{peer} cat {path}` exited {res.exit_code}: {(res.stderr or res.stdout).strip()}")
    return res.stdout


def build_wanted(args, runner):
    """The wanted state from the config (fetched from the peer with --join) and the profile."""
    from hasync import config
    from hasync.bootstrap.plan import Wanted
    from hasync.cli import config_path, load_config

    path = config_path(args)
    config_text = authkey = None
    if args.join:
        try:
            config_text = _fetch(runner, args.join, path)
        except RuntimeError as e:
            _err(f"--join {args.join}: {e}")
            raise SystemExit(1) from None
        try:
            cluster = config.loads(config_text, path)
        except config.ConfigError as e:
            for i in e.issues:
                _err(f"(from {args.join}) {i}")
            raise SystemExit(2) from None
        try:
            authkey = _fetch(runner, args.join, cluster.heartbeat.auth_key)
        except RuntimeError as e:
            _err(f"--join {args.join}: {e} (bootstrap the first node first)")
            raise SystemExit(1) from None
    else:
        cluster = load_config(args)
    profile = cluster.profile
    assert profile is not None  # config.load resolves it (or fails with file:line)
    try:
        node = local_node(cluster, args.node or None)
    except NodeIdentityError as e:
        _err(str(e))
        raise SystemExit(2) from None
    names = [n.name for n in cluster.nodes]
    first_node = cluster.cluster.preferred_node or names[0]
    return Wanted(
        cluster=cluster,
        profile=profile,
        node=node,
        first=(not args.join) and node == first_node,
        allow_data_loss=frozenset(getattr(args, "allow_data_loss", []) or []),
        join=args.join,
        authkey=authkey,
        config_text=config_text,
        config_path=path,
        units=load_units(profile.init),
        fence_peer_script=fence_peer_script(),
    )


def print_plan(console, plan, *, diffs: bool) -> int:
    from rich.markup import escape

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


def print_preflight(console, w, runner=None) -> None:
    """The doctor checks that bootstrap does not fix itself, as warnings (the plan refuses
    what is unsafe): the cluster-wide ones, and when joining the heartbeat links."""
    from rich.markup import escape

    from hasync.bootstrap.doctor import check_config, check_links, link_probes

    found = check_config(w.cluster, w.profile)
    if w.join and runner is not None:
        found += check_links(w.cluster, w.node, [(link, runner.run(argv, timeout=5).ok) for link, argv in link_probes(w.cluster, w.node)])
    for f in found:
        if f.level in ("warning", "error"):
            console.print(f"[yellow]preflight[/yellow]: {escape(f.message)}\n  [dim]fix: {escape(f.fix)}[/dim]")


# --------------------------------------------------------------------------- bootstrap


def cmd_bootstrap(args) -> int:
    from hasync.bootstrap import apply as A
    from hasync.effects.run import ProcRunner

    console = _console()
    state_dir = args.state_dir or A.host_path(args.root, A.STATE_DIR)
    if args.rollback:
        run, report = A.rollback(state_dir, args.root, ProcRunner())
        for line in report:
            console.print(("  " if run else "") + line)
        if run:
            console.print(f"rolled back {run.name}")
        return 0 if run else 1

    runner = ProcRunner()
    try:
        return _bootstrap(args, console, runner, state_dir)
    finally:
        if args.join:
            from hasync.bootstrap.facts import peer_ssh_close

            runner.run(peer_ssh_close(args.join), timeout=10)


def _bootstrap(args, console, runner, state_dir: str) -> int:
    from hasync.bootstrap import apply as A

    w = build_wanted(args, runner)
    prober = A.Prober(runner, root=args.root, init=w.profile.init, peer=args.join)
    try:
        plan = A.plan_once(w, prober)
    except Exception as e:  # a probe's output we do not understand: name it
        _err(f"probing {w.node}: {e}")
        return 1
    finally:
        if args.capture_facts:
            secret = f"file:{w.cluster.heartbeat.auth_key}"
            raw = {k: ("<secret: not captured>" if k == secret and v is not None else v) for k, v in prober.raw.items()}
            with open(args.capture_facts, "w") as fh:
                json.dump(raw, fh, indent=1, sort_keys=True)
    role = "joining " + args.join if args.join else ("first node" if w.first else "second node")
    console.print(f"[dim]{w.node} ({role}), profile {w.profile.name}[/dim]")
    print_preflight(console, w, runner)
    total = print_plan(console, plan, diffs=args.dry_run)
    refused = [c for _, cs in plan for c in cs if c.action == "refuse"]
    if args.dry_run or total == 0:
        console.print(f"{total} changes" + (" (dry run)" if args.dry_run and total else ""))
        return 1 if refused else 0
    if refused:
        _err(f"step {refused[0].step} refused, nothing changed: {refused[0].why}")
        return 1
    if not args.yes:
        if not sys.stdin.isatty():
            _err("not a terminal: pass --yes to apply, or --dry-run to look")
            return 2
        from rich.prompt import Confirm

        if not Confirm.ask(f"apply {total} changes on {w.node}?", default=False):
            console.print("nothing changed")
            return 1
    return _apply(console, w, prober, runner, state_dir, args.root)


def _apply(console, w, prober, runner, state_dir: str, root: str) -> int:
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from hasync.bootstrap import apply as A

    manifest = A.Manifest.new(state_dir, w.node, time.time())
    progress_bar: dict = {}

    def progress(done: float, rate: str, text: str) -> None:
        if "p" not in progress_bar:
            p = Progress(TextColumn("  DRBD sync"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console)
            p.start()
            progress_bar["p"] = p
            progress_bar["t"] = p.add_task("sync", total=100.0, rate="")
        p = progress_bar["p"]
        p.update(progress_bar["t"], completed=done, rate=rate)
        if text == "done":
            p.stop()

    applier = A.Applier(runner, manifest, root=root, prober=prober, progress=progress)
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
        A.converge(w, prober, applier, on_step=on_step)
    except A.BootstrapError as e:
        _err(str(e))
        console.print("[dim]fix the cause and re-run: finished steps are skipped; `hasync bootstrap --rollback` restores the files changed so far[/dim]")
        return 1
    finally:
        if "p" in progress_bar:
            progress_bar["p"].stop()
    console.print(f"{applier.changes_done} changes applied" + (f"; files kept in {manifest.dir}" if manifest.data["entries"] else ""))
    return 0


# --------------------------------------------------------------------------- doctor


def cmd_doctor(args) -> int:
    from hasync.bootstrap import doctor as D
    from hasync.cli import load_config
    from hasync.effects.run import ProcRunner

    cluster = load_config(args)
    profile = cluster.profile
    assert profile is not None  # config.load resolves it (or fails with file:line)
    try:
        node = local_node(cluster, args.node or None)
    except NodeIdentityError as e:
        _err(str(e))
        return 2
    runner = ProcRunner()
    findings = D.run_doctor(cluster, profile, node, runner, root=args.root, with_peer=not args.no_peer)
    if args.json:
        print(json.dumps({"node": node, "summary": D.summary(findings), "findings": [f.to_dict() for f in findings]}, indent=1))
    else:
        from rich.markup import escape

        console = _console()
        for f in findings:
            color = {"error": "red", "warning": "yellow", "ok": "green", "info": "dim"}[f.level]
            console.print(f"[{color}]{f.level:7}[/{color}] {escape(f.where)}: {escape(f.message)}")
            if f.fix:
                console.print(f"        [dim]fix: {escape(f.fix)}[/dim]")
        bad = [f for f in findings if f.level in ("error", "warning")]
        console.print(f"{len(bad)} findings" if bad else "no findings")
    return 1 if any(f.level == "error" for f in findings) else 0
