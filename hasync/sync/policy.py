"""The conflict policy (pure).

A file changed on both nodes since the last sync: the version of the node that holds
the services wins; when neither (or both) does, the newer one wins; an existing file
beats a deletion when the times cannot decide. The loser is never lost: the engine copies
it into the conflict store (hasync.sync.conflicts) before unison overwrites it.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVE_ROLES = frozenset({"active", "primary", "master", "running"})


def is_active(role: str | None) -> bool:
    return (role or "").strip().lower() in ACTIVE_ROLES


@dataclass(frozen=True)
class Side:
    """One replica's version of a path: ``kind`` is file/dir/link/absent."""

    kind: str
    sha256: str = ""  # files: content hash; links: hash of the target; dirs: ""
    mtime: float = 0.0
    size: int = 0

    @property
    def exists(self) -> bool:
        return self.kind != "absent"


@dataclass(frozen=True)
class Decision:
    winner: str  # "local" or "remote"
    reason: str


def decide(local_role: str | None, peer_role: str | None, local: Side, remote: Side) -> Decision:
    la, pa = is_active(local_role), is_active(peer_role)
    if la and not pa:
        return Decision("local", "this node holds the services")
    if pa and not la:
        return Decision("remote", "the peer holds the services")
    why = "neither node holds the services" if not la else "both nodes claim the services"
    if local.exists != remote.exists:
        return Decision("local" if local.exists else "remote", f"{why}; an existing file beats a deletion")
    if local.mtime > remote.mtime:
        return Decision("local", f"{why}; this node's version is newer")
    if remote.mtime > local.mtime:
        return Decision("remote", f"{why}; the peer's version is newer")
    return Decision("local", f"{why}; same time, this node's version kept (the peer's is in its backups)")
