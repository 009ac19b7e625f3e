"""Promotable OCF agents in the chain (issue 13 item 3): start+promote, demote, monitor 8.

The commands and their environment (hasync.operations.ocf through operations.commands), the
status classification, and the worker driving ChainPlan over a recording runner: the
order of the agent's actions on takeover and release, a failed promote handled as a
failed start, a monitor that finds the resource unpromoted.
"""

from __future__ import annotations

import dataclasses

import pytest

from hasync import model, operations
from hasync.effects.clock import FakeClock
from hasync.effects.run import RecordingRunner, Result
from hasync.failover import chain, effective, hand_run
from hasync.failover.daemon.worker import Worker
from hasync.failover.membership import Job
from hasync.failover.resource_state import Progress

from .test_failover_worker import cluster

AGENT = "/usr/lib/ocf/resource.d/linbit/drbd"
FS_AGENT = "/usr/lib/ocf/resource.d/heartbeat/Filesystem"
DRBD = model.Resource("drbd", "ocf", "linbit:drbd", params={"drbd_resource": "r0"}, promotable=True,
                      start_timeout=90.0, stop_timeout=100.0, monitor_timeout=30.0, monitor_interval=15.0)
FS = model.Resource("fs", "ocf", "heartbeat:Filesystem", params={"device": "/dev/drbd0", "directory": "/srv/ha", "fstype": "ext4"})


def actions(res: model.Resource, op: str) -> list[str]:
    return [c.argv[-1] for c in operations.commands(res, op)]


def env(res: model.Resource, op: str, **kw) -> list[dict[str, str]]:
    return [dict(c.env) for c in operations.commands(res, op, **kw)]


# ------------------------------------------------------------------ the commands


def test_a_promotable_agent_starts_then_promotes_and_its_release_is_a_demote():
    assert actions(DRBD, "start") == ["start", "promote"]
    assert actions(DRBD, "stop") == ["demote"]  # it stays started, unpromoted: DRBD Secondary, replicating
    assert actions(DRBD, "status") == ["monitor"]
    assert [c.argv for c in operations.commands(DRBD, "start")] == [(AGENT, "start"), (AGENT, "promote")]


def test_a_plain_agent_keeps_start_stop_monitor():
    assert (actions(FS, "start"), actions(FS, "stop"), actions(FS, "status")) == (["start"], ["stop"], ["monitor"])
    assert not any(k.startswith("OCF_RESKEY_CRM_meta_clone") or k == "OCF_RESKEY_CRM_meta_notify" for k in env(FS, "start")[0])


def test_a_promotable_agent_gets_the_meta_attributes_of_a_two_node_promotable_clone():
    start, promote = env(DRBD, "start")
    for e in (start, promote, *env(DRBD, "stop"), *env(DRBD, "status")):
        assert {k: e[f"OCF_RESKEY_CRM_meta_{k}"] for k in (
            "clone_max", "clone_node_max", "master_max", "master_node_max", "promoted_max", "promoted_node_max",
            "notify", "promotable")} == {
            "clone_max": "2", "clone_node_max": "1", "master_max": "1", "master_node_max": "1",
            "promoted_max": "1", "promoted_node_max": "1", "notify": "true", "promotable": "true"}
        assert e["OCF_RESKEY_drbd_resource"] == "r0" and e["OCF_RESOURCE_INSTANCE"] == "drbd"
        assert (e["OCF_RESOURCE_PROVIDER"], e["OCF_RESOURCE_TYPE"]) == ("linbit", "drbd")


def test_each_action_gets_its_own_timeout_in_milliseconds():
    (start, promote), (demote,), (monitor,) = (operations.commands(DRBD, op) for op in ("start", "stop", "status"))
    assert [(c.timeout, dict(c.env)["OCF_RESKEY_CRM_meta_timeout"]) for c in (start, promote, demote, monitor)] == [
        (90.0, "90000"), (90.0, "90000"), (100.0, "100000"), (30.0, "30000")]


def test_a_recurring_monitor_has_its_interval_and_a_probe_interval_zero():
    assert env(DRBD, "status")[0]["OCF_RESKEY_CRM_meta_interval"] == "0"  # a probe (ocf_is_probe)
    assert env(DRBD, "status", interval=15.0)[0]["OCF_RESKEY_CRM_meta_interval"] == "15000"
    assert [e["OCF_RESKEY_CRM_meta_interval"] for e in env(DRBD, "start", interval=15.0)] == ["0", "0"]


def test_only_the_promoted_instance_counts_as_running():
    assert chain.classify_status(DRBD, 8, "") == "running"
    assert chain.classify_status(DRBD, 0, "") == "stopped"  # started, unpromoted: not a piece of the chain
    assert chain.classify_status(DRBD, 7, "") == "stopped"
    assert chain.classify_status(DRBD, 9, "") == "failed"  # FAILED_MASTER: cannot tell
    assert chain.classify_status(DRBD, 1, "") == "failed"
    assert chain.classify_status(FS, 0, "") == "running"


# ------------------------------------------------------------------ the worker over ChainPlan


def worker(runner, *resources: model.Resource):
    posts: list = []
    w = Worker(cluster(*(resources or (DRBD, FS))), "node2", runner, posts.append, None, clock=FakeClock(),
               vip_fast=False, agent_nice=0)
    w.retry_delay = 0.0
    return w, posts


def test_takeover_starts_and_promotes_before_what_sits_on_it():
    r = RecordingRunner()
    r.responses[(AGENT, "monitor")] = Result((), 0, "", "")  # DRBD Secondary (up at boot)
    r.responses[(FS_AGENT, "monitor")] = Result((), 7, "", "")
    w, posts = worker(r)
    res = w._run(Job(1, "start"), [])
    assert res.ok and res.owned == ("drbd", "fs")
    assert [c for c in r.calls if c[-1] != "monitor"] == [(AGENT, "start"), (AGENT, "promote"), (FS_AGENT, "start")]
    probe = [p for p in posts if isinstance(p, Progress) and p.resource == "drbd" and p.op == "probe"]
    assert probe[0].outcome == "stopped" and "started but not promoted" in probe[0].detail


def test_release_demotes_after_what_sits_on_it_stopped():
    r = RecordingRunner()
    w, _ = worker(r)
    res = w._run(Job(1, "stop"), ["drbd", "fs"])
    assert res.ok and res.owned == ()
    assert r.calls == [(FS_AGENT, "stop"), (AGENT, "demote")]


def test_a_failed_promote_is_a_failed_start_rolled_back():
    r = RecordingRunner()
    r.responses[(AGENT, "monitor")] = Result((), 7, "", "")
    r.responses[(AGENT, "promote")] = Result((), 1, "", "Refusing to be promoted to Primary without access to UpToDate data")
    w, _ = worker(r)
    res = w._run(Job(1, "start"), [])
    assert not res.ok and res.outcome == "start_failed" and res.owned == ()
    assert res.detail == "drbd: promote exited 1 ERR_GENERIC: Refusing to be promoted to Primary without access to UpToDate data"
    # the filesystem on it never starts; DRBD, half up, is demoted again (it stays started, Secondary)
    assert [c for c in r.calls if c[-1] != "monitor"] == [(AGENT, "start"), (AGENT, "promote"), (AGENT, "demote")]


def test_a_failed_demote_still_promoted_is_a_failed_stop():
    r = RecordingRunner()
    r.responses[(AGENT, "demote")] = Result((), 1, "", "device is held open")
    r.responses[(AGENT, "monitor")] = Result((), 8, "", "")
    w, _ = worker(r)
    res = w._run(Job(1, "stop"), ["drbd", "fs"])
    assert not res.ok and res.outcome == "stop_failed" and res.owned == ("drbd",)
    assert r.calls[-1] == (AGENT, "monitor")


def test_a_monitor_wants_the_promoted_instance():
    r = RecordingRunner()
    r.responses[(AGENT, "monitor")] = Result((), 8, "", "")
    w, _ = worker(r)
    assert w._run(Job(1, "monitor", resource="drbd"), ["drbd", "fs"]).outcome == "monitor_ok"
    r.responses[(AGENT, "monitor")] = Result((), 0, "", "")  # demoted under the chain
    res = w._run(Job(2, "monitor", resource="drbd"), ["drbd", "fs"])
    assert res.outcome == "monitor_failed" and res.detail == "drbd: monitor exited 0 OK: started but not promoted"


def test_the_recurring_monitor_passes_its_interval():
    seen: list[dict] = []

    class EnvRunner(RecordingRunner):
        def run(self, argv, *, env=None, **kw):
            seen.append(dict(env or {}))
            return super().run(argv, env=env, **kw)

    r = EnvRunner()
    r.responses[(AGENT, "monitor")] = Result((), 8, "", "")
    w, _ = worker(r)
    w._run(Job(1, "monitor", resource="drbd"), ["drbd", "fs"])
    w._run(Job(2, "probe"), [])
    assert [e["OCF_RESKEY_CRM_meta_interval"] for e in seen] == ["15000", "0", "0"]


def test_the_start_up_probe_claims_a_promoted_instance_only():
    r = RecordingRunner()
    r.responses[(AGENT, "monitor")] = Result((), 0, "", "")
    r.responses[(FS_AGENT, "monitor")] = Result((), 7, "", "")
    w, _ = worker(r)
    assert w._run(Job(1, "probe"), []).owned == ()  # a DRBD Secondary holds no piece of the chain
    r.responses[(AGENT, "monitor")] = Result((), 8, "", "")
    assert w._run(Job(2, "probe"), []).owned == ("drbd",)


def test_a_plain_resource_named_like_drbd_is_not_promoted():
    plain = dataclasses.replace(DRBD, promotable=False)
    assert actions(plain, "start") == ["start"] and chain.classify_status(plain, 0, "") == "running"


def test_promote_and_demote_alone_exist_for_a_promotable_agent_only():
    # `hasync resource ID promote|demote` and `config show` take them from the chain's builder
    assert [c.argv for c in operations.commands(DRBD, "promote")] == [(AGENT, "promote")]
    [demote] = operations.commands(DRBD, "demote")
    assert demote.argv == (AGENT, "demote") and dict(demote.env)["OCF_RESKEY_CRM_meta_notify"] == "true"
    for op in ("promote", "demote"):
        with pytest.raises(ValueError):
            operations.commands(FS, op)
    assert hand_run.commands(DRBD, "promote", None)[0].argv == (AGENT, "promote")
    with pytest.raises(hand_run.Refused, match="not promotable"):
        hand_run.commands(FS, "demote", None)
    assert effective.resolved(DRBD, None)["promote"] == [f"OCF_RESKEY_drbd_resource=r0 {AGENT} promote"]
    assert hand_run.outcome(DRBD, "monitor", 0, "") == hand_run.Outcome("stopped", "exit 0 (OK)")
