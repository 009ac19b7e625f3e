"""Effects of bootstrap: probe facts, apply changes (each recorded in the run's manifest).

``Prober`` reads facts (commands through a Runner, files and paths directly) and caches
them until something changed. ``Applier`` performs ``plan.Change`` objects, recording
before each one what it needs to undo it in the run's manifest (hasync.bootstrap.manifest,
which also holds the rollback). ``converge`` walks the steps: probe, plan, apply, probe
again.

``root`` prefixes every file path (tests point it at a temporary directory); commands
are run as they are.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hasync.bootstrap import facts
from hasync.bootstrap.doctor import AUTH_KEY_RANDOM_BYTES
from hasync.bootstrap.manifest import Manifest, host_path, stamp
from hasync.bootstrap.plan import Change, Step, Wanted, active_steps
from hasync.effects.files import atomic_write
from hasync.effects.run import Runner


def new_auth_key() -> str:
    """The cluster's heartbeat key: AUTH_KEY_RANDOM_BYTES random bytes, hex (a text file)."""
    return secrets.token_hex(AUTH_KEY_RANDOM_BYTES) + "\n"


class BootstrapError(RuntimeError):
    """A step failed or refused; the message names the step, the command and its output."""

    def __init__(self, step: str, message: str):
        self.step = step
        super().__init__(f"step {step}: {message}")


# --------------------------------------------------------------------------- probing


@dataclass
class Prober:
    runner: Runner
    root: str = "/"
    init: str = "systemd"
    peer: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # every raw observation (capture)
    _cache: dict[str, Any] = field(default_factory=dict)
    probes: int = 0

    def invalidate(self) -> None:
        self._cache.clear()

    def observe(self, key: str) -> Any:
        kind, _, arg = key.partition(":")
        self.probes += 1
        if kind == "file":
            p = host_path(self.root, arg)
            try:
                return Path(p).read_text(errors="surrogateescape")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        if kind == "path":
            p = host_path(self.root, arg)
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                return {"kind": "missing", "target": "", "mode": 0}
            import stat as S

            owner = {"uid": st.st_uid, "gid": st.st_gid}
            if S.S_ISLNK(st.st_mode):
                return {"kind": "symlink", "target": os.readlink(p), "mode": 0o777, **owner}
            k = "dir" if S.S_ISDIR(st.st_mode) else "file" if S.S_ISREG(st.st_mode) else "other"
            return {"kind": k, "target": "", "mode": st.st_mode & 0o7777, **owner}
        if kind == "entries":
            try:
                return sorted(os.listdir(host_path(self.root, arg)))
            except (FileNotFoundError, NotADirectoryError):
                return None
        argv = facts.command(key, init=self.init, root=self.root, peer=self.peer)
        assert argv is not None
        res = self.runner.run(argv, timeout=60)
        if res.exit_code == 255 and argv[0] == "ssh":  # a connection that failed once: retry once
            res = self.runner.run(argv, timeout=60)
        return {"exit": res.exit_code, "stdout": res.stdout, "stderr": res.stderr}

    def get(self, keys: Iterable[str]) -> dict[str, Any]:
        out = {}
        for k in keys:
            if k not in self._cache:
                raw = self.observe(k)
                self.raw[k] = raw
                self._cache[k] = facts.parse(k, raw, init=self.init)
            out[k] = self._cache[k]
        return out


# --------------------------------------------------------------------------- applying


ProgressFn = Callable[[float, str, str], None]  # percent done, rate ("12.5 MiB/s"), state


@dataclass
class Applier:
    runner: Runner
    manifest: Manifest
    root: str = "/"
    prober: Prober | None = None
    progress: ProgressFn | None = None
    clock: Any = None  # MonotonicClock/FakeClock for wait-sync
    new_secret: Callable[[], str] = lambda: new_auth_key()
    changes_done: int = 0

    def hp(self, path: str) -> str:
        return host_path(self.root, path)

    def apply(self, ch: Change) -> None:
        getattr(self, "_" + ch.action.replace("-", "_"))(ch)
        if ch.action != "refuse":
            self.changes_done += 1

    # -- each action --------------------------------------------------------------------
    def _refuse(self, ch: Change) -> None:
        raise BootstrapError(ch.step, "refused: " + ch.why)

    def _run(self, ch: Change) -> None:
        argv = ch.argv
        if argv[:1] == ("systemctl",) and self.root not in ("", "/"):
            argv = ("systemctl", f"--root={self.root}", *argv[1:])
        self.manifest.add({"action": "run", "step": ch.step, "argv": list(argv)})
        res = self.runner.run(argv, timeout=3600)
        if not res.ok:
            out = (res.stderr.strip() or res.stdout.strip())[-2000:]
            raise BootstrapError(ch.step, f"`{facts.describe(argv)}` exited {res.exit_code}" + (f": {out}" if out else ""))

    def _record_file(self, ch: Change, path: str) -> dict[str, Any]:
        real = self.hp(path)
        entry: dict[str, Any] = {"action": ch.action, "step": ch.step, "path": path}
        if os.path.lexists(real):
            st = os.lstat(real)
            entry["existed"] = True
            entry["mode"] = st.st_mode & 0o7777
            entry["backup"] = self.manifest.backup(real, path)
        else:
            entry["existed"] = False
            entry["created"] = self._missing_dirs(os.path.dirname(path))
        self.manifest.add(entry)
        return entry

    def _missing_dirs(self, path: str) -> list[str]:
        """*path* and its parents that do not exist yet, deepest first."""
        missing = []
        p = Path(path)
        for q in [p, *p.parents]:
            if os.path.isdir(self.hp(str(q))):
                break
            missing.append(str(q))
        return missing

    def _write(self, ch: Change) -> None:
        self._record_file(ch, ch.path)
        atomic_write(self.hp(ch.path), (ch.data or "").encode(errors="surrogateescape"), mode=ch.mode)

    def _generate(self, ch: Change) -> None:
        self._record_file(ch, ch.path)
        atomic_write(self.hp(ch.path), self.new_secret(), mode=ch.mode or 0o600)

    def _chmod(self, ch: Change) -> None:
        real = self.hp(ch.path)
        self.manifest.add({"action": "chmod", "step": ch.step, "path": ch.path, "mode": os.stat(real).st_mode & 0o7777})
        os.chmod(real, ch.mode or 0o600)

    def _mkdir(self, ch: Change) -> None:
        missing = self._missing_dirs(ch.path)
        self.manifest.add({"action": "mkdir", "step": ch.step, "path": ch.path, "created": missing})
        os.makedirs(self.hp(ch.path), exist_ok=True)
        if ch.mode is not None:
            os.chmod(self.hp(ch.path), ch.mode)

    def _remove(self, ch: Change) -> None:
        if not os.path.lexists(self.hp(ch.path)):
            return
        self._record_file(ch, ch.path)
        os.unlink(self.hp(ch.path))

    def _link(self, ch: Change) -> None:
        real = self.hp(ch.path)
        entry: dict[str, Any] = {"action": "link", "step": ch.step, "path": ch.path, "target": ch.target}
        if os.path.islink(real):
            entry["was"] = {"kind": "symlink", "target": os.readlink(real)}
        elif os.path.isdir(real):
            aside = ch.path + ".hasync-orig"
            if os.path.lexists(self.hp(aside)):
                aside = f"{ch.path}.hasync-orig.{stamp(time.time())}"
            entry["was"] = {"kind": "dir", "moved_to": aside}
        elif os.path.lexists(real):
            entry["was"] = {"kind": "file", "backup": self.manifest.backup(real, ch.path), "mode": os.lstat(real).st_mode & 0o7777}
        else:
            entry["was"] = {"kind": "missing"}
        self.manifest.add(entry)
        was = entry["was"]
        if was["kind"] == "dir":
            os.rename(real, self.hp(was["moved_to"]))
        os.makedirs(os.path.dirname(real), exist_ok=True)
        tmp = f"{real}.hasync-new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(ch.target, tmp)
        os.replace(tmp, real)

    def _wait_sync(self, ch: Change) -> None:
        assert self.prober is not None
        from hasync.effects.clock import MonotonicClock

        clock = self.clock or MonotonicClock()
        key = f"drbd_status:{ch.target}"
        size = 0
        if ch.path:  # the backing disk: turns percent per second into bytes per second
            parts = self.prober.get(["partitions"])["partitions"]
            size = parts.get(os.path.basename(os.path.realpath(ch.path)), parts.get(os.path.basename(ch.path), {})).get("bytes", 0)
        last: tuple[float, float] | None = None
        rate = ""
        while True:
            self.prober.invalidate()
            s = self.prober.get([key])[key]
            peer = s.get("peer") or {}
            if not s.get("up") or not peer.get("replication", "").startswith("Sync"):
                if self.progress:
                    self.progress(100.0, rate, "done")
                return
            done = float(peer.get("done") or 0.0)
            now = clock.now()
            if last is not None and now > last[0] and done > last[1]:
                pct_s = (done - last[1]) / (now - last[0])
                rate = f"{pct_s * size / 100 / 2**20:.1f} MiB/s" if size else f"{pct_s:.2f} %/s"
            last = (now, done)
            if self.progress:
                self.progress(done, rate, peer["replication"])
            clock.sleep(1.0)


# --------------------------------------------------------------------------- the driver


@dataclass
class StepResult:
    step: str
    changes: list[Change]


def plan_once(w: Wanted, prober: Prober) -> list[tuple[Step, list[Change]]]:
    """Every active step's changes from the facts as they are now (dry run, the prompt)."""
    out = []
    for s in active_steps(w):
        out.append((s, s.plan(w, prober.get(s.needs(w)))))
    return out


def converge(
    w: Wanted,
    prober: Prober,
    applier: Applier,
    on_step: Callable[[Step, list[Change]], None] | None = None,
) -> list[StepResult]:
    """Probe, plan, apply, probe again -- one step at a time. Raises BootstrapError."""
    done: list[StepResult] = []
    for s in active_steps(w):
        changes = s.plan(w, prober.get(s.needs(w)))
        if not changes:
            continue
        refusals = [c for c in changes if c.action == "refuse"]
        if refusals:
            applier.apply(refusals[0])
        if on_step:
            on_step(s, changes)
        for c in changes:
            applier.apply(c)
        prober.invalidate()
        again = [c for c in s.plan(w, prober.get(s.needs(w))) if c.action not in ("wait-sync",)]
        if again and not any(c.action == "refuse" for c in again):
            raise BootstrapError(s.name, "did not converge; still wanted: " + "; ".join(c.summary() for c in again))
        done.append(StepResult(s.name, changes))
    applier.manifest.data["finished"] = True
    if applier.manifest.data["entries"]:
        applier.manifest.save()
    return done
