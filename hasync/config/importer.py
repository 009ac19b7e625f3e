"""``hasync haresources import``: a heartbeat v1 setup -> cluster.toml (pure but for reading files).

haresources gives the chain and the preferred node (several lines: one [[group]] each); ha.cf the nodes, timings, links and
STONITH (hasync.config.stonith); authkeys the secret, which is never copied: the notes say
how to move it. With ``ocf`` (the default) each heartbeat resource.d script becomes the
OCF agent its wrapper runs (hasync.config.resource_d, the mapping the Pacemaker export
uses), so the chain keeps working once heartbeat is uninstalled. What the import cannot
know is written as ``0.0.0.0`` or with a ``check:`` comment, which ``hasync check`` warns
about until it is gone. [storage] and [nfs] are read off the chain, so check's
cross-checks agree with what was imported.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, replace

from hasync import model
from hasync.config import chain_rules
from hasync.config.chain_rules import PLACEHOLDER
from hasync.config.group_rules import NFS_ROLES
from hasync.config.heartbeat import (
    ADDRESS_SCRIPTS,
    AuthKeys,
    HaCf,
    HaGroup,
    group_ids,
    parse_authkeys,
    parse_ha_cf,
    parse_haresources,
    read_heartbeat_file,
)
from hasync.config.reader import ConfigError, format_duration
from hasync.config.resource_d import RESOURCE_D, NfsContext, NoEquivalent, heartbeat_agent
from hasync.config.stonith import fencing
from hasync.config.text_files import UnreadableFile
from hasync.config.toml_writer import Table, render
from hasync.packet_layout import GOOD_KEY, MIN_KEY

KEY_FILE = model.Heartbeat().auth_key
# resource.d scripts heartbeat does not ship: they stay when heartbeat is uninstalled
NOT_HEARTBEATS = {
    "drbddisk": "drbd-utils' script (its start makes DRBD Primary), which stays when heartbeat is uninstalled",
    "drbdupper": "drbd-utils' script for stacked DRBD, which stays when heartbeat is uninstalled",
}


@dataclass(frozen=True)
class Imported:
    """The TOML, notes for the person running the import, and warnings (file:line)."""

    toml: str
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def import_heartbeat(haresources: str, ha_cf: str | None = None, authkeys: str | None = None, *, ocf: bool = True) -> Imported:
    """Read a haresources file (and ha.cf, authkeys) and write their cluster.toml; ConfigError."""
    text, note = _read(haresources)
    notes = [note] if note else []
    warnings: list[str] = []
    groups = parse_haresources(text, haresources, warnings)
    cf = None
    if ha_cf:
        cf_text, cf_note = _read(ha_cf)
        notes += [cf_note] if cf_note else []
        cf = parse_ha_cf(cf_text, ha_cf)
        notes += [f"{ign}: not mapped (no hasync equivalent)" for ign in cf.ignored]
    keys = None
    if authkeys:
        keys_text, _ = _read(authkeys)
        keys = parse_authkeys(keys_text, authkeys)
        notes += _key_notes(authkeys, keys)
    notes += _timing_note(cf, ha_cf)
    tables, more_notes, more_warnings = draft(groups, cf, keys, ocf=ocf)
    preamble = [f"Imported from {haresources} by `hasync haresources import`.",
                "Review every value marked `check:`, then delete the marker: `hasync check` warns until none is left."]
    return Imported(render(tables, preamble), tuple(notes + more_notes), tuple(warnings + more_warnings))


def _timing_note(cf: HaCf | None, path: str | None) -> list[str]:
    """heartbeat ran with deadtime 30 s when ha.cf set none; the imported config, without
    the key, gets hasync's own (5 s): say so, since with fencing that is the difference
    between riding out a long pause and powering the node off."""
    if cf is not None and cf.deadtime is not None:
        return []
    d = model.Heartbeat()
    where = f"{path}: no deadtime" if path else "no ha.cf"
    return [f"{where}: heartbeat ran with its default deadtime 30s; the imported config gets hasync's "
            f"defaults (keepalive {format_duration(d.keepalive)}, warntime {format_duration(d.warntime)}, "
            f"deadtime {format_duration(d.deadtime)}, initdead {format_duration(d.initdead)}; "
            'docs/failover.md "Choosing timings"): add deadtime = "30s" to [heartbeat] to keep heartbeat\'s']


def _read(path: str) -> tuple[str, str | None]:
    try:
        return read_heartbeat_file(path, allow_pipe=True)  # `--ha-cf <(ssh old cat ...)` works
    except UnreadableFile as e:
        raise ConfigError([e.located(path)]) from None


def draft(groups: tuple[HaGroup, ...], cf: HaCf | None, keys: AuthKeys | None, *,
          ocf: bool) -> tuple[list[Table], list[str], list[str]]:
    """The tables of cluster.toml, the notes and the warnings. One haresources line is the
    top-level [[resource]] chain; several are [[group]] tables, in the file's order, each
    with its own preferred node ([storage] and [nfs] are read off the first)."""
    notes: list[str] = []
    warnings: list[str] = []
    node, chain = groups[0].node, groups[0].resources
    address, prefix = _cluster_address(chain)
    names = (cf.nodes or _nodes(groups)) if cf is not None else _nodes(groups)
    converted = [convert(g.resources, _cluster_address(g.resources)[0], notes, warnings) if ocf else _placeholders(g.resources)
                 for g in groups]
    seen = chain_rules.see(tuple(r for r, _ in converted[0]), address, from_toml=True)
    tables = [Table("[cluster]").add("preferred_node", node)]
    if cf is not None:
        tables += [Table("[[node]]").add("name", n).add("address", PLACEHOLDER, "check: this node's management address")
                   for n in names]
        tables.append(_heartbeat(cf, keys))
        tables += _links(cf, names, node)
    tables.append(_storage(seen, names))
    if len(groups) > 1:
        read = ", read off its chain" if tables[-1].comment else ""
        tables[-1].comment = f"the storage of group {group_ids(groups)[0]!r}{read}; a later group's is its [group.storage]"
    if any(s.role in NFS_ROLES for s in seen):
        tables.append(_nfs("[nfs]", address, prefix))
    if cf is not None:
        fence = fencing(cf, names)
        if fence is None:
            tables.append(Table("[fencing]").add("mode", "off", 'check: ha.cf had no stonith; hasync recommends mode = "required" with a fence command'))
        else:
            tables.append(Table("[fencing]").add("mode", fence.mode).add("command", fence.command, fence.comment))
            notes += fence.notes
            warnings += fence.warnings
    if len(groups) == 1:
        tables += _resources("[[resource]]", converted[0])
        return tables, notes, warnings
    for i, (gid, g, resources) in enumerate(zip(group_ids(groups), groups, converted, strict=True)):
        tables.append(Table("[[group]]", comment=f"haresources line {g.line}").add("id", gid).add("preferred_node", g.node))
        if i:
            tables += _group_storage(i, g.resources, resources, names)
        tables += _resources("[[group.resource]]", resources)
    return tables, notes, warnings


def _group_storage(i: int, raw: tuple[model.Resource, ...], resources: list[tuple[model.Resource, str]],
                   names: list[str]) -> list[Table]:
    """A later group's [group.storage] and [group.nfs], read off its chain as [storage]
    and [nfs] are off the first's (none when its chain has no storage: bootstrap then
    lays down nothing for it). What the chain cannot say and must differ from the first
    group's (the DRBD port, a device under LVM) gets a guess marked check:."""
    address, prefix = _cluster_address(raw)
    seen = chain_rules.see(tuple(r for r, _ in resources), address, from_toml=True)
    if not any(s.role in ("drbd", "lvm", "filesystem") for s in seen):
        return []
    st = _storage(seen, names, "[group.storage]")
    keys = {k for k, _, _ in st.items}
    if any(s.role == "drbd" for s in seen):
        if "drbd_device" not in keys:
            st.add("drbd_device", f"/dev/drbd{i}", "check: the DRBD device of this group's resource (its own minor)")
        st.add("drbd_port", 7789 + i, "check: the port of this group's DRBD resource (heartbeat's drbd.conf gave each its own)")
    out = [st]
    if any(s.role in NFS_ROLES for s in seen):
        out.append(_nfs("[group.nfs]", address, prefix))
    return out


def _nfs(header: str, address: str, prefix: str) -> Table:
    t = Table(header)
    if address:
        return t.add("vip", f"{address}/{prefix}" if prefix else address)
    return t.add("vip", PLACEHOLDER, "check: the cluster address clients mount (sm-notify binds to it)")


def _nodes(groups: tuple[HaGroup, ...]) -> list[str]:
    """The nodes haresources names (without ha.cf), in the order it names them."""
    return list(dict.fromkeys(g.node for g in groups))


def _resources(header: str, resources: list[tuple[model.Resource, str]]) -> list[Table]:
    out = []
    for res, comment in resources:
        t = Table(header, comment=comment).add("id", res.id).add("type", res.type).add("agent", res.agent)
        if res.args:
            t.add("args", list(res.args))
        if res.params:
            t.add("params", dict(res.params))
        out.append(t)
    return out


# --------------------------------------------------------------------------- the chain


def _origin(res: model.Resource) -> str:
    return f"{res.agent}{'::' + '::'.join(res.args) if res.args else ''} ({res.src})"


def _empty_address(res: model.Resource) -> bool:
    return res.agent in ADDRESS_SCRIPTS and res.args == ("",)


def _hole(res: model.Resource) -> tuple[model.Resource, str]:
    """An address script with no address (the field notes' literal ``IPaddr::``): it stays
    the script, its argument a `check:` placeholder, which nothing can run or export
    until the address is written in (then, with ocf, it reads best as IPaddr2's params)."""
    arg = "check: the cluster address, ADDRESS/PREFIX/NIC (e.g. 10.0.0.10/24/eth0)"
    comment = (f"check: {res.agent}:: ({res.src}) names no address; once known, write it as type = \"ocf\", "
               f"agent = \"heartbeat:{'IPv6addr' if res.agent == 'IPv6addr' else 'IPaddr2'}\" with its params")
    return replace(res, args=(arg,)), comment


def _placeholders(chain: tuple[model.Resource, ...]) -> list[tuple[model.Resource, str]]:
    """The chain as heartbeat ran it (--no-ocf)."""
    return [_hole(res) if _empty_address(res) else (res, "") for res in chain]


def convert(chain: tuple[model.Resource, ...], address: str, notes: list[str], warnings: list[str]) -> list[tuple[model.Resource, str]]:
    """Each resource.d script as the OCF agent its wrapper runs; the rest as it was."""
    out: list[tuple[model.Resource, str]] = []
    for res in chain:
        if res.agent in NOT_HEARTBEATS:
            out.append((res, f"{_origin(res)}: {NOT_HEARTBEATS[res.agent]}"))
            continue
        if _empty_address(res):
            out.append(_hole(res))
            continue
        try:
            a = heartbeat_agent(res, NfsContext(address))
        except NoEquivalent as e:
            if res.agent in RESOURCE_D:
                warnings.append(f"{res.src}: {_origin(res).rsplit(' (', 1)[0]}: kept as heartbeat's resource.d script, "
                                f"which goes when heartbeat is uninstalled: {e}")
                out.append((res, f"check: {_origin(res)}: heartbeat's own script; replace it before uninstalling heartbeat"))
            else:
                notes.append(f"{res.src}: {res.agent}: kept as it is: {e}")
                out.append((res, ""))
            continue
        if a.standard != "ocf":  # an init script: /etc/init.d stays
            out.append((res, ""))
            continue
        notes += [f"{res.src}: {w}" for w in a.warnings]
        new = model.Resource(res.id, "ocf", f"{a.provider}:{a.type}", params=dict(a.params), src=res.src)
        out.append((new, f"from {_origin(res)}"))
    notify = [i for i, (r, _) in enumerate(out) if r.agent == "heartbeat:nfsnotify"]
    if len(notify) > 1:  # nfsboot and nfslock both ran sm-notify: once, after the rest, is enough
        scripts = " and ".join(chain[i].agent for i in notify)
        kept = out[notify[-1]][0]
        out[notify[-1]] = (kept, f"from {scripts} ({kept.src}): both ran sm-notify; once, at the end, is enough")
        notes.append(f"{kept.src}: {scripts} both ran sm-notify: one nfsnotify resource, {kept.id!r}, where the last was")
        out = [x for i, x in enumerate(out) if i not in notify[:-1]]
    return out


def _cluster_address(chain: tuple[model.Resource, ...]) -> tuple[str, str]:
    """(address, prefix) of the chain's first address script, ("", "") when it has none."""
    for res in chain:
        if res.agent in ADDRESS_SCRIPTS and res.args and res.args[0]:
            parts = res.args[0].split("/")
            prefix = parts[1] if len(parts) > 1 and parts[1].isdigit() else ""
            return parts[0], prefix
    return "", ""


# --------------------------------------------------------------------------- sections


def _storage(seen: list[chain_rules.Seen], names: list[str], header: str = "[storage]") -> Table:
    """[storage] (or a later group's *header*) as the chain uses it: DRBD, LVM, the
    filesystem and where it is mounted."""
    first: dict[str, chain_rules.Seen] = {}
    for s in seen:
        first.setdefault(s.role, s)
    drbd, lvm, fs = first.get("drbd"), first.get("lvm"), first.get("filesystem")
    t = Table(header, comment="read off the chain" if drbd or lvm or fs else "")
    t.add("use_drbd", drbd is not None).add("use_lvm", lvm is not None)
    device = fs.params.get("device", "") if fs else ""
    if drbd and drbd.params.get("drbd_resource"):
        t.add("drbd_resource", drbd.params["drbd_resource"])
    if drbd and not lvm and re.fullmatch(r"/dev/drbd\d+", device):
        t.add("drbd_device", device)
    if lvm:
        vg = lvm.params.get("vgname") or lvm.params.get("volgrpname", "")
        t.add("vg", vg)
        m = re.fullmatch(rf"/dev/{re.escape(vg)}/([^/]+)", device)
        if m:
            t.add("lv", m.group(1))
        if lvm.params.get("vg_access_mode") == "system_id":
            t.add("lvm_system_id", "uname", "bootstrap writes lvm.conf's system_id_source for LVM-activate")
    if fs:
        for key, param in (("filesystem", "fstype"), ("mount_point", "directory"), ("mount_options", "options")):
            if fs.params.get(param):
                t.add(key, fs.params[param])
    if drbd:
        each = ", ".join(f'{n} = "..."' for n in names)
        t.lines.append(f"check: disks = {{ {each} }} and replication = {{ {each} }}: each node's DRBD backing disk "
                       "and replication address, which bootstrap needs")
    return t


def _heartbeat(cf: HaCf, keys: AuthKeys | None) -> Table:
    t = Table("[heartbeat]")
    for k in ("keepalive", "warntime", "deadtime", "initdead"):
        val = getattr(cf, k)
        if val is not None:
            t.add(k, format_duration(val))
    if cf.auto_failback is not None:
        t.add("auto_failback", cf.auto_failback)
    if cf.ping:
        t.add("ping", cf.ping)
    if keys is not None:
        t.add("auth_key", KEY_FILE, "see the import's notes on authkeys")
    return t


def _links(cf: HaCf, names: list[str], node: str) -> list[Table]:
    links = [dict(x) for x in cf.links]
    by_iface: dict[str, list[str]] = {}
    for iface, addr in cf.ucast:
        by_iface.setdefault(iface, []).append(addr)
    for iface, addrs in by_iface.items():
        link: dict = {"name": f"ucast-{iface}", "kind": "udp-unicast", "interface": iface}
        if len(addrs) == len(names):
            link["addresses"] = dict(zip(names, addrs, strict=True))
            link["#"] = "check: addresses mapped in the order of ha.cf's node lines"
        else:
            link["addresses"] = {n: (addrs[0] if len(addrs) == 1 and n != node else PLACEHOLDER) for n in names}
            link["#"] = "check: ha.cf names only the peer's address; fill in each node's"
        links.append(link)
    out = []
    for link in links:
        t = Table("[[heartbeat.link]]", comment=link.pop("#", ""))
        if link["kind"].startswith("udp") and "port" not in link:
            link["port"] = cf.udpport
        if link["kind"] == "serial":
            link["baud"] = cf.baud
        for k, v in link.items():
            t.add(k, v)
        out.append(t)
    return out


def _key_notes(path: str, keys: AuthKeys) -> list[str]:
    """How heartbeat's secret becomes hasync's key file, without printing the secret."""
    where = f"{path}:{keys.line}"
    try:
        loose = os.stat(path).st_mode & 0o077
    except OSError:
        loose = 0
    out = [f"{path}: readable by group or others ({stat.filemode(os.stat(path).st_mode)}): heartbeat refuses such a file, "
           "and the secret in it is no secret any more: prefer a fresh key"] if loose else []
    fresh = (f"`hasync bootstrap` writes a fresh {GOOD_KEY}-byte key to {KEY_FILE} (mode 0600) on the first node and "
             "`--join` copies it: nothing needs heartbeat's secret, since heartbeat and hasync never talk to each other")
    if keys.method == "crc":
        return out + [f"{where}: auth {keys.index} is crc, which authenticates nothing: {fresh}"]
    move = (f"to keep it instead, on the first node before bootstrap: (umask 077; awk '$1 == \"{keys.index}\" {{print $3}}' "
            f"{path} > {KEY_FILE})")
    if keys.secret_len < MIN_KEY:
        return out + [f"{where}: the {keys.method} secret is {keys.secret_len} bytes, under the {MIN_KEY} the failover daemon "
                      f"accepts: {fresh}"]
    if keys.secret_len < GOOD_KEY:
        return out + [f"{where}: the {keys.method} secret is {keys.secret_len} bytes, under the {GOOD_KEY} `hasync check` "
                      f"asks for: {fresh}; {move}"]
    return out + [f"{where}: {fresh}; {move}"]
