"""The timeline of every transition, kept on disk (an effect, but a small one).

``timeline.jsonl``: one JSON object per line, appended with a single write() per batch
(a line is never torn for readers); trimmed by an atomic rewrite when it grows past
``max_lines``. ``last-failover.json``: the most recent failover/handover (from the
detection or the command to the chain running again), atomically replaced.
``history.jsonl``: every closed record, one per line (`hasync history`), trimmed to the
last ``keep_history`` ([heartbeat].history) whatever happens to timeline.jsonl.

A failover record begins with a ``detect`` event (peer dead, peer left, start failure,
conflict) or an operator command, and collects every event until the chain runs again
(role active on this node) or this node settles standby. Each entry carries ``t``
(wall clock, ISO 8601), ``mono`` and ``offset_ms`` (since the record began).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hasync.effects.clock import MonotonicClock
from hasync.effects.files import atomic_write
from hasync.failover.shapes import record_problem

OPENERS = ("detect", "command", "conflict", "start-failed", "stop-failed", "failback", "request", "monitor",
           "maintenance", "stopped")
HISTORY_EVENTS = 400  # events kept per record in history.jsonl (the first and the last halves)


class Timeline:
    def __init__(self, state_dir: str | os.PathLike, node: str, max_lines: int = 5000, keep_records: int = 20, clock=None,
                 keep_history: int = 200):
        self.clock = clock or MonotonicClock()  # now() for mono, wall() for "t"
        self.dir = Path(state_dir)
        self.path = self.dir / "timeline.jsonl"
        self.last_path = self.dir / "last-failover.json"
        self.history_path = self.dir / "history.jsonl"
        self.keep_history = keep_history
        self.closed: list[dict] = []  # settled records not yet appended to history.jsonl
        self._history_lines = 0
        self.node = node
        self.max_lines = max_lines
        self.pending: list[dict] = []
        self.current: dict | None = None  # the failover record being written
        self.records: list[dict] = []
        self.keep_records = keep_records
        self._lines = 0
        self.dirty_last = False
        self.write_errors = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                with open(self.path, "rb") as f:
                    self._lines = sum(1 for _ in f)
            last = read_last(self.dir)  # a garbled file is no record (status shows none, not garbage)
            self.records = [last] if last else []
            if self.history_path.exists():
                with open(self.history_path, "rb") as f:
                    self._history_lines = sum(1 for _ in f)
        except (OSError, ValueError):
            pass

    def add(self, kind: str, message: str, level: str = "info", mono: float | None = None, **data) -> dict:
        mono = self.clock.now() if mono is None else mono
        wall = self.clock.wall()  # one reading: the seconds and the milliseconds agree
        entry = {
            "t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall * 1000) % 1000:03d}Z",
            "mono": round(mono, 6),
            "node": self.node,
            "kind": kind,
            "level": level,
            "message": message,
        }
        if data:
            entry["data"] = data
        if self.current is None and kind in OPENERS:
            self.current = {"node": self.node, "began": entry["t"], "began_mono": mono, "trigger": message, "kind": kind, "events": [], "result": "in progress"}
            self.records.append(self.current)
            self.records = self.records[-self.keep_records :]
        if self.current is not None:
            entry["offset_ms"] = round((mono - self.current["began_mono"]) * 1000, 1)
            self.current["events"].append(entry)
            self.dirty_last = True
        self.pending.append(entry)
        return entry

    def settle(self, role: str, mono: float | None = None) -> None:
        """The node reached a stable role: close the current record."""
        if self.current is None:
            return
        mono = self.clock.now() if mono is None else mono
        self.current["result"] = role
        self.current["duration_ms"] = round((mono - self.current["began_mono"]) * 1000, 1)
        self.closed.append(self.current)
        self.current = None
        self.dirty_last = True

    @property
    def last(self) -> dict | None:
        return self.records[-1] if self.records else None

    def flush(self) -> None:
        try:
            if self.pending:
                data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in self.pending).encode()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.write(fd, data)
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                self._lines += len(self.pending)
                self.pending = []
                if self._lines > self.max_lines:
                    self._trim()
            if self.dirty_last and self.last is not None:
                atomic_write(self.last_path, json.dumps(self.last, indent=1) + "\n")
                self.dirty_last = False
            if self.closed:
                self._append_history()
        except OSError:
            self.write_errors += 1

    def _append_history(self) -> None:
        data = "".join(json.dumps(history_entry(r), separators=(",", ":")) + "\n" for r in self.closed).encode()
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self._history_lines += len(self.closed)
        self.closed = []
        if self._history_lines > self.keep_history + max(10, self.keep_history // 2):
            lines = self.history_path.read_bytes().splitlines(keepends=True)[-self.keep_history :]
            atomic_write(self.history_path, b"".join(lines))
            self._history_lines = len(lines)

    def _trim(self) -> None:
        lines = self.path.read_bytes().splitlines(keepends=True)
        keep = lines[-(self.max_lines // 2) :]
        atomic_write(self.path, b"".join(keep))
        self._lines = len(keep)


def history_entry(rec: dict) -> dict:
    """A record as history.jsonl keeps it: without the monotonic start, at most
    HISTORY_EVENTS events (the first and the last halves; ``events_dropped`` says how many
    are not kept)."""
    out = {k: v for k, v in rec.items() if k != "began_mono"}
    events = rec.get("events", [])
    if len(events) > HISTORY_EVENTS:
        half = HISTORY_EVENTS // 2
        out["events"] = events[:half] + events[-half:]
        out["events_dropped"] = len(events) - HISTORY_EVENTS
    return out


def parse_history(data: bytes) -> tuple[list[dict], int]:
    """The records in history.jsonl's bytes, oldest first, and how many lines were not
    records (a torn write, a hand edit, another version's format: shapes.RECORD)."""
    out: list[dict] = []
    skipped = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if rec is None or record_problem(rec):
            skipped += 1
            continue
        out.append(rec)
    return out, skipped


def load_history(state_dir: str | os.PathLike) -> tuple[list[dict], int]:
    """Every record history.jsonl keeps, oldest first, then the one still in progress (from
    last-failover.json) if any; and how many lines were skipped (parse_history). OSError
    when the state directory is missing or not a directory, or history.jsonl cannot be
    read (a missing history.jsonl is no record yet)."""
    d = Path(state_dir)
    if not d.is_dir():
        d.stat()  # FileNotFoundError, PermissionError ...
        raise NotADirectoryError(20, "not a directory", str(d))
    try:
        data = (d / "history.jsonl").read_bytes()
    except FileNotFoundError:
        data = b""
    out, skipped = parse_history(data)
    last = read_last(state_dir)
    if last and last.get("result") == "in progress":
        out.append({k: v for k, v in last.items() if k != "began_mono"})
    return out, skipped


def read_history(state_dir: str | os.PathLike) -> list[dict]:
    """load_history's records; none when the state directory cannot be read."""
    try:
        return load_history(state_dir)[0]
    except OSError:
        return []


def read_tail(state_dir: str | os.PathLike, n: int = 50) -> list[dict]:
    p = Path(state_dir) / "timeline.jsonl"
    out: list[dict] = []
    try:
        lines = p.read_bytes().splitlines()[-n:]
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_last(state_dir: str | os.PathLike) -> dict | None:
    """The last failover record, or None (none, unreadable, or not a record: shapes.RECORD)."""
    try:
        rec = json.loads((Path(state_dir) / "last-failover.json").read_bytes())
    except (OSError, ValueError):
        return None
    return None if record_problem(rec) else rec
