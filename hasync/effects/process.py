"""This process's own scheduling, memory and resource use (the failover daemon's tuning).

All best effort: a daemon that cannot get SCHED_FIFO or lock its memory still runs, and
says what it got (``hasync status``: daemon.priority, daemon.memory_locked).
"""

from __future__ import annotations

import ctypes
import os


def raise_priority(mode: str = "fifo", rt_priority: int = 10) -> str:
    """SCHED_FIFO (children reset to normal), else nice -10. Returns what took."""
    if mode == "none":
        return "unchanged"
    reset = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    if mode == "fifo":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO | reset, os.sched_param(rt_priority))
            return f"SCHED_FIFO {rt_priority}"
        except (OSError, AttributeError):
            pass
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER | reset, os.sched_param(0))
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except OSError:
        return "unchanged"


def lock_memory() -> bool:
    """mlockall(MCL_CURRENT | MCL_FUTURE): no page of the daemon is swapped out under load."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.mlockall(1 | 2) == 0
    except OSError:
        return False


def proc_stats() -> dict:
    """Resident memory (MB, from /proc/self/status) and CPU seconds used so far."""
    out: dict = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    t = os.times()
    out["cpu_s"] = round(t.user + t.system, 3)
    return out
