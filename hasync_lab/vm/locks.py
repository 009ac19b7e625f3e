"""NFS locks held across a failover on a VM lab (issue 15): one client holds a `flock` and
an `fcntl` byte-range lock on files of its own; after the failover a second client tries
to take them. A lock the new server reclaimed for its holder is refused to the other
client; a lost one is granted to it (or, on v4, the holder's own I/O under it fails).

The guest side is guest/nfs_locks.py (stdlib Python run in the client VM); this module
starts it and reads what it saw. `verdict` is pure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from hasync_lab.vm.driver import VmLab
from hasync_lab.vm.image_build import GUEST_DIR

SCRIPT = "/tmp/nfs_locks.py"
LOCKS = ("flock", "fcntl")


@dataclass(frozen=True)
class Holder:
    """A lock holder running on *vm*: its lock files are TAG.flock and TAG.fcntl in *dir*."""

    vm: str
    dir: str
    tag: str

    @property
    def status(self) -> str:
        return f"/var/tmp/locks-{self.tag}.json"

    @property
    def stop(self) -> str:
        return f"/var/tmp/locks-{self.tag}.stop"

    @property
    def log(self) -> str:
        return f"/var/tmp/locks-{self.tag}.log"


def install(lab: VmLab, vm: str) -> None:
    lab.exec(vm, ("sh", "-c", f"cat > {SCRIPT}"), input=(GUEST_DIR / "nfs_locks.py").read_text(), check=True)


def hold(lab: VmLab, vm: str, dir: str, tag: str, timeout: float = 120.0) -> Holder:
    """Start a holder on *vm* and wait until it holds both locks."""
    h = Holder(vm, dir, tag)
    install(lab, vm)
    lab.sh(vm, f"rm -f {h.status} {h.stop}")
    lab.spawn(vm, f"python3 {SCRIPT} hold {dir} {tag} {h.status} {h.stop}", h.log)
    deadline = time.monotonic() + timeout
    while read_status(lab, h) is None:
        if time.monotonic() > deadline:
            log = lab.exec(vm, ("cat", h.log)).stdout
            raise TimeoutError(f"{vm}: no locks on {dir}/{tag}.* after {timeout:.0f}s: {log[-1000:]}")
        time.sleep(0.5)
    return h


def read_status(lab: VmLab, h: Holder) -> dict | None:
    r = lab.exec(h.vm, ("cat", h.status))
    try:
        return json.loads(r.stdout) if r.ok else None
    except ValueError:
        return None


def alive(lab: VmLab, h: Holder) -> bool:
    return lab.exec(h.vm, ("pgrep", "-f", f"nfs_locks.py hold {h.dir} {h.tag} ")).ok


def release(lab: VmLab, h: Holder) -> None:
    """Stop the holder (its locks go with it); kill it when it does not stop in time
    (a write of its stuck on a dead server)."""
    pat = f"'nfs_lock[s].py hold {h.dir} {h.tag} '"  # [s]: not the shell running this
    lab.sh(h.vm, f"touch {h.stop}\nfor i in $(seq 30); do pgrep -f {pat} >/dev/null || exit 0; sleep 0.2; done\n"
                 f"pkill -9 -f {pat}\ntrue", errexit=False, timeout=60)


def attempt(lab: VmLab, vm: str, dir: str, tag: str, timeout: float) -> dict[str, str]:
    """A second client (*vm*) tries the holder's locks through its own mount of the same
    export (*dir*); "timeout" for each when the kernel still retried after *timeout*
    seconds (the server's grace period outlasting it)."""
    install(lab, vm)
    r = lab.exec(vm, ("python3", SCRIPT, "try", dir, tag), timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
        return {k: str(out.get(k, "error: missing")) for k in (*LOCKS, "control")}
    except (ValueError, IndexError):
        what = "timeout" if r.exit_code == 124 else f"error: exit {r.exit_code}: {r.stderr.strip()[-200:]}"
        return {k: what for k in (*LOCKS, "control")}


def verdict(status: dict | None, alive: bool, tried: dict[str, str], since: float) -> dict:
    """What a failover did to the held locks (pure).

    *status* is the holder's last status (None: never locked), *alive* whether it still
    runs, *tried* the second client's attempt, *since* the crash on the holder's clock.
    A lock counts as lost when the other client was granted it, or when the holder died
    or its I/O under the locks failed after the crash (v4 reports a lock it could not
    reclaim that way). ``conclusive`` is False when the attempt proves nothing: the
    control range was not granted, or the attempt did not finish.
    """
    errors = [e for e in (status or {}).get("errors", []) if _t(e) >= since]
    holder_ok = status is not None and alive and not errors
    held = status is not None and alive
    lost = [k for k in LOCKS if tried.get(k) == "granted" or not held or any(f" {k}: " in e for e in errors)]
    conclusive = tried.get("control") == "granted" and all(tried.get(k) in ("refused", "granted") for k in LOCKS)
    return {"locks_lost": len(lost), "lost": lost, "holder_ok": holder_ok, "holder_errors": errors[-5:],
            "tried": dict(tried), "conclusive": conclusive}


def _t(line: str) -> float:
    try:
        return float(line.split()[0])
    except (ValueError, IndexError):
        return 0.0
