"""Heartbeat media: UDP unicast/multicast/broadcast bound to an interface, and a serial tty.

Each link is a non-blocking file descriptor for one ``selectors`` loop: ``send(frame)``
writes one frame (UDP: one datagram per destination; serial: bytes, skipped when the
tty's output queue still holds a previous frame, so a slow line never builds a backlog
of stale heartbeats) and ``receive()`` returns the raw byte chunks read.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios
from dataclasses import dataclass

from hasync import model
from hasync.failover.errors import StartupError

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # kernel receive time (CLOCK_REALTIME) per datagram
_TS = struct.Struct("qq")
SIOCGIFBRDADDR = 0x8919
SIOCGIFADDR = 0x8915
TIOCOUTQ = getattr(termios, "TIOCOUTQ", 0x5411)

BAUDS = {
    1200: termios.B1200, 2400: termios.B2400, 4800: termios.B4800, 9600: termios.B9600,
    19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600, 115200: termios.B115200,
    230400: termios.B230400,
}


class LinkError(StartupError):
    pass


def _ifaddr(sock: socket.socket, iface: str, req: int) -> str:
    data = fcntl.ioctl(sock.fileno(), req, struct.pack("256s", iface.encode()[:15]))
    return socket.inet_ntoa(data[20:24])


@dataclass
class UdpLink:
    name: str
    kind: str
    sock: socket.socket
    dests: list[tuple[str, int]]

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes) -> bool:
        ok = True
        for d in self.dests:
            try:
                self.sock.sendto(frame, d)
            except OSError:
                ok = False
        return ok

    def receive(self) -> list[bytes]:
        return [d for _, d in self.receive_stamped(0.0, 0.0)]

    def receive_stamped(self, mono_now: float, real_now: float) -> list[tuple[float, bytes]]:
        """Datagrams waiting in the socket with their arrival time on the monotonic clock
        (from the kernel's receive timestamp), so a daemon that reads its sockets only
        when it wakes anyway still knows when each heartbeat arrived."""
        out = []
        for _ in range(256):  # bounded: a flood cannot keep the caller here
            got = self.recv_one(mono_now, real_now)
            if got is None:
                break
            out.append(got)
        return out

    def recv_one(self, mono_now: float, real_now: float) -> tuple[float, bytes] | None:
        """One datagram with its arrival time (see receive_stamped), or None when the
        socket is empty. The daemon calls it only for sockets an epoll said are readable,
        so the steady state never pays for an EAGAIN exception."""
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(4096, 64)
        except OSError:
            return None
        t = mono_now
        if anc:
            level, kind, cdata = anc[0]
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= _TS.size:
                sec, nsec = _TS.unpack_from(cdata)
                age = real_now - (sec + nsec * 1e-9)
                if 0.0 <= age < 60.0:
                    t = mono_now - age
        return t, data

    def close(self) -> None:
        self.sock.close()


def open_udp(link: model.Link, local: str) -> UdpLink:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_IP, socket.IP_TOS, 0xB8)  # EF: ahead of bulk traffic in qdiscs
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if link.interface:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, link.interface.encode() + b"\0")
            except OSError as e:
                raise LinkError(f"link {link.name}: cannot bind to interface {link.interface}: {e.strerror}") from None
        if link.kind == "udp-unicast":
            s.bind(("", link.port))
            dests = [(addr.split("/")[0], link.port) for node, addr in sorted(link.addresses.items()) if node != local]
            if not dests:
                raise LinkError(f"link {link.name}: no peer address (addresses = {{ node = \"ip\" }})")
        elif link.kind == "udp-multicast":
            s.bind((link.group, link.port))
            ifaddr = _ifaddr(s, link.interface, SIOCGIFADDR) if link.interface else "0.0.0.0"
            ifindex = socket.if_nametoindex(link.interface) if link.interface else 0
            mreqn = struct.pack("4s4si", socket.inet_aton(link.group), socket.inet_aton(ifaddr), ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, link.ttl)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            dests = [(link.group, link.port)]
        elif link.kind == "udp-broadcast":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.bind(("", link.port))
            try:
                bcast = _ifaddr(s, link.interface, SIOCGIFBRDADDR) if link.interface else "255.255.255.255"
            except OSError:
                bcast = "255.255.255.255"
            if bcast == "0.0.0.0":
                bcast = "255.255.255.255"
            dests = [(bcast, link.port)]
        else:
            raise LinkError(f"link {link.name}: not a UDP kind: {link.kind}")
    except OSError as e:
        s.close()
        raise LinkError(f"link {link.name} ({link.kind} on {link.interface or 'any'} port {link.port}): {e.strerror or e}") from None
    except LinkError:
        s.close()
        raise
    return UdpLink(link.name, link.kind, s, dests)


@dataclass
class SerialLink:
    name: str
    fd: int
    device: str
    max_queue: int = 64  # bytes still waiting in the tty: skip this heartbeat

    kind: str = "serial"

    def fileno(self) -> int:
        return self.fd

    def send(self, frame: bytes) -> bool:
        try:
            q = struct.unpack("i", fcntl.ioctl(self.fd, TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            q = 0
        if q > self.max_queue:
            return True  # the line is still busy with the previous heartbeat: skip, not an error
        try:
            os.write(self.fd, frame)
            return True
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno in (errno.EIO, errno.ENXIO):
                return False  # pty peer gone
            return False

    def receive_stamped(self, mono_now: float, real_now: float) -> list[tuple[float, bytes]]:
        """A tty has no per-byte timestamps: what waits arrived at the latest now."""
        return [(mono_now, d) for d in self.receive()]

    def receive(self) -> list[bytes]:
        out = []
        for _ in range(64):
            try:
                data = os.read(self.fd, 4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not data:
                break
            out.append(data)
        return out

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def open_serial(link: model.Link) -> SerialLink:
    try:
        fd = os.open(link.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise LinkError(f"link {link.name}: cannot open {link.device}: {e.strerror}") from None
    try:
        attrs = termios.tcgetattr(fd)
        # cfmakeraw
        attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        attrs[2] &= ~(termios.CSIZE | termios.PARENB | termios.CRTSCTS)
        attrs[2] |= termios.CS8 | termios.CREAD | termios.CLOCAL
        speed = BAUDS.get(link.baud)
        if speed is None:
            raise LinkError(f"link {link.name}: unsupported baud {link.baud}; one of {sorted(BAUDS)}")
        attrs[4] = attrs[5] = speed
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        termios.tcflush(fd, termios.TCIOFLUSH)
    except termios.error as e:
        os.close(fd)
        raise LinkError(f"link {link.name}: {link.device} is not a tty: {e}") from None
    except LinkError:
        os.close(fd)
        raise
    return SerialLink(link.name, fd, link.device)


def open_link(link: model.Link, local: str):
    if link.kind == "serial":
        return open_serial(link)
    return open_udp(link, local)


def serial_frame_time(baud: int, frame_len: int) -> float:
    """Seconds one frame occupies the line (10 bits per byte: start, 8 data, stop)."""
    return frame_len * 10 / baud
