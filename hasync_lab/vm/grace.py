"""The NFS server's grace period after a takeover, as the server itself tells it (issue 15):
when nfsd started it, when it ended and why, read from the kernel log and
/proc/fs/nfsd/v4_end_grace of the node that took over.

The kernel (fs/nfsd/nfs4state.c, Linux 6.1) logs at each nfsd start "NFSD: starting
N-second grace period", and ends it early with "NFSD: all clients done reclaiming, ending
NFSv4 grace period" (nfsdcld knew the clients and each sent RECLAIM_COMPLETE) or skips it
with "NFSD: no clients to reclaim, skipping NFSv4 grace period" (nfsdcld knew none). When
the time runs out the laundromat ends it without a word: v4_end_grace turns "Y" and the
log says nothing, which is how "timer" is told apart. lockd's grace (NFSv3 locks) runs
beside it for the same grace-time and is not exposed.

Kernel log times are seconds since boot on the guest's printk clock; marks written into
the log from the host (`mark`, before the crash and after) place them in host time.
`kernel_grace`, `marks`, `clock` and `timeline` are pure; `mark` and `read` ask a VM.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from hasync_lab.vm.driver import VmLab

_STAMP = r"^\[\s*(\d+\.\d+)\]\s+"
_START = re.compile(_STAMP + r"NFSD: starting (\d+)-second grace period", re.M)
_RECLAIMED = re.compile(_STAMP + r"NFSD: all clients done reclaiming, ending NFSv4 grace period", re.M)
# printed instead of "starting" when nfsdcld knows no client
_SKIPPED = re.compile(_STAMP + r"NFSD: no clients to reclaim, skipping NFSv4 grace period", re.M)
_MARK = re.compile(_STAMP + r"hasync-mark (\S+)", re.M)
_TRACKING = re.compile(_STAMP + r"NFSD: Using (.+?) client tracking operations", re.M)


def kernel_grace(log: str) -> dict | None:
    """The grace period of the last nfsd start in *log* (dmesg: seconds since boot):
    ``started_k``, ``grace_s`` (None when skipped), and when the kernel said it ended
    early, ``ended_k`` and ``why``; ``tracking`` is the client tracker nfsd chose at that
    start (``nfsdcld``, ``legacy``...). None when the log has no start (nfsd never
    started, or the ring buffer lost it)."""
    starts = sorted([(m.start(), m, "start") for m in _START.finditer(log)]
                    + [(m.start(), m, "skip") for m in _SKIPPED.finditer(log)], key=lambda x: x[0])
    if not starts:
        return None
    at, last, what = starts[-1]
    out: dict = {"started_k": float(last.group(1))}
    tracking = [m for m in _TRACKING.finditer(log) if m.start() < at]
    if tracking:
        out["tracking"] = tracking[-1].group(2)
    if what == "skip":
        out.update(grace_s=None, ended_k=out["started_k"], why="no clients to reclaim")
        return out
    out["grace_s"] = int(last.group(2))
    ends = [m for m in _RECLAIMED.finditer(log) if m.start() > at]
    if ends:
        out["ended_k"], out["why"] = float(ends[0].group(1)), "all clients reclaimed"
    return out


def marks(log: str) -> dict[str, float]:
    """The kernel times of the marks `mark` wrote into *log*, by id."""
    return {m.group(2): float(m.group(1)) for m in _MARK.finditer(log)}


def clock(points: list[tuple[float, float]]) -> Callable[[float], float] | None:
    """Kernel log time -> host time through (kernel, host) pairs: the line through the
    first and the last (a TCG guest's printk clock need not run at the host's rate: its
    TSC is calibrated under emulation), an offset alone with one pair, None with none."""
    if not points:
        return None
    (k0, h0), (k1, h1) = points[0], points[-1]
    rate = (h1 - h0) / (k1 - k0) if k1 - k0 > 1.0 else 1.0
    return lambda k: h0 + (k - k0) * rate


def timeline(k: dict | None, to_host: Callable[[float], float] | None, t_ref: float, end_grace: str,
             seen_ended: float | None) -> dict:
    """The grace period relative to *t_ref* (the crash, host clock), from `kernel_grace`
    *k* mapped through *to_host* (`clock`), the server's v4_end_grace flag now and when a
    poll first saw it "Y" (*seen_ended*, host clock).

    ``why``: "all clients reclaimed" or "no clients to reclaim" (the kernel said so),
    "timer" (ended, the kernel said nothing: its time ran out), "early, no reason logged"
    (ended before its time, the kernel said nothing), "in grace" (not yet), or
    "unknown" (no start in the log, or no mark to place it). ``ended_s`` is the kernel's
    time for an early end, else the first poll that saw it ended (so: no later than)."""
    if k is None or to_host is None:
        return {"why": "unknown", "end_grace": end_grace}
    out: dict = {"grace_s": k["grace_s"], "started_s": round(to_host(k["started_k"]) - t_ref, 3)}
    if "tracking" in k:
        out["tracking"] = k["tracking"]
    if "why" in k:
        out["why"], out["ended_s"] = k["why"], round(to_host(k["ended_k"]) - t_ref, 3)
    elif end_grace == "Y":
        out["why"] = "timer"
        if seen_ended is not None:
            out["ended_s"] = round(seen_ended - t_ref, 3)
            if k["grace_s"] and out["ended_s"] - out["started_s"] < k["grace_s"] - 1:
                # over before its time and the kernel said nothing (seen on Debian 12's 6.1
                # without nfsdcld: the laundromat, run early, finds nobody still reclaiming)
                out["why"] = "early, no reason logged"
    else:
        out["why"] = "in grace"
    if "ended_s" in out:
        out["lasted_s"] = round(out["ended_s"] - out["started_s"], 3)
    return out


def summary(t: dict) -> str:
    """One line for a log: 'grace 20 s from +8.1 s, ended +9.4 s (all clients reclaimed)'."""
    if t.get("why") == "unknown":
        return f"grace: no nfsd start placed in the server's kernel log (v4_end_grace {t.get('end_grace')!r})"
    end = f", ended +{t['ended_s']:.1f} s" if "ended_s" in t else ""
    if t.get("grace_s") is None:
        return f"grace skipped at +{t['started_s']:.1f} s ({t['why']}; tracking {t.get('tracking', '?')})"
    return f"grace {t['grace_s']} s from +{t['started_s']:.1f} s{end} ({t['why']}; tracking {t.get('tracking', '?')})"


def end_flag(lab: VmLab, server: str) -> str:
    return lab.exec(server, ("cat", "/proc/fs/nfsd/v4_end_grace")).stdout.strip()[:1]


def mark(lab: VmLab, node: str) -> tuple[str, float]:
    """Write a mark into *node*'s kernel log: (its id, the host time it was written at,
    +- half the console's round trip). Two marks around an event place it in host time."""
    mid = f"{time.time():.6f}"
    t0 = time.time()
    lab.exec(node, ("sh", "-c", f"echo hasync-mark {mid} > /dev/kmsg"), check=True)
    return mid, (t0 + time.time()) / 2


def read(lab: VmLab, server: str, t_ref: float, before: tuple[str, float] | None, wait_s: float = 0.0) -> dict:
    """The grace timeline of *server* relative to *t_ref* (host clock), placed between
    the mark *before* (written before the crash, when the server was the standby) and one
    written now. Waits up to *wait_s* for the grace to end, polling v4_end_grace, so a
    timer end has a time."""
    seen = None
    deadline = time.monotonic() + wait_s
    flag = end_flag(lab, server)
    while flag != "Y" and time.monotonic() < deadline:
        time.sleep(0.5)
        flag = end_flag(lab, server)
    if flag == "Y":
        seen = time.time()
    after = mark(lab, server)
    log = lab.exec(server, ("dmesg",), timeout=60).stdout
    at = marks(log)
    points = sorted((at[i], h) for i, h in (m for m in (before, after) if m is not None) if i in at)
    return timeline(kernel_grace(log), clock(points), t_ref, flag, seen)
