"""``hasync watch`` and ``hasync sync``: keep [sync].paths identical on both nodes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from hasync.config.identity import NodeIdentityError, local_node

WATCH_HELP = """\
Keep the files listed in [sync].paths identical on both nodes, in well under a second.

Watches the paths with inotify, collects changes into batches (a batch runs once no
change arrived for [sync].debounce, at the latest [sync].max_delay after its first
change) and runs one unison run per batch, limited to what changed, over a persistent
ssh connection to the peer with the cluster's own key. At start and every
[sync].reconcile_every a full run catches anything inotify missed.

Conflicts (a file changed on both nodes): the version of the node holding the services
wins, else the newer one; the other version is copied into [sync].backup_dir/.hasync-conflicts
on the node that settled the conflict and kept there, listed by `hasync sync status`,
until `hasync sync resolve` (or [sync] keep_conflicts) removes it. While the peer is unreachable, changed paths are journaled in
[sync].state_dir and retried with backoff.

Runs in the foreground (systemd: hasync-watch.service, Type=notify, WatchdogSec).
"""

SYNC_HELP = """\
One-off synchronization and the state of `hasync watch`.

  hasync sync --once [-p PATH]   run unison once over all of [sync].paths (or PATHs)
  hasync sync --once --dry-run   show what would move, with unified diffs of text files
  hasync sync status [--json]    last sync, pending paths, conflicts, watcher health
  hasync sync resolve PATH|--all forget a conflict and delete its kept losing version
  hasync sync unlock             remove stale unison locks after a crash (hasync watch does
                                 this itself at start and when runs keep failing on a lock)
"""


def register(sub) -> None:
    w = sub.add_parser(
        "watch",
        help="keep [sync].paths identical on both nodes (foreground service)",
        description=WATCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _node_arg(w)
    w.add_argument("-v", "--verbose", action="store_true", help="log every batch and ssh detail")
    w.set_defaults(func=cmd_watch)

    s = sub.add_parser(
        "sync",
        help="one-off sync, dry run with diffs, status of the watcher",
        description=SYNC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _node_arg(s)
    s.add_argument("--once", action="store_true", help="run one synchronization now")
    s.add_argument("--dry-run", action="store_true", help="with --once: only show what would move (diffs for text files)")
    s.add_argument("-p", "--path", dest="paths", action="append", default=[], metavar="PATH",
                   help="limit --once to PATH (inside [sync].paths; repeatable)")
    s.set_defaults(func=cmd_sync)
    ss = s.add_subparsers(dest="sync_command", metavar="")
    st = ss.add_parser("status", help="last sync, pending paths, conflicts, watcher health")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    _node_arg(st)
    st.set_defaults(func=cmd_status)
    rs = ss.add_parser("resolve", help="forget conflicts and delete their kept losing versions (once you checked them)")
    rs.add_argument("paths", nargs="*", metavar="PATH")
    rs.add_argument("--all", action="store_true", help="every listed conflict")
    _node_arg(rs)
    rs.set_defaults(func=cmd_resolve)
    ul = ss.add_parser("unlock", help="remove stale unison archive locks left by a crash (safe: checks for running unison)")
    ul.add_argument("--quiet", action="store_true")
    _node_arg(ul)
    ul.set_defaults(func=cmd_unlock)


def _node_arg(p) -> None:
    p.add_argument(
        "--node",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="this node's name in cluster.toml (default: $HASYNC_NODE, else `uname -n` or its short name)",
    )


def local_node_name(cluster, args) -> str:
    """This host's node (hasync.config.identity's rule); exit 2 naming the nodes if none."""
    try:
        return local_node(cluster, getattr(args, "node", None))
    except NodeIdentityError as e:
        _err(str(e))
        raise SystemExit(2) from None


def _err(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error[/red]: {escape(msg)}", markup=True, highlight=False, soft_wrap=True)


def _setup(args, *, tag: str = ""):
    from hasync.cli import load_config
    from hasync.config.paths import is_under, start_problems
    from hasync.effects.run import ProcRunner
    from hasync.sync.engine import Syncer
    from hasync.sync.transport import PeerLink

    cluster = load_config(args)
    me = local_node_name(cluster, args)
    try:
        peer = cluster.peer_of(me)
    except KeyError as e:
        _err(f"{e.args[0]} (set --node or HASYNC_NODE)")
        raise SystemExit(2) from None
    if not cluster.sync.paths:
        _err(f"{cluster.path}: [sync].paths is empty: nothing to synchronize")
        raise SystemExit(2)
    problems = start_problems(cluster.sync)
    for why in problems:
        _err(f"{cluster.sync.src or cluster.path}: [sync].paths: {why}")
    if problems:
        raise SystemExit(2)
    for d, what in ((cluster.sync.backup_dir, "backup_dir"), (cluster.sync.state_dir, "state_dir")):
        for p in cluster.sync.paths:
            if is_under(d, p):
                _err(f"[sync].{what} {d} is inside the synced path {p}: it must live outside")
                raise SystemExit(2)
    os.makedirs(cluster.sync.state_dir, mode=0o700, exist_ok=True)
    link = PeerLink(
        local_name=me,
        peer_name=peer.name,
        address=peer.address,
        ssh_key=cluster.sync.ssh_key,
        known_hosts=cluster.sync.known_hosts,
        state_dir=cluster.sync.state_dir,
        tag=tag,
    )
    syncer = Syncer(sync=cluster.sync, local_name=me, peer_name=peer.name, link=link, runner=ProcRunner())
    return cluster, me, peer, link, syncer


def _local_unison_version() -> str:
    from hasync.effects.run import ProcRunner
    from hasync.sync.unison import version_argv

    r = ProcRunner().run(version_argv(), timeout=10)
    return (r.stdout + r.stderr).strip()


def cmd_watch(args) -> int:
    import signal

    from hasync.effects.clock import MonotonicClock
    from hasync.sync.watcher import Watcher

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # watchdog logs every inotify event at DEBUG (a burst of 10,000 files: ~100,000
    # lines, slower than the burst itself); its warnings (queue overflow) stay
    logging.getLogger("watchdog").setLevel(logging.INFO if args.verbose else logging.WARNING)
    cluster, me, peer, link, syncer = _setup(args)
    version = _local_unison_version()
    from hasync.sync.unison import parse_version

    if parse_version(version) is None:
        _err(f"unison is not usable on this node: {version or 'no output'}; install unison >= 2.52")
        return 1
    watcher = Watcher(sync=cluster.sync, syncer=syncer, link=link, clock=MonotonicClock(), local_unison_version=version)

    def stop(signum, frame):
        watcher.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("hasync.sync").info(
        "watch: %s -> %s (%s), paths: %s", me, peer.name, peer.address, " ".join(cluster.sync.paths)
    )
    return watcher.run()


def cmd_sync(args) -> int:
    if not args.once:
        from hasync.cli import build_parser

        build_parser().parse_args(["sync", "--help"])
        return 2
    from rich.console import Console

    from hasync.sync.scope import Scope
    from hasync.sync.transport import LinkError
    from hasync.sync.unison import check_versions

    out = Console(highlight=False, soft_wrap=True, markup=False)
    cluster, me, peer, link, syncer = _setup(args, tag=f"-once{os.getpid()}")
    scope = Scope(tuple(cluster.sync.paths), tuple(cluster.sync.ignore), syncer.node_local)
    paths = [os.path.abspath(p) for p in args.paths] or list(scope.paths)
    outside = [p for p in paths if scope.root_of(p) is None or scope.ignored(p)]
    if outside:
        _err("not inside [sync].paths (or ignored, or node-local): " + ", ".join(outside))
        return 2
    try:
        remote = link.start()
    except LinkError as e:
        _err(str(e))
        return 1
    try:
        problem = check_versions(_local_unison_version(), remote)
        if problem:
            _err(problem)
            return 1
        if args.dry_run:
            rep, diffs = syncer.dry_run(paths)
            if not rep.planned:
                out.print(f"{me} and {peer.name} are in sync for: " + " ".join(paths))
                return 0
            out.print(f"[bold]would synchronize[/bold] ({me} <-> {peer.name}):", markup=True)
            for item in rep.planned:
                arrow = {
                    "to_remote": f"{me} -> {peer.name}",
                    "to_local": f"{peer.name} -> {me}",
                }.get(item.direction, "CONFLICT: the policy decides, the other version is kept")
                out.print(f"  {item.path}: {item.left or '-'} / {item.right or '-'}  [{arrow}]")
            for d in diffs.values():
                out.print()
                out.print(d.rstrip("\n"), markup=False)
            return 0
        t0 = time.monotonic()
        result = syncer.run_batch(paths)
        try:
            syncer.save_status()
        except OSError as e:  # a full state dir: the run itself is what counts here
            _err(f"cannot write the status in {cluster.sync.state_dir}: {e.strerror or e}")
        rep = result.report
        for t in rep.transfers:
            direction = f"{peer.name} -> {me}" if t.to_local else f"{me} -> {peer.name}"
            out.print(f"  {t.action:<6} {t.path}  [{direction}]")
        for c in result.conflicts:
            out.print(f"  conflict {c['path']}: {c['winner']} won ({c['reason']}); "
                      f"the other version is kept on {c['kept_on']} as {c['kept_as']}")
        for h in result.hooks:
            out.print(f"  on_change on {h['node']}: {h['command']} -> exit {h['exit']}")
        if not result.ok:
            _err(f"sync failed: {result.error}")
            return 1
        out.print(f"in sync ({len(rep.transfers)} change(s), {time.monotonic() - t0:.2f}s)")
        return 0
    finally:
        link.stop()


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False


def status_data(cluster, me: str) -> dict:
    from hasync.sync import state
    from hasync.sync.conflicts import ConflictStore
    from hasync.sync.transport import RUN_DIR

    st = state.load_status(cluster.sync.state_dir, os.path.join(RUN_DIR, state.RUNTIME_STATUS))
    j = state.Journal.load(cluster.sync.state_dir)
    w = st.get("watcher", {})
    if w.get("state_error"):  # the journal on disk is stale: the watcher's own view
        j.pending = {p: 0.0 for p in st.get("pending", [])}
        r = st.get("retry", {})
        j.attempts, j.next_try, j.last_error = r.get("attempts", 0), r.get("next_try", 0.0), r.get("last_error", "")
    running = bool(w.get("pid")) and _pid_alive(w.get("pid")) and w.get("updated", 0) > 0
    return {
        "node": me,
        "peer": cluster.peer_of(me).name,
        "last_sync": st.get("last_sync", {}),
        "last_ok": st.get("last_ok"),
        "pending": sorted(j.pending),
        "retry": {"attempts": j.attempts, "next_try": j.next_try, "last_error": j.last_error},
        # a status.json of an older watcher may still list some (adopted at its next start)
        "conflicts": ConflictStore(cluster.sync.backup_dir).entries() + st.get("conflicts", []),
        "hooks": st.get("hooks", [])[-5:],
        "watcher": dict(w, running=running),
    }


def _ago(t) -> str:
    if not t:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} ({max(0, time.time() - t):.0f}s ago)"


def cmd_status(args) -> int:
    from hasync.cli import load_config

    cluster = load_config(args)
    me = local_node_name(cluster, args)
    try:
        data = status_data(cluster, me)
    except KeyError as e:
        _err(f"{e.args[0]} (set --node or HASYNC_NODE)")
        return 2
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True, markup=False)
    w = data["watcher"]
    health = "running" if w.get("running") else "not running"
    if w.get("running") and (w.get("watch_errors") or w.get("overflows") or w.get("state_error")):
        health += " (degraded)"
    out.print(f"[bold]sync {data['node']} <-> {data['peer']}[/bold]   watcher: {health}", markup=True)
    ls = data["last_sync"]
    if ls:
        out.print(f"  last sync:  {_ago(ls.get('at'))}  {ls.get('outcome', '?')}, {ls.get('paths', 0)} path(s), "
                  f"{ls.get('sent', 0)} sent, {ls.get('received', 0)} received, {ls.get('duration_ms', 0)} ms"
                  + (f"  error: {ls['error']}" if ls.get("error") else ""))
    else:
        out.print("  last sync:  never")
    out.print(f"  last ok:    {_ago(data['last_ok'])}")
    if w.get("pid"):
        out.print(f"  watching:   {' '.join(w.get('watching', [])) or '-'}; overflows {w.get('overflows', 0)}; "
                  f"echoes suppressed {w.get('echo_suppressed', 0)}; last full run {_ago(w.get('last_reconcile'))}")
        for problem in w.get("watch_errors", []):
            out.print(f"  [red]watch problem[/red]: {escape(problem)}", markup=True)
        if w.get("state_error"):
            out.print(f"  [red]state problem[/red] since {_ago(w.get('state_error_since'))}: {escape(w['state_error'])}; "
                      "the watcher syncs on with its journal in memory and retries the write", markup=True)
    if data["pending"]:
        r = data["retry"]
        out.print(f"  [yellow]pending[/yellow] ({len(data['pending'])}), attempt {r['attempts']}, next try {_ago(r['next_try'])}: "
                  f"{escape(r['last_error'])}", markup=True)
        for p in data["pending"][:50]:
            out.print(f"    {p}")
        if len(data["pending"]) > 50:
            out.print(f"    ... {len(data['pending']) - 50} more")
    else:
        out.print("  pending:    none")
    if data["conflicts"]:
        out.print(f"  [red]conflicts[/red] ({len(data['conflicts'])}), each losing version kept until "
                  "`hasync sync resolve PATH`:", markup=True)
        for c in data["conflicts"]:
            shas = ", ".join(f"{n}: {v.get('sha256') or v.get('kind')}" for n, v in c.get("nodes", {}).items())
            out.print(f"    {c.get('path')}  {_ago(c.get('at'))}: {c.get('winner', '?')} won ({c.get('reason', '')})")
            if shas:
                out.print(f"      sha256 {shas}")
            loser = c.get("loser") or "the other node"
            kept = f"on {c.get('kept_on', '?')} as {c['kept_as']}" if c.get("kept_as") else "nothing to keep (a deletion)"
            out.print(f"      {loser}'s version: {kept}")
    else:
        out.print("  conflicts:  none")
    for h in data["hooks"]:
        out.print(f"  hook: {h['command']} on {h['node']} -> exit {h['exit']} ({_ago(h['at'])})")
    return 0


def cmd_resolve(args) -> int:
    from hasync.cli import load_config
    from hasync.sync import state
    from hasync.sync.conflicts import ConflictStore

    cluster = load_config(args)
    if not args.paths and not args.all:
        _err("name the PATH(s) whose conflict you resolved, or --all")
        return 2
    which = None if args.all else {os.path.abspath(p) for p in args.paths}
    gone = ConflictStore(cluster.sync.backup_dir).resolve(which)
    st = state.load_status(cluster.sync.state_dir)
    if st.get("conflicts"):  # listed by an older watcher's status.json
        gone += state.resolve_conflicts(st, which)
        state.save_status(cluster.sync.state_dir, st)
    for c in gone:
        print(f"resolved: {c['path']}" + (f" (removed the kept version {c['kept_as']})" if c.get("kept_as") and not c.get("legacy") else ""))
    if not gone:
        print("no such conflict listed")
        return 1
    return 0


def cmd_unlock(args) -> int:
    from hasync.cli import load_config
    from hasync.sync.locks import clear_stale_locks

    cluster = load_config(args)
    removed = clear_stale_locks(os.path.join(cluster.sync.state_dir, "unison"))
    if not args.quiet:
        print("\n".join(f"removed {p}" for p in removed) or "no stale locks")
    return 0
