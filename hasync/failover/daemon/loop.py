"""The daemon's life: set-up, one loop that waits and dispatches, a clean exit.

One epoll wait on a monotonic clock, until the earliest of: the next heartbeat to send,
the FSM's next deadline, the systemd watchdog. Each readable fd's owner handles it (the
control server its socket and connections, the executor the worker's mailbox, which is
also the signal wake-up fd). Then, every wake-up: the receiver drains the links, the FSM
is ticked if a deadline passed or something happened, the sender sends when due, and the
executor writes what changed. The steady state (a heartbeat to send, the peer's repeats
to read) costs one epoll wait, one poll of the links, a recvmsg per datagram and a
sendto per link; nothing is written to disk unless something changed.

Files (see docs/failover.md):
  <run_dir>/failover.sock   control socket (status, standby, takeover, migrate)
  <run_dir>/role            this node's role, one word (read by the sync conflict policy)
  <state_dir>/timeline.jsonl, last-failover.json, generation, peer-generation, epoch
"""

from __future__ import annotations

import gc
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from hasync import model
from hasync.effects.clock import MonotonicClock
from hasync.effects.files import atomic_write
from hasync.effects.process import lock_memory, raise_priority
from hasync.effects.run import BackgroundRunner, ProcRunner
from hasync.effects.systemd import Notifier
from hasync.failover.daemon import persist
from hasync.failover.daemon.control import ControlServer
from hasync.failover.daemon.executor import Executor
from hasync.failover.daemon.heartbeat import Receiver, Sender
from hasync.failover.daemon.status import document
from hasync.failover.daemon.worker import Mailbox, Worker, WorkerPool
from hasync.failover.errors import BadTiming
from hasync.failover.host import Paths
from hasync.failover.links import open_link
from hasync.failover.membership import Event, Membership, fsm_config
from hasync.failover.membership_groups import AnyMembership, GroupMembership, group_configs, jobs_of
from hasync.failover.packets import Mac
from hasync.failover.resource_state import ResourceTable
from hasync.failover.restart import detach_refusal, job_type, list_jobs_argv, unit_of_cgroup
from hasync.failover.stall import StallMeter, stall_threshold
from hasync.failover.states import Level, Role
from hasync.failover.timeline import Timeline


def next_generation(state_dir: Path, wall: float) -> int:
    """heartbeat's generation: grows at every start (persisted; the wall clock in ms is a
    floor, so a node whose state directory is lost, e.g. a tmpfs, still comes back higher)."""
    p = state_dir / "generation"
    try:
        old = int(p.read_text().strip())
    except (OSError, ValueError):
        old = 0
    gen = max(old + 1, int(wall * 1000))
    try:
        atomic_write(p, f"{gen}\n")
    except OSError:
        pass
    return gen


def _nothing() -> None:
    """The handler of a link fd in the main wait (--rx-wake): the drain reads it."""


class Poller:
    """The main loop's one wait: an epoll, and the handler of each registered fd."""

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.handlers: dict[int, Callable[[], None]] = {}

    def register(self, fileobj, handler: Callable[[], None]) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self.ep.register(fd, select.EPOLLIN)
        self.handlers[fd] = handler

    def unregister(self, fileobj) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass


class Daemon:
    def __init__(
        self,
        cluster: model.Cluster,
        local: str,
        key: bytes,
        paths: Paths,
        *,
        profile: model.Profile | None = None,
        runner: BackgroundRunner | None = None,
        clock=None,
        priority: str = "fifo",
        mlock: bool = True,
        agent_nice: int = -10,
        vip_fast: bool = True,
        rx_wake: bool = False,
        log=None,
        unit: str | None = None,
    ):
        self.cluster = cluster
        self.local = local
        self.key = key
        self.paths = paths
        self.profile = profile
        self.runner = runner or ProcRunner()
        self.clock = clock or MonotonicClock()
        self.priority_mode = priority
        self.mlock = mlock
        self.agent_nice = agent_nice
        self.vip_fast = vip_fast
        # rx_wake False (default): the links are not in the main wait; they are drained
        # (with kernel receive timestamps) whenever the daemon wakes anyway: to send, at
        # a deadline, for a command or a job result. Fewer wake-ups, same accuracy.
        self.rx_wake = rx_wake
        self.log_stream = log or sys.stderr
        # the systemd service this daemon runs as ("" when none): a restart of it keeps
        # the chain here (hasync/failover/restart.py); None: found in /proc/self/cgroup
        self.unit = _own_unit() if unit is None else unit
        self.detached = False
        # several resource groups (issue 17): one membership FSM for the pair with each
        # group's own owner (membership_groups), one job queue per group
        self.groups = cluster.resource_groups() if len(cluster.resource_groups()) > 1 else ()
        self.group_cfgs = group_configs(cluster, local) if self.groups else ()
        self.cfg = fsm_config(cluster, local)
        self.cfg_ids = tuple(r.id for r in cluster.resources)  # every group's resources, in order
        errs = self.cfg.validate()
        if errs:
            raise BadTiming("invalid heartbeat timing: " + "; ".join(errs))
        self.peer = cluster.peer_of(local)
        self.poller = Poller()
        self.links: list = []
        self.mailbox = Mailbox()
        self.notifier = Notifier()
        self.resources = ResourceTable(tuple(r.id for r in cluster.resources))
        self.stall = StallMeter(stall_threshold(self.cfg.warntime))
        self.stop_requested = False
        self.leave_started = False
        self.priority = "unchanged"
        self.mlocked = False
        self.n_wakes = self.n_ticks = 0
        self.started_wall = self.clock.wall()

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        now = self.clock.now()
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.generation = next_generation(self.paths.state_dir, self.clock.wall())
        kept, problems = persist.load(self.paths.state_dir, self.peer.name, tuple(g.id for g in self.groups))
        self._persisted = kept  # what the files say (save() writes the difference)
        fsm: AnyMembership
        if self.groups:
            fsm = GroupMembership(self.group_cfgs, now, generation=self.generation, persisted=kept)
        else:
            fsm = Membership(self.cfg, now, generation=self.generation, persisted=kept)
        self.fsm = fsm
        self.timeline = Timeline(self.paths.state_dir, self.local, clock=self.clock, keep_history=self.cluster.heartbeat.history)
        for link in self.cluster.heartbeat.links:
            self.links.append(open_link(link, self.local))  # LinkError: a StartupError
        mac = Mac(self.key)  # the HMAC key schedule done once, for every send and receive
        self.sender = Sender(self.links, self.key, mac, fsm, self.cfg.keepalive, self.clock.now)
        def worker(group=None) -> Worker:
            return Worker(self.cluster, self.local, self.runner, self.mailbox.post, self.profile,
                          clock=self.clock, agent_nice=self.agent_nice, vip_fast=self.vip_fast, group=group)

        self.worker: Worker | WorkerPool = WorkerPool({g.id: worker(g) for g in self.groups}) if self.groups else worker()
        self.executor = ex = Executor(fsm, local=self.local, sender=self.sender, worker=self.worker, mailbox=self.mailbox,
                                      timeline=self.timeline, resources=self.resources, role_path=self.paths.role,
                                      notifier=self.notifier, clock=self.clock, log=self.log_stream, persist=self._persist)
        self.sender.on_encode_error = lambda msg: ex.event(Event("send", msg, Level.ERROR))
        self.receiver = Receiver(self.links, self.key, mac, fsm, self.peer.name, ex.apply, ex.new_state, self.clock.wall)
        if self.rx_wake:
            for lk in self.links:
                self.poller.register(lk, _nothing)
        self.poller.register(self.mailbox, ex.on_mail)
        self.control = ControlServer(self.paths.socket, self.poller, ex, fsm, local=self.local, peer=self.peer.name,
                                     status=self.status, clock_now=self.clock.now, log=ex.log,
                                     groups=tuple(g.id for g in self.cluster.resource_groups()))
        self.control.listen()  # AlreadyRunning
        ex.control = self.control
        self.priority = raise_priority(self.priority_mode)
        self.worker.start()
        if self.mlock:
            self.mlocked = lock_memory()
        signal.set_wakeup_fd(self.mailbox.w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        ex.write_role()
        gc.collect()
        gc.freeze()  # start-up objects never change: keep them out of every collection
        ex.event(Event("start", f"daemon started: generation {self.generation}, links {', '.join(lk.name for lk in self.links)}, "
                                f"keepalive {self.cfg.keepalive * 1000:.0f} ms, deadtime {self.cfg.deadtime * 1000:.0f} ms, "
                                f"priority {self.priority}, memory {'locked' if self.mlocked else 'not locked'}", Level.INFO))
        for msg in problems:
            ex.event(Event("warn", msg, Level.WARN))
        ex.apply(fsm.begin(now))
        if self.cfg.fencing_mode == "off":
            ex.event(Event("warn", "fencing is OFF: shared data is not protected; a node that only looks dead may still write", Level.WARN))

    def _persist(self, new) -> None:
        persist.save(self.paths.state_dir, self.peer.name, new, self._persisted, self.clock.wall())
        self._persisted = new

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def status(self, now: float) -> dict:
        return document(self, now)

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        self.setup()
        fsm, ex, sender = self.fsm, self.executor, self.sender
        self.notifier.ready(f"{self.local}: {fsm.role}")
        wd = self.notifier.watchdog_interval or 0.0
        mono = self.clock.now
        poll = self.poller.ep.poll
        handlers = self.poller.handlers
        drain = self.receiver.drain
        stall_watch = self.stall.watch_above()
        now = mono()
        next_wd = now + wd if wd else float("inf")
        sender.next_send = now
        fsm_deadline = now
        fsm_stale = False  # fsm_deadline may be earlier than needed (heartbeats moved it later)
        while True:
            if fsm_stale and fsm_deadline < sender.next_send:
                fsm_deadline = fsm.next_deadline(now)
                fsm_stale = False
            due = min(fsm_deadline, sender.next_send, next_wd)
            ex.dirty = False
            self.n_wakes += 1
            waited_at = mono()
            events = poll(max(0.0, due - waited_at))
            now = mono()
            if now - due > stall_watch:  # a new worst wake-up, or a stall
                self._on_stall(due, now, waited_at)
                stall_watch = self.stall.watch_above()
            for fd, _ in events:
                handlers.get(fd, _nothing)()
            if drain(now):
                fsm_stale = True  # repeats only move the deadlines later
                now = mono()
            # A quiet heartbeat only moves deadlines later: waking at the old one is
            # harmless, so the FSM is ticked (and the deadline recomputed) only when a
            # deadline passed or something happened.
            if now >= fsm_deadline or ex.dirty or self.stop_requested:
                self.n_ticks += 1
                ex.apply(fsm.tick(now))
                ex.dirty = True
            if now >= sender.next_send:
                sender.send(now, scheduled=True)
            if now >= next_wd:
                self.notifier.watchdog()
                next_wd = now + wd
            if self.stop_requested and not self.leave_started:
                if self._restarting():
                    return self._detach()
                self._begin_leave(now)
            if ex.dirty:
                ex.after()
                now = mono()
                fsm_deadline = fsm.next_deadline(now)
                fsm_stale = False
            if self.leave_started and fsm.can_exit:
                return self._leave()

    def _on_stall(self, due: float, now: float, waited_at: float) -> None:
        st = self.stall.observe(due, now, waited_at)
        if st is not None:
            self.executor.event(Event("stall", st.message(self.stall.threshold), Level.WARN,
                                      (("late_ms", round(st.late_s * 1000, 1)), ("busy_ms", round(st.busy_s * 1000, 1)),
                                       ("count", st.count), ("unreported", st.unreported))))
            self.executor.dirty = True  # the timeline line gets written

    def _restarting(self) -> bool:
        """SIGTERM for `systemctl restart` of this daemon's unit, and nothing under way:
        the chain stays as it is for the next daemon (restart.py). Asked of systemd once
        (a few seconds at most: heartbeats wait, well within deadtime)."""
        if not self.unit:
            return False
        r = self.runner.run(list_jobs_argv(self.unit), timeout=5)
        if job_type(r.stdout, self.unit) != "restart":
            return False
        fsm = self.fsm
        why = detach_refusal(fsm.role, jobs_of(fsm), fsm.gate, self.leave_started)
        if why:
            self.executor.event(Event("stop", f"{self.unit} restarts, but {why}: leaving the usual way", Level.INFO))
            return False
        return True

    def _detach(self) -> int:
        """Exit for a restart without stopping anything and without ``leaving``: the
        next daemon finds the chain (or nothing) running here and adopts it. The role file
        stays: this node still is what it says."""
        self.detached = True
        self.control.closing = True
        self.notifier.stopping()
        fsm = self.fsm
        held = ", ".join(fsm.owned) or "nothing of the chain"
        self.executor.event(Event("stop", f"{self.unit} restarts: exiting without stopping anything ({held} "
                                          f"runs here, role {fsm.role.value}); the next daemon adopts it", Level.INFO))
        self.timeline.settle(fsm.role)
        self.executor.after()
        self.control.close()
        for lk in self.links:
            lk.close()
        self.worker.stop()
        return 0

    def _begin_leave(self, now: float) -> None:
        self.leave_started = True
        self.control.closing = True
        self.notifier.stopping()
        fsm = self.fsm
        holding = fsm.owned or fsm.role != Role.STANDBY
        self.executor.event(Event("stop", "shutting down: releasing the chain" if holding else "shutting down", Level.INFO))
        self.executor.apply(fsm.begin_leave(now))

    def _leave(self) -> int:
        """Nothing held any more: say goodbye twice (a lost packet), then clean up. 0, or 1
        when this node could not release its resources (stop-failed): it exits anyway,
        at once (systemd's stop must not hang until TimeoutStopSec), without the
        ``leaving`` flag: the peer fences it before it starts anything (docs/oncall.md)."""
        note, stuck = self.fsm.exit_note, self.fsm.role == Role.STOP_FAILED
        self.sender.send()
        self.clock.sleep(min(0.02, self.cfg.keepalive / 2))
        self.sender.send()
        if note:
            self.executor.event(Event("stop", note, Level.ERROR if stuck else Level.WARN))
        else:
            self.executor.event(Event("stop", "left the cluster cleanly", Level.INFO))
        self.timeline.settle(self.fsm.role)
        self.executor.after()
        self.control.close()
        try:
            self.paths.role.unlink(missing_ok=True)
        except OSError:
            pass
        for lk in self.links:
            lk.close()
        self.worker.stop()
        return 1 if stuck else 0


def _own_unit() -> str:
    try:
        with open("/proc/self/cgroup") as f:
            return unit_of_cgroup(f.read())
    except OSError:
        return ""
