"""Where NFS keeps its state, and what the chain's resources do for NFS (pure; shared by
the bootstrap steps and doctor)."""

from __future__ import annotations

import ipaddress

from hasync import model
from hasync.config import chain_rules

# nfs.conf sections whose storagedir holds the NFSv4 client records (nfsdcld(8), the
# nfsdcltrack(8) fallback); both default to /var/lib/nfs/<section>
V4_TRACKERS = ("nfsdcld", "nfsdcltrack")


# Where resource-agents look for statd's monitor records: nfsnotify hard-codes RHEL's
# layout (STATD_PATH, copied and passed to `sm-notify -P`), nfsserver uses it when it is
# a directory. statd(8) and sm-notify(8) read theirs from nfs.conf [statd]
# state-directory-path, each keeping its lists in <dir>/sm and <dir>/sm.bak. The
# nfsserver agent saves both into <dir>/sm.ha before it stops nfsd and copies them back
# after its next start ("restoring the statd client state"), but makes sm.ha only when it
# binds nfs_shared_infodir itself: without the directory its `cp` fails and nothing is
# saved. In the VM field run under systemd (2026-12-07) the locking client's record in
# sm/ was gone on node2 after a migrate (sm/ and sm.bak/ empty, no sm.ha) and no client
# was told to reclaim its NFSv3 locks.
AGENTS_STATD = "/var/lib/nfs/statd"
STATD_LISTS = ("sm", "sm.bak", "sm.ha")


def nfs_state(profile: model.Profile) -> str:
    return profile.paths.get("nfs_state", "/var/lib/nfs")


def statd_default(profile: model.Profile) -> str:
    """statd's state directory when nfs.conf sets none: the distro's build of nfs-utils
    (profile paths.statd_state; nfs-utils' own default, statd(8), when the profile has none)."""
    return profile.paths.get("statd_state", "/var/lib/nfs")


def same_dir(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


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


def roles(cluster: model.Cluster) -> list[chain_rules.Seen]:
    """The chain as `check` sees it: each resource with its role in the canonical HA NFS
    order ("nfsserver", "exportfs", "ip", "nfsnotify", ...; heartbeat scripts through
    their OCF equivalents)."""
    return chain_rules.see(cluster.resources, cluster.nfs.vip, from_toml=True)


def is_ocf(res: model.Resource, agent: str) -> bool:
    return res.type == "ocf" and res.agent == f"heartbeat:{agent}"
