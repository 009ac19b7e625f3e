"""Ground truth on the VM lab's guests, read from their kernels, never from the daemons.

A sampler thread asks both nodes at once, every ``period`` seconds (1 s: each sample
costs the emulated vCPU a fork), through their console agents (one shell script of
builtins each, prep.SAMPLE_SCRIPT): DRBD's role, connection
and disk states (/proc/drbd), the LV active (device-mapper), /srv/ha mounted, the VIP on
eth0, nfsd's thread count, the role file and the daemon's pid and process state. A
piece of the chain counts as running on both nodes only when two samples in a row saw
it on each of them (the two nodes are read at slightly different moments: one sample
pair alone could be a handover caught mid-way); DRBD saying ``ro:Primary/Primary``
itself is proof at once. So a double run shorter than about two periods can be missed:
the resolution is stated in the report. A second thread asks the public network from
the client who answers ARP for the VIP (one request; two MACs answering it is proof).
"""

from __future__ import annotations

import re
import threading
import time

from hasync_lab.campaign.ns.truth import Overlap
from hasync_lab.campaign.vm.prep import PIECES, SAMPLE_SCRIPT
from hasync_lab.vm.seed import VIP

MAC = re.compile(r"\[([0-9a-fA-F:]{17})\]")


def parse_sample(text: str) -> dict:
    """SAMPLE_SCRIPT's output -> {pieces, ro, cs, ds, role, pid, pstate}."""
    out: dict = {"pieces": set(), "ro": "", "cs": "", "ds": "", "role": "", "pid": None, "pstate": ""}
    lines = text.splitlines()
    for word in (lines[0].split() if lines else []):
        key, _, val = word.partition(":")
        if key in ("ro", "cs", "ds"):
            out[key] = val
    if out["ro"].startswith("Primary"):
        out["pieces"].add("drbd")
    for ln in lines[1:]:
        ln = ln.strip()
        if ln in PIECES:
            out["pieces"].add(ln)
        elif ln.startswith("role="):
            out["role"] = ln[5:]
        elif ln.startswith("pid="):
            parts = ln[4:].split()
            out["pid"] = int(parts[0]) if parts and parts[0].isdigit() else None
            out["pstate"] = parts[1] if len(parts) > 1 else ""
    return out


def arp_macs(text: str) -> set[str]:
    """The MACs in busybox arping's replies."""
    return {m.lower() for m in MAC.findall(text)}


class Sampler:
    def __init__(self, lab, nodes: tuple[str, str], client: str, trace, period: float = 1.0):
        self.lab = lab
        self.nodes = nodes
        self.client = client
        self.trace = trace
        self.period = period
        self.fault_index = -1
        self.samples = 0
        self.blind = 0  # samples where a running node did not answer
        self.arp_samples = 0
        self.overlaps: list[Overlap] = []
        self.last: dict[str, dict] = {}
        self.macs: dict[str, str] = {}
        self._prev_on: dict[str, set] = {n: set() for n in nodes}
        self._open: dict[str, Overlap] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ reading a node
    def probe(self, node: str) -> dict:
        if not self.lab.running(node):
            return {"up": False, "pieces": set(), "role": "", "pid": None}
        r = self.lab.exec(node, ("/bin/sh", "-c", SAMPLE_SCRIPT), timeout=10)
        if r.exit_code == 125 or not r.stdout:
            return {"up": self.lab.running(node), "unknown": True, "pieces": set(), "role": "", "pid": None}
        return {"up": True, **parse_sample(r.stdout)}

    def _probe_into(self, node: str, got: dict) -> None:
        try:
            got[node] = self.probe(node)
        except Exception as e:  # noqa: BLE001 -- a VM powered off mid-request
            got[node] = {"up": self.lab.running(node), "unknown": True, "pieces": set(), "error": repr(e)}

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {n: dict(v) for n, v in self.last.items()}

    # ------------------------------------------------------------------ the threads
    def start(self) -> None:
        self.macs = {n: self.lab.exec(n, ("cat", "/sys/class/net/eth0/address")).stdout.strip().lower()
                     for n in self.nodes}
        for fn in (self._run, self._arp):
            t = threading.Thread(target=fn, daemon=True, name=f"vm-campaign-{fn.__name__}")
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            got: dict[str, dict] = {}
            th = threading.Thread(target=self._probe_into, args=(self.nodes[1], got))
            th.start()
            self._probe_into(self.nodes[0], got)
            th.join(30)
            self.observe(got, t0, time.monotonic())
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def observe(self, got: dict[str, dict], t0: float, t1: float) -> None:
        """One pair of samples taken between t0 and t1 -> the overlaps' bookkeeping."""
        with self._lock:
            self.samples += 1
            if any(got.get(n, {}).get("unknown") for n in self.nodes):
                self.blind += 1
            self.last = got
            a, b = (got.get(n, {}) for n in self.nodes)
            both_now = (a.get("pieces", set()) & b.get("pieces", set()))
            both = both_now & self._prev_on[self.nodes[0]] & self._prev_on[self.nodes[1]]
            if any(g.get("ro", "") == "Primary/Primary" for g in (a, b)):
                both = both | {"drbd"}
            for n in self.nodes:
                self._prev_on[n] = set(got.get(n, {}).get("pieces", set()))
            for what in both:
                if what not in self._open:
                    o = Overlap(what, t0, None, self.fault_index, f"{self.nodes[0]} {sorted(a.get('pieces', []))}, "
                                                                  f"{self.nodes[1]} {sorted(b.get('pieces', []))}")
                    self._open[what] = o
                    self.overlaps.append(o)
                    self.trace("both", "truth", f"{what} on both nodes ({o.detail})")
            for what in list(self._open):
                if what not in both:
                    self._open.pop(what).t1 = t0

    def _arp(self) -> None:
        while not self._stop.wait(2.0):
            try:
                macs = self.arp_once()
            except Exception:  # noqa: BLE001 -- the client busy or rebooting: no sample
                continue
            if len(macs) > 1:
                now = time.monotonic()
                who = sorted(next((n for n, m in self.macs.items() if m == mac), mac) for mac in macs)
                with self._lock:
                    self.overlaps.append(Overlap("arp", now, now, self.fault_index, f"ARP for {VIP} answered by {who}"))
                self.trace("both", "truth", f"ARP for {VIP} answered by {who}")

    def arp_once(self) -> set[str]:
        r = self.lab.exec(self.client, ("busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0", VIP), timeout=10)
        self.arp_samples += 1
        return arp_macs(r.stdout)

    def arp_answer(self) -> list[str]:
        """Which nodes answer ARP for the VIP right now (from the client)."""
        macs = self.arp_once()
        return sorted(next((n for n, m in self.macs.items() if m == mac), mac) for mac in macs)

    def overlaps_since(self, fault_index: int) -> list[Overlap]:
        with self._lock:
            return [o for o in self.overlaps if o.fault_index >= fault_index]
