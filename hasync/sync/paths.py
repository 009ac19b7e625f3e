"""Which paths the sync may touch (pure): one spelling per path, the trees never synced
whole, and the node-local files no run ever copies.

- ``normalize``: ``"/etc/."``, ``"//etc"`` and ``"/etc/hasync/.."`` all mean ``/etc``; every
  check below works on the normalised path, so no spelling gets past it.
- ``DENIED_TREES``: syncing one of these as a whole would copy a node's identity (hostname,
  ssh host keys, network config, machine-id) onto the other; name what is shared inside.
- ``node_local_paths``: what belongs to one node only -- hasync's own ssh key and
  known_hosts, its state and runtime files. Excluded from every unison run and every
  watch whatever ``[sync].paths`` says (a synced known_hosts or key would overwrite the
  other node's and break ssh in one direction).

``hasync check`` and the watcher both call these; the list lives here only.
"""

from __future__ import annotations

import posixpath

DENIED_TREES = frozenset(
    {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var"}
)

# hasync's per-node state (the failover daemon's persisted generation and state, the sync
# journal, unison archives, conflict copies and backups by default, bootstrap's run
# manifests) and runtime files (the role file, the sync sockets)
HASYNC_STATE_ROOT = "/var/lib/hasync"
HASYNC_RUN_ROOT = "/run/hasync"
_SSH_DIR_NAMES = ("ssh", ".ssh")  # a directory of ssh keys is per node as a whole


def normalize(path: str) -> str:
    """One spelling per absolute path: ``.``, ``..``, repeated and trailing slashes resolved
    (lexically, as the kernel resolves them without symlinks; POSIX's special leading
    ``//`` is ``/`` on Linux)."""
    p = posixpath.normpath(path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def under(path: str, parent: str) -> bool:
    """*path* is *parent* or below it (both normalised)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def path_problem(path: str) -> str:
    """'' when *path* may be a [sync].paths entry, else why not (one line)."""
    if not path.startswith("/"):
        return f"{path!r}: expected an absolute path"
    p = normalize(path)
    spelled = f" ({path!r} is {p!r})" if p != path else ""
    if p in DENIED_TREES:
        what = "the whole filesystem" if p == "/" else f"all of {p}"
        return f"{path!r}: refusing to sync {what}{spelled}: name the files or directories to keep identical"
    return ""


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
    out = [why for why in (path_problem(p) for p in sync.paths) if why]
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
