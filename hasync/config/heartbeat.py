"""A Linux-HA heartbeat v1 setup (haresources, ha.cf, authkeys) read into hasync's model (pure).

``read_heartbeat_file`` is the one reader of those files (bounded, binary refused, UTF-8
with a Latin-1 fallback: old SLES nodes wrote Latin-1). hasync.config.importer turns what
is parsed here into cluster.toml; ``check`` reads a ``haresources = PATH`` chain with it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from hasync import model
from hasync.config.reader import ConfigError, parse_duration
from hasync.config.text_files import decode_text, read_bytes

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
# the resource.d scripts whose one argument is an address (each wrapper refuses more than one)
ADDRESS_SCRIPTS = ("IPaddr", "IPaddr2", "IPv6addr", "IPsrcaddr", "SendArp")


def _ipv6(arg: str) -> bool:
    try:
        ipaddress.IPv6Address(arg.split("/", 1)[0])
    except ValueError:
        return False
    return True


def _args(agent: str, rest: str, where: str, notes: list[str]) -> tuple[str, ...]:
    """The arguments after ``script::``. heartbeat's ResourceManager splits at every "::"
    (resource2arg), which cuts an IPv6 address in pieces: an address script keeps it whole."""
    if agent in ADDRESS_SCRIPTS and "::" in rest and _ipv6(rest):
        notes.append(f"{where}: {agent}::{rest}: the IPv6 address is kept whole; heartbeat itself splits arguments at "
                     f"every '::' and ran {agent} {' '.join(rest.split('::'))}, which its wrapper refuses (one argument), "
                     "so this resource never started under heartbeat")
        return (rest,)
    args = tuple(rest.split("::"))
    if agent in ADDRESS_SCRIPTS and args == ("",):
        notes.append(f"{where}: {agent}:: names no address (an empty argument): {agent} refuses to start without one; "
                     f"write the cluster address, e.g. {agent}::10.0.0.10/24/eth0")
    elif "" in args:
        notes.append(f"{where}: {agent}::{rest}: argument {args.index('') + 1} is empty")
    return args


@dataclass(frozen=True)
class HaGroup:
    """One line of haresources: a resource group, its preferred node and its chain."""

    node: str
    resources: tuple[model.Resource, ...]
    line: int


def parse_haresources(text: str, path: str = "haresources", notes: list[str] | None = None) -> tuple[HaGroup, ...]:
    """Parse a heartbeat v1 haresources file into its resource groups, one per line, in order.

    ``NODE res res ...``; ``script::arg1::arg2``; a bare IP means ``IPaddr::IP``; a
    trailing backslash continues the line. Resource ids are unique across the file (the
    second ``IPaddr`` is ``ipaddr-2`` whichever line it is on). What deserves a second
    look (an empty address, an IPv6 address heartbeat cut in pieces) is appended to
    *notes* as "file:line: ...".
    """
    notes = [] if notes is None else notes
    lines: list[tuple[int, list[tuple[int, str]]]] = []
    pending: list[tuple[int, str]] = []
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
        pending.extend((lineno, w) for w in line.split())
        if not cont:
            if pending:
                lines.append((start, pending))
            pending = []
    if pending:
        lines.append((start, pending))
    if not lines:
        raise ConfigError([f"{path}: no resource group found (expected `NODE resource resource ...`)"])
    used: dict[str, int] = {}
    return tuple(_group(path, lineno, words, used, notes) for lineno, words in lines)


def _group(path: str, lineno: int, words: list[tuple[int, str]], used: dict[str, int], notes: list[str]) -> HaGroup:
    (_, node), tokens = words[0], words[1:]
    if not tokens:
        raise ConfigError([f"{path}:{lineno}: node {node!r} has no resources"])
    out: list[model.Resource] = []
    for line_of_tok, tok in tokens:
        args: tuple[str, ...]
        if _IP_RE.match(tok):
            agent, args = "IPaddr", (tok,)
        else:
            agent, sep, rest = tok.partition("::")
            args = _args(agent, rest, f"{path}:{line_of_tok}", notes) if sep else ()
        if not agent or not _AGENT.match(agent):
            hint = f" (an IPv6 address needs its script: IPv6addr::{tok})" if _ipv6(tok) else ""
            raise ConfigError([f"{path}:{line_of_tok}: {tok[:80]!r}: expected script::arg::arg or an IP address{hint}"])
        base = re.sub(r"[^a-z0-9]+", "-", agent.lower()).strip("-") or "res"
        used[base] = used.get(base, 0) + 1
        rid = base if used[base] == 1 else f"{base}-{used[base]}"
        out.append(model.Resource(id=rid, type="heartbeat", agent=agent, args=args, src=f"{path}:{line_of_tok}"))
    return HaGroup(node, tuple(out), lineno)


def group_ids(groups: tuple[HaGroup, ...]) -> tuple[str, ...]:
    """The ids of haresources groups, which the file does not name: its preferred node's
    ("node1-group"), numbered when one node prefers several ("node1-group-2")."""
    out: list[str] = []
    for g in groups:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", g.node).strip("-.") or "node"
        gid = f"{base}-group"
        n = 1
        while gid in out:
            n += 1
            gid = f"{base}-group-{n}"
        out.append(gid)
    return tuple(out)


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
    stonith_hosts: list[StonithHost] = field(default_factory=list)
    stonith: tuple[int, str, str] | None = None  # `stonith TYPE FILE`: (line, type, its config file)
    path: str = "ha.cf"
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StonithHost:
    """``stonith_host FROM TYPE PARAM...``: FROM (a node or *) may reset a node with the
    STONITH plugin TYPE; the PARAMs are the plugin's, in its own order (the first is
    usually the node it resets)."""

    line: int
    from_host: str
    plugin: str
    params: tuple[str, ...]


_HB_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def _hb_duration(value: str) -> float:
    """heartbeat durations: a bare number is seconds; "ms" and "s" suffixes are accepted."""
    m = _HB_DURATION.match(value)
    if not m:
        raise ValueError(f"expected a time like 2, 2s or 500ms, got {value[:40]!r}")
    return parse_duration(f"{m.group(1)}{m.group(2) or 's'}")  # the same bounds as cluster.toml


def parse_ha_cf(text: str, path: str = "ha.cf") -> HaCf:
    cf = HaCf(path=path)
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
            elif key == "stonith_host":
                cf.stonith_hosts.append(StonithHost(lineno, args[0], args[1], tuple(args[2:])))
            elif key == "stonith":
                cf.stonith = (lineno, args[0], args[1] if len(args) > 1 else "")
            else:
                cf.ignored.append(f"{path}:{lineno}: {key[:40]}")
        except (IndexError, ValueError):
            errors.append(f"{where}: malformed line {raw.strip()[:80]!r}")
    if errors:
        raise ConfigError(errors)
    return cf


# --------------------------------------------------------------------------- authkeys


@dataclass(frozen=True)
class AuthKeys:
    """/etc/ha.d/authkeys: ``auth N`` picks the key line ``N METHOD [SECRET]``."""

    index: str
    method: str  # sha1, md5 or crc (no secret)
    secret_len: int  # bytes; the secret itself is never kept
    line: int


def parse_authkeys(text: str, path: str = "authkeys") -> AuthKeys:
    chosen: tuple[int, str] | None = None
    keys: dict[str, tuple[int, str, int]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "auth" and len(words) == 2:
            chosen = (lineno, words[1])
        elif words[0].isdigit() and len(words) in (2, 3) and words[1].lower() in ("sha1", "md5", "crc"):
            keys[words[0]] = (lineno, words[1].lower(), len(words[2].encode()) if len(words) == 3 else 0)
        else:
            raise ConfigError([f"{path}:{lineno}: expected `auth N` or `N sha1|md5|crc SECRET`"])
    if chosen is None:
        raise ConfigError([f"{path}: no `auth N` line: heartbeat would not start"])
    if chosen[1] not in keys:
        raise ConfigError([f"{path}:{chosen[0]}: auth {chosen[1]} names no key line `{chosen[1]} METHOD SECRET`"])
    lineno, method, size = keys[chosen[1]]
    if method != "crc" and not size:
        raise ConfigError([f"{path}:{lineno}: {method} needs a secret"])
    return AuthKeys(chosen[1], method, size, lineno)
