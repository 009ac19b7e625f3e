"""cluster.toml -> hasync.model, with errors that name file:line, the key and what was expected.

``load(path)`` / ``loads(text, path)`` return a frozen ``model.Cluster`` or raise
``ConfigError`` carrying every problem found (not just the first). Warnings (a single
heartbeat link, fencing off) are returned on ``Cluster``-independent ``check()``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

from hasync import model
from hasync.resources import data_dir

# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """One or more problems in a config file; ``issues`` are "file:line: key: message"."""

    def __init__(self, issues: list[str]):
        self.issues = list(issues)
        super().__init__("\n".join(self.issues))


@dataclass
class Report:
    """What ``check`` found: errors make the config unusable, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """"200ms" -> 0.2, "2s" -> 2.0, "5m" -> 300.0. Raises ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like \"200ms\" or \"2s\", got {text!r}")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like \"200ms\", \"2s\" or \"5m\", got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, choosing a readable unit."""
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    if s % 60 or s < 60:
        return f"{s}s"
    return f"{s // 60}m"


# --------------------------------------------------------------------------- line index


class LineIndex:
    """Maps TOML key paths to the line they are defined on.

    tomllib keeps no positions, so the text is scanned once: table headers (``[a.b]``,
    ``[[a.b]]`` with their array index) and ``key =`` lines. Paths are tuples like
    ``("heartbeat", "link", 1, "kind")``.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
    _KEY = re.compile(r"^\s*((?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*'))*)\s*=")

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        current: tuple = ()
        in_multiline: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            h = self._HEADER.match(line)
            if h and h.group(1) == h.group(3)[::-1].replace("]", "["):
                parts = tuple(_split_key(h.group(2)))
                if h.group(1) == "[[":
                    idx = counts.get(parts, -1) + 1
                    counts[parts] = idx
                    current = _resolve(parts, counts) + (idx,)
                    self.lines.setdefault(current[:-1], lineno)
                else:
                    current = _resolve(parts, counts)
                self.lines.setdefault(current, lineno)
                continue
            k = self._KEY.match(line)
            if k:
                path = current + tuple(_split_key(k.group(1)))
                self.lines.setdefault(path, lineno)
                rest = line[k.end():]
                for q in ('"""', "'''"):
                    if rest.count(q) % 2 == 1:
                        in_multiline = q

    def line(self, path: tuple) -> int | None:
        """The line of *path*, or of its nearest defined ancestor."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None


def _split_key(key: str) -> list[str]:
    out = []
    for part in re.findall(r"\"[^\"]*\"|'[^']*'|[^.\s]+", key):
        out.append(part[1:-1] if part[0] in "\"'" else part)
    return out


def _resolve(parts: tuple, counts: dict[tuple, int]) -> tuple:
    """Insert array indices for array-of-tables ancestors: [heartbeat.link] inside [[node]]."""
    out: tuple = ()
    for i, p in enumerate(parts):
        out += (p,)
        prefix = tuple(parts[: i + 1])
        if prefix in counts and i < len(parts) - 1:
            out += (counts[prefix],)
    return out


# --------------------------------------------------------------------------- reader


class _Reader:
    """Typed access to the parsed TOML that records errors with file:line instead of raising."""

    def __init__(self, path: str, data: dict, index: LineIndex):
        self.path = path
        self.data = data
        self.index = index
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def where(self, path: tuple) -> str:
        line = self.index.line(path)
        return f"{self.path}:{line}" if line else self.path

    @staticmethod
    def dotted(path: tuple) -> str:
        out = ""
        for p in path:
            if isinstance(p, int):
                out += f"[{p}]"
            else:
                out += ("." if out else "") + p
        return out

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(f"{self.where(path)}: {self.dotted(path)}: {message}")

    def warn(self, path: tuple, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {self.dotted(path)}: {message}")

    def table(self, obj: Any, path: tuple, allowed: dict[str, str]) -> dict:
        """Check *obj* is a table whose keys are all in *allowed* (key -> what it is)."""
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.error(path, f"expected a table, got {_typename(obj)}")
            return {}
        for key in obj:
            if key not in allowed:
                hint = difflib.get_close_matches(key, list(allowed), n=1)
                also = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(sorted(allowed))}"
                self.error(path + (key,), f"unknown key{also}")
        return obj

    def get(self, obj: dict, path: tuple, key: str, kind: str, default: Any = None, *, required=False):
        """Read one value; kind is str|int|bool|float|duration|strlist|strmap|argv."""
        p = path + (key,)
        if key not in obj:
            if required:
                self.error(p, f"missing (required: {kind_words(kind)})")
            return default
        v = obj[key]
        try:
            return _convert(v, kind)
        except ValueError as e:
            self.error(p, str(e))
            return default


def kind_words(kind: str) -> str:
    return {
        "str": "a string",
        "int": "an integer",
        "bool": "true or false",
        "duration": 'a duration like "200ms" or "2s"',
        "strlist": "a list of strings",
        "strmap": "a table of strings",
        "argv": "a list of strings (a command and its arguments)",
        "paramsmap": "a table of strings/numbers",
    }.get(kind, kind)


def _typename(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def _convert(v: Any, kind: str) -> Any:
    if kind == "str":
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {_typename(v)} {v!r}")
        return v
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_typename(v)} {v!r}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {_typename(v)} {v!r}")
        return v
    if kind == "duration":
        if isinstance(v, bool) or isinstance(v, (int, float)):
            raise ValueError(f'expected a duration with a unit like "{v}s" or "{v}ms", got the bare number {v!r}')
        return parse_duration(v)
    if kind in ("strlist", "argv"):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"expected {kind_words(kind)}, got {_typename(v)} {v!r}")
        return tuple(v)
    if kind == "strmap":
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise ValueError(f"expected a table of strings, got {_typename(v)} {v!r}")
        return dict(v)
    if kind == "paramsmap":
        if not isinstance(v, dict) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v.values()):
            raise ValueError(f"expected a table of strings or numbers, got {_typename(v)} {v!r}")
        return {k: str(x) for k, x in v.items()}
    raise AssertionError(kind)


# --------------------------------------------------------------------------- schema

_TOP = {
    "cluster": "the cluster's name and distro profile",
    "node": "the two nodes",
    "heartbeat": "heartbeat timing and links",
    "sync": "config sync",
    "storage": "DRBD/LVM/filesystem",
    "nfs": "NFS exports",
    "resource": "the ordered chain",
    "haresources": "a heartbeat haresources file instead of [[resource]]",
    "fencing": "fencing",
}
_CLUSTER = {"name": "", "profile": "", "preferred_node": ""}
_NODE = {"name": "", "address": ""}
_HEARTBEAT = {k: "" for k in ("keepalive", "warntime", "deadtime", "initdead", "auto_failback", "auth_key", "link", "ping")}
_LINK = {k: "" for k in ("name", "kind", "interface", "port", "group", "ttl", "addresses", "device", "baud")}
_SYNC = {k: "" for k in ("paths", "ignore", "debounce", "max_delay", "reconcile_every", "backup_dir", "state_dir", "ssh_key", "known_hosts", "on_change")}
_ONCHANGE = {"path": "", "command": ""}
_STORAGE = {k: "" for k in ("use_drbd", "use_lvm", "drbd_resource", "drbd_device", "drbd_port", "drbd_protocol", "resync_rate", "disks", "replication", "vg", "lv", "lv_size", "filesystem", "mount_point", "mount_options")}
_NFS = {"state_dir": "", "export": "", "vip": ""}
_EXPORT = {"path": "", "clients": "", "options": "", "fsid": ""}
_RESOURCE = {k: "" for k in ("id", "type", "agent", "args", "params", "start_timeout", "stop_timeout", "monitor_timeout", "monitor_interval", "max_restarts")}
_FENCING = {k: "" for k in ("mode", "command", "timeout", "on_stop_failure", "self_command")}

LINK_KINDS = ("udp-unicast", "udp-multicast", "udp-broadcast", "serial")
RESOURCE_TYPES = ("heartbeat", "lsb", "systemd", "ocf", "service")
FENCING_MODES = ("required", "optional", "off")
STOP_FAILURE = ("fence-self", "reboot", "block")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
FILESYSTEMS = ("ext3", "ext4", "xfs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def available_profiles() -> list[str]:
    try:
        return sorted(p.stem for p in (data_dir("profiles") / "distro").glob("*.toml"))
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------- loading


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
        text = p.read_text()
    except FileNotFoundError:
        return None, Report(errors=[f"{p}: no such config file (give one with -c PATH or HASYNC_CONFIG)"])
    except (OSError, UnicodeDecodeError) as e:
        return None, Report(errors=[f"{p}: cannot read: {e}"])
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
    r = _Reader(path, data, LineIndex(text))
    cluster = _build(r, Path(path).parent)
    report = Report(errors=r.errors, warnings=r.warnings)
    return (None if r.errors else cluster), report


def _build(r: _Reader, base: Path) -> model.Cluster:
    top = r.table(r.data, (), _TOP)

    # [cluster]
    c = r.table(top.get("cluster"), ("cluster",), _CLUSTER)
    name = r.get(c, ("cluster",), "name", "str", "hasync")
    profile = r.get(c, ("cluster",), "profile", "str", "debian12")
    preferred = r.get(c, ("cluster",), "preferred_node", "str", "")
    profiles = available_profiles()
    if profiles and profile not in profiles:
        r.error(("cluster", "profile"), f"unknown distro profile {profile!r}; available: {', '.join(profiles)}")

    # [[node]]
    nodes: list[model.Node] = []
    raw_nodes = top.get("node", [])
    if not isinstance(raw_nodes, list):
        r.error(("node",), "expected [[node]] tables (an array of tables)")
        raw_nodes = []
    for i, n in enumerate(raw_nodes):
        p = ("node", i)
        n = r.table(n, p, _NODE)
        nname = r.get(n, p, "name", "str", "", required=True)
        addr = r.get(n, p, "address", "str", "", required=True)
        if nname and not _NAME.match(nname):
            r.error(p + ("name",), f"expected a host name (as `uname -n` prints), got {nname!r}")
        if addr:
            _check_ip(r, p + ("address",), addr)
        if nname and any(x.name == nname for x in nodes):
            r.error(p + ("name",), f"duplicate node name {nname!r}: node names must be unique")
        nodes.append(model.Node(nname, addr, r.where(p)))
    if len(nodes) != 2 and not any("node" in e for e in r.errors):
        r.error(("node",), f"expected exactly two [[node]] tables (an active/passive pair), found {len(nodes)}")
    names = [n.name for n in nodes if n.name]
    if preferred and names and preferred not in names:
        r.error(("cluster", "preferred_node"), f"{preferred!r} is not a node; nodes: {', '.join(names)}")

    hb = _heartbeat(r, top.get("heartbeat"), names)
    sync = _sync(r, top.get("sync"))
    storage = _storage(r, top.get("storage"), names)
    nfs = _nfs(r, top.get("nfs"))
    fencing = _fencing(r, top.get("fencing"))

    # the chain: [[resource]] or haresources = PATH
    resources: tuple[model.Resource, ...] = ()
    hares_path = ""
    if "haresources" in top and "resource" in top:
        r.error(("haresources",), "give the chain either as [[resource]] tables or as haresources = PATH, not both")
    elif "haresources" in top:
        hares_path = r.get(top, (), "haresources", "str", "")
        if hares_path:
            hp = Path(hares_path) if Path(hares_path).is_absolute() else base / hares_path
            try:
                hnode, resources = parse_haresources(hp.read_text(), str(hp))
                if not preferred:
                    preferred = hnode
            except FileNotFoundError:
                r.error(("haresources",), f"no such file {str(hp)!r}")
            except ConfigError as e:
                r.errors.extend(e.issues)
    else:
        resources = _resources(r, top.get("resource", []))

    if len(hb.links) == 1:
        r.warn(("heartbeat", "link"), "only one heartbeat link: a single cable or switch failure looks like a dead peer (split brain); add a second link (serial or another network)")
    if fencing.mode == "off":
        r.warn(("fencing", "mode"), "fencing is off: shared data is not protected; a node that only looks dead may still write (heartbeat: \"Shared disks are not protected\")")
    _check_nfs_state_twice(r, profile, profiles, nfs, resources, from_toml=not hares_path)

    return model.Cluster(
        path=r.path,
        cluster=model.ClusterInfo(name, profile, preferred, r.where(("cluster",))),
        nodes=tuple(nodes),
        heartbeat=hb,
        sync=sync,
        storage=storage,
        nfs=nfs,
        resources=resources,
        fencing=fencing,
        haresources=hares_path,
    )


def _check_ip(r: _Reader, path: tuple, text: str, *, cidr_ok: bool = False) -> None:
    try:
        if cidr_ok and "/" in text:
            ipaddress.ip_interface(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        what = "an IP address (optionally /prefix)" if cidr_ok else "an IP address"
        r.error(path, f"expected {what}, got {text!r}")


def _heartbeat(r: _Reader, raw: Any, names: list[str]) -> model.Heartbeat:
    P = ("heartbeat",)
    h = r.table(raw, P, _HEARTBEAT)
    d = model.Heartbeat()
    n_errors = len(r.errors)
    keepalive = r.get(h, P, "keepalive", "duration", d.keepalive)
    deadtime = r.get(h, P, "deadtime", "duration", d.deadtime)
    warntime = r.get(h, P, "warntime", "duration", deadtime / 2 if "deadtime" in h else d.warntime)
    initdead = r.get(h, P, "initdead", "duration", deadtime if "deadtime" in h else d.initdead)
    auto_failback = r.get(h, P, "auto_failback", "bool", d.auto_failback)
    auth_key = r.get(h, P, "auth_key", "str", d.auth_key)
    timing_ok = len(r.errors) == n_errors
    ping = r.get(h, P, "ping", "strlist", ())
    for i, a in enumerate(ping or ()):
        _check_ip(r, P + ("ping", i), a)
    # heartbeat's own start-up rules (only when every value parsed: no cascades)
    if not timing_ok:
        pass
    elif keepalive <= 0:
        r.error(P + ("keepalive",), "must be greater than 0")
    elif deadtime <= 2 * keepalive:
        r.error(P + ("deadtime",), f"must be greater than 2 x keepalive ({format_duration(2 * keepalive)}); got {format_duration(deadtime)} (heartbeat refuses the same)")
    if timing_ok and initdead < deadtime:
        r.error(P + ("initdead",), f"must be at least deadtime ({format_duration(deadtime)}); got {format_duration(initdead)}")
    if timing_ok and warntime >= deadtime and deadtime > 0:
        r.error(P + ("warntime",), f"must be less than deadtime ({format_duration(deadtime)}); got {format_duration(warntime)}")
    if timing_ok and warntime < keepalive:
        r.error(P + ("warntime",), f"must be at least keepalive ({format_duration(keepalive)}); got {format_duration(warntime)}")

    links: list[model.Link] = []
    raw_links = h.get("link", [])
    if not isinstance(raw_links, list):
        r.error(P + ("link",), "expected [[heartbeat.link]] tables")
        raw_links = []
    if not raw_links:
        r.error(P + ("link",), "no heartbeat link: add at least one [[heartbeat.link]] (two independent ones are recommended)")
    for i, lk in enumerate(raw_links):
        p = P + ("link", i)
        lk = r.table(lk, p, _LINK)
        kind = r.get(lk, p, "kind", "str", "", required=True)
        lname = r.get(lk, p, "name", "str", f"link{i}")
        if kind and kind not in LINK_KINDS:
            r.error(p + ("kind",), f"unknown link kind {kind!r}; expected one of {', '.join(LINK_KINDS)}")
        iface = r.get(lk, p, "interface", "str", "")
        port = r.get(lk, p, "port", "int", 694)
        group = r.get(lk, p, "group", "str", "")
        ttl = r.get(lk, p, "ttl", "int", 1)
        addresses = r.get(lk, p, "addresses", "strmap", {})
        device = r.get(lk, p, "device", "str", "")
        baud = r.get(lk, p, "baud", "int", 19200)
        if kind.startswith("udp"):
            if not iface:
                r.error(p + ("interface",), f"missing (required for {kind}: the interface to send on)")
            if not (1 <= port <= 65535):
                r.error(p + ("port",), f"expected a port 1-65535, got {port}")
            if kind == "udp-multicast":
                if not group:
                    r.error(p + ("group",), "missing (required for udp-multicast: a group like \"239.0.0.43\")")
                else:
                    try:
                        if not ipaddress.ip_address(group).is_multicast:
                            r.error(p + ("group",), f"{group!r} is not a multicast address (224.0.0.0/4)")
                    except ValueError:
                        r.error(p + ("group",), f"expected a multicast IP address, got {group!r}")
            if kind == "udp-unicast":
                missing = [n for n in names if n not in addresses]
                if missing:
                    r.error(p + ("addresses",), f"needs every node's address on this link; missing {', '.join(missing)}")
                for n, a in addresses.items():
                    if names and n not in names:
                        r.error(p + ("addresses", n), f"{n!r} is not a node; nodes: {', '.join(names)}")
                    _check_ip(r, p + ("addresses", n), a)
        elif kind == "serial":
            if not device:
                r.error(p + ("device",), "missing (required for serial: the tty, e.g. \"/dev/ttyS1\")")
            if baud not in BAUDS:
                r.error(p + ("baud",), f"expected one of {', '.join(map(str, BAUDS))}, got {baud}")
        if any(x.name == lname for x in links):
            r.error(p + ("name",), f"duplicate link name {lname!r}")
        links.append(model.Link(lname, kind, iface, port, group, ttl, addresses, device, baud, r.where(p)))
    return model.Heartbeat(keepalive, warntime, deadtime, initdead, auto_failback, auth_key, tuple(links), tuple(ping or ()), r.where(P))


def _sync(r: _Reader, raw: Any) -> model.Sync:
    P = ("sync",)
    s = r.table(raw, P, _SYNC)
    d = model.Sync()
    paths = r.get(s, P, "paths", "strlist", ())
    for i, x in enumerate(paths):
        if not x.startswith("/"):
            r.error(P + ("paths", i), f"expected an absolute path, got {x!r}")
        elif x.rstrip("/") in ("", "/etc", "/var", "/usr"):
            r.error(P + ("paths", i), f"refusing to sync all of {x!r}: name the files or directories to keep identical")
    debounce = r.get(s, P, "debounce", "duration", d.debounce)
    max_delay = r.get(s, P, "max_delay", "duration", d.max_delay)
    if max_delay < debounce:
        r.error(P + ("max_delay",), f"must be at least debounce ({format_duration(debounce)})")
    hooks = []
    raw_hooks = s.get("on_change", [])
    if not isinstance(raw_hooks, list):
        r.error(P + ("on_change",), "expected [[sync.on_change]] tables")
        raw_hooks = []
    for i, hk in enumerate(raw_hooks):
        p = P + ("on_change", i)
        hk = r.table(hk, p, _ONCHANGE)
        hp = r.get(hk, p, "path", "str", "", required=True)
        cmd = r.get(hk, p, "command", "str", "", required=True)
        if hp and paths and not any(hp == x or hp.startswith(x.rstrip("/") + "/") for x in paths):
            r.error(p + ("path",), f"{hp!r} is not inside any [sync].paths entry")
        hooks.append(model.OnChange(hp, cmd, r.where(p)))
    return model.Sync(
        paths=tuple(paths),
        ignore=r.get(s, P, "ignore", "strlist", d.ignore),
        debounce=debounce,
        max_delay=max_delay,
        reconcile_every=r.get(s, P, "reconcile_every", "duration", d.reconcile_every),
        backup_dir=r.get(s, P, "backup_dir", "str", d.backup_dir),
        state_dir=r.get(s, P, "state_dir", "str", d.state_dir),
        ssh_key=r.get(s, P, "ssh_key", "str", d.ssh_key),
        known_hosts=r.get(s, P, "known_hosts", "str", d.known_hosts),
        on_change=tuple(hooks),
        src=r.where(P),
    )


def _storage(r: _Reader, raw: Any, names: list[str]) -> model.Storage:
    P = ("storage",)
    s = r.table(raw, P, _STORAGE)
    d = model.Storage()
    disks = r.get(s, P, "disks", "strmap", {})
    replication = r.get(s, P, "replication", "strmap", {})
    use_drbd = r.get(s, P, "use_drbd", "bool", d.use_drbd)
    for key, m in (("disks", disks), ("replication", replication)):
        for n in m:
            if names and n not in names:
                r.error(P + (key, n), f"{n!r} is not a node; nodes: {', '.join(names)}")
    for n, a in replication.items():
        _check_ip(r, P + ("replication", n), a)
    if use_drbd and raw is not None and "replication" in s:
        missing = [n for n in names if n not in replication]
        if missing:
            r.error(P + ("replication",), f"DRBD needs every node's replication address; missing {', '.join(missing)}")
    fs = r.get(s, P, "filesystem", "str", d.filesystem)
    if fs not in FILESYSTEMS:
        r.error(P + ("filesystem",), f"expected one of {', '.join(FILESYSTEMS)}, got {fs!r}")
    proto = r.get(s, P, "drbd_protocol", "str", d.drbd_protocol)
    if proto not in ("A", "B", "C"):
        r.error(P + ("drbd_protocol",), f"expected A, B or C (C: a write completes on both disks), got {proto!r}")
    rate = r.get(s, P, "resync_rate", "str", d.resync_rate)
    if not re.fullmatch(r"[1-9][0-9]*[KMG]?", rate):
        r.error(P + ("resync_rate",), f"expected a rate in bytes/s with K, M or G (e.g. \"33M\": ~30 % of a gigabit link), got {rate!r}")
    mp = r.get(s, P, "mount_point", "str", d.mount_point)
    if not mp.startswith("/") or mp.rstrip("/") == "":
        r.error(P + ("mount_point",), f"expected an absolute path other than /, got {mp!r}")
    return model.Storage(
        use_drbd=use_drbd,
        use_lvm=r.get(s, P, "use_lvm", "bool", d.use_lvm),
        drbd_resource=r.get(s, P, "drbd_resource", "str", d.drbd_resource),
        drbd_device=r.get(s, P, "drbd_device", "str", d.drbd_device),
        drbd_port=r.get(s, P, "drbd_port", "int", d.drbd_port),
        drbd_protocol=proto,
        resync_rate=rate,
        disks=disks,
        replication=replication,
        vg=r.get(s, P, "vg", "str", d.vg),
        lv=r.get(s, P, "lv", "str", d.lv),
        lv_size=r.get(s, P, "lv_size", "str", d.lv_size),
        filesystem=fs,
        mount_point=mp,
        mount_options=r.get(s, P, "mount_options", "str", d.mount_options),
        src=r.where(P),
    )


def _nfs(r: _Reader, raw: Any) -> model.Nfs:
    P = ("nfs",)
    n = r.table(raw, P, _NFS)
    vip = r.get(n, P, "vip", "str", "")
    if vip:
        _check_ip(r, P + ("vip",), vip, cidr_ok=True)
    exports = []
    raw_exports = n.get("export", [])
    if not isinstance(raw_exports, list):
        r.error(P + ("export",), "expected [[nfs.export]] tables")
        raw_exports = []
    fsids: dict[int, int] = {}
    for i, e in enumerate(raw_exports):
        p = P + ("export", i)
        e = r.table(e, p, _EXPORT)
        ep = r.get(e, p, "path", "str", "", required=True)
        fsid = r.get(e, p, "fsid", "int", None)
        if fsid is not None:
            if fsid in fsids:
                r.error(p + ("fsid",), f"fsid {fsid} is already used by export [{fsids[fsid]}]: each export needs its own")
            fsids[fsid] = i
        exports.append(model.Export(ep, r.get(e, p, "clients", "str", "*"), r.get(e, p, "options", "str", model.Export("").options), fsid, r.where(p)))
    for i, e in enumerate(exports):
        if e.fsid is None:
            r.warn(P + ("export", i), "no fsid=: NFS file handles then depend on the device numbers, which must be identical on both nodes or clients see \"stale NFS file handle\" after failover")
    return model.Nfs(r.get(n, P, "state_dir", "str", ""), tuple(exports), vip, r.where(P))


def _check_nfs_state_twice(r: _Reader, profile: str, profiles: list[str], nfs: model.Nfs,
                           resources: tuple[model.Resource, ...], *, from_toml: bool) -> None:
    """[nfs].state_dir makes bootstrap symlink /var/lib/nfs onto the replicated disk (on
    profiles with nfs_state_link = "symlink"); the OCF nfsserver agent's
    nfs_shared_infodir bind-mounts a directory onto /var/lib/nfs as well. Both at once
    mount the directory onto itself (rpc_pipefs inside it), and the filesystem can no
    longer be unmounted at failover."""
    if not nfs.state_dir or profile not in profiles:
        return
    try:
        link = load_profile(profile).options.get("nfs_state_link", "symlink")
    except ConfigError:
        return
    if link != "symlink":
        return
    for i, res in enumerate(resources):
        if res.type == "ocf" and res.agent.endswith(":nfsserver") and res.params.get("nfs_shared_infodir"):
            where = ("resource", i, "params", "nfs_shared_infodir") if from_toml else ("nfs", "state_dir")
            r.warn(where, f"resource {res.id!r} (OCF nfsserver) bind-mounts nfs_shared_infodir onto /var/lib/nfs, which "
                          f"bootstrap already makes a symlink to [nfs].state_dir ({nfs.state_dir}) on the {profile} profile: "
                          "the directory gets mounted onto itself and the filesystem can no longer be unmounted at "
                          "failover; keep one: drop nfs_shared_infodir (the symlink already puts the NFS state on the "
                          "replicated disk) or [nfs].state_dir")


def _resources(r: _Reader, raw: Any) -> tuple[model.Resource, ...]:
    if not isinstance(raw, list):
        r.error(("resource",), "expected [[resource]] tables")
        return ()
    out: list[model.Resource] = []
    d = model.Resource("x", "ocf", "x")
    for i, x in enumerate(raw):
        p = ("resource", i)
        x = r.table(x, p, _RESOURCE)
        rid = r.get(x, p, "id", "str", "", required=True)
        rtype = r.get(x, p, "type", "str", "", required=True)
        agent = r.get(x, p, "agent", "str", "", required=True)
        if rtype and rtype not in RESOURCE_TYPES:
            r.error(p + ("type",), f"unknown resource type {rtype!r}; expected one of {', '.join(RESOURCE_TYPES)}")
        if rtype == "ocf" and agent and not re.match(r"^[\w.-]+:[\w.-]+$", agent):
            r.error(p + ("agent",), f'expected "provider:agent" for an OCF agent (e.g. "heartbeat:IPaddr2"), got {agent!r}')
        if rtype == "systemd" and agent and "." not in agent:
            agent = agent + ".service"
        if rid and any(o.id == rid for o in out):
            r.error(p + ("id",), f"duplicate resource id {rid!r}")
        args = r.get(x, p, "args", "strlist", ())
        params = r.get(x, p, "params", "paramsmap", {})
        if args and rtype in RESOURCE_TYPES and rtype not in ("heartbeat", "lsb"):
            r.error(p + ("args",), f"args are for heartbeat/lsb scripts; a {rtype} resource takes params")
        if params and rtype in RESOURCE_TYPES and rtype != "ocf":
            r.error(p + ("params",), f"params are OCF_RESKEY_* for ocf agents; a {rtype} resource takes args")
        mi = r.get(x, p, "max_restarts", "int", d.max_restarts)
        if mi < 0:
            r.error(p + ("max_restarts",), "must be 0 or more")
        out.append(
            model.Resource(
                id=rid,
                type=rtype,
                agent=agent,
                args=args,
                params=params,
                start_timeout=r.get(x, p, "start_timeout", "duration", d.start_timeout),
                stop_timeout=r.get(x, p, "stop_timeout", "duration", d.stop_timeout),
                monitor_timeout=r.get(x, p, "monitor_timeout", "duration", d.monitor_timeout),
                monitor_interval=r.get(x, p, "monitor_interval", "duration", d.monitor_interval),
                max_restarts=mi,
                src=r.where(p),
            )
        )
    return tuple(out)


def _fencing(r: _Reader, raw: Any) -> model.Fencing:
    P = ("fencing",)
    f = r.table(raw, P, _FENCING)
    d = model.Fencing()
    mode = r.get(f, P, "mode", "str", d.mode)
    if mode not in FENCING_MODES:
        r.error(P + ("mode",), f"expected one of {', '.join(FENCING_MODES)}, got {mode!r}")
    command = r.get(f, P, "command", "argv", ())
    if mode in ("required", "optional") and not command:
        r.error(P + ("command",), f"fencing mode {mode!r} needs a command (a fence_* agent or script; \"{{node}}\" and \"{{address}}\" are filled in), or set mode = \"off\"")
    osf = r.get(f, P, "on_stop_failure", "str", d.on_stop_failure)
    if osf not in STOP_FAILURE:
        r.error(P + ("on_stop_failure",), f"expected one of {', '.join(STOP_FAILURE)}, got {osf!r}")
    return model.Fencing(mode, command, r.get(f, P, "timeout", "duration", d.timeout), osf, r.get(f, P, "self_command", "argv", ()), r.where(P))


# --------------------------------------------------------------------------- haresources

_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(/\d{1,2})?(/[\w.:-]+)*$")


def parse_haresources(text: str, path: str = "haresources") -> tuple[str, tuple[model.Resource, ...]]:
    """Parse a heartbeat v1 haresources file into (preferred node, ordered chain).

    ``NODE res res ...``; ``script::arg1::arg2``; a bare IP means ``IPaddr::IP``; a
    trailing backslash continues the line. One resource group per cluster is supported.
    """
    groups: list[tuple[int, list[str]]] = []
    pending: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() and not pending:
            continue
        cont = line.endswith("\\")
        if cont:
            line = line[:-1]
        if not pending:
            start = lineno
        pending.extend(line.split())
        if not cont:
            if pending:
                groups.append((start, pending))
            pending = []
    if pending:
        groups.append((start, pending))
    if not groups:
        raise ConfigError([f"{path}: no resource group found (expected `NODE resource resource ...`)"])
    if len(groups) > 1:
        raise ConfigError([f"{path}:{groups[1][0]}: more than one resource group; hasync runs one chain per two-node cluster"])
    lineno, words = groups[0]
    node, tokens = words[0], words[1:]
    if not tokens:
        raise ConfigError([f"{path}:{lineno}: node {node!r} has no resources"])
    out: list[model.Resource] = []
    used: dict[str, int] = {}
    for tok in tokens:
        parts = tok.split("::")
        args: tuple[str, ...]
        if _IP_RE.match(parts[0]) and len(parts) == 1:
            agent, args = "IPaddr", (parts[0],)
        else:
            agent, args = parts[0], tuple(parts[1:])
        if not agent or not re.match(r"^[\w.+-]+$", agent):
            raise ConfigError([f"{path}:{lineno}: {tok!r}: expected script::arg::arg or an IP address"])
        base = re.sub(r"[^a-z0-9]+", "-", agent.lower()).strip("-") or "res"
        used[base] = used.get(base, 0) + 1
        rid = base if used[base] == 1 else f"{base}-{used[base]}"
        out.append(model.Resource(id=rid, type="heartbeat", agent=agent, args=args, src=f"{path}:{lineno}"))
    return node, tuple(out)


# --------------------------------------------------------------------------- distro profiles


def load_profile(name: str) -> model.Profile:
    """Read profiles/distro/<name>.toml:

    ``[profile] name, init = "systemd"|"sysv"``; ``[services] logical = ["unit", ...]``;
    ``[paths] key = "/path"``; ``[options]`` anything else.
    """
    path = data_dir("profiles") / "distro" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError([f"{path}: no distro profile {name!r}; available: {', '.join(available_profiles()) or 'none'}"])
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: TOML syntax: {e}"]) from None
    r = _Reader(str(path), data, LineIndex(text))
    top = r.table(data, (), {"profile": "", "services": "", "paths": "", "options": ""})
    prof = r.table(top.get("profile"), ("profile",), {"name": "", "init": "", "description": ""})
    init = r.get(prof, ("profile",), "init", "str", "systemd")
    if init not in ("systemd", "sysv"):
        r.error(("profile", "init"), f"expected \"systemd\" or \"sysv\", got {init!r}")
    services: dict[str, tuple[str, ...]] = {}
    for k, v in r.table(top.get("services"), ("services",), {k: "" for k in top.get("services", {}) or {}}).items():
        if isinstance(v, str):
            services[k] = (v,)
        else:
            services[k] = r.get(top["services"], ("services",), k, "strlist", ())
    paths = r.get(top, (), "paths", "strmap", {}) if "paths" in top else {}
    options = dict(top.get("options", {}) or {})
    if r.errors:
        raise ConfigError(r.errors)
    return model.Profile(r.get(prof, ("profile",), "name", "str", name), init, services, paths, options, str(path))
