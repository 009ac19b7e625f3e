"""heartbeat v1 ``resource.d`` scripts -> their OCF agents (pure), shared by the Pacemaker
export (hasync.export), ``hasync haresources import --ocf`` and ``hasync check``.

heartbeat 3's ``/etc/ha.d/resource.d`` scripts are thin wrappers: each turns its
``script::arg1::arg2`` arguments into ``OCF_RESKEY_*`` variables and runs the OCF agent of
the same job. The mapping below follows those wrappers argument by argument (read in
heartbeat 3.0.6's resource.d), so a haresources line means the same thing in Pacemaker.
A name heartbeat does not ship in resource.d was looked up in /etc/init.d: an LSB script.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from hasync import model

Pairs = tuple[tuple[str, str], ...]  # (name, value) in order, as hasync.export.cib_model

# Every script in /etc/ha.d/resource.d on Debian: heartbeat 3.0.6's, and drbd-utils'
# drbddisk and drbdupper (which stay when heartbeat is uninstalled).
RESOURCE_D = (
    "AudibleAlarm", "Delay", "Filesystem", "ICP", "IPaddr", "IPaddr2", "IPsrcaddr", "IPv6addr",
    "LVM", "LinuxSCSI", "MailTo", "OCF", "Raid1", "SendArp", "ServeRAID", "WAS", "WinPopup",
    "Xinetd", "apache", "db2", "drbddisk", "drbdupper", "hto-mapfuncs", "ids", "portblock",
)

# SLES-era NFS init scripts (the field notes' "nfsboot nfsserver nfslock"): resource-agents
# replaced all three; nfsboot and nfslock only ever ran sm-notify / stopped lockd, which is
# nfsnotify's job (after the exports and the VIP are up).
NFS_NOTIFY_SCRIPTS = ("nfsboot", "nfslock")


class NoEquivalent(Exception):
    """This resource has no Pacemaker equivalent the exporter can write; the message says
    what to do instead."""


@dataclass(frozen=True)
class Agent:
    standard: str
    type: str
    provider: str = ""
    params: Pairs = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class NfsContext:
    """What the NFS scripts' equivalents need beyond their (empty) arguments."""

    vip: str = ""  # the cluster address: sm-notify's source, nfsserver's nfs_ip
    shared_infodir: str = ""  # set when the profile bind-mounts /var/lib/nfs (not a symlink)


def _ocf(agent: str, *params: tuple[str, str], provider: str = "heartbeat", warnings: tuple[str, ...] = ()) -> Agent:
    return Agent("ocf", agent, provider, tuple((k, v) for k, v in params if v != ""), warnings)


def _count(args: tuple[str, ...], lo: int, hi: int, usage: str) -> None:
    if not lo <= len(args) <= hi or any(a == "" for a in args[:lo]):
        raise NoEquivalent(f"expected {usage}, got {'::'.join(args) or 'no arguments'}")


def _prefix(mask: str) -> str:
    """IPaddr takes a prefix length or a dotted netmask; IPaddr2's cidr_netmask is clearest
    as a prefix length."""
    if mask.isdigit():
        return mask
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen)
    except ValueError:
        raise NoEquivalent(f"{mask!r} is neither a prefix length nor a netmask") from None


def _ipaddr(args: tuple[str, ...]) -> Agent:
    """``IP[/MASK[/NIC[:LABEL][/BROADCAST]]]`` (a NIC that starts with a digit is the
    broadcast address), as heartbeat's IPaddr and IPaddr2 wrappers parse it."""
    _count(args, 1, 1, "IPaddr::ADDRESS[/MASK[/NIC[/BROADCAST]]] (the cluster address is missing)")
    ip, *rest = args[0].split("/")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise NoEquivalent(f"{ip!r} is not an IPv4 address") from None
    mask = _prefix(rest[0]) if rest and rest[0] else ""
    nic = label = broadcast = ""
    if len(rest) > 1 and rest[1][:1].isdigit():
        broadcast = rest[1]
    elif len(rest) > 1:
        nic, _, label = rest[1].partition(":")  # IPaddr2 takes the base NIC and a separate label
        broadcast = rest[2] if len(rest) > 2 else ""
    return _ocf("IPaddr2", ("ip", ip), ("cidr_netmask", mask), ("nic", nic), ("iflabel", label), ("broadcast", broadcast))


def _drbddisk(args: tuple[str, ...]) -> Agent:
    if not args or not args[0] or args[0] == "all":
        raise NoEquivalent("drbddisk without a resource name acts on every DRBD resource ('all'); "
                           "Pacemaker needs one ocf:linbit:drbd clone per resource: write drbddisk::r0")
    _count(args, 1, 1, "drbddisk::RESOURCE")
    return _ocf("drbd", ("drbd_resource", args[0]), provider="linbit")


def _filesystem(args: tuple[str, ...]) -> Agent:
    if len(args) == 2:
        raise NoEquivalent("the Filesystem agent needs the filesystem type: Filesystem::DEVICE::DIRECTORY::FSTYPE")
    _count(args, 3, 4, "Filesystem::DEVICE::DIRECTORY::FSTYPE[::OPTIONS]")
    return _ocf("Filesystem", ("device", args[0]), ("directory", args[1]), ("fstype", args[2]),
                ("options", args[3] if len(args) > 3 else ""))


def _portblock(args: tuple[str, ...]) -> Agent:
    _count(args, 3, 3, "portblock::PROTOCOL::PORTS::block|unblock")
    return _ocf("portblock", ("protocol", args[0]), ("portno", args[1]), ("action", args[2]))


def _lvm(args: tuple[str, ...]) -> Agent:
    _count(args, 1, 1, "LVM::VOLUMEGROUP")
    note = (f"LVM::{args[0]} becomes LVM-activate with vg_access_mode=system_id (the old LVM agent is "
            "deprecated): set system_id_source = \"uname\" in lvm.conf on both nodes and give the VG the "
            "active node's system ID once (lvmsystemid(7))")
    return _ocf("LVM-activate", ("vgname", args[0]), ("vg_access_mode", "system_id"), warnings=(note,))


def _ipv6addr(args: tuple[str, ...]) -> Agent:
    _count(args, 1, 1, "IPv6addr::ADDRESS[/PREFIX[/NIC]]")
    addr, *rest = args[0].split("/")
    return _ocf("IPv6addr", ("ipv6addr", addr), ("cidr_netmask", rest[0] if rest else ""), ("nic", rest[1] if len(rest) > 1 else ""))


def _sendarp(args: tuple[str, ...]) -> Agent:
    _count(args, 1, 1, "SendArp::ADDRESS/NIC")
    ip, _, nic = args[0].partition("/")
    return _ocf("SendArp", ("ip", ip), ("nic", nic))


def _positional(agent: str, names: tuple[str, ...], lo: int, usage: str) -> Callable[[tuple[str, ...]], Agent]:
    def parse(args: tuple[str, ...]) -> Agent:
        _count(args, lo, len(names), usage)
        return _ocf(agent, *zip(names, args, strict=False))
    return parse


MAPPED: dict[str, Callable[[tuple[str, ...]], Agent]] = {
    "drbddisk": _drbddisk,
    "Filesystem": _filesystem,
    "IPaddr": _ipaddr,
    "IPaddr2": _ipaddr,
    "portblock": _portblock,
    "LVM": _lvm,
    "IPv6addr": _ipv6addr,
    "SendArp": _sendarp,
    "IPsrcaddr": _positional("IPsrcaddr", ("ipaddress",), 1, "IPsrcaddr::ADDRESS"),
    "Delay": _positional("Delay", ("startdelay", "stopdelay"), 0, "Delay[::START[::STOP]]"),
    "MailTo": _positional("MailTo", ("email", "subject"), 1, "MailTo::EMAIL[::SUBJECT]"),
    "Xinetd": _positional("Xinetd", ("service",), 1, "Xinetd::SERVICE"),
    "apache": _positional("apache", ("configfile",), 0, "apache[::CONFIGFILE]"),
}


def heartbeat_agent(res: model.Resource, nfs: NfsContext) -> Agent:
    """The Pacemaker agent for a heartbeat-kind resource, or NoEquivalent saying why not."""
    name, args = res.agent, res.args
    if name in MAPPED:
        return MAPPED[name](args)
    if name == "nfsserver":
        _count(args, 0, 0, "nfsserver with no arguments")
        return _ocf("nfsserver", ("nfs_ip", nfs.vip), ("nfs_shared_infodir", nfs.shared_infodir))
    if name in NFS_NOTIFY_SCRIPTS:
        _count(args, 0, 0, f"{name} with no arguments")
        return _ocf("nfsnotify", ("source_host", nfs.vip))
    if name == "drbdupper":
        raise NoEquivalent("stacked DRBD (drbdupper) has no Pacemaker agent: run the upper resource as a second ocf:linbit:drbd clone by hand")
    if name in RESOURCE_D:
        raise NoEquivalent(f"heartbeat's resource.d/{name} is not mapped by the exporter: write it in cluster.toml as "
                           f"type = \"ocf\" with the OCF agent of the same job and its params")
    if name.startswith("/") and not name.startswith("/etc/init.d/"):
        raise NoEquivalent(f"{name} is a script outside /etc/init.d: Pacemaker's lsb class runs /etc/init.d scripts only; "
                           "move it there (LSB exit codes) or write an OCF agent")
    if args:
        raise NoEquivalent(f"heartbeat passed {'::'.join(args)} to the init script {name}; an lsb: resource takes no "
                           "arguments: write an OCF agent (or a wrapper init script) for it")
    base = name.rsplit("/", 1)[-1]
    note = (f"{name!r} is not one of heartbeat's resource.d scripts, so heartbeat ran /etc/init.d/{base}: exported as "
            f"lsb:{base} (if /etc/ha.d/resource.d/{base} is a script of your own, Pacemaker will not find it there)")
    return Agent("lsb", base, warnings=(note,))
