"""Pure parts of the namespace lab: names, addresses, files, the generated cluster.toml."""

from __future__ import annotations

import tomllib

import pytest

from hasync_lab.ns.config_gen import cluster_toml
from hasync_lab.ns.spec import (
    BASE_DEVS,
    LabSpec,
    hosts_file,
    known_hosts,
    node_setup_script,
)


def test_names_and_addresses():
    s = LabSpec("t1", nodes=3, clients=2)
    assert s.cluster_nodes == ("node1", "node2", "node3")
    assert s.client_nodes == ("client1", "client2")
    assert s.netns("node2") == "t1-node2"
    assert s.switch_ns == "t1-sw"
    assert s.public_addr("node1") == "10.200.0.11"
    assert s.public_addr("client2") == "10.200.0.202"
    assert s.heartbeat_addr("node3") == "10.201.0.13"
    with pytest.raises(ValueError):
        s.heartbeat_addr("client1")
    assert s.links_of("node1") == ("public", "heartbeat", "serial")
    assert s.links_of("node3") == ("public", "heartbeat")
    assert s.links_of("client1") == ("public",)
    assert s.switch_port("client1", "public") == "client1-pub"


@pytest.mark.parametrize("bad", ["", "A", "1abc", "a-b", "x" * 17, "a b"])
def test_bad_lab_names_are_refused(bad):
    with pytest.raises(ValueError):
        LabSpec(bad)


@pytest.mark.parametrize("kw", [{"nodes": 1}, {"nodes": 10}, {"clients": -1}, {"disk_size": "big"}])
def test_bad_shapes_are_refused(kw):
    with pytest.raises(ValueError):
        LabSpec("ok", **kw)


def test_hosts_and_known_hosts_name_every_node():
    s = LabSpec("t1", nodes=2, clients=1)
    hosts = hosts_file(s)
    for line in ("10.200.0.11\tnode1", "10.200.0.12\tnode2", "10.200.0.201\tclient1",
                 "10.201.0.12\tnode2-hb", "10.200.0.100\tvip"):
        assert line in hosts.splitlines()
    kh = known_hosts(s, {n: f"ssh-ed25519 KEY{n} comment" for n in s.all_nodes})
    assert "node2,10.200.0.12,node2-hb,10.201.0.12 ssh-ed25519 KEYnode2" in kh.splitlines()
    assert "client1,10.200.0.201 ssh-ed25519 KEYclient1" in kh.splitlines()


def test_setup_script_mounts_overlays_private_run_and_dev():
    script = node_setup_script(
        node="node1",
        lab_dir="/l/t1",
        root="/l",
        overlays={"/etc": ("/l/t1/u", "/l/t1/w")},
        devs=BASE_DEVS,
        serial_pty="/dev/pts/7",
    )
    assert "hostname node1" in script
    assert "mount -t overlay overlay -o lowerdir=/etc,upperdir=/l/t1/u,workdir=/l/t1/w /etc" in script
    assert "mount -t tmpfs -o mode=0755,size=64m,nosuid,nodev tmpfs /run" in script
    assert "mount --bind /dev/pts/7 ttyS1" in script
    assert "mknod -m 666 null c 1 3" in script
    assert script.rstrip().endswith("mount --move /l/t1/nodes/node1/dev /dev")


def test_cluster_toml_is_valid_and_complete():
    s = LabSpec("t1")
    doc = tomllib.loads(cluster_toml(s))
    assert doc["cluster"]["profile"] == "lab"
    assert [(n["name"], n["address"]) for n in doc["node"]] == [
        ("node1", "10.200.0.11"),
        ("node2", "10.200.0.12"),
    ]
    links = {link["name"]: link for link in doc["heartbeat"]["link"]}
    assert links["heartbeat"]["kind"] == "udp-unicast"
    assert links["heartbeat"]["addresses"] == {"node1": "10.201.0.11", "node2": "10.201.0.12"}
    assert links["heartbeat"]["interface"] == "eth1"
    assert links["public"]["interface"] == "eth0"
    assert links["serial"]["device"] == "/dev/ttyS1"
    assert doc["storage"]["use_drbd"] is False and doc["storage"]["use_lvm"] is False
    assert doc["storage"]["disks"] == {"node1": "/dev/vdb", "node2": "/dev/vdb"}
    assert [r["agent"] for r in doc["resource"]] == ["heartbeat:Filesystem", "heartbeat:IPaddr2"]
    vip = doc["resource"][1]["params"]
    assert (vip["ip"], vip["cidr_netmask"], vip["nic"]) == ("10.200.0.100", "24", "eth0")
    assert doc["nfs"]["vip"] == "10.200.0.100/24"
    assert doc["fencing"]["command"] == ["hasync", "lab", "fence", "{node}"]
    assert doc["fencing"]["mode"] == "required"


def test_cluster_toml_with_three_nodes_has_no_serial_link():
    doc = tomllib.loads(cluster_toml(LabSpec("t1", nodes=3)))
    assert [n["name"] for n in doc["node"]] == ["node1", "node2", "node3"]
    assert "serial" not in {link["name"] for link in doc["heartbeat"]["link"]}


def test_cluster_toml_passes_the_config_checker():
    config = pytest.importorskip("hasync.config")
    cluster = config.loads(cluster_toml(LabSpec("t1")), path="lab.toml")
    assert [n.name for n in cluster.nodes] == ["node1", "node2"]
    assert cluster.heartbeat.deadtime == 0.5
