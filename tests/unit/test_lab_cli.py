"""`hasync lab ...` argument handling (no root, no lab needed)."""

from __future__ import annotations

import json

import pytest

import hasync_lab.demo
from hasync import cli
from hasync_lab import cli as lab_cli
from hasync_lab import lab_verbs
from hasync_lab.bench import sync as bench_sync
from hasync_lab.vm import verbs as vm_verbs


def parse(*argv: str):
    """`hasync lab ARGS` as the harness parses it (argv starts with "lab")."""
    assert argv[0] == "lab"
    args = lab_cli.parse_args(list(argv[1:]))
    assert args is not None
    del args.load  # the lazy loader: the same function every time
    return args


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

    def main(argv):
        seen["argv"] = argv
        return 3

    monkeypatch.setattr(bench_sync, "main", main)
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
    monkeypatch.setattr(vm_verbs, "cut", lambda args: calls.append(("cut", args.name, args.node, args.link)) or 0)
    monkeypatch.setattr(vm_verbs, "exec", lambda args: calls.append(("exec", args.argv)) or 5)
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
    args = parse(*argv)
    again = lab_verbs.host_argv(args)
    assert vars(parse(*again)) == vars(args)


def test_held_labs_are_known_by_their_live_holder(tmp_path, monkeypatch):
    import os

    from hasync_lab.ns import Lab
    from hasync_lab.ns.store import all_lab_names

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


def test_the_product_hands_lab_argv_to_the_harness_untouched(monkeypatch):
    """`hasync lab ...` reaches hasync_lab.cli.main through the hasync.verbs entry point,
    with --help, "--" and the options of the verbs passed as typed."""
    seen = []
    monkeypatch.setattr(lab_cli, "main", lambda argv: seen.append(argv) or 7)
    for argv in (["--help"], [], ["exec", "--name", "x1", "node1", "--", "ls", "-l"],
                 ["bench", "failover", "--vm", "--json"]):
        assert cli.main(["lab", *argv]) == 7
        assert seen.pop() == argv


def test_lab_help_is_the_harness_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["lab", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hasync lab [-h] VERB ...")
    assert "A virtual two-node cluster on this machine" in out


def _no_entry_point(verb, path):
    raise LookupError(verb)


def _sh_missing(value):
    raise ModuleNotFoundError("No module named 'sh'")


@pytest.mark.parametrize("where", ["no entry point", "extra missing"])
def test_lab_without_the_harness_says_how_to_install_it(monkeypatch, capsys, where):
    from hasync.cli import plugin

    if where == "no entry point":
        monkeypatch.setattr(plugin, "entry_point", _no_entry_point)
    else:
        monkeypatch.setattr(plugin, "load", _sh_missing)
    assert cli.main(["lab", "up"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasync lab: the lab harness is not installed")
    assert "pip install 'hasync[lab]'" in lines[0] and "make setup" in lines[0]


def test_demo_verb_runs_the_demo(monkeypatch):
    seen = []
    monkeypatch.setattr(hasync_lab.demo, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["lab", "demo"]) == 0
    assert cli.main(["lab", "demo", "--vm"]) == 0
    assert seen == [[], ["--vm"]]


def test_the_campaign_is_a_lab_verb(capsys):
    assert cli.main(["lab", "campaign", "--list-mutants"]) == 0
    assert "partial-chain" in capsys.readouterr().out


def test_a_lab_verb_loads_only_its_own_module():
    """`hasync lab fence` from inside a node runs two such processes: each loaded every
    benchmark, demo, the VM lab and the campaign before (0.1-0.35 s each)."""
    import subprocess
    import sys

    code = ("import sys\nfrom hasync.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, "lab", "fence", "--help"], capture_output=True, text=True,
                         check=True).stdout
    mods = set(out.splitlines()[-1].split())
    assert "hasync_lab.lab_verbs" in mods
    for heavy in ("hasync_lab.bench", "hasync_lab.demo", "hasync_lab.vm", "hasync_lab.campaign", "hasync.config"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in mods), heavy
