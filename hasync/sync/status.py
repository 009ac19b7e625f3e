"""What `hasync sync status` shows (the watcher's state on disk, its runtime copy under
/run, the journal, the kept conflicts) and what `hasync sync resolve` forgets."""

from __future__ import annotations

import os

from hasync import model
from hasync.sync import state
from hasync.sync.conflicts import ConflictStore
from hasync.sync.session import peer_of
from hasync.sync.transport import RUN_DIR


def status_report(cluster: model.Cluster, me: str) -> dict:
    """The sync's state as this node sees it (JSON-ready)."""
    peer = peer_of(cluster, me)
    st = state.load_status(cluster.sync.state_dir, os.path.join(RUN_DIR, state.RUNTIME_STATUS))
    j = state.Journal.load(cluster.sync.state_dir)
    w = st.get("watcher", {})
    if w.get("state_error"):  # the journal on disk is stale: the watcher's own view
        j.pending = {p: 0.0 for p in st.get("pending", [])}
        r = st.get("retry", {})
        j.attempts, j.next_try, j.last_error = r.get("attempts", 0), r.get("next_try", 0.0), r.get("last_error", "")
    running = bool(w.get("pid")) and _pid_alive(w.get("pid")) and w.get("updated", 0) > 0
    return {
        "node": me,
        "peer": peer.name,
        "last_sync": st.get("last_sync", {}),
        "last_ok": st.get("last_ok"),
        "pending": sorted(j.pending),
        "retry": {"attempts": j.attempts, "next_try": j.next_try, "last_error": j.last_error},
        # a status.json of an older watcher may still list some (adopted at its next start)
        "conflicts": ConflictStore(cluster.sync.backup_dir).entries() + st.get("conflicts", []),
        "hooks": st.get("hooks", [])[-5:],
        "watcher": dict(w, running=running),
    }


def resolve(sync: model.Sync, paths: set[str] | None) -> list[dict]:
    """Forget the conflicts on *paths* (None: all) and delete their kept losing versions;
    the conflicts forgotten."""
    gone = ConflictStore(sync.backup_dir).resolve(paths)
    st = state.load_status(sync.state_dir)
    if st.get("conflicts"):  # listed by an older watcher's status.json
        gone += state.resolve_conflicts(st, paths)
        state.save_status(sync.state_dir, st)
    return gone


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False
