"""`hasync lab ...` argument handling (no root, no lab needed)."""

from __future__ import annotations

import json
import sys
import types

import pytest

from hasync import cli


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_exec_keeps_the_command_after_double_dash():
    args = parse("lab", "exec", "--name", "x1", "node1", "--", "ssh", "node2", "-v", "hostname")
    assert (args.name, args.node) == ("x1", "node1")
    assert args.argv[-4:] == ["ssh", "node2", "-v", "hostname"]


def test_up_defaults():
    args = parse("lab", "up")
    assert (args.nodes, args.clients, args.disk_size, args.vm) == (2, 1, "256M", False)


def test_cut_refuses_unknown_links():
    with pytest.raises(SystemExit) as e:
        parse("lab", "cut", "node1", "ethernet")
    assert e.value.code == 2


def test_bench_passes_the_rest_to_the_kind_module(monkeypatch):
    seen = {}
    fake = types.ModuleType("hasync.sync.bench")

    def main(argv):
        seen["argv"] = argv
        return 3

    fake.main = main
    monkeypatch.setitem(sys.modules, "hasync.sync.bench", fake)
    assert cli.main(["lab", "bench", "sync", "--files", "100", "-q"]) == 3
    assert seen["argv"] == ["--files", "100", "-q"]


def test_status_of_a_lab_that_is_not_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HASYNC_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("HASYNC_VM_RUN", str(tmp_path / "vm"))
    assert cli.main(["lab", "status", "--name", "nolab", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {"name": "nolab", "kind": "none", "up": False}


def test_bad_lab_name_is_an_error(capsys):
    assert cli.main(["lab", "status", "--name", "Bad-Name"]) == 1
    assert "bad lab name" in capsys.readouterr().err


def test_vm_labs_are_handed_to_the_vm_module(tmp_path, monkeypatch):
    monkeypatch.setenv("HASYNC_LAB_DIR", str(tmp_path))
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "kind").write_text("vm\n")
    calls = []
    fake = types.ModuleType("hasync.lab.vm")
    fake.cut = lambda args: calls.append(("cut", args.name, args.node, args.link)) or 0
    fake.exec = lambda args: calls.append(("exec", args.argv)) or 5
    monkeypatch.setitem(sys.modules, "hasync.lab.vm", fake)
    assert cli.main(["lab", "cut", "--name", "v1", "node1", "replication"]) == 0
    assert cli.main(["lab", "exec", "--name", "v1", "node2", "--", "true"]) == 5
    assert calls == [("cut", "v1", "node1", "replication"), ("exec", ["true"])]


def test_proc_runner_status_timeout_and_input():
    from hasync.effects.run import ProcRunner

    r = ProcRunner()
    assert r.run(["sh", "-c", "cat; exit 3"], input="hi").stdout == "hi"
    assert r.run(["sh", "-c", "exit 3"]).exit_code == 3
    assert r.run(["sh", "-c", "kill -9 $$"]).exit_code == 137
    slow = r.run(["sh", "-c", "sleep 5 & sleep 5"], timeout=0.2)
    assert slow.exit_code == 124 and "timed out" in slow.stderr
    assert r.run(["no-such-command-here"]).exit_code == 127


@pytest.mark.parametrize(
    "argv",
    [
        ["lab", "up", "--name", "a1", "--nodes", "3", "--clients", "0", "--disk-size", "64M"],
        ["lab", "down", "--name", "a1", "--all", "--force"],
        ["lab", "status", "--name", "a1", "--json"],
        ["lab", "exec", "--name", "a1", "node2", "--", "sh", "-c", "echo -- x"],
        ["lab", "cut", "--name", "a1", "node1", "serial"],
        ["lab", "heal", "--name", "a1"],
        ["lab", "heal", "--name", "a1", "node2"],
        ["lab", "fence", "--name", "a1", "node2"],
        ["lab", "crash", "--name", "a1", "node1"],
    ],
)
def test_host_argv_repeats_the_invocation(argv):
    from hasync.lab.cli import host_argv

    args = parse(*argv)
    again = host_argv(args)
    assert vars(parse(*again)) == vars(args)


def test_held_labs_are_known_by_their_live_holder(tmp_path, monkeypatch):
    import os

    from hasync.lab import Lab
    from hasync.lab.store import all_lab_names

    root = tmp_path / "ns"
    monkeypatch.setenv("HASYNC_VM_RUN", str(tmp_path / "vm"))
    held, loose = Lab("held1", root=str(root)), Lab("loose1", root=str(root))
    held.store.save({"kind": "ns", "spec": {"name": "held1"}, "holder_pid": os.getpid()})
    loose.store.save({"kind": "ns", "spec": {"name": "loose1"}, "holder_pid": 2**22 + 1})
    (tmp_path / "vm" / "vmlab1").mkdir(parents=True)
    (tmp_path / "vm" / "vmlab1" / "lab.json").write_text("{}")
    assert held.holder() == os.getpid()
    assert loose.holder() == 0  # no such process
    assert all_lab_names(str(root)) == ["held1", "loose1"]
    assert all_lab_names(str(root), with_vm=True) == ["held1", "loose1", "vmlab1"]
