"""The namespace lab itself: nodes, ssh by name, serial cable, cuts, crash and heal."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.lab


def hasync(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hasync", *argv], capture_output=True, text=True, timeout=120
    )


def can_ping(lab, node: str, addr: str) -> bool:
    return lab.exec(node, ["ping", "-c", "1", "-W", "1", addr]).ok


def test_cli_exec_hostname(clean_lab):
    r = hasync("lab", "exec", "--name", clean_lab.name, "node1", "--", "hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node1"


def test_cli_exec_ssh_by_name(clean_lab):
    r = hasync("lab", "exec", "--name", clean_lab.name, "node1", "--", "ssh", "node2", "hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node2"


def test_cli_exec_passes_exit_status(clean_lab):
    r = hasync("lab", "exec", "--name", clean_lab.name, "client1", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7


def test_every_node_has_its_own_hostname_and_addresses(clean_lab):
    for node in clean_lab.nodes + clean_lab.clients:
        r = clean_lab.exec(node, ["sh", "-c", "hostname; ip -4 -o addr show dev eth0"], check=True)
        name, addr = r.stdout.splitlines()
        assert name == node
        assert f" {clean_lab.public_addr(node)}/24 " in addr


def test_ssh_between_all_nodes_by_name(clean_lab):
    r = clean_lab.exec("client1", ["ssh", "node1", "ssh", "node2-hb", "hostname"], check=True)
    assert r.stdout.strip() == "node2"


def test_hasync_runs_inside_a_node_with_the_lab_config(clean_lab):
    r = clean_lab.exec("node2", ["ssh", "node1", "hasync", "--version"], check=True)
    assert r.stdout.startswith("hasync ")
    r = clean_lab.exec("node1", ["cat", "/etc/hasync/cluster.toml"], check=True)
    assert 'profile = "lab"' in r.stdout
    mode = clean_lab.exec("node1", ["stat", "-c", "%a", "/etc/hasync/authkey"], check=True)
    assert mode.stdout.strip() == "600"


def test_etc_is_private_per_node(clean_lab):
    clean_lab.exec("node1", ["sh", "-c", "echo one > /etc/hasync/sync-test"], check=True)
    clean_lab.exec("node2", ["sh", "-c", "echo two > /etc/hasync/sync-test"], check=True)
    assert clean_lab.exec("node1", ["cat", "/etc/hasync/sync-test"]).stdout == "one\n"
    assert clean_lab.exec("node2", ["cat", "/etc/hasync/sync-test"]).stdout == "two\n"
    import os

    assert not os.path.exists("/etc/hasync/sync-test") or open("/etc/hasync/sync-test").read() not in (
        "one\n",
        "two\n",
    )


def _serial_roundtrip(lab, src: str, dst: str, payload: bytes) -> bytes:
    reader = lab.spawn(
        dst,
        ["timeout", "10", "head", "-c", str(len(payload)), lab.serial_device],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)  # the reader holds the tty open first, as on a real line
    lab.exec(src, ["sh", "-c", f"cat > {lab.serial_device}"], input=payload, check=True)
    out, _ = reader.communicate(timeout=15)
    return out


@pytest.mark.parametrize("src,dst", [("node1", "node2"), ("node2", "node1")])
def test_serial_cable_is_binary_exact_both_ways(clean_lab, src, dst):
    payload = bytes(range(256)) + b"\r\n\x03\x04\x1a" + bytes(range(255, -1, -1))
    assert _serial_roundtrip(clean_lab, src, dst, payload) == payload


def test_cut_heartbeat_stops_that_link_only(clean_lab):
    lab = clean_lab
    assert can_ping(lab, "node1", lab.heartbeat_addr("node2"))
    lab.cut("node1", "heartbeat")
    assert not can_ping(lab, "node1", lab.heartbeat_addr("node2"))
    assert can_ping(lab, "node1", lab.public_addr("node2"))
    assert lab.link_state("node1", "heartbeat") == "cut"
    lab.heal()
    assert can_ping(lab, "node1", lab.heartbeat_addr("node2"))


def test_cut_serial_drops_bytes(clean_lab):
    lab = clean_lab
    lab.cut("node2", "serial")
    reader = lab.spawn("node2", ["timeout", "2", "head", "-c", "3", lab.serial_device],
                       stdout=subprocess.PIPE)
    time.sleep(0.3)
    lab.exec("node1", ["sh", "-c", f"printf abc > {lab.serial_device}"], check=True)
    out, _ = reader.communicate(timeout=10)
    assert out == b""
    lab.heal("node2")
    assert _serial_roundtrip(lab, "node1", "node2", b"xyz") == b"xyz"


def test_crash_and_heal(clean_lab):
    lab = clean_lab
    sleeper = lab.spawn("node2", ["sleep", "1000"])
    assert sleeper.pid in lab.pids("node2")
    lab.exec("node2", ["sh", "-c", "echo kept > /etc/hasync/sync-test; touch /run/gone"], check=True)
    lab.crash("node2")
    assert sleeper.wait(timeout=10) is not None
    assert lab.is_down("node2")
    assert not can_ping(lab, "node1", lab.public_addr("node2"))
    assert lab.status()["nodes"]["node2"]["state"] == "crashed"
    lab.heal("node2")
    r = lab.exec("node1", ["ssh", "node2", "cat /etc/hasync/sync-test; ls /run/gone"])
    assert r.stdout == "kept\n", r  # disks survive a power loss, /run does not
    assert "/run/gone" in r.stderr, r


def test_fence_from_inside_a_node(clean_lab):
    lab = clean_lab
    r = lab.exec("node1", ["hasync", "lab", "fence", "node2"], timeout=60)
    assert r.exit_code == 0, r.stderr
    assert lab.is_down("node2")
    lab.heal()
    assert lab.exec("node1", ["ssh", "node2", "hostname"]).stdout.strip() == "node2"


def test_reset_kills_spawned_and_extra_state(clean_lab):
    lab = clean_lab
    lab.exec("node1", ["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"], check=True)
    lab.spawn("node1", ["sleep", "1000"])
    assert len(lab.pids("node1")) >= 3
    lab.exec("node1", ["ip", "addr", "add", f"{lab.vip}/24", "dev", "eth0"], check=True)
    lab.reset()
    assert lab.vip not in lab.exec("node1", ["ip", "-4", "addr"]).stdout
    assert lab.pids("node1") == [lab.sshd_pid("node1")]


def test_status_table_and_json(clean_lab):
    import json

    clean_lab.cut("node2", "public")
    r = hasync("lab", "status", "--name", clean_lab.name)
    assert r.returncode == 0, r.stderr
    for word in ("node1", "node2", "client1", "10.201.0.12", "pub:cut"):
        assert word in r.stdout
    r = hasync("lab", "status", "--name", clean_lab.name, "--json")
    st = json.loads(r.stdout)
    assert st["nodes"]["node2"]["links"]["public"] == "cut"
    assert st["nodes"]["node1"]["links"] == {"public": "up", "heartbeat": "up", "serial": "up"}
    assert st["nodes"]["node1"]["disk"].startswith("/dev/loop")


def test_lab_verbs_work_from_inside_a_node(clean_lab):
    import json

    lab = clean_lab
    r = lab.exec("node1", ["ssh", "client1", "hasync", "lab", "status", "--json"], check=True)
    assert json.loads(r.stdout)["name"] == lab.name
    lab.exec("client1", ["hasync", "lab", "cut", "node2", "heartbeat"], check=True)
    assert lab.link_state("node2", "heartbeat") == "cut"
    r = lab.exec("node1", ["hasync", "lab", "exec", "node2", "--", "hostname"], check=True)
    assert r.stdout == "node2\n"


MCAST_RECV = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 6941))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.0.0.43"), socket.inet_aton(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    print(s.recvfrom(100)[0].decode())
except socket.timeout:
    print("nothing")
"""

MCAST_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(5):
    s.sendto(b"beat", ("239.0.0.43", 6941))
"""


def _mcast(lab, wait: float) -> str:
    rx = lab.spawn("node2", ["python3", "-c", MCAST_RECV, lab.public_addr("node2"), str(wait)],
                   stdout=subprocess.PIPE)
    time.sleep(0.3)  # joined the group
    lab.exec("node1", ["python3", "-c", MCAST_SEND], check=True)
    out, _ = rx.communicate(timeout=wait + 10)
    return out.decode().strip()


def test_multicast_heartbeats_cross_the_public_net_unless_cut(clean_lab):
    assert _mcast(clean_lab, 10) == "beat"
    clean_lab.cut("node2", "public")
    assert _mcast(clean_lab, 1) == "nothing"


def test_reset_lets_a_fence_from_a_node_finish_first(clean_lab):
    """A daemon's fence still running when the test ends must not crash the next test's
    nodes: reset() waits for lab commands that came from nodes, then heals."""
    import os

    lab = clean_lab
    late_fence = subprocess.Popen(
        [sys.executable, "-c",
         f"import time; from hasync_lab.ns import Lab; time.sleep(1); Lab({lab.name!r}).crash('node2')"],
        env={**os.environ, "HASYNC_LAB_FROM_NODE": f"{lab.name}:node1"},
    )
    try:
        lab.reset()
        assert late_fence.wait(timeout=30) == 0  # it ran to the end, inside reset()
        assert lab.status_of("node2") == "up"
        assert lab.exec("node1", ["ssh", "node2", "hostname"]).stdout == "node2\n"
    finally:
        late_fence.kill()
        late_fence.wait()


def test_reset_with_files_gives_pristine_layers(clean_lab):
    lab = clean_lab
    lab.exec("node1", ["sh", "-c", "echo x > /etc/hasync/sync-test; echo y > /var/lib/leftover"],
             check=True)
    lab.reset(files=True)
    r = lab.exec("node1", ["sh", "-c", "ls /etc/hasync/sync-test /var/lib/leftover"])
    assert r.stdout == "" and r.exit_code != 0
    assert lab.exec("node1", ["ssh", "node2", "hostname"]).stdout == "node2\n"
    assert lab.exec("node1", ["cat", "/etc/hasync/cluster.toml"]).ok
