"""`hasync doctor` (and bootstrap's preflight): the known pitfalls, each with a one-line fix.

One small shell script (``probe_script``) reads everything doctor needs on a node in one
round trip -- locally, and on the peer over hasync's ssh key; ``parse_probe`` turns its
``key=value`` output into a dict; the ``check_*`` functions are pure: facts in, findings out.
"""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

from hasync import model
from hasync.bootstrap import (
    doctor_drbd,
    doctor_groups,
    doctor_host,
    doctor_lvm,
    doctor_manager,
    doctor_nfs,
)
from hasync.bootstrap.findings import Finding
from hasync.config import GOOD_KEY
from hasync.effects.run import Result, Runner

__all__ = ["Finding", "check_config", "check_node", "check_pair", "probe_script", "parse_probe", "run_doctor"]

CLOCK_BOUND_S = 1.0  # failover timing and unison's newer-wins both assume close clocks
# How long a node may take to answer the probe. A healthy node answers in about a second;
# a loaded one takes far longer (the VM tier's TCG guests, host load 5.5: 22 s locally,
# 48 s over ssh), and doctor is what one runs on a node in trouble. ssh's ConnectTimeout
# also bounds the key exchange (7 s there for `ssh peer true`).
PROBE_TIMEOUT_S = 120.0
SSH_CONNECT_TIMEOUT_S = 10
# The heartbeat key: bootstrap writes this many random bytes, hex-encoded (issue 12
# item 14: the field's norm is far longer than the 16 bytes the daemon accepts); doctor,
# like `check`, warns about a key file shorter than hasync.config.GOOD_KEY bytes.
AUTH_KEY_RANDOM_BYTES = 32


def fs_device(cluster: model.Cluster, node: str) -> str:
    st = cluster.storage
    if st.use_lvm:
        return f"/dev/{st.vg}/{st.lv}"
    if st.use_drbd:
        return st.drbd_device
    return st.disks.get(node, "")


def _storage_probe_lines(cluster: model.Cluster, profile: model.Profile, node: str) -> list[str]:
    """What doctor reads of *cluster*'s storage (a group's, doctor_groups.parts) on *node*."""
    q = shlex.quote
    disk = cluster.storage.disks.get(node, "")
    lines = [
        f"echo disk_bytes=$(blockdev --getsize64 {q(disk)})" if disk else "echo disk_bytes=",
        f"echo dev=$(stat -L -c %t:%T {q(fs_device(cluster, node))})",
    ]
    lines += doctor_lvm.probe_lines(cluster, profile, node)
    lines += doctor_nfs.storage_probe_lines(cluster)
    lines += doctor_drbd.storage_probe_lines(cluster)
    if cluster.storage.use_drbd:
        res = f"{profile.paths.get('drbd_conf_dir', '/etc/drbd.d')}/{cluster.storage.drbd_resource}.res"
        lines.append(f"echo drbd_res=$(sha256sum < {q(res)} | cut -c1-16)")
    return lines


def probe_script(cluster: model.Cluster, profile: model.Profile, node: str) -> str:
    """A POSIX sh script printing ``key=value`` lines: everything doctor reads on a node;
    each resource group's storage under ``group.<id>.`` (doctor_groups) when there are groups."""
    q = shlex.quote
    nfs_state = profile.paths.get("nfs_state", "/var/lib/nfs")
    key = cluster.heartbeat.auth_key
    lines = [
        "exec 2>/dev/null",
        "echo node=$(uname -n)",
        f"echo nfs_link=$(readlink {q(nfs_state)})",
        f"if [ -L {q(nfs_state)} ]; then echo nfs_kind=symlink; elif [ -d {q(nfs_state)} ]; then echo nfs_kind=dir; elif [ -e {q(nfs_state)} ]; then echo nfs_kind=other; else echo nfs_kind=missing; fi",
        f"[ -d {q(nfs_state)}/ ] && echo nfs_resolves=1 || echo nfs_resolves=0",
        f"echo authkey_mode=$(stat -c %a {q(key)})",
        f"echo authkey_bytes=$(tr -d '[:space:]' < {q(key)} | wc -c)",
        "echo unison=$(unison -version | head -n 1)",
    ]
    for gid, gc in doctor_groups.parts(cluster):
        lines += doctor_groups.wrap(gid, _storage_probe_lines(gc, profile, node))
    lines += doctor_host.probe_lines(cluster, profile, node)
    lines += doctor_nfs.probe_lines(cluster, profile, node)
    lines += doctor_drbd.probe_lines()
    lines += doctor_manager.probe_lines()
    if uses_portblock(cluster):
        agent = f"{OCF_ROOT}/resource.d/heartbeat/portblock"
        lines.append("echo iptables=$(iptables --version)")
        # the unfixed agent's pattern names the protocol only (the fix accepts its number too)
        broken = 'echo "^DROP${w}${1}${w}--'
        lines.append(f"grep -qF {q(broken)} {q(agent)} && echo portblock_numeric=0 || echo portblock_numeric=1")
    lines.append("echo clock=$(date +%s.%N)")
    return "\n".join(lines) + "\n"


OCF_ROOT = "/usr/lib/ocf"


def uses_portblock(cluster: model.Cluster) -> bool:
    return any(r.type == "ocf" and r.agent == "heartbeat:portblock" for r in cluster.resources)


def check_portblock(node: str, p: dict[str, str]) -> list[Finding]:
    """iptables 1.8.9 (Debian 12, Fedora 39) prints `iptables -n -L`'s protocol as a
    number (netfilter bug 1729); portblock agents before resource-agents 4.14
    (ClusterLabs/resource-agents#1924) look for the name, never find their own DROP rule,
    and an unblock leaves the service's port blocked after a takeover."""
    ver = re.search(r"v(\d+)\.(\d+)\.(\d+)", p.get("iptables", ""))
    if ver is None:
        return [Finding("portblock", "error", node, "the chain uses portblock but iptables is not installed", "apt-get install iptables")]
    if tuple(map(int, ver.groups())) == (1, 8, 9) and p.get("portblock_numeric") != "1":
        return [Finding("portblock", "error", node,
                        "iptables 1.8.9 prints protocols as numbers and this portblock agent looks for names: "
                        "an unblock will leave the port blocked after a takeover",
                        "update resource-agents (>= 4.14) or apply its fix (ClusterLabs/resource-agents#1924: "
                        "accept 'tcp' or '6' in active_grep_pat)")]
    return [Finding("portblock", "ok", node, f"portblock works with iptables {'.'.join(ver.groups())}")]


def parse_probe(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and re.fullmatch(r"[\w.\-]+", k):
            out[k] = v.strip()
    return out


def parse_unison_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"version\s+(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


# --------------------------------------------------------------------------- pure checks


def check_config(cluster: model.Cluster, profile: model.Profile | None = None) -> list[Finding]:
    """Findings of the config alone (bootstrap's preflight prints them too)."""
    out = doctor_nfs.check_config(cluster, profile)
    links = cluster.heartbeat.links
    if len(links) < 2:
        out.append(Finding("heartbeat-links", "warning", "cluster", f"only {len(links)} heartbeat link: one cable or switch failure splits the cluster", "add a second [[heartbeat.link]] (a serial null-modem cable or a dedicated NIC) to cluster.toml"))
    else:
        out.append(Finding("heartbeat-links", "ok", "cluster", f"{len(links)} heartbeat links"))
    if cluster.fencing.mode == "off":
        out.append(Finding("fencing", "warning", "cluster", "fencing is off: after a partition both nodes may write the disk", "set [fencing] mode = \"required\" with a command that powers the peer off"))
    else:
        out.append(Finding("fencing", "ok", "cluster", f"fencing {cluster.fencing.mode}"))
    for gid, gc in doctor_groups.parts(cluster):
        missing = [e.path for e in gc.nfs.exports if e.fsid is None]
        if missing:
            out += doctor_groups.tag(gid, [Finding("export-fsid", "warning", "cluster", f"exports without fsid=: {', '.join(missing)} (file handles carry the device number)",
                                                   "set fsid = N on every [[nfs.export]]" + (f" (and [[group.nfs.export]] of group {gid})" if gid else ""))])
    serving = [gs.group.id for gs in cluster.group_storage() if gs.nfs.exports or gs.nfs.vip]
    if len(serving) > 1:
        out.append(Finding("nfs-state-dir", "warning", "cluster", f"groups {' and '.join(serving)} both serve NFS: /var/lib/nfs stays on each node "
                           "(one nfsd per node), so the NFSv3 locks and NFSv4 state of a group that moves are not reclaimed",
                           "none within hasync: clients re-take their locks outside a grace period (docs/bootstrap.md, \"Several groups serving NFS\")"))
    elif cluster.nfs.exports and not cluster.nfs.state_dir:
        out.append(Finding("nfs-state-dir", "warning", "cluster", "nfs.state_dir is not set: locks and NFSv4 recovery state are lost on failover", "set [nfs] state_dir to a directory on the replicated filesystem"))
    return out


def check_node(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str] | None) -> list[Finding]:
    """Findings from one node's probe output (None: the node could not be read)."""
    if p is None:
        return []
    groups = doctor_groups.parts(cluster)
    out = doctor_host.check_node(cluster, profile, node, p)
    out += doctor_nfs.check_node(cluster, profile, node, doctor_groups.view(p, groups[0][0]))
    out += doctor_drbd.check_operator(node, p)
    vgs = frozenset(gc.storage.vg for _, gc in groups if gc.storage.use_lvm)
    for i, (gid, gc) in enumerate(groups):
        out += doctor_groups.tag(gid, _check_storage(gc, node, doctor_groups.view(p, gid), vgs, strangers=i == 0))
    out += doctor_nfs.check_boot(cluster, profile, node, p)
    # auth key
    mode = p.get("authkey_mode", "")
    key = cluster.heartbeat.auth_key
    if not mode:
        out.append(Finding("auth-key", "error", node, f"{key} is missing", "hasync bootstrap --yes (first node), --join FIRST (second node)"))
    elif int(mode, 8) & 0o077:
        out.append(Finding("auth-key", "error", node, f"{key} has mode {mode}: readable by others, heartbeat packets can be forged", f"chmod 600 {key}"))
    elif p.get("authkey_bytes", "").isdigit() and int(p["authkey_bytes"]) < GOOD_KEY:
        out.append(Finding(
            "auth-key", "warning", node,
            f"{key} holds {p['authkey_bytes']} bytes: shorter than {GOOD_KEY} (bootstrap makes "
            f"{2 * AUTH_KEY_RANDOM_BYTES}: {AUTH_KEY_RANDOM_BYTES} random bytes, hex; corosync-keygen writes 256)",
            f"on one node: (umask 077; openssl rand -hex {AUTH_KEY_RANDOM_BYTES} > {key}); on the other: "
            f"hasync bootstrap --join THAT-NODE --yes; then restart hasync-failover on both",
        ))
    else:
        out.append(Finding("auth-key", "ok", node, f"{key} mode {mode}"))
    if uses_portblock(cluster):
        out += check_portblock(node, p)
    manager = doctor_manager.manager(p, cluster.cluster.manager)  # hasync's daemon or Pacemaker: what holds differs
    return doctor_manager.check_node(node, manager, p) + doctor_manager.adjust(cluster, manager, out)


def _check_storage(cluster: model.Cluster, node: str, p: dict[str, str], vgs: frozenset[str], strangers: bool) -> list[Finding]:
    """*cluster*'s storage (one group's) on *node*: the LVM filter, DRBD, the disk."""
    out = doctor_lvm.check_node(cluster, node, p, vgs, strangers=strangers)
    out += doctor_drbd.check_node(cluster, node, p)
    disk = cluster.storage.disks.get(node, "")
    if disk:
        if not p.get("disk_bytes"):
            out.append(Finding("disk", "error", node, f"disk {disk} is missing", f"attach the disk or fix storage.disks.{node} in cluster.toml"))
        else:
            out.append(Finding("disk", "ok", node, f"{disk}: {int(p['disk_bytes']) / 2**20:.0f} MiB"))
    return out


def check_pair(cluster: model.Cluster, node: str, peer: str, a: dict[str, str], b: dict[str, str] | None, clock_offset: float | None) -> list[Finding]:
    """Findings that compare the two nodes."""
    out: list[Finding] = []
    if b is None:
        return out
    # unison
    va, vb = parse_unison_version(a.get("unison", "")), parse_unison_version(b.get("unison", ""))
    if va is None or vb is None:
        who = node if va is None else peer
        out.append(Finding("unison", "error", who, "unison is not installed", "apt-get install unison (same version on both nodes)"))
    elif va[:2] != vb[:2] and (va < (2, 52) or vb < (2, 52)):
        out.append(Finding("unison", "error", "cluster", f"unison {'.'.join(map(str, va))} here and {'.'.join(map(str, vb))} on {peer}: versions before 2.52 only talk to the same version", "install unison >= 2.52 on both nodes"))
    else:
        out.append(Finding("unison", "ok", "cluster", f"unison {'.'.join(map(str, va))} / {'.'.join(map(str, vb))}"))
    # clocks
    if clock_offset is not None:
        if abs(clock_offset) > CLOCK_BOUND_S:
            out.append(Finding("clock", "warning", "cluster", f"{peer}'s clock is {clock_offset:+.2f} s from {node}'s (bound {CLOCK_BOUND_S:g} s)", "run an NTP client (chrony) on both nodes"))
        else:
            out.append(Finding("clock", "ok", "cluster", f"clocks {clock_offset:+.3f} s apart"))
    for gid, gc in doctor_groups.parts(cluster):
        ga, gb = doctor_groups.view(a, gid), doctor_groups.view(b, gid)
        out += doctor_groups.tag(gid, _pair_storage(gc, node, peer, ga, gb) + doctor_drbd.check_pair(gc, node, peer, ga, gb))
    return out + doctor_nfs.check_pair(cluster, node, peer, a, b)


def _pair_storage(cluster: model.Cluster, node: str, peer: str, a: dict[str, str], b: dict[str, str]) -> list[Finding]:
    """*cluster*'s storage (one group's) compared across the nodes."""
    out: list[Finding] = []
    # exported device identity
    if cluster.nfs.exports:
        all_fsid = all(e.fsid is not None for e in cluster.nfs.exports)
        da, db = a.get("dev", ""), b.get("dev", "")
        if da and db and da != db and not all_fsid:
            out.append(Finding("device-identity", "error", "cluster", f"the exported device is {da} (major:minor, hex) here and {db} on {peer}, and not every export has fsid=: clients get stale file handles after failover", "set fsid = N on every [[nfs.export]] and re-run hasync bootstrap"))
        elif all_fsid:
            out.append(Finding("device-identity", "ok", "cluster", "every export has a fixed fsid="))
        elif da and da == db:
            out.append(Finding("device-identity", "ok", "cluster", f"same device number {da} on both nodes"))
        else:
            out.append(Finding("device-identity", "info", "cluster", "device numbers not comparable now (device inactive on one node); set fsid= to be safe", "set fsid = N on every [[nfs.export]]"))
    # the DRBD resource file must be the same on both nodes
    if cluster.storage.use_drbd:
        ra, rb = a.get("drbd_res", ""), b.get("drbd_res", "")
        if not ra or not rb or ra != rb:
            out.append(Finding("drbd-config", "error", "cluster", f"the DRBD resource file differs between {node} and {peer} (or is missing)", "hasync bootstrap --yes on both nodes (it writes the same file from cluster.toml)"))
        else:
            out.append(Finding("drbd-config", "ok", "cluster", "the DRBD resource file is identical on both nodes"))
    # disk sizes
    sa, sb = a.get("disk_bytes", ""), b.get("disk_bytes", "")
    if sa and sb and sa != sb:
        out.append(Finding("disk-size", "warning", "cluster", f"disks differ: {int(sa) / 2**20:.0f} MiB here, {int(sb) / 2**20:.0f} MiB on {peer}; DRBD uses the smaller", "give both nodes disks of the same size"))
    return out


def ping_argv(address: str, interface: str = "") -> tuple[str, ...]:
    return ("ping", "-c", "1", "-W", "1", *(("-I", interface) if interface else ()), address)


def link_probes(cluster: model.Cluster, node: str) -> list[tuple[model.Link, tuple[str, ...]]]:
    """For each heartbeat link: the command that shows the peer answers on it (serial: the
    device exists; the failover daemon checks the cable itself)."""
    peer = cluster.peer_of(node)
    out: list[tuple[model.Link, tuple[str, ...]]] = []
    for link in cluster.heartbeat.links:
        if link.kind == "serial":
            out.append((link, ("test", "-c", link.device)))
        elif link.kind == "udp-unicast" and peer.name in link.addresses:
            out.append((link, ping_argv(link.addresses[peer.name])))
        else:
            out.append((link, ping_argv(peer.address, link.interface)))
    return out


def check_links(cluster: model.Cluster, node: str, results: list[tuple[model.Link, bool]]) -> list[Finding]:
    out = []
    peer = cluster.peer_of(node).name
    for link, ok in results:
        if link.kind == "serial":
            if ok:
                out.append(Finding("link", "info", node, f"link {link.name}: {link.device} present (serial links are checked by the failover daemon)"))
            else:
                out.append(Finding("link", "error", node, f"link {link.name}: {link.device} missing", f"connect the null-modem cable / fix heartbeat.link {link.name}.device"))
        elif ok:
            out.append(Finding("link", "ok", node, f"{peer} answers on link {link.name}"))
        else:
            out.append(Finding("link", "error", node, f"{peer} does not answer on link {link.name} ({link.kind}{' ' + link.interface if link.interface else ''})", f"check the cable/interface of link {link.name} and `ip addr` on both nodes"))
    return out


# --------------------------------------------------------------------------- effects


def hasync_ssh(cluster: model.Cluster, address: str, script: str) -> tuple[str, ...]:
    s = cluster.sync
    return (
        "ssh", "-i", s.ssh_key, "-o", f"UserKnownHostsFile={s.known_hosts}", "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT_S}", f"root@{address}", script,
    )


def probe_finished(p: dict[str, str]) -> bool:
    """The probe ran to its end: its last line (clock=) is there. A probe cut off by its
    timeout has lost lines, and a missing line would read as a missing program."""
    return bool(p.get("clock"))


def unfinished(node: str, res: Result) -> Finding:
    why = "timed out" if res.exit_code == 124 else f"exited {res.exit_code}"
    return Finding("probe", "error", node, f"reading {node} did not finish ({why}: {(res.stderr or '').strip()[-120:]}); its checks are skipped",
                   "run hasync doctor again when the node is less busy; `uptime` and `ps` show what keeps it busy")


def run_doctor(cluster: model.Cluster, profile: model.Profile, node: str, runner: Runner, *, root: str = "/", with_peer: bool = True) -> list[Finding]:
    script = probe_script(cluster, profile, node)
    res = runner.run(("sh", "-c", script), timeout=PROBE_TIMEOUT_S)
    local = parse_probe(res.stdout)
    findings = check_config(cluster, profile)
    if probe_finished(local):
        findings += check_node(cluster, profile, node, local)
    else:
        findings.append(unfinished(node, res))
    if not with_peer:
        return findings
    peer = cluster.peer_of(node)
    results = []
    for link, argv in link_probes(cluster, node):
        results.append((link, runner.run(argv, timeout=5).ok))
    findings += check_links(cluster, node, results)
    res = runner.run(hasync_ssh(cluster, peer.address, probe_script(cluster, profile, peer.name)), timeout=PROBE_TIMEOUT_S)
    t1 = time.time()
    if res.exit_code == 124:
        findings.append(Finding("peer-ssh", "error", peer.name, f"reading {peer.name} over ssh timed out after {PROBE_TIMEOUT_S:g} s",
                                f"run hasync doctor again when {peer.name} is less busy; `ssh {peer.name} uptime` shows its load"))
        return findings
    if not res.ok:
        findings.append(Finding("peer-ssh", "error", peer.name, f"cannot read {peer.name} over ssh ({(res.stderr or res.stdout).strip()[-200:]})", f"hasync bootstrap --join {node} on {peer.name} (exchanges the ssh keys)"))
        return findings
    remote = parse_probe(res.stdout)
    if not probe_finished(remote):
        findings.append(unfinished(peer.name, res))
        return findings
    offset = None
    if remote.get("clock"):
        # the date runs last in the script, just before the answer travels back: compare
        # with the arrival time (error: one-way latency), not the start (ssh handshake)
        offset = float(remote["clock"]) - t1
    findings += check_node(cluster, profile, peer.name, remote)
    if probe_finished(local):  # nothing to compare with otherwise
        findings += check_pair(cluster, node, peer.name, local, remote, offset)
    return findings


def summary(findings: list[Finding]) -> dict[str, Any]:
    return {lvl: sum(1 for f in findings if f.level == lvl) for lvl in ("error", "warning", "info", "ok")}
