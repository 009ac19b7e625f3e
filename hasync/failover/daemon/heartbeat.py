"""Heartbeats out and in: the daemon's hot path (100 packets a second per link at 10 ms).

``Sender``: one packet on every link every keepalive, on a fixed rhythm. A packet is a
per-link template (prefix and suffix around the sequence number, rebuilt only when the
FSM's fields change) with the sequence number patched in and the HMAC computed from a
copy of the keyed context. It never raises (issue 12 item 10): fields that cannot be
encoded (``hasync check`` bounds them, this is belt and braces) are logged once and
counted, and the last good templates keep going out. They still show this node as
holding: a role that holds the chain is sent (and encodes) before ``owned`` grows.

``Receiver``: reads every link that has something (a non-waiting epoll of the links says
which; each datagram carries the kernel's receive time), checks each frame's MAC, and
feeds the frames to the FSM in arrival order. ONE fast path: a frame equal to the last
one accepted on its link but for its sequence number (the steady state) is not parsed,
only ``Membership.on_repeat``; anything else is parsed (``on_packet``) and becomes the
link's new reference. Frames that are not exactly one valid datagram (serial bytes,
garbage, bad MACs) go through the link's ``FrameDecoder``, which counts what is wrong.
"""

from __future__ import annotations

import operator
import select
from collections.abc import Callable
from typing import Any

from hasync.failover.membership import Action
from hasync.failover.membership_groups import AnyMembership
from hasync.failover.packets import (
    SEQ_SLICE,
    FrameDecoder,
    Mac,
    Packet,
    datagram_head,
    encoder_template,
    parse_head,
)

_first = operator.itemgetter(0)


class Sender:
    """A heartbeat on every link: every keepalive (``send(now, scheduled=True)``), or at
    once when the peer must learn a state change (``send()``)."""

    def __init__(self, links: list, key: bytes, mac: Mac, fsm: AnyMembership, keepalive: float, clock_now: Callable[[], float]):
        self.links = links
        self.key = key
        self.mac = mac
        self.fsm = fsm
        self.keepalive = keepalive
        self.now = clock_now
        self.stale = True  # the FSM may have changed what goes into our packets
        self.next_send = 0.0
        self.seq: dict[str, int] = {lk.name: 0 for lk in links}
        self._fields: dict | None = None
        self._tx: list[list] = []  # per link: [link, head prefix, head suffix, seq, (sendto, dest) or None]
        self.encode_errors = 0  # fields that could not be encoded (status: daemon.send_encode_errors)
        self.last_encode_error = ""
        self.on_encode_error: Callable[[str], None] | None = None  # told the first time (the log)

    def send(self, now: float | None = None, scheduled: bool = False) -> None:
        """Scheduled heartbeats keep a fixed rhythm (one per keepalive on average, whatever
        the wake-up latency); an extra one starts the rhythm again from now."""
        if now is None:
            now = self.now()
        if self.stale:
            self.stale = False
            fields = self.fsm.packet_fields()
            if fields != self._fields:  # the state changed: new per-link templates
                try:
                    self._templates(fields)
                except Exception as e:  # noqa: BLE001 - never out of the send path
                    self._encode_failed(fields, e)
        ctx = self.mac.ctx
        for tx in self._tx:
            lk, pre, suf, seq, direct = tx
            seq += 1
            tx[3] = seq
            head = pre + seq.to_bytes(8, "big") + suf
            m = ctx.copy()
            m.update(head)
            if direct is not None:
                try:
                    direct[0](head + m.digest(), direct[1])
                    continue
                except OSError:
                    pass
            elif lk.send(head + m.digest()):
                continue
            self.fsm.on_send_error(lk.name)
        nxt = now + self.keepalive
        if scheduled and self.next_send + self.keepalive > now:
            nxt = self.next_send + self.keepalive  # else late (a stall): no burst to catch up
        self.next_send = nxt

    def _templates(self, fields: dict) -> None:
        for tx in self._tx:  # the sequence numbers go on across template changes
            self.seq[tx[0].name] = tx[3]
        new = []
        for lk in self.links:
            pre, suf = encoder_template(Packet(link=lk.name, seq=0, **fields), self.key)
            # a UDP link with one destination is sent to directly (no method call)
            direct = (lk.sock.sendto, lk.dests[0]) if lk.kind != "serial" and len(getattr(lk, "dests", ())) == 1 else None
            new.append([lk, pre, suf, self.seq.get(lk.name, 0), direct])
        self._tx = new  # all or nothing: a field that does not encode keeps the old ones
        self._fields = fields

    def _encode_failed(self, fields: dict, e: Exception) -> None:
        self._fields = fields  # not again at every send: at the next change
        self.encode_errors += 1
        self.last_encode_error = f"{type(e).__name__}: {e}"
        if self.encode_errors == 1 and self.on_encode_error is not None:
            self.on_encode_error(f"cannot encode this node's heartbeat ({self.last_encode_error}): sending the last good "
                                 "one (this config should not have passed `hasync check`: please report it)")


class Receiver:
    """Drains the links into the FSM (see the module's docstring).

    *apply* executes the FSM's actions; *new_state* is called when a frame had to be
    parsed (the peer's state changed: waiting commands re-check, our fields may change).
    """

    def __init__(self, links: list, key: bytes, mac: Mac, fsm: AnyMembership, peer: str,
                 apply: Callable[[list[Action]], None], new_state: Callable[[], None], clock_wall: Callable[[], float]):
        self.mac = mac
        self.fsm = fsm
        self.peer = peer
        self.apply = apply
        self.new_state = new_state
        self.wall = clock_wall
        self.decoders = {lk.name: FrameDecoder(key, mac=mac) for lk in links}
        # per link: the last frame accepted from the peer, split around its sequence number
        self.last_sig: dict[str, tuple[bytes, bytes, int]] = {}
        self.n_fast = self.n_parsed = 0
        # the links are not in the main wait (unless --rx-wake): this second epoll, polled
        # without waiting, says which have datagrams when the loop wakes anyway
        self.ep = select.epoll()
        self.by_fd: dict[int, Any] = {}  # fd -> UdpLink | SerialLink
        for lk in links:
            self.ep.register(lk.fileno(), select.EPOLLIN)
            self.by_fd[lk.fileno()] = lk

    def close(self) -> None:
        self.ep.close()

    def drain(self, now: float) -> bool:
        """Read every link that has something; feed it to the FSM in arrival order.
        False when nothing was waiting."""
        poll = self.ep.poll
        ready = poll(0)
        if not ready:
            return False
        wall = self.wall()
        by_fd = self.by_fd
        # (arrival, link name, bytes, the UDP link or None): a UDP datagram is kept raw and
        # authenticated below, after the reads (the syscalls leave the caches cold: the
        # MAC checks run together); serial bytes go through their link's decoder here
        # (a chunk may hold several frames, or half of one) and arrive authenticated
        items: list[tuple[float, str, bytes, Any]] = []
        for _ in range(64):
            for fd, _ev in ready:
                lk = by_fd[fd]
                if lk.kind == "serial":
                    for t, data in lk.receive_stamped(now, wall):
                        for frame in self._decode(lk, data):
                            items.append((t, lk.name, frame, None))
                    continue
                got = lk.recv_one(now, wall)
                if got is not None:
                    items.append((got[0], lk.name, got[1], lk))
            ready = poll(0)
            if not ready:
                break
        if len(items) > 1:
            items.sort(key=_first)
        mac = self.mac
        fsm = self.fsm
        last_sig = self.last_sig
        for t, name, data, udp in items:
            if t > now:
                t = now
            if udp is None:
                head = data
            else:
                checked = datagram_head(data, mac)
                if checked is None:  # not exactly one valid frame: the decoder counts what is wrong
                    for frame in self._decode(udp, data):
                        self._parse(name, frame, t)  # an oddity (frames glued together): parsed
                    continue
                head = checked
            # the fast path: the frame equals the last one accepted on this link but for
            # its sequence number (the steady state): not parsed at all
            sig = last_sig.get(name)
            if sig is not None and len(head) == sig[2] and head.startswith(sig[0]) and head.endswith(sig[1]):
                acts = fsm.on_repeat(t, name, int.from_bytes(head[SEQ_SLICE], "big"))
                if acts is not None:
                    self.n_fast += 1
                    if acts:
                        self.apply(acts)
                    continue
            self._parse(name, head, t)
        return True

    def _parse(self, name: str, head: bytes, now: float) -> None:
        """The slow path: a new state from the peer (or a repeat the FSM wants parsed)."""
        counters = self.decoders[name].counters
        p = parse_head(head, counters)
        self.n_parsed += 1
        self.new_state()
        if p is None:
            self.fsm.on_decode_errors(name, malformed=1)
            return
        self.apply(self.fsm.on_packet(now, name, p))
        guard = self.fsm.guard
        # the frame the guard just took (its generation too: an older generation's frame
        # with the same sequence number was refused and must not become the reference)
        if p.node == self.peer and guard.last_seq.get((p.node, name)) == p.seq and guard.generation.get(p.node) == p.generation:
            self.last_sig[name] = (head[: SEQ_SLICE.start], head[SEQ_SLICE.stop :], len(head))

    def _decode(self, lk, data: bytes) -> list[bytes]:
        """Raw bytes through the link's frame decoder (counts bad MACs, garbage)."""
        dec = self.decoders[lk.name]
        c = dec.counters
        before = (c.bad_mac, c.malformed, c.garbage_bytes)
        if lk.kind != "serial":
            dec.buf.clear()  # one datagram = one frame: never glue two together
        heads = dec.feed_raw(data)
        if lk.kind != "serial":
            dec.buf.clear()
        if (c.bad_mac, c.malformed, c.garbage_bytes) != before:
            self.fsm.on_decode_errors(lk.name, c.bad_mac - before[0], c.malformed - before[1], c.garbage_bytes - before[2])
        return heads
