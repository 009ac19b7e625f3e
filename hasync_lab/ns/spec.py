"""The shape of a namespace lab, as pure data: names, addresses, files, command tuples.

Nothing here touches the system; hasync_lab.ns.lab applies what these functions return.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

PUBLIC_NET = "10.200.0"  # /24, shared by cluster nodes and clients (bridge "br-pub")
HEARTBEAT_NET = "10.201.0"  # /24, cluster nodes only (bridge "br-hb")
VIP = "10.200.0.100"
PREFIX = 24
PUBLIC_IF = "eth0"  # interface names inside every node
HEARTBEAT_IF = "eth1"
SERIAL_DEVICE = "/dev/ttyS1"  # the null-modem cable between node1 and node2
DISK_DEVICE = "/dev/vdb"  # each cluster node's loop disk, under the same name in every node
MOUNT_POINT = "/srv/ha"
LINKS = ("public", "heartbeat", "serial")
# Host directories each node sees as a private copy-on-write overlay (lower = the host's).
OVERLAYS = ("/etc", "/var/lib", "/var/log", "/root", "/srv", "/usr/local")
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
DEFAULT_ROOT = "/var/tmp/hasync-lab"


def default_name() -> str:
    return os.environ.get("HASYNC_LAB") or "hl"


def lab_root() -> str:
    """Where every lab keeps its state (disks, overlay layers, keys, namespace files).

    Not under /etc, /var/lib, /var/log, /root, /srv or /usr/local: those are overlay lower
    layers and overlayfs refuses an upper dir inside its lower dir.
    """
    return os.environ.get("HASYNC_LAB_DIR") or DEFAULT_ROOT


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(
            f"bad lab name {name!r}: use 1-16 lowercase letters/digits, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class LabSpec:
    name: str = "hl"
    nodes: int = 2
    clients: int = 1
    disk_size: str = "256M"

    def __post_init__(self) -> None:
        check_name(self.name)
        if not 2 <= self.nodes <= 9:
            raise ValueError(f"--nodes must be 2..9, not {self.nodes}")
        if not 0 <= self.clients <= 9:
            raise ValueError(f"--clients must be 0..9, not {self.clients}")
        if not re.match(r"^\d+[KMG]?$", self.disk_size):
            raise ValueError(f"bad --disk-size {self.disk_size!r} (e.g. 256M)")

    # -- names ------------------------------------------------------------------------
    @property
    def cluster_nodes(self) -> tuple[str, ...]:
        return tuple(f"node{i}" for i in range(1, self.nodes + 1))

    @property
    def client_nodes(self) -> tuple[str, ...]:
        return tuple(f"client{i}" for i in range(1, self.clients + 1))

    @property
    def all_nodes(self) -> tuple[str, ...]:
        return self.cluster_nodes + self.client_nodes

    def is_cluster_node(self, node: str) -> bool:
        return node in self.cluster_nodes

    def check_node(self, node: str) -> str:
        if node not in self.all_nodes:
            raise ValueError(f"lab {self.name!r} has no node {node!r} (nodes: {', '.join(self.all_nodes)})")
        return node

    def netns(self, node: str) -> str:
        return f"{self.name}-{node}"

    @property
    def switch_ns(self) -> str:
        return f"{self.name}-sw"

    @property
    def serial_nodes(self) -> tuple[str, str]:
        return ("node1", "node2")

    # -- addresses --------------------------------------------------------------------
    def public_addr(self, node: str) -> str:
        kind, i = _split(node)
        return f"{PUBLIC_NET}.{10 + i}" if kind == "node" else f"{PUBLIC_NET}.{200 + i}"

    def heartbeat_addr(self, node: str) -> str:
        kind, i = _split(node)
        if kind != "node":
            raise ValueError(f"{node} is a client: it has no heartbeat link")
        return f"{HEARTBEAT_NET}.{10 + i}"

    def links_of(self, node: str) -> tuple[str, ...]:
        """The links a node is cabled to."""
        if not self.is_cluster_node(node):
            return ("public",)
        if node in self.serial_nodes:
            return LINKS
        return ("public", "heartbeat")

    def switch_port(self, node: str, link: str) -> str:
        """The switch-side end of a node's veth (in the switch namespace)."""
        return f"{node}-{'pub' if link == 'public' else 'hb'}"

    def interfaces(self, node: str) -> dict[str, tuple[str, str]]:
        """link -> (interface inside the node, address/prefix)."""
        out = {"public": (PUBLIC_IF, f"{self.public_addr(node)}/{PREFIX}")}
        if self.is_cluster_node(node):
            out["heartbeat"] = (HEARTBEAT_IF, f"{self.heartbeat_addr(node)}/{PREFIX}")
        return out


def _split(node: str) -> tuple[str, int]:
    m = re.match(r"^(node|client)(\d+)$", node)
    if not m:
        raise ValueError(f"not a lab node name: {node!r}")
    return m.group(1), int(m.group(2))


# -- files written into each node's /etc ------------------------------------------------


def hosts_file(spec: LabSpec) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", ""]
    for n in spec.all_nodes:
        lines.append(f"{spec.public_addr(n)}\t{n}")
    for n in spec.cluster_nodes:
        lines.append(f"{spec.heartbeat_addr(n)}\t{n}-hb")
    lines.append(f"{VIP}\tvip")
    return "\n".join(lines) + "\n"


SSH_DIR = "/etc/hasync/ssh"  # the cluster's ssh key and known_hosts ([sync] defaults)


def sshd_dropin(node: str) -> str:
    """/etc/ssh/sshd_config.d/00-hasync-lab.conf: root by key only, the lab's keys.

    The Include line comes first in Debian's sshd_config, drop-ins are read in name order
    and the first value wins: "00-" beats whatever else the host has there.
    """
    return (
        "# written by `hasync lab up`\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        f"HostKey {SSH_DIR}/ssh_host_ed25519_key\n"
        f"AuthorizedKeysFile {SSH_DIR}/authorized_keys\n"
        "PidFile /run/sshd.pid\n"
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )


def ssh_dropin() -> str:
    """/etc/ssh/ssh_config.d/00-hasync-lab.conf: `ssh node2` works by name, without /root/.ssh."""
    return (
        "# written by `hasync lab up`\n"
        "Host *\n"
        f"    IdentityFile {SSH_DIR}/id_ed25519\n"
        f"    UserKnownHostsFile {SSH_DIR}/known_hosts\n"
        f"    GlobalKnownHostsFile {SSH_DIR}/known_hosts\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
        "    ConnectTimeout 5\n"
        "    GSSAPIAuthentication no\n"
        "    LogLevel ERROR\n"
    )


def known_hosts(spec: LabSpec, host_pubkeys: dict[str, str]) -> str:
    lines = []
    for n in spec.all_nodes:
        names = [n, spec.public_addr(n)]
        if spec.is_cluster_node(n):
            names += [f"{n}-hb", spec.heartbeat_addr(n)]
        key = " ".join(host_pubkeys[n].split()[:2])
        lines.append(f"{','.join(names)} {key}")
    return "\n".join(lines) + "\n"


# -- the node's mount namespace ------------------------------------------------------


@dataclass(frozen=True)
class DevNode:
    path: str  # relative to /dev
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int = 0o666


BASE_DEVS = (
    DevNode("null", "c", 1, 3),
    DevNode("zero", "c", 1, 5),
    DevNode("full", "c", 1, 7),
    DevNode("random", "c", 1, 8),
    DevNode("urandom", "c", 1, 9),
    DevNode("tty", "c", 5, 0),
    DevNode("ptmx", "c", 5, 2),
    DevNode("loop-control", "c", 10, 237, 0o660),
)


def node_setup_script(
    *,
    node: str,
    lab_dir: str,
    root: str,
    overlays: dict[str, tuple[str, str]],
    devs: tuple[DevNode, ...],
    serial_pty: str = "",
) -> str:
    """The shell script run once in a node's fresh mount+UTS namespace (inside its netns).

    overlays: mount point -> (upper dir, work dir). devs: device nodes for the node's
    private /dev (a tmpfs, so nothing is ever created in the host's /dev).
    """
    q = _q
    staging = f"{lab_dir}/nodes/{node}/dev"
    s = [
        "set -e",
        f"hostname {q(node)}",
        # Forget the host's namespace files and /run mounts: a copy here would keep other
        # nodes' namespaces alive after `lab down`.
        "awk '{print $5}' /proc/self/mountinfo | "
        f"grep -E '^(/run|{re.escape(root)})(/|$)' | sort -r | "
        "while read -r m; do umount -l \"$m\" 2>/dev/null || true; done",
        # sysfs of this network namespace (like `ip netns exec`)
        "umount -l /sys 2>/dev/null || true",
        "mount -t sysfs -o nosuid,nodev,noexec sysfs /sys",
    ]
    for target, (upper, work) in overlays.items():
        s.append(
            f"mount -t overlay overlay -o lowerdir={q(target)},upperdir={q(upper)},workdir={q(work)} {q(target)}"
        )
    s += [
        "mount -t tmpfs -o mode=0755,size=64m,nosuid,nodev tmpfs /run",
        "mkdir -p /run/sshd /run/lock /run/hasync",
        # a private /dev: built in a staging dir, then moved over /dev
        f"mkdir -p {q(staging)}",
        f"mount -t tmpfs -o mode=0755,size=1m,nosuid hasync-lab-dev {q(staging)}",
        f"cd {q(staging)}",
        "mkdir -p pts shm",
        "mount --bind /dev/pts pts",
        "mount -t tmpfs -o mode=1777,nosuid,nodev shm shm",
        "ln -s /proc/self/fd fd",
        "ln -s /proc/self/fd/0 stdin",
        "ln -s /proc/self/fd/1 stdout",
        "ln -s /proc/self/fd/2 stderr",
    ]
    for d in devs:
        s.append(f"mknod -m {d.mode:o} {q(d.path)} {d.kind} {d.major} {d.minor}")
    if serial_pty:
        s.append(f"touch {q(SERIAL_DEVICE[5:])}")
        s.append(f"mount --bind {q(serial_pty)} {q(SERIAL_DEVICE[5:])}")
    s += ["cd /", f"mount --move {q(staging)} /dev"]
    return "\n".join(s) + "\n"


def rebind_serial_script(serial_pty: str) -> str:
    """Point the node's /dev/ttyS1 at a new pty (after the relay restarted)."""
    d = SERIAL_DEVICE
    return (
        f"umount -l {d} 2>/dev/null || true\n"
        f"[ -e {d} ] || touch {d}\n"
        f"mount --bind {_q(serial_pty)} {d}\n"
    )


def _q(s: str) -> str:
    return shlex.quote(s)
