"""`hasync bootstrap` on a cluster whose chain Pacemaker runs (issue 16, `[cluster] manager =
"pacemaker"`): it lays down storage and NFS state as for hasync, never installs or enables
hasync-failover (and turns it off where it is on), puts in DRBD's Pacemaker handlers
instead of hasync's fence-peer script, and says so in its plan."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hasync.bootstrap import plan as P
from hasync.bootstrap.testing import DataFacts
from hasync.bootstrap.wanted import fence_peer_script, load_units

from .test_bootstrap_golden import DATA, cluster_for
from .test_bootstrap_steps import resolve


def wanted(manager: str, profile: str = "debian12", node: str = "node1") -> P.Wanted:
    c = cluster_for(profile)
    c = replace(c, cluster=replace(c.cluster, manager=manager))
    assert c.profile is not None
    from hasync import config
    prof = config.load_profile(profile)
    return P.Wanted(cluster=c, profile=prof, node=node, first=node == "node1",
                    join="" if node == "node1" else c.node("node1").address,
                    authkey=None if node == "node1" else "0123456789abcdef0123456789abcdef\n",
                    units=load_units(prof.init), fence_peer_script=fence_peer_script())


def full_plan(w: P.Wanted, **facts: object) -> list[P.Change]:
    f = DATA / f"{w.profile.name}.facts.json"
    raw = json.loads(f.read_text()) if f.exists() else {}
    df = DataFacts({**{k: resolve(v) for k, v in raw.items()}, **facts}, w.profile.init)
    return [c for s in P.active_steps(w) for c in s.plan(w, df.get(s.needs(w)))]


def mentions(c: P.Change, word: str) -> bool:
    return word in " ".join(c.argv) or word in c.path


@pytest.mark.parametrize("profile", ["debian12", "rhel9", "sles9", "lab"])
def test_the_failover_daemon_is_never_installed_nor_enabled(profile):
    hasync_plan = full_plan(wanted("hasync", profile))
    pcmk_plan = full_plan(wanted("pacemaker", profile))
    assert [c for c in hasync_plan if mentions(c, "hasync-failover")]  # the contrast: hasync's own plan has them
    assert not [c for c in pcmk_plan if mentions(c, "hasync-failover")]
    # the watcher stays: it keeps the configs identical under Pacemaker too
    assert [c for c in pcmk_plan if mentions(c, "hasync-watch")]


def test_storage_and_nfs_state_are_laid_down_as_for_hasync():
    steps = lambda plan: {c.step for c in plan}  # noqa: E731
    h, p = full_plan(wanted("hasync")), full_plan(wanted("pacemaker"))
    for s in ("drbd-metadata", "lvm-filter", "filesystem", "nfs-state", "nfs-boot", "exports"):
        if s in steps(h):
            assert s in steps(p), s
    same = lambda plan, s: [c.to_dict() for c in plan if c.step == s]  # noqa: E731
    for s in steps(h) - {"units", "drbd-config"}:
        assert same(h, s) == same(p, s), s


def test_an_enabled_failover_daemon_is_turned_off():
    w = wanted("pacemaker")
    plan = full_plan(w, **{"enabled:hasync-failover": {"exit": 0, "stdout": "enabled\n", "stderr": ""}})
    [off, stop] = [c for c in plan if mentions(c, "hasync-failover")]
    assert off.argv == ("systemctl", "disable", "hasync-failover.service")
    assert "Pacemaker" in off.why
    # stopped only where systemd is PID 1: `disable --now` failed as a whole in the VM tier's
    # busybox guests once an earlier test had enabled the unit (the bootstrap exited 1)
    assert stop.argv[:3] == ("sh", "-c", '[ ! -d /run/systemd/system ] || systemctl stop "$1"')
    assert stop.argv[-1] == "hasync-failover.service"
    # masked (as docs/pacemaker.md says to do): left alone, and no unit file written over the mask
    masked = full_plan(w, **{"enabled:hasync-failover": {"exit": 1, "stdout": "masked\n", "stderr": ""}})
    assert not [c for c in masked if mentions(c, "hasync-failover")]


def test_drbd_gets_pacemakers_handlers_not_hasyncs_fence_script():
    w = wanted("pacemaker")
    [res] = [c for c in full_plan(w) if c.step == "drbd-config" and c.path.endswith(".res")]
    assert res.data is not None
    assert "/usr/lib/drbd/crm-fence-peer" in res.data and "/usr/lib/drbd/crm-unfence-peer" in res.data
    assert "hasync/drbd-fence-peer" not in res.data
    assert not [c for c in full_plan(w) if c.path == "/usr/local/lib/hasync/drbd-fence-peer"]
    # DRBD 8.4 (Debian 12's kernel module) and 9 have their own scripts
    v84 = [c for c in full_plan(replace(w, profile=replace(w.profile, options={**w.profile.options, "drbd_version": "8.4"})))
           if c.step == "drbd-config" and c.path.endswith(".res")][0].data or ""
    v9 = [c for c in full_plan(replace(w, profile=replace(w.profile, options={**w.profile.options, "drbd_version": "9"})))
          if c.step == "drbd-config" and c.path.endswith(".res")][0].data or ""
    assert '"/usr/lib/drbd/crm-fence-peer.sh"' in v84 and '"/usr/lib/drbd/crm-fence-peer.9.sh"' in v9


def test_the_plan_says_the_chain_is_pacemakers():
    [note] = P.notes(wanted("pacemaker"))
    assert "Pacemaker" in note and "hasync-failover" in note and "crm-fence-peer" in note
    assert P.notes(wanted("hasync")) == []
