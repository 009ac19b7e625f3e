"""The chain against itself and against [storage] and [nfs] (pure, but for the agent look-ups).

cluster.toml says the same things twice: [storage] is what bootstrap builds (DRBD, the VG,
the filesystem at mount_point), [nfs].vip is what sm-notify binds to, and the chain's
parameters are what runs at failover. Each resource is first seen through its OCF
equivalent -- an ``ocf`` resource as it is, a heartbeat resource.d script through the
shared mapping (hasync.config.resource_d) -- so a haresources chain is checked the same
way. Severities: an error where the chain cannot work or would write to the wrong disk,
a warning where clients would see errors during a start (docs/config.md has the table).
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass

from hasync import model
from hasync.config import agents
from hasync.config.reader import Reader
from hasync.config.resource_d import NfsContext, NoEquivalent, heartbeat_agent

# the canonical HA NFS order (resource-agents' group, the Pacemaker export's)
ORDER = ("drbd", "lvm", "filesystem", "portblock-block", "nfsserver", "exportfs", "ip", "nfsnotify", "portblock-unblock")
RANK = {role: i for i, role in enumerate(ORDER)}
STORAGE_ROLES = ("drbd", "lvm", "filesystem")
PLACEHOLDER = "0.0.0.0"  # what the import writes where it cannot know an address
CANONICAL = "DRBD -> LVM -> Filesystem -> (portblock block) -> nfsserver -> exportfs -> IPaddr2 -> nfsnotify -> (portblock unblock)"

_OCF_ROLES = {
    "linbit:drbd": "drbd", "heartbeat:LVM": "lvm", "heartbeat:LVM-activate": "lvm",
    "heartbeat:Filesystem": "filesystem", "heartbeat:nfsserver": "nfsserver", "heartbeat:exportfs": "exportfs",
    "heartbeat:IPaddr": "ip", "heartbeat:IPaddr2": "ip", "heartbeat:IPv6addr": "ip", "heartbeat:nfsnotify": "nfsnotify",
}
# services, systemd units and init scripts by name (no OCF equivalent to go by)
_NAMED_ROLES = {"drbd": "drbd", "nfsserver": "nfsserver", "nfs-server": "nfsserver", "nfs-kernel-server": "nfsserver"}


@dataclass(frozen=True)
class Seen:
    """One resource of the chain as the checks see it."""

    index: int
    res: model.Resource
    agent: str  # its OCF equivalent, "provider:type" ("" when it has none)
    params: dict[str, str]
    role: str  # one of ORDER, or ""
    from_toml: bool  # a [[resource]] table (else a line of a haresources file)
    at: tuple = ("resource",)  # its chain's key path: ("resource",) or ("group", i, "resource")


def see(chain: tuple[model.Resource, ...], vip: str, *, from_toml: bool, at: tuple = ("resource",)) -> list[Seen]:
    out = []
    for i, res in enumerate(chain):
        agent, params = "", {}
        if res.type == "ocf":
            agent, params = res.agent, dict(res.params)
        elif res.type == "heartbeat":
            try:
                a = heartbeat_agent(res, NfsContext(vip))
            except NoEquivalent:
                a = None
            if a is not None and a.standard == "ocf":
                agent, params = f"{a.provider}:{a.type}", dict(a.params)
        role = _OCF_ROLES.get(agent, "")
        if agent == "heartbeat:portblock":
            role = {"block": "portblock-block", "unblock": "portblock-unblock"}.get(params.get("action", ""), "")
        if not role:
            role = _NAMED_ROLES.get(res.agent.rsplit("/", 1)[-1].removesuffix(".service"), "")
        out.append(Seen(i, res, agent, params, role, from_toml, at))
    return out


def say(r: Reader, s: Seen, key: str, message: str, *, error: bool) -> None:
    """Report at the resource (its params.KEY in cluster.toml, its haresources line)."""
    if s.from_toml:
        path: tuple = s.at + (s.index,)
        if key in s.res.params:
            path += ("params", key)
        elif key in ("agent", "promotable"):
            path += (key,)
        elif key == "args" or key and s.res.args:  # a heartbeat script's parameter is one of its args
            path += ("args",)
        (r.error if error else r.warn)(path, message)
    else:
        (r.errors if error else r.warnings).append(f"{s.res.src}: resource {s.res.id!r} ({s.res.agent}): {message}")


def _name(s: Seen) -> str:
    return f"{s.res.id!r} ({s.agent.partition(':')[2] or s.res.agent})"


# --------------------------------------------------------------------------- order


def _why(first: str, later: str) -> tuple[bool, str] | None:
    """(is an error, why) for *first* starting before *later*, which the canonical order
    starts first; None when that does no harm."""
    if first == "portblock-block":
        return None  # blocking the ports early only keeps clients waiting a little longer
    if later in STORAGE_ROLES:
        if first in STORAGE_ROLES:
            return True, f"the {first} sits on the {later}: it cannot start before it"
        if first == "ip":
            return False, "clients reach the address before the data is there and get errors instead of waiting"
        if first == "portblock-unblock":
            return False, "the ports open before the data is there"
        return True, ("it would serve the node's own disk (and keep the NFS state there), not the replicated one, "
                      "until the storage comes up under it")
    if first == "nfsnotify" and later == "ip":
        return True, "sm-notify sends from the cluster address, which is not up yet: the clients are never told"
    if first == "exportfs" and later == "nfsserver":
        return False, "the NFS server's start re-reads /etc/exports (exportfs -r) and drops the export again"
    if first == "nfsnotify":
        return False, "clients come to reclaim their locks before the server and the exports are there"
    return False, "clients reach the address before the exports exist and get stale file handles"


def order(r: Reader, seen: list[Seen]) -> None:
    for i, s in enumerate(seen):
        if not s.role:
            continue
        behind = [(t, _why(s.role, t.role)) for t in seen[i + 1:] if t.role and RANK[t.role] < RANK[s.role]]
        behind = [(t, why) for t, why in behind if why is not None]
        if not behind:
            continue
        error, why = next(((e, w) for _, (e, w) in behind if e), behind[0][1])  # type: ignore[misc]
        names = ", ".join(_name(t) for t, _ in behind)
        say(r, s, "", f"{_name(s)} starts before {names}: {why}; the order that works is {CANONICAL}: "
                      f"move it after {behind[-1][0].res.id!r}", error=error)
    blocks = [s for s in seen if s.role == "portblock-block"]
    if blocks and not any(s.role == "portblock-unblock" and s.index > blocks[0].index for s in seen):
        say(r, blocks[0], "action", "portblock blocks the ports and no portblock unblock follows: no client gets "
                                    "through until the chain stops; add one at the end of the chain", error=False)


# --------------------------------------------------------------------------- agents


def agents_run(r: Reader, seen: list[Seen], storage: model.Storage) -> None:
    """OCF agents that do not exist or cannot work under hasync's chain runner."""
    for s in seen:
        if s.res.type != "ocf" or r.is_bad(s.at + (s.index, "agent")):
            continue
        hint = agents.unknown_agent_hint(s.agent)
        if hint:
            say(r, s, "agent", f"OCF agent {s.agent!r} is unknown: {hint}", error=False)
            continue
        if not r.is_bad(s.at + (s.index, "promotable")):
            promotable(r, s)
        if (s.agent == "heartbeat:LVM-activate" and s.params.get("vg_access_mode") == "system_id" and not storage.lvm_system_id
                and not r.is_bad(("storage", "lvm_system_id"))):
            say(r, s, "vg_access_mode", "vg_access_mode=system_id needs system_id_source in lvm.conf on both nodes, which "
                                        "bootstrap writes only when [storage] names it: add lvm_system_id = \"uname\" to "
                                        "[storage] (or use vg_access_mode=tagging)", error=True)


def promotable(r: Reader, s: Seen) -> None:
    """``promotable`` against the agent: the chain runs promote and demote only for a
    promotable resource, and an agent without those actions fails them."""
    has_promote = agents.promotable(s.agent)
    if s.res.promotable and not has_promote:
        say(r, s, "promotable", f"ocf:{s.agent} has no promote action (its metadata lists none): the chain's promote "
                                "after its start would fail; drop promotable = true", error=True)
    elif not s.res.promotable and s.agent in agents.PROMOTE_ONLY:
        say(r, s, "promotable", f"ocf:{s.agent} only works promoted: its start leaves it unpromoted (DRBD: Secondary) "
                                "and it refuses to run outside a promotable clone, so what follows it cannot start; "
                                "drop promotable = false", error=True)


# --------------------------------------------------------------------------- [nfs].vip


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return None


def vip(r: Reader, seen: list[Seen], nfs: model.Nfs, at: tuple = ("nfs",)) -> None:
    """[nfs].vip (sm-notify's address; a later group's [group.nfs].vip at *at*) against the
    addresses the chain brings up."""
    ups = [(s, _ip(s.params.get("ip") or s.params.get("ipv6addr", ""))) for s in seen if s.role == "ip"]
    ups = [(s, a) for s, a in ups if a is not None]
    want = _ip(nfs.vip) if nfs.vip and not r.is_bad(at + ("vip",)) and _ip(nfs.vip) != _ip(PLACEHOLDER) else None
    if want is not None and seen:
        if not ups:
            r.warn(at + ("vip",), f"no resource of the chain brings up {nfs.vip}: add an IPaddr2 resource with ip = \"{want}\"")
        elif all(a != want for _, a in ups):
            brought = ", ".join(f"{a} ({_name(s)})" for s, a in ups)
            r.error(at + ("vip",), f"{want} (where sm-notify tells clients of a failover) is not the address the chain brings up: "
                                    f"{brought}; clients mount one and ignore notices from the other, so their locks are lost: "
                                    "make them the same")
        elif "/" in nfs.vip:
            prefix = nfs.vip.split("/", 1)[1]
            for s, a in ups:
                mask = s.params.get("cidr_netmask", "")
                if a == want and mask and mask != prefix:
                    say(r, s, "cidr_netmask", f"cidr_netmask {mask} is not the /{prefix} of [nfs].vip {nfs.vip}", error=False)
    # the NFS agents' own idea of the cluster address: either one (a [nfs].vip that is not
    # the chain's address is reported above, once)
    expected = ([want] if want is not None else []) + [a for _, a in ups if a != want]
    for s in seen:
        for key in ("nfs_ip", "source_host"):
            got = s.params.get(key, "") if s.role in ("nfsserver", "nfsnotify") else ""
            if got and expected and _ip(got) not in expected:
                say(r, s, key, f"{key} {got} is not the cluster address ({' or '.join(map(str, expected))}: [nfs].vip "
                               "and the chain's IP resource)", error=True)


# --------------------------------------------------------------------------- [storage]


def _dev(path: str) -> str:
    return posixpath.normpath(path) if path.startswith("/") else path


def storage(r: Reader, seen: list[Seen], st: model.Storage, *, present: bool, at: tuple = ("storage",)) -> None:
    """[storage] (what bootstrap builds; a later group's [group.storage] at *at*) against the
    chain's DRBD, LVM and Filesystem."""
    if not present or r.is_bad(at):
        return
    ok = lambda key: not r.is_bad(at + (key,))  # noqa: E731
    by_role = {role: [s for s in seen if s.role == role] for role in STORAGE_ROLES}
    for s in by_role["drbd"]:
        got = s.params.get("drbd_resource", "")
        if not st.use_drbd and ok("use_drbd"):
            say(r, s, "", "the chain starts DRBD but [storage].use_drbd = false: bootstrap sets up no DRBD", error=False)
        elif got and ok("drbd_resource") and got != st.drbd_resource:
            say(r, s, "drbd_resource", f"DRBD resource {got!r} is not [storage].drbd_resource {st.drbd_resource!r}, "
                                       "the one bootstrap creates", error=True)
    for s in by_role["lvm"]:
        got = s.params.get("vgname") or s.params.get("volgrpname", "")
        if not st.use_lvm and ok("use_lvm"):
            say(r, s, "", "the chain activates a volume group but [storage].use_lvm = false: bootstrap creates none", error=False)
        elif got and ok("vg") and got != st.vg:
            key = "vgname" if "vgname" in s.params else "volgrpname"
            say(r, s, key, f"volume group {got!r} is not [storage].vg {st.vg!r}, the one bootstrap creates", error=True)
    fs = [s for s in by_role["filesystem"] if s.params.get("directory")]
    if not fs or not ok("mount_point"):
        return
    here = [s for s in fs if _dev(s.params["directory"]) == _dev(st.mount_point)]
    if not here:
        dirs = ", ".join(f"{s.params['directory']} ({_name(s)})" for s in fs)
        r.error(at + ("mount_point",), f"{st.mount_point} is where bootstrap makes the filesystem and the exports, but "
                                            f"the chain mounts {dirs}: make them the same")
        return
    devices = _devices(st)
    for s in here:
        dev, fstype = s.params.get("device", ""), s.params.get("fstype", "")
        if dev and devices and _dev(dev) not in devices and ok("vg") and ok("lv") and ok("drbd_device"):
            say(r, s, "device", f"device {dev} is not the one [storage] builds the filesystem on ({sorted(devices)[0]}): "
                                "the chain would mount another disk than the replicated one", error=True)
        if fstype and ok("filesystem") and fstype != st.filesystem:
            say(r, s, "fstype", f"fstype {fstype} is not [storage].filesystem {st.filesystem}, what bootstrap makes", error=True)


def _devices(st: model.Storage) -> set[str]:
    """The names of the block device [storage] puts the filesystem on."""
    if st.use_lvm:
        mapper = f"{st.vg.replace('-', '--')}-{st.lv.replace('-', '--')}"
        return {f"/dev/{st.vg}/{st.lv}", f"/dev/mapper/{mapper}"}
    if st.use_drbd:
        res = st.drbd_resource
        return {_dev(st.drbd_device), f"/dev/drbd/by-res/{res}", f"/dev/drbd/by-res/{res}/0"}
    return {_dev(d) for d in st.disks.values()}
