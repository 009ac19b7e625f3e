"""One mistake, one error: a typo or a duplicate must not drag phantom errors about the
fields that depend on it, and errors come in the file's line order (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

from hasync import cli, config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "profiles" / "cluster" / "example.toml").read_text()



def edited(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_mistyped_keepalive_is_one_error_not_three():
    text = edited('keepalive = "500ms"', 'keepalve = "500ms"')
    _, report = config.check_text(text, "c.toml")
    assert report.errors == [f"c.toml:{line_of(text, 'keepalve')}: heartbeat.keepalve: unknown key; did you mean 'keepalive'?"]


def test_a_misspelt_required_key_is_not_also_missing():
    text = edited('agent = "heartbeat:IPaddr2"', 'agnet = "heartbeat:IPaddr2"')
    _, report = config.check_text(text, "c.toml")
    assert report.errors == [f"c.toml:{line_of(text, 'agnet')}: resource[5].agnet: unknown key; did you mean 'agent'?"]


def test_a_duplicate_node_name_is_one_error_not_four():
    text = edited('name = "node2"', 'name = "node1"')
    _, report = config.check_text(text, "c.toml")
    assert report.errors == ["c.toml:14: node[1].name: duplicate node name 'node1': node names must be unique"]


def test_a_mistyped_section_does_not_compare_its_defaults():
    """[storge] is one unknown key; its defaults are not then held against the chain."""
    text = edited("[storage]", "[storge]")
    _, report = config.check_text(text, "c.toml")
    assert len(report.errors) == 1 and "storge: unknown key; did you mean 'storage'?" in report.errors[0]


def test_an_fsid_string_is_one_error_and_no_contradicting_warning():
    text = edited("fsid = 1", 'fsid = "1"')
    _, report = config.check_text(text, "c.toml")
    assert report.errors == [f"c.toml:{line_of(text, 'fsid = ')}: nfs.export[0].fsid: expected an integer, got a string '1'"]
    assert not [w for w in report.warnings if "fsid" in w]


def test_errors_are_printed_in_line_order(capsys, tmp_path):
    text = edited('deadtime = "5s"', 'deadtime = "300ms"')  # deadtime <= 2 x keepalive; warntime >= deadtime
    text = edited('kind = "serial"', 'kind = "smoke"', text)
    text = edited('name = "nfs-ha"', "name = 5", text)
    f = tmp_path / "c.toml"
    f.write_text(text)
    assert cli.main(["check", str(f)]) == 2
    lines = [int(m) for m in re.findall(rf"^error: {re.escape(str(f))}:(\d+):", capsys.readouterr().err, re.M)]
    assert len(lines) == 4 and lines == sorted(lines)
