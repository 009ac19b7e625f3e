"""The failover benchmark's listener and client probe (standard library only).

Run as a script with the system python inside a lab node, so it starts fast and does
not depend on the venv:

    python3 probe.py serve --port 7070 --name node1
        accept TCP connections on every address (the VIP included, whenever this
        node holds it) and answer with the node's name

    python3 probe.py probe --vip 10.200.0.100 --port 7070
        connect to VIP:port in a tight loop (a fresh socket every attempt, 20 ms
        connect timeout) and print one line whenever the answering node changes:
        ``ANSWER <CLOCK_MONOTONIC seconds> <name>``; ``MISS <t>`` once when answers
        stop. CLOCK_MONOTONIC is shared by all namespaces, so the bench compares these
        times with the moment it crashed the node.

    python3 probe.py stalls [--tick 0.005] [--over 0.05]
        a scheduling-stall meter for the soak (run under SCHED_FIFO): on SIGTERM prints
        ``STALLS <oversleeps longer than --over> <longest oversleep in s>``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time


def serve(port: int, name: str) -> int:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # IP_FREEBIND: bind even before addresses exist; we bind 0.0.0.0 anyway.
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    reply = (name + "\n").encode()
    print(f"LISTENING {port}", flush=True)
    while True:
        try:
            conn, _ = srv.accept()
        except InterruptedError:
            continue
        try:
            conn.sendall(reply)
        except OSError:
            pass
        finally:
            conn.close()


def ask(vip: str, port: int, timeout: float) -> str | None:
    """One attempt: the name the VIP answers with, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((vip, port))
        data = b""
        while not data.endswith(b"\n") and len(data) < 64:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        name = data.decode(errors="replace").strip()
        return name or None
    except OSError:
        return None
    finally:
        s.close()


def probe(vip: str, port: int, timeout: float, interval: float, max_s: float) -> int:
    last: str | None = "?"
    deadline = time.monotonic() + max_s if max_s > 0 else None
    while deadline is None or time.monotonic() < deadline:
        name = ask(vip, port, timeout)
        now = time.monotonic()
        if name != last:
            if name is None:
                print(f"MISS {now:.6f}", flush=True)
            else:
                print(f"ANSWER {now:.6f} {name}", flush=True)
            last = name
        if interval > 0:
            time.sleep(interval)
    return 0


def stalls(tick: float, report_over: float) -> int:
    """Sleep *tick* in a loop (run it under SCHED_FIFO) and count oversleeps: on SIGTERM
    print ``STALLS <count over report_over> <max oversleep s>`` -- how long the machine
    itself stopped running a high-priority process (VM steal, RT throttling)."""
    worst = 0.0
    count = 0

    def done(*_):
        print(f"STALLS {count} {worst:.4f}", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, done)
    last = time.monotonic()
    while True:
        time.sleep(tick)
        now = time.monotonic()
        late = now - last - tick
        if late > worst:
            worst = late
        if late > report_over:
            count += 1
        last = now


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="probe.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    c = sub.add_parser("probe")
    c.add_argument("--vip", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--timeout", type=float, default=0.02)
    c.add_argument("--interval", type=float, default=0.002)
    c.add_argument("--max-s", type=float, default=0.0)
    st = sub.add_parser("stalls")
    st.add_argument("--tick", type=float, default=0.005)
    st.add_argument("--over", type=float, default=0.05)
    a = p.parse_args(argv)
    if a.cmd == "stalls":
        return stalls(a.tick, a.over)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.cmd == "serve":
        return serve(a.port, a.name)
    return probe(a.vip, a.port, a.timeout, a.interval, a.max_s)


if __name__ == "__main__":
    sys.exit(main())
