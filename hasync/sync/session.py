"""A sync between this node and its peer: `hasync watch` (for good) and `hasync sync
--once` (one run, or a dry run with diffs).

:func:`open_session` checks what must hold before anything runs (this host is a node
with one peer, [sync].paths is not empty and allowed, the state and backup directories
lie outside it) and builds the ssh link and the ``Syncer``; the problems are
``SyncSetupError`` (a ``ConfigError``: bad input). :func:`watch` and :func:`once` run.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from hasync import model
from hasync.config import ConfigError
from hasync.config.identity import local_node
from hasync.config.paths import is_under, start_problems
from hasync.effects.clock import MonotonicClock
from hasync.effects.run import ProcRunner, Runner
from hasync.sync.engine import BatchResult, Syncer
from hasync.sync.scope import Scope
from hasync.sync.transport import PeerLink
from hasync.sync.unison import Report, check_versions, parse_version, version_argv
from hasync.sync.watcher import Watcher

log = logging.getLogger("hasync.sync")


class SyncSetupError(ConfigError):
    """[sync] settings, or the paths asked for, that forbid syncing (bad input)."""


class UnisonProblem(RuntimeError):
    """unison does not work here, or this node's and the peer's cannot work together."""


@dataclass(frozen=True)
class Session:
    cluster: model.Cluster
    me: str
    peer: model.Node
    link: PeerLink
    syncer: Syncer


def peer_of(cluster: model.Cluster, me: str) -> model.Node:
    try:
        return cluster.peer_of(me)
    except KeyError as e:
        raise SyncSetupError([f"{e.args[0]} (set --node or HASYNC_NODE)"]) from None


def open_session(cluster: model.Cluster, node: str | None, *, tag: str = "", runner: Runner | None = None) -> Session:
    """This node's sync with its peer, checked and ready to start (nothing runs yet)."""
    me = local_node(cluster, node)
    peer = peer_of(cluster, me)
    sync = cluster.sync
    if not sync.paths:
        raise SyncSetupError([f"{cluster.path}: [sync].paths is empty: nothing to synchronize"])
    problems = start_problems(sync)
    if problems:
        raise SyncSetupError([f"{sync.src or cluster.path}: [sync].paths: {why}" for why in problems])
    for d, what in ((sync.backup_dir, "backup_dir"), (sync.state_dir, "state_dir")):
        for p in sync.paths:
            if is_under(d, p):
                raise SyncSetupError([f"[sync].{what} {d} is inside the synced path {p}: it must live outside"])
    os.makedirs(sync.state_dir, mode=0o700, exist_ok=True)
    link = PeerLink(local_name=me, peer_name=peer.name, address=peer.address, ssh_key=sync.ssh_key,
                    known_hosts=sync.known_hosts, state_dir=sync.state_dir, tag=tag)
    syncer = Syncer(sync=sync, local_name=me, peer_name=peer.name, link=link, runner=runner or ProcRunner())
    return Session(cluster, me, peer, link, syncer)


def unison_version(runner: Runner) -> str:
    """What `unison -version` says here ('' when it says nothing)."""
    r = runner.run(version_argv(), timeout=10)
    return (r.stdout + r.stderr).strip()


def watch(session: Session) -> int:
    """Keep the paths in sync until SIGTERM/SIGINT (the Watcher's exit status). Raises
    UnisonProblem when unison does not run here, transport.IncompatiblePeer when the
    peer's cannot work with it."""
    version = unison_version(session.syncer.runner)
    if parse_version(version) is None:
        raise UnisonProblem(f"unison is not usable on this node: {version or 'no output'}; install unison >= 2.52")
    sync = session.cluster.sync
    watcher = Watcher(sync=sync, syncer=session.syncer, link=session.link, clock=MonotonicClock(),
                      local_unison_version=version)

    def stop(signum, frame):
        watcher.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("watch: %s -> %s (%s), paths: %s", session.me, session.peer.name, session.peer.address, " ".join(sync.paths))
    return watcher.run()


@dataclass(frozen=True)
class Once:
    """What `hasync sync --once` did: a dry run's report and diffs, or a run's result."""

    paths: list[str]
    planned: Report | None = None  # dry run
    diffs: dict[str, str] | None = None  # dry run: path -> unified diff of a text file
    result: BatchResult | None = None  # the run
    status_error: str = ""  # the run happened, its status could not be written
    seconds: float = 0.0


def once(session: Session, paths: list[str], *, dry_run: bool, clock: Callable[[], float] = time.monotonic) -> Once:
    """One run over *paths* (default: all of [sync].paths) on a fresh ssh link. Raises
    SyncSetupError for a path outside the scope, transport.LinkError when the peer
    cannot be reached, UnisonProblem when the two unisons cannot work together."""
    sync, syncer, link = session.cluster.sync, session.syncer, session.link
    scope = Scope(tuple(sync.paths), tuple(sync.ignore), syncer.node_local)
    chosen = [os.path.abspath(p) for p in paths] or list(scope.paths)
    outside = [p for p in chosen if scope.root_of(p) is None or scope.ignored(p)]
    if outside:
        raise SyncSetupError(["not inside [sync].paths (or ignored, or node-local): " + ", ".join(outside)])
    remote = link.start()
    try:
        problem = check_versions(unison_version(syncer.runner), remote)
        if problem:
            raise UnisonProblem(problem)
        if dry_run:
            report, diffs = syncer.dry_run(chosen)
            return Once(chosen, planned=report, diffs=diffs)
        t0 = clock()
        result = syncer.run_batch(chosen)
        status_error = ""
        try:
            syncer.save_status()
        except OSError as e:  # a full state dir: the run itself is what counts here
            status_error = f"cannot write the status in {sync.state_dir}: {e.strerror or e}"
        return Once(chosen, result=result, status_error=status_error, seconds=clock() - t0)
    finally:
        link.stop()
