"""The lab's own /etc/hasync/cluster.toml: data in, TOML text out (pure)."""

from __future__ import annotations

import json

from hasync_lab.ns.spec import (
    DISK_DEVICE,
    HEARTBEAT_IF,
    MOUNT_POINT,
    PREFIX,
    PUBLIC_IF,
    SERIAL_DEVICE,
    VIP,
    LabSpec,
)

MCAST_GROUP = "239.0.0.43"
VIP2 = "10.200.0.101"  # the second group's address (cluster_toml(groups=True))
MOUNT_POINT2 = "/srv/ha2"  # ... and its filesystem (a tmpfs: each node has one loop disk)
HB_PORT = 694


def _s(v: str) -> str:
    return json.dumps(v)  # a JSON string is a valid TOML basic string


def _arr(items) -> str:
    return "[" + ", ".join(_s(i) for i in items) + "]"


def _table(d: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {_s(v)}" for k, v in d.items()) + " }"


def cluster_toml(spec: LabSpec, groups: bool = False) -> str:
    """The config every node of the lab gets (identical on all nodes). *groups*: two
    resource groups (issue 17) instead of the one chain: "a" (the chain: the filesystem
    on the loop disk, the VIP) preferred on node1, "b" (a tmpfs at MOUNT_POINT2, VIP2)
    preferred on node2, both with auto_failback: each node serves one group."""
    nodes = spec.cluster_nodes
    out: list[str] = [
        f"# The namespace lab {spec.name!r}: written by `hasync lab up`; see docs/lab.md.",
        "",
        "[cluster]",
        f"name = {_s('lab-' + spec.name)}",
        'profile = "lab"',
        'preferred_node = "node1"',
        "",
    ]
    for n in nodes:
        out += ["[[node]]", f"name = {_s(n)}", f"address = {_s(spec.public_addr(n))}", ""]
    out += [
        "[heartbeat]",
        'keepalive = "100ms"',
        'warntime = "300ms"',
        'deadtime = "500ms"',
        'initdead = "1s"',
        "auto_failback = false",
        'auth_key = "/etc/hasync/authkey"',
        "ping = []",
        "",
        "[[heartbeat.link]]",
        'name = "heartbeat"',
        'kind = "udp-unicast"',
        f"interface = {_s(HEARTBEAT_IF)}",
        f"port = {HB_PORT}",
        f"addresses = {_table({n: spec.heartbeat_addr(n) for n in nodes})}",
        "",
        "[[heartbeat.link]]",
        'name = "public"',
        'kind = "udp-multicast"',
        f"interface = {_s(PUBLIC_IF)}",
        f"group = {_s(MCAST_GROUP)}",
        f"port = {HB_PORT}",
        "ttl = 1",
        "",
    ]
    if nodes[:2] == spec.serial_nodes and len(nodes) == 2:
        out += [
            "[[heartbeat.link]]",
            'name = "serial"',
            'kind = "serial"',
            f"device = {_s(SERIAL_DEVICE)}",
            "baud = 115200",
            "",
        ]
    out += [
        "[sync]",
        f"paths = {_arr(['/etc/exports', '/etc/hasync/sync-test'])}",
        f"ignore = {_arr(['*.swp', '*~', '.#*'])}",
        'debounce = "100ms"',
        'max_delay = "1s"',
        'reconcile_every = "10m"',
        'backup_dir = "/var/lib/hasync/backups"',
        'state_dir = "/var/lib/hasync/sync"',
        'ssh_key = "/etc/hasync/ssh/id_ed25519"',
        'known_hosts = "/etc/hasync/ssh/known_hosts"',
        "",
        "[storage]",
        "use_drbd = false               # the filesystem sits on each node's loop disk",
        "use_lvm = false",
        f"disks = {_table({n: DISK_DEVICE for n in nodes})}",
        'filesystem = "ext4"',
        f"mount_point = {_s(MOUNT_POINT)}",
        "",
        "[nfs]",
        f"vip = {_s(f'{VIP}/{PREFIX}')}",
        "",
    ]
    out += _groups() if groups else ["# The ordered chain: started top to bottom, stopped bottom to top.", *_chain("[[resource]]")]
    out += [
        "[fencing]",
        'mode = "required"',
        f"command = {_arr(['hasync', 'lab', 'fence', '{node}'])}",
        'timeout = "10s"',
        'on_stop_failure = "fence-self"',
        # the default self-fence is `reboot -f`: inside a lab node that reboots the host
        f"self_command = {_arr(['hasync', 'lab', 'fence', '{node}'])}",
        "",
    ]
    return "\n".join(out)


def _chain(table: str) -> list[str]:
    """The lab's chain: the filesystem on the loop disk, then the VIP (as *table* tables)."""
    return [
        table,
        'id = "fs"',
        'type = "ocf"',
        'agent = "heartbeat:Filesystem"',
        f"params = {_table({'device': DISK_DEVICE, 'directory': MOUNT_POINT, 'fstype': 'ext4'})}",
        'start_timeout = "10s"',
        'stop_timeout = "10s"',
        "",
        table,
        'id = "vip"',
        'type = "ocf"',
        'agent = "heartbeat:IPaddr2"',
        f"params = {_table({'ip': VIP, 'cidr_netmask': str(PREFIX), 'nic': PUBLIC_IF})}",
        'start_timeout = "10s"',
        'stop_timeout = "10s"',
        'monitor_interval = "2s"',
        "",
    ]


def _groups() -> list[str]:
    def group(gid: str, node: str) -> list[str]:
        return ["[[group]]", f"id = {_s(gid)}", f"preferred_node = {_s(node)}", "auto_failback = true", ""]

    return [
        "# Two resource groups, each failing over on its own (docs/failover.md, \"Resource groups\").",
        *group("a", "node1"), *_chain("[[group.resource]]"),
        *group("b", "node2"),
        "[[group.resource]]", 'id = "fs2"', 'type = "ocf"', 'agent = "heartbeat:Filesystem"',
        f"params = {_table({'device': 'ha2', 'directory': MOUNT_POINT2, 'fstype': 'tmpfs'})}",
        'start_timeout = "10s"', 'stop_timeout = "10s"', "",
        "[[group.resource]]", 'id = "vip2"', 'type = "ocf"', 'agent = "heartbeat:IPaddr2"',
        f"params = {_table({'ip': VIP2, 'cidr_netmask': str(PREFIX), 'nic': PUBLIC_IF})}",
        'start_timeout = "10s"', 'stop_timeout = "10s"', 'monitor_interval = "2s"', "",
    ]
