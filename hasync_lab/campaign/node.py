"""One simulated node: its ground truth (power, what runs and who started it, the ping,
the fence device's behaviour) and the life cycle of its daemon.

The ground truth is the simulator's, never the FSM's: the audits read ``running``
(resource -> "hasync" | "fault"), ``powered`` and ``frozen``. Every change of ``running``
goes through ``set_running``/``drop_running`` so the audits see it at once.
"""

from __future__ import annotations

from .driver import DaemonDied, Driver
from .worker import FAULT

INBOX_LIMIT = 2000  # datagrams a socket buffer holds while the daemon is stopped
WALL0 = 1_700_000_000.0  # the wall clock at simulated time 0 (generations are wall ms)


class Node:
    def __init__(self, sim, name: str):
        self.sim = sim
        self.name = name
        self.powered = False
        self.booted = False
        self.boot_id = 0
        self.daemon: Driver | None = None
        self.generation = 0
        self.persisted = None  # the daemon's state directory: Membership's Persisted
        self.frozen = False
        self.inbox: list = []
        self.deferred: list = []
        self.running: dict[str, str] = {}
        self.late_strays: set[str] = set()  # pieces a fault started after the daemon's start-up probe
        self._start_token = 0
        self._start_pending = False
        # faults that live on the node
        self.enabled_at_boot: tuple[str, ...] = ()
        self.ping_ok = True
        self.ping_down_since: float | None = None
        self.ping_lies = False  # self-test only: the ping job says yes whatever
        self.deaf = False  # self-test only: the daemon hears nothing though every link is fine
        self.fence_behaviour = "ok"  # how this node's fence of its peer behaves: ok|fail|slow|lie
        self.fence_slow_s = 0.0
        self.start_fail: set[str] = set()
        self.stop_fail: set[str] = set()
        self.stop_hang: set[str] = set()
        self.status_hang: set[str] = set()
        self.drifted = False
        self.on_daemon_start: list = []  # one-shot hooks (a replay right after a restart)
        # what the audits need to know about this node's past
        self.last_detect = float("-inf")  # when its FSM last declared the peer dead
        self.fences: list = []  # (time, peer boot_id, ok, lied)

    # ------------------------------------------------------------------ ground truth
    def set_running(self, rid: str, origin: str) -> None:
        if origin == FAULT and self.daemon is not None and self.daemon.fsm is not None and self.daemon.fsm.role != "probing":
            self.late_strays.add(rid)  # behind the back of a daemon that already probed
        elif origin != FAULT:
            self.late_strays.discard(rid)
        if self.running.get(rid) != origin:
            self.running[rid] = origin
            self.sim.trace(self.name, "gt", f"{rid} runs ({origin})")
            self.sim.audit.running_changed()

    def drop_running(self, rid: str) -> None:
        self.late_strays.discard(rid)
        if self.running.pop(rid, None) is not None:
            self.sim.trace(self.name, "gt", f"{rid} stopped")
            self.sim.audit.running_changed()

    def _silent(self) -> None:
        """This node's heartbeats stop or start again: the peer may rightly miss some."""
        self.sim.impaired(self.name, self.sim.peer_of(self).name)

    def set_ping(self, ok: bool) -> None:
        if ok:
            self.ping_down_since = None
        elif self.ping_ok:
            self.ping_down_since = self.sim.now
        self.ping_ok = ok

    def clear_faults(self) -> None:
        self.set_ping(True)
        self.fence_behaviour = "ok"
        self.start_fail.clear()
        self.stop_fail.clear()
        self.stop_hang.clear()
        self.status_hang.clear()
        self.enabled_at_boot = ()
        self.on_daemon_start.clear()

    # ------------------------------------------------------------------ power
    def power_off(self, why: str) -> None:
        if not self.powered:
            return
        self.sim.trace(self.name, "power", f"off ({why})")
        self.sim.audit.on_power_off(self)
        self._silent()
        self.powered = self.booted = self.frozen = False
        self.inbox, self.deferred = [], []
        self._start_token += 1
        self._start_pending = False
        if self.daemon is not None:
            self.daemon.die()
            self.daemon = None
        self.late_strays.clear()
        if self.running:
            self.running.clear()
            self.sim.audit.running_changed()

    def power_on(self, why: str) -> None:
        if self.powered:
            return
        self.sim.trace(self.name, "power", f"on ({why})")
        self.sim.audit.on_power_on(self)
        self.powered = True
        self.boot_id += 1
        self.sim.at(self.sim.now + self.sim.sc.boot_s, self._booted, self.boot_id)

    def reboot(self, why: str) -> None:
        self.power_off(why)
        self.power_on(why)

    def _booted(self, boot_id: int) -> None:
        if boot_id != self.boot_id or not self.powered:
            return
        self.booted = True
        for rid in self.enabled_at_boot:  # systemd starts what is enabled, before hasync
            self.set_running(rid, FAULT)
        self.schedule_daemon_start(self.sim.sc.daemon_delay_s)

    # ------------------------------------------------------------------ the daemon
    def schedule_daemon_start(self, delay: float) -> None:
        self._start_token += 1
        self._start_pending = True
        self.sim.at(self.sim.now + delay, self._start_due, self._start_token)

    def _start_due(self, token: int) -> None:
        if token == self._start_token:
            self._start_pending = False
            self.start_daemon()

    def ensure_daemon(self) -> None:
        """After a heal: a booted node whose daemon is down (and not about to start) gets it back."""
        if self.powered and self.booted and self.daemon is None and not self._start_pending:
            self.start_daemon()

    def start_daemon(self) -> None:
        if not (self.powered and self.booted) or self.daemon is not None or self.frozen:
            return
        now = self.sim.now
        # hasync.failover.daemon.next_generation: the persisted one + 1, at least wall ms
        self.generation = max(self.generation + 1, int((WALL0 + now) * 1000))
        sc = self.sim.sc
        cfg = sc.fsm_configs(self.name, drifted=self.drifted) if sc.groups else sc.fsm_config(self.name, drifted=self.drifted)
        self._silent()
        self.sim.trace(self.name, "daemon", f"start, generation {self.generation}" + (" (drifted config)" if self.drifted else ""))
        try:
            self.daemon = Driver(self, cfg, self.sim.fsm_cls, self.generation, now, self.persisted)
        except Exception:  # the FSM raised in its constructor: reported by the driver
            self.daemon = None
            return
        self.daemon.start(now)
        hooks, self.on_daemon_start = self.on_daemon_start, []
        for fn in hooks:
            fn()

    def kill_daemon(self, restart_after: float | None) -> None:
        """SIGKILL (resources keep running); systemd starts it again after *restart_after*."""
        if self.daemon is not None:
            self.sim.trace(self.name, "daemon", "SIGKILL")
            self._silent()
            self.daemon.die()
            self.daemon = None
        self.frozen = False
        self.inbox, self.deferred = [], []
        if restart_after is not None and self.powered:
            self.schedule_daemon_start(restart_after)

    def crash_daemon(self, driver: Driver) -> None:
        """The FSM raised: the daemon exits with a traceback, systemd restarts it."""
        if driver is self.daemon:
            self.kill_daemon(self.sim.sc.restart_delay_s)

    def daemon_exited(self, driver: Driver, clean: bool) -> None:
        if driver is self.daemon:
            self.sim.trace(self.name, "daemon", "exited cleanly" if clean else "exited")
            self._silent()
            self.daemon = None

    def stop_daemon(self, then=None) -> None:
        """SIGTERM (systemctl stop/restart): a clean leave, then *then*."""
        if self.daemon is None:
            if then is not None:
                then()
            return
        if self.frozen:  # SIGTERM waits for SIGCONT; systemd SIGKILLs after TimeoutStopSec
            self.sim.at(self.sim.now + self.sim.sc.stop_timeout_s, self._kill_if_frozen, self.daemon, then)
            return
        self.sim.trace(self.name, "daemon", "SIGTERM")
        self.daemon.leave(self.sim.now, then)

    def _kill_if_frozen(self, driver: Driver, then) -> None:
        if driver is self.daemon and self.frozen:
            self.kill_daemon(restart_after=None)
            if then is not None:
                then()

    def restart_daemon(self) -> None:
        self.stop_daemon(then=lambda: self.schedule_daemon_start(self.sim.sc.restart_delay_s))

    # ------------------------------------------------------------------ SIGSTOP
    def freeze(self) -> None:
        if self.powered and self.daemon is not None and not self.frozen:
            self.sim.trace(self.name, "daemon", "SIGSTOP")
            self._silent()
            self.frozen = True

    def thaw(self) -> None:
        if not self.frozen:
            return
        self.sim.trace(self.name, "daemon", f"SIGCONT ({len(self.inbox)} datagrams queued)")
        self.frozen = False
        self._silent()
        inbox, deferred = self.inbox, self.deferred
        self.inbox, self.deferred = [], []
        if self.daemon is not None:
            self.daemon.thaw(self.sim.now, inbox, deferred)

    # ------------------------------------------------------------------ packets
    def deliver(self, t: float, pairs: list, fields: dict, sig: tuple) -> None:
        """Heartbeats from the peer arrive (pairs: [(link, seq)], one state)."""
        d = self.daemon
        if d is None or not self.powered or self.deaf:
            return  # nobody listens: the kernel drops it
        if self.frozen:
            room = INBOX_LIMIT - len(self.inbox)
            self.inbox.extend((t, lk, seq, fields, sig) for lk, seq in pairs[:room])
            return
        try:
            if d.receive(t, pairs, fields, sig) and d.alive:
                d.settle(t)
        except DaemonDied:
            pass
