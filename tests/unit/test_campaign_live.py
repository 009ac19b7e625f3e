"""The frame the live tiers (ns, vm) share (hasync_lab/campaign/live.py), without a lab:
who counts as the one active node, the wait for a clean cluster, the run loop (the
end-of-run audits, --keep-going), the fence command's script and the fault player."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from hasync_lab.campaign.audits import Hit
from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.live import LiveRun, StepPlayer, fence_script, one_active

NODES = ("node1", "node2")
WHOLE = ("fs", "vip")


def test_one_node_with_the_whole_chain_and_the_other_with_none_is_clean():
    held = {"node1": {"fs", "vip"}, "node2": set()}
    assert one_active(NODES, held, WHOLE, {"node1": "active", "node2": "standby"}) == (True, "node1")


def test_a_piece_on_the_other_node_a_partial_chain_or_wrong_roles_are_not():
    roles = {"node1": "active", "node2": "standby"}
    ok, why = one_active(NODES, {"node1": {"fs", "vip"}, "node2": {"vip"}}, WHOLE, roles)
    assert not ok and why.startswith("chain:")
    assert not one_active(NODES, {"node1": {"fs"}, "node2": set()}, WHOLE, roles)[0]
    assert not one_active(NODES, {"node1": set(), "node2": set()}, WHOLE, roles)[0]
    ok, why = one_active(NODES, {"node1": set(), "node2": {"fs", "vip"}}, WHOLE, roles)
    assert (ok, why) == (False, "roles: node2 standby, node1 active")


class FakeRun(LiveRun):
    """A run whose faults and audits are scripted: fault i yields hits[i]."""

    def __init__(self, hits, end_hits=(), keep_going=False, clean=()):
        lab = SimpleNamespace(nodes=list(NODES))
        super().__init__(lab, 1, [Fault("operator", "active", 0, 0.0, []) for _ in hits], None, keep_going=keep_going,
                         t=SimpleNamespace(settle_s=0.0))
        self.hits, self.end_hits, self.resets, self.clean = list(hits), list(end_hits), 0, list(clean)

    def run_fault(self, i, f):
        self.res.faults_run += 1
        return self.record(list(self.hits[i]))

    def after_violation(self):
        self.resets += 1

    def end_audits(self, end):
        return list(self.end_hits)

    def clean_now(self):
        return self.clean.pop(0) if self.clean else (True, "node1")


def _hit(audit, i, limit=None, what="x"):
    return Hit(audit, 0.0, i, {"what": what}, limit)


def test_a_violation_stops_the_run_and_skips_the_end_audits():
    run = FakeRun([[], [_hit("dual-run", 1)], []], end_hits=[_hit("drbd-data", 3)])
    res = run.run()
    assert res.faults_run == 2 and [h.audit for h in res.violations] == ["dual-run"] and run.resets == 0


def test_keep_going_resets_after_a_violation_and_reports_new_end_of_run_hits_once():
    again = _hit("bootstrap-plan", 1)
    run = FakeRun([[], [again, _hit("liveness", 1, "late-stray")], []], end_hits=[_hit("bootstrap-plan", 3, what="y"), again],
                  keep_going=True)
    res = run.run()
    assert res.faults_run == 3 and run.resets == 1
    assert [(h.audit, h.fault_index) for h in res.violations] == [("bootstrap-plan", 1), ("bootstrap-plan", 3)]
    assert [h.limit for h in res.limits] == ["late-stray"]


def test_hold_clean_needs_a_clean_stretch_then_the_daemons_word():
    run = FakeRun([], clean=[(False, "chain: x"), (True, "node1"), (True, "node1")])
    said = iter(["the daemons have not settled", ""])
    assert run.hold_clean(5.0, lambda act: next(said), poll_s=0.0) == (True, "node1")
    run = FakeRun([])
    assert run.hold_clean(5.0, lambda act: "", poll_s=0.0, give_up=lambda t0: "no eligible node") == (False, "no eligible node")
    assert FakeRun([]).hold_clean(0.05, lambda act: "ARP answered by []", poll_s=0.01) == (False, "ARP answered by []")


def _fence(tmp_path, mode: str | None, *args: str) -> tuple[int, str]:
    flags, log = tmp_path / "flags", tmp_path / "fence.log"
    flags.mkdir(exist_ok=True)
    if mode:
        (flags / "fence").write_text(mode + "\n")
    script = tmp_path / "fence"
    script.write_text(fence_script("vm", "a test", str(flags), str(log), 'echo "fenced $node"'))
    r = subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True, timeout=10)
    return r.returncode, r.stdout + log.read_text()


def test_the_fence_command_fences_the_last_argument_unless_a_flag_says_otherwise(tmp_path):
    rc, out = _fence(tmp_path, None, "bmc", "--node", "node2")
    assert rc == 0 and "fenced node2" in out and "fence node2 ok" in out
    rc, out = _fence(tmp_path, "fail", "node2")
    assert rc == 1 and "fenced" not in out and "fence node2 fail" in out
    rc, out = _fence(tmp_path, "lie", "node2")
    assert rc == 0 and "fenced" not in out and "fence node2 lie" in out


class FakePlayer(StepPlayer):
    def __init__(self, run):
        self.run, self.threads, self.did = run, [], []

    def resolve(self, target):
        return ("node2", "node1") if target == "standby" else ("node1", "node2")

    def op_restart(self, r, **kw):
        self.did.append(("restart", r[kw["who"]], kw["how"]))

    def op_boom(self, r, **kw):
        raise OSError("no such node")


def test_steps_play_on_their_roles_and_a_failing_step_is_recorded_not_raised():
    run = FakeRun([])
    run.sampler = SimpleNamespace(snapshot=lambda: {"node1": {"role": "active"}, "node2": {"role": "starting"}})
    p = FakePlayer(run)
    p.play(Fault("restart-mid-job", "standby", 0, 0.0, [[0.0, "boom", {}], [0.0, "restart_busy", {"how": "kill"}]]), 0.0)
    assert p.did == [("restart", "node2", "kill")]  # the busy daemon, whatever A is
    assert [e["op"] for e in run.res.step_errors] == ["boom"]
    assert StepPlayer.command_argv({"A": "node1", "B": "node2"}, "node2", "migrate") == ["hasync", "migrate", "--to", "node1"]


def test_a_daemon_that_does_not_answer_has_no_status(tmp_path):
    from hasync_lab.campaign.live import control_status
    from hasync_lab.campaign.ns.truth import daemon_status

    assert control_status(str(tmp_path / "no.sock")) == {}
    assert daemon_status(SimpleNamespace(path=lambda p: None)) == {}  # the node is down
