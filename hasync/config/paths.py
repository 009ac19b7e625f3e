"""Sync paths, normalised before anything checks them (pure).

``"/etc/."``, ``"//etc"`` and ``"/etc/hasync/.."`` all name /etc; checking the spelling
instead of the path let them through the denylist and the watcher then synced all of /etc
(hostname, ssh host keys, network config) between the nodes. The sync watcher's scope
uses the same normaliser, so what ``check`` checked is what gets watched.
"""

from __future__ import annotations

import posixpath

# whole system trees: syncing one of them makes the two nodes the same machine
REFUSED_SYNC_ROOTS = ("/", "/etc", "/var", "/usr")


def normalize_path(path: str) -> str:
    """The canonical spelling of an absolute path, without touching the file system:
    "." and ".." resolved, repeated and trailing slashes dropped. Unlike
    ``posixpath.normpath`` a leading "//" becomes "/" (POSIX leaves "//" open to the
    implementation; Linux treats it as "/"). Relative paths are normalised as relative."""
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


def sync_path_problem(path: str) -> str | None:
    """Why *path* cannot be a [sync].paths entry, or None if it can."""
    if "\0" in path:
        return f"expected a path, got {path!r} (it contains a NUL byte)"
    if not path.startswith("/"):
        return f"expected an absolute path, got {path!r}"
    norm = normalize_path(path)
    if norm in REFUSED_SYNC_ROOTS:
        what = repr(path) if norm == path else f"{path!r}, which is {norm!r}"
        return f"refusing to sync all of {what}: name the files or directories to keep identical"
    return None


def is_under(path: str, parent: str) -> bool:
    """True if normalised *path* is *parent* or inside it."""
    path, parent = normalize_path(path), normalize_path(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")
