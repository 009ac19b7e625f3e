"""Which paths belong to the sync (pure): only [sync].paths and what is below them,
minus [sync].ignore patterns, unison's own temporary files and the node-local paths
(hasync.config.paths: never synced, whatever the paths say)."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from hasync.config.paths import excluded
from hasync.config.paths import normalize_path as normalize
from hasync.config.paths import sync_path_problem as path_problem

# unison writes into ".unison.NAME.HASH.unison.tmp" and renames; never a change of ours
_UNISON_TEMP = (".unison.*", "*.unison.tmp", ".#*.unison.tmp")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class Scope:
    paths: tuple[str, ...]
    ignore: tuple[str, ...] = ()
    node_local: tuple[str, ...] = ()  # hasync.config.paths.node_local_paths: never synced

    def __post_init__(self):
        for p in self.paths:
            why = path_problem(p)
            if why:
                raise ValueError(f"[sync].paths: {why}")
        norm = tuple(sorted({normalize(p) for p in self.paths}))
        object.__setattr__(self, "paths", norm)
        pats = "|".join(fnmatch.translate(p) for p in tuple(self.ignore) + _UNISON_TEMP)
        object.__setattr__(self, "_ignore_re", re.compile(pats))

    def root_of(self, path: str) -> str | None:
        for p in self.paths:
            if _under(path, p):
                return p
        return None

    def ignored(self, path: str) -> bool:
        """True if a path component matches an ignore pattern (unison's ``Name`` semantics)
        or the path is node-local."""
        if excluded(path, self.node_local):
            return True
        root = self.root_of(path)
        tail = path[len(root):] if root else path
        names = [n for n in tail.split("/") if n] or [posixpath.basename(path)]
        match = self._ignore_re.match  # type: ignore[attr-defined]
        return any(match(name) for name in names)

    def contains(self, path: str) -> bool:
        path = normalize(path)
        return self.root_of(path) is not None and not self.ignored(path)

    def watches(self, isdir: Callable[[str], bool]) -> list[tuple[str, bool]]:
        """(directory, recursive) pairs to watch: a directory path recursively, a file
        path through its parent directory (so an editor's temp + rename is seen)."""
        out: dict[str, bool] = {}
        for p in self.paths:
            if isdir(p):
                out[p] = True
            else:
                parent = posixpath.dirname(p)
                out[parent] = out.get(parent, False)
        # a non-recursive parent already covered by a recursive watch is redundant
        result = []
        for d, rec in sorted(out.items()):
            if any(r and d != o and _under(d, o) for o, r in out.items()):
                continue
            result.append((d, rec))
        return result


def symlink_problems(paths, realpath: Callable[[str], str] = os.path.realpath) -> list[str]:
    """Configured paths that reach elsewhere through a symlink (refused: never follow one
    out of the synced paths)."""
    problems = []
    for p in paths:
        parent = posixpath.dirname(posixpath.normpath(p))
        real_parent = realpath(parent)
        if real_parent != parent:
            problems.append(f"{p}: {parent} resolves to {real_parent} (a symlink on the way)")
        elif os.path.islink(p):
            problems.append(f"{p}: is a symlink; list its target instead")
    return problems
