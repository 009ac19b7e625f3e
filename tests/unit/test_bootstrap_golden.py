"""The full bootstrap plan per distro profile, kept as golden files.

For each profile: the first node and the second node of profiles/cluster/example.toml
(the lab profile a snapshot of the lab's cluster.toml, golden/lab-cluster.toml), planned from the facts of a freshly
installed node of that distro (tests/unit/data/bootstrap/golden/<profile>.facts.json,
missing keys answer as hasync.bootstrap.testing.fresh). The expected plans are
golden/<profile>-<node>.plan.json; rewrite them with HASYNC_UPDATE_GOLDEN=1 and read the
diff before committing.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from hasync import config
from hasync.bootstrap import plan as P
from hasync.bootstrap.testing import DataFacts
from hasync.bootstrap.wanted import fence_peer_script, load_units

from .test_bootstrap_steps import ROOT, change_view, resolve

DATA = Path(__file__).parent / "data" / "bootstrap" / "golden"
UPDATE = os.environ.get("HASYNC_UPDATE_GOLDEN") == "1"
PROFILES = ("debian12", "rhel9", "sles15", "sles9", "lab")


def cluster_for(profile: str):
    if profile == "lab":
        # a snapshot of what `hasync lab up` writes (hasync_lab.ns.config_gen), so a change of
        # the lab's config does not silently change this golden plan
        c = config.load(str(DATA / "lab-cluster.toml"))
    else:
        c = config.load(str(ROOT / "profiles" / "cluster" / "example.toml"))
    return replace(c, cluster=replace(c.cluster, profile=profile))


def full_plan(profile: str, node: str) -> list[dict]:
    cluster = cluster_for(profile)
    prof = config.load_profile(profile)
    w = P.Wanted(
        cluster=cluster,
        profile=prof,
        node=node,
        first=node == "node1",
        # the second node joins: the cluster's key comes from the first node
        join="" if node == "node1" else cluster.node("node1").address,
        authkey=None if node == "node1" else "0123456789abcdef0123456789abcdef\n",
        units=load_units(prof.init),
        fence_peer_script=fence_peer_script(),
    )
    facts_file = DATA / f"{profile}.facts.json"
    raw = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    facts = DataFacts({k: resolve(v) for k, v in raw.items()}, prof.init)
    out = []
    for s in P.active_steps(w):
        out += [change_view(c) for c in s.plan(w, facts.get(s.needs(w)))]
    return out


@pytest.mark.parametrize("node", ["node1", "node2"])
@pytest.mark.parametrize("profile", PROFILES)
def test_golden_plan(profile: str, node: str) -> None:
    got = full_plan(profile, node)
    path = DATA / f"{profile}-{node}.plan.json"
    if UPDATE:
        path.write_text(json.dumps(got, indent=1) + "\n")
        return
    assert path.exists(), f"{path.name} missing: run with HASYNC_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text())


def test_profiles_differ_where_the_distros_do() -> None:
    """sysv profiles use chkconfig, systemd ones systemctl; SLES9 alone fixes nfslock."""
    sles9 = json.dumps(full_plan("sles9", "node1"))
    deb = json.dumps(full_plan("debian12", "node1"))
    assert '"chkconfig"' in sles9 and '"systemctl"' not in sles9
    assert '"systemctl"' in deb and '"chkconfig"' not in deb
    assert "nfslock-stop" in sles9 and "nfslock-stop" not in deb


def test_second_node_never_creates_data() -> None:
    for profile in PROFILES:
        text = json.dumps(full_plan(profile, "node2"))
        for word in ("create-md", "--force", "pvcreate", "vgcreate", "lvcreate", "mkfs"):
            if word == "create-md":
                continue  # both nodes need their own metadata
            assert word not in text, (profile, word)
