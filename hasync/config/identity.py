"""Which [[node]] of the cluster this host is: one rule for failover, watch, bootstrap,
doctor and the fab tasks.

``--node`` if given, else ``$HASYNC_NODE``, else ``uname -n``; a name that is not a node
but whose short form (before the first dot) is one matches that node, so a host whose
``uname -n`` is ``node1.example.com`` is ``node1``. A given name that matches nothing is
an error, never a silent fall-through to the next source: a typo in ``--node`` must not
make this host act as the other node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hasync import model
from hasync.config.reader import ConfigError

ENV_NODE = "HASYNC_NODE"


class NodeIdentityError(ConfigError):
    """This host matches none of the config's [[node]] names."""


def candidate(explicit: str | None = None, env: Mapping[str, str] | None = None, uname: str | None = None) -> tuple[str, str]:
    """(name, where it came from): --node, then $HASYNC_NODE, then uname -n."""
    env = os.environ if env is None else env
    if explicit:
        return explicit, "--node"
    if env.get(ENV_NODE):
        return env[ENV_NODE], f"${ENV_NODE}"
    return (uname if uname is not None else os.uname().nodename), "uname -n"


def match_node(name: str, names: list[str]) -> str | None:
    """*name* if it is a node, else its short name if that is one, else None."""
    if name in names:
        return name
    short = name.split(".", 1)[0]
    return short if short in names else None


def local_node(cluster: model.Cluster, explicit: str | None = None, *,
               env: Mapping[str, str] | None = None, uname: str | None = None) -> str:
    """This host's node name in *cluster*, or NodeIdentityError naming the nodes."""
    name, source = candidate(explicit, env, uname)
    names = [n.name for n in cluster.nodes]
    found = match_node(name, names)
    if found is not None:
        return found
    short = name.split(".", 1)[0]
    tried = f"{name!r}" + (f" (or its short name {short!r})" if short != name else "")
    raise NodeIdentityError([
        f"{cluster.path}: node: {source} says this host is {tried}, but the config names the nodes "
        f"{', '.join(names) or '(none)'}; give --node NAME or set {ENV_NODE}"
    ])
