"""The heartbeat links of the simulated cluster: one in-memory channel per link and
direction, with the faults a real link has (cut, delay, jitter that reorders,
duplication, loss), and a capture of what went over the wire for replay attacks.

A heartbeat travels as ``[(link, seq), ...], fields, sig``: ``fields`` is the sender's
``Membership.packet_fields()`` (shared by every link of one send), ``sig`` everything but
the sequence number and link, as the daemon's repeat fast path compares it. The
``Packet`` object is built only when the receiver needs it (``on_packet``), which keeps
the steady state (``on_repeat``) cheap. HMAC bytes are not simulated: the receiver's MAC
check would reject forged packets, so only captured genuine ones are replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CAPTURE_PER_SENDER = 48  # distinct states (sends) kept per sender for replay


@dataclass
class Channel:
    """One direction of one link: src -> dst."""

    cut: bool = False
    delay: float = 0.0  # added to the link latency
    jitter: float = 0.0  # uniform extra delay per packet: reorders
    dup: float = 0.0  # probability a packet arrives twice
    loss: float = 0.0  # probability a packet is lost

    @property
    def clean(self) -> bool:
        return not (self.cut or self.delay or self.jitter or self.dup or self.loss)

    def reset(self) -> None:
        self.cut, self.delay, self.jitter, self.dup, self.loss = False, 0.0, 0.0, 0.0, 0.0


@dataclass
class Capture:
    """What an eavesdropper on the links keeps: each distinct state a sender sent (one
    send of it: the packet of every link), oldest first."""

    items: list = field(default_factory=list)  # (((link, seq), ...), fields, sig)
    last: tuple | None = None

    def packets(self) -> list:
        """Every captured packet as (link, seq, fields, sig)."""
        return [(lk, seq, f, sig) for pairs, f, sig in self.items for lk, seq in pairs]


class Network:
    def __init__(self, nodes: tuple[str, ...], links: tuple[str, ...], latency: float, rng: random.Random):
        self.links = links
        self.latency = latency
        self.rng = rng
        self.channels = {(src, dst, link): Channel() for src in nodes for dst in nodes if src != dst for link in links}
        self.capture = {n: Capture() for n in nodes}
        self.degraded: set = set()  # keys of channels that are not clean (fast path otherwise)

    def channel(self, src: str, dst: str, link: str) -> Channel:
        return self.channels[(src, dst, link)]

    def touch(self, src: str, dst: str, link: str) -> None:
        """A channel's settings changed: keep the set of degraded channels right."""
        key = (src, dst, link)
        if self.channels[key].clean:
            self.degraded.discard(key)
        else:
            self.degraded.add(key)

    def heal(self) -> None:
        for ch in self.channels.values():
            ch.reset()
        self.degraded.clear()

    def all_cut(self, src: str, dst: str) -> bool:
        return all(self.channels[(src, dst, lk)].cut for lk in self.links)

    def transmit(self, src: str, dst: str, now: float, pairs: list, fields: dict, sig: tuple) -> dict:
        """One heartbeat on every link (pairs: [(link, seq)]): {arrival time: [(link, seq)]}."""
        cap = self.capture[src]
        if cap.last is not sig:
            cap.last = sig
            cap.items.append((tuple(pairs), fields, sig))
            if len(cap.items) > CAPTURE_PER_SENDER:
                del cap.items[0]
        base = now + self.latency
        degraded = self.degraded
        if not degraded:
            return {base: pairs}
        out: dict = {}
        rng = self.rng
        for pair in pairs:
            key = (src, dst, pair[0])
            if key not in degraded:
                out.setdefault(base, []).append(pair)
                continue
            ch = self.channels[key]
            if ch.cut or (ch.loss and rng.random() < ch.loss):
                continue
            t = base + ch.delay + (rng.uniform(0.0, ch.jitter) if ch.jitter else 0.0)
            out.setdefault(t, []).append(pair)
            if ch.dup and rng.random() < ch.dup:
                t2 = t + (rng.uniform(0.0, ch.jitter) if ch.jitter else self.latency)
                out.setdefault(t2, []).append(pair)
        return out
