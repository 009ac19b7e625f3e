"""What survives a restart of ``hasync watch``: the journal of pending paths and the
status file (last sync, conflicts, hooks, watcher health), both JSON in [sync].state_dir,
written atomically. ``hasync sync status`` reads the same files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hasync.effects.files import atomic_write

log = logging.getLogger("hasync.sync")

JOURNAL = "journal.json"
STATUS = "status.json"
INCOMING = "incoming.jsonl"
RUNTIME_STATUS = "status.json"  # in the link's run dir (/run/hasync/sync): see StateWriter
MAX_HOOK_RESULTS = 20


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # a damaged file must not stop the watcher: keep it aside and start empty
        try:
            os.replace(path, str(path) + ".damaged")
        except OSError:
            pass
        return {}


@dataclass
class Journal:
    """Paths changed here that the peer has not confirmed yet (absolute path -> first seen)."""

    state_dir: str
    pending: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    next_try: float = 0.0  # wall clock
    last_error: str = ""

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / JOURNAL

    @classmethod
    def load(cls, state_dir: str) -> Journal:
        j = cls(state_dir)
        d = _read_json(j.path)
        j.pending = {str(k): float(v) for k, v in (d.get("pending") or {}).items()}
        j.attempts = int(d.get("attempts", 0))
        j.next_try = float(d.get("next_try", 0.0))
        j.last_error = str(d.get("last_error", ""))
        return j

    def save(self) -> None:
        data = {
            "pending": self.pending,
            "attempts": self.attempts,
            "next_try": self.next_try,
            "last_error": self.last_error,
        }
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def add(self, paths, wall: float | None = None) -> None:
        wall = time.time() if wall is None else wall
        for p in paths:
            self.pending.setdefault(p, wall)

    def done(self, paths) -> None:
        for p in paths:
            self.pending.pop(p, None)


def backoff(attempts: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before retry number *attempts* (1, 2, 4, ... capped)."""
    if attempts <= 0:
        return 0.0
    return min(cap, base * (2 ** (attempts - 1)))


def load_status(state_dir: str, fallback: str = "") -> dict:
    """The status file; *fallback*: the watcher's runtime copy (StateWriter), used for the
    watcher's fields when it is newer (the state dir took no writes for a while)."""
    d = _read_json(Path(state_dir) / STATUS)
    if fallback:
        fb = _read_json(Path(fallback))
        if fb.get("watcher", {}).get("updated", 0) > d.get("watcher", {}).get("updated", 0):
            d.update({k: fb[k] for k in ("watcher", "pending", "retry", "last_sync", "last_ok") if k in fb})
    d.setdefault("hooks", [])
    d.setdefault("last_sync", {})
    d.setdefault("watcher", {})
    return d


def save_status(state_dir: str, status: dict) -> None:
    status["hooks"] = status.get("hooks", [])[-MAX_HOOK_RESULTS:]
    atomic_write(
        Path(state_dir) / STATUS, json.dumps(status, indent=1, sort_keys=True) + "\n", mode=0o600
    )


def resolve_conflicts(status: dict, paths=None) -> list[dict]:
    """Forget conflicts a status.json of an older watcher lists (all when *paths* is None);
    returns the ones removed. Conflicts now live in hasync.sync.conflicts."""
    keep: list[dict] = []
    gone: list[dict] = []
    for c in status.get("conflicts", []):
        (gone if paths is None or c.get("path") in paths else keep).append(c)
    status["conflicts"] = keep
    return gone


@dataclass
class StateWriter:
    """Writes the watcher's journal and status; a state dir that takes no writes (ENOSPC,
    EROFS, EIO) never stops the watcher. It keeps syncing with the journal in memory,
    says so in the log (once) and in ``sync status`` -- through a copy of the status on
    *fallback* (tmpfs under /run) -- and tries again with backoff until a write succeeds."""

    state_dir: str
    fallback: str
    error: str = ""
    since: float = 0.0  # wall clock of the first failed write
    attempts: int = 0
    retry_at: float | None = None  # monotonic: when to try again

    def save_journal(self, journal: Journal, now: float) -> bool:
        return self._write(lambda: journal.save(), None, now)

    def save_status(self, status: dict, now: float) -> bool:
        return self._write(lambda: save_status(self.state_dir, status), status, now)

    def _write(self, write, status: dict | None, now: float) -> bool:
        try:
            write()
        except OSError as e:
            self._failed(e, status, now)
            return False
        if self.error:
            self._recovered()
        return True

    def _failed(self, e: OSError, status: dict | None, now: float) -> None:
        msg = f"cannot write to the state directory {self.state_dir}: {e.strerror or e}"
        if not self.error:
            self.since = time.time()
            log.error("sync: %s; keeping the journal in memory and syncing on, retrying the write "
                      "with backoff (free space there: the watcher picks it up by itself)", msg)
        self.error = msg
        self.attempts += 1
        self.retry_at = now + backoff(self.attempts)
        if status is not None:
            copy = dict(status, watcher=dict(status.get("watcher", {}), state_error=msg, state_error_since=self.since))
            try:
                os.makedirs(os.path.dirname(self.fallback), mode=0o700, exist_ok=True)
                atomic_write(self.fallback, json.dumps(copy, indent=1, sort_keys=True) + "\n", mode=0o600)
            except OSError as e2:
                log.error("sync: cannot write the runtime status %s either: %s", self.fallback, e2)

    def _recovered(self) -> None:
        log.warning("sync: the state directory %s takes writes again (after %.0fs)", self.state_dir, time.time() - self.since)
        self.error, self.since, self.attempts, self.retry_at = "", 0.0, 0, None
        try:
            os.unlink(self.fallback)
        except OSError:
            pass
