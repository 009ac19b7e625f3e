"""`hasync export pacemaker`: stdout or files, each written whole; exit 2 and nothing
written when anything has no equivalent or an agent parameter is wrong."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from hasync import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "profiles" / "cluster" / "example.toml"


def main(*argv: str) -> int:
    return cli.main(["-c", str(EXAMPLE), "export", "pacemaker", *argv])


@pytest.mark.parametrize("fmt, start", [("cib", '<?xml version="1.0"?>'), ("crm", "# Pacemaker configuration"),
                                        ("pcs", "#!/bin/sh"), ("corosync", "# corosync.conf")])
def test_each_form_on_stdout(fmt, start, capsys):
    assert main("--format", fmt) == 0
    out = capsys.readouterr()
    assert out.out.startswith(start)
    assert "warning" in out.err  # the warnings go to stderr, not into the document


def test_out_writes_the_form_and_corosync_conf_with_safe_modes(tmp_path, capsys):
    assert main("--out", str(tmp_path / "pcmk")) == 0
    files = sorted(p.name for p in (tmp_path / "pcmk").iterdir())
    assert files == ["cib.xml", "corosync.conf"]
    assert stat.S_IMODE((tmp_path / "pcmk" / "cib.xml").stat().st_mode) == 0o600  # may carry a fence password
    assert stat.S_IMODE((tmp_path / "pcmk" / "corosync.conf").stat().st_mode) == 0o644
    assert "wrote" in capsys.readouterr().err


def test_json_carries_documents_and_warnings(capsys):
    assert main("--json", "--format", "crm") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and set(doc["documents"]) == {"cib.crm", "corosync.conf"}
    assert doc["token_ms"] == 2200  # the example's deadtime 5 s / 2.2 (Corosync: token + consensus = 2.2 x token)
    assert any("serial" in w for w in doc["warnings"])


def write_config(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    f = tmp_path / "cluster.toml"
    f.write_text(text.replace(old, new))
    return f


def test_no_equivalent_exits_2_naming_the_resource_and_leaves_existing_files_alone(tmp_path, capsys):
    f = tmp_path / "cluster.toml"
    f.write_text(EXAMPLE.read_text() + '\n[[resource]]\nid = "beep"\ntype = "heartbeat"\nagent = "AudibleAlarm"\n')
    out = tmp_path / "pcmk"
    out.mkdir()
    (out / "cib.xml").write_text("the old one")
    assert cli.main(["-c", str(f), "export", "pacemaker", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "resource 'beep' (heartbeat AudibleAlarm): no Pacemaker equivalent" in err and "nothing written" in err
    assert (out / "cib.xml").read_text() == "the old one" and not (out / "corosync.conf").exists()


def test_corosync_alone_does_not_depend_on_the_chain(tmp_path, capsys):
    f = tmp_path / "cluster.toml"
    f.write_text(EXAMPLE.read_text() + '\n[[resource]]\nid = "beep"\ntype = "heartbeat"\nagent = "AudibleAlarm"\n')
    assert cli.main(["-c", str(f), "export", "pacemaker", "--format", "corosync", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["corosync.conf"]
    assert "AudibleAlarm" not in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("crm_resource") is None, reason="needs pacemaker-cli-utils (apt-packages.txt)")
def test_a_misspelt_ocf_parameter_is_caught_by_the_metadata_check(tmp_path, capsys):
    f = write_config(tmp_path, 'cidr_netmask = "24"', 'cidr_mask = "24"')
    assert cli.main(["-c", str(f), "export", "pacemaker", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    line = f.read_text().splitlines().index('id = "vip"')  # the [[resource]] line above it, 1-based
    assert doc == {"ok": False, "errors": [f"{f}:{line}: resource 'vip' (ocf:heartbeat:IPaddr2): unknown parameter 'cidr_mask'; did you mean 'cidr_netmask'?"]}


def test_a_config_error_is_exit_2_like_every_other_command(tmp_path, capsys):
    f = write_config(tmp_path, 'deadtime = "5s"', 'deadtime = 5')
    line = next(i for i, t in enumerate(f.read_text().splitlines(), 1) if t.startswith("deadtime = 5"))
    assert cli.main(["-c", str(f), "export", "pacemaker"]) == 2  # main returns it: no SystemExit from a library
    assert capsys.readouterr().err.startswith(f"error: {f}:{line}: heartbeat.deadtime: expected a duration")


def test_export_without_a_stack_prints_help(capsys):
    assert cli.main(["export"]) == 2
    assert "pacemaker" in capsys.readouterr().out
