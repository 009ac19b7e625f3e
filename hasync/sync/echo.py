"""Echo suppression: what the peer just wrote here must not bounce back.

After a run that wrote files on the peer, the sender appends one line per path to the
peer's ``<state_dir>/incoming.jsonl``: the path and the fingerprint of the version it
sent. The peer's watcher, when a batch is due, drops every path whose current
fingerprint equals a recent note: those events were unison's own writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat as statmod
from dataclasses import dataclass, field

HASH_LIMIT = 16 * 1024 * 1024  # bigger files are compared by size+mtime only


def fingerprint(path: str) -> str:
    """Type, content, mode and owner of *path*, without following a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "-"
    except OSError as e:
        return f"?{e.errno}"
    meta = f"{st.st_mode & 0o7777:o}:{st.st_uid}:{st.st_gid}"
    if statmod.S_ISLNK(st.st_mode):
        return "l:" + os.readlink(path)
    if statmod.S_ISDIR(st.st_mode):
        return "d:" + meta
    if statmod.S_ISREG(st.st_mode):
        if st.st_size > HASH_LIMIT:
            return f"f:{st.st_size}:{int(st.st_mtime)}:{meta}"
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            return f"?{e.errno}"
        return f"f:{st.st_size}:{digest}:{meta}"
    return f"o:{st.st_mode:o}:{meta}"


def run_marker(what: str, now_wall: float) -> str:
    """``begin``/``end`` of a run towards the peer: its watcher holds its own batches
    meanwhile (two concurrent runs on the same files only fail and retry)."""
    return json.dumps({"run": what, "t": now_wall}) + "\n"


def note_lines(entries: dict[str, str], now_wall: float) -> str:
    """The lines a sender appends to the peer's incoming file."""
    return "".join(json.dumps({"p": p, "f": fp, "t": now_wall}) + "\n" for p, fp in entries.items())


@dataclass
class EchoTable:
    """Recent notes (path -> fingerprint); pure apart from the caller's ``now``."""

    ttl: float = 120.0
    busy_ttl: float = 15.0  # a peer run that never said "end" (it crashed) stops counting
    _notes: dict[str, tuple[str, float]] = field(default_factory=dict)
    _busy_since: float | None = None

    def absorb(self, text: str, now: float) -> int:
        n = 0
        for line in text.splitlines():
            try:
                d = json.loads(line)
                if "run" in d:
                    self._busy_since = now if d["run"] == "begin" else None
                    continue
                self._notes[d["p"]] = (d["f"], now)
                n += 1
                if self._busy_since is not None:
                    self._busy_since = now  # notes keep a long run alive
            except (ValueError, KeyError, TypeError):
                continue
        return n

    def peer_busy(self, now: float) -> bool:
        """The peer is running unison towards us right now (its writes are on the way)."""
        return self._busy_since is not None and now - self._busy_since < self.busy_ttl

    def expire(self, now: float) -> None:
        for p in [p for p, (_, t) in self._notes.items() if now - t > self.ttl]:
            del self._notes[p]

    def has_note(self, path: str) -> bool:
        return path in self._notes

    def is_echo(self, path: str, current_fp: str, now: float) -> bool:
        """True if *path* looks exactly like what the peer just wrote.

        The note is kept (until it expires): a later event on the same, still identical
        path is an echo too, and a real change makes the fingerprint differ.
        """
        note = self._notes.get(path)
        if note is None or now - note[1] > self.ttl:
            return False
        return note[0] == current_fp

    def deleted_above(self, path: str, now: float) -> bool:
        """True if a directory above *path* has a recent note saying the peer deleted it
        (``-``): the sender notes a deleted directory, not every file that was in it, so
        the events of its entries here are echoes when the entry is gone too (the caller
        checks that)."""
        p = path
        while True:
            parent = posixpath.dirname(p)
            if parent == p:
                return False
            note = self._notes.get(parent)
            if note is not None and note[0] == "-" and now - note[1] <= self.ttl:
                return True
            p = parent

    def __len__(self) -> int:
        return len(self._notes)
