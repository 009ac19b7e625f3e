"""``hasync watch``: inotify (watchdog) -> debouncer -> one unison run per batch.

The loop is single-threaded; watchdog's thread only puts paths into a queue. Also here:
the journal (pending paths survive a restart and are retried with backoff while the
peer is away), echo suppression, full reconciliations, inotify overflow and watch-limit
detection, and the systemd notify/watchdog protocol.
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from watchdog import events as ev
from watchdog.observers import Observer

from hasync.config.paths import node_local_notes
from hasync.effects.systemd import Notifier
from hasync.sync import state
from hasync.sync.debounce import Debouncer, coalesce
from hasync.sync.echo import EchoTable, fingerprint, note_lines
from hasync.sync.engine import Syncer
from hasync.sync.locks import clear_stale_locks
from hasync.sync.scope import Scope, symlink_problems
from hasync.sync.transport import IncompatiblePeer, LinkError, PeerLink
from hasync.sync.unison import check_versions, is_collision, is_locked, parse_version

log = logging.getLogger("hasync.sync")

FULL = "*full*"  # queue marker: run a full reconciliation
# unison handles a few dozen -path arguments well, thousands very badly (2000 paths:
# ~15 s against ~1 s for their directory): beyond this, directories are synced instead
COALESCE_LIMIT = 32
RUN_TIMEOUT = 600.0  # the engine's unison timeout: the watchdog trusts a run this long
LOCK_RETRY = 0.2  # the other node's run holds the archive lock: try again soon
LOCK_PATIENCE = 50  # consecutive lock refusals before looking for stale locks


class _OverflowFlag(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: catch that line."""

    def __init__(self, q: queue.Queue):
        super().__init__(logging.WARNING)
        self.q = q
        self.count = 0

    def emit(self, record):
        if "overflow" in record.getMessage().lower():
            self.count += 1
            self.q.put(FULL)


class Watcher:
    def __init__(self, *, sync, syncer: Syncer, link: PeerLink, clock, local_unison_version: str):
        self.sync = sync
        self.syncer = syncer
        self.link = link
        self.clock = clock
        self.scope = Scope(tuple(sync.paths), tuple(sync.ignore), syncer.node_local)
        self.q: queue.Queue = queue.Queue()
        self.debouncer = Debouncer(sync.debounce, sync.max_delay, burst_size=COALESCE_LIMIT)
        self.journal = state.Journal.load(sync.state_dir)
        self.writer = state.StateWriter(sync.state_dir, os.path.join(link.run_dir, state.RUNTIME_STATUS))
        self.echo = EchoTable()
        self.local_version = local_unison_version
        self.incoming_path = os.path.join(sync.state_dir, state.INCOMING)
        self._incoming_off = 0
        self.health: dict = {
            "pid": os.getpid(),
            "started": time.time(),
            "watching": [],
            "watch_errors": [],
            "overflows": 0,
            "last_reconcile": None,
            "echo_suppressed": 0,
            "batches": 0,
            "peer_connected": False,
            "peer_unison": "",
        }
        self.observer: Any = None
        self._overflow = _OverflowFlag(self.q)
        self._next_reconcile: float | None = None
        self._retry_at: float | None = None
        self._locked = 0
        self._alive_at = time.monotonic()
        self._run_since: float | None = None
        self._last = [""]  # the handler's last queued path (dedup of repeated events)
        self.stop_event = threading.Event()
        syncer.on_local_write = self._noted_local

    # ------------------------------------------------------------ echo
    def _noted_local(self, notes: dict[str, str]) -> None:
        self.echo.absorb(note_lines(notes, time.time()), self.clock.now())

    def _read_incoming(self) -> None:
        try:
            with open(self.incoming_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._incoming_off:
                    self._incoming_off = 0
                f.seek(self._incoming_off)
                data = f.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n") + 1
        if cut:
            self._incoming_off += cut
            self.echo.absorb(data[:cut].decode(errors="replace"), self.clock.now())
        if self._incoming_off > (1 << 20):
            try:
                os.truncate(self.incoming_path, 0)
                self._incoming_off = 0
            except OSError:
                pass

    def drop_echoes(self, paths) -> tuple[str, ...]:
        self._read_incoming()
        now = self.clock.now()
        self.echo.expire(now)
        keep = []
        for p in paths:
            echo = self.echo.has_note(p) and self.echo.is_echo(p, fingerprint(p), now)
            if not echo and self.echo.deleted_above(p, now):
                echo = not os.path.lexists(p)  # gone with the directory the peer deleted
            if echo:
                self.health["echo_suppressed"] += 1
            else:
                keep.append(p)
        return tuple(keep)

    # ------------------------------------------------------------ inotify
    def _start_observer(self) -> None:
        q, scope, last = self.q, self.scope, self._last

        class Handler(ev.FileSystemEventHandler):
            def on_any_event(self, event):
                if event.is_directory and event.event_type == "modified":
                    return  # "an entry changed": the entry's own event names it
                if getattr(event, "is_synthetic", False):
                    return  # watchdog's per-entry events below a moved directory: the
                    # directory's own event names it, and a run over it covers them
                for p in (event.src_path, getattr(event, "dest_path", "")):
                    if p and p != last[0]:
                        p = os.fsdecode(p)
                        if scope.contains(p):
                            # a write is modify+modify+...: one queue entry until the
                            # loop drains the queue (set before put: see run())
                            last[0] = p
                            q.put(p)

        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow)
        logging.getLogger("watchdog.observers.inotify").addHandler(self._overflow)
        self.observer, self.health["watch_pruned"] = pruned_observer(self.scope.ignored)
        only_wanted = event_filter(type(self.observer))
        if not self.health["watch_pruned"]:
            log.info("watch: this watchdog version cannot skip unison's temporary directories; "
                     "a peer's large run costs more CPU here")
        handler = Handler()
        self.health["watching"], self.health["watch_errors"] = [], []
        for d, recursive in self.scope.watches(os.path.isdir):
            if not os.path.isdir(d):
                self.health["watch_errors"].append(f"{d}: does not exist; not watched (reconciliations still cover it)")
                continue
            try:
                self.observer.schedule(handler, d, recursive=recursive, **only_wanted)
                self.health["watching"].append(d)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    msg = (f"{d}: inotify watch limit reached (fs.inotify.max_user_watches="
                           f"{_read_int('/proc/sys/fs/inotify/max_user_watches')}); raise it with sysctl; "
                           f"until then only the reconciliation every {self.sync.reconcile_every:g}s covers it")
                else:
                    msg = f"{d}: cannot watch: {e}"
                log.error("watch: %s", msg)
                self.health["watch_errors"].append(msg)
        self.observer.start()

    # ------------------------------------------------------------ peer
    def _connect(self) -> bool:
        if self.link.alive():
            return True
        try:
            remote = self.link.start()
        except LinkError as e:
            self.health["peer_connected"] = False
            self.journal.last_error = str(e)
            log.warning("sync: %s", e)
            return False
        problem = check_versions(self.local_version, remote)
        self.health["peer_unison"] = ".".join(map(str, parse_version(remote) or ()))
        if problem:
            self.link.stop()
            raise IncompatiblePeer(problem)
        self.health["peer_connected"] = True
        log.info("sync: connected to %s (unison %s)", self.link.peer_name, self.health["peer_unison"])
        return True

    # ------------------------------------------------------------ running batches
    def _run(self, paths, *, full: bool = False) -> bool:
        """Sync *paths* (journaled first); False leaves them pending for a retry."""
        if not paths:
            return True
        self.journal.add(paths)
        self._save_journal()
        if not self._connect():
            return self._failed(str(self.journal.last_error))
        pending = list(self.journal.pending)
        batch = coalesce(pending, COALESCE_LIMIT, self.scope.paths)
        lifted = not full and not set(batch) <= set(pending)
        log.debug("sync: batch of %d%s: %s", len(batch), " (lifted)" if lifted else "", " ".join(batch[:20]))
        self._run_since = time.monotonic()
        try:
            # a lifted batch (a burst) sends no notes up front: hashing thousands of files
            # would delay the run, and the peer holds its batches until our "end" marker,
            # which comes with the notes of everything the run sent
            result = self.syncer.run_batch(batch, notes=not full and not lifted, fastcheck=lifted)
        finally:
            self._run_since = None
            self._alive_at = time.monotonic()
        if not result.ok and is_collision(result.error) and result.outcome.name == "FAILED":
            self._retry_at = self.clock.now() + LOCK_RETRY * random.uniform(0.5, 2.5)
            log.debug("sync: files changed during the run, retrying: %s", result.error)
            return False
        if not result.ok and is_locked(result.error):
            self._locked += 1
            if self._locked % LOCK_PATIENCE == 0:
                clear_stale_locks(self.syncer.archive_dir)
                self.syncer.runner.run(self.link.ssh("hasync sync unlock --quiet"), timeout=60)
            # jitter: two nodes retrying in lock-step would keep colliding
            self._retry_at = self.clock.now() + LOCK_RETRY * random.uniform(0.5, 2.5)
            log.debug("sync: archive locked (%d), retrying", self._locked)
            return False
        self._locked = 0
        self.health["batches"] += 1
        if full:
            self.health["last_reconcile"] = time.time()
        if result.ok:
            self.journal.done(list(self.journal.pending))
            self.journal.attempts, self.journal.next_try, self.journal.last_error = 0, 0.0, ""
            self._save_journal()
            self._retry_at = None
            log.info(
                "sync: %s %d path(s) in %.0f ms (%d sent, %d received%s)",
                "reconciled" if full else "synced", len(batch), result.duration_s * 1000,
                len(result.report.changed_remote), len(result.report.changed_local),
                f", {len(result.conflicts)} conflict(s)" if result.conflicts else "",
            )
            self._save_status()
            return True
        if result.outcome.name == "FATAL":
            self.link.stop()  # reconnect on the retry: the peer may have restarted
            self.health["peer_connected"] = False
        return self._failed(result.error)

    def _failed(self, error: str) -> bool:
        self.journal.attempts += 1
        wait = state.backoff(self.journal.attempts)
        self.journal.next_try = time.time() + wait
        self.journal.last_error = error
        self._save_journal()
        self._retry_at = self.clock.now() + wait
        log.warning("sync: %d path(s) pending, retry in %.0fs: %s", len(self.journal.pending), wait, error)
        self._save_status()
        return False

    def _save_status(self) -> None:
        self.syncer.status["watcher"] = dict(self.health, overflows=self._overflow.count, updated=time.time())
        self.syncer.status["pending"] = sorted(self.journal.pending)
        self.syncer.status["retry"] = {
            "attempts": self.journal.attempts,
            "next_try": self.journal.next_try,
            "last_error": self.journal.last_error,
        }
        self.writer.save_status(self.syncer.status, self.clock.now())

    def _save_journal(self) -> None:
        self.writer.save_journal(self.journal, self.clock.now())

    def _start_keepalive(self, sd: Notifier) -> None:
        """WATCHDOG=1 while the loop turns, or while it waits for one unison run (up to
        the run's timeout); a loop stuck anywhere else stops the pings."""
        wd = sd.watchdog_interval
        if wd is None:
            return

        def ping():
            while not self.stop_event.wait(wd):
                now = time.monotonic()
                in_run = self._run_since is not None and now - self._run_since < RUN_TIMEOUT
                if now - self._alive_at < 2 * wd or in_run:
                    sd.watchdog()

        threading.Thread(target=ping, daemon=True, name="sd-watchdog").start()

    def reconcile(self) -> bool:
        try:
            self.syncer.expire_conflicts()
        except OSError as e:
            log.error("sync: cannot expire kept conflicts: %s", e)
        ok = self._run(self.scope.paths, full=True)
        every = self.sync.reconcile_every
        self._next_reconcile = self.clock.now() + every if every > 0 else None
        return ok

    # ------------------------------------------------------------ the loop
    def run(self) -> int:
        problems = symlink_problems(self.scope.paths)
        if problems:
            for p in problems:
                log.error("sync: refusing %s", p)
            return 2
        for note in node_local_notes(self.sync):
            log.info("sync: %s", note)
        clear_stale_locks(self.syncer.archive_dir)
        self._start_observer()
        sd = Notifier()
        try:
            sd.status("initial reconciliation")
            self.reconcile()
            sd.ready()
            log.info("watch: ready (%s)", "in sync" if not self.journal.pending else
                     f"{len(self.journal.pending)} path(s) pending")
            sd.status("watching " + " ".join(self.scope.paths))
            self._start_keepalive(sd)
            while not self.stop_event.is_set():
                now = self.clock.now()
                self._alive_at = time.monotonic()
                deadlines = [d for d in (self.debouncer.deadline(), self._next_reconcile, self._retry_at,
                                         self.writer.retry_at) if d]
                timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
                try:
                    item = self.q.get(timeout=min(timeout, 1.0))
                    now = self.clock.now()
                    while True:
                        if item == FULL:
                            self.health["overflows"] = self._overflow.count
                            log.warning("watch: inotify queue overflow: events were lost; full reconciliation")
                            self._next_reconcile = now
                        else:
                            self.debouncer.add(item, now)
                        item = self.q.get_nowait()
                except queue.Empty:
                    self._last[0] = ""  # drained: the next event on any path is queued
                now = self.clock.now()
                if self.writer.retry_at is not None and now >= self.writer.retry_at:
                    self._save_journal()  # the state dir was full (or failing): try again
                    self._save_status()
                if self._next_reconcile is not None and now >= self._next_reconcile:
                    self.debouncer.take(float("inf"))  # the full run covers them
                    self.reconcile()
                    continue
                batch = self.debouncer.take(now)
                if batch:
                    self._read_incoming()
                    if self.echo.peer_busy(now):
                        # the peer is writing here right now: wait for its "end" and notes
                        self.debouncer.add_many(batch, now)
                        continue
                    n = len(batch)
                    batch = self.drop_echoes(batch)
                    if len(batch) < n and not batch:
                        self._save_status()  # `sync status` shows the suppressed echoes
                    if batch and self._retry_at is not None:
                        # the peer is away: journal now, the retry takes them along
                        self.journal.add(batch)
                        self._save_journal()
                        self._save_status()
                    elif batch:
                        self._run(batch)
                    continue
                if self._retry_at is not None and now >= self._retry_at and self.journal.pending:
                    self._read_incoming()
                    if self.echo.peer_busy(now):
                        self._retry_at = now + LOCK_RETRY  # the peer's run first
                        continue
                    self._retry_at = None
                    self._run(list(self.journal.pending))
            return 0
        finally:
            sd.stopping()
            if self.observer is not None:
                self.observer.stop()
                self.observer.join(timeout=5)
            logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow)
            logging.getLogger("watchdog.observers.inotify").removeHandler(self._overflow)
            self.link.stop()
            self._save_status()


# only what changes content or metadata: no open/close-nowrite events (every process
# start opens /etc/ld.so.cache) -- the kernel then doesn't even send them
WANTED_EVENTS = ("FileCreatedEvent", "FileDeletedEvent", "FileMovedEvent", "FileModifiedEvent", "FileAttribEvent",
                 "FileClosedEvent", "DirCreatedEvent", "DirDeletedEvent", "DirMovedEvent", "DirAttribEvent")


def event_filter(observer_cls: Any) -> dict[str, Any]:
    """schedule()'s event_filter for the events above, as far as this watchdog has them.
    watchdog < 4 (Debian 12's 2.2) has no *AttribEvent (an attribute change comes as a
    modification) and no event_filter, and its inotify mask leaves opens out anyway:
    then nothing is passed."""
    if "event_filter" not in inspect.signature(observer_cls.schedule).parameters:
        return {}
    return {"event_filter": [getattr(ev, name) for name in WANTED_EVENTS if hasattr(ev, name)]}


def pruned_observer(skip_dir: Callable[[str], bool]) -> tuple[Any, bool]:
    """A watchdog inotify observer that never watches a directory *skip_dir* accepts
    (unison's ``.unison.NAME.HASH.unison.tmp``, ``[sync].ignore`` matches), and
    reports a new or moved-in directory by its own event only (no synthetic events
    for what it already holds: a run over the directory covers its content).

    unison receives a new directory into such a temporary directory and renames it at
    the end: without pruning, the receiving watcher processes ~10 events for every file
    of a peer's burst while the run is writing them, on the same CPUs. Returns (observer,
    True), or (a plain Observer, False) when this watchdog lacks the hooks used here
    (they are internal: checked, never assumed).
    """
    try:  # Linux only: the one import left in a function (an optional platform module)
        from watchdog.observers import inotify as wi

        group_cls, emitter_cls = wi.InotifyWatchGroup, wi.InotifyEmitter
        hooks = all(hasattr(group_cls, a) for a in ("_add_callback", "_recursive_simulate"))
    except (ImportError, AttributeError):
        hooks = False
    observer = Observer()
    if not hooks or not hasattr(observer, "_emitter_class") or not issubclass(observer._emitter_class, emitter_cls):
        return observer, False

    class Group(group_cls):  # type: ignore[misc,valid-type]
        def _add_callback(self, path):
            if path != self.path and skip_dir(os.fsdecode(path)):
                return
            super()._add_callback(path)

        def _recursive_simulate(self, src_path):
            return []

    class Emitter(observer._emitter_class):  # type: ignore[misc,name-defined]
        def on_thread_start(self) -> None:
            self._inotify = Group(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
            )

    observer._emitter_class = Emitter
    return observer, True


def _read_int(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"
