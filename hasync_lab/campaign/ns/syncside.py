"""The sync side's faults on a live lab, and what the campaign wrote (its ground truth).

ENOSPC on the watcher's state directory: a tmpfs just big enough for what is there,
filled to the last byte, mounted over it (the real directory stays reachable through a
bind mount, so the heal can copy back what the watcher wrote meanwhile: the host's disk
is never filled). unison killed mid-run, ssh dropped mid-batch: the process is found
among the node's own and SIGKILLed as soon as it shows up. Edits on both nodes at once:
the same file written on both within microseconds; the campaign keeps both versions'
digests, and the conflict audit later looks for the loser in the backups.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import time

from hasync_lab.campaign.ns.prep import STATE_DIR, SYNC_DIR

UNDER = "/run/hasync-campaign/statedir-under"
BALLAST = ".campaign-ballast"
CAMPAIGN_SUBDIR = f"{SYNC_DIR}/campaign"


def enospc_script() -> str:
    return f"""set -e
mkdir -p {STATE_DIR} {UNDER}
mountpoint -q {UNDER} || mount --bind {STATE_DIR} {UNDER}
kb=$(du -sk {STATE_DIR} | cut -f1)
mount -t tmpfs -o size=$((kb + 48))k,mode=0700 campaign-enospc {STATE_DIR}
cp -a {UNDER}/. {STATE_DIR}/
dd if=/dev/zero of={STATE_DIR}/{BALLAST} bs=4k 2>/dev/null || true
dd if=/dev/zero of={STATE_DIR}/{BALLAST}.tail bs=1 2>/dev/null || true
"""


def enospc_heal_script() -> str:
    """Run with the watcher stopped (SIGSTOP): what it wrote goes back to the real dir."""
    return f"""mountpoint -q {UNDER} || exit 0
rm -f {STATE_DIR}/{BALLAST} {STATE_DIR}/{BALLAST}.tail
find {UNDER} -mindepth 1 -delete
cp -a {STATE_DIR}/. {UNDER}/
umount -l {STATE_DIR}
umount {UNDER}
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_files(host_root: str, tag: str, n: int) -> list[str]:
    """n new files under the synced tree of a node (through /proc/<pid>/root)."""
    d = f"{host_root}{CAMPAIGN_SUBDIR}/{tag}"
    os.makedirs(d, exist_ok=True)
    names = []
    for i in range(n):
        p = f"{d}/f{i}"
        with open(p, "w") as f:
            f.write(f"{tag} {i} {secrets.token_hex(8)}\n")
        names.append(p)
    return names


def kill_when_seen(ctx, node: str, what: str, timeout: float = 4.0) -> str:
    """SIGKILL the first unison (or the ssh that carries it) of *node* that shows up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for pid in ctx.lab.pids(node):
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            hit = comm.startswith("unison") if what == "unison" else (comm == "ssh" and b"unison" in cmd)
            if hit:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return f"killed {comm} (pid {pid})"
        time.sleep(0.01)
    return f"no {what} process seen within {timeout:g} s"


def both_edit(ctx, path: str, rounds: int, apart: bool, conflicts: list) -> list[str]:
    """Edits on both nodes at once; each conflicting pair goes into *conflicts*."""
    notes = []
    n1, n2 = ctx.nodes
    for r in range(rounds):
        r1, r2 = ctx.views[n1].path(""), ctx.views[n2].path("")
        if r1 is None or r2 is None:
            notes.append("a node is down: no edit")
            break
        v1 = f"{n1} round {r} {secrets.token_hex(6)}\n".encode()
        v2 = f"{n2} round {r} {secrets.token_hex(6)}\n".encode()
        p1 = f"{CAMPAIGN_SUBDIR}/{path}" if not apart else f"{CAMPAIGN_SUBDIR}/{n1}-{path}"
        p2 = f"{CAMPAIGN_SUBDIR}/{path}" if not apart else f"{CAMPAIGN_SUBDIR}/{n2}-{path}"
        for root in (r1, r2):
            os.makedirs(f"{root}{CAMPAIGN_SUBDIR}", exist_ok=True)
        with open(f"{r1}{p1}", "wb") as f1, open(f"{r2}{p2}", "wb") as f2:
            f1.write(v1)
            f2.write(v2)
        if not apart:
            conflicts.append({"path": p1, "versions": {n1: sha(v1), n2: sha(v2)}, "fault_index": ctx.fault_index})
        end = time.monotonic() + 15
        settled = None
        while time.monotonic() < end:  # the next round only after this one is settled
            a, b = _read(ctx, n1, p1), _read(ctx, n2, p1)
            if a is not None and a == b:
                settled = sha(a)
                break
            time.sleep(0.05)
        if not apart:
            conflicts[-1]["winner"] = settled  # what both nodes had once the round settled
        notes.append(f"round {r}: {p1}" + ("" if settled else " (not settled in 15 s)"))
    return notes


def _read(ctx, node: str, p: str) -> bytes | None:
    hp = ctx.views[node].path(p)
    try:
        return open(hp, "rb").read() if hp else None
    except OSError:
        return None
