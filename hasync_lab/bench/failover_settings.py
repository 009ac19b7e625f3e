"""The failover benchmark as data: the settings tried, the peers' config files, the figures.

Pure: no processes, no clock. hasync_lab.bench.failover runs what this module describes.

Each tool is measured at its defaults and at a few faster settings. The faster ones are
soaked (both cores busy, 1 % loss on one link) and the fastest that shows no false
failover is the tool's "fastest safe" setting. Failover trials then run for the default,
for every setting faster than the fastest safe one (to show what they would have given)
and for the fastest safe one itself.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TOOLS = ("hasync", "heartbeat", "keepalived")


def fmt_s(seconds: float) -> str:
    """200ms, 1s, 1.5s, 30s: how ha.cf and cluster.toml spell durations."""
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Setting:
    """One configuration of one tool."""

    tool: str
    label: str  # what the JSON `setting` says
    default: bool = False  # the tool's own defaults (no timing keys written at all)
    keepalive: float = 0.0  # hasync/heartbeat
    deadtime: float = 0.0  # hasync/heartbeat
    advert: float = 0.0  # keepalived advert_int
    detect_s: float = 0.0  # expected detection time: sorts candidates fastest first

    @property
    def key(self) -> str:
        return f"{self.tool}:{self.label}"

    @property
    def warntime(self) -> float:
        """The warntime both hasync and heartbeat get: half the deadtime, and at least
        1.5 keepalives (a late packet is warned about, not a lost one)."""
        return max(self.deadtime / 2, self.keepalive * 1.5)


def timing_setting(tool: str, keepalive: float, deadtime: float) -> Setting:
    """A keepalive/deadtime setting of hasync or heartbeat (both detect in deadtime)."""
    return Setting(
        tool,
        f"keepalive {fmt_s(keepalive)}, deadtime {fmt_s(deadtime)}",
        keepalive=keepalive,
        deadtime=deadtime,
        detect_s=deadtime,
    )


def keepalived_setting(advert: float, priority: int = 100) -> Setting:
    version = 2 if advert >= 1 and float(advert).is_integer() else 3
    return Setting(
        "keepalived",
        f"advert_int {advert:g}s (VRRPv{version})",
        advert=advert,
        detect_s=master_down_s(advert, priority),
    )


def master_down_s(advert: float, priority: int) -> float:
    """VRRP: the backup declares the master down after 3 adverts plus its skew."""
    return 3 * advert + (256 - priority) / 256 * advert


# Documented defaults of each tool (see ../shared/reference/domain-facts.md and the
# model): written as "no timing keys" in the config, labelled with what they mean.
HASYNC_DEFAULT = Setting("hasync", "defaults", default=True, detect_s=30.0)
HEARTBEAT_DEFAULT = Setting(
    "heartbeat", "defaults (keepalive 1s, deadtime 30s)", default=True, detect_s=30.0
)
KEEPALIVED_DEFAULT = Setting(
    "keepalived", "defaults (advert_int 1s, VRRPv2)", default=True, detect_s=3.6, advert=1.0
)


def default_setting(tool: str, hasync_defaults: tuple[float, float] | None = None) -> Setting:
    """The tool's default; for hasync the label names the model's default timings."""
    if tool == "hasync":
        if hasync_defaults:
            ka, dt = hasync_defaults
            return Setting(
                "hasync",
                f"defaults (keepalive {fmt_s(ka)}, deadtime {fmt_s(dt)})",
                default=True,
                keepalive=ka,
                deadtime=dt,
                detect_s=dt,
            )
        return HASYNC_DEFAULT
    if tool == "heartbeat":
        return HEARTBEAT_DEFAULT
    return KEEPALIVED_DEFAULT


def candidates(tool: str) -> tuple[Setting, ...]:
    """The faster settings tried for *tool*, fastest first."""
    if tool == "hasync":
        out = [timing_setting("hasync", k, d) for k, d in ((0.01, 0.025), (0.01, 0.05), (0.02, 0.1), (0.05, 0.2), (0.1, 0.5), (0.2, 1.0))]
    elif tool == "heartbeat":
        out = [timing_setting("heartbeat", k, d) for k, d in ((0.05, 0.2), (0.1, 0.5), (0.2, 1.0), (1.0, 3.0))]
    elif tool == "keepalived":
        out = [keepalived_setting(a) for a in (0.01, 0.03, 0.1, 0.3)]
    else:
        raise ValueError(f"unknown tool {tool!r} (known: {', '.join(TOOLS)})")
    return tuple(sorted(out, key=lambda s: s.detect_s))


def quick_candidates(tool: str) -> tuple[Setting, ...]:
    """--quick: one fast setting per tool (the one that should be safe)."""
    pick = {"hasync": 4, "heartbeat": 2, "keepalived": 2}[tool]  # 100ms/500ms, 200ms/1s, 0.1s
    return (candidates(tool)[pick],)


# --------------------------------------------------------------------------- heartbeat 3


def hb_time(seconds: float) -> str:
    """ha.cf spelling: whole seconds bare ("30"), else milliseconds ("200ms"); "1s" is a
    configuration error for heartbeat 3.0.6."""
    ms = round(seconds * 1000)
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


def heartbeat_ha_cf(
    setting: Setting,
    *,
    nodes: Sequence[str],
    media: Sequence[tuple[str, Sequence[str]]],
    udpport: int | None = None,
    logdir: str = "/var/log/hb",
) -> str:
    """ha.cf for haresources mode. media: (interface, [every node's address on it]).

    A `ucast` line naming the local host is ignored by heartbeat, so the file is the same
    on both nodes. Heartbeat 3.0.6 parses ha.cf twice and then refuses any `udpport`
    other than the one in force ("must precede media statements"): leave udpport None
    and give the port through /etc/services (`ha-cluster PORT/udp`) instead.
    """
    lines = ["# written by hasync lab bench failover"]
    if udpport is not None:
        lines.append(f"udpport {udpport}")
    lines += [
        f"logfile {logdir}/ha-log",
        f"debugfile {logdir}/ha-debug",
        "use_logd no",
        "crm no",
    ]
    if not setting.default:
        dt = setting.deadtime
        lines += [
            f"keepalive {hb_time(setting.keepalive)}",
            f"warntime {hb_time(setting.warntime)}",
            f"deadtime {hb_time(dt)}",
            # initdead must be >= deadtime; it only delays declaring a silent peer dead
            f"initdead {hb_time(max(dt * 2, 2.0))}",
        ]
    for iface, addrs in media:
        for a in addrs:
            lines.append(f"ucast {iface} {a}")
    lines.append("auto_failback on")
    for n in nodes:
        lines.append(f"node {n}")
    return "\n".join(lines) + "\n"


def heartbeat_haresources(owner: str, vip: str, prefix: int, iface: str) -> str:
    return f"{owner} IPaddr2::{vip}/{prefix}/{iface}\n"


def heartbeat_authkeys(secret: str) -> str:
    return f"auth 1\n1 sha1 {secret}\n"


# --------------------------------------------------------------------------- keepalived


def keepalived_conf(
    setting: Setting,
    *,
    node: str,
    priority: int,
    iface: str,
    src: str,
    peers: Sequence[str],
    vrid: int,
    vip: str,
    prefix: int,
    auth: str = "",
) -> str:
    """keepalived.conf with one VRRP instance over unicast to the peer(s).

    Both nodes start as BACKUP and the higher priority wins (preemption on). Defaults
    mean VRRPv2 with advert_int 1; fast settings need VRRPv3 (centisecond adverts).
    """
    version = 3 if (not setting.default and not float(setting.advert).is_integer()) else 2
    lines = [
        "# written by hasync lab bench failover",
        "global_defs {",
        f"  router_id {node}",
        f"  vrrp_version {version}",
        "  vrrp_garp_master_delay 0",
        "}",
        f"vrrp_instance bench_{vrid} {{",
        "  state BACKUP",
        f"  interface {iface}",
        f"  virtual_router_id {vrid}",
        f"  priority {priority}",
    ]
    if not setting.default:
        lines.append(f"  advert_int {setting.advert:g}")
    lines += [f"  unicast_src_ip {src}", "  unicast_peer {"]
    lines += [f"    {p}" for p in peers]
    lines += ["  }"]
    if auth and version == 2:
        lines += ["  authentication {", "    auth_type PASS", f"    auth_pass {auth[:8]}", "  }"]
    lines += ["  virtual_ipaddress {", f"    {vip}/{prefix} dev {iface}", "  }", "}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figures:
    """One row of the JSON: a setting's trials and soak."""

    setting: Setting
    samples: tuple[float, ...]  # seconds from crash to the VIP answering from node2
    false_failovers: int | None  # None: not soaked
    failed_trials: int = 0  # trials where the VIP never answered from node2 in time
    role: str = ""  # "default" | "fastest safe" | "unsafe" | "slower"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict:
        s = summarize(self.samples)
        return {
            "setting": self.setting.label,
            "median_s": s["median_s"],
            "min_s": s["min_s"],
            "max_s": s["max_s"],
            "trials": len(self.samples),
            "false_failovers": self.false_failovers,
            "failed_trials": self.failed_trials,
            "role": self.role,
            "samples_s": [round(x, 4) for x in self.samples],
        }


def summarize(samples: Iterable[float]) -> dict:
    xs = sorted(samples)
    if not xs:
        return {"median_s": None, "min_s": None, "max_s": None}
    return {
        "median_s": round(statistics.median(xs), 4),
        "min_s": round(xs[0], 4),
        "max_s": round(xs[-1], 4),
    }


def fastest_safe(soaked: dict[str, int], ordered: Sequence[Setting]) -> Setting | None:
    """The first of *ordered* (fastest first) whose soak counted 0 false failovers."""
    for s in ordered:
        if soaked.get(s.key) == 0:
            return s
    return None


def trial_plan(default: Setting, ordered: Sequence[Setting], soaked: dict[str, int]) -> list[tuple[Setting, str]]:
    """(setting, role) to run trials for: default, the unsafe faster ones, the fastest safe."""
    out: list[tuple[Setting, str]] = [(default, "default")]
    safe = fastest_safe(soaked, ordered)
    for s in ordered:
        if safe is not None and s.key == safe.key:
            out.append((s, "fastest safe"))
            break
        if s.key in soaked:
            out.append((s, "unsafe"))
    return out


DAEMON_EXTRA = ("setting", "defaults_idle_cpu_pct", "defaults_setting", "floor_python_pct", "floor_c_pct")


def report(rows: dict[str, list[Figures]], daemon: dict, meta: dict | None = None, idle: list[dict] | None = None) -> dict:
    """The benchmark's JSON document. ``daemon`` is the hasync daemon at rest at the
    setting measured (its fastest safe one), with, where measured, the same at its
    defaults and the floor (the bare heartbeat loop in CPython and in C, same rate);
    ``idle`` lists every daemon-at-rest measurement of the run (all tools)."""
    doc: dict = {tool: [f.as_json() for f in rows.get(tool, [])] for tool in TOOLS}
    doc["daemon"] = {
        "idle_cpu_pct": daemon.get("idle_cpu_pct"),
        "rss_mb": daemon.get("rss_mb"),
    }
    doc["daemon"].update({k: daemon[k] for k in DAEMON_EXTRA if daemon.get(k) is not None})
    if idle:
        doc["idle"] = idle
    if meta:
        doc["meta"] = meta
    return doc


def cpu_pct(ticks_before: int, ticks_after: int, wall_s: float, hz: int = 100) -> float:
    """CPU use of a process over a wall-clock window, in % of one core."""
    if wall_s <= 0:
        raise ValueError("wall time must be positive")
    return 100.0 * (ticks_after - ticks_before) / hz / wall_s


def parse_stat_ticks(stat_line: str) -> int:
    """utime + stime (clock ticks) from a /proc/PID/stat line."""
    rest = stat_line.rsplit(")", 1)[1].split()
    # fields after ')' start at field 3 (state); utime is field 14, stime 15
    return int(rest[11]) + int(rest[12])


def parse_rss_kb(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line in /proc/PID/status")


def count_vip_adds(monitor_lines: Iterable[str], vip: str) -> int:
    """How often `ip -o monitor address` saw *vip* added (a takeover on that node)."""
    n = 0
    needle = f"inet {vip}/"
    for line in monitor_lines:
        if needle in line and not line.lstrip().startswith("Deleted"):
            n += 1
    return n


_LATE = re.compile(r"late heartbeat from \S+: (\d+) ms after the previous one|heartbeat from \S+ is late: (\d+) ms")


def late_gaps(log_text: str) -> tuple[int, float | None]:
    """How many late-heartbeat warnings an hasync daemon logged and the longest gap (ms)
    they name: the silence the peer saw, which deadtime must outlast. Only gaps over
    warntime are logged (and at most one warning a second, the rest counted)."""
    n, worst = 0, None
    for m in _LATE.finditer(log_text):
        n += 1
        ms = float(m.group(1) or m.group(2))
        worst = ms if worst is None else max(worst, ms)
    return n, worst


def daemon_stalls(status: dict) -> dict:
    """The stall figures of one daemon's status document (``hasync status --json``)."""
    d = status.get("daemon", {})
    return {k: d.get(k) for k in ("worst_late_wake_ms", "scheduler_stalls", "stall_threshold_ms", "late_heartbeats")}


def loss_rules(table: str, iface: str, p: float) -> str:
    """An nft ruleset dropping a random fraction *p* of packets in and out of *iface*.

    The host kernel has no netem qdisc; nft's `numgen random` works in a namespace.
    """
    if not 0 < p < 1:
        raise ValueError(f"loss must be between 0 and 1, not {p}")
    n = max(1, round(p * 10000))
    return (
        f"table inet {table} {{\n"
        f'  chain in {{ type filter hook input priority -200; iifname "{iface}" numgen random mod 10000 < {n} drop; }}\n'
        f'  chain out {{ type filter hook output priority -200; oifname "{iface}" numgen random mod 10000 < {n} drop; }}\n'
        "}\n"
    )
