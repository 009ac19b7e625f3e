"""`hasync failover forget-peer NODE`: accept a lower generation from a reinstalled peer.

The running daemon is told over its control socket (it rewrites its state file itself);
when no daemon runs here, the state file (daemon/persist.py) forgets directly.
"""

from __future__ import annotations

from hasync.failover import client, protocol
from hasync.failover.daemon import persist
from hasync.failover.host import Paths
from hasync.failover.states import Command


def forget_peer(paths: Paths, node: str) -> client.Answer:
    """The daemon's reply in ``status``; or, with no daemon here, ``status`` None and what
    the state file did in ``error``. TimeoutError/OSError/ValueError: no usable answer."""
    try:
        return client.Answer(client.command(paths.socket, protocol.Request(Command.FORGET_PEER, node),
                                            lambda obj: None, wait=5))
    except client.NotRunning:
        forgot = persist.forget_peer(paths.state_dir, node)
        return client.Answer(None, f"the daemon is not running: {'forgot' if forgot else 'nothing kept about'} "
                                   f"{node}'s generation ({paths.state_dir}/peer-generation)")
