"""Where NFS keeps its state, and what the chain's resources do for NFS (pure; shared by
the bootstrap steps and doctor)."""

from __future__ import annotations

import ipaddress

from hasync import model

# nfs.conf sections whose storagedir holds the NFSv4 client records (nfsdcld(8), the
# nfsdcltrack(8) fallback); both default to /var/lib/nfs/<section>
V4_TRACKERS = ("nfsdcld", "nfsdcltrack")


def nfs_state(profile: model.Profile) -> str:
    return profile.paths.get("nfs_state", "/var/lib/nfs")


def under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path.rstrip("/") == root or path.startswith(root + "/")


def on_replicated_disk(profile: model.Profile, cluster: model.Cluster, path: str) -> bool:
    """Is *path* kept on the replicated disk: under /var/lib/nfs (the symlink or bind mount
    to [nfs].state_dir) or under state_dir itself?"""
    roots = [nfs_state(profile)] + ([cluster.nfs.state_dir] if cluster.nfs.state_dir else [])
    return any(under(path, r) for r in roots)


def vip_address(cluster: model.Cluster) -> str:
    v = cluster.nfs.vip
    return str(ipaddress.ip_interface(v).ip) if v else ""


# what a chain resource does for NFS, by its agent's name
_ROLES = {"nfsserver": "server", "nfs-server": "server", "nfs-kernel-server": "server", "exportfs": "exports",
          "nfsnotify": "notify", "nfsboot": "notify", "IPaddr2": "vip", "IPaddr": "vip"}


def role(res: model.Resource) -> str:
    """"server", "exports", "notify" (sends sm-notify), "vip" or ""."""
    name = res.agent.rsplit(":", 1)[-1].rsplit("/", 1)[-1].removesuffix(".service")
    return _ROLES.get(name, "")


def is_ocf(res: model.Resource, agent: str) -> bool:
    return res.type == "ocf" and res.agent == f"heartbeat:{agent}"
