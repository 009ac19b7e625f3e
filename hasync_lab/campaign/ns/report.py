"""The ns tier's JSON document and violation folder, on the fsm tier's machinery
(hasync_lab/campaign/report.py): the same keys and files, plus what a live lab has --
both nodes' daemon logs, their timelines and fence logs, the commands an operator ran."""

from __future__ import annotations

import shutil
from pathlib import Path

from hasync_lab.campaign.audits import LIMITS
from hasync_lab.campaign.ns.faults import SKIPPED
from hasync_lab.campaign.ns.prep import FENCE_LOG, TIMING
from hasync_lab.campaign.report import _hit, replay_command, write_run_folder
from hasync_lab.campaign.runner import recovery_stats


def _hits(hs, r) -> list[dict]:
    out = []
    for h in hs:
        d = _hit(h, r)
        if h.fault_index >= len(r.faults):
            d["fault"] = "end of run"
        out.append(d)
    return out


def ns_doc(r, n_faults: int, wall_s: float, folder: str | None, kinds, lab: str, extra: dict | None = None, *,
           tier: str = "ns", bounds: dict | None = None, skipped: dict | None = None) -> dict:
    """The JSON document of a live tier's run (ns, and vm with its own bounds and skips)."""
    seen = sorted({h.limit for h in r.limits})
    return {
        "tier": tier,
        "seed": r.seed,
        "faults": n_faults,
        "faults_run": r.faults_run,
        "mutant": None,
        "violations": _hits(r.violations, r),
        "limits": _hits(r.limits, r),
        "step_errors": r.step_errors,
        "limits_named": {k: LIMITS[k] for k in seen},
        "by_fault": dict(sorted(r.by_fault.items())),
        "recovery_s": recovery_stats(r.recovery_s),
        "recovery_after_heal_s": recovery_stats(r.after_heal_s),
        "per_fault_s": recovery_stats(r.per_fault_s),
        "selftest": r.selftest,
        "wall_s": round(wall_s, 3),
        "bounds": bounds or {"liveness_s": TIMING.liveness_bound_s, "stray_s": TIMING.stray_bound_s, "settle_s": TIMING.settle_s},
        "skipped": SKIPPED if skipped is None else skipped,
        "lab": lab,
        "folder": folder,
        "replay": replay_command(r.seed, n_faults, None, kinds, tier=tier, groups=(extra or {}).get("groups", 1)),
        **(extra or {}),
    }


def ns_folder(out: str, run, n_faults: int, kinds) -> str:
    r = run.res
    d = Path(out) / f"ns-seed{r.seed}-f{n_faults}"
    groups = run.t.groups
    write_run_folder(d, r, {"tier": "ns", "seed": r.seed, "faults": n_faults, "kinds": list(kinds) if kinds else None,
                            "timing": run.t.__dict__, "groups": groups},
                     replay_command(r.seed, n_faults, None, kinds, tier="ns", groups=groups))
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    for p in Path(run.logdir).glob("*.log"):
        shutil.copy(p, logs / p.name)
    for node, view in run.views.items():
        for src, name in (("/var/lib/hasync/failover/timeline.jsonl", "timeline.jsonl"), (FENCE_LOG, "fence.log")):
            p = view.path(src)
            try:
                if p:
                    shutil.copy(p, logs / f"{node}-{name}")
            except OSError:
                pass
    return str(d)
