"""Bootstrap steps on captured facts: one data file per case (facts in, changes out).

tests/unit/data/bootstrap/steps/<case>.json:
  {"doc", "step", "profile", "config", "node", "first", ["allow_data_loss", "join",
   "authkey", "storage"], "facts": {key: raw observation}, "changes": [expected changes]}

"storage" overrides fields of the config's [storage] (e.g. {"use_drbd": false}); "params"
overrides parameters of the chain's resources by id (e.g. {"vg": {"vg_access_mode":
"tagging"}}); "nfs" overrides fields of [nfs].

Raw observations may point at captured output: ``{"exit": 0, "stdout@": "captured/x"}``
for a command, ``{"@": "captured/x"}`` for a file's content. Facts the case does not list
answer as on a freshly installed node (hasync.bootstrap.testing.fresh).
Written changes are compared as unified diffs. To (re)write the expected changes after a
deliberate change: HASYNC_UPDATE_GOLDEN=1 pytest tests/unit/test_bootstrap_steps.py, then
read the diff before committing.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from hasync import config
from hasync.bootstrap import plan as P
from hasync.bootstrap.testing import DataFacts
from hasync.bootstrap.wanted import fence_peer_script, load_units

DATA = Path(__file__).parent / "data" / "bootstrap"
CAP_DIR = DATA / "captured"
ROOT = Path(__file__).resolve().parents[2]
UPDATE = os.environ.get("HASYNC_UPDATE_GOLDEN") == "1"
CASES = sorted((DATA / "steps").glob("*.json"))


def resolve(raw):
    if isinstance(raw, dict) and "stdout@" in raw:
        out = dict(raw)
        out["stdout"] = (DATA / out.pop("stdout@")).read_text()
        out.setdefault("stderr", "")
        return out
    if isinstance(raw, dict) and set(raw) == {"@"}:
        return (DATA / raw["@"]).read_text()
    return raw


def load_cluster(name: str):
    return config.load(str(ROOT / "profiles" / "cluster" / f"{name}.toml"))


def wanted_for(case: dict) -> P.Wanted:
    cluster = load_cluster(case["config"])
    if case.get("storage"):
        cluster = replace(cluster, storage=replace(cluster.storage, **case["storage"]))
    if case.get("nfs"):
        cluster = replace(cluster, nfs=replace(cluster.nfs, **case["nfs"]))
    if case.get("params"):
        chain = tuple(replace(r, params={**r.params, **case["params"].get(r.id, {})}) for r in cluster.resources)
        cluster = replace(cluster, resources=chain)
    profile = config.load_profile(case["profile"])
    return P.Wanted(
        cluster=cluster,
        profile=profile,
        node=case["node"],
        first=case["first"],
        allow_data_loss=frozenset(case.get("allow_data_loss", [])),
        join=case.get("join", ""),
        authkey=case.get("authkey"),
        units=load_units(profile.init),
        fence_peer_script=fence_peer_script(),
    )


def change_view(c: P.Change) -> dict:
    """A change as compared in the data files: writes as unified diffs."""
    d = c.to_dict()
    if c.action == "write":
        d.pop("data", None)
        d.pop("old", None)
        if c.secret:
            d["diff"] = "(secret)"
        else:
            d["diff"] = "".join(
                difflib.unified_diff(
                    (c.old or "").splitlines(keepends=True),
                    (c.data or "").splitlines(keepends=True),
                    c.path if c.old is not None else "/dev/null",
                    c.path,
                    n=1,
                )
            ).splitlines()
    return d


def run_case(case: dict) -> tuple[P.Wanted, DataFacts, list[P.Change]]:
    w = wanted_for(case)
    steps = [s for s in P.STEPS if s.name == case["step"]]
    assert steps, f"no step {case['step']!r}"
    s = steps[0]
    facts = DataFacts({k: resolve(v) for k, v in case["facts"].items()}, w.profile.init)
    if not s.when(w):
        return w, facts, []
    return w, facts, s.plan(w, facts.get(s.needs(w)))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_step_case(path: Path) -> None:
    case = json.loads(path.read_text())
    _, facts, changes = run_case(case)
    got = [change_view(c) for c in changes]
    # every fact the case lists is one the step asked for: no stale data in the case files
    unused = set(case["facts"]) - set(facts.asked)
    assert not unused, f"{path.name}: facts the step never asked for: {sorted(unused)}"
    if UPDATE or case.get("changes") is None:
        if not UPDATE:
            pytest.fail(f"{path.name} has no expected changes; run with HASYNC_UPDATE_GOLDEN=1")
        case["changes"] = got
        path.write_text(json.dumps(case, indent=1) + "\n")
        return
    assert got == case["changes"], f"{path.name}: {case['doc']}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_step_case_converges(path: Path) -> None:
    """Applying a case's file writes to its facts leaves nothing to write on a re-plan."""
    case = json.loads(path.read_text())
    w, facts, changes = run_case(case)
    writes = {c.path: c.data for c in changes if c.action == "write"}
    if not writes:
        return
    raw = dict(facts.raw)
    for p, data in writes.items():
        raw[f"file:{p}"] = data
    s = next(s for s in P.STEPS if s.name == case["step"])
    again = s.plan(w, DataFacts(raw, w.profile.init).get(s.needs(w)))
    assert [c for c in again if c.action == "write"] == []
