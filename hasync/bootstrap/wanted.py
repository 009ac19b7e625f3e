"""What this node should look like (``plan.Wanted``): the cluster config (this node's,
or the first node's with ``--join``, see join.py), its distro profile, which node this
host is, and the files bootstrap lays down (the unit files of the profile's init
system, DRBD's fence-peer handler) from the shipped data folder ``bootstrap/``.
"""

from __future__ import annotations

from collections.abc import Iterable

from hasync import config
from hasync.bootstrap import join as joining
from hasync.bootstrap.plan import Wanted
from hasync.config.identity import local_node
from hasync.effects.run import Runner
from hasync.resources import data_dir


def wanted_state(config_path: str, *, node: str | None, join: str = "", runner: Runner | None = None,
                 allow_data_loss: Iterable[str] = ()) -> Wanted:
    """The wanted state; ConfigError (this node unknown included) or join.JoinError when
    it cannot be known. *runner* is needed only to join."""
    joined = None
    if join:
        assert runner is not None, "joining runs ssh"
        joined = joining.join(runner, join, config_path)
        cluster = joined.cluster
    else:
        cluster = config.load(config_path)
    profile = cluster.profile
    assert profile is not None  # config.load resolves it (or fails with file:line)
    me = local_node(cluster, node)
    first_node = cluster.cluster.preferred_node or cluster.nodes[0].name
    return Wanted(
        cluster=cluster,
        profile=profile,
        node=me,
        first=(not join) and me == first_node,
        allow_data_loss=frozenset(allow_data_loss),
        join=join,
        authkey=joined.authkey if joined else None,
        config_text=joined.config_text if joined else None,
        config_path=config_path,
        units=load_units(profile.init),
        fence_peer_script=fence_peer_script(),
    )


def load_units(init: str) -> dict[str, str]:
    """The unit files (systemd) or init scripts (sysv) bootstrap installs: name -> text."""
    d = data_dir("bootstrap") / "units" / ("systemd" if init == "systemd" else "sysv")
    return {p.name: p.read_text() for p in sorted(d.iterdir()) if p.is_file()}


def fence_peer_script() -> str:
    return (data_dir("bootstrap") / "drbd-fence-peer").read_text()
