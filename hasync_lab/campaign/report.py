"""What a campaign run says: the JSON document, the rich summary table, and the folder
a violation leaves behind (timeline of both FSMs, the exact faults, the replay command)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .audits import LIMITS
from .runner import CampaignResult, SeedResult, recovery_stats

DEFAULT_OUT = "/var/tmp/hasync-campaign"


def replay_command(seed: int, n_faults: int, mutant: str | None, kinds: tuple[str, ...] | None = None,
                   tier: str = "fsm", groups: int = 1) -> str:
    cmd = f"python -m hasync_lab.campaign --tier {tier} --seed {seed} --faults {n_faults}"
    if groups > 1:
        cmd += f" --groups {groups}"
    if mutant:
        cmd += f" --mutant {mutant}"
    if kinds:
        cmd += f" --kinds {','.join(kinds)}"
    return cmd


def _hit(h, r: SeedResult, full: bool = True) -> dict:
    d = h.to_dict()
    d["fault"] = r.faults[h.fault_index].kind if 0 <= h.fault_index < len(r.faults) else "start-up"
    if not full:
        d["evidence"] = {k: v for k, v in d["evidence"].items() if k not in ("state", "traceback")}
    return d


def seed_doc(r: SeedResult, n_faults: int, selftest: dict, wall_s: float, folder: str | None,
             kinds: tuple[str, ...] | None = None) -> dict:
    seen = sorted({h.limit for h in r.limits})
    return {
        "tier": "fsm",
        "seed": r.seed,
        "faults": n_faults,
        "faults_run": r.faults_run,
        "mutant": r.mutant,
        "violations": [_hit(h, r) for h in r.violations],
        "limits": [_hit(h, r, full=False) for h in r.limits],
        "limits_named": {k: LIMITS[k] for k in seen},
        "by_fault": dict(sorted(r.by_fault.items())),
        "recovery_s": recovery_stats(r.recovery_s),
        "recovery_after_heal_s": recovery_stats(r.after_heal_s),
        "selftest": selftest,
        "wall_s": round(wall_s, 3),
        "sim_s": round(r.sim_s, 3),
        "bounds": {"liveness_s": round(r.scenario.liveness_bound_s, 4), "stray_s": round(r.scenario.stray_bound_s, 4)},
        "scenario": r.scenario.to_dict(),
        "folder": folder,
        "replay": replay_command(r.seed, n_faults, r.mutant, kinds, groups=len(r.scenario.groups) or 1),
    }


def campaign_doc(c: CampaignResult, selftest: dict, folders: dict, mutant: str | None, kinds: tuple[str, ...] | None = None) -> dict:
    violations = []
    for r in c.seeds:
        for h in r.violations[:1]:
            violations.append({"seed": r.seed, **_hit(h, r, full=False), "folder": folders.get(r.seed),
                               "replay": replay_command(r.seed, c.n_faults, mutant, kinds, groups=len(r.scenario.groups) or 1)})
    return {
        "tier": "fsm",
        "seed": c.first_seed,
        "faults": c.faults,
        "faults_per_seed": c.n_faults,
        "mutant": mutant,
        "seeds": {
            "count": c.count,
            "first": c.first_seed,
            "last": c.first_seed + c.count - 1,
            "violating": c.violating,
            "per_s": round(c.count / c.wall_s, 1) if c.wall_s else None,
        },
        "violations": violations,
        "violations_by_audit": dict(sorted(c.first_audit.items())),
        "violations_by_fault": dict(sorted(c.first_fault_kind.items())),
        "limits": dict(sorted(c.limits.items())),
        "limits_named": {k: LIMITS[k] for k in sorted(c.limits)},
        "by_fault": dict(sorted(c.by_fault.items())),
        "recovery_s": recovery_stats(c.recovery),
        "recovery_after_heal_s": recovery_stats(c.after_heal),
        "selftest": selftest,
        "wall_s": round(c.wall_s, 3),
        "sim_s": round(c.sim_s, 1),
    }


# ------------------------------------------------------------------ the folder


def write_folder(out: str, r: SeedResult, n_faults: int, kinds: tuple[str, ...] | None = None) -> str:
    name = f"fsm-seed{r.seed}-f{n_faults}" + (f"-{r.mutant}" if r.mutant else "")
    return write_run_folder(Path(out) / name, r, {"tier": "fsm", "seed": r.seed, "faults": n_faults, "mutant": r.mutant,
                                                  "kinds": list(kinds) if kinds else None, "scenario": r.scenario.to_dict()},
                            replay_command(r.seed, n_faults, r.mutant, kinds, groups=len(r.scenario.groups) or 1))


def write_run_folder(d: Path, r, faults_doc: dict, replay: str) -> str:
    """The folder a violation leaves, of any tier: timeline.txt, faults.json (with the
    exact fault list: --replay runs it), violations.json, replay.txt."""
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"{t:12.4f}  {node:<6} {kind:<13} {msg}" for t, node, kind, msg in r.timeline]
    _write(d / "timeline.txt", "\n".join(lines) + "\n")
    _write(d / "faults.json", json.dumps({**faults_doc, "fault_list": [f.to_dict() for f in r.faults]}, indent=1) + "\n")
    _write(d / "violations.json", json.dumps([_hit(h, r) for h in r.violations], indent=1, default=str) + "\n")
    _write(d / "replay.txt", f"{replay}\n"
                             f"python -m hasync_lab.campaign --tier {faults_doc['tier']} --replay {d / 'faults.json'}\n")
    return str(d)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ the table


def print_summary(doc: dict, console) -> None:
    from rich.table import Table

    t = Table(title=f"hasync lab campaign: tier {doc['tier']}" + (f", mutant {doc['mutant']}" if doc.get("mutant") else ""),
              show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    multi = "seeds" in doc and isinstance(doc["seeds"], dict)
    if multi:
        s = doc["seeds"]
        t.add_row("seeds", f"{s['count']} ({s['first']}..{s['last']}), {s['per_s']} seeds/s")
        t.add_row("faults", f"{doc['faults']} ({doc['faults_per_seed']} per seed)")
        bad = len(s["violating"])
        t.add_row("violations", f"[{'red' if bad else 'green'}]{bad} seed(s)[/]" + (
            f": first audits {doc['violations_by_audit']}, under {doc['violations_by_fault']}" if bad else ""))
        for v in doc["violations"][:5]:
            t.add_row("", f"seed {v['seed']}: {v['audit']} at fault #{v['fault_index']} ({v['fault']})"
                          + (f" -> {v['folder']}" if v.get("folder") else f"; replay: {v['replay']}"))
    else:
        t.add_row("seed", f"{doc['seed']} ({doc['faults_run']} of {doc['faults']} faults run)")
        bad = len(doc["violations"])
        t.add_row("violations", f"[{'red' if bad else 'green'}]{bad}[/]")
        for v in doc["violations"][:5]:
            t.add_row("", f"{v['audit']} at fault #{v['fault_index']} ({v['fault']}): "
                          + json.dumps({k: x for k, x in v["evidence"].items() if k not in ("state", "traceback")})[:160])
        if doc.get("folder"):
            t.add_row("folder", doc["folder"])
        t.add_row("replay", doc["replay"])
    lim = doc["limits"] if multi else {k: sum(1 for h in doc["limits"] if h["limit"] == k) for k in doc["limits_named"]}
    t.add_row("named limits", ", ".join(f"{k} {n}" for k, n in lim.items()) or "none exercised")
    t.add_row("by fault", ", ".join(f"{k} {n}" for k, n in doc["by_fault"].items()))
    rec, heal = doc["recovery_s"], doc["recovery_after_heal_s"]
    t.add_row("recovery", f"fault to clean audit: median {rec['median']} s, max {rec['max']} s ({rec['n']} faults); "
                          f"heal to clean: median {heal['median']} s, max {heal['max']} s" if rec["n"] else "-")
    st = doc["selftest"]
    t.add_row("self-test", ", ".join(f"[{'green' if ok else 'red'}]{k}[/]" for k, ok in st.items()))
    if doc.get("skipped"):
        t.add_row("skipped", ", ".join(doc["skipped"]))
    if doc.get("per_fault_s"):
        t.add_row("per fault", f"median {doc['per_fault_s']['median']} s, max {doc['per_fault_s']['max']} s (fault to clean, audits included)")
    t.add_row("wall", f"{doc['wall_s']} s" + (f" (simulated {doc['sim_s']} s)" if "sim_s" in doc else ""))
    console.print(t)
