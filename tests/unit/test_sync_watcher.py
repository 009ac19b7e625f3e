"""Watcher pieces that need no inotify: overflow detection and echo dropping."""

import logging
import queue

from hasync.sync.echo import EchoTable, fingerprint, note_lines, run_marker
from hasync.sync.inotify import FULL, OverflowFlag


def test_inotify_overflow_in_watchdogs_log_triggers_a_full_run():
    q = queue.Queue()
    flag = OverflowFlag(q)
    lg = logging.getLogger("watchdog.observers.inotify_c")
    lg.addHandler(flag)
    try:
        lg.warning("Inotify queue overflowed; filesystem events were lost")
        lg.warning("something else")
    finally:
        lg.removeHandler(flag)
    assert flag.count == 1
    assert q.get_nowait() == FULL
    assert q.empty()


def test_peer_run_markers(tmp_path):
    t = EchoTable(busy_ttl=15)
    f = tmp_path / "x"
    f.write_text("x")
    t.absorb(run_marker("begin", 0) + note_lines({str(f): fingerprint(str(f))}, 0), now=1.0)
    assert t.peer_busy(2.0)
    assert not t.peer_busy(17.0)  # a peer that crashed mid-run stops holding us
    t.absorb(run_marker("end", 0), now=3.0)
    assert not t.peer_busy(3.5)
    assert t.has_note(str(f)) and t.is_echo(str(f), fingerprint(str(f)), 4.0)


def test_entries_of_a_directory_the_peer_deleted_are_echoes():
    t = EchoTable(ttl=120)
    t.absorb(note_lines({"/etc/d/sub": "-"}, 0), now=1.0)
    assert t.deleted_above("/etc/d/sub/f1", 2.0)
    assert t.deleted_above("/etc/d/sub/deeper/f2", 2.0)
    assert not t.deleted_above("/etc/d/sub", 2.0)  # the directory itself: its own note
    assert not t.deleted_above("/etc/d/other/f1", 2.0)
    assert not t.deleted_above("/etc/d/sub/f1", 200.0)  # expired
    t.absorb(note_lines({"/etc/e": "d:755:0:0"}, 0), now=3.0)
    assert not t.deleted_above("/etc/e/f", 4.0)  # copied, not deleted: per-file notes decide


class _Watchdog22Observer:
    """What Debian 12's python3-watchdog 2.2 offers: schedule() without event_filter."""

    def __init__(self):
        self.scheduled = []

    def schedule(self, event_handler, path, recursive=False):
        self.scheduled.append((path, recursive))

    def start(self):
        pass


def test_the_watcher_starts_on_debian_12s_watchdog(tmp_path, monkeypatch):
    """watchdog 2.2 has no FileAttribEvent/DirAttribEvent (an attribute change comes as a
    modification) and no event_filter (its inotify mask leaves out opens anyway): the
    watcher watches all the same, with what that version has."""
    import types

    from watchdog import events

    from hasync.sync import inotify
    from hasync.sync import watcher as w
    from hasync.sync.scope import Scope

    old_events = types.SimpleNamespace(**{k: v for k, v in vars(events).items() if "Attrib" not in k})
    observer = _Watchdog22Observer()
    monkeypatch.setattr(inotify, "ev", old_events)
    monkeypatch.setattr(inotify, "pruned_observer", lambda skip: (observer, False))
    watched = tmp_path / "etc"
    watched.mkdir()
    wt = object.__new__(w.Watcher)
    wt.q, wt._last, wt._overflow = queue.Queue(), [""], inotify.OverflowFlag(queue.Queue())
    wt.scope = Scope((str(watched),), (), ())
    wt.health = {}
    wt.sync = types.SimpleNamespace(reconcile_every=600.0)
    try:
        wt._start_observer()
    finally:
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logging.getLogger(name).removeHandler(wt._overflow)
    assert observer.scheduled == [(str(watched), True)]
    assert wt.health["watching"] == [str(watched)] and wt.health["watch_errors"] == []
