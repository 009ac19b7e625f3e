"""doctor over several resource groups (issue 17): each group's storage -- its DRBD
resource, VG/LV, filesystem, exports -- is probed and checked on its own, the way
bootstrap lays it down per group (plan.group_parts); its findings name the group.

The probe prints a group's lines prefixed ``group.<id>.`` (one sed per group); ``view``
gives a check the node-wide keys plus that group's, unprefixed, so the one-group checks
read a group's probe as they read a one-group cluster's.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from hasync import model
from hasync.bootstrap.findings import Finding

PREFIX = "group."


def parts(cluster: model.Cluster) -> list[tuple[str, model.Cluster]]:
    """(group id, *cluster* with that group's storage and NFS) per group that has storage;
    without [[group]] tables: [("", cluster)]."""
    if not cluster.groups:
        return [("", cluster)]
    return [(gs.group.id, replace(cluster, storage=gs.storage, nfs=gs.nfs)) for gs in cluster.group_storage()]


def several_nfs(cluster: model.Cluster) -> bool:
    """Several groups serve NFS: one nfsd per node outside the groups, /var/lib/nfs on
    each node's own disk (docs/bootstrap.md, "Several groups serving NFS")."""
    return sum(1 for _, gc in parts(cluster) if gc.nfs.exports or gc.nfs.vip) > 1


def wrap(gid: str, lines: list[str]) -> list[str]:
    """A group's probe lines, their output prefixed with the group (none without groups)."""
    if not gid or not lines:
        return lines
    return ["{", *lines, f"}} | sed {shlex.quote('s/^/' + PREFIX + gid + './')}"]


def view(p: dict[str, str], gid: str) -> dict[str, str]:
    """The node-wide keys of probe *p* and group *gid*'s, unprefixed."""
    if not gid:
        return p
    pre = f"{PREFIX}{gid}."
    out = {k: v for k, v in p.items() if not k.startswith(PREFIX)}
    out.update({k[len(pre):]: v for k, v in p.items() if k.startswith(pre)})
    return out


def tag(gid: str, findings: list[Finding]) -> list[Finding]:
    return [replace(f, group=gid) for f in findings] if gid else findings
