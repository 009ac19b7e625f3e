"""A fault's steps on the VM lab (the ns tier's step language, hasync_lab/campaign/ns/
inject.py, on qemu guests), and the heal.

Power is qemu's: a power loss kills the VM's qemu (no flush, no clean stop), power on
starts it again and runs the node's boot steps (DRBD up, the failover unit). Cables are
qemu's link state (the serial cable is unplugged at node2's end). The daemon is the
guest's unit loop's child: SIGKILL, SIGSTOP/SIGCONT or a clean stop by its pid file.
"""

from __future__ import annotations

import shlex
import threading

from hasync_lab.campaign.live import StepPlayer
from hasync_lab.campaign.vm.prep import DAEMON_PID, DOWN_FLAG, FLAGS
from hasync_lab.vm.seed import VIP

LINKS = ("heartbeat", "public", "serial")


class Injector(StepPlayer):
    def __init__(self, run):
        self.run = run
        self.lab = run.lab
        self.threads: list[threading.Thread] = []
        self.stop_ev = threading.Event()
        self.off: set[str] = set()  # powered off by a fault (not by a fence): on at the heal
        self.frozen: set[str] = set()
        self.down: set[str] = set()  # the unit stopped by a fault
        self.clock: dict[str, float] = {}
        self.cut: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ running a fault
    def resolve(self, target: str) -> tuple[str, str]:
        n1, n2 = self.run.nodes
        snap = self.run.sampler.snapshot()
        act = next((n for n in (n1, n2) if {"vip", "fs"} <= snap.get(n, {}).get("pieces", set())), None)
        act = act or next((n for n in (n1, n2) if snap.get(n, {}).get("role") == "active"), n1)
        stb = n2 if act == n1 else n1
        a = {"active": act, "standby": stb}.get(target, target if target in (n1, n2) else act)
        return a, (n2 if a == n1 else n1)

    def sh(self, node: str, script: str, timeout: float = 60.0):
        return self.lab.exec(node, ("/bin/sh", "-c", script), timeout=timeout)

    # ------------------------------------------------------------------ power, the daemon
    def op_power_off(self, r, **kw) -> None:
        node = r[kw["who"]]
        with self.run.power_lock:
            self.off.add(node)
            self.lab.crash(node)
        self.frozen.discard(node)
        self.run.trace(node, "fault", "power off")

    def op_power_on(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.run.power_on(node)  # still "off by a fault" while it boots: the supervisor keeps away
        self.off.discard(node)

    def signal(self, node: str, sig: str) -> int | None:
        res = self.sh(node, f"p=$(cat {DAEMON_PID} 2>/dev/null) && kill -{sig} $p && echo $p", timeout=20)
        pid = res.stdout.strip()
        return int(pid) if pid.isdigit() else None

    def op_kill(self, r, **kw) -> None:
        node = r[kw["who"]]
        pid = self.signal(node, "KILL")
        if pid:
            self.run.expected_exits.add((node, pid))
        self.frozen.discard(node)
        self.run.trace(node, "fault", f"SIGKILL failover (pid {pid})")

    def op_freeze(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.frozen.add(node)
        self.run.trace(node, "fault", f"SIGSTOP failover (pid {self.signal(node, 'STOP')})")

    def op_thaw(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.frozen.discard(node)
        self.run.trace(node, "fault", f"SIGCONT failover (pid {self.signal(node, 'CONT')})")

    def stop_daemon(self, node: str, stay_down: bool) -> str:
        """A clean stop (SIGTERM: the daemon leaves); the unit starts it again after 1 s
        unless it stays down."""
        script = (f"{'touch ' + DOWN_FLAG if stay_down else ':'}; p=$(cat {DAEMON_PID} 2>/dev/null) || exit 0; "
                  f"echo $p; kill -TERM $p; for i in $(seq 300); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; "
                  "echo still running; exit 1")
        res = self.sh(node, script, timeout=60)
        pid = res.stdout.split()[0] if res.stdout.split() else ""
        if pid.isdigit():
            self.run.expected_exits.add((node, int(pid)))
        return f"exit {res.exit_code} {res.stdout.strip()}"

    def op_stop_unit(self, r, **kw) -> None:
        node, then = r[kw["who"]], kw["then"]
        if kw.get("sig") == "KILL":  # the daemon dies for good; its resources keep running
            self.down.add(node)
            self.sh(node, f"touch {DOWN_FLAG}")
            self.op_kill(r, who=kw["who"])
            return

        def go():
            if then != "restart":
                self.down.add(node)
            out = self.stop_daemon(node, stay_down=then != "restart")
            self.run.trace(node, "fault", f"failover stopped cleanly ({out}); then {then}")
            if then == "poweroff":
                self.op_power_off({"X": node}, who="X")
        self._bg(go)

    def op_restart(self, r, **kw) -> None:
        node = r[kw["who"]]
        if kw["how"] == "kill":
            self.op_kill(r, who=kw["who"])
            return
        self._bg(lambda: self.run.trace(node, "fault", f"clean restart: {self.stop_daemon(node, False)}"))

    def op_command(self, r, **kw) -> None:
        node = r[kw["who"]]
        argv = self.command_argv(r, node, kw["cmd"])
        if not self.lab.running(node):
            return
        self.lab.spawn(node, argv, "/var/log/hasync-campaign/commands.log")
        self.run.trace(node, "operator", " ".join(argv))

    # ------------------------------------------------------------------ cables
    def op_cut(self, r, **kw) -> None:
        node = r[kw["who"]]
        links = LINKS if kw["links"] == "all" else kw["links"]
        with self.run.power_lock:
            for lk in links:
                self.lab.cut(node, lk)
                self.cut.setdefault(node, set()).add(lk)
        self.run.trace(node, "fault", f"cables pulled: {', '.join(links)}")

    # ------------------------------------------------------------------ fence, agents, clock
    def op_fence_mode(self, r, **kw) -> None:
        node, mode = r[kw["who"]], kw["mode"]
        text = f"slow {kw['slow_s']}" if mode == "slow" else mode
        self.sh(node, f"mkdir -p {FLAGS}; echo {shlex.quote(text)} > {FLAGS}/fence")
        self.run.trace(node, "fault", f"fence command: {text}")

    def op_flag(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.sh(node, f"mkdir -p {FLAGS}; : > {FLAGS}/{kw['rid']}.{kw['op']}.{kw['mode']}")
        self.run.trace(node, "fault", f"{kw['rid']} {kw['op']}: {kw['mode']}")

    def op_crash_resource(self, r, **kw) -> None:
        node, rid = r[kw["who"]], kw["rid"]
        res = self.sh(node, f"ip addr del {VIP}/24 dev eth0")
        self.run.trace(node, "fault", f"{rid} removed behind hasync's back (exit {res.exit_code})")

    def op_clock(self, r, **kw) -> None:
        """A real step of the guest's CLOCK_REALTIME (the monotonic clock does not move)."""
        node = r[kw["who"]]
        step = kw["step_s"]
        res = self.sh(node, f"date -s @$(( $(date +%s) + {int(step)} )) >/dev/null")
        self.clock[node] = self.clock.get(node, 0.0) + step
        self.run.trace(node, "fault", f"wall clock stepped {step:+g} s (exit {res.exit_code})")

    # ------------------------------------------------------------------ the heal
    def heal(self) -> list[str]:
        did: list[str] = []
        self.stop_background(120)
        for node in self.run.nodes:
            if self.lab.running(node):
                res = self.sh(node, f"ls {FLAGS} 2>/dev/null; rm -f {FLAGS}/*")
                if res.stdout.strip():
                    did.append(f"{node}: flags {' '.join(res.stdout.split())} removed")
        for node in sorted(self.frozen):
            if self.lab.running(node):
                self.signal(node, "CONT")
                did.append(f"{node}: daemon thawed")
        self.frozen.clear()
        for node, off in sorted(self.clock.items()):
            if off and self.lab.running(node):
                self.sh(node, f"date -s @$(( $(date +%s) - {int(off)} )) >/dev/null")
                did.append(f"{node}: wall clock back ({-off:+g} s)")
        self.clock.clear()
        with self.run.power_lock:
            self.lab.heal(boot=False)  # every cable back in
        self.cut.clear()
        for node in self.run.nodes:
            if not self.lab.running(node):
                self.off.add(node)  # the supervisor's power cycle must not start it a second time
                try:
                    self.run.power_on(node)
                finally:
                    self.off.discard(node)
                did.append(f"{node}: powered on")
        for node in sorted(self.down):
            if self.lab.running(node):
                self.sh(node, f"rm -f {DOWN_FLAG}")
                did.append(f"{node}: failover unit started again")
        self.down.clear()
        self.run.trace("both", "heal", "; ".join(did) or "nothing to undo")
        return did
