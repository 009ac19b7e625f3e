"""`hasync bootstrap --join PEER`: the second node takes the cluster config and the
heartbeat key from the first node, over one ssh connection as root (the admin's keys).

The config is read at the same path on the peer as here; the key at the path that
config names. Both are written locally by bootstrap's steps (the key 0600), never
printed. :func:`close` ends the shared ssh connection when bootstrap is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync import config, model
from hasync.bootstrap.facts import peer_ssh, peer_ssh_close
from hasync.effects.run import Runner

# seconds for one `ssh PEER cat FILE` (the first one opens the shared connection). A busy
# node answers late: the VM tier's TCG guests at host load 28 took over 30 s for it, and
# the join failed although the peer was fine. An unreachable peer still fails fast through
# ssh's ConnectTimeout (hasync.bootstrap.facts.peer_ssh_opts); the bound is doctor's.
FETCH_TIMEOUT = 120


class JoinError(RuntimeError):
    """The peer could not give us what joining needs (unreachable, file missing)."""


@dataclass(frozen=True)
class Joined:
    peer: str
    config_text: str
    cluster: model.Cluster  # config_text loaded (profile resolved) as if it were here
    authkey: str


def join(runner: Runner, peer: str, config_path: str) -> Joined:
    """Fetch and load the peer's config, then its heartbeat key. Raises JoinError, or
    ConfigError whose issues say they come from *peer*."""
    try:
        text = fetch(runner, peer, config_path)
    except JoinError as e:
        raise JoinError(f"--join {peer}: {e}") from None
    try:
        cluster = config.loads(text, config_path)
    except config.ConfigError as e:
        raise config.ConfigError([f"(from {peer}) {i}" for i in e.issues]) from None
    try:
        key = fetch(runner, peer, cluster.heartbeat.auth_key)
    except JoinError as e:
        raise JoinError(f"--join {peer}: {e} (bootstrap the first node first)") from None
    return Joined(peer, text, cluster, key)


def fetch(runner: Runner, peer: str, path: str) -> str:
    res = runner.run(peer_ssh(peer, "cat", path), timeout=FETCH_TIMEOUT)
    if not res.ok:
        raise JoinError(f"`ssh root@{peer} cat {path}` exited {res.exit_code}: {(res.stderr or res.stdout).strip()}")
    return res.stdout


def close(runner: Runner, peer: str) -> None:
    runner.run(peer_ssh_close(peer), timeout=10)
