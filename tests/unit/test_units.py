"""One copy of each systemd unit: the one bootstrap installs is the one the docs cite,
Type=notify with a watchdog, KillMode=process for the failover daemon, accepted by
systemd-analyze, and its command line is a command the CLI has."""

from __future__ import annotations

import configparser
import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hasync import cli
from hasync.bootstrap.wanted import load_units
from hasync.resources import data_dir

REPO = Path(__file__).resolve().parents[2]
UNITS = data_dir("bootstrap") / "units" / "systemd"
SYSV = data_dir("bootstrap") / "units" / "sysv"


def unit(name: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    p.read_string(load_units("systemd")[name])
    return p


def test_bootstrap_installs_the_only_copy_and_the_docs_cite_it():
    assert set(load_units("systemd")) == {"hasync-failover.service", "hasync-watch.service"}
    copies = [p.relative_to(REPO) for p in REPO.glob("**/hasync-*.service")
              if not any(part.startswith(".") for part in p.relative_to(REPO).parts) and "guest" not in p.parts]
    assert sorted(map(str, copies)) == ["bootstrap/units/systemd/hasync-failover.service",
                                        "bootstrap/units/systemd/hasync-watch.service"]
    assert "bootstrap/units/systemd/hasync-failover.service" in (REPO / "docs" / "failover.md").read_text()
    assert "bootstrap/units/systemd/hasync-watch.service" in (REPO / "docs" / "sync.md").read_text()


def test_failover_unit_is_notify_with_a_watchdog_and_kills_only_the_daemon():
    s = unit("hasync-failover.service")["Service"]
    assert (s["Type"], s["NotifyAccess"], s["KillMode"]) == ("notify", "main", "process")
    assert s["WatchdogSec"] == "10s"
    assert s["LimitRTPRIO"] and s["LimitMEMLOCK"] == "infinity"  # SCHED_FIFO and mlockall
    assert unit("hasync-failover.service")["Unit"]["Documentation"].startswith("man:hasync(8) ")


def test_watch_unit_is_notify_with_a_watchdog():
    s = unit("hasync-watch.service")["Service"]
    assert (s["Type"], s["NotifyAccess"], s["WatchdogSec"]) == ("notify", "main", "30s")
    assert unit("hasync-watch.service")["Unit"]["Documentation"].startswith("man:hasync(8) ")


def _parses(argv: list[str]) -> str:
    """The handler's name the product CLI gives *argv* (hasync ARGS)."""
    verb = cli.BY_NAME[argv[0]]
    args = cli.build_parser(importlib.import_module(verb.module).register).parse_args(argv)
    return args.func.__name__


def test_every_unit_and_init_script_runs_a_command_the_cli_has():
    """The stale `ExecStart=... hasync failover` needed a hidden second parser."""
    commands = []
    for name, text in load_units("systemd").items():
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
        assert exec_start, name
        commands.append(shlex.split(exec_start.group(1)))
    for script in SYSV.iterdir():
        commands += [shlex.split(m) for m in re.findall(r"nohup (hasync [^>]*?) >>", script.read_text())]
    handlers = {}
    for argv in commands:
        argv = argv[argv.index("hasync") + 1:]
        handlers[" ".join(argv)] = _parses(argv)
    assert handlers == {"failover run": "cmd_run", "watch": "cmd_watch"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (systemd)")
@pytest.mark.parametrize("name", ["hasync-failover.service", "hasync-watch.service"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, name):
    path = tmp_path / name
    path.write_text(load_units("systemd")[name])
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60)
    # a setting systemd cannot parse is only a warning ("..., ignoring"): any output fails
    assert (r.returncode, r.stderr.strip(), r.stdout.strip()) == (0, "", "")


def _units_plan(facts: dict) -> list:
    from hasync.bootstrap import plan as P
    from hasync.bootstrap.testing import DataFacts

    from .test_bootstrap_steps import wanted_for

    w = wanted_for({"config": "example", "profile": "debian12", "node": "node1", "first": True})
    s = next(s for s in P.STEPS if s.name == "units")
    return s.plan(w, DataFacts(facts, w.profile.init).get(s.needs(w)))


@pytest.mark.parametrize("pkg_dir", ["/lib/systemd/system", "/usr/lib/systemd/system"])
def test_bootstrap_enables_the_units_the_package_installed_without_shadowing_them(pkg_dir):
    """`make deb`'s package ships the units in /lib/systemd/system: a copy bootstrap wrote
    to /etc/systemd/system would shadow them (and outlive a package upgrade)."""
    shipped = {f"file:{pkg_dir}/{name}": text for name, text in load_units("systemd").items()}
    changes = _units_plan(shipped)
    assert [c.action for c in changes] == ["run", "run"], [c.to_dict() for c in changes]
    assert sorted(c.argv for c in changes) == [("systemctl", "enable", "hasync-failover.service"),
                                               ("systemctl", "enable", "hasync-watch.service")]


def test_bootstrap_writes_its_own_unit_where_the_package_ships_another_text():
    """An older package's unit (or one edited in place) is not the unit this hasync needs:
    bootstrap writes its own to /etc/systemd/system, as without the package."""
    units = load_units("systemd")
    facts = {"file:/lib/systemd/system/hasync-failover.service": units["hasync-failover.service"] + "# old\n",
             "file:/lib/systemd/system/hasync-watch.service": units["hasync-watch.service"]}
    writes = [c.path for c in _units_plan(facts) if c.action == "write"]
    assert writes == ["/etc/systemd/system/hasync-failover.service"]
