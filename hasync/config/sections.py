"""cluster.toml's sections -> hasync.model, one field table per section (pure).

A table lists each key with its kind; ``read`` checks the keys, converts every value
(errors with file:line, the default where a value is bad or missing) and the builders
below add only what a table cannot say: the rules between fields.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from hasync import model
from hasync.config import agents
from hasync.config.paths import (
    node_local_paths,
    node_local_within,
    normalize_path,
    sync_path_problem,
)
from hasync.config.reader import Reader, format_duration

LINK_KINDS = ("udp-unicast", "udp-multicast", "udp-broadcast", "serial")
RESOURCE_TYPES = ("heartbeat", "lsb", "systemd", "ocf", "service")
FENCING_MODES = ("required", "optional", "off")
MANAGERS = ("hasync", "pacemaker")  # [cluster].manager: who runs the chain
STOP_FAILURE = ("fence-self", "reboot", "block")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
FILESYSTEMS = ("ext3", "ext4", "xfs")
# lvm.conf system_id_source values bootstrap can write with nothing else to provide
# ("lvmlocal" and "file" need a file of their own)
LVM_SYSTEM_ID_SOURCES = ("uname", "machineid", "appmachineid")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Field:
    """One key of a section: its kind (see ``Reader.get``; "tables" for an array of
    tables read by its own builder) and whether it must be given."""

    key: str
    kind: str
    required: bool = False


def fields(kind: str, *keys: str) -> tuple[Field, ...]:
    return tuple(Field(k, kind) for k in keys)


TOP = fields("tables", "cluster", "node", "heartbeat", "sync", "storage", "nfs", "resource", "group", "haresources", "fencing")
CLUSTER = fields("str", "name", "profile", "preferred_node", "manager")
NODE = (Field("name", "str", True), Field("address", "str", True))
HEARTBEAT = (*fields("duration", "keepalive", "deadtime", "warntime", "initdead"), Field("auto_failback", "bool"),
             Field("auth_key", "str"), Field("link", "tables"), Field("ping", "strlist"), Field("history", "int"))
LINK = (Field("kind", "str", True), *fields("str", "name", "interface", "group", "device"),
        *fields("int", "port", "ttl", "baud"), Field("addresses", "strmap"))
SYNC = (*fields("strlist", "paths", "ignore"), *fields("duration", "debounce", "max_delay", "reconcile_every", "keep_conflicts"),
        *fields("str", "backup_dir", "state_dir", "ssh_key", "known_hosts"), Field("on_change", "tables"))
ON_CHANGE = (Field("path", "str", True), Field("command", "str", True))
STORAGE = (*fields("bool", "use_drbd", "use_lvm"), *fields("strmap", "disks", "replication"),
           *fields("str", "drbd_resource", "drbd_device", "drbd_protocol", "resync_rate", "vg", "lv", "lv_size",
                   "filesystem", "mount_point", "mount_options", "lvm_system_id"), Field("drbd_port", "int"))
NFS = (Field("state_dir", "str"), Field("export", "tables"), Field("vip", "str"), *fields("duration", "grace_time", "lease_time"))
EXPORT = (Field("path", "str", True), Field("clients", "str"), Field("options", "str"), Field("fsid", "int"))
RESOURCE = (*(Field(k, "str", True) for k in ("id", "type", "agent")), Field("args", "strlist"), Field("params", "paramsmap"),
            *fields("duration", "start_timeout", "stop_timeout", "monitor_timeout", "monitor_interval"), Field("max_restarts", "int"),
            Field("promotable", "bool"))
GROUP = (Field("id", "str", True), Field("preferred_node", "str"), Field("auto_failback", "bool"), Field("resource", "tables"),
         Field("storage", "tables"), Field("nfs", "tables"))
# [group.nfs]: a group's own exports and address; grace, lease and state_dir are the node's
# nfsd's (one per node, outside the groups), so they stay in [nfs]
GROUP_NFS = (Field("vip", "str"), Field("export", "tables"))
GROUP_NFS_NODE_WIDE = ("state_dir", "grace_time", "lease_time")
FENCING = (Field("mode", "str"), Field("command", "argv"), Field("timeout", "duration"), Field("on_stop_failure", "str"),
           Field("self_command", "argv"))


def keys(table: tuple[Field, ...]) -> list[str]:
    return [f.key for f in table]


class Values(dict):
    """One section's values by key; ``bad`` holds the keys that were wrong or missing."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: set[str] = set()


def read(r: Reader, raw: Any, path: tuple, table: tuple[Field, ...], defaults: Any = None, /, **override: Any) -> Values:
    """The values of one section: each key of *table* converted, or its default (the
    attribute of *defaults* of that name, or *override*) when missing or wrong."""
    obj = r.table(raw, path, keys(table))
    out = Values()
    for f in table:
        if f.kind == "tables":
            continue
        default = override[f.key] if f.key in override else getattr(defaults, f.key, None)
        out[f.key] = r.get(obj, path, f.key, f.kind, default, required=f.required)
        if r.is_bad(path + (f.key,)):  # wrong, missing or misspelt
            out.bad.add(f.key)
    return out


def check_ip(r: Reader, path: tuple, text: str, *, cidr_ok: bool = False) -> None:
    try:
        if cidr_ok and "/" in text:
            ipaddress.ip_interface(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        what = "an IP address (optionally /prefix)" if cidr_ok else "an IP address"
        r.error(path, f"expected {what}, got {text!r}")


def check_range(r: Reader, path: tuple, value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        r.error(path, f"expected {what} {low}-{high}, got {value}")


# --------------------------------------------------------------------------- sections


def nodes(r: Reader, top: dict) -> list[model.Node]:
    out: list[model.Node] = []
    for i, raw in enumerate(r.tables(top, (), "node", "[[node]] tables (an array of tables)")):
        p = ("node", i)
        v = read(r, raw, p, NODE, None, name="", address="")
        name, addr = v["name"], v["address"]
        if name and not NAME.match(name):
            r.error(p + ("name",), f"expected a host name (as `uname -n` prints), got {name!r}")
        if addr:
            check_ip(r, p + ("address",), addr)
        if name and any(x.name == name for x in out):
            r.error(p + ("name",), f"duplicate node name {name!r}: node names must be unique")
        out.append(model.Node(name, addr, r.where(p)))
    if len(out) != 2 and not any("node" in e for e in r.errors):
        r.error(("node",), f"expected exactly two [[node]] tables (an active/passive pair), found {len(out)}")
    return out


def _unset(h: dict, key: str) -> str:
    """Where a timing the rules refuse came from when the file does not set it: a rule
    broken by a default must say so, or the error names a value nobody wrote."""
    if key in h:
        return ""
    if key != "deadtime" and "deadtime" in h:
        return f" (not set: {'deadtime / 2' if key == 'warntime' else 'deadtime'}, as heartbeat derives it; set {key} too)"
    return f" (not set: hasync's default; set {key} too)"


def heartbeat(r: Reader, raw: Any, names: list[str]) -> model.Heartbeat:
    P = ("heartbeat",)
    h = raw if isinstance(raw, dict) else {}
    # heartbeat's defaults: warntime = deadtime / 2, initdead = deadtime
    d = model.Heartbeat()
    v = read(r, raw, P, HEARTBEAT, d, warntime=None, initdead=None)
    timing_ok = not v.bad & {"keepalive", "deadtime", "warntime", "initdead"}
    keepalive, deadtime = v["keepalive"], v["deadtime"]
    warntime = v["warntime"] if v["warntime"] is not None else (deadtime / 2 if "deadtime" in h else d.warntime)
    initdead = v["initdead"] if v["initdead"] is not None else (deadtime if "deadtime" in h else d.initdead)
    for i, a in enumerate(v["ping"] or ()):
        check_ip(r, P + ("ping", i), a)
    if "history" not in v.bad:
        check_range(r, P + ("history",), v["history"], 1, 100000, "a number of failover records to keep,")
    # heartbeat's own start-up rules (only when every value parsed: no cascades)
    if not timing_ok:
        pass
    elif keepalive <= 0:
        r.error(P + ("keepalive",), "must be greater than 0")
    elif deadtime <= 2 * keepalive:
        r.error(P + ("deadtime",), f"must be greater than 2 x keepalive ({format_duration(2 * keepalive)}); got {format_duration(deadtime)}{_unset(h, 'deadtime')} (heartbeat refuses the same)")
    if timing_ok and initdead < deadtime:
        r.error(P + ("initdead",), f"must be at least deadtime ({format_duration(deadtime)}); got {format_duration(initdead)}{_unset(h, 'initdead')}")
    if timing_ok and warntime >= deadtime and deadtime > 0:
        r.error(P + ("warntime",), f"must be less than deadtime ({format_duration(deadtime)}); got {format_duration(warntime)}{_unset(h, 'warntime')}")
    if timing_ok and warntime < keepalive:
        r.error(P + ("warntime",), f"must be at least keepalive ({format_duration(keepalive)}); got {format_duration(warntime)}{_unset(h, 'warntime')}")
    raw_links = r.tables(h, P, "link", "[[heartbeat.link]] tables")
    if not raw_links:
        r.error(P + ("link",), "no heartbeat link: add at least one [[heartbeat.link]] (two independent ones are recommended)")
    links: list[model.Link] = []
    for i, lk in enumerate(raw_links):
        links.append(_link(r, lk, P + ("link", i), i, names, links))
    return model.Heartbeat(keepalive, warntime, deadtime, initdead, v["auto_failback"], v["auth_key"], tuple(links), tuple(v["ping"] or ()), r.where(P),
                           history=v["history"])


def _link(r: Reader, raw: Any, p: tuple, i: int, names: list[str], links: list[model.Link]) -> model.Link:
    v = read(r, raw, p, LINK, model.Link("", "serial"), kind="", name=f"link{i}")
    kind, name = v["kind"], v["name"]
    if kind and kind not in LINK_KINDS:
        r.error(p + ("kind",), f"unknown link kind {kind!r}; expected one of {', '.join(LINK_KINDS)}")
    if kind.startswith("udp"):
        if not v["interface"]:
            r.error(p + ("interface",), f"missing (required for {kind}: the interface to send on)")
        check_range(r, p + ("port",), v["port"], 1, 65535, "a port")
        if kind == "udp-multicast":
            group = v["group"]
            if not group:
                r.error(p + ("group",), "missing (required for udp-multicast: a group like \"239.0.0.43\")")
            else:
                try:
                    if not ipaddress.ip_address(group).is_multicast:
                        r.error(p + ("group",), f"{group!r} is not a multicast address (224.0.0.0/4)")
                except ValueError:
                    r.error(p + ("group",), f"expected a multicast IP address, got {group!r}")
            check_range(r, p + ("ttl",), v["ttl"], 1, 255, "a multicast TTL")
        if kind == "udp-unicast":
            missing = [n for n in names if n not in v["addresses"]]
            if missing:
                r.error(p + ("addresses",), f"needs every node's address on this link; missing {', '.join(missing)}")
            for n, a in v["addresses"].items():
                if names and n not in names:
                    r.error(p + ("addresses", n), f"{n!r} is not a node; nodes: {', '.join(names)}")
                check_ip(r, p + ("addresses", n), a)
    elif kind == "serial":
        if not v["device"]:
            r.error(p + ("device",), "missing (required for serial: the tty, e.g. \"/dev/ttyS1\")")
        if v["baud"] not in BAUDS:
            r.error(p + ("baud",), f"expected one of {', '.join(map(str, BAUDS))}, got {v['baud']}")
    if any(x.name == name for x in links):
        r.error(p + ("name",), f"duplicate link name {name!r}")
    return model.Link(src=r.where(p), **v)


def sync(r: Reader, raw: Any) -> model.Sync:
    P = ("sync",)
    v = read(r, raw, P, SYNC, model.Sync())
    paths = []
    for i, x in enumerate(v["paths"]):
        problem = sync_path_problem(x)
        if problem:
            r.error(P + ("paths", i), problem)
        paths.append(normalize_path(x) if x.startswith("/") else x)
    local = node_local_paths(model.Sync(ssh_key=v["ssh_key"], known_hosts=v["known_hosts"],
                                        state_dir=v["state_dir"], backup_dir=v["backup_dir"]))
    for i, x in enumerate(paths):
        hit = node_local_within(x, local) if x.startswith("/") else ()
        if hit == (x,):
            r.error(P + ("paths", i), f"{x!r} lies in node-local files (each node's own ssh keys or hasync state), "
                                      "which are never synced: remove it")
        elif hit:
            r.warn(P + ("paths", i), f"{x}: never synced, each node keeps its own: {', '.join(hit)}")
    if v["max_delay"] < v["debounce"]:
        r.error(P + ("max_delay",), f"must be at least debounce ({format_duration(v['debounce'])})")
    hooks = []
    for i, hk in enumerate(r.tables(raw if isinstance(raw, dict) else {}, P, "on_change", "[[sync.on_change]] tables")):
        p = P + ("on_change", i)
        h = read(r, hk, p, ON_CHANGE, None, path="", command="")
        hp = h["path"]
        if hp and paths and not any(_under(normalize_path(hp), x) for x in paths):
            r.error(p + ("path",), f"{hp!r} is not inside any [sync].paths entry")
        hooks.append(model.OnChange(hp, h["command"], r.where(p)))
    return model.Sync(**{**v, "paths": tuple(paths), "on_change": tuple(hooks)}, src=r.where(P))


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def storage(r: Reader, raw: Any, names: list[str], P: tuple = ("storage",), defaults: model.Storage | None = None) -> model.Storage:
    """[storage], or a later group's [group.storage] at *P* (its *defaults*: [storage]'s)."""
    v = read(r, raw, P, STORAGE, defaults or model.Storage())
    for key in ("disks", "replication"):
        for n in v[key]:
            if names and n not in names:
                r.error(P + (key, n), f"{n!r} is not a node; nodes: {', '.join(names)}")
    for n, a in v["replication"].items():
        check_ip(r, P + ("replication", n), a)
    if v["use_drbd"] and isinstance(raw, dict) and "replication" in raw:
        missing = [n for n in names if n not in v["replication"]]
        if missing:
            r.error(P + ("replication",), f"DRBD needs every node's replication address; missing {', '.join(missing)}")
    if v["filesystem"] not in FILESYSTEMS:
        r.error(P + ("filesystem",), f"expected one of {', '.join(FILESYSTEMS)}, got {v['filesystem']!r}")
    if v["drbd_protocol"] not in ("A", "B", "C"):
        r.error(P + ("drbd_protocol",), f"expected A, B or C (C: a write completes on both disks), got {v['drbd_protocol']!r}")
    if not re.fullmatch(r"[1-9][0-9]*[KMG]?", v["resync_rate"]):
        r.error(P + ("resync_rate",), f"expected a rate in bytes/s with K, M or G (e.g. \"33M\": ~30 % of a gigabit link), got {v['resync_rate']!r}")
    check_range(r, P + ("drbd_port",), v["drbd_port"], 1, 65535, "a port")
    if v["lvm_system_id"] and v["lvm_system_id"] not in LVM_SYSTEM_ID_SOURCES:
        r.error(P + ("lvm_system_id",), f"expected one of {', '.join(LVM_SYSTEM_ID_SOURCES)} (lvm.conf's system_id_source, "
                                        f"which bootstrap writes), got {v['lvm_system_id']!r}")
    mp = v["mount_point"]
    if not mp.startswith("/") or mp.rstrip("/") == "":
        r.error(P + ("mount_point",), f"expected an absolute path other than /, got {mp!r}")
    return model.Storage(**v, src=r.where(P))


def nfs(r: Reader, raw: Any, P: tuple = ("nfs",), defaults: model.Nfs | None = None, table: tuple[Field, ...] = NFS) -> model.Nfs:
    """[nfs], or a later group's [group.nfs] at *P* (*table* GROUP_NFS; grace and lease:
    [nfs]'s, *defaults*)."""
    v = read(r, raw, P, table, defaults or model.Nfs())
    for f in NFS:
        v.setdefault(f.key, getattr(defaults or model.Nfs(), f.key, None))
    if v["vip"]:
        check_ip(r, P + ("vip",), v["vip"], cidr_ok=True)
    for key in ("grace_time", "lease_time"):  # nfsd takes whole seconds, 10-3600 (nfs.conf(5), rpc.nfsd(8))
        if key not in v.bad and (v[key] != int(v[key]) or not 10 <= v[key] <= 3600):
            r.error(P + (key,), f"expected whole seconds from 10s to 3600s (nfsd's range), got {format_duration(v[key])}")
            v.bad.add(key)
    if not v.bad & {"grace_time", "lease_time"} and v["grace_time"] < v["lease_time"]:
        r.warn(P + ("grace_time",), f"shorter than lease_time ({format_duration(v['lease_time'])}): nfsd keeps the grace "
                                    "period at least one lease long (clients need a lease to notice the restart)")
    exports = []
    fsids: dict[int, int] = {}
    d = model.Export("")
    for i, e in enumerate(r.tables(raw if isinstance(raw, dict) else {}, P, "export", "[[nfs.export]] tables")):
        p = P + ("export", i)
        x = read(r, e, p, EXPORT, d, path="")
        fsid = x["fsid"]
        if fsid is not None:
            check_range(r, p + ("fsid",), fsid, 0, 2**32 - 1, "an fsid")
            if fsid in fsids:
                r.error(p + ("fsid",), f"fsid {fsid} is already used by export [{fsids[fsid]}]: each export needs its own")
            fsids[fsid] = i
        exports.append(model.Export(**x, src=r.where(p)))
    for i, ex in enumerate(exports):
        if ex.fsid is None and not r.is_bad(P + ("export", i, "fsid")):
            r.warn(P + ("export", i), "no fsid=: NFS file handles then depend on the device numbers, which must be identical on both nodes or clients see \"stale NFS file handle\" after failover")
    return model.Nfs(v["state_dir"], tuple(exports), v["vip"], r.where(P), grace_time=v["grace_time"], lease_time=v["lease_time"])


def resources(r: Reader, raw: Any, at: tuple = ("resource",), taken: tuple[model.Resource, ...] = ()) -> tuple[model.Resource, ...]:
    """One chain of [[resource]] tables at *at* (("resource",), or a group's
    ("group", i, "resource")); *taken*: the resources of the groups before it (ids are
    unique across groups: the packets and the status name resources by id)."""
    if not isinstance(raw, list):
        r.error(at, f"expected [[{'.'.join(p for p in at if isinstance(p, str))}]] tables")
        return ()
    out: list[model.Resource] = []
    d = model.Resource("x", "ocf", "x")
    for i, x in enumerate(raw):
        p = at + (i,)
        v = read(r, x, p, RESOURCE, d, id="", type="", agent="", params={}, promotable=None)
        rid, rtype, agent = v["id"], v["type"], v["agent"]
        if v["promotable"] is None:  # not given: the agent's metadata says (a promote action)
            v["promotable"] = rtype == "ocf" and bool(agent) and agents.promotable(agent)
        elif v["promotable"] and rtype in RESOURCE_TYPES and rtype != "ocf":
            r.error(p + ("promotable",), f"only an OCF agent can be promoted; a {rtype} resource starts and stops")
        if rtype and rtype not in RESOURCE_TYPES:
            r.error(p + ("type",), f"unknown resource type {rtype!r}; expected one of {', '.join(RESOURCE_TYPES)}")
        if rtype == "ocf" and agent and not re.match(r"^[\w.-]+:[\w.-]+$", agent):
            r.error(p + ("agent",), f'expected "provider:agent" for an OCF agent (e.g. "heartbeat:IPaddr2"), got {agent!r}')
        if rtype == "systemd" and agent and "." not in agent:
            v["agent"] = agent + ".service"
        if rid and any(o.id == rid for o in out):
            r.error(p + ("id",), f"duplicate resource id {rid!r}")
        elif rid and (other := next((o for o in taken if o.id == rid), None)):
            r.error(p + ("id",), f"duplicate resource id {rid!r}: another group has it ({other.src}); ids are unique across groups")
        if v["args"] and rtype in RESOURCE_TYPES and rtype not in ("heartbeat", "lsb"):
            r.error(p + ("args",), f"args are for heartbeat/lsb scripts; a {rtype} resource takes params")
        if v["params"] and rtype in RESOURCE_TYPES and rtype != "ocf":
            r.error(p + ("params",), f"params are OCF_RESKEY_* for ocf agents; a {rtype} resource takes args")
        if v["max_restarts"] < 0:
            r.error(p + ("max_restarts",), "must be 0 or more")
        out.append(model.Resource(**v, src=r.where(p)))
    return tuple(out)


def groups(r: Reader, raw: Any, names: list[str], st: model.Storage | None = None, nf: model.Nfs | None = None) -> tuple[model.Group, ...]:
    """[[group]] tables: each an id, its own preferred node and auto_failback, its
    ordered [[group.resource]] chain, and (groups after the first) its own storage and
    exports, [group.storage] and [group.nfs], whose keys default to [storage]'s and [nfs]'s
    (*st*, *nf*)."""
    if not isinstance(raw, list):
        r.error(("group",), "expected [[group]] tables")
        return ()
    out: list[model.Group] = []
    taken: tuple[model.Resource, ...] = ()
    for i, x in enumerate(raw):
        p = ("group", i)
        v = read(r, x, p, GROUP, None, id="", preferred_node="", auto_failback=None)
        gid, pref = v["id"], v["preferred_node"]
        if gid and not NAME.match(gid):
            r.error(p + ("id",), f"expected a name (letters, digits, '_', '.', '-'), got {gid!r}")
        if gid and any(g.id == gid for g in out):
            r.error(p + ("id",), f"duplicate group id {gid!r}: group ids must be unique")
        if pref and names and pref not in names:
            r.error(p + ("preferred_node",), f"{pref!r} is not a node; nodes: {', '.join(names)}")
        chain = resources(r, x.get("resource", []) if isinstance(x, dict) else [], p + ("resource",), taken)
        if not chain and not r.is_bad(p):
            r.error(p, f"group {gid!r} has no resources: add its chain as [[group.resource]] tables after it")
        taken += chain
        gst, gnfs = _group_storage(r, x, p, names, st, nf)
        out.append(model.Group(gid, chain, pref, v["auto_failback"], r.where(p), gst, gnfs))
    if not out:
        r.error(("group",), "expected at least one [[group]] table")
    return tuple(out)


def _group_storage(r: Reader, x: Any, p: tuple, names: list[str], st: model.Storage | None,
                   nf: model.Nfs | None) -> tuple[model.Storage | None, model.Nfs | None]:
    if not isinstance(x, dict) or not ({"storage", "nfs"} & set(x)):
        return None, None
    if p[-1] == 0:
        r.error(p + (next(k for k in ("storage", "nfs") if k in x),),
                "the first group's storage and exports are [storage] and [nfs]: give them there")
        return None, None
    if "storage" not in x:
        r.error(p + ("nfs",), "[group.nfs] needs [group.storage]: the group's exports live on its own filesystem")
        return None, None
    gst = storage(r, x["storage"], names, p + ("storage",), st)
    if "nfs" not in x:
        return gst, None
    raw = x["nfs"]
    if isinstance(raw, dict):
        for key in GROUP_NFS_NODE_WIDE:
            if key in raw:
                r.error(p + ("nfs", key), f"{key} is the node's nfsd's (one per node, serving every group): set it in [nfs]")
        raw = {k: v for k, v in raw.items() if k not in GROUP_NFS_NODE_WIDE}
    return gst, nfs(r, raw, p + ("nfs",), model.Nfs(grace_time=nf.grace_time, lease_time=nf.lease_time) if nf else None, GROUP_NFS)


def fencing(r: Reader, raw: Any) -> model.Fencing:
    P = ("fencing",)
    v = read(r, raw, P, FENCING, model.Fencing())
    mode = v["mode"]
    if mode not in FENCING_MODES:
        r.error(P + ("mode",), f"expected one of {', '.join(FENCING_MODES)}, got {mode!r}")
    if mode in ("required", "optional") and not v["command"]:
        r.error(P + ("command",), f"fencing mode {mode!r} needs a command (a fence_* agent or script; \"{{node}}\" and \"{{address}}\" are filled in), or set mode = \"off\"")
    if v["on_stop_failure"] not in STOP_FAILURE:
        r.error(P + ("on_stop_failure",), f"expected one of {', '.join(STOP_FAILURE)}, got {v['on_stop_failure']!r}")
    return model.Fencing(**v, src=r.where(P))
