"""Bootstrap steps for NFS: /var/lib/nfs on the replicated filesystem, NFSv4 grace and lease
and client records (nfs.conf), sm-notify, NFS off at boot, /etc/exports, the SLES9 nfslock
fix, hotplug off."""

from __future__ import annotations

from hasync.bootstrap import edit, nfsstate
from hasync.bootstrap.plan import (
    Change,
    Facts,
    Wanted,
    drbd_key,
    group_parts,
    mkdir_change,
    nfs_parts,
    peer_is_active,
    service_onoff,
    step,
)

# --------------------------------------------------------------------------- NFS


def _nfs_state_needs(w: Wanted) -> list[str]:
    nfs_state = w.p("nfs_state", "/var/lib/nfs")
    return [f"path:{nfs_state}", f"path:{w.cluster.nfs.state_dir}"] + (drbd_key(w) if w.first else [])


@step("nfs-state", when=lambda w: bool(w.cluster.nfs.state_dir), needs=_nfs_state_needs)
def plan_nfs_state(w: Wanted, f: Facts) -> list[Change]:
    """/var/lib/nfs on the replicated filesystem (symlink, or bind mount by the chain)."""
    nfs_state = w.p("nfs_state", "/var/lib/nfs")
    sd = w.cluster.nfs.state_dir
    out: list[Change] = []
    here = f[f"path:{nfs_state}"]
    if w.first and not peer_is_active(w, f) and f[f"path:{sd}"]["kind"] == "missing":
        tmp = sd + ".hasync-tmp"
        src = nfs_state if here["kind"] == "dir" else None
        if src:
            out += [
                Change("nfs-state", "run", "a copy interrupted earlier is redone", argv=("rm", "-rf", tmp)),
                Change("nfs-state", "run", "the NFS state moves onto the replicated disk", argv=("cp", "-a", src, tmp)),
                Change("nfs-state", "run", "in place at once", argv=("mv", "-T", tmp, sd)),
            ]
        else:
            out.append(Change("nfs-state", "mkdir", "the NFS state on the replicated disk", path=sd, mode=0o755))
    if w.o("nfs_state_link", "symlink") == "symlink":
        if not (here["kind"] == "symlink" and here["target"] == sd):
            out.append(Change("nfs-state", "link", f"{nfs_state} was a {here['kind']}" + (f" -> {here['target']}" if here["target"] else ""), path=nfs_state, target=sd))
    elif here["kind"] != "dir":
        out.append(Change("nfs-state", "mkdir", f"the bind-mount target (the chain mounts {sd} here)", path=nfs_state, mode=0o755))
    return out


def nfs_conf_path(w: Wanted) -> str:
    return w.p("nfs_conf", "")


def several_nfs(w: Wanted) -> bool:
    """Several resource groups serve NFS: one nfsd per node outside the groups (docs/bootstrap.md)."""
    return len(nfs_parts(w)) > 1


def _any_exports(w: Wanted) -> bool:
    return any(gw.cluster.nfs.exports for gw in group_parts(w))


@step("nfs-v4", when=lambda w: bool(nfs_conf_path(w)) and _any_exports(w), needs=lambda w: [f"file:{nfs_conf_path(w)}"])
def plan_nfs_v4(w: Wanted, f: Facts) -> list[Change]:
    """nfs.conf: NFSv4 grace and lease from [nfs]; the v4 client records kept on the replicated disk."""
    path = nfs_conf_path(w)
    old = f[f"file:{path}"]
    nfs = w.cluster.nfs
    # rpc.nfsd reads these at start (nfs.conf(5)); grace-time also sets NLM's (v3 locks)
    new = edit.ini_set(old or "", "nfsd", "grace-time", str(int(nfs.grace_time)))
    new = edit.ini_set(new, "nfsd", "lease-time", str(int(nfs.lease_time)))
    moved = []
    for section in nfsstate.V4_TRACKERS:
        # by default under /var/lib/nfs, so on the replicated disk; a storagedir set
        # elsewhere would leave the new active node without the clients' records
        cur = edit.ini_get(new, section, "storagedir")
        if cur is not None and not nfsstate.on_replicated_disk(w.profile, w.cluster, cur):
            new = edit.ini_set(new, section, "storagedir", f"{nfsstate.nfs_state(w.profile)}/{section}")
            moved.append(section)
    if new == (old or ""):
        return []
    why = f"grace {int(nfs.grace_time)} s, lease {int(nfs.lease_time)} s" + (f"; {', '.join(moved)} records back under /var/lib/nfs" if moved else "")
    return [Change("nfs-v4", "write", why, path=path, data=new, old=old)]


# several NFS groups: the node's one statd cannot take both addresses as its name; each
# group's nfsnotify resource notifies from its own address instead
@step("sm-notify", when=lambda w: bool(w.cluster.nfs.vip) and not several_nfs(w), needs=lambda w: [f"file:{w.p('sm_notify_conf', '/etc/nfs.conf')}"])
def plan_sm_notify(w: Wanted, f: Facts) -> list[Change]:
    """sm-notify tells clients of the reboot from the cluster address (-v VIP)."""
    path = w.p("sm_notify_conf", "/etc/nfs.conf")
    old = f[f"file:{path}"]
    if w.o("sm_notify_style", "nfs.conf") == "nfsboot-options":
        if old is None:
            return [Change("sm-notify", "refuse", f"{path} is missing: install nfs-utils (the nfsboot script) first", target=path)]
        new = edit.shell_set(old, "OPTIONS", f" -q -v {w.vip_address}")
    else:
        # nfs.conf(5)/sm-notify(8): [sm-notify] outgoing-addr is -v; lift-grace=n keeps the
        # grace period for clients reclaiming locks after a failover; [statd] name is the
        # name statd monitors under.
        new = edit.ini_set(old or "", "sm-notify", "outgoing-addr", w.vip_address)
        new = edit.ini_set(new, "sm-notify", "lift-grace", "n")
        new = edit.ini_set(new, "statd", "name", w.vip_address)
    if new == old:
        return []
    return [Change("sm-notify", "write", f"bind sm-notify to {w.vip_address}", path=path, data=new, old=old)]


def _nfs_services(w: Wanted) -> tuple[str, ...]:
    return w.services("nfsboot") + w.services("nfsserver") + w.services("nfslock")


@step("nfs-boot-off", when=lambda w: not several_nfs(w), needs=lambda w: [f"enabled:{s}" for s in _nfs_services(w)])
def plan_nfs_boot_off(w: Wanted, f: Facts) -> list[Change]:
    """NFS services are started by the cluster, never at boot."""
    return service_onoff("nfs-boot-off", w, f, _nfs_services(w), False, "the cluster starts it on the active node")


@step("nfs-boot-on", when=several_nfs, needs=lambda w: [f"enabled:{s}" for s in _nfs_services(w)])
def plan_nfs_boot_on(w: Wanted, f: Facts) -> list[Change]:
    """Several NFS groups: nfsd and statd run on both nodes from boot, outside the groups."""
    on = w.services("nfsserver") + w.services("nfslock")
    return (service_onoff("nfs-boot-on", w, f, on, True, "one nfsd per node serves every group it holds; each group moves "
                                                          "only its filesystem, exports and address")
            + service_onoff("nfs-boot-on", w, f, w.services("nfsboot"), False, "the boot notice would come from the node's own "
                                                                              "address, which no client mounted"))


def render_exports(w: Wanted) -> list[str]:
    """Every group's exports, each with its group's mount point (mountpoint=: mountd
    exports it only while the group's filesystem is mounted on this node, so the node's
    one nfsd serves exactly the groups it holds); an export without fsid= gets its
    position among them all."""
    exports = [(e, gw.st.mount_point) for gw in group_parts(w) for e in gw.cluster.nfs.exports]
    return [edit.export_line(e.path, e.clients, e.options, e.fsid if e.fsid is not None else i + 1, mp)
            for i, (e, mp) in enumerate(exports)]


def _export_dirs(w: Wanted) -> list[str]:
    """Exported directories on the replicated filesystem: made once, on the first node."""
    mp = w.st.mount_point.rstrip("/") + "/"
    return [e.path for e in w.cluster.nfs.exports if e.path.startswith(mp)] if w.first else []


def _exports_needs(w: Wanted) -> list[str]:
    keys = [f"file:{w.p('exports', '/etc/exports')}"]
    for gw in group_parts(w):
        dirs = _export_dirs(gw)
        keys += [f"path:{d}" for d in dirs] + (drbd_key(gw) if dirs else [])
    return list(dict.fromkeys(keys))


@step("exports", when=_any_exports, needs=_exports_needs)
def plan_exports(w: Wanted, f: Facts) -> list[Change]:
    """/etc/exports with a fixed fsid= (file handles survive failover) and mountpoint;
    the exported directories made on the replicated filesystem (each group's first node)."""
    out: list[Change] = []
    for gw in group_parts(w):
        dirs = _export_dirs(gw)
        if dirs and not peer_is_active(gw, f):
            for d in dirs:
                out += mkdir_change("exports", f, d, 0o755, "exported directory on the replicated filesystem")
    path = w.p("exports", "/etc/exports")
    old = f[f"file:{path}"]
    new = edit.managed_block(old or "", render_exports(w))
    if new != old:
        out.append(Change("exports", "write", "fsid= and mountpoint= on every export", path=path, data=new, old=old))
    return out


@step("nfslock-stop", when=lambda w: bool(w.o("nfslock_stop_fix", False)), needs=lambda w: [f"file:{w.p('nfslock_script', '/etc/init.d/nfslock')}"])
def plan_nfslock(w: Wanted, f: Facts) -> list[Change]:
    """SLES9: nfslock stop must succeed (killproc of the kernel lockd returns non-zero)."""
    path = w.p("nfslock_script", "/etc/init.d/nfslock")
    old = f[f"file:{path}"]
    if old is None:
        return []
    new = edit.nfslock_stop_fixed(old)
    if new == old:
        return []
    return [Change("nfslock-stop", "write", "swap killproc and echo so the stop action returns 0", path=path, data=new, old=old)]


@step("boot-noise", when=lambda w: bool(w.o("hotplug_off", False)), needs=lambda w: [f"enabled:{s}" for s in w.services("hotplug")])
def plan_boot_noise(w: Wanted, f: Facts) -> list[Change]:
    """Hotplug and automatic probing off (noisy on the passive node)."""
    return service_onoff("boot-noise", w, f, w.services("hotplug"), False, "probing at boot interferes with the cluster's disks")
