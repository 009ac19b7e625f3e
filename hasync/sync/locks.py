"""Stale unison archive locks.

unison locks its archives with ``lk*`` files next to them and, when it finds one,
stops and asks for manual intervention. A node that crashed in the middle of a run
leaves one behind. A lock is stale when no unison process using that archive directory
runs on this node (same mount namespace, ``UNISON=<dir>`` in its environment, which is
how hasync starts every unison, client or server).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("hasync.sync")


def _live_unison_using(archive_dir: str) -> list[int]:
    me = os.getpid()
    try:
        my_ns = os.readlink("/proc/self/ns/mnt")
    except OSError:
        my_ns = ""
    want = f"UNISON={archive_dir}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                if not f.read().startswith("unison"):
                    continue
            if my_ns and os.readlink(f"/proc/{name}/ns/mnt") != my_ns:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def clear_stale_locks(archive_dir: str) -> list[str]:
    """Remove ``lk*`` files in *archive_dir* if no unison uses it; the removed paths."""
    try:
        locks = [os.path.join(archive_dir, n) for n in os.listdir(archive_dir) if n.startswith("lk")]
    except FileNotFoundError:
        return []
    if not locks:
        return []
    live = _live_unison_using(archive_dir)
    if live:
        log.info("sync: unison locks in %s are held by running unison %s", archive_dir, live)
        return []
    removed = []
    for p in locks:
        try:
            os.unlink(p)
            removed.append(p)
        except OSError:
            pass
    if removed:
        log.warning("sync: removed stale unison lock(s) %s (left by an interrupted run)", ", ".join(removed))
    return removed
