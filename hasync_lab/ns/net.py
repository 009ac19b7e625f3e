"""The lab's wiring as command tuples (pure): switch, bridges, veth cables, addresses.

Every bridge lives in the lab's switch namespace, so nothing is added to the host's.
Cutting a cable sets the switch-side end down: the node's end loses carrier but keeps its
addresses, as when a cable is pulled.
"""

from __future__ import annotations

import json

from hasync_lab.ns.spec import PUBLIC_IF, LabSpec

Argv = tuple[str, ...]
BRIDGES = {"public": "br-pub", "heartbeat": "br-hb"}


def netns_add(ns: str) -> Argv:
    return ("ip", "netns", "add", ns)


def lo_up(ns: str) -> Argv:
    return ("ip", "-n", ns, "link", "set", "lo", "up")


def show_link(ns: str, ifname: str) -> Argv:
    return ("ip", "-n", ns, "link", "show", ifname)


def bridge_add(spec: LabSpec, link: str) -> Argv:
    # No IGMP snooping (multicast heartbeats reach every port, querier or not) and no
    # forwarding delay (a port forwards as soon as it is up).
    return ("ip", "-n", spec.switch_ns, "link", "add", BRIDGES[link], "type", "bridge",
            "mcast_snooping", "0", "forward_delay", "0")


def bridge_up(spec: LabSpec, link: str) -> Argv:
    return ("ip", "-n", spec.switch_ns, "link", "set", BRIDGES[link], "up")


def cable_add(spec: LabSpec, node: str, link: str) -> list[Argv]:
    """A veth pair: switch port on the bridge, the node's end named eth0/eth1."""
    ifname, _ = spec.interfaces(node)[link]
    port = spec.switch_port(node, link)
    return [
        ("ip", "-n", spec.switch_ns, "link", "add", port, "type", "veth", "peer", "name", ifname,
         "netns", spec.netns(node)),
        ("ip", "-n", spec.switch_ns, "link", "set", port, "master", BRIDGES[link]),
    ]


def node_if_up(spec: LabSpec, node: str, link: str) -> Argv:
    ifname, _ = spec.interfaces(node)[link]
    return ("ip", "-n", spec.netns(node), "link", "set", ifname, "up")


def addresses(spec: LabSpec, node: str) -> list[Argv]:
    """The node's boot-time addresses, from scratch (anything else, e.g. a VIP, goes)."""
    ns = spec.netns(node)
    cmds: list[Argv] = []
    for ifname, addr in spec.interfaces(node).values():
        cmds.append(("ip", "-n", ns, "addr", "flush", "dev", ifname))
        cmds.append(("ip", "-n", ns, "addr", "add", addr, "dev", ifname))
    # Multicast heartbeats need a route (there is no default route in the lab).
    cmds.append(("ip", "-n", ns, "route", "replace", "224.0.0.0/4", "dev", PUBLIC_IF))
    return cmds


def neigh_flush(ns: str) -> Argv:
    return ("ip", "-n", ns, "neigh", "flush", "all")


def cable_state(spec: LabSpec, node: str, link: str, up: bool) -> Argv:
    return ("ip", "-n", spec.switch_ns, "link", "set", spec.switch_port(node, link),
            "up" if up else "down")


def show_port_json(spec: LabSpec, node: str, link: str) -> Argv:
    return ("ip", "-n", spec.switch_ns, "-j", "link", "show", spec.switch_port(node, link))


def show_addrs_json(spec: LabSpec, node: str) -> Argv:
    return ("ip", "-n", spec.netns(node), "-j", "-4", "addr", "show")


def parse_admin_up(text: str) -> bool:
    """`ip -j link show DEV` -> is DEV administratively up?"""
    try:
        return "UP" in json.loads(text)[0].get("flags", [])
    except (ValueError, IndexError, AttributeError):
        return False


def parse_addresses(text: str) -> list[str]:
    """`ip -j -4 addr show` -> the IPv4 addresses on every interface but lo."""
    out: list[str] = []
    try:
        for itf in json.loads(text):
            if itf.get("ifname") == "lo":
                continue
            out += [a["local"] for a in itf.get("addr_info", []) if a.get("local")]
    except (ValueError, AttributeError):
        pass
    return out
