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


# --------------------------------------------------------------------------- node-local files
# Which paths the sync never copies, whatever [sync].paths says: the node-local files --
# hasync's own ssh key and known_hosts, its state and runtime files. Excluded from every
# unison run and every watch (a synced known_hosts or key would overwrite the other
# node's and break ssh in one direction); `hasync check` warns with node_local_notes.

# hasync's per-node state (the failover daemon's persisted generation and state, the sync
# journal, unison archives, conflict copies and backups by default, bootstrap's run
# manifests) and runtime files (the role file, the sync sockets)
HASYNC_STATE_ROOT = "/var/lib/hasync"
HASYNC_RUN_ROOT = "/run/hasync"
_SSH_DIR_NAMES = ("ssh", ".ssh")  # a directory of ssh keys is per node as a whole


def node_local_paths(sync) -> tuple[str, ...]:
    """Files and trees that belong to one node (normalised, top-most first), from the
    [sync] settings (*sync*: hasync.model.Sync)."""
    key, known = normalize_path(sync.ssh_key), normalize_path(sync.known_hosts)
    found = {key, key + ".pub", known, known + ".old", HASYNC_STATE_ROOT, HASYNC_RUN_ROOT,
             normalize_path(sync.state_dir), normalize_path(sync.backup_dir)}
    for d in (posixpath.dirname(key), posixpath.dirname(known)):
        if posixpath.basename(d) in _SSH_DIR_NAMES:
            found.add(d)
    return _topmost(found)


def _topmost(paths) -> tuple[str, ...]:
    out: list[str] = []
    for p in sorted(paths):
        if not any(is_under(p, q) for q in out):
            out.append(p)
    return tuple(out)


def node_local_within(path: str, node_local) -> tuple[str, ...]:
    """The node-local paths a synced *path* would reach: those below it, or *path* itself
    when it lies inside one (then nothing of it is synced). For `hasync check`'s warning."""
    p = normalize_path(path)
    inside = [q for q in node_local if is_under(p, q)]
    if inside:
        return (p,)
    return tuple(q for q in node_local if is_under(q, p))


def excluded(path: str, node_local) -> bool:
    """True if *path* is one of *node_local* or below one. *node_local* as
    ``node_local_paths`` returns it (normalised): only *path* is normalised here, once --
    the watcher asks this for every file event (a 10,000-file burst: tens of thousands)."""
    path = normalize_path(path)
    return any(path == q or path.startswith(q.rstrip("/") + "/") for q in node_local)


def start_problems(sync) -> list[str]:
    """Why `hasync watch` / `hasync sync` must not start with these [sync] settings."""
    out = [f"{p!r}: {why}" for p, why in ((p, sync_path_problem(p)) for p in sync.paths) if why]
    if out:
        return out
    local = node_local_paths(sync)
    for p in sync.paths:
        if node_local_within(p, local) == (normalize_path(p),):
            out.append(f"{p!r}: lies in node-local files (each node's own ssh keys or hasync state), never synced: remove it from [sync].paths")
    return out


def node_local_notes(sync) -> list[str]:
    """One line per synced path that contains node-local files (they stay on each node)."""
    local = node_local_paths(sync)
    out = []
    for p in sync.paths:
        hit = node_local_within(p, local)
        if hit and hit != (normalize_path(p),):
            out.append(f"{p}: never synced, each node keeps its own: {', '.join(hit)}")
    return out
