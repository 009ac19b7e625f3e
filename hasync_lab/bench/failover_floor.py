"""The idle-CPU floor: what the bare heartbeat I/O costs on this machine.

A failover daemon at a fast setting must wake every keepalive, send one authenticated
datagram per link and read the peer's. This module runs nothing but that loop (one timer
wait, HMAC-SHA256 and a send per link, the peer's datagrams read and checked), so the
bench can put the hasync daemon's idle CPU next to the least any implementation of the
same heartbeat could cost here:

- ``python``: the loop in plain CPython (this file, run as a module);
- ``c``: the same loop in C against libcrypto, built with ``cc`` when a compiler and the
  OpenSSL headers are present (skipped otherwise).

Both wake on the timer only, like the daemon (received datagrams wait for the next
wake-up).
"""

from __future__ import annotations

import argparse
import hmac
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PORT = 17690
KEY = b"hasync-bench-floor-key-000000000"

C_SOURCE = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* floor PERIOD LOCAL1 PEER1 [LOCAL2 PEER2 ...] */
int main(int argc, char **argv) {
    double period = atof(argv[1]);
    int n = (argc - 2) / 2, s[8];
    static const unsigned char key[] = "hasync-bench-floor-key-000000000";
    for (int i = 0; i < n && i < 8; i++) {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons(%PORT% + i);
        s[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        inet_pton(AF_INET, argv[2 + 2 * i], &a.sin_addr);
        if (bind(s[i], (void *)&a, sizeof a)) return 2;
        inet_pton(AF_INET, argv[3 + 2 * i], &a.sin_addr);
        if (connect(s[i], (void *)&a, sizeof a)) return 2;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev;
    unsigned char pkt[128], buf[2048], md[32];
    unsigned int ml;
    uint64_t seq = 0;
    memset(pkt, 'H', sizeof pkt);
    double next = mono();
    for (;;) {
        double d = next - mono();
        epoll_wait(ep, &ev, 1, d > 0 ? (int)(d * 1000 + 0.999) : 0);
        double now = mono();
        if (now >= next) {
            seq++;
            for (int k = 0; k < 8; k++) pkt[60 + k] = (seq >> (56 - 8 * k)) & 255;
            for (int i = 0; i < n; i++) {
                HMAC(EVP_sha256(), key, 32, pkt, 68, pkt + 68, &ml);
                send(s[i], pkt, 100, 0);
            }
            next += period;
        }
        for (int i = 0; i < n; i++)
            for (;;) {
                ssize_t r = recv(s[i], buf, sizeof buf, 0);
                if (r < 32) break;
                HMAC(EVP_sha256(), key, 32, buf, r - 32, md, &ml);
                if (memcmp(md, buf + r - 32, 32)) break;
            }
    }
}
"""


def c_source() -> str:
    return C_SOURCE.replace("%PORT%", str(PORT))


def build_c(workdir: Path) -> tuple[Path | None, str]:
    """Compile the C floor loop; (binary, "") or (None, why it was skipped)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler"
    workdir.mkdir(parents=True, exist_ok=True)
    src, out = workdir / "floor.c", workdir / "floor"
    src.write_text(c_source())
    r = subprocess.run([cc, "-O2", "-o", str(out), str(src), "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"cc failed (libssl-dev missing?): {r.stderr.strip()[-300:]}"
    return out, ""


def argv_python(period: float, pairs: list[tuple[str, str]]) -> list[str]:
    out = [sys.executable, "-m", "hasync_lab.bench.failover_floor", f"{period}"]
    for local, peer in pairs:
        out += [local, peer]
    return out


def argv_c(binary: Path, period: float, pairs: list[tuple[str, str]]) -> list[str]:
    out = [str(binary), f"{period}"]
    for local, peer in pairs:
        out += [local, peer]
    return out


def loop(period: float, pairs: list[tuple[str, str]]) -> None:
    """The Python floor loop (runs until killed)."""
    ctx = hmac.new(KEY, digestmod="sha256")
    socks = []
    for i, (local, peer) in enumerate(pairs):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        s.bind((local, PORT + i))
        s.connect((peer, PORT + i))
        socks.append(s)
    ep = select.epoll()  # nothing registered: a timer wait, as in the daemon
    mono = time.monotonic
    pre = b"H" * 60
    seq = 0
    nxt = mono()
    while True:
        ep.poll(max(0.0, nxt - mono()))
        if mono() >= nxt:
            seq += 1
            head = pre + seq.to_bytes(8, "big")
            for s in socks:
                m = ctx.copy()
                m.update(head)
                s.send(head + m.digest())
            nxt += period
        for s in socks:
            try:
                while True:
                    d = s.recv(2048)
                    m = ctx.copy()
                    m.update(d[:-32])
                    hmac.compare_digest(m.digest(), d[-32:])
            except OSError:  # empty (or the peer not up yet: connection refused)
                pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hasync_lab.bench.failover_floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("period", type=float, help="seconds between heartbeats")
    p.add_argument("addrs", nargs="+", help="LOCAL PEER pairs, one per link")
    a = p.parse_args(argv)
    if len(a.addrs) % 2:
        p.error("addresses come in LOCAL PEER pairs")
    loop(a.period, list(zip(a.addrs[::2], a.addrs[1::2], strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
