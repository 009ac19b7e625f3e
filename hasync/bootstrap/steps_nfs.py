"""Bootstrap steps for NFS: /var/lib/nfs on the replicated filesystem, statd's lists where
resource-agents read them, NFSv4 grace and lease and client records (nfs.conf), sm-notify,
NFS off at boot, /etc/exports, the SLES9 nfslock fix, hotplug off."""

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
    if w.profile.init == "systemd" and any(ch.action in ("run", "link") for ch in out):
        out.insert(0, Change("nfs-state", "run", NFSDCLD_STOP_WHY.format(state=nfs_state), argv=NFSDCLD_STOP))
    return out


# nfsdcld, started at boot with the distro's NFS server (nfs-server.service wants it), keeps
# its client database open where it found it: after the move it writes nowhere ("Unable to
# update epochs: attempt to write a readonly database"), nfsd falls back to the old
# tracking, and v4 clients lose their locks at the next failover (the VM field run under
# systemd, 2026-12-07). Stopped before the copy (a live database is not copied); the
# chain's NFS start brings it back on the replicated disk.
NFSDCLD_STOP = ("sh", "-c", "if [ -d /run/systemd/system ] && systemctl is-active -q nfsdcld.service; then systemctl stop nfsdcld.service; fi")
NFSDCLD_STOP_WHY = ("nfsdcld, if it runs (started at boot with the NFS server), keeps its client database open in the old {state}: "
                    "stopped; the chain's NFS start brings it back on the replicated disk")


def nfs_conf_path(w: Wanted) -> str:
    return w.p("nfs_conf", "")


# --------------------------------------------------------------------------- statd
# resource-agents' nfsnotify sends `sm-notify -P /var/lib/nfs/statd` (RHEL's layout, hard-
# coded); a distro whose statd keeps its lists in /var/lib/nfs/sm (Debian) notifies no
# client after a failover. So statd (and sm-notify, and nfsserver's own notice) are moved
# to the agents' directory: nfs.conf [statd] state-directory-path, statd(8) and sm-notify(8).


def _statd_moves(w: Wanted) -> bool:
    return not nfsstate.same_dir(nfsstate.statd_default(w.profile), nfsstate.AGENTS_STATD)


def _statd_homes(w: Wanted) -> list[tuple[str, bool]]:
    """(directory, replicated?) whose statd/ the agents read: [nfs].state_dir (/var/lib/nfs
    is a symlink to it, or the chain bind-mounts it there) and, on bind profiles, the node's
    own /var/lib/nfs (nfsserver looks for its statd/ before it binds); the node's own
    /var/lib/nfs alone without a state_dir or with several NFS groups (one statd per node)."""
    state, sd = nfsstate.nfs_state(w.profile), w.cluster.nfs.state_dir
    if not sd or several_nfs(w):
        return [(state, False)]
    return [(sd, True)] + ([(state, False)] if w.o("nfs_state_link", "symlink") == "bind" else [])


def _statd_old(w: Wanted, home: str) -> str:
    """Where the distro's statd kept its lists under *home* (/var/lib/nfs/sm: *home*/sm)."""
    state, default = nfsstate.nfs_state(w.profile).rstrip("/"), nfsstate.statd_default(w.profile).rstrip("/")
    return home.rstrip("/") + default[len(state):]


def _statd_user(w: Wanted) -> str:
    return str(w.o("statd_user", "statd"))


def _statd_needs(w: Wanted) -> list[str]:
    keys = [f"file:{nfs_conf_path(w)}"]
    if not _statd_moves(w):
        return keys
    keys.append(f"user:{_statd_user(w)}")
    for home, replicated in _statd_homes(w):
        new, old = f"{home}/statd", _statd_old(w, home)
        keys += ([f"path:{home}"] + (drbd_key(w) if w.first else [])) if replicated else []
        keys += [f"path:{new}", f"path:{old}/state", f"path:{new}/state"]
        for d in nfsstate.STATD_LISTS:
            keys += [f"path:{new}/{d}", f"entries:{old}/{d}", f"entries:{new}/{d}"]
    return list(dict.fromkeys(keys))


@step("nfs-statd", when=lambda w: bool(nfs_conf_path(w)) and _any_exports(w), needs=_statd_needs)
def plan_nfs_statd(w: Wanted, f: Facts) -> list[Change]:
    """statd's lists where resource-agents read them: /var/lib/nfs/statd (nfs.conf)."""
    out: list[Change] = []
    if _statd_moves(w):
        for home, replicated in _statd_homes(w):
            # the replicated directory is made ready where the filesystem is: the first node
            # (bootstrap mounts it there) or the node that holds the chain now
            if replicated and not ((w.first and not peer_is_active(w, f)) or f[f"path:{home}"]["kind"] == "dir"):
                continue
            out += _statd_dir(w, f, home)
    refused = [c for c in out if c.action == "refuse"]
    if refused:
        return refused
    path = nfs_conf_path(w)
    old = f[f"file:{path}"]
    cur = edit.ini_get(old or "", "statd", "state-directory-path")
    if nfsstate.same_dir(cur if cur is not None else nfsstate.statd_default(w.profile), nfsstate.AGENTS_STATD):
        return out
    new = edit.ini_set(old or "", "statd", "state-directory-path", nfsstate.AGENTS_STATD)
    return out + [Change("nfs-statd", "write", f"statd and sm-notify keep their lists in {nfsstate.AGENTS_STATD}, where the nfsnotify "
                                               "agent reads them (from their next start)", path=path, data=new, old=old)]


LIST_WHY = {"sm": "statd's monitor list: the clients holding NFSv3 locks", "sm.bak": "sm-notify's list of clients still to notify",
            "sm.ha": "the nfsserver agent's copy of both across its stop and start (it saves nothing without it)"}


def _statd_dir(w: Wanted, f: Facts, home: str) -> list[Change]:
    """*home*/statd as Debian's nfs-common makes /var/lib/nfs: root's, its sm/ and sm.bak/
    (0755) the statd user's, and sm.ha/ beside them for the nfsserver agent (nfsstate.py) -- statd and sm-notify take their user from sm/'s owner and
    need nothing else there (statd(8), CVE-2019-3689) --; the records and the NSM state
    number of *home*'s old lists copied in (the old ones are kept)."""
    new, old, name = f"{home}/statd", _statd_old(w, home), _statd_user(w)
    for p in [new] + [f"{new}/{d}" for d in nfsstate.STATD_LISTS]:
        kind = f[f"path:{p}"]["kind"]
        if kind not in ("dir", "missing"):
            return [Change("nfs-statd", "refuse", f"{p} is a {kind}, where statd's directory goes: move it away and re-run", target=p)]
    owner = f[f"user:{name}"]
    if owner is None:
        return [Change("nfs-statd", "refuse", f"there is no user {name!r} to own statd's lists: install the NFS server "
                                              f"packages first (they make it), or set the profile's options.statd_user", target=name)]
    out = mkdir_change("nfs-statd", f, new, 0o755, "statd's directory where resource-agents read it")
    for d in nfsstate.STATD_LISTS:
        p = f"{new}/{d}"
        st = f[f"path:{p}"]
        out += mkdir_change("nfs-statd", f, p, 0o755, LIST_WHY[d])
        if (st["uid"], st["gid"]) != (owner["uid"], owner["gid"]):
            out.append(Change("nfs-statd", "run", f"{name}'s: statd and sm-notify run as sm/'s owner", argv=("chown", f"{name}:", p)))
        have = set(f[f"entries:{p}"] or ())
        carry = [n for n in f[f"entries:{old}/{d}"] or () if n not in have]
        if carry:
            out.append(Change("nfs-statd", "run", f"{len(carry)} record(s) of {old}/{d} carried over (kept there too)",
                              argv=("cp", "-a", "--", *(f"{old}/{d}/{n}" for n in carry), f"{p}/")))
    if f[f"path:{old}/state"]["kind"] == "file" and f[f"path:{new}/state"]["kind"] == "missing":
        out.append(Change("nfs-statd", "run", "the NSM state number carries on", argv=("cp", "-a", "--", f"{old}/state", f"{new}/state")))
    return out


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
