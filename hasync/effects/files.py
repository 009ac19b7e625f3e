"""Atomic file writes with backups: never a half-written file, never a lost version."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def atomic_write(
    path: str | os.PathLike,
    data: str | bytes,
    *,
    mode: int | None = None,
    backup_dir: str | os.PathLike | None = None,
    now: float | None = None,
) -> Path | None:
    """Write *data* to *path* via a temp file in the same directory, fsync, rename.

    If *backup_dir* is given and *path* exists with different content, the old file is
    copied there first as ``<backup_dir>/<abs path>.<timestamp>`` and that path is returned.
    The mode of an existing file is kept unless *mode* is given.
    """
    p = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    backup: Path | None = None
    old_mode = None
    if p.exists():
        st = p.stat()
        old_mode = st.st_mode & 0o7777
        if backup_dir is not None:
            old = p.read_bytes()
            if old != raw:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
                backup = Path(backup_dir) / (str(p.resolve()).lstrip("/") + "." + stamp)
                backup.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(backup, old, mode=old_mode)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        final_mode = mode if mode is not None else (old_mode if old_mode is not None else 0o644)
        os.chmod(tmp, final_mode)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(str(p.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return backup


def ensure_dir(path: str | Path, mode: int) -> bool:
    """*path* a directory with *mode* (made, or its mode put right); False when it cannot
    be (not root, a read-only /run): the caller's commands then say what is wrong."""
    try:
        os.makedirs(path, exist_ok=True)
        if os.stat(path).st_mode & 0o7777 != mode:
            os.chmod(path, mode)
        return True
    except OSError:
        return False
