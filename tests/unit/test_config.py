"""The cluster config: parsing, file:line errors, heartbeat's timing rules, haresources import."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hasync import cli, config
from hasync.config import ConfigError, LineIndex, parse_duration, parse_haresources
from hasync.config.heartbeat import HaGroup, parse_ha_cf
from hasync.config.importer import draft
from hasync.config.toml_writer import render

DATA = Path(__file__).parent / "data" / "config"
REPO = Path(__file__).resolve().parents[2]
BAD = sorted((DATA / "bad").glob("*.toml"))


def expected(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            return line[len("# expect: "):]
    raise AssertionError(f"{path} has no '# expect:' line")


def test_corpus_is_large_enough():
    assert len(BAD) >= 15


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_broken_config_names_file_line_and_key(path, capsys):
    rc = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    # rich may wrap long lines: compare with whitespace folded
    flat = " ".join(err.split())
    assert " ".join((str(path) + expected(path)).split()) in flat


@pytest.mark.parametrize("path", BAD[:3], ids=[p.stem for p in BAD[:3]])
def test_broken_config_json(path, capsys):
    rc = cli.main(["check", "--json", str(path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["valid"] is False
    assert any(expected(path) in e for e in out["errors"])


def test_load_raises_with_every_issue():
    text = (DATA / "good" / "minimal.toml").read_text()
    text = text.replace('keepalive = "100ms"', 'keepalive = "1 fortnight"').replace('kind = "serial"', 'kind = "smoke"')
    with pytest.raises(ConfigError) as e:
        config.loads(text, "x.toml")
    assert len(e.value.issues) == 2
    assert e.value.issues[0].startswith("x.toml:14: heartbeat.keepalive:")


def test_good_minimal_parses_to_model():
    c = config.load(DATA / "good" / "minimal.toml")
    assert [n.name for n in c.nodes] == ["alpha", "beta"]
    assert c.heartbeat.keepalive == pytest.approx(0.1)
    assert c.heartbeat.deadtime == pytest.approx(0.5)
    # heartbeat's defaults: warntime = deadtime/2, initdead = deadtime
    assert c.heartbeat.warntime == pytest.approx(0.25)
    assert c.heartbeat.initdead == pytest.approx(0.5)
    assert c.heartbeat.links[0].addresses == {"alpha": "198.51.100.1", "beta": "198.51.100.2"}
    assert c.resources[0].params == {"ip": "192.0.2.10", "cidr_netmask": "24"}
    assert c.peer_of("alpha").name == "beta"
    assert c.fencing.command[0] == "fence_ipmilan"


def test_example_config_is_valid():
    cluster, report = config.check(REPO / "profiles" / "cluster" / "example.toml")
    assert report.errors == []
    assert cluster is not None and [r.id for r in cluster.resources] == ["drbd", "vg", "fs", "nfs", "exports", "vip", "notify"]


def test_built_in_timings_are_hasyncs_own_and_the_example_and_docs_say_them():
    """Issue 18: a config without timing keys used heartbeat's 1 s / 30 s and failed over in
    29-30 s. The built-in timings are hasync's own (docs/failover.md "Choosing timings",
    measured in docs/benchmarks.md); the example, which configures power fencing, writes
    them out, and the docs state them."""
    text = (REPO / "profiles" / "cluster" / "example.toml").read_text()
    bare = re.sub(r"^(keepalive|warntime|deadtime|initdead) = .*\n", "", text, flags=re.M)
    assert bare.count("\n") == text.count("\n") - 4
    c, report = config.check_text(bare, "bare.toml")
    assert report.errors == [] and c is not None
    h = c.heartbeat
    assert (h.keepalive, h.warntime, h.deadtime, h.initdead) == (0.5, 2.0, 5.0, 30.0)
    example = config.load(REPO / "profiles" / "cluster" / "example.toml").heartbeat
    assert (example.keepalive, example.warntime, example.deadtime, example.initdead) == (h.keepalive, h.warntime, h.deadtime, h.initdead)
    assert "keepalive 500 ms, warntime 2 s, deadtime 5 s, initdead 30 s" in (REPO / "docs" / "failover.md").read_text()
    assert "defaults 500ms, 2s, 5s, 30s" in (REPO / "README.md").read_text()


def test_a_timing_rule_broken_by_a_value_nobody_wrote_says_where_it_came_from():
    text = (DATA / "good" / "minimal.toml").read_text()
    # deadtime set, warntime derived from it as heartbeat does (deadtime / 2 = 50ms < keepalive):
    # the error points at [heartbeat] (line 13), the key is not in the file
    _, report = config.check_text(text.replace('deadtime = "500ms"', 'deadtime = "100ms"'), "m.toml")
    assert "m.toml:13: heartbeat.warntime: must be at least keepalive (100ms); got 50ms (not set: deadtime / 2, as heartbeat derives it; set warntime too)" in report.errors
    # a value the file writes is named as it is
    _, report = config.check_text(text.replace('deadtime = "500ms"', 'deadtime = "500ms"\nwarntime = "50ms"'), "m.toml")
    assert "m.toml:16: heartbeat.warntime: must be at least keepalive (100ms); got 50ms" in report.errors


def test_warnings_do_not_fail(tmp_path, capsys):
    text = (DATA / "good" / "minimal.toml").read_text()
    # one link only, fencing off
    text = text.replace('[[heartbeat.link]]\nname = "serial"\nkind = "serial"\ndevice = "/dev/ttyS1"\n', "")
    text = text.replace('mode = "required"', 'mode = "off"')
    f = tmp_path / "c.toml"
    f.write_text(text)
    rc = cli.main(["check", "-q", str(f)])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 0
    assert "only one heartbeat link" in err
    assert "fencing is off" in err


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_config_from_env(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HASYNC_CONFIG", str(DATA / "good" / "minimal.toml"))
    assert cli.main(["check", "-q"]) == 0
    monkeypatch.setenv("HASYNC_CONFIG", str(tmp_path / "missing.toml"))
    assert cli.main(["check", "-q"]) == 2


@pytest.mark.parametrize(
    "text,seconds",
    [("200ms", 0.2), ("2s", 2.0), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0), (" 10ms ", 0.01)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(config.format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5", "5 sec", "-1s", "ms", "1d", 5])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_line_index_arrays_and_dotted_keys():
    text = '[a]\nx = 1\n[[b]]\ny = 2\n[[b]]\ny = 3\n[[b.c]]\nz = 4\nd.e = 5\n'
    idx = LineIndex(text)
    assert idx.line(("a", "x")) == 2
    assert idx.line(("b", 0, "y")) == 4
    assert idx.line(("b", 1, "y")) == 6
    assert idx.line(("b", 1, "c", 0, "z")) == 8
    assert idx.line(("b", 1, "c", 0, "d", "e")) == 9
    assert idx.line(("b", 1, "nope")) == 5  # nearest ancestor


# ------------------------------------------------------------------ haresources

FIELD_NOTES = """\
node1       drbddisk::ha-disk0  \\
            Filesystem::/dev/drbd0::/home::ext3 \\
            IPaddr::10.0.0.10 \\
            nfsboot nfsserver nfslock
"""


def chain(resources):
    return [(r.type, r.agent, r.args) for r in resources]


FIELD_NOTES_CHAIN = [
    ("heartbeat", "drbddisk", ("ha-disk0",)),
    ("heartbeat", "Filesystem", ("/dev/drbd0", "/home", "ext3")),
    ("heartbeat", "IPaddr", ("10.0.0.10",)),
    ("heartbeat", "nfsboot", ()),
    ("heartbeat", "nfsserver", ()),
    ("heartbeat", "nfslock", ()),
]


def test_field_notes_haresources_imports_to_the_ordered_chain():
    (g,) = parse_haresources(FIELD_NOTES)
    node, res = g.node, g.resources
    assert node == "node1"
    assert chain(res) == FIELD_NOTES_CHAIN
    assert [r.id for r in res] == ["drbddisk", "filesystem", "ipaddr", "nfsboot", "nfsserver", "nfslock"]


def test_bare_ip_means_ipaddr_and_one_line_form():
    one_line = "node1 drbddisk::ha-disk0 Filesystem::/dev/drbd0::/home::ext3 10.0.0.10 nfsboot nfsserver nfslock  # comment\n"
    (g,) = parse_haresources(one_line)
    node, res = g.node, g.resources
    assert node == "node1" and chain(res) == FIELD_NOTES_CHAIN


def test_haresources_lines_are_groups_with_ids_unique_across_the_file():
    # was refused: "more than one resource group; hasync runs one chain per two-node cluster"
    a, b = parse_haresources("node1 IPaddr::10.0.0.10 a\n\nnode2 \\\n  IPaddr::10.0.0.11 b\n", "h")
    assert (a.node, a.line, [r.id for r in a.resources]) == ("node1", 1, ["ipaddr", "a"])
    assert (b.node, b.line, [r.id for r in b.resources]) == ("node2", 3, ["ipaddr-2", "b"])
    assert b.resources[0].src == "h:4"


def test_haresources_errors():
    with pytest.raises(ConfigError, match="no resource group"):
        parse_haresources("# nothing\n\n", "h")
    with pytest.raises(ConfigError, match="has no resources"):
        parse_haresources("node1\n", "h")


def test_import_cli_prints_toml_that_loads(tmp_path, capsys):
    (tmp_path / "haresources").write_text(FIELD_NOTES)
    (tmp_path / "ha.cf").write_text(
        "keepalive 2\ndeadtime 30\nwarntime 10\ninitdead 120\nudpport 694\n"
        "serial /dev/ttyS0\nbaud 19200\nbcast eth1\nauto_failback off\nnode node1\nnode node2\n"
    )
    rc = cli.main(["haresources", "import", "--no-ocf", str(tmp_path / "haresources"), "--ha-cf", str(tmp_path / "ha.cf")])
    out = capsys.readouterr().out
    assert rc == 0
    c = config.loads(out, "imported.toml")
    assert chain(c.resources) == FIELD_NOTES_CHAIN
    assert c.cluster.preferred_node == "node1"
    assert (c.heartbeat.keepalive, c.heartbeat.deadtime, c.heartbeat.initdead) == (2.0, 30.0, 120.0)
    assert sorted(lk.kind for lk in c.heartbeat.links) == ["serial", "udp-broadcast"]
    assert c.fencing.mode == "off"


def test_haresources_file_in_config(tmp_path):
    (tmp_path / "haresources").write_text(FIELD_NOTES)
    text = (DATA / "good" / "minimal.toml").read_text()
    start = text.index("[[resource]]")
    end = text.index("[fencing]")
    text = 'haresources = "haresources"\n' + text[:start] + text[end:]
    text = text.replace('name = "alpha"', 'name = "node1"').replace("alpha =", "node1 =")
    f = tmp_path / "cluster.toml"
    f.write_text(text)
    c = config.load(f)
    assert chain(c.resources) == FIELD_NOTES_CHAIN
    assert c.cluster.preferred_node == "node1"


def test_ha_cf_ms_and_ucast():
    cf = parse_ha_cf("keepalive 200ms\ndeadtime 1\nucast eth1 10.0.0.1\nucast eth1 10.0.0.2\nnode a\nnode b\n")
    assert cf.keepalive == pytest.approx(0.2) and cf.deadtime == 1.0
    out = render(draft((HaGroup("a", (), 1),), cf, None, ocf=True)[0])
    assert 'addresses = { a = "10.0.0.1", b = "10.0.0.2" }' in out
    with pytest.raises(ConfigError, match="ha.cf:1: keepalive"):
        parse_ha_cf("keepalive soon\n")


def test_every_distro_profile_loads():
    names = config.available_profiles()
    assert {"sles9", "sles15", "debian12", "rhel9"} <= set(names)
    for n in names:
        p = config.load_profile(n)
        assert p.init in ("systemd", "sysv")
    assert config.load_profile("sles9").init == "sysv"
    with pytest.raises(ConfigError, match="no distro profile"):
        config.load_profile("beos5")


def test_nfs_state_moved_twice_is_warned_on_symlink_profiles_only():
    """[nfs].state_dir (bootstrap's /var/lib/nfs symlink) plus the OCF nfsserver agent's
    nfs_shared_infodir (its bind mount) would mount the directory onto itself."""
    text = (REPO / "profiles" / "cluster" / "example.toml").read_text()
    cluster, report = config.check_text(text, "ex.toml")
    assert not [w for w in report.warnings if "nfs_shared_infodir" in w]
    nfs = 'params = { nfs_server_scope = "192.0.2.10", nfs_no_notify = "true" }'
    both = text.replace(nfs, nfs.replace("{ ", '{ nfs_shared_infodir = "/srv/ha/nfs-state", '))
    assert both != text
    line = both.splitlines().index(nfs.replace("{ ", '{ nfs_shared_infodir = "/srv/ha/nfs-state", ')) + 1
    _, report = config.check_text(both, "ex.toml")
    [w] = [w for w in report.warnings if "nfs_shared_infodir" in w]
    assert w.startswith(f"ex.toml:{line}: resource[") and "mounted onto itself" in w and "debian12" in w
    _, report = config.check_text(both.replace('profile = "debian12"', 'profile = "rhel9"'), "ex.toml")
    assert not [w for w in report.warnings if "nfs_shared_infodir" in w]  # rhel9: the chain's bind mount is the plan
    _, report = config.check_text(both.replace('state_dir = "/srv/ha/nfs-state"', 'state_dir = ""'), "ex.toml")
    assert not [w for w in report.warnings if "nfs_shared_infodir" in w]
