"""corosync.conf from [heartbeat]: knet links, token from deadtime, two_node, the key; and
`corosync -t` reading it (in a network namespace holding node1's addresses)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hasync import config
from hasync.export import corosync

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "profiles" / "cluster" / "example.toml"


@pytest.mark.parametrize("deadtime, token", [(30, 13600), (10, 4500), (5, 2200), (2.2, 1000), (1, 1000), (0.5, 1000)])
def test_token_from_deadtime_is_deadtime_over_2_2_and_never_under_1000(deadtime, token):
    assert corosync.token_ms(deadtime) == token


def test_example_two_knet_links_the_serial_link_dropped_aloud_and_two_node():
    c = config.load(EXAMPLE)
    conf = corosync.corosync_conf(c)
    t = conf.text
    assert "transport: knet" in t and "two_node: 1" in t and "token: 2200" in t  # the example's deadtime 5 s / 2.2
    assert re.findall(r"ring(\d)_addr: (\S+)", t) == [("0", "203.0.113.1"), ("1", "192.0.2.11"), ("0", "203.0.113.2"), ("1", "192.0.2.12")]
    assert [n for n in re.findall(r"linknumber: (\d)", t)] == ["0", "1"]
    serial = [w for w in conf.warnings if "serial" in w]
    assert len(serial) == 1 and "no serial transport" in serial[0] and "/dev/ttyS1" in serial[0]
    # in the file as well (a wrapped comment: its width depends on the config's path)
    assert "no serial transport" in re.sub(r"\n#\s+", " ", t)
    assert any("udp-multicast" in w and "check they are" in w for w in conf.warnings)
    # the key: made with corosync-keygen, hasync's own never converted
    assert "corosync-keygen" in t and "NOT converted" in t and c.heartbeat.auth_key in t


def test_a_serial_only_setup_gets_one_link_over_the_node_addresses():
    text = EXAMPLE.read_text()
    text = re.sub(r"\[\[heartbeat\.link\]\]\nname = \"(heartbeat|public)\".*?\n\n", "", text, flags=re.S)
    c = config.loads(text, "c.toml")
    assert [lk.kind for lk in c.heartbeat.links] == ["serial"]
    conf = corosync.corosync_conf(c)
    assert re.findall(r"ring0_addr: (\S+)", conf.text) == ["192.0.2.11", "192.0.2.12"]
    assert any("no UDP heartbeat link" in w for w in conf.warnings)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("corosync") or not shutil.which("unshare"),
                    reason="corosync -t needs root, corosync and unshare (a namespace with node1's addresses)")
def test_corosync_reads_the_exported_file(tmp_path):
    """`corosync -t` parses the file and finds this host in the nodelist by its addresses,
    so it runs in a network namespace that has node1's; the key is a fresh one."""
    key = tmp_path / "authkey"
    subprocess.run(["corosync-keygen", "-k", str(key)], check=True, capture_output=True)
    text = corosync.corosync_conf(config.load(EXAMPLE)).text
    f = tmp_path / "corosync.conf"
    f.write_text(text.replace("    token:", f"    keyfile: {key}\n    token:", 1))
    script = "ip link set lo up; ip addr add 203.0.113.1/32 dev lo; ip addr add 192.0.2.11/32 dev lo; exec corosync -t -c " + str(f)
    p = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text(f.read_text().replace("two_node: 1", "two_node: yes"))
    p = subprocess.run(["unshare", "-n", "sh", "-c", script.replace(str(f), str(bad))], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "two_node" in p.stdout + p.stderr  # the check can fail
