"""Which paths the sync never copies, whatever [sync].paths says (pure): the node-local
files -- hasync's own ssh key and known_hosts, its state and runtime files. Excluded
from every unison run and every watch (a synced known_hosts or key would overwrite the
other node's and break ssh in one direction).

Spellings and the trees never synced whole are hasync.config.paths' (``normalize_path``,
``sync_path_problem``): `hasync check`, the scope, unison's -path and the start of
`hasync watch` all use that one denylist. ``hasync check`` warns with
``node_local_notes``; the list of node-local paths lives here only.
"""

from __future__ import annotations

import posixpath

from hasync.config.paths import is_under as under
from hasync.config.paths import normalize_path as normalize
from hasync.config.paths import sync_path_problem

# hasync's per-node state (the failover daemon's persisted generation and state, the sync
# journal, unison archives, conflict copies and backups by default, bootstrap's run
# manifests) and runtime files (the role file, the sync sockets)
HASYNC_STATE_ROOT = "/var/lib/hasync"
HASYNC_RUN_ROOT = "/run/hasync"
_SSH_DIR_NAMES = ("ssh", ".ssh")  # a directory of ssh keys is per node as a whole


def node_local_paths(sync) -> tuple[str, ...]:
    """Files and trees that belong to one node (normalised, top-most first), from the
    [sync] settings (*sync*: hasync.model.Sync)."""
    key, known = normalize(sync.ssh_key), normalize(sync.known_hosts)
    found = {key, key + ".pub", known, known + ".old", HASYNC_STATE_ROOT, HASYNC_RUN_ROOT,
             normalize(sync.state_dir), normalize(sync.backup_dir)}
    for d in (posixpath.dirname(key), posixpath.dirname(known)):
        if posixpath.basename(d) in _SSH_DIR_NAMES:
            found.add(d)
    return _topmost(found)


def _topmost(paths) -> tuple[str, ...]:
    out: list[str] = []
    for p in sorted(paths):
        if not any(under(p, q) for q in out):
            out.append(p)
    return tuple(out)


def node_local_within(path: str, node_local) -> tuple[str, ...]:
    """The node-local paths a synced *path* would reach: those below it, or *path* itself
    when it lies inside one (then nothing of it is synced). For `hasync check`'s warning."""
    p = normalize(path)
    inside = [q for q in node_local if under(p, q)]
    if inside:
        return (p,)
    return tuple(q for q in node_local if under(q, p))


def excluded(path: str, node_local) -> bool:
    return any(under(path, q) for q in node_local)


def start_problems(sync) -> list[str]:
    """Why `hasync watch` / `hasync sync` must not start with these [sync] settings."""
    out = [f"{p!r}: {why}" for p, why in ((p, sync_path_problem(p)) for p in sync.paths) if why]
    if out:
        return out
    local = node_local_paths(sync)
    for p in sync.paths:
        if node_local_within(p, local) == (normalize(p),):
            out.append(f"{p!r}: lies in node-local files (each node's own ssh keys or hasync state), never synced: remove it from [sync].paths")
    return out


def node_local_notes(sync) -> list[str]:
    """One line per synced path that contains node-local files (they stay on each node)."""
    local = node_local_paths(sync)
    out = []
    for p in sync.paths:
        hit = node_local_within(p, local)
        if hit and hit != (normalize(p),):
            out.append(f"{p}: never synced, each node keeps its own: {', '.join(hit)}")
    return out
