"""``hasync watch``: inotify (watchdog) -> debouncer -> one unison run per batch.

The loop is single-threaded; watchdog's thread only puts paths into a queue (that side,
with the overflow and watch-limit detection, is hasync.sync.inotify). Also here: the
journal (pending paths survive a restart and are retried with backoff while the peer is
away), echo suppression, full reconciliations and the systemd notify/watchdog protocol.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from typing import Any

from hasync.config.paths import node_local_notes
from hasync.effects.systemd import Notifier
from hasync.sync import state
from hasync.sync.debounce import Debouncer, coalesce
from hasync.sync.echo import EchoTable, fingerprint, note_lines
from hasync.sync.engine import Syncer
from hasync.sync.inotify import FULL, WATCHDOG_LOGGERS, OverflowFlag, start_observer
from hasync.sync.locks import clear_stale_locks
from hasync.sync.scope import Scope, symlink_problems
from hasync.sync.transport import IncompatiblePeer, LinkError, PeerLink
from hasync.sync.unison import check_versions, is_collision, is_locked, parse_version

log = logging.getLogger("hasync.sync")

# unison handles a few dozen -path arguments well, thousands very badly (2000 paths:
# ~15 s against ~1 s for their directory): beyond this, directories are synced instead
COALESCE_LIMIT = 32
RUN_TIMEOUT = 600.0  # the engine's unison timeout: the watchdog trusts a run this long
LOCK_RETRY = 0.2  # the other node's run holds the archive lock: try again soon
LOCK_PATIENCE = 50  # consecutive lock refusals before looking for stale locks


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
        self._overflow = OverflowFlag(self.q)
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
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._overflow)
        w = start_observer(self.scope, self.q, self._last, reconcile_every=self.sync.reconcile_every)
        self.observer = w.observer
        self.health.update(watch_pruned=w.pruned, watching=w.dirs, watch_errors=w.errors)

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
            for name in WATCHDOG_LOGGERS:
                logging.getLogger(name).removeHandler(self._overflow)
            self.link.stop()
            self._save_status()
