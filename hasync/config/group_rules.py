"""Resource groups against each other (pure): no two groups may claim the same thing.

Each group fails over on its own (issue 17), so two groups that start the same DRBD
resource, activate the same volume group, mount the same device or directory or bring up
the same address would run it on both nodes at once as soon as their owners differ. The
claims are read off each resource's OCF equivalent (hasync.config.chain_rules.see), so a
haresources file is checked the same way as [[group]] tables.
"""

from __future__ import annotations

import ipaddress
import posixpath

from hasync import model
from hasync.config.chain_rules import Seen, say
from hasync.config.reader import Reader

# role -> (param, what it claims)
_CLAIMS = {
    "drbd": (("drbd_resource", "DRBD resource"),),
    "lvm": (("vgname", "volume group"), ("volgrpname", "volume group")),
    "filesystem": (("device", "device"), ("directory", "mount point")),
    "ip": (("ip", "address"), ("ipv6addr", "address")),
    "exportfs": (("fsid", "NFS fsid"),),  # clients tell exports apart by it, across failovers too
}
NFS_ROLES = ("nfsserver", "exportfs", "nfsnotify")


def _norm(what: str, value: str) -> str:
    if what == "address":
        try:
            return str(ipaddress.ip_address(value.split("/")[0]))
        except ValueError:
            return value
    return posixpath.normpath(value) if value.startswith("/") else value


def claims(s: Seen) -> list[tuple[str, str, str]]:
    """(what, value as compared, param) for everything *s* takes for its group alone."""
    out = []
    for param, what in _CLAIMS.get(s.role, ()):
        value = s.params.get(param, "")
        if value and value != "0.0.0.0":  # the import's placeholder claims nothing yet
            out.append((what, _norm(what, value), param))
    return out


def distinct(r: Reader, groups: list[tuple[model.Group, list[Seen]]]) -> None:
    """An error for each thing a group claims that an earlier group claims too."""
    first: dict[tuple[str, str], tuple[str, Seen]] = {}
    for g, seen in groups:
        for s in seen:
            for what, value, param in claims(s):
                other = first.get((what, value))
                if other is None:
                    first[(what, value)] = (g.id, s)
                elif other[0] != g.id:
                    gid, o = other
                    say(r, s, param, f"group {g.id!r} claims {what} {value}, which group {gid!r} claims too "
                                     f"(resource {o.res.id!r}, {o.res.src}): each group fails over on its own, so both "
                                     "nodes would use it at once; give each group its own", error=True)


def nfs(r: Reader, groups: list[tuple[model.Group, list[Seen]]], st: model.Nfs) -> None:
    """Two groups serving NFS end up on one node after a failover, and a node has one nfsd
    and one /var/lib/nfs: the field runs nfsd on both nodes outside the groups (VCS: one
    NFS resource per node, the service groups point to it) and moves only each group's
    filesystem, exports, address and sm-notify."""
    servers = [(g, s) for g, seen in groups for s in seen if s.role == "nfsserver"]
    for g, s in servers[1:]:
        first, fs = servers[0]
        if g.id != first.id:
            say(r, s, "", f"group {g.id!r} starts the NFS server, and so does group {first.id!r} (resource {fs.res.id!r}, "
                          f"{fs.res.src}): a node runs one nfsd with one /var/lib/nfs, and after a failover both groups "
                          "are on one node: the second start restarts nfsd under the first group (its exports re-read, its "
                          "clients cut off) and the second group's stop stops NFS for both. Run nfsd on both nodes outside "
                          "the groups (enabled at boot) and keep in each group only its Filesystem, exportfs, IP and "
                          "nfsnotify", error=True)
    # a group serves NFS when its chain has an NFS resource or it has exports of its own
    # ([nfs] the first group's, [group.nfs] a later one's: /etc/exports, the node's nfsd)
    serving = [g.id for i, (g, seen) in enumerate(groups)
               if any(s.role in NFS_ROLES for s in seen) or (st if i == 0 else g.nfs or model.Nfs()).exports]
    if len(serving) > 1 and servers and all(g.id == servers[0][0].id for g, _ in servers):
        g, s = servers[0]
        other = next(gid for gid in serving if gid != g.id)
        say(r, s, "", f"group {g.id!r} starts the NFS server, and group {other!r} serves NFS too: its exports need the "
                      f"nfsd that group {g.id!r} stops whenever it moves away (and restarts under group {other!r}'s clients "
                      "when it comes). Run nfsd on both nodes outside the groups (bootstrap enables it at boot when "
                      "several groups serve NFS) and keep in each group only its Filesystem, exportfs, IP and nfsnotify",
            error=True)
    if len(serving) > 1 and st.state_dir and not r.is_bad(("nfs", "state_dir")):
        r.error(("nfs", "state_dir"), f"groups {' and '.join(map(repr, serving))} both serve NFS, and [nfs].state_dir puts "
                                      "/var/lib/nfs on the first group's disk: the nfsd serving the other group would lose its "
                                      "state whenever the first group moves away; leave state_dir empty (/var/lib/nfs stays "
                                      "on each node: NFSv3 locks and NFSv4 state of a group that moves are not reclaimed, "
                                      "as in the field's active/active setups)")


def _storage_claims(gs: model.GroupStorage) -> list[tuple[str, str, str]]:
    """(what, value as compared, key under the group's storage/nfs table) for what
    bootstrap lays down for the group alone."""
    st, out = gs.storage, []
    if st.use_drbd:
        out += [("DRBD resource", st.drbd_resource, "drbd_resource"), ("DRBD device", _norm("device", st.drbd_device), "drbd_device"),
                ("DRBD port", str(st.drbd_port), "drbd_port")]
    if st.use_lvm:
        out.append(("volume group", st.vg, "vg"))
    out += [(f"{node}'s disk", _norm("device", d), "disks") for node, d in st.disks.items()]
    out.append(("mount point", _norm("mount point", st.mount_point), "mount_point"))
    if gs.nfs.vip:
        out.append(("address", _norm("address", gs.nfs.vip), "vip"))
    out += [("export", _norm("export", e.path), "export") for e in gs.nfs.exports]
    out += [("NFS fsid", str(e.fsid), "export") for e in gs.nfs.exports if e.fsid is not None]
    return out


def storage(r: Reader, parts: tuple[model.GroupStorage, ...], index: dict[str, int]) -> None:
    """A later group's [group.storage] and [group.nfs] take their defaults from [storage]
    and [nfs]: an error for each thing bootstrap would lay down twice (the same DRBD
    resource, device or port, disk, volume group, mount point, address, export or fsid),
    and for a mount point inside another group's (it would be mounted on the wrong node)."""
    first: dict[tuple[str, str], str] = {}
    for gs in parts:
        i = index[gs.group.id]
        for what, value, key in _storage_claims(gs):
            table = ("storage",) if key not in ("vip", "export") else ("nfs",)
            at = (table if i == 0 else ("group", i) + table) + (key,)
            other = first.setdefault((what, value), gs.group.id)
            if other != gs.group.id and not r.is_bad(at):
                r.error(at, f"group {gs.group.id!r} would get {what} {value}, which bootstrap lays down for group {other!r} "
                            f"too: give each group its own ({'[group.nfs]' if table == ('nfs',) else '[group.storage]'} "
                            "keys default to the first group's)")
    mounts = [(gs.group.id, index[gs.group.id], posixpath.normpath(gs.storage.mount_point)) for gs in parts]
    for gid, i, mp in mounts:
        for oid, _, omp in mounts:
            if oid != gid and mp.startswith(omp.rstrip("/") + "/"):
                r.error((("storage",) if i == 0 else ("group", i, "storage")) + ("mount_point",),
                        f"{mp} is inside the mount point {omp} of group {oid!r}: each group's filesystem moves on its own, "
                        "so it would be mounted on a node that may not hold the other")
