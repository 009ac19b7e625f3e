"""The VM bench's peers (issue 16): Pacemaker on the same VM lab, the same chain (from
`hasync export pacemaker`), the same crash (kill -9 of the active node's qemu), the same
client and the same measure (crash -> the client's next acknowledged write, on its own
clock), at each Corosync token given (3000 ms, its default; 1000 ms, the fastest its
maintainers recommend). A fresh lab per setting; the victim powers on and rejoins
between trials (Corosync and Pacemaker started, DRBD resynced, the fence-peer
constraint lifted), the group staying where it went (stickiness, auto_failback off).

Each setting gives one ``peers`` entry: tool, setting, median_s, min_s, max_s, trials,
lost_writes, and per run the breakdown read from crm_mon's history (whole seconds).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from hasync_lab.vm import VmLab, ensure_image, manual
from hasync_lab.vm import pacemaker as pcmk
from hasync_lab.vm import scenario as sc

Say = Callable[[str], None]


def summary(runs: list[dict], setting: str, token_ms: int) -> dict:
    """The peers entry of one setting from its runs (pure)."""
    resumed = [r["resumed_s"] for r in runs]
    keys = sorted({k for r in runs for k in r["phases"]})
    return {
        "tool": "pacemaker", "setting": setting, "token_ms": token_ms,
        "median_s": round(statistics.median(resumed), 3) if resumed else None,
        "min_s": min(resumed, default=None), "max_s": max(resumed, default=None),
        "trials": len(runs), "lost_writes": sum(r["lost_writes"] for r in runs),
        "stale_handles": sum(r["stale_handles"] for r in runs),
        "breakdown": {k: round(statistics.median([r["phases"][k] for r in runs if k in r["phases"]]), 1) for k in keys},
        "runs": runs,
    }


def run_setting(token_ms: int, trials: int, name: str, say: Say,
                lost_writes: Callable[[VmLab, dict, str], tuple[int, int]],
                stale_handles: Callable[[VmLab, dict], int]) -> dict:
    """One token setting on a fresh VM lab named *name*, brought down afterwards."""
    t0 = time.monotonic()
    image = ensure_image(say)
    lab = VmLab(name, report=say)
    if lab.exists:
        lab.down()
        lab = VmLab(name, report=say)
    runs: list[dict] = []
    setting = f"token {token_ms} ms"
    out: dict = {}
    try:
        lab.create(image, pcmk.guests(1))
        lab.up()
        say(f"pacemaker, {setting}: bootstrap, export, corosync + pacemaker, the CIB")
        setup = pcmk.setup(lab, token_ms)
        sc.mount_client(lab)
        w = manual.start_writer(lab, "client1", "/mnt/ha/pcmk", "pcmk")
        manual.wait_acked(lab, "client1", w, 10, timeout=120)
        active, standby = "node1", "node2"
        for i in range(1, trials + 1):
            say(f"pacemaker, {setting}, trial {i}/{trials}: power {active} off")
            stale0 = stale_handles(lab, w)
            c = pcmk.crash_and_wait(lab, active, standby, w)
            lost, bad = lost_writes(lab, w, standby)
            runs.append({"trial": i, "victim": active, "survivor": standby, "resumed_s": c.resumed_s,
                         "phases": c.phases, "fenced": active in c.view_after.fenced, "lost_writes": lost,
                         "corrupt_records": bad, "stale_handles": stale_handles(lab, w) - stale0})
            say(f"  client resumed after {c.resumed_s:.2f}s; {c.phases}; lost {lost}")
            if i < trials:
                say(f"  {active} powers on and rejoins")
                pcmk.rejoin(lab, active, standby)
                active, standby = standby, active
        manual.stop_writer(lab, "client1", w)
        out = summary(runs, setting, token_ms)
        out["setup"] = setup
    finally:
        if not out:  # a run that failed part-way: what it measured, and that it did not finish
            out = summary(runs, setting, token_ms) | {"incomplete": True}
        out["wall_s"] = round(time.monotonic() - t0, 1)
        lab.down()
    return out
