"""doctor's NFS checks (issue 13 item 5, issue 15): /var/lib/nfs on the replicated disk --
the symlink, or on bind profiles the chain's bind mount, checked on the node that has the
filesystem mounted --; no node an NFS client of its own cluster; the NFS v4 state: grace
and lease as configured, nfsdcld's records on the replicated disk and nfsdcld running, one
server scope on both nodes; statd's lists where nfsnotify reads them; a chain that pins the
scope and notifies after the exports and the VIP. Probe lines for the node script, then
pure checks.
"""

from __future__ import annotations

import os
import re
import shlex

from hasync import model
from hasync.bootstrap import doctor_groups, nfsstate
from hasync.bootstrap.findings import Finding, probe_line

FIX = "hasync bootstrap --yes"
# the nfsserver agent's runtime file for nfs_server_scope (resource-agents 4.9+)
SCOPE_FILE = "/run/sysconfig/nfs-server-scope"
# nfs.conf and nfs.conf.d as key=value lines: nfsconf.<section>.<key>=<value> (later wins)
_NFSCONF_AWK = ("awk '/^[ \\t]*\\[/{s=$0; gsub(/^[ \\t]*\\[|\\][ \\t]*$/,\"\",s); next} /^[ \\t]*[#;]/{next} "
                "/=/{k=$0; sub(/=.*/,\"\",k); gsub(/[ \\t]/,\"\",k); v=$0; sub(/^[^=]*=/,\"\",v); "
                "gsub(/^[ \\t]+|[ \\t]+$/,\"\",v); print \"nfsconf.\" s \".\" k \"=\" v}'")


def serves_nfs(cluster: model.Cluster) -> bool:
    """Some group exports (a cluster without [[group]] tables: its [nfs])."""
    return any(gc.nfs.exports for _, gc in doctor_groups.parts(cluster))


def probe_lines(cluster: model.Cluster, profile: model.Profile, node: str) -> list[str]:
    q = shlex.quote
    state = nfsstate.nfs_state(profile)
    lines = [probe_line("nfs_mounts", "awk '$3==\"nfs\"||$3==\"nfs4\"{print $1\"@\"$2}' /proc/mounts")]
    for s in nfs_services(profile):
        if profile.init == "systemd":
            unit = s if "." in s else s + ".service"
            lines.append(f"echo enabled.{s}=$(systemctl is-enabled {q(unit)})")
        else:
            lines.append(f"echo enabled.{s}=$(chkconfig --list {q(s)} | tr -s ' \\t' ' ')")
    if not serves_nfs(cluster):
        return lines
    conf = profile.paths.get("nfs_conf", "")
    if conf:
        lines.append(f"cat {q(conf)} {q(conf)}.d/*.conf | {_NFSCONF_AWK}")
    lines += [
        probe_line("nfsd.threads", "cat /proc/fs/nfsd/threads"),
        probe_line("nfsd.grace", "cat /proc/fs/nfsd/nfsv4gracetime"),
        probe_line("nfsd.lease", "cat /proc/fs/nfsd/nfsv4leasetime"),
        "pgrep -x nfsdcld >/dev/null && echo nfsdcld_running=1 || echo nfsdcld_running=0",
        # the database the running nfsdcld has open (resolved by the kernel)
        probe_line("nfsdcld.db", "for f in /proc/$(pgrep -xo nfsdcld)/fd/*; do readlink \"$f\"; done | grep 'main[.]sqlite$' | head -n 1"),
        probe_line("mnt.nfs_state", f"awk -v p={q(state)} '$5==p{{print $3\" \"$4}}' /proc/self/mountinfo | tail -n 1"),
        probe_line("scope.run", f"sed -n 's/^NFS_SERVER_SCOPE=//p' {SCOPE_FILE}"),
        probe_line("scope.cfg", f"grep -o 'nfs_server_scope *= *\"[^\"]*\"' {q(cluster.path)} | head -n 1 | sed 's/.*\"\\(.*\\)\"$/\\1/'"),
        # statd's lists where nfsnotify reads them; the directory the running statd chdir'd to
        # (statd(8): it works in its state directory) against that one, resolved
        f"[ -d {q(nfsstate.AGENTS_STATD)}/sm ] && echo statd.sm=1 || echo statd.sm=0",
        f"[ -d {q(nfsstate.AGENTS_STATD)}/sm.ha ] && echo statd.sm_ha=1 || echo statd.sm_ha=0",
        probe_line("statd.cwd", "readlink /proc/$(pgrep -xo rpc.statd)/cwd"),
        probe_line("statd.agents", f"readlink -f {q(nfsstate.AGENTS_STATD)}"),
    ]
    return lines


def storage_probe_lines(cluster: model.Cluster) -> list[str]:
    """Where *cluster*'s filesystem (a group's) is mounted from: the bind check's reference."""
    if not cluster.nfs.exports:
        return []
    mp = shlex.quote(cluster.storage.mount_point)
    return [probe_line("mnt.fs", f"awk -v p={mp} '$5==p{{print $3\" \"$4}}' /proc/self/mountinfo | tail -n 1")]


# --------------------------------------------------------------------------- the chain


def check_config(cluster: model.Cluster, profile: model.Profile | None) -> list[Finding]:
    """What the chain must do for NFS failover and `check` does not look at (the order and
    the addresses it does): pin the NFSv4 server scope, send sm-notify, bind /var/lib/nfs
    on bind profiles. Only when the chain runs an NFS server."""
    seen = nfsstate.roles(cluster)
    servers = [s for s in seen if s.role == "nfsserver"]
    if not serves_nfs(cluster) or not servers:
        return []
    vip = nfsstate.vip_address(cluster) or "THE-VIP"
    out: list[Finding] = []
    for s in servers:
        r = s.res
        if nfsstate.is_ocf(r, "nfsserver") and r.params.get("nfs_server_scope"):
            out.append(Finding("nfs-scope", "ok", "cluster", f"resource {r.id!r} pins the NFSv4 server scope to {r.params['nfs_server_scope']}"))
        elif nfsstate.is_ocf(r, "nfsserver"):
            out.append(Finding("nfs-scope", "error", "cluster", f"resource {r.id!r} (ocf:heartbeat:nfsserver) has no nfs_server_scope: nfsd's NFSv4 server scope is then "
                                                                "each node's host name, and after a failover v4 clients see another server and do not reclaim their locks "
                                                                "(resource-agents #1644)", f'add nfs_server_scope = "{vip}" to its params (the same value on both nodes)'))
        else:
            out.append(Finding("nfs-scope", "error", "cluster", f"resource {r.id!r} starts nfsd as a {r.type} {r.agent}: its NFSv4 server scope is each node's host name, "
                                                                "so v4 clients do not reclaim their locks after a failover", f'start NFS with type = "ocf", agent = "heartbeat:nfsserver", params.nfs_server_scope = "{vip}"'))
    notifiers = [s for s in seen if s.role == "nfsnotify"]
    last = max((s for s in seen if s.role in ("nfsserver", "exportfs", "ip")), key=lambda s: s.index).res.id
    if not notifiers:
        out.append(Finding("sm-notify", "error", "cluster", "no resource sends sm-notify after the exports and the VIP are up: NFSv3 clients are not told to reclaim their "
                                                            "locks after a failover", f'add [[resource]] type = "ocf", agent = "heartbeat:nfsnotify", params.source_host = "{vip}" after {last!r}'))
    else:
        out.append(Finding("sm-notify", "ok", "cluster", f"resource {notifiers[-1].res.id!r} sends sm-notify (check looks at its place and address)"))
        for s in servers:
            if nfsstate.is_ocf(s.res, "nfsserver") and s.res.params.get("nfs_no_notify") not in ("true", "1", "yes"):
                out.append(Finding("sm-notify", "warning", "cluster", f"resource {s.res.id!r} also runs sm-notify when it starts, before the exports and the VIP",
                                   f'set nfs_no_notify = "true" on {s.res.id!r}'))
    sd = cluster.nfs.state_dir
    if profile is not None and sd and profile.options.get("nfs_state_link", "symlink") == "bind":
        if not any(nfsstate.is_ocf(s.res, "nfsserver") and s.res.params.get("nfs_shared_infodir", "").rstrip("/") == sd.rstrip("/") for s in servers):
            out.append(Finding("nfs-state-bind", "error", "cluster", f"on the {profile.name} profile the chain bind-mounts {sd} onto {nfsstate.nfs_state(profile)}, "
                                                                     "but no nfsserver resource has nfs_shared_infodir = that directory: the NFS state stays on the root disk",
                               f'set nfs_shared_infodir = "{sd}" on the chain\'s ocf:heartbeat:nfsserver'))
    return out


# --------------------------------------------------------------------------- one node


def _services(profile: model.Profile, *logical: str) -> list[str]:
    return [s for name in logical for s in profile.services.get(name, ())]


def nfs_services(profile: model.Profile) -> list[str]:
    return _services(profile, "nfsboot", "nfsserver", "nfslock")


def enabled_word(init: str, raw: str) -> str:
    if init == "systemd":
        return raw.split()[-1] if raw.split() else "not-found"
    levels = dict(w.split(":", 1) for w in raw.split() if re.fullmatch(r"[0-6]:\w+", w))
    if not levels:
        return "not-found"
    return "enabled" if any(levels.get(str(n)) == "on" for n in range(2, 6)) else "disabled"


def check_boot(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    """One NFS group: the chain starts NFS, never the boot. Several: one nfsd (and statd)
    per node from boot, outside the groups, and no boot notice (steps_nfs nfs-boot-on)."""
    several = doctor_groups.several_nfs(cluster)
    up = set(profile.services.get("nfsserver", ())) | set(profile.services.get("nfslock", ())) if several else set()
    systemd = profile.init == "systemd"
    out = []
    for s in nfs_services(profile):
        word = enabled_word(profile.init, p.get(f"enabled.{s}", ""))
        if s in up and word == "disabled":
            out.append(Finding("nfs-at-boot", "error", node, f"{s} is not started at boot: with several groups serving NFS each node runs one nfsd "
                                                             "outside the groups, and a group moved here is not served", f"systemctl enable {s}" if systemd else f"chkconfig {s} on"))
        elif s not in up and word in ("enabled", "enabled-runtime"):
            what = "it would serve the disk on the passive node" if not several else "its boot notice comes from the node's own address, which no client mounted"
            out.append(Finding("nfs-at-boot", "error", node, f"{s} is started at boot: {what}", f"systemctl disable {s}" if systemd else f"chkconfig {s} off"))
    if not out:
        out.append(Finding("nfs-at-boot", "ok", node, "nfsd and statd started at boot on each node (several NFS groups)" if several else "NFS services not started at boot"))
    return out




def check_node(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    """The node's NFS (*p*: the first group's view of the probe). Several NFS groups keep
    /var/lib/nfs on each node's own disk (one nfsd per node): its place is not checked."""
    out = _own_mounts(cluster, node, p)
    if cluster.nfs.state_dir and not doctor_groups.several_nfs(cluster):
        out += _state_dir(cluster, profile, node, p)
    if serves_nfs(cluster):
        out += _v4_state(cluster, profile, node, p) + _statd(cluster, profile, node, p)
    return out


def _statd(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    """resource-agents' nfsnotify sends `sm-notify -P /var/lib/nfs/statd` (hard-coded):
    statd must keep its lists there, or no NFSv3 client hears of a failover (issue 15)."""
    if not profile.paths.get("nfs_conf") or not any(s.role == "nfsnotify" for s in nfsstate.roles(cluster)):
        return []
    agents = nfsstate.AGENTS_STATD
    conf = p.get("nfsconf.statd.state-directory-path", "")
    have = conf or nfsstate.statd_default(profile)
    if not nfsstate.same_dir(have, agents):
        why = "nfs.conf [statd] state-directory-path" if conf else f"{profile.name}'s default"
        return [Finding("statd-dir", "error", node, f"statd keeps its lists in {have.rstrip('/')}/sm ({why}) but the chain's nfsnotify sends "
                                                    f"sm-notify -P {agents}: after a failover no NFSv3 client is told to reclaim its locks",
                        f"{FIX} (nfs.conf [statd] state-directory-path = {agents}, its sm/ and sm.bak/ made)")]
    # /var/lib/nfs dangles on a symlink profile's passive node: nothing to see there
    if p.get("nfs_resolves") == "1" and p.get("statd.sm") == "0":
        return [Finding("statd-dir", "error", node, f"{agents} has no sm/: statd does not start (it runs as sm/'s owner) and nfsnotify "
                                                    "notifies no client", FIX)]
    server = any(nfsstate.is_ocf(r, "nfsserver") for r in cluster.resources)
    if server and p.get("nfs_resolves") == "1" and p.get("statd.sm_ha") == "0":
        return [Finding("statd-dir", "error", node, f"{agents} has no sm.ha/: the nfsserver agent saves statd's lists there before it stops "
                                                    "nfsd and puts them back after its start; without it the locking clients' records are "
                                                    "lost at a migrate and no NFSv3 client is told to reclaim its locks", FIX)]
    out = [Finding("statd-dir", "ok", node, f"statd keeps its lists in {agents}, where nfsnotify reads them")]
    cwd, real = p.get("statd.cwd", ""), p.get("statd.agents", "")
    if cwd and real and cwd != real:
        out.append(Finding("statd-dir", "warning", node, f"rpc.statd runs in {cwd}, chosen when it started; its lists now go to {agents} ({real})",
                           "systemctl restart rpc-statd at a quiet moment (bootstrap copied its records; the next failover restarts it too)"))
    return out


def _own_mounts(cluster: model.Cluster, node: str, p: dict[str, str]) -> list[Finding]:
    """The field notes: HA nodes must not be NFS clients -- of their own cluster least of
    all (the unmount at failover waits on the server being moved)."""
    ours = {nfsstate.vip_address(gc) for _, gc in doctor_groups.parts(cluster)} | {n.address for n in cluster.nodes} | {n.name for n in cluster.nodes}
    out = []
    for item in p.get("nfs_mounts", "").split():
        src, _, mp = item.partition("@")
        host = src.rsplit(":", 1)[0].strip("[]")
        if host in ours:
            out.append(Finding("nfs-client", "error", node, f"{node} mounts the cluster's own export {src} on {mp}: a cluster node must not be an NFS "
                                                            "client of its cluster (failover hangs unmounting it)", f"umount -l {mp} and remove it from /etc/fstab (or the automounter)"))
    return out


def _state_dir(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    state, sd = nfsstate.nfs_state(profile), cluster.nfs.state_dir
    if profile.options.get("nfs_state_link", "symlink") == "symlink":
        if p.get("nfs_kind") != "symlink" or p.get("nfs_link") != sd:
            got = p.get("nfs_kind", "?") + (f" -> {p['nfs_link']}" if p.get("nfs_link") else "")
            return [Finding("nfs-state-link", "error", node, f"{state} is a {got}, not a symlink to {sd}: NFS state is not replicated", f"{FIX} (or: mv {state} {state}.old && ln -s {sd} {state})")]
        return [Finding("nfs-state-link", "ok", node, f"{state} -> {sd}" + ("" if p.get("nfs_resolves") == "1" else " (dangling here: the filesystem is mounted on the peer)"))]
    # bind: the chain's nfsserver (nfs_shared_infodir) mounts state_dir on /var/lib/nfs
    fs, bound = p.get("mnt.fs", ""), p.get("mnt.nfs_state", "")
    mp = cluster.storage.mount_point
    if fs:
        fdev, _, froot = fs.partition(" ")
        want = froot.rstrip("/") + "/" + os.path.relpath(sd, mp) if nfsstate.under(sd, mp) else ""
        if not bound:
            return [Finding("nfs-state-link", "error", node, f"the cluster filesystem is mounted here but {state} is not bind-mounted from {sd}: nfsd keeps "
                                                             "its state (statd, nfsdcld) on the root disk and the peer will not have it after a failover",
                            f'the chain\'s ocf:heartbeat:nfsserver needs nfs_shared_infodir = "{sd}" (it binds it before nfsd starts)')]
        bdev, _, broot = bound.partition(" ")
        if bdev != fdev or (want and broot != want):
            return [Finding("nfs-state-link", "error", node, f"{state} is a mount of {broot} on device {bdev}, not {sd}", f"umount {state} and restart the chain's NFS server (it binds {sd})")]
        return [Finding("nfs-state-link", "ok", node, f"{state} is bind-mounted from {sd}")]
    if bound:
        return [Finding("nfs-state-link", "error", node, f"{state} is still a mount ({bound}) though the cluster filesystem is not mounted here: "
                                                         "a bind mount left by a failed stop keeps the device busy", f"umount {state}")]
    if p.get("nfs_kind") != "dir":
        return [Finding("nfs-state-link", "error", node, f"{state} is a {p.get('nfs_kind')}, not the directory the chain bind-mounts {sd} on", f"{FIX} (or: mkdir {state})")]
    return [Finding("nfs-state-link", "ok", node, f"{state} is a directory (the chain bind-mounts {sd} on it on the active node)")]


def _v4_state(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    out: list[Finding] = []
    want = (str(int(cluster.nfs.grace_time)), str(int(cluster.nfs.lease_time)))
    if profile.paths.get("nfs_conf"):
        have = (p.get("nfsconf.nfsd.grace-time", ""), p.get("nfsconf.nfsd.lease-time", ""))
        if have != want:
            out.append(Finding("nfs-grace", "error", node, f"nfs.conf sets grace-time {have[0] or 'unset (90)'} and lease-time {have[1] or 'unset (90)'}, [nfs] says "
                                                           f"{want[0]} and {want[1]}: clients stall that long after a failover", FIX))
        else:
            out.append(Finding("nfs-grace", "ok", node, f"nfs.conf: grace {want[0]} s, lease {want[1]} s"))
    running = p.get("nfsd.threads", "0") not in ("", "0")
    if running and "mnt.fs" in p and not p["mnt.fs"] and not doctor_groups.several_nfs(cluster):
        # the VM scenario: Debian's nfs-kernel-server script (the nfsserver agent's stop
        # without systemd) left nfsd's threads running on the node that handed over
        out.append(Finding("nfsd-stray", "error", node, f"the kernel's nfsd runs here ({p['nfsd.threads']} threads) though the cluster filesystem is "
                                                        "not mounted here: an NFS server stop left it running, with its NFSv4 state of before; "
                                                        "the chain's next start here begins no grace period and every client loses its locks",
                           "echo 0 > /proc/fs/nfsd/threads on this node (`rpc.nfsd 0` fails where /var/lib/nfs dangles; the chain's next start here brings nfsd back)"))
    if running and (p.get("nfsd.grace"), p.get("nfsd.lease")) != want:
        out.append(Finding("nfs-grace", "warning", node, f"nfsd runs with grace {p.get('nfsd.grace')} s and lease {p.get('nfsd.lease')} s, set when it started; the config says {want[0]}/{want[1]}",
                           "restart the NFS server at a quiet moment (v4 clients reclaim their state during the grace)"))
    state, sd = nfsstate.nfs_state(profile), cluster.nfs.state_dir
    if doctor_groups.several_nfs(cluster):
        sd = ""  # the records stay on each node's disk with the rest of /var/lib/nfs
    for section in nfsstate.V4_TRACKERS:
        # under /var/lib/nfs (the default) they follow its symlink or bind mount, which
        # nfs-state-link checks; a storagedir set elsewhere must be on the disk itself
        d = p.get(f"nfsconf.{section}.storagedir") or f"{state}/{section}"
        if sd and not nfsstate.on_replicated_disk(profile, cluster, d):
            out.append(Finding("nfs-v4-records", "error", node, f"{section} keeps the NFSv4 client records in {d}, off the replicated disk: after a failover "
                                                                "the new node does not know the clients, they cannot reclaim and the grace runs its full length", FIX))
    db = p.get("nfsdcld.db", "")
    if sd and p.get("nfsdcld_running") == "1" and db and not nfsstate.on_replicated_disk(profile, cluster, db):
        out.append(Finding("nfsdcld-db", "error", node, f"the running nfsdcld has its client database open in {db}, not on the replicated disk (it was "
                                                        "started before the NFS state moved, e.g. at boot with the distro's NFS server): it writes "
                                                        "nowhere, nfsd falls back to the old client tracking and v4 clients lose their locks at the next failover",
                           "on the standby: systemctl stop nfsdcld (the chain's NFS start brings it back); on the active node, "
                           "hasync migrate to the peer and back"))
    if running and p.get("nfsdcld_running") == "0":
        out.append(Finding("nfsdcld", "warning", node, "nfsd serves without nfsdcld: v4 clients are tracked the legacy way and the grace does not end as soon as every "
                                                       "client has reclaimed", "systemctl start nfsdcld, then restart the NFS server (check nfsdcld is installed, not masked)"))
    return out


# --------------------------------------------------------------------------- both nodes


def _scope(cluster: model.Cluster, p: dict[str, str], name: str) -> str:
    """The NFSv4 server scope *p*'s node would start nfsd with: the chain's
    nfs_server_scope as its own cluster.toml says, else nfs.conf's, else its host name."""
    ocf = any(nfsstate.is_ocf(r, "nfsserver") for r in cluster.resources)
    return (p.get("scope.cfg") if ocf else "") or p.get("nfsconf.nfsd.scope") or p.get("node") or name


def check_pair(cluster: model.Cluster, node: str, peer: str, a: dict[str, str], b: dict[str, str]) -> list[Finding]:
    if not serves_nfs(cluster) or not any(s.role == "nfsserver" for s in nfsstate.roles(cluster)):
        return []
    sa, sb = _scope(cluster, a, node), _scope(cluster, b, peer)
    out = []
    if sa != sb:
        out.append(Finding("nfs-scope", "error", "cluster", f"NFSv4 server scope {sa} on {node}, {sb} on {peer}: after a failover v4 clients see \"server_scope "
                                                            "mismatch\" and do not reclaim their locks (resource-agents #1644)",
                           "set one nfs_server_scope (the VIP) on the chain's nfsserver, in cluster.toml on both nodes"))
    else:
        out.append(Finding("nfs-scope", "ok", "cluster", f"NFSv4 server scope {sa} on both nodes"))
    for name, p, want in ((node, a, sa), (peer, b, sb)):
        if p.get("scope.run") and p["scope.run"] != want:
            out.append(Finding("nfs-scope", "warning", name, f"nfsd runs with server scope {p['scope.run']}; the config says {want} (from the next start)",
                               "restart the chain's NFS server at a quiet moment"))
    return out
