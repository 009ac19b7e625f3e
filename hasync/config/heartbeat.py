"""A Linux-HA heartbeat v1 setup (haresources + ha.cf) as hasync's model and TOML.

Parsing and writing are pure; ``read_heartbeat_file`` is the one reader of those files
(bounded, binary refused, UTF-8 with a Latin-1 fallback: old SLES nodes wrote Latin-1).
The TOML writer escapes everything TOML cannot hold literally, so the import's output
always parses, whatever bytes the input had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hasync import model
from hasync.config.reader import (
    ConfigError,
    UnreadableFile,
    decode_text,
    format_duration,
    parse_duration,
    read_bytes,
)

# --------------------------------------------------------------------------- reading


def read_heartbeat_file(path: str | Path, *, allow_pipe: bool = False) -> tuple[str, str | None]:
    """(text, note): the note says when the file was not UTF-8 and was read as Latin-1.
    Raises UnreadableFile."""
    text, encoding = decode_text(read_bytes(path, allow_pipe=allow_pipe), latin1_fallback=True)
    note = None
    if encoding == "latin-1":
        note = f"{path}: not UTF-8: read as Latin-1 (ISO-8859-1); check the non-ASCII names"
    return text, note


# --------------------------------------------------------------------------- haresources

_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(/\d{1,2})?(/[\w.:-]+)*$")
_AGENT = re.compile(r"^[\w.+-]+$")


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
        if not agent or not _AGENT.match(agent):
            raise ConfigError([f"{path}:{lineno}: {tok[:80]!r}: expected script::arg::arg or an IP address"])
        base = re.sub(r"[^a-z0-9]+", "-", agent.lower()).strip("-") or "res"
        used[base] = used.get(base, 0) + 1
        rid = base if used[base] == 1 else f"{base}-{used[base]}"
        out.append(model.Resource(id=rid, type="heartbeat", agent=agent, args=args, src=f"{path}:{lineno}"))
    return node, tuple(out)


# --------------------------------------------------------------------------- ha.cf


@dataclass
class HaCf:
    """The ha.cf directives hasync maps; anything else is listed in ``ignored``."""

    nodes: list[str] = field(default_factory=list)
    keepalive: float | None = None
    deadtime: float | None = None
    warntime: float | None = None
    initdead: float | None = None
    auto_failback: bool | None = None
    udpport: int = 694
    baud: int = 19200
    links: list[dict] = field(default_factory=list)  # raw link dicts in hasync's shape
    ucast: list[tuple[str, str]] = field(default_factory=list)  # (iface, address)
    ping: list[str] = field(default_factory=list)
    stonith: bool = False
    ignored: list[str] = field(default_factory=list)


_HB_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def _hb_duration(value: str) -> float:
    """heartbeat durations: a bare number is seconds; "ms" and "s" suffixes are accepted."""
    m = _HB_DURATION.match(value)
    if not m:
        raise ValueError(f"expected a time like 2, 2s or 500ms, got {value[:40]!r}")
    return parse_duration(f"{m.group(1)}{m.group(2) or 's'}")  # the same bounds as cluster.toml


def parse_ha_cf(text: str, path: str = "ha.cf") -> HaCf:
    cf = HaCf()
    errors: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key, args = words[0].lower(), words[1:]
        where = f"{path}:{lineno}: {key[:40]}"
        try:
            if key == "node":
                cf.nodes.extend(args)
            elif key in ("keepalive", "deadtime", "warntime", "initdead"):
                if not args:
                    raise IndexError(key)
                try:
                    setattr(cf, key, _hb_duration(args[0]))
                except ValueError as e:
                    errors.append(f"{where}: {e}")
            elif key == "auto_failback":
                cf.auto_failback = args[0].lower() in ("on", "yes", "true", "1")
            elif key == "udpport":
                cf.udpport = int(args[0])
            elif key == "baud":
                cf.baud = int(args[0])
            elif key == "bcast":
                for iface in args:
                    cf.links.append({"name": f"bcast-{iface}", "kind": "udp-broadcast", "interface": iface})
            elif key == "mcast":
                iface, group, port = args[0], args[1], int(args[2])
                ttl = int(args[3]) if len(args) > 3 else 1
                cf.links.append({"name": f"mcast-{iface}", "kind": "udp-multicast", "interface": iface, "group": group, "port": port, "ttl": ttl})
            elif key == "ucast":
                cf.ucast.append((args[0], args[1]))
            elif key == "serial":
                for dev in args:
                    cf.links.append({"name": "serial" if dev == args[0] else f"serial-{dev.rsplit('/', 1)[-1]}", "kind": "serial", "device": dev})
            elif key in ("ping", "ping_group"):
                cf.ping.extend(args[1:] if key == "ping_group" else args)
            elif key in ("stonith", "stonith_host"):
                cf.stonith = True
            else:
                cf.ignored.append(f"{path}:{lineno}: {key[:40]}")
        except (IndexError, ValueError):
            errors.append(f"{where}: malformed line {raw.strip()[:80]!r}")
    if errors:
        raise ConfigError(errors)
    return cf


# --------------------------------------------------------------------------- TOML writer

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string holding *text*. Printable characters are written as they are
    (the output is UTF-8); everything else as \\uXXXX / \\UXXXXXXXX (json.dumps wrote
    astral characters as UTF-16 surrogate pairs, which TOML rejects). A lone surrogate
    is no character at all and becomes U+FFFD."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\uFFFD")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}")
    out.append('"')
    return "".join(out)


def toml_comment(text: str) -> str:
    """*text* made safe for a comment: no line breaks or control characters."""
    return toml_string(text)[1:-1]


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_string(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(node: str, chain: tuple[model.Resource, ...], cf: HaCf | None = None, source: str = "") -> str:
    """The [cluster]/[[node]]/[heartbeat]/[[resource]] TOML equivalent of a heartbeat v1 setup."""
    out: list[str] = []
    if source:
        out.append(f"# Imported from {toml_comment(source)} by `hasync haresources import`.")
        out.append("# Review every value marked `check:` before use.")
        out.append("")
    out += ["[cluster]", f"preferred_node = {toml_value(node)}", ""]
    if cf is not None:
        names = cf.nodes or [node]
        for n in names:
            out += ["[[node]]", f"name = {toml_value(n)}", 'address = "0.0.0.0"   # check: this node\'s management address', ""]
        out.append("[heartbeat]")
        for k in ("keepalive", "warntime", "deadtime", "initdead"):
            val = getattr(cf, k)
            if val is not None:
                out.append(f"{k} = {toml_value(format_duration(val))}")
        if cf.auto_failback is not None:
            out.append(f"auto_failback = {toml_value(cf.auto_failback)}")
        if cf.ping:
            out.append(f"ping = {toml_value(cf.ping)}")
        out.append("")
        out += _links(cf, names, node)
        if not cf.stonith:
            out += ["[fencing]", 'mode = "off"   # check: ha.cf had no stonith; hasync recommends mode = "required" with a fence command', ""]
    for r in chain:
        out.append("[[resource]]")
        out.append(f"id = {toml_value(r.id)}")
        out.append(f"type = {toml_value(r.type)}")
        out.append(f"agent = {toml_value(r.agent)}")
        if r.args:
            out.append(f"args = {toml_value(list(r.args))}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _links(cf: HaCf, names: list[str], node: str) -> list[str]:
    out: list[str] = []
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
            link["addresses"] = {n: (addrs[0] if len(addrs) == 1 and n != node else "0.0.0.0") for n in names}
            link["#"] = "check: ha.cf names only the peer's address; fill in each node's"
        links.append(link)
    for link in links:
        note = link.pop("#", "")
        if link["kind"].startswith("udp") and "port" not in link:
            link["port"] = cf.udpport
        if link["kind"] == "serial":
            link["baud"] = cf.baud
        out.append("[[heartbeat.link]]" + (f"   # {note}" if note else ""))
        for k, v in link.items():
            out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return out


# --------------------------------------------------------------------------- the import


@dataclass(frozen=True)
class Imported:
    """``hasync haresources import``: the TOML, and notes for the person running it."""

    toml: str
    notes: tuple[str, ...] = ()


def import_heartbeat(haresources: str, ha_cf: str | None = None) -> Imported:
    """Read a haresources file (and ha.cf) and write their cluster.toml; ConfigError."""
    text, note = _read(haresources)
    notes = [note] if note else []
    node, chain = parse_haresources(text, haresources)
    cf = None
    if ha_cf:
        cf_text, cf_note = _read(ha_cf)
        notes += [cf_note] if cf_note else []
        cf = parse_ha_cf(cf_text, ha_cf)
        notes += [f"{ign}: not mapped (no hasync equivalent)" for ign in cf.ignored]
    return Imported(to_toml(node, chain, cf, source=haresources), tuple(notes))


def _read(path: str) -> tuple[str, str | None]:
    try:
        return read_heartbeat_file(path, allow_pipe=True)  # `--ha-cf <(ssh old cat ...)` works
    except UnreadableFile as e:
        raise ConfigError([e.located(path)]) from None
