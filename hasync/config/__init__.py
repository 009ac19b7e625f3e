"""cluster.toml -> hasync.model, with errors that name file:line, the key and what was expected.

The only loader: ``load(path)`` / ``loads(text, path)`` return a frozen ``model.Cluster``
(with its distro profile resolved, ``Cluster.profile``) or raise ``ConfigError`` carrying
every problem found, not just the first; ``check``/``check_text`` also return the
warnings. ``config_path`` is the one rule for which file; ``identity.local_node`` the one
rule for which node this host is.

  reader.py     errors, durations, the TOML line index, typed getters
  text_files.py the config's text files read bounded, refused cleanly when no text
  sections.py   one field table per section, the rules between fields
  profiles.py   distro profiles
  identity.py   which [[node]] this host is
  paths.py      sync path normalisation (shared with the sync watcher)
  limits.py     what fits into a heartbeat packet
  chain_rules.py  the chain against itself, [storage] and [nfs] (order, agents, addresses)
  group_rules.py  resource groups against each other (no shared device, mount, address)
  net_rules.py  addresses across sections, IPv6 links, import placeholders left in
  agents.py     which OCF agents exist and which are promotable
  resource_d.py heartbeat resource.d scripts -> their OCF agents (shared with the export)
  heartbeat.py  reading haresources, ha.cf and authkeys
  importer.py   `hasync haresources import`: those files -> cluster.toml (stonith.py: [fencing]);
                imported by that verb only, not loaded by every command
  toml_writer.py  TOML out of values, always parseable
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from hasync import model
from hasync.config import chain_rules, group_rules, net_rules, sections
from hasync.config.heartbeat import (
    HaCf,
    group_ids,
    parse_ha_cf,
    parse_haresources,
    read_heartbeat_file,
)
from hasync.config.identity import NodeIdentityError, local_node
from hasync.config.limits import packet_problems, worst_case_payload
from hasync.config.paths import normalize_path, sync_path_problem
from hasync.config.profiles import available_profiles, load_profile, resolve_profile
from hasync.config.reader import (
    ConfigError,
    LineIndex,
    Reader,
    Report,
    format_duration,
    kind_words,
    parse_duration,
    tomllib,
)
from hasync.config.sections import (
    BAUDS,
    FENCING_MODES,
    FILESYSTEMS,
    LINK_KINDS,
    RESOURCE_TYPES,
    STOP_FAILURE,
)
from hasync.config.text_files import UnreadableFile, decode_text, read_bytes
from hasync.packet_layout import GOOD_KEY, MIN_KEY

__all__ = [
    "BAUDS", "DEFAULT_CONFIG", "FENCING_MODES", "GOOD_KEY", "MIN_KEY", "FILESYSTEMS", "LINK_KINDS", "RESOURCE_TYPES", "STOP_FAILURE",
    "ConfigError", "HaCf", "LineIndex", "NodeIdentityError", "Report",
    "available_profiles", "check", "check_text", "config_path", "format_duration", "kind_words",
    "load", "load_profile", "loads", "local_node", "normalize_path", "packet_problems", "parse_duration",
    "parse_ha_cf", "parse_haresources", "sync_path_problem", "worst_case_payload",
]

DEFAULT_CONFIG = "/etc/hasync/cluster.toml"
ENV_CONFIG = "HASYNC_CONFIG"


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The config file: -c/--config, then $HASYNC_CONFIG, then /etc/hasync/cluster.toml."""
    env = os.environ if env is None else env
    return explicit or env.get(ENV_CONFIG) or DEFAULT_CONFIG


def load(path: str | Path) -> model.Cluster:
    """Read and validate *path*; raise ConfigError naming file:line for every problem."""
    cluster, report = check(path)
    if report.errors or cluster is None:
        raise ConfigError(report.errors)
    return cluster


def loads(text: str, path: str = "<string>") -> model.Cluster:
    cluster, report = check_text(text, path)
    if report.errors or cluster is None:
        raise ConfigError(report.errors)
    return cluster


def check(path: str | Path) -> tuple[model.Cluster | None, Report]:
    p = Path(path)
    try:
        text, _ = decode_text(read_bytes(p, allow_pipe=True), latin1_fallback=False)
    except UnreadableFile as e:
        if e.missing:
            return None, Report(errors=[f"{p}: no such config file (give one with -c PATH or {ENV_CONFIG})"])
        return None, Report(errors=[e.located(p)])
    return check_text(text, str(p))


def check_text(text: str, path: str = "<string>") -> tuple[model.Cluster | None, Report]:
    """Parse and validate; returns the cluster (None when there are errors) and the report."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"{path}:{m.group(1)}" if m else path
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        return None, Report(errors=[f"{where}: TOML syntax: {msg}"])
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        return None, Report(errors=[f"{path}: TOML syntax: arrays or tables nested too deep"])
    except ValueError as e:  # int() of a number over 4300 digits
        return None, Report(errors=[f"{path}: TOML syntax: {e}"])
    r = Reader(path, data, LineIndex(text))
    cluster = _build(r, Path(path).parent)
    net_rules.placeholders(r, text)
    report = Report(errors=in_line_order(r.errors, path), warnings=in_line_order(r.warnings, path))
    return (None if r.errors else cluster), report


def _build(r: Reader, base: Path) -> model.Cluster:
    top = r.table(r.data, (), sections.keys(sections.TOP))
    info = sections.read(r, top.get("cluster"), ("cluster",), sections.CLUSTER, model.ClusterInfo())
    nodes = sections.nodes(r, top)
    # the names other sections refer to; when one is missing, malformed or a duplicate,
    # "X is not a node" about the other sections' keys would only echo that one error
    names = [n.name for n in nodes] if not any(r.is_bad(("node", i, "name")) for i in range(len(nodes))) else []
    if info["preferred_node"] and names and info["preferred_node"] not in names:
        r.error(("cluster", "preferred_node"), f"{info['preferred_node']!r} is not a node; nodes: {', '.join(names)}")
    if info["manager"] not in sections.MANAGERS:
        r.error(("cluster", "manager"), f"expected one of {', '.join(sections.MANAGERS)}, got {info['manager']!r}")
    profile = resolve_profile(r, info["profile"])
    hb = sections.heartbeat(r, top.get("heartbeat"), names)
    sync = sections.sync(r, top.get("sync"))
    storage = sections.storage(r, top.get("storage"), names)
    nfs = sections.nfs(r, top.get("nfs"))
    fencing = sections.fencing(r, top.get("fencing"))

    # the chain: [[resource]] (one group), [[group]] tables or haresources = PATH
    resources: tuple[model.Resource, ...] = ()
    groups: tuple[model.Group, ...] = ()
    hares_path = ""
    given = [k for k in ("resource", "group", "haresources") if k in top]
    if given == ["resource", "haresources"]:
        r.error(("haresources",), "give the chain either as [[resource]] tables or as haresources = PATH, not both")
    elif len(given) > 1:
        r.error((given[1],), f"give the chain once, as [[resource]] tables (one group), [[group]] tables or "
                             f"haresources = PATH; found {' and '.join(given)}")
    elif "haresources" in top:
        hares_path = r.get(top, (), "haresources", "str", "")
        if hares_path:
            resources, groups, hnode = _haresources(r, base, hares_path)
            if not info["preferred_node"]:
                info["preferred_node"] = hnode
    elif "group" in top:
        groups = sections.groups(r, top["group"], names, storage, nfs)
    else:
        resources = sections.resources(r, top.get("resource", []))
    if groups:
        resources = tuple(res for g in groups for res in g.resources)
    for g in groups if hares_path and names else ():
        if g.preferred_node not in names:
            r.errors.append(f"{g.src}: node {g.preferred_node!r} is not a [[node]]; nodes: {', '.join(names)}")

    if len(hb.links) == 1:
        r.warn(("heartbeat", "link"), "only one heartbeat link: a single cable or switch failure looks like a dead peer (split brain); add a second link (serial or another network)")
    if fencing.mode == "off":
        r.warn(("fencing", "mode"), "fencing is off: shared data is not protected; a node that only looks dead may still write (heartbeat: \"Shared disks are not protected\")")
    if profile is not None:
        _check_nfs_state_twice(r, profile, nfs, resources, from_toml=not hares_path)
    _check_auth_key(r, hb.auth_key)
    # the sections against each other and the chain (hasync.config.chain_rules, net_rules,
    # group_rules); [storage] and [nfs] describe the first group's storage
    vip = nfs.vip.split("/")[0]
    per_group = ([(g, chain_rules.see(g.resources, vip, from_toml=not hares_path, at=("group", i, "resource")))
                  for i, g in enumerate(groups)] if groups else
                 [(model.Group(model.IMPLICIT_GROUP, resources), chain_rules.see(resources, vip, from_toml=not hares_path))])
    for _, seen in per_group:
        chain_rules.order(r, seen)
        chain_rules.agents_run(r, seen, storage)
    first = per_group[0][1]
    chain_rules.vip(r, first, nfs)
    chain_rules.storage(r, first, storage, present="storage" in top)
    for i, (g, seen) in enumerate(per_group[1:], 1):  # a later group against its own [group.storage], [group.nfs]
        if g.storage is not None:
            chain_rules.storage(r, seen, g.storage, present=True, at=("group", i, "storage"))
        if g.nfs is not None:
            chain_rules.vip(r, seen, g.nfs, at=("group", i, "nfs"))
    group_rules.distinct(r, per_group)
    group_rules.nfs(r, per_group, nfs)
    net_rules.links(r, hb, storage)
    net_rules.vip_subnets(r, [s for _, seen in per_group for s in seen], tuple(nodes), hb, storage, nfs)
    net_rules.no_storage(r, present="storage" in top)

    cluster = model.Cluster(
        path=r.path,
        cluster=model.ClusterInfo(**info, src=r.where(("cluster",))),
        nodes=tuple(nodes),
        heartbeat=hb,
        sync=sync,
        storage=storage,
        nfs=nfs,
        resources=resources,
        fencing=fencing,
        haresources=hares_path,
        profile=profile,
        groups=groups,
    )
    if groups:
        group_rules.storage(r, cluster.group_storage(), {g.id: i for i, g in enumerate(groups)})
    for problem in packet_problems(cluster):
        r.error(problem.path, problem.message)
    return cluster


def _haresources(r: Reader, base: Path, hares_path: str) -> tuple[tuple[model.Resource, ...], tuple[model.Group, ...], str]:
    """From ``haresources = PATH`` (relative to the config): the chain of a one-line file,
    else one group per line; and the first line's preferred node."""
    hp = Path(hares_path) if Path(hares_path).is_absolute() else base / hares_path
    try:
        text, note = read_heartbeat_file(hp)
    except UnreadableFile as e:
        r.error(("haresources",), f"no such file {str(hp)!r}" if e.missing else e.located(hp))
        return (), (), ""
    if note:
        r.warn(("haresources",), note)
    notes: list[str] = []
    try:
        lines = parse_haresources(text, str(hp), notes)
    except ConfigError as e:
        r.errors.extend(e.issues)
        return (), (), ""
    r.warnings.extend(notes)
    if len(lines) == 1:
        return lines[0].resources, (), lines[0].node
    groups = tuple(model.Group(gid, g.resources, g.node, None, f"{hp}:{g.line}")
                   for gid, g in zip(group_ids(lines), lines, strict=True))
    return (), groups, lines[0].node


def _check_nfs_state_twice(r: Reader, profile: model.Profile, nfs: model.Nfs,
                           resources: tuple[model.Resource, ...], *, from_toml: bool) -> None:
    """[nfs].state_dir makes bootstrap symlink /var/lib/nfs onto the replicated disk (on
    profiles with nfs_state_link = "symlink"); the OCF nfsserver agent's
    nfs_shared_infodir bind-mounts a directory onto /var/lib/nfs as well. Both at once
    mount the directory onto itself (rpc_pipefs inside it), and the filesystem can no
    longer be unmounted at failover."""
    if not nfs.state_dir or profile.options.get("nfs_state_link", "symlink") != "symlink":
        return
    for i, res in enumerate(resources):
        if res.type == "ocf" and res.agent.endswith(":nfsserver") and res.params.get("nfs_shared_infodir"):
            where = ("resource", i, "params", "nfs_shared_infodir") if from_toml else ("nfs", "state_dir")
            r.warn(where, f"resource {res.id!r} (OCF nfsserver) bind-mounts nfs_shared_infodir onto /var/lib/nfs, which "
                          f"bootstrap already makes a symlink to [nfs].state_dir ({nfs.state_dir}) on the {profile.name} profile: "
                          "the directory gets mounted onto itself and the filesystem can no longer be unmounted at "
                          "failover; keep one: drop nfs_shared_infodir (the symlink already puts the NFS state on the "
                          "replicated disk) or [nfs].state_dir")


def _check_auth_key(r: Reader, path: str) -> None:
    """Warn about a short heartbeat key. Only a key this process can read is checked
    (``check`` may run before bootstrap wrote it, or as a user who cannot read it)."""
    if not path or not os.path.isabs(path):
        return
    try:
        key = read_bytes(path, limit=64 * 1024).strip()  # what hasync.effects.keyfile.load_key reads
    except UnreadableFile:
        return
    if len(key) < MIN_KEY:
        r.warn(("heartbeat", "auth_key"), f"{path} holds {len(key)} bytes: the failover daemon refuses a key under "
                                          f"{MIN_KEY} bytes; write at least {GOOD_KEY} random bytes (e.g. `openssl rand -hex 32 > {path}`)")
    elif len(key) < GOOD_KEY:
        r.warn(("heartbeat", "auth_key"), f"{path} holds {len(key)} bytes: use at least {GOOD_KEY} random bytes "
                                          f"(e.g. `openssl rand -hex 32 > {path}`; corosync-keygen writes 256)")


_LOCATED = re.compile(r"^(.*?):(\d+): ")


def in_line_order(issues: list[str], path: str) -> list[str]:
    """*issues* sorted as a reader meets them: those of *path* first, by line (unlocated
    ones ahead), then those of other files (a haresources file) by file and line."""
    def key(item: tuple[int, str]) -> tuple:
        i, text = item
        m = _LOCATED.match(text)
        file, line = (m.group(1), int(m.group(2))) if m else (text.split(":", 1)[0], 0)
        return (file != path, file if file != path else "", line, i)
    return [text for _, text in sorted(enumerate(issues), key=key)]
