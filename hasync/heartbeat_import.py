"""Import a Linux-HA heartbeat v1 setup (haresources + ha.cf) as hasync TOML. Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from hasync import model
from hasync.config import ConfigError, format_duration


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


def _hb_duration(value: str, where: str) -> float:
    """heartbeat durations: a bare number is seconds; "ms" and "s" suffixes are accepted."""
    m = re.match(r"^(\d+(?:\.\d+)?)(ms|s)?$", value)
    if not m:
        raise ConfigError([f"{where}: expected a time like 2, 2s or 500ms, got {value!r}"])
    n = float(m.group(1))
    return n / 1000 if m.group(2) == "ms" else n


def parse_ha_cf(text: str, path: str = "ha.cf") -> HaCf:
    cf = HaCf()
    errors: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key, args = words[0].lower(), words[1:]
        where = f"{path}:{lineno}: {key}"
        try:
            if key == "node":
                cf.nodes.extend(args)
            elif key in ("keepalive", "deadtime", "warntime", "initdead"):
                setattr(cf, key, _hb_duration(args[0], where))
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
                cf.ignored.append(f"{path}:{lineno}: {key}")
        except (IndexError, ValueError):
            errors.append(f"{where}: malformed line {raw.strip()!r}")
    if errors:
        raise ConfigError(errors)
    return cf


# --------------------------------------------------------------------------- TOML writer


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else json.dumps(k)


def to_toml(node: str, chain: tuple[model.Resource, ...], cf: HaCf | None = None, source: str = "") -> str:
    """The [cluster]/[[node]]/[heartbeat]/[[resource]] TOML equivalent of a heartbeat v1 setup."""
    out: list[str] = []
    if source:
        out.append(f"# Imported from {source} by `hasync haresources import`.")
        out.append("# Review every value marked `check:` before use.")
        out.append("")
    out += ["[cluster]", f"preferred_node = {_toml_value(node)}", ""]
    if cf is not None:
        names = cf.nodes or [node]
        for n in names:
            out += ["[[node]]", f"name = {_toml_value(n)}", 'address = "0.0.0.0"   # check: this node\'s management address', ""]
        out.append("[heartbeat]")
        for k in ("keepalive", "warntime", "deadtime", "initdead"):
            val = getattr(cf, k)
            if val is not None:
                out.append(f"{k} = {_toml_value(format_duration(val))}")
        if cf.auto_failback is not None:
            out.append(f"auto_failback = {_toml_value(cf.auto_failback)}")
        if cf.ping:
            out.append(f"ping = {_toml_value(cf.ping)}")
        out.append("")
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
                out.append(f"{k} = {_toml_value(v)}")
            out.append("")
        if not cf.stonith:
            out += ["[fencing]", 'mode = "off"   # check: ha.cf had no stonith; hasync recommends mode = "required" with a fence command', ""]
    for r in chain:
        out.append("[[resource]]")
        out.append(f"id = {_toml_value(r.id)}")
        out.append(f"type = {_toml_value(r.type)}")
        out.append(f"agent = {_toml_value(r.agent)}")
        if r.args:
            out.append(f"args = {_toml_value(list(r.args))}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
