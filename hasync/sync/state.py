"""What survives a restart of ``hasync watch``: the journal of pending paths and the
status file (last sync, conflicts, hooks, watcher health), both JSON in [sync].state_dir,
written atomically. ``hasync sync status`` reads the same files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hasync.effects.files import atomic_write

JOURNAL = "journal.json"
STATUS = "status.json"
INCOMING = "incoming.jsonl"
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


def load_status(state_dir: str) -> dict:
    d = _read_json(Path(state_dir) / STATUS)
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
