"""The vm tier of the fault campaign without a VM: its fault draw, its config, the
guest scripts' shape, and the ground-truth parsers and audits on made-up evidence."""

from __future__ import annotations

import tomllib

import pytest

from hasync_lab.campaign import cli
from hasync_lab.campaign.ns.faults import _DRAW
from hasync_lab.campaign.vm import audits as A
from hasync_lab.campaign.vm import prep
from hasync_lab.campaign.vm.faults import KINDS, SKIPPED, draw_faults
from hasync_lab.campaign.vm.inject import Injector
from hasync_lab.campaign.vm.truth import Sampler, arp_macs, parse_sample
from hasync_lab.vm.seed import FENCE_COMMAND

NODES = ("node1", "node2")


def test_the_draw_is_seeded_covers_every_kind_and_only_steps_the_vm_injector_does():
    a, b = draw_faults(5, 40), draw_faults(5, 40)
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]
    assert [f.to_dict() for f in draw_faults(6, 40)] != [f.to_dict() for f in a]
    assert set(KINDS) <= {f.kind for f in draw_faults(5, len(KINDS))}
    ops = {s[1] for seed in range(30) for f in draw_faults(seed, 40) for s in f.steps}
    assert all(hasattr(Injector, f"op_{op}") for op in ops), sorted(op for op in ops if not hasattr(Injector, f"op_{op}"))
    rids = {s[2]["rid"] for seed in range(30) for f in draw_faults(seed, 40) for s in f.steps if "rid" in s[2]}
    assert rids and rids <= set(prep.chain_agents()), rids


def test_every_kind_is_drawn_by_the_ns_tier_or_named_as_skipped():
    assert set(KINDS) <= set(_DRAW)
    assert not set(KINDS) & set(SKIPPED)
    assert set(KINDS) | set(SKIPPED) == set(_DRAW)


def test_the_campaign_config_only_wraps_the_fence_command():
    doc = tomllib.loads(prep.campaign_toml())
    assert doc["fencing"]["command"][0] == prep.FENCE
    assert doc["fencing"]["command"][1:] == list(FENCE_COMMAND)
    assert [r["id"] for r in doc["resource"]][:1] == list(prep.chain_agents())[:1]


def test_one_wrapper_per_agent_and_the_unit_loop_logs_every_exit():
    script = prep.install_script()
    paths = set(prep.chain_agents().values())
    assert script.count("campaign-real") >= len(paths)
    assert "OCF_RESOURCE_INSTANCE" in prep.wrapper_script("nfs-block", "/x/.portblock.campaign-real")
    assert prep.EXITS_LOG in prep.UNIT_SCRIPT and prep.DOWN_FLAG in prep.UNIT_SCRIPT


def test_a_sample_is_parsed_into_the_pieces_the_node_runs():
    s = parse_sample("ro:Primary/Secondary cs:Connected ds:UpToDate/UpToDate\nvg\nfs\nvip\nnfs\nrole=active\npid=412 S\n")
    assert s["pieces"] == {"drbd", "vg", "fs", "vip", "nfs"} and s["role"] == "active" and s["pid"] == 412 and s["pstate"] == "S"
    s = parse_sample("ro:Secondary/Primary cs:Connected ds:UpToDate/UpToDate\nrole=standby\npid=9 T\n")
    assert s["pieces"] == set() and s["pstate"] == "T"
    assert parse_sample("  \nrole=\n")["pieces"] == set()


def test_arp_replies_name_their_macs():
    text = ("ARPING 192.0.2.10 from 192.0.2.21 eth0\nUnicast reply from 192.0.2.10 [52:54:00:AA:00:01] 1.2ms\n"
            "Unicast reply from 192.0.2.10 [52:54:00:aa:00:02] 1.9ms\nSent 1 probe(s)\n")
    assert arp_macs(text) == {"52:54:00:aa:00:01", "52:54:00:aa:00:02"}


def _sampler():
    return Sampler(None, NODES, "client1", lambda *a: None)


def test_a_piece_on_both_nodes_counts_only_when_two_samples_in_a_row_see_it():
    s = _sampler()
    on = lambda a, b: {"node1": {"pieces": set(a)}, "node2": {"pieces": set(b)}}  # noqa: E731
    s.observe(on({"vip"}, set()), 0, 0.1)
    s.observe(on({"vip"}, {"vip"}), 1, 1.1)  # a handover caught mid-way: not proof
    s.observe(on(set(), {"vip"}), 2, 2.1)
    assert s.overlaps == []
    s.observe(on({"fs"}, {"fs"}), 3, 3.1)
    s.observe(on({"fs"}, {"fs"}), 4, 4.1)
    s.observe(on(set(), {"fs"}), 5, 5.1)
    assert [(o.what, o.t0, o.t1) for o in s.overlaps] == [("fs", 4, 5)]
    s.observe({"node1": {"pieces": {"drbd"}, "ro": "Primary/Primary"}, "node2": {"pieces": set()}}, 6, 6.1)
    assert s.overlaps[-1].what == "drbd"  # DRBD itself says both are primary: proof at once


def test_exits_the_campaign_did_not_cause_are_deaths():
    text = "1.0 100 137\n2.0 101 0\n3.0 102 134\nnoise\n"
    hits = A.exit_hits(text, "node1", {("node1", 100), ("node1", 101)}, 4)
    assert [(h.evidence["pid"], h.evidence["signal"]) for h in hits] == [(102, 6)]
    assert all(h.audit == "daemon-died" and h.fault_index == 4 for h in hits)


def test_backing_disks_must_agree():
    assert A.data_hits({"node1": "a", "node2": "a"}, 0, {}) == []
    assert [h.audit for h in A.data_hits({"node1": "a", "node2": "b"}, 0, {})] == ["drbd-data"]
    assert A.data_hits({"node1": "a"}, 0, {})  # a node that could not be read is no agreement


def test_the_record_checker_names_a_lost_acknowledged_record(tmp_path):
    import hashlib
    import subprocess
    import sys

    def rec(i):
        body = f"{i:08d} {'x' * 32}"
        return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}\n"

    p = tmp_path / "stream"
    p.write_text("".join(rec(i) for i in (1, 2, 4, 5)) + "00000006 torn")
    out = subprocess.run([sys.executable, "-c", A.CHECK_RECORDS, str(p), "5"], capture_output=True, text=True).stdout.split()
    assert out == ["1", "1", "3"]


@pytest.mark.parametrize("argv", [["--tier", "vm", "--seeds", "2"], ["--tier", "vm", "--kinds", "fence-lie"],
                                  ["--tier", "vm", "--faults", "0"]])
def test_the_cli_refuses_what_the_vm_tier_cannot_do(argv, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err


def test_the_record_checker_checks_several_streams_in_one_run(tmp_path):
    import hashlib
    import subprocess
    import sys

    def rec(i):
        body = f"{i:08d} {'y' * 16}"
        return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}\n"

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("".join(rec(i) for i in (1, 2, 3)))
    b.write_text("".join(rec(i) for i in (1, 3)))
    out = subprocess.run([sys.executable, "-c", A.CHECK_RECORDS, str(a), "3", str(tmp_path / "gone"), "1", str(b), "3"],
                         capture_output=True, text=True).stdout.splitlines()
    assert [ln.split()[:3] for ln in out] == [["0", "0"], ["-1", "0", "[Errno"], ["1", "0", "2"]]


class _Lab:
    """Runs a guest's shell command on this machine (the lab's exec, without a VM)."""

    def __init__(self):
        self.calls = 0

    def exec(self, node, argv, **kw):
        import subprocess

        self.calls += 1
        return subprocess.run(list(argv), capture_output=True, text=True)


def test_the_clients_acknowledged_records_are_read_in_one_command(tmp_path):
    (tmp_path / "v3.ack").write_text("1 10.0\n2 10.5\n")
    lab = _Lab()
    writers = {"v3": {"ack": str(tmp_path / "v3.ack")}, "v4.2": {"ack": str(tmp_path / "none.ack")}}
    assert A.acked_counts(lab, "client1", writers) == {"v3": 2, "v4.2": 0}
    assert lab.calls == 1


def test_a_faults_time_is_split_into_its_phases():
    from hasync_lab.campaign.vm.runner import fault_phases

    assert fault_phases(1.0, 100.0, 130.0, 131.5, 150.0, 170.0, 175.0) == {
        "gap": 1.0, "steps": 30.0, "heal": 1.5, "to_clean": 18.5, "confirm": 20.0, "audits": 5.0}
    assert fault_phases(0.5, 0.0, 10.0, 10.0, None, 315.0, 320.0)["to_clean"] == 305.0


def test_the_daemon_status_probe_reads_one_answer_off_the_control_socket(tmp_path):
    import json
    import socket
    import subprocess
    import sys
    import threading

    path = str(tmp_path / "failover.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    asked = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            asked.append(conn.recv(1024))
            doc = json.dumps({"role": "active", "peer": {"state": "up", "role": "standby"}, "pad": "x" * 100000})
            conn.sendall(doc.encode()[:50000])
            conn.sendall(doc.encode()[50000:] + b"\n")

    t = threading.Thread(target=serve)
    t.start()
    out = subprocess.run([sys.executable, "-S", "-c", prep.DAEMON_STATUS_PY, path], capture_output=True, text=True,
                         timeout=30).stdout
    t.join(5)
    srv.close()
    assert json.loads(asked[0]) == {"cmd": "status"}
    assert json.loads(out)["peer"] == {"state": "up", "role": "standby"}


class _SlowGuests:
    """A VM lab whose guests answer a daemon status after 0.6 s each (a busy TCG guest)
    and whose client has acknowledged a record more than before on every stream."""

    nodes = ["node1", "node2"]

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def exec(self, node, argv, **kw):
        import json
        import time
        from types import SimpleNamespace

        self.calls.append((node, tuple(argv)))
        if node == "client1":
            return SimpleNamespace(stdout="7 1.0 x\n7 1.0 x\n", ok=True)
        time.sleep(0.6)
        peer = "standby" if node == "node1" else "active"
        return SimpleNamespace(stdout=json.dumps({"role": "x", "peer": {"state": "up", "role": peer}}), ok=True)


def test_the_settle_check_asks_both_daemons_at_once(tmp_path):
    import time
    from types import SimpleNamespace

    from hasync_lab.campaign.vm.runner import Run

    lab = _SlowGuests()
    run = Run(lab, 1, [], tmp_path)
    run.writers = {"v3": {"ack": "/var/tmp/wv3.ack"}, "v4.2": {"ack": "/var/tmp/wv42.ack"}}
    run.sampler = SimpleNamespace(arp_answer=lambda: ["node1"])
    t0 = time.monotonic()
    assert run.settled("node1", {"v3": 6, "v4.2": 6}) == ""
    assert time.monotonic() - t0 < 1.0  # one status wait, not one per node
    assert not any(argv[:2] == ("hasync", "status") for _, argv in lab.calls)  # the CLI: 10-60 s under TCG
