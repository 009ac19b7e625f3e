"""Heartbeat packets: encoding, HMAC-SHA256, stream framing, replay protection (all pure).

A frame is::

    MAGIC (3 bytes "\\xa5HS") | length (u16, payload bytes) | payload | HMAC-SHA256 (32 bytes)

The MAC covers magic, length and payload. The same framing is used for UDP datagrams
(one frame each) and for a serial byte stream: ``FrameDecoder`` scans for the magic,
waits for a whole frame, checks the MAC and on any mismatch skips one byte and searches
again, so it resynchronises after line noise, a half frame or a reader that opened the
tty mid-frame. Garbage never raises: it is counted.

The sizes (magic, header, fixed fields, bounds) live in ``hasync.packet_layout``, which
the config check reads too.

Payload (big endian), format version 2::

    version u8 | role u8 | flags u16 | generation u64 | seq u64 | epoch u32
    | request u8 | request_id u32 | ack_id u32 | echo u64 | digest u64
    | cluster str8 | node str8 | link str8 | n_owned u8 | owned str8 * n

str8 = u8 length + UTF-8. The link name is inside the MAC, so a packet captured on one
link cannot be replayed on another; sequence numbers are per link.

``echo`` is the generation of the receiver that the sender last accepted from it (0:
none): a packet whose echo is the receiver's current generation was made after the
receiver started, so it is no replay of an older one (its *freshness*; sequence numbers
alone prove nothing across the receiver's own restart). ``digest`` is 64 bits of the
SHA-256 of the settings both nodes must agree on (membership_data.settings_digest).

Version 1 (hasync before the echo) is the same without ``echo`` and ``digest``: it is
still decoded (echo 0, digest 0: never fresh, see docs/failover.md on rolling upgrades);
a version 1 node drops version 2 frames as malformed. The sequence number sits at the
same offset in both.

Version 3 (a cluster of several resource groups, docs/failover.md "Resource groups")
is version 2 followed by one record per group::

    ... | n_owned u8 | owned str8 * n | n_groups u8
    | (index u8 | role u8 | flags u16 | epoch u32 | request u8 | request_id u32
       | ack_id u32 | n_owned u8 | owned str8 * n) * n_groups

The fixed fields then say what holds for the node (generation, echo, digest, the
cluster-wide flags); each group's role, epoch, flags, request and owned resources are in
its record (``index``: the group's place in the config). A one-group cluster keeps
sending version 2 (a version 2 node drops version 3 frames as malformed).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from hasync.failover.states import Role
from hasync.packet_layout import (
    FIXED,
    FIXED_V1,
    GROUP_RECORD,
    GROUPS_MAX,
    HEADER,
    MAC_LEN,
    MAGIC,
    MAX_PAYLOAD,
    MIN_FIXED,
    OWNED_MAX,
    STR8_MAX,
    VERSION,
    VERSION_GROUPS,
)

ROLES = tuple(Role)  # the wire code of a role is its index
ROLE_CODE = {r: i for i, r in enumerate(ROLES)}

# flags (a u16: a node ignores the bits it does not know, so a new bit is compatible
# within format 2; a node before a bit simply does not act on it)
F_STANDBY = 0x1  # not eligible while the peer is up (hasync standby here, or takeover on the peer)
F_FAILED = 0x2  # the chain failed to start here (or monitors gave up): don't hand it back
F_LEAVING = 0x4  # a clean shutdown: this node released everything and is going away
# the cluster-wide settings (docs/failover.md, "Operator settings"): each node keeps its
# copy in its state directory and sends it in every packet
F_MAINTENANCE = 0x8  # hasync maintenance on: nothing is started, stopped, restarted or fenced
F_STOPPED = 0x10  # hasync stop: the chain is stopped on purpose, on both nodes, until hasync start
F_SETTINGS_NEW = 0x20  # this node changed the settings above and the peer has not shown them yet
F_OPERATOR_STANDBY = 0x40  # hasync standby NODE (persisted): never runs the chain until hasync online
F_REQ_OPERATOR = 0x80  # the release request in this packet is `hasync standby PEER`: persist it there
FLAG_NAMES = {F_STANDBY: "standby", F_FAILED: "failed", F_LEAVING: "leaving", F_MAINTENANCE: "maintenance",
              F_STOPPED: "stopped", F_SETTINGS_NEW: "settings-new", F_OPERATOR_STANDBY: "operator-standby",
              F_REQ_OPERATOR: "request-operator-standby"}


def flag_names(flags: int) -> list[str]:
    return [n for b, n in FLAG_NAMES.items() if flags & b]

# requests one node makes of the other (answered by echoing request_id in ack_id)
REQ_NONE = 0
REQ_RELEASE = 1  # "give the chain up, I take it" (hasync takeover on the sender)
REQ_TAKE = 2  # "take the chain, I go standby" (hasync standby on the sender)
REQUESTS = {REQ_NONE: "none", REQ_RELEASE: "release", REQ_TAKE: "take"}


@dataclass(frozen=True)
class GroupRecord:
    """One resource group's state in a version 3 packet (the group by its config index)."""

    index: int
    role: Role = Role.STANDBY
    flags: int = 0
    epoch: int = 0
    request: int = REQ_NONE
    request_id: int = 0
    ack_id: int = 0
    owned: tuple[str, ...] = ()


@dataclass(frozen=True)
class Packet:
    cluster: str
    node: str
    link: str
    generation: int
    seq: int
    role: Role = Role.STANDBY
    owned: tuple[str, ...] = ()
    flags: int = 0
    epoch: int = 0
    request: int = REQ_NONE
    request_id: int = 0
    ack_id: int = 0
    echo: int = 0  # the receiver's generation, as the sender last accepted it (0: none)
    digest: int = 0  # settings digest (0: unknown, a version 1 sender)
    version: int = VERSION  # the wire format it came in (1: a node before the echo)
    groups: tuple[GroupRecord, ...] = ()  # version 3: one record per resource group

    def flag_names(self) -> list[str]:
        return flag_names(self.flags)


class Mac:
    """HMAC-SHA256 with the key schedule done once: each message costs a copy of the keyed
    context, an update and a digest (no per-call key setup or digest lookup). The same
    bytes as ``hmac.digest(key, msg, "sha256")``."""

    __slots__ = ("ctx",)
    # the keyed context (_hashlib.HMAC, or hmac.HMAC without OpenSSL: both have
    # copy/update/digest); hot loops may copy it themselves
    ctx: Any

    def __init__(self, key: bytes):
        try:
            import _hashlib  # CPython's OpenSSL binding: a C HMAC context that copies cheaply

            self.ctx = _hashlib.hmac_new(key, digestmod="sha256")
        except (ImportError, AttributeError, ValueError):  # pragma: no cover - no OpenSSL HMAC
            self.ctx = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, msg: bytes) -> bytes:
        m = self.ctx.copy()
        m.update(msg)
        return m.digest()


def _s8(text: str) -> bytes:
    b = text.encode()
    if len(b) > STR8_MAX:
        raise ValueError(f"string too long for a packet: {text[:40]!r}...")
    return bytes([len(b)]) + b


def encode(pkt: Packet, key: bytes) -> bytes:
    """The frame of *pkt* in its ``version`` (2; 1 only for tests of a mixed-version pair).
    ValueError (or struct.error, KeyError) when a field does not fit."""
    fixed = (ROLE_CODE[pkt.role], pkt.flags & 0xFFFF, pkt.generation, pkt.seq, pkt.epoch, pkt.request, pkt.request_id, pkt.ack_id)
    if pkt.groups and pkt.version != VERSION_GROUPS:
        raise ValueError(f"format version {pkt.version} has no group records")
    if pkt.version in (VERSION, VERSION_GROUPS):
        payload = bytearray(FIXED.pack(pkt.version, *fixed, pkt.echo, pkt.digest))
    elif pkt.version == 1:
        if pkt.echo or pkt.digest:
            raise ValueError("format version 1 has no echo or digest")
        payload = bytearray(FIXED_V1.pack(1, *fixed))
    else:
        raise ValueError(f"unknown packet format version {pkt.version}")
    payload += _s8(pkt.cluster) + _s8(pkt.node) + _s8(pkt.link)
    _owned(payload, pkt.owned)
    if pkt.version == VERSION_GROUPS:
        if len(pkt.groups) > GROUPS_MAX:
            raise ValueError("too many groups")
        payload.append(len(pkt.groups))
        for g in pkt.groups:
            payload += GROUP_RECORD.pack(g.index, ROLE_CODE[g.role], g.flags & 0xFFFF, g.epoch, g.request, g.request_id, g.ack_id)
            _owned(payload, g.owned)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("packet too large")
    head = HEADER.pack(MAGIC, len(payload)) + bytes(payload)
    return head + hmac.digest(key, head, "sha256")


def _owned(payload: bytearray, owned: tuple[str, ...]) -> None:
    if len(owned) > OWNED_MAX:
        raise ValueError("too many owned resources")
    payload.append(len(owned))
    for r in owned:
        payload += _s8(r)


class Malformed(ValueError):
    pass


def _parse_payload(p: bytes) -> Packet:
    ver = p[0] if p else 0
    if ver in (VERSION, VERSION_GROUPS):
        fixed = FIXED
    elif ver == 1:
        fixed = FIXED_V1
    else:
        raise Malformed(f"version {ver}")
    if len(p) < fixed.size:
        raise Malformed("short payload")
    if ver != 1:
        _, role, flags, gen, seq, epoch, req, req_id, ack, echo, digest = fixed.unpack_from(p, 0)
    else:
        _, role, flags, gen, seq, epoch, req, req_id, ack = fixed.unpack_from(p, 0)
        echo = digest = 0
    if role >= len(ROLES):
        raise Malformed(f"role {role}")
    off = fixed.size

    def s8() -> str:
        nonlocal off
        if off >= len(p):
            raise Malformed("truncated string")
        n = p[off]
        if off + 1 + n > len(p):
            raise Malformed("truncated string")
        try:
            s = p[off + 1 : off + 1 + n].decode()
        except UnicodeDecodeError:
            raise Malformed("bad utf-8") from None
        off += 1 + n
        return s

    def u8(what: str) -> int:
        nonlocal off
        if off >= len(p):
            raise Malformed(f"no {what}")
        off += 1
        return p[off - 1]

    cluster, node, link = s8(), s8(), s8()
    owned = tuple(s8() for _ in range(u8("owned count")))
    groups: list[GroupRecord] = []
    if ver == VERSION_GROUPS:
        for _ in range(u8("group count")):
            if off + GROUP_RECORD.size > len(p):
                raise Malformed("truncated group record")
            gi, grole, gflags, gepoch, greq, greq_id, gack = GROUP_RECORD.unpack_from(p, off)
            off += GROUP_RECORD.size
            if grole >= len(ROLES):
                raise Malformed(f"group {gi}: role {grole}")
            if greq not in REQUESTS:
                raise Malformed(f"group {gi}: request {greq}")
            if any(g.index == gi for g in groups):
                raise Malformed(f"group {gi} twice")
            gowned = tuple(s8() for _ in range(u8("group owned count")))
            groups.append(GroupRecord(gi, ROLES[grole], gflags, gepoch, greq, greq_id, gack, gowned))
    if off != len(p):
        raise Malformed("trailing bytes")
    if req not in REQUESTS:
        raise Malformed(f"request {req}")
    return Packet(cluster, node, link, gen, seq, ROLES[role], owned, flags, epoch, req, req_id, ack, echo, digest, ver, tuple(groups))


@dataclass
class DecodeCounters:
    frames: int = 0
    bad_mac: int = 0
    malformed: int = 0
    garbage_bytes: int = 0


@dataclass
class FrameDecoder:
    """Incremental decoder for a byte stream; ``feed`` returns the valid packets found."""

    key: bytes
    counters: DecodeCounters = field(default_factory=DecodeCounters)
    buf: bytearray = field(default_factory=bytearray)
    max_buffer: int = 8192
    mac: Mac | None = None  # set from key when not given

    def __post_init__(self) -> None:
        if self.mac is None:
            self.mac = Mac(self.key)

    def feed(self, data: bytes) -> list[Packet]:
        out: list[Packet] = []
        for head in self.feed_raw(data):
            p = parse_head(head, self.counters)
            if p is not None:
                out.append(p)
        return out

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Like feed, but returns the authenticated frames (header + payload, no MAC) unparsed."""
        self.buf += data
        out: list[bytes] = []
        c = self.counters
        while True:
            i = self.buf.find(MAGIC)
            if i < 0:
                # keep a possible partial magic at the end
                keep = 0
                for k in (2, 1):
                    if self.buf.endswith(MAGIC[:k]):
                        keep = k
                        break
                c.garbage_bytes += len(self.buf) - keep
                del self.buf[: len(self.buf) - keep]
                break
            if i:
                c.garbage_bytes += i
                del self.buf[:i]
            if len(self.buf) < HEADER.size:
                break
            _, n = HEADER.unpack_from(self.buf, 0)
            if n > MAX_PAYLOAD or n < MIN_FIXED:
                c.garbage_bytes += 1
                del self.buf[:1]
                continue
            total = HEADER.size + n + MAC_LEN
            if len(self.buf) < total:
                if len(self.buf) > self.max_buffer:  # cannot happen with MAX_PAYLOAD; belt and braces
                    del self.buf[:1]
                    continue
                break
            head = bytes(self.buf[: HEADER.size + n])
            mac = bytes(self.buf[HEADER.size + n : total])
            assert self.mac is not None
            if not hmac.compare_digest(self.mac.digest(head), mac):
                c.bad_mac += 1
                del self.buf[:1]  # resync: the real frame may start inside this one
                continue
            del self.buf[:total]
            out.append(head)
        return out


def parse_head(head: bytes, counters: DecodeCounters) -> Packet | None:
    """Parse an authenticated frame (header + payload); malformed ones are counted."""
    try:
        p = _parse_payload(head[HEADER.size :])
        counters.frames += 1
        return p
    except Malformed:
        counters.malformed += 1
        return None


# offsets inside an authenticated head (3 magic + 2 length + payload): the sequence number
SEQ_SLICE = slice(HEADER.size + 12, HEADER.size + 20)


def encoder_template(pkt: Packet, key: bytes) -> tuple[bytes, bytes]:
    """(prefix, suffix) of *pkt*'s authenticated head around the sequence number: the
    steady state re-sends the same state with a new sequence, see ``encode_seq``."""
    frame = encode(pkt, key)
    head = frame[:-MAC_LEN]
    return head[: SEQ_SLICE.start], head[SEQ_SLICE.stop :]


def encode_seq(template: tuple[bytes, bytes], seq: int, key: bytes | Mac) -> bytes:
    """The frame of a template with sequence *seq* (equal to encode() of that packet);
    *key* may be a precomputed ``Mac`` (the daemon's send path)."""
    head = template[0] + seq.to_bytes(8, "big") + template[1]
    if isinstance(key, Mac):
        return head + key.digest(head)
    return head + hmac.digest(key, head, "sha256")


def datagram_head(data: bytes, mac: Mac) -> bytes | None:
    """The fast path for one UDP datagram holding exactly one well-formed frame with a
    valid MAC: its authenticated head (what ``FrameDecoder.feed_raw`` would return).
    None for anything else (bad MAC, garbage, several frames ...): feed it to a
    ``FrameDecoder``, which counts what is wrong."""
    n = len(data) - HEADER.size - MAC_LEN
    if n < MIN_FIXED or n > MAX_PAYLOAD or data[:3] != MAGIC or int.from_bytes(data[3:5], "big") != n:
        return None
    head = data[:-MAC_LEN]
    m = mac.ctx.copy()
    m.update(head)
    if not hmac.compare_digest(m.digest(), data[-MAC_LEN:]):
        return None
    return head


def head_signature(head: bytes) -> bytes:
    """Everything but the sequence number: equal signatures = the same state repeated."""
    return head[: SEQ_SLICE.start] + head[SEQ_SLICE.stop :]


def decode_datagram(data: bytes, key: bytes, counters: DecodeCounters | None = None) -> list[Packet]:
    """Decode one UDP datagram (normally one frame); never raises."""
    d = FrameDecoder(key, counters if counters is not None else DecodeCounters())
    return d.feed(data)


# --------------------------------------------------------------------------- replay guard


@dataclass
class ReplayGuard:
    """Accepts a packet only if it is newer than anything seen from that node.

    Generation (the sender's boot/start counter) must not go back; within a generation
    each link's sequence must strictly increase. Returns None (accept) or the reason
    ("old-generation", "replay").
    """

    generation: dict[str, int] = field(default_factory=dict)
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    last_gap: int = 0  # packets missing before the one just accepted (loss accounting)

    def check(self, pkt: Packet) -> str | None:
        gen = self.generation.get(pkt.node)
        if gen is not None and pkt.generation < gen:
            return "old-generation"
        if gen is None or pkt.generation > gen:
            self.generation[pkt.node] = pkt.generation
            for k in [k for k in self.last_seq if k[0] == pkt.node]:
                del self.last_seq[k]
        key = (pkt.node, pkt.link)
        last = self.last_seq.get(key)
        if last is not None and pkt.seq <= last:
            return "replay"
        self.last_gap = pkt.seq - last - 1 if last is not None else 0
        self.last_seq[key] = pkt.seq
        return None
