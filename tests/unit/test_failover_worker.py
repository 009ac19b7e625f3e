"""The job worker's command sequences, on a recording runner (no processes)."""

from __future__ import annotations

import dataclasses

from hasync import model
from hasync.effects.clock import FakeClock
from hasync.effects.run import RecordingRunner, Result
from hasync.failover.daemon.worker import Worker
from hasync.failover.membership import Job
from hasync.failover.resource_state import Progress

FS = model.Resource("fs", "ocf", "heartbeat:Filesystem", params={"device": "/dev/vdb", "directory": "/srv/ha", "fstype": "ext4"})
VIP = model.Resource("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"})
SVC = model.Resource("svc", "heartbeat", "/etc/ha.d/resource.d/demo", args=("8080",))


def cluster(*resources: model.Resource, **fencing) -> model.Cluster:
    return model.Cluster(
        path="t.toml",
        cluster=model.ClusterInfo(name="t", profile="lab", preferred_node="node1"),
        nodes=(model.Node("node1", "10.0.0.1"), model.Node("node2", "10.0.0.2")),
        heartbeat=model.Heartbeat(),
        sync=model.Sync(),
        storage=model.Storage(),
        nfs=model.Nfs(),
        resources=resources or (FS, VIP, SVC),
        fencing=model.Fencing(**fencing) if fencing else model.Fencing(mode="off"),
    )


def worker(runner, **fencing):
    posts = []
    w = Worker(cluster(**fencing), "node2", runner, posts.append, None, clock=FakeClock(), vip_fast=False)
    w.retry_delay = 0.0
    return w, posts


def ok(argv):
    return Result(argv, 0, "", "")


def test_trusted_start_runs_agents_in_order_at_nice_minus_10_and_probes_only_scripts():
    r = RecordingRunner()
    r.responses[("/etc/ha.d/resource.d/demo", "8080", "status")] = Result((), 3, "stopped", "")
    w, posts = worker(r)
    res = w._run(Job(1, "start", trusted_stopped=True), [])
    assert res.ok and res.owned == ("fs", "vip", "svc")
    assert r.calls == [
        ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "start"),
        ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start"),
        ("/etc/ha.d/resource.d/demo", "8080", "status"),  # a script: probed right before its start
        ("/etc/ha.d/resource.d/demo", "8080", "start"),
    ]
    ops = [(p.resource, p.op, p.outcome) for p in posts if isinstance(p, Progress)]
    assert ops == [("fs", "start", "ok"), ("vip", "start", "ok"), ("svc", "probe", "stopped"), ("svc", "start", "ok")]


def test_start_failure_is_rolled_back_with_the_agents_exit_code_named():
    r = RecordingRunner()
    r.responses[("/etc/ha.d/resource.d/demo", "8080", "status")] = Result((), 3, "stopped", "")
    r.responses[("/etc/ha.d/resource.d/demo", "8080", "start")] = Result((), 1, "", "port in use")
    w, _ = worker(r)
    res = w._run(Job(1, "start", trusted_stopped=True), [])
    assert not res.ok and res.outcome == "start_failed" and res.owned == ()
    assert "svc: start exited 1: port in use" == res.detail
    assert r.calls[-3:] == [
        ("/etc/ha.d/resource.d/demo", "8080", "stop"),
        ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "stop"),
        ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "stop"),
    ]


def test_stop_failure_names_the_ocf_code():
    r = RecordingRunner()
    r.responses[("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "stop")] = Result((), 1, "", "umount: target is busy")
    r.responses[("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "monitor")] = Result((), 0, "", "")
    w, _ = worker(r)
    res = w._run(Job(1, "stop"), ["fs", "vip", "svc"])
    assert res.outcome == "stop_failed" and res.owned == ("fs",)
    assert "ERR_GENERIC" in res.detail and "busy" in res.detail
    fs_stops = [c for c in r.calls if c[-2:] == ("/usr/lib/ocf/resource.d/heartbeat/Filesystem", "stop")]
    assert len(fs_stops) == 3  # first try + 2 retries


def test_fence_command_gets_node_and_address():
    r = RecordingRunner()
    w, _ = worker(r, mode="required", command=("fence_x", "--ip", "{address}", "--node={node}"))
    assert w._run(Job(1, "fence"), []).ok
    assert r.calls == [("fence_x", "--ip", "10.0.0.1", "--node=node1")]
    r.responses[("fence_x", "--ip", "10.0.0.1", "--node=node1")] = Result((), 1, "", "BMC unreachable")
    res = w._run(Job(2, "fence"), [])
    assert not res.ok and "BMC unreachable" in res.detail


def test_start_up_probe_reports_what_runs():
    r = RecordingRunner()
    r.responses[("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "monitor")] = Result((), 7, "", "")
    r.responses[("/etc/ha.d/resource.d/demo", "8080", "status")] = Result((), 3, "stopped", "")
    w, _ = worker(r)
    res = w._run(Job(1, "probe"), [])
    assert res.ok and res.owned == ("vip",)


def test_vip_fast_path_adds_the_address_and_starts_send_arp_in_the_background():
    r = RecordingRunner()
    w, posts = worker(r)
    w.vip_fast = True
    res = w._run(Job(1, "start", trusted_stopped=True), [])
    assert res.ok
    add = ("ip", "-4", "addr", "add", "10.0.0.10/24", "brd", "+", "dev", "eth0")
    i = r.calls.index(add)
    assert r.calls[i + 1][0] == "/usr/libexec/heartbeat/send_arp" and r.spawned == [r.calls[i + 1]]  # not waited for
    assert r.calls[i + 2] == ("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "start")  # the agent checks it
    assert ("vip", "vip-up", "ok") in [(p.resource, p.op, p.outcome) for p in posts if isinstance(p, Progress)]
    # the address could not be added: no send_arp, the agent says what is wrong
    r2 = RecordingRunner({add: Result(add, 2, "", "RTNETLINK answers: File exists")})
    w2, _ = worker(r2)
    w2.vip_fast = True
    w2._run(Job(1, "start", trusted_stopped=True), [])
    assert r2.spawned == []


def test_stop_retries_wait_on_the_injected_clock():
    r = RecordingRunner()
    r.responses[("nice", "-n", "-10", "/usr/lib/ocf/resource.d/heartbeat/Filesystem", "stop")] = Result((), 1, "", "busy")
    w, _ = worker(r)
    w.retry_delay = 0.5
    t0 = w.clock.now()
    w._run(Job(1, "stop"), ["fs"])
    assert w.clock.now() - t0 == 1.0  # two retries, 0.5 s each, no real sleep


def test_self_fence_and_ping():
    r = RecordingRunner()
    w, posts = worker(r, mode="required", command=("fence_x",), self_command=("/sbin/off", "{node}", "{address}"))
    res = w._run(Job(1, "fence-self", reason="fence-self"), [])
    assert r.calls == [("/sbin/off", "node2", "10.0.0.2")] and not res.ok and "`/sbin/off node2 10.0.0.2` exited 0" in res.detail
    w._run(Job(2, "fence-self", reason="reboot"), [])
    assert r.calls[-1] == ("reboot", "-f")


def test_ping_job_uses_the_tiebreak_probe(monkeypatch):
    from hasync.effects import net

    asked = []
    monkeypatch.setattr(net, "ping_any", lambda addrs, wait_s=1: asked.append(tuple(addrs)) or False)
    c = dataclasses.replace(cluster(), heartbeat=model.Heartbeat(ping=("10.0.0.254",)))
    posts = []
    w = Worker(c, "node2", RecordingRunner(), posts.append, None, clock=FakeClock(), vip_fast=False)
    res = w._run(Job(3, "ping"), [])
    assert not res.ok and res.detail == "none of 10.0.0.254 answers" and asked == [("10.0.0.254",)]
    assert [(p.op, p.outcome) for p in posts] == [("ping", "failed")]


def test_a_bug_in_a_job_is_a_failed_result_not_a_dead_worker():
    r = RecordingRunner()
    w, posts = worker(r)
    w.resources = {}  # every chain step now raises KeyError
    w.start()
    w.submit(Job(7, "start"), [])
    w.submit(Job(8, "fence"), [])
    w.stop()
    w.thread.join(5)
    results = [p for p in posts if not isinstance(p, Progress)]
    assert [x.job_id for x in results] == [7, 8]
    assert results[0].outcome == "error" and "internal error" in results[0].detail


def test_a_systemd_stop_that_hangs_is_a_failed_stop_not_stopped():
    """Issue 12 item 3, the whole job: the unit hangs in deactivating (its stop times out,
    its status too). Before: the status's exit 124 counted as stopped, the job ended
    "ok, stopped" and the peer would start with no fence."""
    unit = model.Resource("u", "systemd", "nginx.service")

    class Hanging(RecordingRunner):
        def run(self, argv, **kw):
            self.calls.append(tuple(argv))
            return Result(tuple(argv), 124 if argv[:2] == ("systemctl", "stop") or "is-active" in argv else 0, "", "")

    w, _ = worker(Hanging())
    w.resources = {"u": unit}
    w.ids = ("u",)
    w.cluster = dataclasses.replace(w.cluster, resources=(unit,))
    res = w._run(Job(1, "stop"), ["u"])
    assert not res.ok and res.outcome == "stop_failed" and res.owned == ("u",)


def test_a_service_of_several_units_is_stopped_only_when_every_unit_is():
    prof = model.Profile("deb", "systemd", {"nfsserver": ("nfs-server", "rpc-statd")}, {})
    svc = model.Resource("nfs", "service", "nfsserver")
    answers = {"nfs-server": (3, "inactive\n"), "rpc-statd": (0, "active\n")}
    r = RecordingRunner()
    for unit, (code, out) in answers.items():
        r.responses[("systemctl", "is-active", unit)] = Result((), code, out, "")
    w, _ = worker(r)
    w.profile = prof
    assert w._op(svc, "status")[0] == "failed"  # partly running: neither stopped nor running
    answers["rpc-statd"] = (3, "inactive\n")
    r.responses[("systemctl", "is-active", "rpc-statd")] = Result((), 3, "inactive\n", "")
    assert w._op(svc, "status")[0] == "stopped"


def test_the_agents_state_directory_is_made_before_the_first_job(tmp_path):
    # resource-agents' HA_RSCTMP: systemd-tmpfiles makes it at boot, nothing does without
    # systemd; exportfs and portblock then cannot record that they run (their monitor says
    # stopped, their stop does nothing: exportfs neither unexports nor releases the NFS
    # locks). The VM tier under busybox init: the fs could not be unmounted at migrate.
    rsctmp = tmp_path / "resource-agents"
    w = Worker(cluster(FS, SVC), "node2", RecordingRunner(), [].append, None, clock=FakeClock(), rsctmp=str(rsctmp))
    w.start()
    w.stop()
    w.thread.join(5)
    assert rsctmp.is_dir() and rsctmp.stat().st_mode & 0o7777 == 0o1755
    nothing_ocf = tmp_path / "none"
    w = Worker(cluster(SVC), "node2", RecordingRunner(), [].append, None, clock=FakeClock(), rsctmp=str(nothing_ocf))
    w.start()
    w.stop()
    w.thread.join(5)
    assert not nothing_ocf.exists()  # no OCF agent in the chain: nothing made
