"""The failover bench on the namespace lab: VIPs and addresses, the probe, packet loss,
busy CPUs, the stall meter and the /proc figures (CPU ticks, RSS) the Bench reads.

Used by failover_trials.Bench; no figures are computed here (failover_settings does).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from pathlib import Path

from hasync_lab.bench import failover_peers as bp
from hasync_lab.bench import failover_settings as bs

PROBE = str(Path(__file__).with_name("probe.py"))  # run by path, with the nodes' python3


PORT = 7070


LOSS_TABLE = "hasync_bench"


def vip_on(lab, node: str, vip: str) -> bool:
    r = subprocess.run(
        ["ip", "-n", lab.netns(node), "-o", "-4", "addr", "show"],
        capture_output=True, text=True,
    )
    return f" {vip}/" in r.stdout


def wait_for(pred, timeout: float, interval: float = 0.05, alive=()) -> bool:
    """Poll *pred* until true or *timeout*; give up early when a daemon in *alive* exited."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline or any(not i.alive() for i in alive):
            return False
        time.sleep(interval)


def flush_neighbours(lab) -> None:
    for n in tuple(lab.nodes) + tuple(lab.clients):
        subprocess.run(["ip", "-n", lab.netns(n), "neigh", "flush", "all"], capture_output=True)


def drop_vips(lab, vips) -> None:
    """Remove leftover bench VIPs from the nodes (a killed daemon leaves them)."""
    for n in lab.nodes:
        for v in vips:
            subprocess.run(
                ["ip", "-n", lab.netns(n), "addr", "del", f"{v}/{lab_prefix(lab)}", "dev", lab.public_if],
                capture_output=True,
            )


def lab_prefix(lab) -> int:
    return int(str(lab.vip_cidr).split("/")[1])


def net_for(lab, slot: int, vip: str) -> bp.Net:
    a, b = lab.nodes[0], lab.nodes[1]
    return bp.Net(
        nodes=(a, b),
        public_if=lab.public_if,
        heartbeat_if=lab.heartbeat_if,
        public={n: lab.public_addr(n) for n in (a, b)},
        heartbeat={n: lab.heartbeat_addr(n) for n in (a, b)},
        vip=vip,
        prefix=lab_prefix(lab),
        slot=slot,
    )


def soak_vip(lab, slot: int) -> str:
    base, last = lab.vip.rsplit(".", 1)
    return f"{base}.{int(last) + 1 + slot}"


def cpu_ticks(pids) -> int:
    """utime + stime of *pids* in clock ticks. The kernel scales the pair to the process's
    exact run time (sum_exec_runtime, every thread, dead ones included): checked against
    the threads' schedstat on the floor loop, 1.46/1.50, 1.23/1.25 and 1.95/1.95 %."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                total += bs.parse_stat_ticks(f.read())
        except OSError:
            pass
    return total


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return bs.parse_rss_kb(f.read())
    except (OSError, ValueError):
        return 0


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60]


def kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, 9)
        except (ProcessLookupError, PermissionError):
            p.kill()
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def wait_answer(events: queue.Queue, node: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            ev = events.get(timeout=left)
        except queue.Empty:
            return None
        if len(ev) == 3 and ev[0] == "ANSWER" and ev[2] == node:
            return float(ev[1])


class loss:
    """1 % (or *p*) random drop on one interface of a node, both directions (nft)."""

    def __init__(self, lab, node: str, iface: str, p: float):
        self.ns, self.iface, self.p = lab.netns(node), iface, p

    def __enter__(self):
        rules = bs.loss_rules(LOSS_TABLE, self.iface, self.p)
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "delete", "table", "inet", LOSS_TABLE], capture_output=True)


class stall_meter:
    """The stall probe (probe.py stalls) under SCHED_FIFO 50 on the host."""

    def __enter__(self):
        self.p = subprocess.Popen(
            ["chrt", "-f", "50", "python3", PROBE, "stalls"], stdout=subprocess.PIPE, text=True
        )
        return self

    def read(self) -> tuple[int | None, float | None]:
        if self.p.poll() is not None:
            return None, None
        self.p.terminate()
        try:
            out, _ = self.p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None, None
        parts = out.split()
        if len(parts) == 3 and parts[0] == "STALLS":
            return int(parts[1]), float(parts[2])
        return None, None

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class busy_cpus:
    """*n* processes spinning on the CPU for the duration of the block."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()
