"""What the config puts into a heartbeat packet, bounded by the wire format (pure).

Every heartbeat carries the cluster name, the sender's node name, the link name and the
ids of the resources the sender owns (``hasync.failover.packets``; the sizes in
``hasync.packet_layout``: str8 fields of at most 255 UTF-8 bytes, at most 255 owned ids,
a payload of at most MAX_PAYLOAD bytes), after
the fixed fields (format version 2: with the 8-byte echo and the 8-byte settings digest,
which depend on no setting). A config
over those bounds used to pass ``check`` and make ``encode`` raise inside the daemon's
send path once enough of the chain had started; ``check`` now refuses it, computing the
worst case (the longest node and link name, every resource owned) from the packet's own sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync import model
from hasync.packet_layout import FIXED, GROUP_RECORD, MAX_PAYLOAD, OWNED_MAX, STR8_MAX

FIXED_PAYLOAD = FIXED.size  # the format the daemon sends (version 2: 49 bytes)


@dataclass(frozen=True)
class Problem:
    """A field over a packet bound: ``path`` is its TOML key path, ``message`` what fits."""

    path: tuple
    message: str


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def worst_case_payload(cluster: model.Cluster) -> int:
    """The largest payload this cluster's daemon can send: the longest node and link
    name, and every resource of the chain owned (several groups: format 3, each group's
    record with all its resources)."""
    def s8(text: str) -> int:
        return 1 + utf8_len(text)

    node = max((s8(n.name) for n in cluster.nodes), default=1)
    link = max((s8(lk.name) for lk in cluster.heartbeat.links), default=1)
    groups = cluster.resource_groups()
    if len(groups) > 1:  # format 3: nothing owned in the fixed part, one record per group
        owned = 1 + 1 + sum(GROUP_RECORD.size + 1 + sum(s8(r.id) for r in g.resources) for g in groups)
    else:
        owned = 1 + sum(s8(r.id) for r in cluster.resources)
    return FIXED_PAYLOAD + s8(cluster.cluster.name) + node + link + owned


def packet_problems(cluster: model.Cluster) -> list[Problem]:
    """Every field that would make ``packets.encode`` raise for this cluster."""
    def too_long(text: str) -> str | None:
        n = utf8_len(text)
        if n <= STR8_MAX:
            return None
        return f"{n} bytes long; a heartbeat packet carries at most {STR8_MAX} bytes (UTF-8) of it"

    chain_key: tuple = ("haresources",) if cluster.haresources else ("resource",)
    out: list[Problem] = []
    if (why := too_long(cluster.cluster.name)):
        out.append(Problem(("cluster", "name"), why))
    for i, n in enumerate(cluster.nodes):
        if (why := too_long(n.name)):
            out.append(Problem(("node", i, "name"), why))
    for i, lk in enumerate(cluster.heartbeat.links):
        if (why := too_long(lk.name)):
            out.append(Problem(("heartbeat", "link", i, "name"), why))
    for i, r in enumerate(cluster.resources):
        if (why := too_long(r.id)):
            where = chain_key if cluster.haresources else _resource_path(cluster, i) + ("id",)
            out.append(Problem(where, f"resource id {r.id[:40]!r}... ({r.src}) is {why}" if cluster.haresources else why))
    if len(cluster.resources) > OWNED_MAX:
        out.append(Problem(chain_key, f"{len(cluster.resources)} resources; a heartbeat packet lists at most {OWNED_MAX} owned resources"))
    if out:
        return out  # the total follows from the fields: say what to fix first
    size = worst_case_payload(cluster)
    if size > MAX_PAYLOAD:
        ids = sum(1 + utf8_len(r.id) for r in cluster.resources)
        out.append(Problem(chain_key, (
            f"a heartbeat packet with every resource owned would carry {size} bytes; at most "
            f"{MAX_PAYLOAD} fit: shorten the resource ids ({ids} bytes together) or the "
            "cluster, node and link names")))
    return out


def _resource_path(cluster: model.Cluster, index: int) -> tuple:
    """The TOML key path of the *index*-th resource of the whole chain."""
    if not cluster.groups:
        return ("resource", index)
    for gi, g in enumerate(cluster.groups):
        if index < len(g.resources):
            return ("group", gi, "resource", index)
        index -= len(g.resources)
    raise IndexError(index)
