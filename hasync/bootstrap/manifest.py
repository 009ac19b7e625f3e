"""A bootstrap run's manifest: what each change replaced, the backups, and the rollback.

``Applier`` (hasync.bootstrap.apply) records before each change what it needs to undo it
(old bytes, modes, what a symlink replaced) in ``<state>/runs/<stamp>/manifest.json``;
``rollback`` restores the files of the newest run not yet rolled back, byte for byte,
and re-flips the boot enablement it changed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasync.bootstrap.facts import describe
from hasync.config.paths import HASYNC_STATE_ROOT
from hasync.effects.files import atomic_write
from hasync.effects.run import Runner

STATE_DIR = HASYNC_STATE_ROOT + "/bootstrap"


def host_path(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def stamp(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"


@dataclass
class Manifest:
    dir: Path
    data: dict[str, Any]

    @classmethod
    def new(cls, state_dir: str, node: str, now: float) -> Manifest:
        d = Path(state_dir) / "runs" / f"{stamp(now)}-{os.getpid()}"
        return cls(d, {"node": node, "started": stamp(now), "entries": [], "finished": False, "rolled_back": False})

    def save(self) -> None:
        # 0700: the backups may hold the auth key
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.dir / "manifest.json", json.dumps(self.data, indent=1) + "\n", mode=0o600)

    def add(self, entry: dict[str, Any]) -> None:
        self.data["entries"].append(entry)
        self.save()

    def backup(self, real: str, logical: str) -> str:
        """Copy the current bytes of *real* into the run's folder; return the relative name.
        A file two steps change in one run (nfs.conf: nfs-v4, then sm-notify) keeps its
        first copy -- the bytes from before the run, which rollback must end with."""
        rel = "files/" + logical.lstrip("/")
        dst = self.dir / rel
        if os.path.lexists(dst):
            return rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, dst, follow_symlinks=False)
        return rel


def runs(state_dir: str) -> list[Path]:
    d = Path(state_dir) / "runs"
    return sorted((p for p in d.iterdir() if (p / "manifest.json").is_file()), key=lambda p: p.name) if d.is_dir() else []


def inverse(argv: tuple[str, ...]) -> tuple[str, ...] | None:
    """The command that undoes *argv*, for the few that have one (boot enablement)."""
    flip = {"enable": "disable", "disable": "enable", "on": "off", "off": "on"}
    if argv[:1] == ("systemctl",) and len(argv) >= 3 and argv[-2] in ("enable", "disable"):
        return (*argv[:-2], flip[argv[-2]], argv[-1])
    if argv[:1] == ("chkconfig",) and len(argv) == 3 and argv[2] in ("on", "off"):
        return (argv[0], argv[1], flip[argv[2]])
    return None


def rollback(state_dir: str, root: str = "/", runner: Runner | None = None) -> tuple[Path | None, list[str]]:
    """Undo the newest run not yet rolled back: its files byte for byte, and (with a
    runner) the boot enablement it changed; other commands are listed as not undone.
    Returns (run, report lines)."""
    candidates = [r for r in runs(state_dir) if not json.loads((r / "manifest.json").read_text()).get("rolled_back")]
    candidates = [r for r in candidates if json.loads((r / "manifest.json").read_text())["entries"]]
    if not candidates:
        return None, ["no bootstrap run to roll back"]
    run = candidates[-1]
    m = json.loads((run / "manifest.json").read_text())
    report: list[str] = []

    def hp(p: str) -> str:
        return host_path(root, p)

    def restore(entry: dict, backup_key: str = "backup", mode_key: str = "mode") -> None:
        data = (run / entry[backup_key]).read_bytes()
        atomic_write(hp(entry["path"]), data, mode=entry[mode_key])

    for e in reversed(m["entries"]):
        a, path = e["action"], e.get("path", "")
        if a == "run":
            inv = inverse(tuple(e["argv"])) if runner is not None else None
            if inv is None or runner is None:
                report.append(f"not undone (a command): {describe(tuple(e['argv']))}")
                continue
            res = runner.run(inv, timeout=60)
            report.append(f"undone: {describe(tuple(e['argv']))} (ran {describe(inv)}" + ("" if res.ok else f", which failed: {(res.stderr or res.stdout).strip()[-200:]}") + ")")
        elif a in ("write", "generate", "remove"):
            if e["existed"]:
                if os.path.islink(hp(path)):
                    os.unlink(hp(path))
                restore(e)
                report.append(f"restored {path}")
            elif os.path.lexists(hp(path)):
                os.unlink(hp(path))
                report.append(f"removed {path} (did not exist before)")
            for d in e.get("created", []):
                try:
                    os.rmdir(hp(d))
                except OSError:
                    break
        elif a == "chmod":
            os.chmod(hp(path), e["mode"])
            report.append(f"mode {e['mode']:o} back on {path}")
        elif a == "mkdir":
            for d in e["created"]:
                try:
                    os.rmdir(hp(d))
                    report.append(f"removed directory {d}")
                except OSError:
                    report.append(f"kept directory {d} (not empty)")
        elif a == "link":
            was = e["was"]
            if os.path.islink(hp(path)):
                os.unlink(hp(path))
            if was["kind"] == "dir":
                os.rename(hp(was["moved_to"]), hp(path))
            elif was["kind"] == "symlink":
                os.symlink(was["target"], hp(path))
            elif was["kind"] == "file":
                atomic_write(hp(path), (run / was["backup"]).read_bytes(), mode=was["mode"])
            report.append(f"restored {path} ({was['kind']})")
    m["rolled_back"] = True
    atomic_write(run / "manifest.json", json.dumps(m, indent=1) + "\n", mode=0o600)
    return run, report
