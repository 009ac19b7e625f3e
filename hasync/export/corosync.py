"""[heartbeat] -> corosync.conf for Corosync 3 (knet). Pure.

Each UDP heartbeat link becomes one knet link with an address per node; a serial link
has no Corosync equivalent and is dropped with a warning. The token timeout is derived
from deadtime (the reasoning is written into the file), and ``two_node: 1`` gives the
survivor of a two-node cluster quorum.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from hasync import model

# Corosync's own numbers: consensus defaults to 1.2 x token, and its maintainers suggest
# token 1000 ms as the fastest setting for clusters where failover time matters.
CONSENSUS_FACTOR = 1.2
TOKEN_MIN_MS = 1000
TOKEN_DEFAULT_MS = 3000
KNET_MAX_LINKS = 8
AUTHKEY = "/etc/corosync/authkey"


@dataclass(frozen=True)
class CorosyncConf:
    text: str
    warnings: tuple[str, ...]
    token_ms: int


def token_ms(deadtime: float) -> int:
    """A peer is declared dead after token + consensus (= 2.2 x token) of silence; hasync
    declares it dead after deadtime. token = deadtime / 2.2, rounded down to 100 ms, and
    never under the 1000 ms Corosync's maintainers give as the fastest sane setting."""
    return max(TOKEN_MIN_MS, math.floor(deadtime * 1000 / (1 + CONSENSUS_FACTOR) / 100) * 100)


def _links(cluster: model.Cluster, warnings: list[str]) -> list[tuple[model.Link, dict[str, str]]]:
    """(hasync link, node -> address) for every knet link, in hasync's order."""
    out: list[tuple[model.Link, dict[str, str]]] = []
    node_addresses = {n.name: n.address for n in cluster.nodes}
    for link in cluster.heartbeat.links:
        where = f"{link.src or cluster.path}: heartbeat link {link.name!r}"
        if link.kind == "serial":
            warnings.append(f"{where}: Corosync has no serial transport: {link.device} is not carried over; give "
                            "Corosync a second network link instead (knet runs up to 8), so one cable or switch "
                            "failure does not look like a dead peer")
            continue
        if link.kind == "udp-unicast":
            addrs = {n.name: link.addresses.get(n.name, "") for n in cluster.nodes}
        else:
            addrs = dict(node_addresses)
            warnings.append(f"{where}: knet is unicast and hasync's {link.kind} link names no per-node address: "
                            f"its knet link uses the [[node]] addresses ({', '.join(addrs.values())}); check they "
                            f"are the nodes' addresses on {link.interface}")
        if any(addrs == seen for _, seen in out):
            warnings.append(f"{where}: same addresses as an earlier link: not added twice")
            continue
        out.append((link, addrs))
    if len(out) > KNET_MAX_LINKS:
        warnings.append(f"{cluster.path}: knet runs at most {KNET_MAX_LINKS} links: the links after "
                        f"{out[KNET_MAX_LINKS - 1][0].name!r} are dropped")
        out = out[:KNET_MAX_LINKS]
    if not out:
        warnings.append(f"{cluster.path}: no UDP heartbeat link: Corosync gets one link over the [[node]] addresses")
        out.append((model.Link("nodes", "udp-unicast"), dict(node_addresses)))
    elif len(out) == 1:
        warnings.append(f"{cluster.path}: Corosync gets a single link: a single cable or switch failure looks like "
                        "a dead peer; add a second network link")
    return out


def _notes(warnings: list[str]) -> list[str]:
    if not warnings:
        return []
    out = ["#", "# Notes:"]
    for w in warnings:
        out += textwrap.wrap(w, 96, initial_indent="# - ", subsequent_indent="#   ", break_on_hyphens=False)
    return out


def corosync_conf(cluster: model.Cluster) -> CorosyncConf:
    warnings: list[str] = []
    links = _links(cluster, warnings)
    hb = cluster.heartbeat
    token = token_ms(hb.deadtime)
    derived = hb.deadtime * 1000 / (1 + CONSENSUS_FACTOR)
    why = [
        f"hasync declares the peer dead after deadtime = {hb.deadtime:g} s of silence. Corosync declares it",
        f"lost after token + consensus (consensus = {CONSENSUS_FACTOR:g} x token) = 2.2 x token, so",
        f"token = deadtime / 2.2 = {derived:.0f} ms, rounded down to 100 ms"
        + (f" and raised to {TOKEN_MIN_MS} ms,\nthe fastest Corosync's maintainers recommend."
           if token == TOKEN_MIN_MS and derived < TOKEN_MIN_MS else "."),
        f"(Corosync's default is {TOKEN_DEFAULT_MS} ms; consensus is left at its default, 1.2 x token.)",
    ]
    if token == TOKEN_MIN_MS and derived < TOKEN_MIN_MS:
        warnings.append(f"{hb.src or cluster.path}: deadtime {hb.deadtime:g} s is faster than Corosync is run: "
                        f"token {TOKEN_MIN_MS} ms, so Pacemaker notices a dead node after ~"
                        f"{TOKEN_MIN_MS * (1 + CONSENSUS_FACTOR) / 1000:g} s")
    out = [
        f"# corosync.conf for cluster {cluster.cluster.name!r}, made by `hasync export pacemaker` from {cluster.path}.",
        "# Install it as /etc/corosync/corosync.conf on both nodes (identical on both).",
        "#",
        f"# The key: Corosync reads {AUTHKEY}, raw random bytes (mode 0400, root). hasync's",
        f"# {hb.auth_key} is an HMAC secret in another format and is NOT converted or reused.",
        "# Make a new one on one node and copy it to the other:",
        f"#   corosync-keygen                      # writes {AUTHKEY} (256 bytes from /dev/urandom)",
        f"#   scp -p {AUTHKEY} PEER:{AUTHKEY}",
        *_notes(warnings),
        "",
        "totem {",
        "    version: 2",
        f"    cluster_name: {cluster.cluster.name}",
        "    transport: knet",
        "    crypto_cipher: aes256",
        "    crypto_hash: sha256",
        *(f"    # {line}" for line in "\n".join(why).splitlines()),
        f"    token: {token}",
        "    # hasync's heartbeat port (694) is not reused: both stacks can run side by side during the move;",
        "    # knet uses Corosync's port 5405 on every link.",
    ]
    for i, (link, _) in enumerate(links):
        what = f"{link.kind} on {link.interface}" if link.interface else "the [[node]] addresses"
        out += ["    interface {", f"        # hasync heartbeat link {link.name!r} ({what})", f"        linknumber: {i}", "    }"]
    out += ["}", "", "nodelist {"]
    for nodeid, n in enumerate(cluster.nodes, start=1):
        out += ["    node {", f"        name: {n.name}", f"        nodeid: {nodeid}"]
        out += [f"        ring{i}_addr: {addrs[n.name]}" for i, (_, addrs) in enumerate(links)]
        out.append("    }")
    out += [
        "}",
        "",
        "quorum {",
        "    provider: corosync_votequorum",
        "    # two nodes: the survivor keeps quorum when its peer dies; implies wait_for_all, so a node",
        "    # booting alone waits until it has seen its peer once before it runs anything",
        "    two_node: 1",
        "}",
        "",
        "logging {",
        "    to_syslog: yes",
        "    to_logfile: yes",
        "    logfile: /var/log/corosync/corosync.log",
        "    timestamp: on",
        "}",
    ]
    return CorosyncConf("\n".join(out) + "\n", tuple(warnings), token)
