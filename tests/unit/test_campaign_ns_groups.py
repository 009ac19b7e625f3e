"""The ns campaign tier with two resource groups (--groups 2, issue 17), without a lab:
the campaign's config, who counts as clean with two groups, the sampler's own-group-stop
tracking, the audits' per-group evidence, and the CLI passing --groups to the ns tier."""

from __future__ import annotations

from types import SimpleNamespace

from hasync import config
from hasync_lab.campaign import cli
from hasync_lab.campaign.live import each_group_once
from hasync_lab.campaign.ns import audits as A
from hasync_lab.campaign.ns.prep import (
    GROUPS,
    PIECES,
    TIMING,
    TIMING2,
    campaign_toml,
    wrapper_script,
)
from hasync_lab.campaign.ns.truth import GroupStop, Overlap, Sampler
from hasync_lab.ns.spec import LabSpec

NODES = ("node1", "node2")
ROLES_EACH = {"node1": "active", "node2": "active"}


def test_the_two_group_campaign_config_checks_and_puts_the_demo_in_group_a():
    c, rep = config.check_text(campaign_toml(LabSpec(), "10.200.0.21", TIMING2), "c.toml")
    assert rep.errors == [] and c is not None
    assert [(g.id, g.preferred_node, [r.id for r in g.resources]) for g in c.resource_groups()] == [
        ("a", "node1", ["fs", "vip", "demo"]), ("b", "node2", ["fs2", "vip2"])]
    assert all(r.stop_timeout == TIMING2.op_timeout for r in c.resources)
    assert TIMING2.liveness_bound_s > TIMING.liveness_bound_s  # a node may have to run both groups
    one, _ = config.check_text(campaign_toml(LabSpec(), "10.200.0.21", TIMING), "c.toml")
    assert one is not None and one.groups == ()


def test_the_agents_wrapper_keys_its_flags_by_resource_so_group_bs_agents_miss_group_as_faults():
    script = wrapper_script("fs", "/real/Filesystem")
    assert "${OCF_RESOURCE_INSTANCE:-fs}.$op" in script


def test_each_group_whole_on_one_node_with_matching_role_files_is_clean():
    held = {"node1": {"fs", "vip", "demo"}, "node2": {"fs2", "vip2"}}
    assert each_group_once(NODES, held, GROUPS, ROLES_EACH) == (True, "node1", {"a": "node1", "b": "node2"})
    both = {"node1": set(PIECES), "node2": set()}
    assert each_group_once(NODES, both, GROUPS, {"node1": "active", "node2": "standby"})[0]


def test_a_group_split_or_on_both_or_a_role_file_that_lies_is_not_clean():
    ok, why, _ = each_group_once(NODES, {"node1": {"fs", "vip", "demo", "vip2"}, "node2": {"fs2", "vip2"}}, GROUPS, ROLES_EACH)
    assert not ok and why == "group b: node1 ['vip2'], node2 ['fs2', 'vip2']"
    ok, why, _ = each_group_once(NODES, {"node1": {"fs", "vip", "demo"}, "node2": {"fs2"}}, GROUPS, ROLES_EACH)
    assert not ok and why.startswith("group b:")
    ok, why, _ = each_group_once(NODES, {"node1": set(PIECES), "node2": set()}, GROUPS, ROLES_EACH)
    assert not ok and why == "roles: node2 active (runs no group)"


def sampler(groups=GROUPS) -> Sampler:
    s = Sampler.__new__(Sampler)  # no lab: the tracking alone
    s.nodes, s.groups, s.stops, s.fault_index, s.trace = NODES, dict(groups), [], 3, lambda *a: None
    s.kept, s.open_stops = {}, {}
    return s


def look(up1=True, up2=True, on1=(), on2=()) -> dict:
    return {"node1": {"up": up1, **{p: p in on1 for p in PIECES}}, "node2": {"up": up2, **{p: p in on2 for p in PIECES}}}


def test_the_sampler_sees_the_survivor_stop_its_own_group_while_the_other_node_is_down():
    s = sampler()
    s._own_groups(look(on1=GROUPS["a"], on2=GROUPS["b"]), 1.0)  # both up: nothing watched
    s._own_groups(look(up1=False, on2=GROUPS["b"]), 2.0)  # node1 down: node2 runs b whole
    s._own_groups(look(up1=False, on2=GROUPS["b"] + GROUPS["a"]), 3.0)  # takes a: fine
    assert s.stops == []
    s._own_groups(look(up1=False, on2=("fs2",) + GROUPS["a"]), 4.0)  # b's address gone
    (o,) = s.stops
    assert (o.group, o.node, o.missing, o.fault_index, o.t1) == ("b", "node2", ("vip2",), 3, None)
    s._own_groups(look(up1=False, on2=GROUPS["b"] + GROUPS["a"]), 4.5)
    assert (o.t1, o.ended) == (4.5, "whole again")
    (h,) = A.group_stop_hits(s.stops, 3, 5.0)
    assert h.audit == "own-group-stopped" and h.evidence == {"group": "b", "node": "node2", "missing": ["vip2"],
                                                               "lasted_s": 0.5, "ended": "whole again"}


def test_no_stop_while_both_are_up_before_the_group_ran_whole_or_when_the_node_itself_goes_down():
    s = sampler()
    s._own_groups(look(on1=GROUPS["a"], on2=()), 1.0)  # b nowhere, both up
    s._own_groups(look(up2=False, on1=GROUPS["a"]), 2.0)  # node2 down: node1 never ran b
    s._own_groups(look(up2=False, on1=GROUPS["a"]), 3.0)
    assert [o.group for o in s.stops] == []
    s._own_groups(look(up2=False, on1=("fs",)), 4.0)  # node1 drops a's pieces ...
    s._own_groups(look(up1=False, up2=False), 4.2)  # ... as it goes down itself (a crash, a self-fence)
    assert [(o.group, o.ended) for o in s.stops] == [("a", "node down")]
    assert A.group_stop_hits(s.stops, 3, 5.0) == []
    late = GroupStop("a", "node1", 1.0, 3, ("vip",), 9.0, "node down")  # stopped long before going down
    assert [h.evidence["lasted_s"] for h in A.group_stop_hits([late], 3, 10.0)] == [8.0]


def test_a_dual_run_names_its_group():
    hits = A.overlap_hits([Overlap("vip2", 1.0, 2.0, 0), Overlap("fs", 1.0, 2.0, 0)], [], 0, 5.0, False, 3.0, GROUPS)
    assert [(h.audit, h.evidence["what"], h.evidence["group"]) for h in hits] == [("dual-run", "vip2", "b"), ("dual-run", "fs", "a")]
    assert "group" not in A.overlap_hits([Overlap("fs", 1.0, 2.0, 0)], [], 0, 5.0, False, 3.0)[0].evidence
    assert A.audits_for(2) == A.AUDITS + ("own-group-stopped",) and A.audits_for(1) == A.AUDITS


def test_the_cli_hands_groups_to_the_ns_tier_and_refuses_them_on_the_vm_tier(monkeypatch, capsys):
    got = {}

    def fake_run_on_lab(seed, faults, **kw):
        got.update(kw)
        return {"selftest": {"x": True}, "violations": [], "tier": "ns", "seed": seed}

    monkeypatch.setattr("hasync_lab.campaign.ns.cli.run_on_lab", fake_run_on_lab)
    monkeypatch.setattr("hasync_lab.campaign.cli._finish", lambda args, doc, selftest, err: 0)
    assert cli.main(["--tier", "ns", "--groups", "2", "--seed", "1", "--faults", "2"]) == 0
    assert got["groups"] == 2
    assert cli.main(["--tier", "vm", "--groups", "2"]) == 2
    assert "--tier vm runs one resource group" in capsys.readouterr().err


def test_the_ns_document_replays_with_its_groups():
    from hasync_lab.campaign.ns.report import ns_doc

    r = SimpleNamespace(seed=5, faults=[], faults_run=0, violations=[], limits=[], step_errors=[], by_fault={}, recovery_s=[],
                        after_heal_s=[], per_fault_s=[], selftest={})
    doc = ns_doc(r, 3, 1.0, None, None, "lab", {"groups": 2})
    assert doc["groups"] == 2 and "--groups 2" in doc["replay"]


def _commands(faults) -> list[str]:
    return [s[2]["cmd"] for f in faults for s in f.steps if s[1] == "command"]


def test_operator_faults_move_one_group_when_the_run_has_two():
    """With --groups 2 an operator fault draws `hasync migrate GROUP --to NODE` too (as
    the fsm tier's does), so one group moves while the other keeps running; a one-group
    run's operator faults never name a group."""
    from hasync_lab.campaign.ns.faults import draw_faults

    two = [c for seed in range(40) for c in _commands(draw_faults(seed, 3, ("operator",), TIMING2))]
    assert {"migrate a", "migrate b"} <= set(two)
    assert {"standby", "takeover", "migrate"} & set(two)  # the whole-node commands stay
    one = [c for seed in range(40) for c in _commands(draw_faults(seed, 3, ("operator",), TIMING))]
    assert set(one) <= {"standby", "takeover", "migrate"}


def test_a_group_migrate_goes_to_the_node_not_holding_the_group():
    from hasync_lab.campaign.live import StepPlayer

    r = {"A": "node1", "B": "node2"}
    assert StepPlayer.command_argv(r, "node1", "migrate b", {"a": "node1", "b": "node2"}) == ["hasync", "migrate", "b", "--to", "node1"]
    assert StepPlayer.command_argv(r, "node1", "migrate a", {"a": "node1", "b": "node2"}) == ["hasync", "migrate", "a", "--to", "node2"]
    # no clean look yet (no owners): to the other node than the one it is given on
    assert StepPlayer.command_argv(r, "node2", "migrate a") == ["hasync", "migrate", "a", "--to", "node1"]
    assert StepPlayer.command_argv(r, "node2", "migrate") == ["hasync", "migrate", "--to", "node1"]


def test_the_ns_cli_draws_a_two_group_runs_faults_for_two_groups(monkeypatch):
    """The run's draw knows the groups: `--tier ns --groups 2 --kinds operator` hands the
    lab group migrates (the draw ran with one group's timing before, so none came)."""
    drawn = []

    def fake_run_on_lab(seed, faults, **kw):
        drawn.append(faults)
        return {"selftest": {"x": True}, "violations": [], "tier": "ns", "seed": seed}

    monkeypatch.setattr("hasync_lab.campaign.ns.cli.run_on_lab", fake_run_on_lab)
    monkeypatch.setattr("hasync_lab.campaign.cli._finish", lambda args, doc, selftest, err: 0)
    assert cli.main(["--tier", "ns", "--groups", "2", "--seed", "2", "--faults", "15", "--kinds", "operator"]) == 0
    assert {"migrate a", "migrate b"} <= set(_commands(drawn[-1]))
    assert cli.main(["--tier", "ns", "--seed", "2", "--faults", "15", "--kinds", "operator"]) == 0
    assert set(_commands(drawn[-1])) <= {"standby", "takeover", "migrate"}
