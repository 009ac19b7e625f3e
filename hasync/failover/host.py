"""Where this host's failover daemon keeps its files, and the [[node]] a command names.

Shared by the daemon and the commands that talk to it (`hasync status`, `standby`,
`fence` ...), so both sides agree on the paths. Which node this host *is* has one rule
for every area: ``hasync.config.identity.local_node``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hasync import model
from hasync.config.paths import HASYNC_RUN_ROOT, HASYNC_STATE_ROOT

DEFAULT_STATE_DIR = HASYNC_STATE_ROOT + "/failover"
DEFAULT_RUN_DIR = HASYNC_RUN_ROOT  # the role file in it is what the sync watcher reads


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


class NoSuchNode(ValueError):
    """A command named a node the config does not have (bad input)."""


def named_node(cluster: model.Cluster, name: str) -> model.Node:
    """The [[node]] called *name*, or NoSuchNode listing the nodes there are."""
    for n in cluster.nodes:
        if n.name == name:
            return n
    raise NoSuchNode(f"no node named {name!r}; nodes: {', '.join(n.name for n in cluster.nodes)}")
