"""The lab's wiring commands and node files (pure)."""

from __future__ import annotations

import json

import pytest

from hasync_lab.ns import net
from hasync_lab.ns.nodefiles import LabKeys, dir_mode, hasync_wrapper, node_files, split_overlay
from hasync_lab.ns.spec import LabSpec

SPEC = LabSpec("t1", nodes=2, clients=1)


def test_bridges_live_in_the_switch_namespace():
    argv = net.bridge_add(SPEC, "heartbeat")
    assert argv[:3] == ("ip", "-n", "t1-sw")
    assert "br-hb" in argv and ("mcast_snooping", "0") == argv[argv.index("mcast_snooping"):][:2]


def test_cable_joins_the_node_to_its_bridge():
    add, master = net.cable_add(SPEC, "node2", "public")
    assert add == ("ip", "-n", "t1-sw", "link", "add", "node2-pub", "type", "veth", "peer",
                   "name", "eth0", "netns", "t1-node2")
    assert master == ("ip", "-n", "t1-sw", "link", "set", "node2-pub", "master", "br-pub")


def test_addresses_are_rebuilt_from_scratch():
    cmds = net.addresses(SPEC, "node1")
    assert ("ip", "-n", "t1-node1", "addr", "flush", "dev", "eth0") in cmds
    assert ("ip", "-n", "t1-node1", "addr", "add", "10.200.0.11/24", "dev", "eth0") in cmds
    assert ("ip", "-n", "t1-node1", "addr", "add", "10.201.0.11/24", "dev", "eth1") in cmds
    assert cmds[-1] == ("ip", "-n", "t1-node1", "route", "replace", "224.0.0.0/4", "dev", "eth0")
    client = net.addresses(SPEC, "client1")
    assert not any("eth1" in c for c in client)


def test_cut_is_the_switch_side_going_down():
    assert net.cable_state(SPEC, "node1", "heartbeat", up=False) == (
        "ip", "-n", "t1-sw", "link", "set", "node1-hb", "down")


def test_parsers_on_captured_ip_json():
    link = json.dumps([{"ifname": "node1-hb", "flags": ["BROADCAST", "MULTICAST", "UP"]}])
    assert net.parse_admin_up(link) is True
    assert net.parse_admin_up(json.dumps([{"flags": ["BROADCAST"]}])) is False
    assert net.parse_admin_up("garbage") is False
    addrs = json.dumps([
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1"}]},
        {"ifname": "eth0", "addr_info": [{"local": "10.200.0.11"}, {"local": "10.200.0.100"}]},
    ])
    assert net.parse_addresses(addrs) == ["10.200.0.11", "10.200.0.100"]
    assert net.parse_addresses("") == []


def test_node_files():
    keys = LabKeys("PRIV", "ssh-ed25519 PUB lab", {n: f"HOST{n}" for n in SPEC.all_nodes},
                   {n: f"ssh-ed25519 HPUB{n} x" for n in SPEC.all_nodes}, "secret\n")
    files = node_files(SPEC, "node2", keys, root="/r", hasync_wrapper="#!/bin/sh\n")
    assert files["/etc/hostname"] == ("node2\n", 0o644)
    assert files["/etc/hasync/authkey"] == ("secret\n", 0o600)
    assert files["/etc/hasync/ssh/ssh_host_ed25519_key"] == ("HOSTnode2", 0o600)
    assert json.loads(files["/etc/hasync/lab.json"][0]) == {"lab": "t1", "node": "node2", "root": "/r"}
    assert "HPUBclient1" in files["/etc/hasync/ssh/known_hosts"][0]
    assert files["/usr/local/bin/hasync"][1] == 0o755
    # the node's own root shell: the test machine's ~/.bashrc (pyenv init, a lock under
    # /root that a power loss left behind) hung every ssh command into the node
    assert "pyenv" not in files["/root/.bashrc"][0] + files["/root/.profile"][0]
    for path in files:  # every file lands in a private layer
        split_overlay(path)


def test_split_overlay_and_modes():
    assert split_overlay("/etc/hasync/x") == ("/etc", "hasync/x")
    assert split_overlay("/usr/local/bin/hasync") == ("/usr/local", "bin/hasync")
    with pytest.raises(ValueError):
        split_overlay("/usr/bin/x")
    assert dir_mode("/etc/hasync/ssh") == 0o700
    assert dir_mode("/etc/hasync") == 0o755
    w = hasync_wrapper("/src", "/venv/bin/python")
    assert 'exec /venv/bin/python -m hasync "$@"' in w and "PYTHONPATH=/src" in w
