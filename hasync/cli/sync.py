"""``hasync watch`` and ``hasync sync``: keep [sync].paths identical on both nodes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from rich.console import Console
from rich.markup import escape

from hasync.cli import common
from hasync.config.identity import local_node
from hasync.sync import session as sync_session
from hasync.sync import status as sync_status
from hasync.sync.locks import clear_stale_locks
from hasync.sync.transport import IncompatiblePeer, LinkError

ERRORS: common.ErrorMap = {
    **common.ERRORS,
    LinkError: (1, "error"),  # the peer cannot be reached over ssh
    IncompatiblePeer: (1, "hasync watch"),  # the peer's unison changed under a running watcher
    sync_session.UnisonProblem: (1, "error"),
}

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
    fmt = argparse.RawDescriptionHelpFormatter
    w = sub.add_parser("watch", description=WATCH_HELP, formatter_class=fmt)
    _common(w)
    w.add_argument("-v", "--verbose", action="store_true", help="log every batch and ssh detail")
    w.set_defaults(func=cmd_watch)

    s = sub.add_parser("sync", description=SYNC_HELP, formatter_class=fmt)
    _common(s)
    s.add_argument("--once", action="store_true", help="run one synchronization now")
    s.add_argument("--dry-run", action="store_true", help="with --once: only show what would move (diffs for text files)")
    s.add_argument("-p", "--path", dest="paths", action="append", default=[], metavar="PATH",
                   help="limit --once to PATH (inside [sync].paths; repeatable)")
    s.set_defaults(func=cmd_sync, sync_help=s)
    ss = s.add_subparsers(dest="sync_command", metavar="")
    st = ss.add_parser("status", help="last sync, pending paths, conflicts, watcher health")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    _common(st)
    st.set_defaults(func=cmd_status)
    rs = ss.add_parser("resolve", help="forget conflicts and delete their kept losing versions (once you checked them)")
    rs.add_argument("paths", nargs="*", metavar="PATH")
    rs.add_argument("--all", action="store_true", help="every listed conflict")
    _common(rs)
    rs.set_defaults(func=cmd_resolve)
    ul = ss.add_parser("unlock", help="remove stale unison archive locks left by a crash (safe: checks for running unison)")
    ul.add_argument("--quiet", action="store_true")
    _common(ul)
    ul.set_defaults(func=cmd_unlock)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", metavar="NAME", default=argparse.SUPPRESS,
                   help="this node's name in cluster.toml (default: $HASYNC_NODE, else `uname -n` or its short name)")
    common.config_option(p)


def cmd_watch(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # watchdog logs every inotify event at DEBUG (a burst of 10,000 files: ~100,000
    # lines, slower than the burst itself); its warnings (queue overflow) stay
    logging.getLogger("watchdog").setLevel(logging.INFO if args.verbose else logging.WARNING)
    return sync_session.watch(sync_session.open_session(common.load_cluster(args), getattr(args, "node", None)))


def cmd_sync(args: argparse.Namespace) -> int:
    if not args.once:
        args.sync_help.print_help()
        return 0
    session = sync_session.open_session(common.load_cluster(args), getattr(args, "node", None), tag=f"-once{os.getpid()}")
    done = sync_session.once(session, args.paths, dry_run=args.dry_run)
    out = Console(highlight=False, soft_wrap=True, markup=False)
    me, peer = session.me, session.peer.name
    if done.planned is not None:
        return _show_dry_run(out, me, peer, done)
    if done.status_error:
        common.print_error(done.status_error)
    result = done.result
    assert result is not None
    rep = result.report
    for t in rep.transfers:
        direction = f"{peer} -> {me}" if t.to_local else f"{me} -> {peer}"
        out.print(f"  {t.action:<6} {t.path}  [{direction}]")
    for c in result.conflicts:
        out.print(f"  conflict {c['path']}: {c['winner']} won ({c['reason']}); "
                  f"the other version is kept on {c['kept_on']} as {c['kept_as']}")
    for h in result.hooks:
        out.print(f"  on_change on {h['node']}: {h['command']} -> exit {h['exit']}")
    if not result.ok:
        common.print_error(f"sync failed: {result.error}")
        return 1
    out.print(f"in sync ({len(rep.transfers)} change(s), {done.seconds:.2f}s)")
    return 0


def _show_dry_run(out: Console, me: str, peer: str, done: sync_session.Once) -> int:
    assert done.planned is not None and done.diffs is not None
    if not done.planned.planned:
        out.print(f"{me} and {peer} are in sync for: " + " ".join(done.paths))
        return 0
    out.print(f"[bold]would synchronize[/bold] ({me} <-> {peer}):", markup=True)
    for item in done.planned.planned:
        arrow = {
            "to_remote": f"{me} -> {peer}",
            "to_local": f"{peer} -> {me}",
        }.get(item.direction, "CONFLICT: the policy decides, the other version is kept")
        out.print(f"  {item.path}: {item.left or '-'} / {item.right or '-'}  [{arrow}]")
    for d in done.diffs.values():
        out.print()
        out.print(d.rstrip("\n"), markup=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cluster = common.load_cluster(args)
    data = sync_status.status_report(cluster, local_node(cluster, getattr(args, "node", None)))
    if args.json:
        common.print_json(data, sort_keys=True)
        return 0
    _show_status(data)
    return 0


def _ago(t) -> str:
    if not t:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} ({max(0, time.time() - t):.0f}s ago)"


def _show_status(data: dict) -> None:
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


def cmd_resolve(args: argparse.Namespace) -> int:
    cluster = common.load_cluster(args)
    if not args.paths and not args.all:
        common.print_error("name the PATH(s) whose conflict you resolved, or --all")
        return 2
    gone = sync_status.resolve(cluster.sync, None if args.all else {os.path.abspath(p) for p in args.paths})
    for c in gone:
        print(f"resolved: {c['path']}" + (f" (removed the kept version {c['kept_as']})" if c.get("kept_as") and not c.get("legacy") else ""))
    if not gone:
        print("no such conflict listed")
        return 1
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    cluster = common.load_cluster(args)
    removed = clear_stale_locks(os.path.join(cluster.sync.state_dir, "unison"))
    if not args.quiet:
        print("\n".join(f"removed {p}" for p in removed) or "no stale locks")
    return 0
