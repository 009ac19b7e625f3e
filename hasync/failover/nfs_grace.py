"""The NFS server's grace period as `hasync status` shows it (pure).

After the chain starts nfsd, the server refuses new opens and locks until the clients
have reclaimed theirs: the grace period (`[nfs] grace_time`, docs/nfs.md). With nfsdcld
and v4.1+ clients the kernel ends it early once every known client has reclaimed (or at
once when it knew none); otherwise it lasts the whole grace time. The kernel says whether
it has ended in /proc/fs/nfsd/v4_end_grace ("Y" ended, "N" still in grace); when it
began is when the chain's NFS server resource last started here.

The NFSv3 lock manager (lockd) keeps its own grace of the same length, which the kernel
does not expose: while the v4 grace lasts, v3 lock reclaims are being taken too.
"""

from __future__ import annotations

from hasync import model
from hasync.config.chain_rules import see

END_GRACE = "/proc/fs/nfsd/v4_end_grace"


def server_resource(chain: tuple[model.Resource, ...], vip: str) -> str | None:
    """The id of the chain's NFS server resource (the nfsserver agent, the nfs-server
    unit, Debian's nfs-kernel-server script), or None when the chain has none."""
    for s in see(chain, vip, from_toml=True):
        if s.role == "nfsserver":
            return s.res.id
    return None


def grace_state(end_grace: str | None, started_at: float | None, grace_time: float, wall: float) -> dict | None:
    """What status shows of the grace period: None when the server does not run here
    (*end_grace* None: the file could not be read); else ``in_grace``, and when the start
    time is known ``since_s`` (seconds since nfsd started here) and, in grace,
    ``left_at_most_s`` (the grace time that remains: it may end sooner, never later)."""
    if end_grace is None:
        return None
    flag = end_grace.strip().upper()[:1]
    if flag not in ("Y", "N"):
        return None
    out: dict = {"in_grace": flag == "N", "grace_time_s": grace_time}
    if started_at is not None and wall >= started_at:
        since = wall - started_at
        out["since_s"] = round(since, 1)
        if flag == "N":
            out["left_at_most_s"] = round(max(0.0, grace_time - since), 1)
        elif since < grace_time:
            out["ended_early"] = True  # every known client reclaimed (or none was known)
    return out


def grace_line(g: dict | None) -> str | None:
    """One line for the status view, or None when there is nothing to say."""
    if not g:
        return None
    if g["in_grace"]:
        since = f" for {g['since_s']:.0f} s" if "since_s" in g else ""
        left = f", at most {g['left_at_most_s']:.0f} s left" if "left_at_most_s" in g else ""
        return (f"NFS server in its grace period{since}{left}: clients are reclaiming their state; new opens "
                f"and locks wait (grace {g['grace_time_s']:.0f} s)")
    if g.get("ended_early"):
        return f"NFS grace ended before its {g['grace_time_s']:.0f} s: every known client reclaimed (or none was known)"
    return None
