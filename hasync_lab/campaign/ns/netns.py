"""Sockets inside a lab's network namespaces, opened from the campaign's own process.

A thread enters the namespace (setns(2) changes only the calling thread's network
namespace), opens the socket and leaves; the socket stays in the namespace it was made
in. That gives the campaign raw access to the lab's wires without a helper process:
an ARP probe from a client (who answers for the VIP?) and taps on the switch ports
(wire.py: capture, impair and replay heartbeats).
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
SO_ATTACH_FILTER = 26
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def in_netns(ns_path: str, fn: Callable[[], T]) -> T:
    """fn() run in a thread that entered the network namespace *ns_path*."""
    out: dict = {}

    def run() -> None:
        try:
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns_path}: {os.strerror(err)}")
                out["v"] = fn()
            finally:
                os.close(fd)
        except BaseException as e:  # handed to the caller
            out["e"] = e

    t = threading.Thread(target=run, name="netns")
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


# Classic BPF (what `tcpdump -dd 'udp dst port 694'` compiles to, IPv4 only): the taps
# see heartbeats only, not the ssh and unison traffic on the same wires.
def _udp_dport_filter(port: int) -> bytes:
    prog = [
        (0x28, 0, 0, 12),  # ldh [12]  ethertype
        (0x15, 0, 8, 0x0800),  # IPv4?
        (0x30, 0, 0, 23),  # ldb [23]  protocol
        (0x15, 0, 6, 17),  # UDP?
        (0x28, 0, 0, 20),  # ldh [20]  fragment offset
        (0x45, 4, 0, 0x1FFF),  # a fragment: no UDP header
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)  IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]  destination port
        (0x15, 0, 1, port),
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def packet_tap(ns_path: str, ifname: str, udp_port: int | None = None) -> socket.socket:
    """A raw AF_PACKET socket on *ifname* in that namespace (non-blocking), optionally
    filtered in the kernel to UDP datagrams to *udp_port*."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        if udp_port is not None:
            code = _udp_dport_filter(udp_port)
            buf = ctypes.create_string_buffer(code)
            fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
            s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        s.bind((ifname, 0))
        s.setblocking(False)
        return s

    return in_netns(ns_path, make)


def udp_payload(frame: bytes) -> bytes | None:
    """The UDP payload of an Ethernet/IPv4/UDP frame, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    start = 14 + ihl + 8
    (total,) = struct.unpack_from("!H", frame, 16)
    return bytes(frame[start : 14 + total])


def zero_udp_checksum(frame: bytes) -> bytes:
    """The same frame with its UDP checksum 0 ("none", valid for IPv4). A frame tapped
    off a veth may carry a checksum left to offload (not filled in): re-sent as it is,
    the receiver would drop it."""
    b = bytearray(frame)
    ihl = (b[14] & 0x0F) * 4
    b[14 + ihl + 6 : 14 + ihl + 8] = b"\x00\x00"
    return bytes(b)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class ArpProbe:
    """`arping` from a client's namespace: which MACs answer for an address?"""

    def __init__(self, ns_path: str, ifname: str, src_ip: str):
        def make() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            s.bind((ifname, ETH_P_ARP))
            s.setblocking(False)
            return s

        self.sock = in_netns(ns_path, make)
        self.ifname = ifname
        self.mac = self.sock.getsockname()[4]
        self.src_ip = socket.inet_aton(src_ip)

    def who_has(self, ip: str, wait: float = 0.12) -> set[str]:
        target = socket.inet_aton(ip)
        self._drain()
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.mac, self.src_ip, b"\0" * 6, target)
        self.sock.send(b"\xff" * 6 + self.mac + b"\x08\x06" + arp)
        macs: set[str] = set()
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                break
            try:
                frame = self.sock.recv(2048)
            except BlockingIOError:
                continue
            if len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == target:
                macs.add(_mac(frame[22:28]))
        return macs

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(2048)
            except BlockingIOError:
                return

    def close(self) -> None:
        self.sock.close()


def link_mac(ns_path: str, ifname: str) -> str:
    """The MAC address of *ifname* in that namespace."""

    def get() -> str:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
            s.bind((ifname, 0))
            return _mac(s.getsockname()[4])

    return in_netns(ns_path, get)
