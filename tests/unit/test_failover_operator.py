"""The on-call operator's rules on the fake clock (issue 18): maintenance mode, the chain
stopped on purpose, the operator standby that sticks, cleanup, and a daemon stopped
while stop-failed or in maintenance. Two real FSMs wired in memory (the Sim of
test_failover_membership); a node's "disk" (its Persist actions) survives restart()."""

from __future__ import annotations

import pytest

from hasync.failover import packets
from hasync.failover.membership import Monitor
from hasync.failover.operator import CleanupInput, Settings, cleanup_verdict, merge
from hasync.failover.states import Role
from tests.unit.test_failover_membership import RES, Sim, SimNode, run_until_done, settle


def moves(n: SimNode, since: int = 0) -> list[str]:
    """The jobs (from the *since*-th on) that change what runs or the peer: what
    maintenance must never issue."""
    return [j.kind for j in n.jobs[since:] if j.kind in ("start", "stop", "restart", "fence", "fence-self")]


def flags(node: SimNode) -> list[str]:
    return packets.flag_names(node.fsm.flags())


# ------------------------------------------------------------------ the settings merge (pure)


def test_a_newer_copy_wins_and_an_even_one_merges_without_moving_anything():
    on, off = Settings(maintenance=True), Settings()
    assert merge(off, False, on, True, chain_runs=True) == on  # the peer changed it: taken
    assert merge(off, True, on, False, chain_runs=True) == off  # we changed it: the peer takes ours
    assert merge(off, False, on, False, chain_runs=False) == on  # even: maintenance on wins
    assert merge(off, True, on, True, chain_runs=False) == on
    stopped = Settings(stopped=True)
    # even: "stopped" wins unless the chain runs somewhere (somebody started it since)
    assert merge(Settings(), False, stopped, False, chain_runs=False) == stopped
    assert merge(Settings(), False, stopped, False, chain_runs=True) == Settings()
    assert merge(stopped, False, Settings(), False, chain_runs=True) == Settings()
    assert Settings.of(Settings(True, True).flags()) == Settings(True, True)


# ------------------------------------------------------------------ maintenance


def test_maintenance_reaches_the_peer_and_is_kept_on_both_disks():
    sim = settle(Sim())
    ok, msg = sim.n1.command("maintenance-on")
    assert ok and sim.n1.fsm.command_result("maintenance-on") is None  # until node2 shows it
    sim.run(0.2)
    assert sim.n1.fsm.command_result("maintenance-on") is True
    for n in (sim.n1, sim.n2):
        assert n.fsm.settings.maintenance and n.disk.maintenance and "maintenance" in flags(n)
    assert not sim.n1.fsm.settings_new and not sim.n1.disk.settings_new  # node2 took it
    assert any("MAINTENANCE" in w for w in sim.n2.fsm.snapshot(sim.now)["warnings"])


def test_in_maintenance_a_crashed_resource_is_not_restarted_and_a_dead_peer_not_fenced():
    sim = settle(Sim(monitors=(("vip", Monitor(0.1, 2)),)))
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    before1, before2 = len(sim.n1.jobs), len(sim.n2.jobs)
    sim.n1.monitor_ok = False  # the active node's resource dies
    sim.run(1.0)
    assert sim.n1.jobs[before1:] == [] and sim.n1.fsm.role == "active"  # no monitor, no restart
    sim.n1.alive = False  # and then the active node itself
    sim.run(1.0)
    assert sim.n2.fsm.peer.state == "dead" and sim.n2.jobs[before2:] == [] and sim.n2.fsm.role == "standby"
    assert sim.n2.fsm.next_deadline(sim.now) > sim.now  # nothing due that would spin the loop


def test_maintenance_survives_a_daemon_restart_probe_only():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    sim.n1.running_at_start = ("fs",)  # someone stopped vip and svc by hand meanwhile
    sim.n1.restart()
    sim.run(1.0)
    fsm = sim.n1.fsm
    assert fsm.settings.maintenance and fsm.owned == ["fs"] and fsm.role == "standby"
    assert moves(sim.n1) == [] and moves(sim.n2) == []  # a partial chain is neither stopped nor completed
    assert any(e.kind == "maintenance" for e in sim.n1.events)


def test_leaving_maintenance_probes_again_and_never_runs_the_chain_twice():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    sim.n1.running_at_start = ("fs",)  # vip and svc died on the active node during maintenance
    mark = len(sim.n1.jobs)
    ok, _ = sim.n1.command("maintenance-off")
    assert ok
    verdict, _ = run_until_done(sim, sim.n1, "maintenance-off")
    assert verdict is True
    sim.run(1.0)
    # node1 found a partial chain: stopped it (never completed), then the usual rules
    assert moves(sim.n1, mark)[:1] == ["stop"] and sim.both_held == 0
    assert not sim.n2.fsm.settings.maintenance and not sim.n1.disk.maintenance and not sim.n2.disk.maintenance
    assert {sim.n1.fsm.role, sim.n2.fsm.role} == {"active", "standby"}


def test_leaving_maintenance_with_the_peer_dead_needs_force():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    sim.n1.alive = False
    sim.run(1.0)
    ok, msg = sim.n2.command("maintenance-off")
    assert not ok and "node1 is dead" in msg and "fence node1" in msg and "--force" in msg
    assert sim.n2.fsm.settings.maintenance
    ok, _ = sim.n2.command("maintenance-off", force=True)
    assert ok
    sim.run(1.0)
    assert moves(sim.n2) == ["fence", "start"] and sim.n2.fsm.role == "active"


def test_maintenance_refuses_moves_and_waits_for_a_running_start():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    for cmd in ("standby", "takeover", "stop", "start"):
        ok, msg = sim.n1.command(cmd)
        assert not ok and "maintenance off" in msg
    sim = Sim()
    sim.n1.job_time = 0.3
    sim.run(0.1)  # node1's start job runs
    assert sim.n1.fsm.job is not None and sim.n1.fsm.job.kind == "start"
    ok, msg = sim.n1.command("maintenance-on")
    assert not ok and "start runs here" in msg


def test_a_daemon_stopped_in_maintenance_leaves_everything_running_and_says_no_goodbye():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    mark = len(sim.n1.jobs)
    sim.n1.handle(sim.n1.fsm.begin_leave(sim.now))
    assert sim.n1.fsm.can_exit and "maintenance mode" in sim.n1.fsm.exit_note
    assert moves(sim.n1, mark) == [] and not sim.n1.fsm.flags() & packets.F_LEAVING
    sim.n1.alive = False
    sim.run(1.0)
    assert moves(sim.n2) == []  # node2 is in maintenance too: nothing moves


# ------------------------------------------------------------------ a daemon stopped while stop-failed


def test_sigterm_while_stop_failed_exits_at_once_and_the_peer_fences_before_starting():
    """(Was: the daemon ignored SIGTERM while stop-failed; systemctl stop hung until its
    TimeoutStopSec.) It exits at once without ``leaving``: the peer sees it dead with its
    last role stop-failed, and starts nothing before a successful fence."""
    sim = settle(Sim(on_stop_failure="block"))
    sim.n1.stop_ok = False
    sim.n1.command("standby")
    sim.run(0.2)
    assert sim.n1.fsm.role == "stop-failed"
    sim.n1.handle(sim.n1.fsm.begin_leave(sim.now))
    assert sim.n1.fsm.can_exit and "stop-failed" in sim.n1.fsm.exit_note
    assert not sim.n1.fsm.flags() & packets.F_LEAVING
    sim.n1.alive = False
    sim.run(1.0)
    assert moves(sim.n2) == ["fence", "start"]


# ------------------------------------------------------------------ stop / start (cluster-wide)


def test_stop_stops_the_chain_everywhere_and_nothing_starts_it_until_start():
    sim = settle(Sim())
    ok, _ = sim.n2.command("stop")  # typed on the standby node: the active one stops
    assert ok
    verdict, _ = run_until_done(sim, sim.n2, "stop")
    assert verdict is True
    assert sim.n1.fsm.role == "standby" and not sim.n1.fsm.owned and sim.n2.fsm.role == "standby"
    assert sim.n1.disk.stopped and sim.n2.disk.stopped
    sim.n1.restart()  # a restart (or reboot) keeps it stopped
    sim.run(1.0)
    assert sim.n1.fsm.settings.stopped and moves(sim.n1) == [] and moves(sim.n2) == []
    sim.n1.alive = False  # a dead peer is neither fenced nor replaced
    sim.run(1.0)
    assert "fence" not in moves(sim.n2) and "start" not in moves(sim.n2)
    sim.n1.alive = True
    sim.n1.restart()
    sim.run(1.0)
    ok, _ = sim.n1.command("start")
    verdict, _ = run_until_done(sim, sim.n1, "start")
    assert verdict is True and sim.n1.fsm.role == "active" and not sim.n2.disk.stopped


def test_settings_changed_while_the_peer_was_down_reach_it_when_it_returns():
    sim = settle(Sim())
    sim.n2.alive = False
    sim.run(1.0)  # node1 fences node2 (our fake fence: it stays down)
    sim.n1.command("stop")
    sim.run(0.5)
    assert sim.n1.fsm.role == "standby" and sim.n1.disk.settings_new  # not confirmed by node2 yet
    sim.n2.alive = True
    sim.n2.restart()  # with its old copy: not stopped
    sim.run(1.0)
    assert sim.n2.fsm.settings.stopped and sim.n2.disk.stopped  # the newer copy won
    assert not sim.n1.fsm.settings_new
    assert moves(sim.n2) == [] and sim.n1.fsm.role == "standby"
    # and back: started while node2 is down, node2 returns with "stopped" on its disk
    sim.n2.alive = False
    sim.run(1.0)
    sim.n1.command("start")
    sim.run(1.0)
    assert sim.n1.fsm.role == "active"
    sim.n2.alive = True
    sim.n2.restart()
    sim.run(1.0)
    assert not sim.n2.fsm.settings.stopped and sim.n1.fsm.role == "active" and sim.both_held == 0


def test_lost_state_on_one_node_merges_to_the_safe_side():
    sim = settle(Sim())
    sim.n1.command("maintenance-on")
    sim.run(0.2)
    sim.n1.disk = None  # its state directory is gone (a reinstall)
    sim.n1.running_at_start = RES
    sim.n1.restart()
    sim.run(0.5)
    # neither copy is newer: maintenance on wins, nothing moved
    assert sim.n1.fsm.settings.maintenance and sim.n2.fsm.settings.maintenance
    assert moves(sim.n1) == [] and moves(sim.n2) == []


# ------------------------------------------------------------------ the operator standby


def test_operator_standby_survives_a_restart_and_holds_even_when_the_peer_dies():
    sim = settle(Sim())
    ok, _ = sim.n1.command("standby")
    assert ok and run_until_done(sim, sim.n1, "standby")[0] is True
    assert sim.n1.disk.operator_standby and "operator-standby" in flags(sim.n1)
    sim.n1.restart()
    sim.run(0.5)
    assert sim.n1.fsm.operator_standby and sim.n2.fsm.role == "active"
    sim.n2.alive = False  # crm node standby: the standby node does not take over
    sim.run(1.5)
    assert moves(sim.n1) == [] and sim.n1.fsm.role == "standby"
    assert any("operator standby" in w for w in sim.n1.fsm.snapshot(sim.now)["warnings"])
    ok, _ = sim.n1.command("online")
    sim.run(1.0)
    assert moves(sim.n1) == ["fence", "start"] and not sim.n1.disk.operator_standby


def test_standby_can_name_the_peer_and_online_undoes_it_there():
    sim = settle(Sim())
    ok, _ = sim.n2.command("standby", node="node1")  # typed on node2: node1 goes standby
    assert ok
    sim.run(0.6)
    assert sim.n2.fsm.command_result("standby", "node1") is True
    assert sim.n1.fsm.operator_standby and sim.n1.disk.operator_standby and sim.n2.fsm.role == "active"
    ok, msg = sim.n2.command("standby")  # node1 is in operator standby: nobody would run it
    assert not ok and "online node1" in msg
    ok, _ = sim.n2.command("online", node="node1")
    sim.run(0.3)
    assert ok and sim.n2.fsm.command_result("online", "node1") is True
    assert not sim.n1.fsm.operator_standby and not sim.n1.disk.operator_standby
    assert sim.n2.fsm.role == "active"  # online moves nothing


def test_takeover_does_not_leave_the_peer_in_a_standby_that_sticks():
    sim = settle(Sim())
    sim.n2.command("takeover")
    sim.run(0.6)
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.standby_req and not sim.n1.fsm.operator_standby
    sim.n2.alive = False  # a handover standby yields to availability: node1 takes over
    sim.run(1.5)
    assert sim.n1.fsm.role == "active"


# ------------------------------------------------------------------ cleanup


def test_cleanup_clears_stop_failed_once_the_probe_finds_nothing_running():
    sim = settle(Sim(on_stop_failure="block"))
    sim.n1.stop_ok = False
    sim.n1.command("standby")
    sim.run(0.3)
    assert sim.n1.fsm.role == "stop-failed" and sim.n2.fsm.role == "standby"
    sim.n1.running_at_start = ("fs",)  # fs still mounted: not safe
    ok, _ = sim.n1.command("cleanup")
    verdict, _ = run_until_done(sim, sim.n1, "cleanup")
    assert ok and verdict is False and sim.n1.fsm.role == "stop-failed"
    assert any("fs still runs here" in e.message for e in sim.n1.kinds("cleanup"))
    sim.n1.running_at_start = ()  # unmounted by hand
    sim.n1.command("cleanup")
    verdict, _ = run_until_done(sim, sim.n1, "cleanup")
    assert verdict is True and any("stop-failed cleared" in e.message for e in sim.n1.kinds("cleanup"))
    sim.run(0.5)  # node1 is standby (operator standby from the command): node2 starts the chain
    assert sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby" and sim.both_held == 0


def test_cleanup_of_a_failed_start_and_of_restart_counts():
    sim = Sim()
    sim.n1.start_ok = False
    sim.run(1.0)
    assert sim.n1.fsm.failed and sim.n2.fsm.role == "active"
    sim.n1.command("cleanup")
    assert run_until_done(sim, sim.n1, "cleanup")[0] is True and not sim.n1.fsm.failed
    sim = settle(Sim(monitors=(("vip", Monitor(0.1, 3)),)))
    sim.n1.monitor_ok = False
    sim.run(0.15)
    sim.n1.monitor_ok = True
    sim.run(0.2)
    assert sim.n1.fsm.restarts.get("vip") and sim.n1.fsm.role == "active"
    sim.n1.running_at_start = RES
    ok, msg = sim.n1.command("cleanup", resource="nope")
    assert not ok and "no resource" in msg
    sim.n1.command("cleanup", resource="vip")
    assert run_until_done(sim, sim.n1, "cleanup")[0] is True and not sim.n1.fsm.restarts.get("vip")


def test_cleanup_verdicts():
    base = dict(role=Role.STOP_FAILED, failed=False, restarts={}, resources=RES, peer="node2")
    v = cleanup_verdict(CleanupInput(running=RES, **base))
    assert v.ok and v.role == Role.ACTIVE  # it runs where the cluster thinks it runs
    v = cleanup_verdict(CleanupInput(running=RES, peer_holds=True, **base))
    assert not v.ok and v.role is None
    v = cleanup_verdict(CleanupInput(running=(), cannot_tell=("vip: its status failed",), **base))
    assert not v.ok and "cannot tell" in " ".join(v.lines)
    v = cleanup_verdict(CleanupInput(role=Role.STANDBY, failed=True, restarts={}, resources=RES, running=("svc",)))
    assert not v.ok and not v.clear_failed and "svc runs on this standby node" in v.blocked
    v = cleanup_verdict(CleanupInput(role=Role.ACTIVE, failed=False, restarts={"vip": 2}, resources=RES, running=("fs", "vip")))
    assert not v.ok and "svc not running" in v.blocked


@pytest.mark.parametrize("cmd", ["cleanup", "online"])
def test_commands_name_only_known_nodes(cmd):
    sim = settle(Sim())
    ok, msg = sim.n1.command(cmd, node="node9")
    assert not ok and "node9" in msg


def test_a_migrate_asked_while_the_chain_starts_moves_it_once_it_is_up():
    # the VM tier: `hasync migrate --to node2` arrived while node1 restarted part of its
    # chain; the start's success cleared the request, node1 kept the chain and the
    # command waited for nothing until its --wait ran out
    sim = Sim()
    sim.n1.job_time = 0.3
    while not (sim.n1.fsm.job is not None and sim.n1.fsm.job.kind == "start" and sim.n1.fsm.peer.state == "up"):
        sim.step()
    ok, msg = sim.n1.command("handover")
    assert ok and msg == "going standby"  # it holds (part of) the chain: it will hand it over
    verdict, _ = run_until_done(sim, sim.n1, "handover", limit=3.0)
    assert verdict is True and sim.n2.fsm.role == "active" and sim.n1.fsm.role == "standby"
    sim.n2.alive = False  # still a one-off move: availability brings the chain back
    sim.run(1.5)
    assert sim.n1.fsm.role == "active"


def test_a_migrate_undone_by_the_peers_standby_is_answered_not_done():
    # the fsm campaign with the daemon's probe_retry (seed 655926842, two groups): node2
    # accepted `hasync migrate`, began to stop; node1 went `hasync standby` meanwhile,
    # which cleared node2's request; node2 ran the chain again (nobody else may) and the
    # migrate waited for an answer for ever
    sim = settle(Sim())
    sim.n1.job_time = 0.3
    ok, msg = sim.n1.command("handover")
    assert ok and msg == "going standby"
    sim.step()
    assert sim.n1.fsm.role == "stopping"
    ok, _ = sim.n2.command("standby")
    assert ok
    verdict, _ = run_until_done(sim, sim.n1, "handover", limit=3.0)
    assert verdict is False and sim.n1.fsm.role == "active" and sim.n2.fsm.role == "standby"
