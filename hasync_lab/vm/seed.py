"""Per-VM seed disks: the hasync source tree, the VM scripts and the VM's identity.

A seed is a small ext4 image (label ``hasync-seed``) made with ``mkfs.ext4 -d`` in well
under a second; the guest mounts it read-only at /opt/hasync/seed. It holds

    src/         this checkout's hasync/, profiles/, bootstrap/, failover/ (with .pyc made
                 by the host's Python 3.11, the same version as the guest's)
    vm/          rc (stage-2 boot), agent.py (the console command agent), fence (the BMC
                 wire's switch), fence_hasynclab (the same as a fence-agents agent),
                 nfsdcld.init (nfsdcld as an LSB script, for busybox init)
    node/        files copied onto the VM's root on its first boot: /etc/hostname,
                 /etc/hosts, /etc/hasync/cluster.toml, /etc/hasync-vm/net.sh, ssh keys
    pkg/         nodes of a lab given a .deb (the systemd field run): `make deb`'s
                 hasync_VERSION_all.deb, which the run installs with apt (package.py)

So editing hasync or the VM scripts never rebuilds the cached base image.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hasync_lab.vm.image_build import GUEST_DIR
from hasync_lab.vm.package import SEED_PKG

SRC_ROOT = Path(__file__).resolve().parents[2]  # the checkout (…/hasync_lab/vm -> …)
SRC_DIRS = ("hasync", "profiles", "bootstrap", "failover")  # the product only: guests are nodes
SEED_SCRIPTS = {"rc": 0o755, "agent.py": 0o644, "fence": 0o755, "fence_hasynclab": 0o755,
                "nfsdcld.init": 0o755}

PUBLIC_NET = "192.0.2"  # TEST-NET-1, on the lab's own emulated L2 only
REPL_NET = "198.51.100"  # TEST-NET-2: the dedicated replication/heartbeat L2
VIP = f"{PUBLIC_NET}.10"


@dataclass(frozen=True)
class Guest:
    name: str
    role: str  # "node" | "client"
    public: str  # address on eth0
    replication: str = ""  # address on eth1 (nodes only)
    extra_files: dict[str, str] = field(default_factory=dict)
    mem_mib: int = 0  # the VM's memory; 0: qemu.MEM_MIB (the Pacemaker trial's nodes need more)


def default_guests(clients: int = 1, node_mem_mib: int = 0) -> tuple[Guest, ...]:
    """node1 and node2 (the cluster) and *clients* NFS clients client1.. on the public L2;
    *node_mem_mib*: the nodes' memory (0: qemu's default for the lab)."""
    if not 0 <= clients <= 8:
        raise ValueError(f"clients: 0..8, not {clients}")
    nodes = (
        Guest("node1", "node", f"{PUBLIC_NET}.11", f"{REPL_NET}.1", mem_mib=node_mem_mib),
        Guest("node2", "node", f"{PUBLIC_NET}.12", f"{REPL_NET}.2", mem_mib=node_mem_mib),
    )
    return nodes + tuple(Guest(f"client{i}", "client", f"{PUBLIC_NET}.{20 + i}") for i in range(1, clients + 1))


FENCE_COMMAND = ("/usr/local/sbin/hasync-vm-fence", "--action", "off", "{node}")
# start/stop/monitor timeout of every resource of the VM chain (the field default is 20 s):
# see the comment above the chain in cluster_toml and docs/vm.md "Timeouts"
OP_TIMEOUT = "120s"


def cluster_toml(guests: tuple[Guest, ...], init: str = "busybox", op_timeout: str = "") -> str:
    """The VM lab's /etc/hasync/cluster.toml (same schema as profiles/cluster/example.toml).
    Under *init* "systemd" the chain has no nfsdcld resource: nfs-server.service pulls
    Debian's nfsdcld.service in, as on a real node. *op_timeout* (the lab's seeds:
    OP_TIMEOUT) is every resource's start/stop/monitor timeout; without it hasync's
    default, for callers that set their own (the fault campaign's campaign_toml)."""
    nodes = [g for g in guests if g.role == "node"]
    n1, n2 = nodes[0], nodes[1]
    clients = [g for g in guests if g.role == "client"]
    # the ping tiebreak: a node that cannot reach the clients' network does not take over
    # (and its DRBD handler does not fence the peer); the first client stands in for the
    # router a real site would ping
    ping = ", ".join(f'"{g.public}"' for g in clients[:1])
    node_tables = "".join(f'\n[[node]]\nname = "{g.name}"\naddress = "{g.public}"\n' for g in nodes)
    fence = ", ".join(f'"{a}"' for a in FENCE_COMMAND)
    ops = "".join(f'{k} = "{op_timeout}"\n' for k in ("start_timeout", "stop_timeout", "monitor_timeout") if op_timeout)
    # nfsdcld (the NFSv4 client records, /var/lib/nfs/nfsdcld: on the replicated disk through
    # bootstrap's symlink) must run before nfsd starts, or nfsd tracks clients the legacy way
    # and the grace period cannot end early. Under systemd nfs-server.service pulls it in;
    # under busybox init (Debian ships nfsdcld with a unit only) the lab brings a small LSB
    # script for it (hasync_lab/vm/guest/nfsdcld.init), run by the chain before nfsd.
    # systemd restarts a daemon that died (Restart=on-failure, RestartSec 1 s; KillMode=process
    # leaves the chain running for the new daemon to adopt): the peer must not declare it
    # dead meanwhile, and under TCG python takes 3-6 s to start (docs/vm.md)
    deadtime = "12s" if init == "systemd" else "6s"
    nfsdcld = "" if init == "systemd" else f'''# nfsdcld before nfsd: busybox init has no nfs-server.service to pull it in
[[resource]]
id = "nfsdcld"
type = "lsb"
agent = "nfsdcld"
{ops}'''
    return f"""# The hasync VM lab: two qemu nodes with real DRBD 8.4, LVM and kernel NFS.
# Written by `hasync lab up --vm` (hasync_lab/vm/seed.py); edit there, not here.

[cluster]
name = "vm-lab"
profile = "debian12"
preferred_node = "{n1.name}"
{node_tables}
[heartbeat]
# generous for TCG guests on a shared 2-core host: heartbeats arrive up to ~1.5 s late
keepalive = "500ms"
warntime = "2s"
deadtime = "{deadtime}"
initdead = "20s"
auto_failback = false
auth_key = "/etc/hasync/authkey"
ping = [{ping}]

[[heartbeat.link]]
name = "replication"
kind = "udp-unicast"
interface = "eth1"
port = 694
addresses = {{ {n1.name} = "{n1.replication}", {n2.name} = "{n2.replication}" }}

[[heartbeat.link]]
name = "public"
kind = "udp-multicast"
interface = "eth0"
group = "239.0.0.43"
port = 694
ttl = 1

[[heartbeat.link]]
name = "serial"
kind = "serial"
device = "/dev/ttyS1"
baud = 115200

[sync]
paths = ["/etc/exports", "/etc/hasync", "/etc/drbd.d"]
ignore = ["*.swp", "*~", ".#*"]
debounce = "100ms"
max_delay = "1s"
reconcile_every = "10m"

[[sync.on_change]]
path = "/etc/exports"
command = "exportfs -ra"

[storage]
use_drbd = true
use_lvm = true
drbd_resource = "r0"
drbd_device = "/dev/drbd0"
drbd_port = 7789
drbd_protocol = "C"
resync_rate = "200M"   # the lab's disks are small; under TCG this gives ~20 MB/s
disks = {{ {n1.name} = "/dev/vdb", {n2.name} = "/dev/vdb" }}
replication = {{ {n1.name} = "{n1.replication}", {n2.name} = "{n2.replication}" }}
vg = "havg"
lv = "data"
filesystem = "ext4"
mount_point = "/srv/ha"
lvm_system_id = "uname"   # lvm.conf system_id_source, for the chain's LVM-activate

[nfs]
vip = "{VIP}/24"
state_dir = "/srv/ha/nfs-state"
grace_time = "20s"
lease_time = "20s"

[[nfs.export]]
path = "/srv/ha/export"
clients = "{PUBLIC_NET}.0/24"
options = "rw,sync,no_subtree_check"
fsid = 1

# The chain of profiles/cluster/example.toml in `hasync check`'s order (nfsserver and
# exportfs before the VIP), with two differences, each said where it is (docs/vm.md
# "The VM cluster's chain"): nfsdcld as an LSB script (busybox init), portblock around the
# NFS start (fast client reconnects after a failover, the field notes' recipe).
#
# Every operation's timeout (lab figures, docs/vm.md "Timeouts"): under TCG on a busy
# 2-core host an OCF agent's monitor takes 2-7 s, the daemon probes the whole chain at once
# on the guest's one vCPU (~25 s for all at host load 7, up to 72 s for the ten of this
# chain at load 11), the NFS init script's start took over 20 s at host load 4.5; real
# hardware does each in well under a second.
# drbd-utils' promotable agent, as the example: the chain runs its start (up, Secondary,
# connected) then promote (Primary); the release demotes it (docs/failover.md)
[[resource]]
id = "drbd"
type = "ocf"
agent = "linbit:drbd"
params = {{ drbd_resource = "r0" }}
{ops}
[[resource]]
id = "vg"
type = "ocf"
agent = "heartbeat:LVM-activate"
params = {{ vgname = "havg", vg_access_mode = "system_id" }}
{ops}
[[resource]]
id = "fs"
type = "ocf"
agent = "heartbeat:Filesystem"
params = {{ device = "/dev/havg/data", directory = "/srv/ha", fstype = "ext4" }}
{ops}
# portblock (resource-agents) around the NFS start, as the field does for fast NFS
# failover: NFS's port is DROPped on the VIP until nfsd serves (a client that got a RST
# from a half-started server backs off for seconds), then unblocked, and the clients'
# TCP connections recorded by the active node (its monitor, on the replicated disk) are
# "tickled": a bare ACK makes each client answer, get a RST and reconnect at once
# instead of waiting out its retransmission backoff.
[[resource]]
id = "nfs-block"
type = "ocf"
agent = "heartbeat:portblock"
params = {{ action = "block", protocol = "tcp", portno = "2049", ip = "{VIP}", direction = "in" }}
{ops}
{nfsdcld}
# The NFS server as profiles/cluster/example.toml runs it: the nfsserver agent (Debian's
# init script under busybox init; under systemd nfs-server.service, the scope put in by
# drop-ins of the agent's own) with one NFSv4 server scope
# on both nodes, no sm-notify of its own (the notify resource sends it last); no
# nfs_shared_infodir: /var/lib/nfs is bootstrap's symlink onto the replicated disk. The
# init script also loads bootstrap's /etc/exports (fsid=), the same export as "exports".
[[resource]]
id = "nfs"
type = "ocf"
agent = "heartbeat:nfsserver"
params = {{ nfs_server_scope = "{VIP}", nfs_no_notify = "true" }}
{ops}
[[resource]]
id = "exports"
type = "ocf"
agent = "heartbeat:exportfs"
params = {{ directory = "/srv/ha/export", clientspec = "{PUBLIC_NET}.0/24", options = "rw,sync,no_subtree_check", fsid = "1" }}
{ops}
[[resource]]
id = "vip"
type = "ocf"
agent = "heartbeat:IPaddr2"
params = {{ ip = "{VIP}", cidr_netmask = "24", nic = "eth0" }}
monitor_interval = "5s"
{ops}
# sm-notify -f -v VIP once the exports and the VIP are up: NFSv3 clients reclaim their locks
[[resource]]
id = "notify"
type = "ocf"
agent = "heartbeat:nfsnotify"
params = {{ source_host = "{VIP}" }}
{ops}
[[resource]]
id = "nfs-unblock"
type = "ocf"
agent = "heartbeat:portblock"
params = {{ action = "unblock", protocol = "tcp", portno = "2049", ip = "{VIP}", direction = "in", tickle_dir = "/srv/ha" }}
monitor_interval = "5s"
{ops}
[fencing]
mode = "required"
command = [{fence}]
timeout = "60s"   # the lab's BMC wire answers in 3.5-6 s; slower under load
on_stop_failure = "fence-self"
"""


def hosts_file(guests: tuple[Guest, ...]) -> str:
    lines = ["127.0.0.1\tlocalhost", f"{VIP}\tnfs-vip"]
    for g in guests:
        lines.append(f"{g.public}\t{g.name}")
        if g.replication:
            lines.append(f"{g.replication}\t{g.name}-repl")
    return "\n".join(lines) + "\n"


def net_script(g: Guest) -> str:
    lines = ["#!/bin/sh", "# this VM's addresses (written by hasync lab up --vm)", "ip link set lo up",
             "ip link set eth0 up", f"ip addr add {g.public}/24 dev eth0"]
    if g.replication:
        lines += ["ip link set eth1 up", f"ip addr add {g.replication}/24 dev eth1"]
    return "\n".join(lines) + "\n"


def lab_ssh_key(lab_dir: Path) -> tuple[Path, Path]:
    """The lab's own ssh key pair (made once per lab): root on every VM trusts it."""
    key = lab_dir / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hasync-vm-lab", "-f", str(key)],
                       check=True, capture_output=True)
    return key, key.with_suffix(".pub")


def source_tree(dest: Path) -> None:
    """Copy this checkout's hasync code and data into *dest* and precompile it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".git", "*.egg-info")
    for name in SRC_DIRS:
        src = SRC_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)
    compileall.compile_dir(str(dest / "hasync"), quiet=1, ddir="/opt/hasync/seed/src/hasync")


def lab_cluster_toml(guests: tuple[Guest, ...], init: str = "busybox") -> str:
    """The cluster.toml a lab's nodes are seeded with: cluster_toml for *init* with the
    TCG-sized operation timeouts (OP_TIMEOUT). What a test that rewrote it puts back."""
    return cluster_toml(guests, init, OP_TIMEOUT)


def make_seed(out: Path, g: Guest, guests: tuple[Guest, ...], lab_dir: Path, init: str = "busybox",
              deb: Path | None = None) -> Path:
    """Write the seed image for guest *g* to *out* (replacing it); a node's carries *deb*
    in pkg/ when given."""
    key, pub = lab_ssh_key(lab_dir)
    with tempfile.TemporaryDirectory(prefix="hasync-seed-", dir=str(lab_dir)) as tmp:
        root = Path(tmp)
        source_tree(root / "src")
        vm = root / "vm"
        vm.mkdir()
        for name, mode in SEED_SCRIPTS.items():
            shutil.copy2(GUEST_DIR / name, vm / name)
            (vm / name).chmod(mode)
        if deb is not None and g.role == "node":
            (root / SEED_PKG).mkdir()
            shutil.copyfile(deb, root / SEED_PKG / deb.name)
            (root / SEED_PKG / deb.name).chmod(0o644)
        node = root / "node"
        files = {
            "etc/hostname": g.name + "\n",
            "etc/hosts": hosts_file(guests),
            "etc/hasync-vm/net.sh": net_script(g),
            "etc/hasync-vm/role": g.role + "\n",
            "root/.ssh/authorized_keys": pub.read_text(),
            "root/.ssh/id_ed25519": key.read_text(),
            "root/.ssh/id_ed25519.pub": pub.read_text(),
            "root/.ssh/config": "StrictHostKeyChecking accept-new\nUserKnownHostsFile /root/.ssh/known_hosts\n",
        }
        if g.role == "node":
            files["etc/hasync/cluster.toml"] = lab_cluster_toml(guests, init)
        files.update(g.extra_files)
        for rel, text in files.items():
            p = node / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        (node / "root").chmod(0o700)
        (node / "root/.ssh").chmod(0o700)
        for p in (node / "root/.ssh").iterdir():
            p.chmod(0o600)
        tmp_img = out.with_suffix(".tmp")
        with open(tmp_img, "wb") as f:
            f.truncate(64 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "hasync-seed", "-d", str(root), str(tmp_img)],
                       check=True, capture_output=True)
        os.replace(tmp_img, out)
    return out
