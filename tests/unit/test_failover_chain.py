"""The chain: commands per resource kind and the start/stop step machine (pure)."""

from __future__ import annotations

from hasync import model, operations
from hasync.failover import chain

IDS = ("fs", "vip", "svc")


def drive(plan: chain.ChainPlan, outcomes: dict) -> list[tuple[str, str]]:
    """Run a plan; outcomes maps (resource, op) -> outcome or list of outcomes (one per call)."""
    seen = []
    for _ in range(100):
        step = plan.next_step()
        if step is None:
            return seen
        seen.append((step.resource, step.op))
        o = outcomes.get((step.resource, step.op), "stopped" if step.op in ("probe", "status") else "ok")
        if isinstance(o, list):
            o = o.pop(0) if len(o) > 1 else o[0]
        plan.record(step, o)
    raise AssertionError("plan did not finish")


def test_start_in_order_probing_first():
    plan = chain.ChainPlan("start", IDS)
    steps = drive(plan, {})
    assert steps == [("fs", "probe"), ("fs", "start"), ("vip", "probe"), ("vip", "start"), ("svc", "probe"), ("svc", "start")]
    assert plan.result.ok and plan.result.outcome == "started" and plan.result.owned == list(IDS)


def test_parallel_probe_then_start_in_order():
    plan = chain.ChainPlan("start", IDS, parallel_probe=True)
    seen = []
    while (step := plan.next_step()) is not None:
        seen.append((step.resource, step.op))
        if step.op == "probe-all":
            plan.record(step, {"fs": "running", "vip": "running", "svc": "failed"})
        else:
            plan.record(step, "ok")
    assert seen == [("fs,vip,svc", "probe-all"), ("svc", "start")]
    assert plan.result.owned == list(IDS)


def test_parallel_probe_restarts_what_runs_over_a_stopped_dependency():
    # nfsd left running on a node whose filesystem is not mounted: not trusted, restarted
    plan = chain.ChainPlan("start", IDS, parallel_probe=True)
    seen = []
    while (step := plan.next_step()) is not None:
        seen.append((step.resource, step.op))
        if step.op == "probe-all":
            plan.record(step, {"fs": "stopped", "vip": "running", "svc": "running"})
        else:
            plan.record(step, "ok")
    assert seen == [("fs,vip,svc", "probe-all"), ("fs", "start"), ("vip", "stop"), ("vip", "start"),
                    ("svc", "stop"), ("svc", "start")]
    assert plan.result.owned == list(IDS)


def test_start_skips_what_already_runs():
    plan = chain.ChainPlan("start", IDS)
    steps = drive(plan, {("fs", "probe"): "running", ("vip", "probe"): "running"})
    assert ("fs", "start") not in steps and ("vip", "start") not in steps
    assert plan.result.owned == list(IDS)


def test_start_restarts_what_runs_after_a_started_resource():
    plan = chain.ChainPlan("start", IDS)
    steps = drive(plan, {("vip", "probe"): "running"})  # fs was stopped and got started
    assert steps[steps.index(("fs", "start")):] == [("fs", "start"), ("vip", "probe"), ("vip", "stop"),
                                                   ("vip", "start"), ("svc", "probe"), ("svc", "start")]
    assert plan.result.owned == list(IDS)


def test_start_failure_rolls_back_in_reverse():
    plan = chain.ChainPlan("start", IDS)
    steps = drive(plan, {("svc", "start"): "failed"})
    assert steps[-3:] == [("svc", "stop"), ("vip", "stop"), ("fs", "stop")]
    r = plan.result
    assert not r.ok and r.outcome == "start_failed" and r.failed_resource == "svc" and r.owned == []


def test_start_failure_with_a_failing_rollback_is_a_stop_failure():
    plan = chain.ChainPlan("start", IDS, stop_retries=1)
    steps = drive(plan, {("vip", "start"): "failed", ("fs", "stop"): "failed", ("fs", "status"): "running"})
    assert steps.count(("fs", "stop")) == 2 and ("", "wait") in steps
    r = plan.result
    assert r.outcome == "stop_failed" and r.failed_resource == "fs" and r.owned == ["fs"]


def test_stop_in_reverse():
    plan = chain.ChainPlan("stop", IDS, owned=list(IDS))
    assert drive(plan, {}) == [("svc", "stop"), ("vip", "stop"), ("fs", "stop")]
    assert plan.result.ok and plan.result.owned == []


def test_stop_failure_retries_then_escalates_and_stops_there():
    plan = chain.ChainPlan("stop", IDS, owned=list(IDS), stop_retries=2)
    steps = drive(plan, {("vip", "stop"): "failed", ("vip", "status"): "running"})
    assert steps == [("svc", "stop"), ("vip", "stop"), ("", "wait"), ("vip", "stop"), ("", "wait"), ("vip", "stop"), ("vip", "status")]
    r = plan.result
    assert r.outcome == "stop_failed" and r.failed_resource == "vip" and r.owned == ["fs", "vip"]


def test_stop_that_fails_but_leaves_nothing_running_is_fine():
    plan = chain.ChainPlan("stop", IDS, owned=list(IDS), stop_retries=0)
    drive(plan, {("vip", "stop"): "failed", ("vip", "status"): "stopped"})
    assert plan.result.ok and plan.result.owned == []


def test_stop_retry_that_succeeds():
    plan = chain.ChainPlan("stop", IDS, owned=list(IDS), stop_retries=2)
    drive(plan, {("fs", "stop"): ["failed", "ok"]})
    assert plan.result.ok


def test_restart_from_a_resource_restarts_the_tail():
    plan = chain.ChainPlan("restart", IDS, owned=list(IDS), from_index=1)
    steps = drive(plan, {})
    assert steps == [("svc", "stop"), ("vip", "stop"), ("vip", "probe"), ("vip", "start"), ("svc", "probe"), ("svc", "start")]
    assert plan.result.ok and plan.result.owned == list(IDS)


def test_monitor():
    plan = chain.ChainPlan("monitor", IDS, owned=list(IDS), from_index=1)
    assert drive(plan, {("vip", "monitor"): "stopped"}) == [("vip", "monitor")]
    assert plan.result.outcome == "monitor_failed" and plan.result.failed_resource == "vip"


# ------------------------------------------------------------------ commands


def test_ocf_command_and_environment():
    r = model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10", "cidr_netmask": "24"}, start_timeout=5)
    (cmd,) = operations.commands(r, "start")
    assert cmd.argv == ("/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start")
    env = dict(cmd.env)
    assert env["OCF_ROOT"] == "/usr/lib/ocf" and env["OCF_RESKEY_ip"] == "10.0.0.10"
    assert env["OCF_RESOURCE_INSTANCE"] == "vip" and env["OCF_RESKEY_CRM_meta_timeout"] == "5000"
    assert cmd.timeout == 5
    assert operations.commands(r, "status")[0].argv[-1] == "monitor"
    assert chain.classify_status(r, 0, "") == "running"
    assert chain.classify_status(r, 7, "") == "stopped"
    assert chain.classify_status(r, 1, "") == "failed"


def test_heartbeat_script_lookup_resource_d_then_init_d():
    r = model.Resource("fs", "heartbeat", "Filesystem", args=("/dev/sdb1", "/srv", "ext4"))
    (cmd,) = operations.commands(r, "start", exists=lambda p: p == "/etc/ha.d/resource.d/Filesystem")
    assert cmd.argv == ("/etc/ha.d/resource.d/Filesystem", "/dev/sdb1", "/srv", "ext4", "start")
    (cmd,) = operations.commands(r, "stop", exists=lambda p: False)
    assert cmd.argv == ("/etc/init.d/Filesystem", "/dev/sdb1", "/srv", "ext4", "stop")
    assert chain.classify_status(r, 0, "Filesystem is running") == "running"
    assert chain.classify_status(r, 0, "OK") == "running"
    assert chain.classify_status(r, 0, "Filesystem is stopped") == "stopped"
    assert chain.classify_status(r, 0, "not running") == "stopped"


def test_lsb_systemd_and_service_kinds():
    lsb = model.Resource("x", "lsb", "nfs-kernel-server")
    assert operations.commands(lsb, "status")[0].argv == ("/etc/init.d/nfs-kernel-server", "status")
    assert chain.classify_status(lsb, 3, "") == "stopped"
    unit = model.Resource("u", "systemd", "nginx.service")
    assert operations.commands(unit, "start")[0].argv == ("systemctl", "start", "nginx.service")
    assert operations.commands(unit, "status")[0].argv == ("systemctl", "is-active", "nginx.service")  # no --quiet: the state word counts
    prof = model.Profile("deb", "systemd", {"nfsserver": ("nfs-server", "rpc-statd")}, {})
    svc = model.Resource("nfs", "service", "nfsserver")
    assert [c.argv for c in operations.commands(svc, "start", profile=prof)] == [("systemctl", "start", "nfs-server"), ("systemctl", "start", "rpc-statd")]
    stop = [c.argv for c in operations.commands(svc, "stop", profile=prof)]
    assert stop[:2] == [("systemctl", "stop", "rpc-statd"), ("systemctl", "stop", "nfs-server")]
    assert stop[2][-1] == "nfsd-down"  # and the kernel's nfsd is down (test_operations_nfsd_down.py)
    sysv = model.Profile("sles9", "sysv", {"nfsserver": ("nfsserver",)}, {})
    assert operations.commands(svc, "start", profile=sysv)[0].argv == ("/etc/init.d/nfsserver", "start")


def test_vip_fast_path_commands():
    r = model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"})
    add, arp = chain.vip_fast_path(r)
    assert add == ("ip", "-4", "addr", "add", "10.0.0.10/24", "brd", "+", "dev", "eth0")
    assert arp[0] == chain.SEND_ARP and arp[-5:] == ("eth0", "10.0.0.10", "auto", "not_used", "not_used")
    # without nic/netmask the agent must find them itself: no fast path
    assert chain.vip_fast_path(model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10"})) is None
    assert chain.vip_fast_path(model.Resource("fs", "ocf", "heartbeat:Filesystem", params={"ip": "x", "nic": "e", "cidr_netmask": "8"})) is None


# ------------------------------------------------------------------ issue 12 item 3


def test_only_a_definite_inactive_is_stopped():
    """Before: every non-zero exit of a systemd/service status was "stopped" -- a timeout
    (124), a bus error (1), a unit stuck deactivating -- so a failed stop ended "ok,
    stopped" and the peer started with no fence."""
    unit = model.Resource("u", "systemd", "nginx.service")
    assert chain.classify_status(unit, 0, "active\n") == "running"
    assert chain.classify_status(unit, 3, "inactive\n") == "stopped"
    assert chain.classify_status(unit, 3, "failed\n") == "stopped"  # failed: the unit's processes are gone
    for code, out in ((124, ""), (3, "deactivating\n"), (3, "activating\n"), (1, ""), (4, "unknown\n"), (3, ""), (7, "")):
        assert chain.classify_status(unit, code, out) == "failed", (code, out)
    svc = model.Resource("nfs", "service", "nfsserver")
    assert chain.classify_status(svc, 3, "deactivating\n") == "failed" and chain.classify_status(svc, 124, "") == "failed"
    assert chain.classify_status(svc, 3, "inactive\n") == "stopped"
    assert chain.classify_status(svc, 3, "") == "stopped"  # through its init script: LSB 3
    lsb = model.Resource("x", "lsb", "nfs-kernel-server")
    assert chain.classify_status(lsb, 3, "") == "stopped"
    for code in (1, 2, 4, 7, 124, 127):
        assert chain.classify_status(lsb, code, "") == "failed", code
    hb = model.Resource("fs", "heartbeat", "Filesystem")
    assert chain.classify_status(hb, 124, "") == "failed" and chain.classify_status(hb, 1, "") == "failed"
    assert chain.classify_status(hb, 3, "") == "stopped" and chain.classify_status(hb, 1, "Filesystem is stopped") == "stopped"


def test_a_stop_whose_status_cannot_tell_is_a_failed_stop():
    """The plan after the last failed stop: a status that times out is not a stop."""
    plan = chain.ChainPlan("stop", ("a",), owned=["a"], stop_retries=0)
    step = plan.next_step()
    plan.record(step, "timeout")
    step = plan.next_step()
    assert step.op == "status"
    plan.record(step, chain.classify_status(model.Resource("a", "systemd", "a.service"), 124, ""))
    assert not plan.result.ok and plan.result.outcome == "stop_failed" and plan.result.owned == ["a"]
