"""A seeded mutator for config text and heartbeat files, and the fuzz budget.

Every case is made from ``random.Random(f"{seed}:{index}")``, so a failure names the
seed and index that rebuild its input exactly. ``HASYNC_FUZZ_BUDGET`` (seconds per fuzz
test, default 3) and ``HASYNC_FUZZ_SEED`` (default 12) choose how long and which inputs.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_BUDGET = 3.0
DEFAULT_SEED = 12

# TOML keys hasync knows (some misspelt on purpose) and the section headers
KEYS = (
    "name", "profile", "preferred_node", "address", "keepalive", "warntime", "deadtime", "initdead",
    "auto_failback", "auth_key", "ping", "kind", "interface", "port", "group", "ttl", "addresses", "device",
    "baud", "paths", "ignore", "debounce", "max_delay", "reconcile_every", "backup_dir", "state_dir", "ssh_key",
    "known_hosts", "path", "command", "use_drbd", "use_lvm", "drbd_resource", "drbd_device", "drbd_port",
    "drbd_protocol", "resync_rate", "disks", "replication", "vg", "lv", "lv_size", "filesystem", "mount_point",
    "mount_options", "vip", "clients", "options", "fsid", "id", "type", "agent", "args", "params",
    "start_timeout", "stop_timeout", "monitor_timeout", "monitor_interval", "max_restarts", "mode", "timeout",
    "on_stop_failure", "self_command", "haresources", "nmae", "a.b", '"quoted key"', "cluster", "node",
)
HEADERS = (
    "[cluster]", "[[node]]", "[heartbeat]", "[[heartbeat.link]]", "[sync]", "[[sync.on_change]]", "[storage]",
    "[nfs]", "[[nfs.export]]", "[[resource]]", "[fencing]", "[resource]", "[[cluster]]", "[heartbeat.link]",
    "[a" + " " * 3000 + ".b]", "[[node.x]]",
)
STRINGS = (
    "", "/", "/etc/.", "//etc", "/etc/hasync/..", "/.", "/etc/hasync/", "relative", "adir", "binary",
    "latin1", "haresources", "/proc/self/mem", "/dev/zero", "/nonexistent/x", "\\u0000", "[/x]", "[bold]",
    "😀", "nœud", "a\\u007f", "x" * 300, "é" * 200, "1" + "9" * 300 + "s", "9" * 310 + "ms", "0ms", "-1s",
    "1e9s", "100ms", "2s", "5m", "1h", "8761h", "udp-unicast", "udp-multicast", "udp-broadcast", "serial",
    "ocf", "lsb", "systemd", "service", "heartbeat", "heartbeat:IPaddr2", "heartbeat:nfsserver",
    "239.0.0.1", "192.0.2.1", "192.0.2.300", "::1", "10.0.0.1/24", "1.2.3.4/99", "debian12", "sles9",
    "beos", "../x", "required", "optional", "off", "fence-self", "block", "alpha", "beta", "node1",
    "alpha.example.com", "33M", "fast", "ext4", "btrfs", "A", "C", "hb0", "/dev/ttyS1", "{node}", "\\\\",
    '\\"', "\\n", "\\t",
)
SCALARS = (
    "0", "-1", "1", "694", "65535", "65536", "256", str(2**63 - 1), "1" + "0" * 300, "1.5", "inf", "nan",
    "-0.0", "1e308", "true", "false", "1979-05-27T07:32:00Z", "[]", '["a"]', '[1, "a"]', "[[]]", "{}",
    '{ a = "b" }', '{ alpha = "192.0.2.9", beta = "x" }', '{ ip = "1.2.3.4", n = 24 }', '"""multi\nline"""',
    "'''lit'''", "[" * 400 + "]" * 400,
)
TOKENS = ("[", "]", "[[", "]]", '"', "'", '"""', "=", ".", "#", "\n", "\\", ",", "{", "}", " = ", "\t",
          "é", "😀", "\x7f", "\u2028", "\x00", "\r\n")


def toml_value(rng: random.Random) -> str:
    if rng.random() < 0.6:
        s = rng.choice(STRINGS)
        if rng.random() < 0.2:
            s = s * rng.choice((2, 50))
        return f'"{s}"'
    return rng.choice(SCALARS)


def mutate_toml(text: str, rng: random.Random) -> str:
    """1-4 mutations: a value replaced, a key/header/block inserted, lines dropped or
    repeated, a token or a long run of one character put anywhere, a span deleted; and
    (keeping the config valid, to reach the rules for valid configs) names and resource
    ids made longer, resources added under fresh ids."""
    lines = text.split("\n")
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        # most mutations keep the TOML syntax, so that the checks behind the parser run
        op = rng.choices(range(11), weights=(35, 0, 0, 10, 5, 5, 5, 8, 7, 5, 20))[0]
        i = rng.randrange(len(lines)) if lines else 0
        if op == 10:
            _grow(lines, rng)
        elif op == 0 and lines and "=" in lines[i]:  # a wrong value for a key
            lines[i] = lines[i].split("=", 1)[0] + "= " + toml_value(rng)
        elif op == 3:
            lines.insert(i, f"{rng.choice(KEYS)} = {toml_value(rng)}")
        elif op == 4:
            lines.insert(i, rng.choice(HEADERS))
        elif op == 5 and lines:
            del lines[i : i + rng.randint(1, 3)]
        elif op == 6 and lines:
            j = min(len(lines), i + rng.randint(1, 6))
            block = lines[i:j]
            lines[j:j] = block * rng.choice((1, 2, 40, 300))
        elif op == 7 and lines:
            line = lines[i]
            k = rng.randint(0, len(line))
            lines[i] = line[:k] + rng.choice(TOKENS) + line[k:]
        elif op == 8 and lines:
            line = lines[i]
            k = rng.randint(0, len(line))
            lines[i] = line[:k] + rng.choice(" 9é[.") * rng.choice((300, 5000, 16384)) + line[k:]
        elif lines:
            line = lines[i]
            k = rng.randint(0, len(line))
            lines[i] = line[:k] + line[k + rng.randint(1, 8):]
    return "\n".join(lines)


def _grow(lines: list[str], rng: random.Random) -> None:
    """Lengthen a name or id (up to and past a packet's 255 bytes), or add resources with
    fresh ids (up to and past the 1024-byte payload and the 255 owned ids)."""
    named = [i for i, line in enumerate(lines) if line.startswith(("id = ", "name = "))]
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[resource]]"]
    if named and rng.random() < 0.5:
        i = rng.choice(named)
        key, value = lines[i].split(" = ", 1)
        grown = value.strip('"') + rng.choice("abcé-") * rng.choice((10, 100, 200, 250, 255, 256, 300))
        # a node name also keys the link addresses: rename it everywhere
        old = value.strip('"')
        for j, line in enumerate(lines):
            lines[j] = line.replace(f'"{old}"', f'"{grown}"').replace(f"{old} =", f'"{grown}" =')
        return
    if starts:
        i = rng.choice(starts)
        j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("[")), len(lines))
        block = lines[i:j]
        tag = rng.randrange(10**6)
        for n in range(rng.choice((1, 1, 5, 5, 30, 60, 254, 256))):
            lines[j:j] = [f'id = "r{tag}-{n}{"x" * rng.choice((0, 0, 20))}"' if x.startswith("id = ") else x for x in block]


# heartbeat's files: words and bytes that reach every branch of the two parsers
HB_WORDS = (
    b"node", b"keepalive", b"deadtime", b"warntime", b"initdead", b"auto_failback", b"udpport", b"baud",
    b"bcast", b"mcast", b"ucast", b"serial", b"ping", b"ping_group", b"stonith", b"stonith_host", b"logfacility",
    b"eth0", b"eth1", b"/dev/ttyS0", b"239.0.0.1", b"694", b"19200", b"on", b"off", b"2", b"500ms", b"10s",
    b"1" + b"9" * 300, b"9" * 5000, b"IPaddr::10.0.0.1", b"10.0.0.10", b"10.0.0.10/24/eth0", b"drbddisk::r0",
    b"Filesystem::/dev/drbd0::/srv::ext3", b"::", b"::::", b"nfsserver", b"node1", b"node2",
)
HB_BYTES = (b"\\\n", b"\\", b"#", b"\n", b" ", b"\t", b"\x00", b"\xff", b"\xe9", b"\xc3\xa9", b"\xf0\x9f\x98\x80",
            b"\xed\xa0\x80", b"\x7f", b"\r", b"\x0b", b"\xe2\x80\xa8", b'"', b"'", b"[/x]", b"\x1b[31m", b"\\u0000")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """1-6 byte-level mutations of a heartbeat file."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        k = rng.randint(0, len(buf))
        if op <= 1:
            buf[k:k] = rng.choice(HB_WORDS) + b" "
        elif op == 2:
            buf[k:k] = rng.choice(HB_BYTES)
        elif op == 3:
            del buf[k : k + rng.randint(1, 12)]
        elif op == 4 and buf:
            buf[min(k, len(buf) - 1)] = rng.randrange(256)
        elif op == 5:
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i] * rng.choice((1, 2)))
            buf = bytearray(b"\n".join(lines))
        else:
            buf[k:k] = bytes([rng.choice(b" x9\\:")]) * rng.choice((100, 4000))
    return bytes(buf)


@dataclass
class Budget:
    """Cases numbered from 0 until the time is up: ``for i, rng in budget.cases()``."""

    seconds: float
    seed: int
    count: int = 0
    started: float = 0.0

    @classmethod
    def from_env(cls) -> Budget:
        return cls(float(os.environ.get("HASYNC_FUZZ_BUDGET", DEFAULT_BUDGET)),
                   int(os.environ.get("HASYNC_FUZZ_SEED", DEFAULT_SEED)))

    def cases(self) -> Iterator[tuple[int, random.Random]]:
        self.started = time.monotonic()
        while time.monotonic() - self.started < self.seconds:
            yield self.count, random.Random(f"{self.seed}:{self.count}")
            self.count += 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
