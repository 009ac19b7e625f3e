"""Watcher pieces that need no inotify: overflow detection and echo dropping."""

import logging
import queue

from hasync.sync.echo import EchoTable, fingerprint, note_lines, run_marker
from hasync.sync.watcher import FULL, _OverflowFlag


def test_inotify_overflow_in_watchdogs_log_triggers_a_full_run():
    q = queue.Queue()
    flag = _OverflowFlag(q)
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
