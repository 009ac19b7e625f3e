"""The losing versions of conflicts: kept until `hasync sync resolve` or [sync]
keep_conflicts removes them, never rotated away.

unison's own backups (``-maxbackups``) keep a bounded history of ordinary overwrites; a
conflict's loser must outlive any number of later writes, so before the engine settles a
conflict it copies the losing version (from this node, or over ssh from the peer) into a
directory of its own on the node that settles it::

    <backup_dir>/.hasync-conflicts/<time>-<random>/conflict.json   the record
    <backup_dir>/.hasync-conflicts/<time>-<random>/data/<path>     the losing version

One directory per conflict and no shared index: the watcher adds while `hasync sync
resolve` removes, with no lost update between them. Only ``resolve`` and ``expire`` (the
retention setting; default: keep all) delete anything here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from hasync.effects.files import atomic_write

STORE = ".hasync-conflicts"
RECORD = "conflict.json"


def store_dir(backup_dir: str) -> str:
    return os.path.join(backup_dir, STORE)


def _tar_out(rel: str) -> str:
    return f"tar -C / --numeric-owner -cf - -- {shlex.quote(rel)}"


def capture_argv(path: str, data_dir: str, remote_ssh=None) -> tuple[str, ...]:
    """Copy *path* as it is (content, mode, owner, a symlink as a symlink, a directory
    with what it holds) to ``data_dir/<path>``; *remote_ssh*: a function turning a shell
    command into the argv running it on the peer (the loser is the peer's version)."""
    rel = path.lstrip("/")
    source = shlex.join(remote_ssh(_tar_out(rel))) if remote_ssh else _tar_out(rel)
    return ("bash", "-c", f"set -o pipefail; {source} | tar -C {shlex.quote(data_dir)} --numeric-owner -xpf -")


class ConflictStore:
    def __init__(self, backup_dir: str):
        self.root = store_dir(backup_dir)

    def new_entry(self, now: float) -> str:
        """A fresh, unique directory for one conflict (with its empty data/)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        d = tempfile.mkdtemp(prefix=stamp + "-", dir=self.root)
        os.makedirs(os.path.join(d, "data"), mode=0o700)
        return d

    @staticmethod
    def data_path(entry: str, path: str) -> str:
        return os.path.join(entry, "data", path.lstrip("/"))

    def save(self, entry: str, record: dict) -> None:
        record = dict(record, id=os.path.basename(entry))
        atomic_write(os.path.join(entry, RECORD), json.dumps(record, indent=1, sort_keys=True) + "\n", mode=0o600)

    def adopt(self, record: dict, now: float) -> None:
        """A conflict recorded before this store existed (status.json): listed here now."""
        self.save(self.new_entry(record.get("at") or now), dict(record, legacy=True))

    def entries(self) -> list[dict]:
        """Every kept conflict, oldest first (an entry whose record is unreadable is
        listed by its directory, so it is never hidden)."""
        out = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        for name in names:
            entry = os.path.join(self.root, name)
            if not os.path.isdir(entry):
                continue
            try:
                rec = json.loads(Path(entry, RECORD).read_text())
            except (OSError, ValueError):
                rec = {"path": "?", "at": os.stat(entry).st_mtime, "reason": f"unreadable record in {entry}",
                       "kept_as": os.path.join(entry, "data")}
            rec["id"] = name
            out.append(rec)
        return sorted(out, key=lambda r: (r.get("at") or 0, r["id"]))

    def _remove(self, rec: dict) -> None:
        shutil.rmtree(os.path.join(self.root, rec["id"]), ignore_errors=True)

    def resolve(self, paths=None) -> list[dict]:
        """Forget the conflicts on *paths* (all when None) and delete their kept versions."""
        gone = [r for r in self.entries() if paths is None or r.get("path") in paths]
        for r in gone:
            self._remove(r)
        return gone

    def expire(self, keep_s: float, now: float) -> list[dict]:
        """Delete what is older than *keep_s* seconds ([sync] keep_conflicts; 0: keep all)."""
        if not keep_s or keep_s <= 0:
            return []
        gone = [r for r in self.entries() if (r.get("at") or 0) < now - keep_s]
        for r in gone:
            self._remove(r)
        return gone
