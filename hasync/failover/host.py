"""This host: which [[node]] it is, and where its failover daemon keeps its files.

Shared by the daemon and the commands that talk to it (`hasync status`, `standby`,
`fence` ...), so both sides agree on the paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hasync import model
from hasync.failover.errors import UnknownNode

DEFAULT_STATE_DIR = "/var/lib/hasync/failover"
DEFAULT_RUN_DIR = "/run/hasync"


@dataclass(frozen=True)
class Paths:
    state_dir: Path  # timeline.jsonl, last-failover.json, generation
    run_dir: Path  # failover.sock, role

    @classmethod
    def default(cls, state_dir: str | None = None, run_dir: str | None = None) -> Paths:
        return cls(
            Path(state_dir or os.environ.get("HASYNC_FAILOVER_STATE_DIR") or DEFAULT_STATE_DIR),
            Path(run_dir or os.environ.get("HASYNC_RUN_DIR") or DEFAULT_RUN_DIR),
        )

    @property
    def socket(self) -> Path:
        return self.run_dir / "failover.sock"

    @property
    def role(self) -> Path:
        return self.run_dir / "role"


# TODO(issue 11 item 4): one node-identity rule for every area -- watch and bootstrap
# already call hasync.config.identity.local_node; the failover's rule is moved here
# unchanged (its message and exit status are what `hasync failover` users see) until it
# is switched over too.
def local_node_name(cluster: model.Cluster, override: str | None = None) -> str:
    """--node, else $HASYNC_NODE, else uname -n (or its short name) among the [[node]]s."""
    name = override or os.environ.get("HASYNC_NODE") or os.uname().nodename
    names = [n.name for n in cluster.nodes]
    if name not in names:
        short = name.split(".")[0]
        if short in names:
            return short
        raise UnknownNode(f"this node is {name!r} (uname -n) but {cluster.path} names the nodes {', '.join(names)}; use --node")
    return name
