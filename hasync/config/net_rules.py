"""Addresses across sections, and what an import left to fill in (pure).

- a heartbeat link on DRBD's replication addresses (the field notes keep them apart: a
  resync that fills the link delays heartbeats, and one cable fault cuts both);
- IPv6 on a heartbeat link: hasync.failover.links opens AF_INET sockets only;
- the cluster address outside the subnet of a node's addresses (its subnet is the
  address's own prefix: [nfs].vip's /N or the IP resource's cidr_netmask; none, no check);
- no [storage] while use_drbd defaults to true;
- ``0.0.0.0`` and ``check:`` markers that ``hasync haresources import`` writes for what
  it could not know.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hasync import model
from hasync.config.chain_rules import PLACEHOLDER, Seen, say
from hasync.config.reader import Reader

_MARKER = re.compile(r"""(#\s*|["'])check:""")


def links(r: Reader, hb: model.Heartbeat, st: model.Storage) -> None:
    for i, lk in enumerate(hb.links):
        p = ("heartbeat", "link", i)
        if r.is_bad(p):
            continue
        for n, a in lk.addresses.items():
            if ":" in a and not r.is_bad(p + ("addresses", n)):
                r.error(p + ("addresses", n), f"{a} is an IPv6 address, and the heartbeat links open IPv4 (AF_INET) sockets "
                                              "only: give this node's IPv4 address on the link (or use a serial link)")
        if lk.kind == "udp-multicast" and ":" in lk.group and not r.is_bad(p + ("group",)):
            r.error(p + ("group",), f"{lk.group} is an IPv6 group, and the heartbeat links open IPv4 (AF_INET) sockets only: "
                                    "use an IPv4 group such as \"239.0.0.43\"")
        shared = [f"{n} {a}" for n, a in lk.addresses.items() if st.use_drbd and st.replication.get(n) == a]
        if shared and not r.is_bad(("storage", "replication")):
            r.warn(p + ("addresses",), f"link {lk.name!r} runs on DRBD's replication addresses ({', '.join(shared)}): a resync "
                                       "that fills that link delays the heartbeats into a false failover, and one cable fault "
                                       "cuts both; keep the heartbeat on a link of its own (another NIC or a serial cable), "
                                       "as the field notes do")


def _network(address: str, prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    except ValueError:
        return None


def vip_subnets(r: Reader, seen: list[Seen], nodes: tuple[model.Node, ...], hb: model.Heartbeat,
                st: model.Storage, nfs: model.Nfs) -> None:
    """Each node needs an address in the cluster address's subnet: IPaddr2 picks its
    interface by that subnet (without nic it fails there), and clients on the nodes'
    networks reach the address only then."""
    places: list[tuple[str, str, Any]] = []  # (address, prefix, where to say it)
    if nfs.vip and "/" in nfs.vip and not r.is_bad(("nfs", "vip")):
        address, prefix = nfs.vip.split("/", 1)
        places.append((address, prefix, ("nfs", "vip")))
    for s in seen:
        address = s.params.get("ip") or s.params.get("ipv6addr", "")
        if s.role == "ip" and address and s.params.get("cidr_netmask", "").isdigit():
            places.append((address, s.params["cidr_netmask"], s))
    if not places or any(r.is_bad(("node", i, "address")) for i in range(len(nodes))):
        return
    told: set[str] = set()
    for address, prefix, where in places:
        net = _network(address, prefix)
        if net is None or str(net) in told or address == PLACEHOLDER:
            continue
        told.add(str(net))
        outside = [n.name for n in nodes if not any(_inside(a, net) for a in _addresses(n.name, n.address, hb, st))]
        if not outside:
            continue
        message = (f"the cluster address {address}/{prefix} is outside every subnet of {' and '.join(outside)}'s addresses: "
                   f"IPaddr2 finds no interface in {net} there (unless nic names one) and clients on the nodes' networks "
                   "cannot reach it; check the address and its prefix")
        if isinstance(where, Seen):
            say(r, where, "ip" if "ip" in where.params else "ipv6addr", message, error=False)
        else:
            r.warn(where, message)


def _addresses(name: str, management: str, hb: model.Heartbeat, st: model.Storage) -> list[str]:
    return [management, *(lk.addresses[name] for lk in hb.links if name in lk.addresses), *([st.replication[name]] if name in st.replication else [])]


def _inside(address: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def no_storage(r: Reader, present: bool) -> None:
    if not present and not r.is_bad(("storage",)):
        r.warn(("storage",), "no [storage] section: use_drbd and use_lvm default to true, so bootstrap would build DRBD and "
                             "LVM with no disks named; add [storage] with disks and replication per node, or use_drbd = "
                             "false and use_lvm = false for a filesystem on the disk itself")


def placeholders(r: Reader, text: str) -> None:
    """One warning per line holding 0.0.0.0 or a `check:` marker."""
    lines: set[int] = set()
    for path, value in _strings(r.data, ()):
        if value == PLACEHOLDER or value.startswith(PLACEHOLDER + "/"):
            at = r.index.line(path) or 0
            if at not in lines:
                lines.add(at)
                r.warn(path, f"{PLACEHOLDER} is a placeholder (`hasync haresources import` writes it where it cannot know "
                             "the address): put the real address here")
    for lineno, line in enumerate(text.splitlines(), 1):
        if lineno not in lines and _MARKER.search(line):
            lines.add(lineno)
            r.warnings.append(f"{r.path}:{lineno}: a `check:` marker is left in: review what it says, then delete it")


def _strings(obj: Any, path: tuple):
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, path + (i,))
