"""Fence a node on request: `hasync fence NODE`, which DRBD's fence-peer handler runs.

The decision, in order (the first that applies is the answer):

1. NODE must be one of the config's [[node]]s;
2. never this node (``hasync.config.identity``'s rule; a host that is none of the nodes
   refuses nothing);
3. a ``[fencing].command`` must be configured;
4. unless forced: when this node's failover daemon already fenced NODE and has not heard
   from it since (it fences a silent peer before taking over), it is not fenced twice;
5. with the tiebreak and ``[heartbeat].ping`` nodes configured: when none of them
   answers, this node is probably the one cut off, and leaves the fencing to the side
   that still reaches the network (two partitioned nodes must not power each other off);
6. the fence command (``hasync.failover.fencing``) runs; its exit status is the answer.

The result is a :class:`FenceResult`; the CLI turns its verdict into the exit status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hasync import model
from hasync.config.identity import NodeIdentityError, local_node
from hasync.effects import net
from hasync.effects.run import Runner
from hasync.failover import client
from hasync.failover.fencing import fence_command
from hasync.failover.host import NoSuchNode, named_node
from hasync.failover.states import PeerStatus

STATUS_TIMEOUT = 2.0  # seconds the daemon may take to say whether it fenced the node


class Verdict(StrEnum):
    """How a fence request ended (the closed set of :func:`fence_node`'s answers)."""

    FENCED = "fenced"  # the command ran and reported success
    ALREADY_FENCED = "already-fenced"  # the daemon fenced it and has not heard it since
    NO_SUCH_NODE = "no-such-node"
    SELF = "self"  # NODE is this host
    NO_COMMAND = "no-command"  # no [fencing].command
    ISOLATED = "isolated"  # tiebreak: no ping node answers here
    FAILED = "failed"  # the command ran and failed


@dataclass(frozen=True)
class FenceResult:
    verdict: Verdict
    message: str  # one line for people

    @property
    def node_is_down(self) -> bool:
        """What DRBD's handler needs to know: the peer is down, IO may resume."""
        return self.verdict in (Verdict.FENCED, Verdict.ALREADY_FENCED)


def fence_node(
    cluster: model.Cluster,
    name: str,
    *,
    runner: Runner,
    socket: Path,
    force: bool = False,
    tiebreak: bool = False,
    status: Callable[..., dict] = client.status,
) -> FenceResult:
    """Decide whether to fence the node called *name* and do it (see the module's doc)."""
    try:
        target = named_node(cluster, name)
    except NoSuchNode as e:
        return FenceResult(Verdict.NO_SUCH_NODE, str(e))
    try:
        me = local_node(cluster)
    except NodeIdentityError:
        me = ""
    if target.name == me:
        return FenceResult(Verdict.SELF, f"{name} is this node; refusing to fence myself")
    fencing = cluster.fencing
    if not fencing.command:
        return FenceResult(Verdict.NO_COMMAND,
                           f"no [fencing].command in {cluster.path} (mode {fencing.mode}): cannot fence {name}")
    if not force and _daemon_fenced(status, socket, name):
        return FenceResult(Verdict.ALREADY_FENCED,
                           f"{name} was fenced by the failover daemon (it has not been heard from since)")
    ping = cluster.heartbeat.ping
    if tiebreak and ping and not net.ping_any(ping):
        return FenceResult(Verdict.ISOLATED, f"no ping node answers ({', '.join(ping)}): this node may be the "
                                             f"isolated one; not fencing {name}")
    cmd = fence_command(fencing, target)
    r = runner.run(cmd.argv, env=dict(cmd.env), timeout=cmd.timeout)
    if r.ok:
        return FenceResult(Verdict.FENCED, f"fenced {target.name} in {r.duration_s:.2f}s (`{cmd.text}`)")
    out = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return FenceResult(Verdict.FAILED, f"`{cmd.text}` exited {r.exit_code}" + (f": {out[-1]}" if out else ""))


def _daemon_fenced(status: Callable[..., dict], socket: Path, name: str) -> bool:
    """True when this node's daemon fenced *name* and has not heard from it since."""
    try:
        peer = status(socket, timeout=STATUS_TIMEOUT).get("peer", {})
    except Exception:  # noqa: BLE001 -- no daemon (or a confused one): fence ourselves
        return False
    return peer.get("node") == name and bool(peer.get("fenced")) and peer.get("state") != PeerStatus.UP
