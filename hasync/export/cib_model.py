"""What a Pacemaker configuration is made of, as frozen data (the renderers' one input).

One ``Cib`` is rendered three ways (CIB XML, crmsh, pcs) so the three can never say
different things. Durations are seconds; scores are Pacemaker's strings ("100",
"INFINITY", "-INFINITY"). Promotable roles use Pacemaker 2.1's names (Promoted,
Unpromoted), never the removed master/slave ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Pairs = tuple[tuple[str, str], ...]

PROMOTED = "Promoted"
UNPROMOTED = "Unpromoted"

# an XML ID (NCName) as the CIB schema requires for every id attribute
_XML_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def is_xml_id(text: str) -> bool:
    return bool(_XML_ID.match(text))


def seconds(value: float) -> str:
    """Pacemaker's duration spelling: 20 -> "20s", 0.5 -> "500ms"."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass(frozen=True)
class Op:
    name: str  # start, stop, monitor, promote, demote
    interval: float = 0.0
    timeout: float | None = None
    role: str = ""  # monitor of a promotable clone: Promoted or Unpromoted
    on_fail: str = ""  # "" = Pacemaker's default (stop: fence when fencing is enabled)

    def key(self) -> str:
        """The op's id suffix: unique within its resource (Pacemaker refuses two monitors
        with the same interval on one resource)."""
        return f"{self.name}-{seconds(self.interval)}" + (f"-{self.role.lower()}" if self.role else "")


@dataclass(frozen=True)
class Primitive:
    id: str
    standard: str  # ocf | lsb | systemd | stonith
    type: str
    provider: str = ""  # ocf only
    params: Pairs = ()
    meta: Pairs = ()
    ops: tuple[Op, ...] = ()
    source: str = ""  # where it came from in cluster.toml (file:line), for messages

    @property
    def agent(self) -> str:
        """The agent as crm_resource/crmsh/pcs spell it: ocf:heartbeat:IPaddr2, stonith:fence_ipmilan."""
        parts = [self.standard] + ([self.provider] if self.provider else []) + [self.type]
        return ":".join(parts)


@dataclass(frozen=True)
class Clone:
    """A promotable clone (DRBD): Pacemaker's replacement for the removed <master>."""

    id: str
    primitive: Primitive
    meta: Pairs = ()


@dataclass(frozen=True)
class Group:
    id: str
    members: tuple[Primitive, ...]
    meta: Pairs = ()


@dataclass(frozen=True)
class Location:
    id: str
    rsc: str
    node: str
    score: str  # "100", "-INFINITY"
    role: str = ""


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    first_action: str
    then: str
    then_action: str
    kind: str = "Mandatory"


@dataclass(frozen=True)
class Colocation:
    id: str
    rsc: str
    with_rsc: str
    score: str = "INFINITY"
    with_rsc_role: str = ""
    rsc_role: str = ""


@dataclass(frozen=True)
class Cib:
    cluster_name: str
    source: str  # the config file it was made from
    properties: Pairs  # crm_config cib-bootstrap-options
    nodes: tuple[tuple[str, str], ...]  # (corosync nodeid, uname)
    fence_devices: tuple[Primitive, ...] = ()
    clones: tuple[Clone, ...] = ()
    groups: tuple[Group, ...] = ()
    locations: tuple[Location, ...] = ()
    orders: tuple[Order, ...] = ()
    colocations: tuple[Colocation, ...] = ()
    notes: tuple[str, ...] = field(default=())  # written as comments at the top of every form

    def primitives(self) -> tuple[Primitive, ...]:
        """Every primitive, in the order they are written."""
        out = list(self.fence_devices)
        for c in self.clones:
            out.append(c.primitive)
        for g in self.groups:
            out.extend(g.members)
        return tuple(out)

    def ids(self) -> list[str]:
        """Every resource and constraint id (each must be unique in the CIB)."""
        out = [p.id for p in self.primitives()] + [c.id for c in self.clones] + [g.id for g in self.groups]
        out += [x.id for x in self.locations] + [x.id for x in self.orders] + [x.id for x in self.colocations]
        return out
