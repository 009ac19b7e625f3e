"""The nodes' units as systemd would run them: hasync-failover and hasync-watch.

Restart=on-failure after RestartSec (1 s and 2 s, as the shipped units say), KillMode
process (a SIGKILLed daemon's agents keep running: the campaign kills only the pid).
A node that was fenced (crashed by its peer's fence command, not by a fault that holds
its power off) boots again after ``Timing.boot_s``; every boot runs the campaign's boot
steps, then starts the units. Each unit's output goes to one log per node and unit on
the host, with a line at every start. Exits the campaign did not cause (a unit that dies
by itself) are recorded: the ``daemon-died`` audit reads them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hasync_lab.campaign.ns.prep import CLOCK_FILE, SHIM_DIR, TIMING, Timing, boot_script

UNITS = {"failover": (("hasync", "failover", "run"), TIMING.restart_s), "watch": (("hasync", "watch", "-v"), 2.0)}


@dataclass
class Exit:
    t: float
    node: str
    unit: str
    pid: int
    code: int | None
    expected: bool
    why: str


class Services:
    def __init__(self, lab, logdir: Path, trace, lab_lock: threading.RLock, t: Timing = TIMING):
        self.lab = lab
        self.logdir = logdir
        self.trace = trace  # trace(node, kind, msg)
        self.lock = lab_lock
        self.t = t
        self.nodes = tuple(lab.nodes)
        self.procs: dict[tuple[str, str], subprocess.Popen] = {}
        # start() (an injector's thread) and tick() (the supervisor's) both change procs:
        # the tick drops or restarts an exited process only if it still is the unit's
        self.procs_lock = threading.Lock()
        self.wanted: dict[tuple[str, str], bool] = {(n, u): True for n in self.nodes for u in UNITS}
        self.restart_at: dict[tuple[str, str], float] = {}
        self.expect_exit: set[int] = set()  # pids the campaign killed or stopped
        self.held_down: set[str] = set()  # powered off by a fault: stays off until its heal
        self.down_since: dict[str, float] = {}
        self.exits: list[Exit] = []
        self.starts: dict[tuple[str, str], int] = {}
        self.pre_start = None  # hook(node) run after the boot steps, before the units (boot-enabled)
        self.frozen: set[int] = set()  # pids stopped by SIGSTOP (a restarted unit is a new pid)
        self.exit_seen: dict[int, float] = {}
        self.config: dict[str, str] = {}  # node -> the cluster.toml it boots with
        self.booted: dict[str, str | None] = {}  # node -> the lab's boot id when it last booted here

    # ------------------------------------------------------------------ units
    def log_path(self, node: str, unit: str) -> Path:
        return self.logdir / f"{node}-{unit}.log"

    def start(self, node: str, unit: str) -> int:
        argv, _ = UNITS[unit]
        path = self.log_path(node, unit)
        env = {"HASYNC_CAMPAIGN_CLOCK": CLOCK_FILE, "PYTHONPATH": SHIM_DIR}
        with self.lock:
            if self.pid(node, unit) or self.crashed(node):  # systemd starts a unit once, and not on a dead node
                return self.pid(node, unit)
            with open(path, "a") as f:
                f.write(f"==== campaign: start {unit} on {node} at {time.strftime('%H:%M:%S')} ====\n")
            p = self.lab.spawn(node, list(argv), log=path, env=env)
            with self.procs_lock:
                self.procs[(node, unit)] = p
            if p.poll() is not None:  # nsenter could not enter the node (it is going down): never started
                self.expect_exit.add(p.pid)
        self.wanted[(node, unit)] = True
        self.restart_at.pop((node, unit), None)
        self.starts[(node, unit)] = self.starts.get((node, unit), 0) + 1
        self.trace(node, "unit", f"{unit} started (pid {p.pid})")
        return p.pid

    def pid(self, node: str, unit: str = "failover") -> int:
        p = self.procs.get((node, unit))
        return p.pid if p is not None and p.poll() is None else 0

    def alive(self, node: str, unit: str = "failover") -> bool:
        pid = self.pid(node, unit)
        return pid > 0 and pid not in self.frozen

    def signal(self, node: str, unit: str, sig: int, expected: bool = True) -> int:
        pid = self.pid(node, unit)
        if pid:
            if expected and sig in (signal.SIGKILL, signal.SIGTERM):
                self.expect_exit.add(pid)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return 0
            if sig == signal.SIGSTOP:
                self.frozen.add(pid)
            elif sig == signal.SIGCONT:
                self.frozen.discard(pid)
        return pid

    def stop(self, node: str, unit: str, wait: float = 20.0) -> int | None:
        """systemctl stop: SIGTERM, wait; not restarted until started again."""
        self.wanted[(node, unit)] = False
        p = self.procs.get((node, unit))
        if p is None or p.poll() is not None:
            return None
        self.signal(node, unit, signal.SIGCONT)
        self.signal(node, unit, signal.SIGTERM)
        try:
            return p.wait(wait)
        except subprocess.TimeoutExpired:  # TimeoutStopSec: then SIGKILL
            self.signal(node, unit, signal.SIGKILL)
            return p.wait(5)

    def thaw_all(self) -> None:
        for pid in list(self.frozen):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen.clear()

    # ------------------------------------------------------------------ boot
    def boot(self, node: str) -> None:
        """The node just came up: boot steps, then its units (in that order, as systemd
        would start what is enabled; boot-enabled pieces of the chain come in between)."""
        with self.lock:
            self.booted[node] = self.lab.boot_id(node)
            r = self.lab.exec(node, ["/bin/sh", "-c", boot_script()])
            if r.ok and node in self.config:  # a lab node's boot lays the lab's own cluster.toml again
                # (atomic: a unit reading it meanwhile never sees it half-written)
                r = self.lab.exec(node, ["sh", "-c", "cat > /etc/hasync/.cluster.toml.new && mv /etc/hasync/.cluster.toml.new /etc/hasync/cluster.toml"],
                                  input=self.config[node])
            if not r.ok:
                end = time.monotonic() + 3  # a crash kills first and says so after
                while time.monotonic() < end and not self.crashed(node):
                    time.sleep(0.05)
                if self.crashed(node):  # fenced while it booted: it boots again later
                    self.trace(node, "power", "went down again while booting")
                    return
                raise RuntimeError(f"{node}: the campaign's boot steps failed (exit {r.exit_code}): {r.stderr.strip()[-300:]}")
        self.down_since.pop(node, None)
        for unit in UNITS:
            self.restart_at.pop((node, unit), None)  # what died before the boot is the boot's to start
        if self.pre_start is not None:
            self.pre_start(node)
        for unit in UNITS:
            if self.wanted[(node, unit)]:
                self.start(node, unit)

    def power_on(self, node: str) -> None:
        """Power back on (its cables stay as they are), then boot."""
        with self.lock:
            if self.lab.status_of(node) != "crashed":
                return
            self.lab.power_on(node)
            # this boot is ours (the boot below runs its steps): not "booted by the lab" to
            # the supervisor's tick, which booted it a second time meanwhile (seed 96637587)
            self.booted[node] = self.lab.boot_id(node)
        self.held_down.discard(node)
        self.trace(node, "power", "powered on")
        self.boot(node)

    def power_off(self, node: str) -> None:
        self.held_down.add(node)  # first: the supervisor must not restart what this kills
        with self.lock:
            for unit in UNITS:
                pid = self.pid(node, unit)
                if pid:
                    self.expect_exit.add(pid)
            self.held_down.add(node)
            self.lab.crash(node)
        self.trace(node, "power", "power lost")

    def crashed(self, node: str) -> bool:
        return self.lab.status_of(node) == "crashed"

    # ------------------------------------------------------------------ supervision
    def tick(self) -> None:
        """Called every few tens of ms: restart what died, reboot what was fenced."""
        now = time.monotonic()
        for (node, unit), p in list(self.procs.items()):
            code = p.poll()
            if code is None or (node, unit) in self.restart_at:
                continue
            crashed = self.crashed(node) or node in self.held_down
            if code == -9 and not crashed and p.pid not in self.expect_exit:
                # a crash (power loss, a fence) kills first and writes "crashed" after:
                # give it a moment to say so
                first = self.exit_seen.setdefault(p.pid, now)
                if now - first < 1.0:
                    continue
            self.exit_seen.pop(p.pid, None)
            # SIGKILL is never a daemon's own doing (a crash, a fence, a timeout, the
            # campaign; the OOM killer is the one case this hides): a death by itself is an
            # exit status or another signal (a traceback's exit 1, SIGSEGV, SIGABRT)
            expected = p.pid in self.expect_exit or crashed or code == -9
            why = ("node down" if crashed else "campaign" if p.pid in self.expect_exit
                   else "SIGKILL from outside" if code == -9 else "by itself")
            if not any(e.pid == p.pid for e in self.exits[-8:]):
                self.exits.append(Exit(now, node, unit, p.pid, code, expected, why))
                self.trace(node, "unit", f"{unit} (pid {p.pid}) exited {code} ({why})")
            self.expect_exit.discard(p.pid)
            self.frozen.discard(p.pid)
            with self.procs_lock:
                if self.procs.get((node, unit)) is not p:
                    # started again meanwhile (a graceful restart's start() once its stop
                    # returned): the new process is the unit's; dropping it lost a running
                    # daemon from view (seed 94661234, fault 56)
                    continue
                if crashed:
                    del self.procs[(node, unit)]
                elif self.wanted[(node, unit)] and code != 0:
                    self.restart_at[(node, unit)] = now + UNITS[unit][1]
                else:
                    del self.procs[(node, unit)]
        for key, due in list(self.restart_at.items()):
            if now >= due:
                node, unit = key
                del self.restart_at[key]
                if not self.crashed(node) and self.wanted[key]:
                    self.trace(node, "unit", f"systemd: restarting {unit}")
                    self.start(node, unit)
        for node in self.nodes:
            if node in self.held_down or not self.crashed(node):
                self.down_since.pop(node, None)
                with self.lock:  # (power_on records its own boot under the lock)
                    boot = self.lab.boot_id(node)
                    lab_boot = (node not in self.held_down and boot is not None and self.booted.get(node) not in (None, boot)
                                and self.lab.status_of(node) == "up")
                    if lab_boot:
                        self.booted[node] = boot
                if lab_boot:
                    self.trace(node, "power", "booted by the lab (a heal): boot steps and units")
                    self.boot(node)
                continue
            since = self.down_since.setdefault(node, now)
            if now - since >= self.t.boot_s:
                self.trace(node, "power", "fenced: boots again")
                self.power_on(node)

    def unexpected_exits(self, since: float) -> list[Exit]:
        return [e for e in self.exits if not e.expected and e.t >= since]

    def stop_all(self) -> None:
        for node in self.nodes:
            for unit in UNITS:
                try:
                    self.stop(node, unit, wait=10)
                except Exception:
                    pass
