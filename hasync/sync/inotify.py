"""The inotify side of ``hasync watch``: which events and directories are watched, the
watch limit, the kernel queue's overflow, and the pruned observer.

Watchdog's thread runs the handler; it only puts paths (or ``FULL``) into the loop's
queue, so everything else in hasync.sync.watcher stays single-threaded.
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog import events as ev
from watchdog.observers import Observer

from hasync.sync.scope import Scope

log = logging.getLogger("hasync.sync")

FULL = "*full*"  # queue marker: run a full reconciliation
# where watchdog logs a kernel queue overflow (the only place it reports one)
WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


class OverflowFlag(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: catch that line."""

    def __init__(self, q: queue.Queue):
        super().__init__(logging.WARNING)
        self.q = q
        self.count = 0

    def emit(self, record):
        if "overflow" in record.getMessage().lower():
            self.count += 1
            self.q.put(FULL)


@dataclass
class Watching:
    """A started observer and what it watches (the watcher's health document)."""

    observer: Any
    pruned: bool
    dirs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def start_observer(scope: Scope, q: queue.Queue, last: list[str], *, reconcile_every: float) -> Watching:
    """Watch every directory of *scope*, putting each changed path into *q* once until
    the loop drains the queue (``last[0]``, the last path put, is reset by the loop)."""

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
                        # loop drains the queue (set before put: see Watcher.run())
                        last[0] = p
                        q.put(p)

    observer, pruned = pruned_observer(scope.ignored)
    only_wanted = event_filter(type(observer))
    if not pruned:
        log.info("watch: this watchdog version cannot skip unison's temporary directories; "
                 "a peer's large run costs more CPU here")
    w = Watching(observer, pruned)
    handler = Handler()
    for d, recursive in scope.watches(os.path.isdir):
        if not os.path.isdir(d):
            w.errors.append(f"{d}: does not exist; not watched (reconciliations still cover it)")
            continue
        try:
            observer.schedule(handler, d, recursive=recursive, **only_wanted)
            w.dirs.append(d)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                msg = (f"{d}: inotify watch limit reached (fs.inotify.max_user_watches="
                       f"{_read_int('/proc/sys/fs/inotify/max_user_watches')}); raise it with sysctl; "
                       f"until then only the reconciliation every {reconcile_every:g}s covers it")
            else:
                msg = f"{d}: cannot watch: {e}"
            log.error("watch: %s", msg)
            w.errors.append(msg)
    observer.start()
    return w


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
