"""What `lab up` lays into each node's copy-on-write layers (pure: data in, files out)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hasync_lab.ns.config_gen import cluster_toml
from hasync_lab.ns.spec import (
    OVERLAYS,
    SSH_DIR,
    LabSpec,
    hosts_file,
    known_hosts,
    ssh_dropin,
    sshd_dropin,
)

NODE_INFO = "/etc/hasync/lab.json"  # inside a node: which lab and node this is


@dataclass(frozen=True)
class LabKeys:
    client_key: str  # the lab's root key pair (every node trusts it)
    client_pub: str
    host_keys: dict[str, str]  # node -> private host key
    host_pubs: dict[str, str]  # node -> public host key line
    authkey: str  # the heartbeat HMAC key file's content


def node_files(
    spec: LabSpec, node: str, keys: LabKeys, *, root: str, hasync_wrapper: str
) -> dict[str, tuple[str, int]]:
    """Absolute path inside the node -> (content, mode)."""
    return {
        "/etc/hostname": (f"{node}\n", 0o644),
        "/etc/hosts": (hosts_file(spec), 0o644),
        "/etc/ssh/sshd_config.d/00-hasync-lab.conf": (sshd_dropin(node), 0o644),
        "/etc/ssh/ssh_config.d/00-hasync-lab.conf": (ssh_dropin(), 0o644),
        f"{SSH_DIR}/id_ed25519": (keys.client_key, 0o600),
        f"{SSH_DIR}/id_ed25519.pub": (keys.client_pub, 0o644),
        f"{SSH_DIR}/authorized_keys": (keys.client_pub, 0o600),
        f"{SSH_DIR}/ssh_host_ed25519_key": (keys.host_keys[node], 0o600),
        f"{SSH_DIR}/ssh_host_ed25519_key.pub": (keys.host_pubs[node], 0o644),
        f"{SSH_DIR}/known_hosts": (known_hosts(spec, keys.host_pubs), 0o644),
        "/etc/hasync/cluster.toml": (cluster_toml(spec), 0o644),
        "/etc/hasync/authkey": (keys.authkey, 0o600),
        NODE_INFO: (json.dumps({"lab": spec.name, "node": node, "root": root}) + "\n", 0o644),
        "/usr/local/bin/hasync": (hasync_wrapper, 0o755),
        "/root/.bashrc": (ROOT_BASHRC, 0o644),
        "/root/.profile": (ROOT_PROFILE, 0o644),
    }


# A server's root shell, not the test machine's: bash reads ~/.bashrc for every command
# run over ssh, and the test machine's runs `pyenv init`, whose rehash takes a lock file
# under /root/.pyenv. A node that lost power in the middle kept the lock in its /root
# layer, and every later ssh command into it waited for it (60 s): the watcher's ssh
# connections timed out ("no answer") for the rest of a campaign run.
ROOT_BASHRC = "# written by `hasync lab up`: a lab node's root shell (nothing of the test machine's)\n"
ROOT_PROFILE = '# written by `hasync lab up`\nif [ "$BASH" ] && [ -f ~/.bashrc ]; then . ~/.bashrc; fi\n'


def dir_mode(path: str) -> int:
    """Mode for a directory the lab creates in a node (key directories are private)."""
    return 0o700 if path == SSH_DIR else 0o755


def split_overlay(path: str) -> tuple[str, str]:
    """"/etc/hasync/x" -> ("/etc", "hasync/x"): which overlay holds a path, and where."""
    bases = [o for o in OVERLAYS if path.startswith(o + "/")]
    if not bases:
        raise ValueError(f"{path} is not under a node's private layers ({', '.join(OVERLAYS)})")
    base = max(bases, key=len)
    return base, path[len(base) + 1 :]


def hasync_wrapper(src: str, python: str) -> str:
    """/usr/local/bin/hasync inside nodes: this very hasync (the host's venv/checkout)."""
    return (
        "#!/bin/sh\n"
        "# written by `hasync lab up`: the host's hasync, seen through the node's mounts\n"
        f'PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m hasync "$@"\n'
    )
