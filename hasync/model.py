"""The cluster model: frozen dataclasses that hasync.config builds from cluster.toml.

Durations are floats in seconds. Every object keeps where it came from (``src``:
"file:line") so later checks can name the place of a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

LinkKind = Literal["udp-unicast", "udp-multicast", "udp-broadcast", "serial"]
ResourceType = Literal["heartbeat", "lsb", "systemd", "ocf", "service"]
FencingMode = Literal["required", "optional", "off"]
StopFailure = Literal["fence-self", "reboot", "block"]


@dataclass(frozen=True)
class Node:
    name: str  # must equal `uname -n` on that node
    address: str  # management/public address: ssh, unison, fab
    src: str = ""


@dataclass(frozen=True)
class Link:
    """One heartbeat medium."""

    name: str
    kind: LinkKind
    interface: str = ""  # udp kinds: the interface to send on / bind to
    port: int = 694  # udp kinds
    group: str = ""  # udp-multicast: group address
    ttl: int = 1  # udp-multicast
    # udp-unicast: node name -> that node's address on this link (ha.cf `ucast IFACE PEER`);
    # a node sends to every address but its own, so the file is identical on both nodes.
    addresses: dict[str, str] = field(default_factory=dict)
    device: str = ""  # serial: the tty, e.g. /dev/ttyS1
    baud: int = 19200  # serial
    src: str = ""


@dataclass(frozen=True)
class Heartbeat:
    # Built-in timings (docs/failover.md "Choosing timings"; measured in docs/benchmarks.md
    # "Built-in timings"). Not heartbeat's 1 s / 30 s: a user who sets nothing fails over
    # in ~5 s (Corosync: token 3 s + consensus 3.6 s; keepalived ~3.5 s), and deadtime is
    # still ~10x the longest silence and ~200x the worst late wake-up of the bench's loaded
    # soak (SCHED_FIFO or not), ~15x QEMU's 300 ms live-migration target, over 3x the ~1.5 s
    # a TCG guest lagged: power fencing does not shoot a node that was only slow.
    keepalive: float = 0.5
    warntime: float = 2.0  # a gap of 4 keepalives on every link is worth a warning
    deadtime: float = 5.0
    # at start, a peer never heard is dead after this: 30 s covers a switch port that
    # spends ~30 s in STP listening/learning at boot (it costs nothing once both are up)
    initdead: float = 30.0
    auto_failback: bool = False
    auth_key: str = "/etc/hasync/authkey"  # must be mode 0600
    links: tuple[Link, ...] = ()
    ping: tuple[str, ...] = ()  # tiebreaker addresses: no takeover if none answers
    src: str = ""
    history: int = 200  # failover records kept in <state_dir>/history.jsonl (hasync history)


@dataclass(frozen=True)
class OnChange:
    path: str  # a synced path (file or directory prefix)
    command: str  # run on the receiving node, once per batch, via /bin/sh -c
    src: str = ""


@dataclass(frozen=True)
class Sync:
    paths: tuple[str, ...] = ()  # absolute paths kept identical on both nodes
    ignore: tuple[str, ...] = ()  # glob patterns (unison -ignore 'Name ...')
    debounce: float = 0.1  # quiet time before a batch runs
    max_delay: float = 1.0  # a batch runs at the latest this long after its first event
    reconcile_every: float = 600.0  # full unison run this often (0: only at start)
    backup_dir: str = "/var/lib/hasync/backups"
    state_dir: str = "/var/lib/hasync/sync"  # journal, unison archives, status
    ssh_key: str = "/etc/hasync/ssh/id_ed25519"
    known_hosts: str = "/etc/hasync/ssh/known_hosts"
    on_change: tuple[OnChange, ...] = ()
    keep_conflicts: float = 0.0  # seconds a conflict's losing version is kept (0: until resolved)
    src: str = ""


@dataclass(frozen=True)
class Storage:
    use_drbd: bool = True  # false in the namespace lab: the filesystem sits on the disk itself
    use_lvm: bool = True
    drbd_resource: str = "r0"
    drbd_device: str = "/dev/drbd0"
    drbd_port: int = 7789
    drbd_protocol: str = "C"
    # fixed resync rate (DRBD's units: K, M, G bytes/s). DRBD 8.4's own default is
    # 250 KiB/s (a 1 TiB disk would take ~7 weeks to sync); the DRBD guide's rule is ~30 %
    # of the slower of the replication link and the disks: 33M for gigabit Ethernet
    resync_rate: str = "33M"
    disks: dict[str, str] = field(default_factory=dict)  # node -> backing disk
    replication: dict[str, str] = field(default_factory=dict)  # node -> replication address
    vg: str = "havg"
    lv: str = "data"
    lv_size: str = "100%FREE"
    filesystem: str = "ext4"
    mount_point: str = "/srv/ha"
    mount_options: str = ""
    # lvm.conf's system_id_source, which bootstrap writes on both nodes when set ("uname",
    # "machineid", "appmachineid"); LVM-activate's vg_access_mode=system_id needs it
    lvm_system_id: str = ""
    src: str = ""


@dataclass(frozen=True)
class Export:
    path: str
    clients: str = "*"
    options: str = "rw,sync,no_subtree_check"
    fsid: int | None = None  # a fixed fsid keeps file handles valid across failover
    src: str = ""


@dataclass(frozen=True)
class Nfs:
    state_dir: str = ""  # where /var/lib/nfs lives on the replicated filesystem
    exports: tuple[Export, ...] = ()
    vip: str = ""  # the cluster address clients mount and sm-notify binds to (-v)
    src: str = ""
    # NFSv4 grace and lease (nfs.conf [nfsd] grace-time, lease-time; the kernel's are 90 s
    # each). Grace also bounds the NLM (v3 lock) grace. docs/nfs.md says why 20 s.
    grace_time: float = 20.0
    lease_time: float = 20.0


@dataclass(frozen=True)
class Resource:
    """One link of the ordered chain: started in order, stopped in reverse."""

    id: str
    type: ResourceType
    # heartbeat: script name in /etc/ha.d/resource.d or /etc/init.d; lsb: init script;
    # systemd: unit; ocf: "provider:agent" (e.g. "heartbeat:IPaddr2");
    # service: a logical name mapped to the distro profile's service(s) ("nfsserver").
    agent: str
    args: tuple[str, ...] = ()  # heartbeat kind: script::arg1::arg2
    params: dict[str, str] = field(default_factory=dict)  # ocf: OCF_RESKEY_<k>=<v>
    start_timeout: float = 20.0
    stop_timeout: float = 20.0
    monitor_timeout: float = 20.0
    monitor_interval: float = 0.0  # 0: not monitored
    max_restarts: int = 2  # failed monitors restarted locally before failing over
    # ocf: run as this node's instance of a two-node promotable clone (start + promote,
    # demote; only "promoted" counts as running): hasync.operations.ocf. The config reader
    # sets it from `promotable = true|false`, else from the agent's metadata.
    promotable: bool = False
    src: str = ""


# the id of the one group a top-level [[resource]] chain (or a one-line haresources) forms
IMPLICIT_GROUP = "main"


@dataclass(frozen=True)
class Group:
    """One resource group (a haresources line, a [[group]] table): an ordered chain that
    fails over as a whole and runs on one node at a time; each group has its own owner,
    so with two groups both nodes can serve (heartbeat v1's active/active)."""

    id: str
    resources: tuple[Resource, ...]
    preferred_node: str = ""  # "" in a [[group]]: [cluster].preferred_node
    auto_failback: bool | None = None  # None: [heartbeat].auto_failback
    src: str = ""
    # the group's own storage and NFS exports ([group.storage], [group.nfs]; groups after
    # the first only: the first group's are [storage] and [nfs]); None: bootstrap lays
    # down nothing for the group (its chain uses what is already there)
    storage: Storage | None = None
    nfs: Nfs | None = None


@dataclass(frozen=True)
class Fencing:
    mode: FencingMode = "required"
    # argv template run on the survivor to fence the peer; "{node}" and "{address}" are
    # replaced, e.g. ["fence_ipmilan", "-a", "{address}", ...] or a lab script.
    command: tuple[str, ...] = ()
    timeout: float = 30.0
    on_stop_failure: StopFailure = "fence-self"
    self_command: tuple[str, ...] = ()  # how this node fences itself (default: reboot -f)
    src: str = ""


@dataclass(frozen=True)
class ClusterInfo:
    name: str = "hasync"
    profile: str = "debian12"  # a distro profile in profiles/
    preferred_node: str = ""  # where the chain runs when both nodes are up (haresources' first word)
    # who runs the chain: hasync's failover daemon, or Pacemaker after `hasync export
    # pacemaker` (bootstrap then leaves hasync-failover off, doctor speaks Pacemaker)
    manager: str = "hasync"
    src: str = ""


@dataclass(frozen=True)
class Cluster:
    path: str  # the config file this came from
    cluster: ClusterInfo
    nodes: tuple[Node, ...]
    heartbeat: Heartbeat
    sync: Sync
    storage: Storage
    nfs: Nfs
    resources: tuple[Resource, ...]
    fencing: Fencing
    haresources: str = ""  # when the chain came from a haresources file
    # the distro profile [cluster].profile names, resolved once by hasync.config.load
    # (a profile that cannot be loaded is a config error there); None only for clusters
    # built by hand (tests)
    profile: Profile | None = None
    # [[group]] tables (or a haresources file of several lines); () when the chain is the
    # top-level [[resource]] list, which is then one group (``resource_groups``).
    # ``resources`` is always every resource of every group, in order.
    groups: tuple[Group, ...] = ()

    def __post_init__(self) -> None:
        if not self.groups:
            return
        every = tuple(r for g in self.groups for r in g.resources)
        if not self.resources:
            object.__setattr__(self, "resources", every)
        elif self.resources != every:
            raise ValueError("Cluster.resources must be the groups' resources in order")

    def resource_groups(self) -> tuple[Group, ...]:
        """Every resource group with its preferred node and auto_failback resolved (the
        [cluster] and [heartbeat] values where the group gives none). A top-level chain is
        one group, IMPLICIT_GROUP."""
        groups = self.groups or (Group(IMPLICIT_GROUP, self.resources, src=self.cluster.src),)
        return tuple(replace(g, preferred_node=g.preferred_node or self.cluster.preferred_node,
                             auto_failback=self.heartbeat.auto_failback if g.auto_failback is None else g.auto_failback)
                     for g in groups)

    def group_storage(self) -> tuple[GroupStorage, ...]:
        """The storage bootstrap lays down, per group that has any: the first group's is
        [storage] and [nfs], a later group's its [group.storage] and [group.nfs]."""
        out = []
        for i, g in enumerate(self.resource_groups()):
            if i == 0:
                out.append(GroupStorage(g, self.storage, self.nfs))
            elif g.storage is not None:
                out.append(GroupStorage(g, g.storage, g.nfs or Nfs(grace_time=self.nfs.grace_time, lease_time=self.nfs.lease_time)))
        return tuple(out)

    def group(self, gid: str) -> Group:
        for g in self.resource_groups():
            if g.id == gid:
                return g
        raise KeyError(f"no resource group {gid!r} in {self.path}")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in {self.path}")

    def peer_of(self, name: str) -> Node:
        others = [n for n in self.nodes if n.name != name]
        if len(others) != 1:
            raise KeyError(f"{name!r} has no single peer in {self.path}")
        return others[0]


@dataclass(frozen=True)
class GroupStorage:
    """One group's storage as bootstrap lays it down (``Cluster.group_storage``)."""

    group: Group
    storage: Storage
    nfs: Nfs


@dataclass(frozen=True)
class Profile:
    """A distro profile (profiles/<name>.toml)."""

    name: str
    init: Literal["systemd", "sysv"]  # sysv: chkconfig + /etc/init.d
    # logical service -> the distro's service names, e.g. "nfsserver" -> ("nfs-server",)
    services: dict[str, tuple[str, ...]]
    paths: dict[str, str]  # e.g. "exports" -> "/etc/exports", "lvm_conf" -> ...
    options: dict[str, object] = field(default_factory=dict)  # anything else the bootstrap needs
    src: str = ""
    # what the profile really supports ([supported]: os, drbd_kernel, minimum tool versions,
    # tested, import_only, note); hasync.bootstrap.host checks a host against it
    supported: dict[str, object] = field(default_factory=dict)
