"""Regression tests for the config defects of issues 11 and 12 (items 9, 10, 13, 14).

Each test failed on main at 4695e0c. They use only names that existed there (hasync.cli,
hasync.config's load/loads/check_text/LineIndex, packets), so they can be run against the
old code: ``PYTHONPATH=<old checkout> pytest tests/unit/test_config_regressions.py`` --
except bootstrap's wanted state, there ``hasync.bootstrap.cli.build_wanted(args, runner)``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from pathlib import Path

import pytest

from hasync import cli, config, resources
from hasync.bootstrap.wanted import wanted_state
from hasync.failover import packets

DATA = Path(__file__).parent / "data" / "config"
MINIMAL = DATA / "good" / "minimal.toml"  # nodes alpha and beta; [cluster] on line 1
REPO = Path(__file__).resolve().parents[2]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def check(tmp_path: Path, text: str, capsys, *args: str) -> tuple[int, str]:
    """`hasync check FILE` on *text*: (exit status, stderr with whitespace folded)."""
    f = tmp_path / "cluster.toml"
    f.write_bytes(text.encode("utf-8", "surrogatepass"))
    rc = cli.main(["check", *args, str(f)])
    return rc, " ".join(capsys.readouterr().err.split())


class _Uname:
    def __init__(self, nodename: str):
        self.nodename = nodename


# ------------------------------------------------------------------ issue 11: one answer each


def test_sync_accepts_a_fqdn_host_like_failover(tmp_path, monkeypatch, capsys):
    """On a host whose uname -n is node1.example.com, failover started and watch refused."""
    text = MINIMAL.read_text().replace("[[resource]]", f'[sync]\nstate_dir = "{tmp_path}/state"\n\n[[resource]]')
    (tmp_path / "c.toml").write_text(text)
    monkeypatch.delenv("HASYNC_NODE", raising=False)
    monkeypatch.setattr(os, "uname", lambda: _Uname("alpha.example.com"))
    assert cli.main(["-c", str(tmp_path / "c.toml"), "sync", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["node"] == "alpha"


def test_bootstrap_honours_hasync_node(monkeypatch):
    """bootstrap used socket.gethostname() and ignored $HASYNC_NODE."""
    monkeypatch.setenv("HASYNC_NODE", "beta")
    assert wanted_state(str(MINIMAL), node=None).node == "beta"


def _broken_profiles(tmp_path: Path, monkeypatch, name: str, text: str) -> Path:
    """A copy of profiles/ with *name* replaced by *text*, found by hasync.resources."""
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "profiles", pkg / "_data" / "profiles")
    (pkg / "_data" / "profiles" / "distro" / f"{name}.toml").write_text(text)
    monkeypatch.setattr(resources, "_PKG", pkg)
    return pkg / "_data" / "profiles" / "distro" / f"{name}.toml"


def test_a_profile_that_cannot_be_loaded_is_a_config_error(tmp_path, monkeypatch, capsys):
    """check validated the profile, threw the error away and passed; the daemon then
    swallowed the same error and ran `service` resources as systemd units."""
    bad = _broken_profiles(tmp_path, monkeypatch, "sles9", '[profile]\nname = "sles9"\ninit = "upstart"\n')
    text = MINIMAL.read_text().replace('profile = "debian12"', 'profile = "sles9"')
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    assert (f"cluster.toml:3: cluster.profile: distro profile 'sles9' cannot be loaded: "
            f"{bad}:3: profile.init: expected \"systemd\" or \"sysv\", got 'upstart'") in err


def test_the_loaded_cluster_carries_its_profile():
    c = config.load(MINIMAL)
    assert c.profile.name == "debian12" and c.profile.src.endswith("debian12.toml")


# ------------------------------------------------------------------ item 9: sync paths by spelling


@pytest.mark.parametrize("spelled,means", [
    ("/etc/.", "/etc"), ("//etc", "/etc"), ("/etc/hasync/..", "/etc"), ("/.", "/"),
    ("///usr//", "/usr"), ("/var/lib/../../var", "/var"), ("/etc/hasync/../../", "/"),
])
def test_sync_paths_are_normalised_before_the_denylist(tmp_path, capsys, spelled, means):
    text = MINIMAL.read_text().replace("[[resource]]", f'[sync]\npaths = ["/etc/exports", "{spelled}"]\n\n[[resource]]')
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    line = line_of(text, "paths = [")
    assert f"cluster.toml:{line}: sync.paths[1]: refusing to sync all of {spelled!r}, which is {means!r}" in err


def test_sync_paths_reach_the_model_normalised():
    text = MINIMAL.read_text().replace("[[resource]]", '[sync]\npaths = ["//etc/hasync/./", "/srv/a/../b"]\n\n[[resource]]')
    assert config.loads(text, "x.toml").sync.paths == ("/etc/hasync", "/srv/b")


# ------------------------------------------------------------------ item 10: packet bounds


def _many_resources(n: int, id_len: int) -> str:
    return "".join(f'[[resource]]\nid = "{i:04d}{"r" * (id_len - 4)}"\ntype = "systemd"\nagent = "x{i}"\n\n' for i in range(n))


def _with_chain(chain: str) -> str:
    text = MINIMAL.read_text()
    return text[: text.index("[[resource]]")] + chain + text[text.index("[fencing]"):]


@pytest.mark.parametrize("old,new,key", [
    ('name = "pair"', f'name = "{"é" * 128}"', "cluster.name"),  # 256 bytes in UTF-8
    ('name = "beta"', f'name = "{"b" * 256}"', "node[1].name"),
    ('name = "hb"', f'name = "{"h" * 300}"', "heartbeat.link[0].name"),
    ('id = "vip"', f'id = "{"v" * 256}"', "resource[0].id"),
])
def test_a_name_over_255_bytes_is_refused_by_check(tmp_path, capsys, old, new, key):
    text = MINIMAL.read_text().replace(old, new, 1)
    if key == "node[1].name":  # the link's addresses name the node too
        text = text.replace("beta =", new[len("name = "):].strip('"') + " =")
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    assert f"cluster.toml:{line_of(text, new)}: {key}: " in err and "at most 255 bytes" in err


def test_more_resources_than_a_packet_lists_is_refused(tmp_path, capsys):
    text = _with_chain(_many_resources(256, 4))
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2 and "resource: 256 resources; a heartbeat packet lists at most 255" in err


def test_a_chain_whose_packet_exceeds_max_payload_is_refused(tmp_path, capsys):
    text = _with_chain(_many_resources(40, 30))  # 40 x 31 bytes of ids > 1024
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    assert f"cluster.toml:{line_of(text, '[[resource]]')}: resource: a heartbeat packet with every resource owned would carry" in err


def _encode_worst_case(cluster) -> None:
    """What the daemon's send path does, with the largest values each field can take."""
    for node in cluster.nodes:
        for link in cluster.heartbeat.links:
            pkt = packets.Packet(cluster.cluster.name, node.name, link.name, generation=2**64 - 1, seq=2**64 - 1,
                                 role="active", owned=tuple(r.id for r in cluster.resources), flags=0xFFFF,
                                 epoch=2**32 - 1, request=packets.REQ_TAKE, request_id=2**32 - 1, ack_id=2**32 - 1,
                                 echo=2**64 - 1, digest=2**64 - 1)
            packets.encode(pkt, b"k" * 32)


@pytest.mark.parametrize("n,id_len", [(1, 255), (30, 30), (31, 30), (32, 30), (33, 30), (255, 1), (4, 250)])
def test_a_config_that_passes_check_never_makes_the_send_path_raise(n, id_len):
    """Around the payload bound: whatever check accepts, encode accepts."""
    cluster, report = config.check_text(_with_chain(_many_resources(n, id_len)), "x.toml")
    if cluster is not None:
        _encode_worst_case(cluster)
    else:
        assert any("heartbeat packet" in e for e in report.errors)


def test_the_packet_bound_is_exact():
    """The largest chain check accepts fills MAX_PAYLOAD to the byte (no needless refusal)."""
    base = _with_chain(_many_resources(1, 5))
    cluster = config.loads(base, "x.toml")
    used = len(packets.encode(packets.Packet(cluster.cluster.name, "alpha", "serial", 0, 0, owned=("00000",)), b"k" * 16)) - 5 - 32
    room = packets.MAX_PAYLOAD - used  # bytes left for more str8 ids
    sizes = [255] * (room // 256) + [room % 256 - 1]  # each id costs 1 + its length
    extra = "".join(f'[[resource]]\nid = "{i}{"z" * (n - 1)}"\ntype = "lsb"\nagent = "z"\n\n' for i, n in enumerate(sizes))
    fits = _with_chain(_many_resources(1, 5) + extra)
    _encode_worst_case(config.loads(fits, "x.toml"))
    last = len(sizes) - 1
    assert sizes[last] >= 2
    over = fits.replace(f'id = "{last}z', f'id = "{last}zz')  # one byte more
    with pytest.raises(config.ConfigError, match="heartbeat packet with every resource owned would carry 1025 bytes"):
        config.loads(over, "x.toml")


# ------------------------------------------------------------------ item 13: found by fuzzing


@pytest.mark.parametrize("line", ['keepalive = "' + "9" * 310 + 's"', 'deadtime = "' + "9" * 300 + 'h"'])
def test_a_huge_duration_is_a_clean_error(tmp_path, capsys, line):
    text = MINIMAL.read_text().replace('keepalive = "100ms"', line) if "keepalive" in line else MINIMAL.read_text().replace('deadtime = "500ms"', line)
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    key = line.split(" ")[0]
    assert f"cluster.toml:{line_of(text, line[:12])}: heartbeat.{key}: expected a duration of at most 8760h" in err


def _hares_config(tmp_path: Path, target: str) -> str:
    return f'haresources = "{target}"\n' + _with_chain("")


@pytest.mark.parametrize("target,why", [
    ("adir", "is a directory; expected a file"),
    ("binary", "binary data (a NUL byte); expected a text file"),
    ("/proc/self/mem", "cannot read: Input/output error"),
    ("/dev/zero", "is not a regular file"),
])
def test_haresources_naming_something_unreadable_is_a_clean_error(tmp_path, capsys, target, why):
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary").write_bytes(b"node1 IPaddr::10.0.0.1\n\x00\x01\x02\xff\xfe")
    rc, err = check(tmp_path, _hares_config(tmp_path, target), capsys)
    assert rc == 2
    assert "cluster.toml:1: haresources: " in err and why in err


LATIN1 = "node1 drbddisk::données Filesystem::/dev/drbd0::/srv/März::ext3 10.0.0.10 nfsserver\n".encode("latin-1")


def test_a_latin1_haresources_file_is_read_in_check(tmp_path, capsys):
    (tmp_path / "haresources").write_bytes(LATIN1)
    text = _hares_config(tmp_path, "haresources").replace('"alpha"', '"node1"').replace("alpha =", "node1 =")
    rc, err = check(tmp_path, text, capsys, "-q")
    assert rc == 0
    assert "cluster.toml:1: haresources: " in err and "not UTF-8: read as Latin-1" in err


def test_a_latin1_haresources_file_imports_and_says_so(tmp_path, capsysbinary):
    (tmp_path / "haresources").write_bytes(LATIN1)
    assert cli.main(["haresources", "import", str(tmp_path / "haresources")]) == 0
    cap = capsysbinary.readouterr()
    out = tomllib.loads(cap.out.decode("utf-8"))
    assert out["resource"][0]["args"] == ["données"]
    assert b"not UTF-8: read as Latin-1" in cap.err


@pytest.mark.parametrize("name", ["nœud-😀", "a\x7fb", 'q"uo\\te', "ünïcödé", "esc\x1b[31m"])
def test_the_import_writes_valid_toml_for_any_name(tmp_path, capsysbinary, name):
    """json.dumps wrote an astral character ("😀") as a UTF-16 surrogate pair, which TOML
    rejects; the others pin the escaping of quotes, backslashes and control characters."""
    (tmp_path / "haresources").write_bytes(f"{name} IPaddr::10.0.0.1 Filesystem::{name}::/srv\n".encode())
    (tmp_path / "ha.cf").write_bytes(f"node {name}\nnode other\nucast eth1 10.0.0.2\nbcast {name}\n".encode())
    assert cli.main(["haresources", "import", str(tmp_path / "haresources"), "--ha-cf", str(tmp_path / "ha.cf")]) == 0
    out = tomllib.loads(capsysbinary.readouterr().out.decode("utf-8"))
    assert out["cluster"]["preferred_node"] == out["node"][0]["name"] == name
    assert out["resource"][1]["args"] == [name, "/srv"]
    assert out["heartbeat"]["link"][0]["interface"] == name


def test_the_line_index_is_linear_on_a_long_line_of_blanks():
    """A header with 16k blanks took ~10 s (the regular expression backtracked)."""
    text = "[a" + " " * 16384 + ".b]\nx = 1\n"
    tomllib.loads(text)  # valid TOML: the index sees it
    start = time.perf_counter()
    idx = config.LineIndex(text)
    assert time.perf_counter() - start < 0.5
    assert idx.line(("a", "b", "x")) == 2


def test_markup_in_a_name_does_not_break_the_summary(tmp_path, capsys):
    text = MINIMAL.read_text().replace('name = "pair"', 'name = "[/bold] [link=x]"')
    f = tmp_path / "c.toml"
    f.write_text(text)
    assert cli.main(["check", str(f)]) == 0
    assert "[/bold] [link=x]" in capsys.readouterr().out


def test_deep_nesting_is_a_clean_error(tmp_path, capsys):
    text = MINIMAL.read_text() + "\nx = " + "[" * 5000 + "]" * 5000 + "\n"
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2 and "TOML syntax" in err


def test_a_config_that_is_a_directory_or_device_is_a_clean_error(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert cli.main(["check", "/dev/zero"]) == 2  # would read forever
    assert "not a regular file" in capsys.readouterr().err


def test_a_non_utf8_config_names_the_line(tmp_path, capsys):
    f = tmp_path / "c.toml"
    f.write_bytes(MINIMAL.read_bytes().replace(b'name = "pair"', b'name = "p\xe4ir"'))
    assert cli.main(["check", str(f)]) == 2
    assert f"{f}:2: not UTF-8" in " ".join(capsys.readouterr().err.split())


# ------------------------------------------------------------------ item 14: the key's length


@pytest.mark.parametrize("size,warned", [(10, "the failover daemon refuses a key under 16 bytes"),
                                         (20, "use at least 32 random bytes"), (32, None), (64, None)])
def test_check_warns_about_a_short_auth_key(tmp_path, capsys, size, warned):
    key = tmp_path / "authkey"
    key.write_bytes(b"k" * size + b"\n")
    key.chmod(0o600)
    text = MINIMAL.read_text().replace('deadtime = "500ms"', f'deadtime = "500ms"\nauth_key = "{key}"')
    rc, err = check(tmp_path, text, capsys, "-q")
    assert rc == 0
    if warned:
        assert f"cluster.toml:{line_of(text, 'auth_key')}: heartbeat.auth_key: {key} holds {size} bytes" in err and warned in err
    else:
        assert "auth_key" not in err


# ------------------------------------------------------------------ issue 13 item 1: node-local files


def test_check_explains_the_node_local_files_a_synced_path_holds(tmp_path, capsys):
    text = MINIMAL.read_text().replace("[[resource]]", '[sync]\npaths = ["/etc/exports", "/etc/hasync"]\nkeep_conflicts = "720h"\n\n[[resource]]')
    rc, err = check(tmp_path, text, capsys)
    assert rc == 0, err
    line = line_of(text, "paths = [")
    assert f"cluster.toml:{line}: sync.paths[1]: /etc/hasync: never synced, each node keeps its own: /etc/hasync/ssh" in err
    assert config.loads(text, "x.toml").sync.keep_conflicts == 30 * 86400


def test_a_synced_path_inside_the_node_local_files_is_an_error(tmp_path, capsys):
    text = MINIMAL.read_text().replace("[[resource]]", '[sync]\npaths = ["/etc/hasync/ssh/known_hosts"]\n\n[[resource]]')
    rc, err = check(tmp_path, text, capsys)
    assert rc == 2
    assert "sync.paths[0]: '/etc/hasync/ssh/known_hosts' lies in node-local files" in err
