"""Debouncing file events into batches (pure: ``now`` is always passed in).

A batch opens with its first event. It becomes due when no new event arrived for
``quiet`` seconds, or at the latest ``max_delay`` seconds after its first event (so a
never-ending trickle of changes still syncs); a burst of many paths waits for a longer
pause (``burst_quiet``) and may wait longer in all (``burst_max_delay``). One unison run per batch, never one per
event: the same path reported many times is one entry.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field


@dataclass
class Debouncer:
    quiet: float = 0.1
    max_delay: float = 1.0
    # A burst (more than burst_size paths in the open batch, e.g. a tar or cp -r) waits
    # for quiet up to burst_max_delay instead: one run over the finished tree costs far
    # less than a run every max_delay racing the writer.
    burst_size: int = 32
    burst_max_delay: float = 10.0
    # ... and a burst needs a longer pause to count as finished: a writer stalled for
    # 0.1 s on a loaded machine (a cp -r, mid-way) would otherwise start a run over the
    # half-written tree, and the rest then goes file by file in a second run (measured:
    # 14 s instead of 6 s for the second half of a 10,000-file burst)
    burst_quiet: float = 0.5
    _paths: dict[str, None] = field(default_factory=dict)
    _first: float | None = None
    _last: float | None = None

    def add(self, path: str, now: float) -> None:
        """Record an event on *path* at *now*."""
        if self._first is None:
            self._first = now
        self._last = now
        self._paths[path] = None

    def add_many(self, paths, now: float) -> None:
        for p in paths:
            self.add(p, now)

    def __len__(self) -> int:
        return len(self._paths)

    def pending(self) -> tuple[str, ...]:
        return tuple(self._paths)

    def deadline(self) -> float | None:
        """When the open batch becomes due (None: no open batch)."""
        if self._first is None or self._last is None:
            return None
        bound, quiet = self.max_delay, self.quiet
        if len(self._paths) > self.burst_size:
            bound = max(bound, self.burst_max_delay)
            quiet = max(quiet, self.burst_quiet)
        return min(self._last + quiet, self._first + max(bound, quiet))

    def due(self, now: float) -> bool:
        d = self.deadline()
        return d is not None and now >= d

    def take(self, now: float) -> tuple[str, ...]:
        """The batch if it is due (and start a new one), else ()."""
        if not self.due(now):
            return ()
        batch = tuple(self._paths)
        self._paths = {}
        self._first = self._last = None
        return batch


def _is_under(path: str, parent: str) -> bool:
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


def coalesce(paths, limit: int = 200, roots=()) -> tuple[str, ...]:
    """Sorted, de-duplicated paths with descendants of listed directories dropped.

    When more than *limit* remain, paths are replaced by their parent directories
    (never above a configured root in *roots*) until the list is short enough: unison
    scans a directory faster than it handles thousands of ``-path`` arguments.
    """
    current = sorted({posixpath.normpath(p) for p in paths if p})
    roots = tuple(posixpath.normpath(r) for r in roots)

    def minimal(ps):
        keep: set[str] = set()
        for p in sorted(set(ps), key=lambda x: (x.count("/"), x)):
            a = p
            covered = False
            while True:
                if a in keep:
                    covered = True
                    break
                parent = posixpath.dirname(a)
                if parent == a:
                    break
                a = parent
            if not covered:
                keep.add(p)
        return sorted(keep)

    current = minimal(current)
    while len(current) > limit:
        lifted = []
        changed = False
        for p in current:
            if p in roots or posixpath.dirname(p) == p:
                lifted.append(p)
                continue
            parent = posixpath.dirname(p)
            if roots and not any(_is_under(parent, r) for r in roots):
                lifted.append(p)
                continue
            lifted.append(parent)
            changed = True
        current = minimal(lifted)
        if not changed:
            break
    return tuple(current)
