"""``run_daemon()``: the failover daemon put together (wiring only); see __init__.py."""

from __future__ import annotations

from hasync import model
from hasync.config import load_profile
from hasync.config.identity import local_node
from hasync.effects.keyfile import load_key
from hasync.failover.daemon.loop import Daemon
from hasync.failover.host import Paths


def daemon_profile(cluster: model.Cluster) -> model.Profile:
    """The distro profile the chain's `service` resources are resolved with: the one
    hasync.config.load resolved, else (a cluster built in code) loaded here. A profile
    that cannot be loaded is a config error (ConfigError, exit 2), never swallowed: on a
    sysv profile a `service` resource would silently become `systemctl <agent>`."""
    if cluster.profile is not None:
        return cluster.profile
    return load_profile(cluster.cluster.profile)


def run_daemon(cluster: model.Cluster, *, node: str | None, state_dir: str | None, run_dir: str | None,
               priority: str, mlock: bool, agent_nice: int = -10, vip_fast: bool = True, rx_wake: bool = False) -> int:
    """Run until SIGTERM/SIGINT (0). Raises config.NodeIdentityError (this host is none of
    the nodes), errors.StartupError (bad timing, a link that cannot open, another daemon
    running) and keyfile.KeyFileError."""
    local = local_node(cluster, node)
    key = load_key(cluster.heartbeat.auth_key)
    d = Daemon(cluster, local, key, Paths.default(state_dir, run_dir), profile=daemon_profile(cluster), priority=priority,
               mlock=mlock, agent_nice=agent_nice, vip_fast=vip_fast, rx_wake=rx_wake)
    return d.run()
