"""The lab's UDP heartbeat wires as the campaign handles them: capture, impair, replay.

The kernel here has no netem, so delay, jitter (reordering), duplication and loss are
made in user space at the switch: an nft rule in the switch namespace's bridge stops the
heartbeats of one direction (src's port -> dst's port) from being forwarded, and this
process, which taps every node's switch port (AF_PACKET, filtered to UDP port 694),
forwards each of them itself -- later, twice, or not at all -- by writing the frame into
dst's port. A one-way cut is the nft rule alone. A replay writes frames captured earlier
(genuine, signed, from the same link) into the receiver's port, exactly as they were.

Only the UDP links: the serial line has its own faults (noise, cuts) in the relay.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass

from hasync.failover import packets as P
from hasync_lab.campaign.ns.netns import packet_tap, udp_payload, zero_udp_checksum

UDP_LINKS = ("heartbeat", "public")
TABLE = "hasync_campaign"
PACKET_OUTGOING = 4
HB_PORT = 694


@dataclass
class Impair:
    loss: float = 0.0  # probability a datagram is dropped
    delay: float = 0.0  # s
    jitter: float = 0.0  # s, uniform extra delay: reorders datagrams closer than it
    dup: float = 0.0  # probability a datagram arrives twice
    cut: bool = False  # drop everything (a one-way cut)


@dataclass
class Frame:
    t: float
    data: bytes
    cls: str  # leaving | standby | active | ... | unknown
    generation: int
    seq: int


class Wire:
    def __init__(self, lab, key: bytes, nodes: tuple[str, str]):
        spec = lab.spec
        self.nodes = nodes
        self.sw_ns = spec.switch_ns
        self.port = {(n, lk): spec.switch_port(n, lk) for n in nodes for lk in UDP_LINKS}
        self.mac = P.Mac(key)
        self.key = key
        self.socks: dict[int, tuple[str, str, socket.socket]] = {}
        self.out: dict[tuple[str, str], socket.socket] = {}
        self.ring: dict[tuple[str, str], deque] = {k: deque(maxlen=300) for k in self.port}
        self.notable: dict[tuple[str, str, str], deque] = {}
        self.rules: dict[tuple[str, str, str], Impair] = {}
        self.heap: list = []
        self.n = 0
        self.lock = threading.Lock()
        self.rng = random.Random(0)
        self.counts = {"captured": 0, "forwarded": 0, "dropped": 0, "duplicated": 0, "replayed": 0}
        self.stop_ev = threading.Event()
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self.nft_apply()  # also removes a table a killed run left behind
        for (node, link), port in self.port.items():
            s = packet_tap(f"/run/netns/{self.sw_ns}", port, HB_PORT)
            self.socks[s.fileno()] = (node, link, s)
            self.out[(node, link)] = s
        self.thread = threading.Thread(target=self._loop, name="campaign-wire", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop_ev.set()
        if self.thread is not None:
            self.thread.join(2)
        with self.lock:
            self.rules.clear()
        self.nft_apply(remove=True)
        for _, _, s in self.socks.values():
            s.close()
        self.socks.clear()

    # ------------------------------------------------------------------ faults
    def set_rule(self, src: str, dst: str, links, rule: Impair | None) -> None:
        with self.lock:
            for lk in UDP_LINKS if links == "all" else links:
                if lk not in UDP_LINKS:
                    continue
                if rule is None:
                    self.rules.pop((src, dst, lk), None)
                else:
                    self.rules[(src, dst, lk)] = rule
        self.nft_apply()

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.heap.clear()
        self.nft_apply()

    def replay(self, src: str, dst: str, prefer: str, k: int, eps: float = 0.01) -> list[dict]:
        """Write k captured frames of *src* into *dst*'s ports (both UDP links); what was sent."""
        sent: list[dict] = []
        for lk in UDP_LINKS:
            for f in self._pick(src, lk, prefer, k):
                try:
                    self.out[(dst, lk)].send(zero_udp_checksum(f.data))
                except OSError as e:  # the port is down (dst crashed): nothing arrives
                    sent.append({"link": lk, "error": str(e)})
                    continue
                self.counts["replayed"] += 1
                sent.append({"link": lk, "class": f.cls, "generation": f.generation, "seq": f.seq,
                             "age_s": round(time.monotonic() - f.t, 3)})
                time.sleep(eps)
        return sent

    def has(self, src: str, cls: str) -> bool:
        return any(self.notable.get((src, lk, cls)) for lk in UDP_LINKS)

    def _pick(self, src: str, lk: str, prefer: str, k: int) -> list[Frame]:
        with self.lock:
            ring = list(self.ring[(src, lk)])
            if prefer == "oldest":
                return ring[:k]
            if prefer == "any":
                return self.rng.sample(ring, min(k, len(ring)))
            kept = list(self.notable.get((src, lk, prefer), ()))  # oldest life first
            return kept[:k] if kept else ring[-k:]

    # ------------------------------------------------------------------ nft
    def nft_script(self, remove: bool = False) -> str:
        head = f"table bridge {TABLE}\ndelete table bridge {TABLE}\n"
        if remove:
            return head
        rules = "".join(
            f'    iifname "{self.port[(s, lk)]}" oifname "{self.port[(d, lk)]}" udp dport {HB_PORT} drop\n'
            for (s, d, lk) in sorted(self.rules)
        )
        return head + (f"table bridge {TABLE} {{\n  chain forward_hb {{\n"
                       f"    type filter hook forward priority 0;\n{rules}  }}\n}}\n")

    def nft_apply(self, remove: bool = False) -> None:
        with self.lock:
            script = self.nft_script(remove)
        subprocess.run(["ip", "netns", "exec", self.sw_ns, "nft", "-f", "-"], input=script, text=True,
                       capture_output=True, check=not remove, timeout=20)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        fds = list(self.socks)
        while not self.stop_ev.is_set():
            with self.lock:
                due = self.heap[0][0] if self.heap else None
            wait = 0.05 if due is None else max(0.0, min(0.05, due - time.monotonic()))
            try:
                ready, _, _ = select.select(fds, [], [], wait)
            except (OSError, ValueError):
                return
            for fd in ready:
                self._read(fd)
            self._flush()

    def _read(self, fd: int) -> None:
        node, link, s = self.socks[fd]
        for _ in range(256):
            try:
                data, addr = s.recvfrom(65535)
            except (BlockingIOError, OSError):
                return
            if addr[2] == PACKET_OUTGOING:
                continue  # sent to the node (by the bridge or by us), not by it
            now = time.monotonic()
            self._capture(node, link, data, now)
            dst = self.nodes[1] if node == self.nodes[0] else self.nodes[0]
            with self.lock:
                rule = self.rules.get((node, dst, link))
                if rule is None or rule.cut:
                    continue
                if self.rng.random() < rule.loss:
                    self.counts["dropped"] += 1
                    continue
                copies = 2 if self.rng.random() < rule.dup else 1
                for i in range(copies):
                    t = now + rule.delay + self.rng.uniform(0, rule.jitter) + i * 0.002
                    self.n += 1
                    heapq.heappush(self.heap, (t, self.n, (dst, link), data))
                if copies == 2:
                    self.counts["duplicated"] += 1

    def _flush(self) -> None:
        now = time.monotonic()
        while True:
            with self.lock:
                if not self.heap or self.heap[0][0] > now:
                    return
                _, _, port, data = heapq.heappop(self.heap)
            try:
                self.out[port].send(zero_udp_checksum(data))
                self.counts["forwarded"] += 1
            except OSError:
                pass

    def _capture(self, node: str, link: str, data: bytes, now: float) -> None:
        cls, gen, seq = "unknown", 0, 0
        payload = udp_payload(data)
        if payload is not None:
            try:
                pkts = P.decode_datagram(payload, self.key)
            except Exception:  # a format this harness does not know: still replayable
                pkts = []
            if pkts:
                p = pkts[0]
                cls = "leaving" if p.flags & P.F_LEAVING else str(p.role)
                gen, seq = int(p.generation), int(p.seq)
        f = Frame(now, data, cls, gen, seq)
        with self.lock:
            self.counts["captured"] += 1
            self.ring[(node, link)].append(f)
            # one frame per generation and class (every leaving one): old lives stay available
            kept = self.notable.setdefault((node, link, cls), deque(maxlen=4))
            if cls == "leaving" or not kept or kept[-1].generation != gen:
                kept.append(f)
