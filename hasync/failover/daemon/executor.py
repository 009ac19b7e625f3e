"""Carries out what the membership FSM returns, and feeds it what the worker reports.

Actions: ``Send`` -> a heartbeat on every link now; ``Job`` -> the worker thread;
``Event`` -> the log, the timeline and every command waiting on the control socket;
``Persist`` -> the state directory (daemon/persist.py), at once.
The worker's reports arrive through the mailbox: each ``Progress`` updates the resource
table (and tells the FSM what runs here), each ``JobResult`` goes to the FSM.
After every busy wake-up ``after()`` writes what changed: the role file (read by the
sync conflict policy), the timeline, the answers to waiting commands.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hasync.effects.files import atomic_write
from hasync.effects.systemd import Notifier
from hasync.failover.daemon.heartbeat import Sender
from hasync.failover.daemon.worker import Mailbox, Worker, WorkerPool
from hasync.failover.membership import Action, Event, Job, Persist, Persisted, Send
from hasync.failover.membership_groups import AnyMembership, jobs_of, working
from hasync.failover.resource_state import Progress, ResourceTable, progress_event
from hasync.failover.stall import Throttle
from hasync.failover.states import JobKind, Level, Role
from hasync.failover.timeline import Timeline

if TYPE_CHECKING:
    from hasync.failover.daemon.control import ControlServer

SETTLED = (Role.ACTIVE, Role.STANDBY, Role.STOP_FAILED)  # a timeline record closes in one of these


def record_job_under_way(fsm: AnyMembership) -> bool:
    """A job of the open record runs: any job but an interval monitor, in any group. The
    monitors follow one another on an active node (on the VM lab's emulated CPUs two 5 s
    monitors of 2-3 s each left no wake-up without one), and waiting for none kept the
    takeover's record open: `hasync history` said "in progress", last-failover.json had
    no duration (the 2026-12-07 VM bench, 4 trials of 5). A failed monitor opens its own."""
    return bool(working(jobs_of(fsm)))


class Executor:
    def __init__(self, fsm: AnyMembership, *, local: str, sender: Sender, worker: Worker | WorkerPool, mailbox: Mailbox,
                 timeline: Timeline, resources: ResourceTable, role_path: Path, notifier: Notifier,
                 clock, log: TextIO, persist: Callable[[Persisted], None] | None = None):
        self.fsm = fsm
        self.local = local
        self.sender = sender
        self.worker = worker
        self.mailbox = mailbox
        self.timeline = timeline
        self.resources = resources
        self.role_path = role_path
        self.notifier = notifier
        self.clock = clock
        self.log_stream = log
        self.persist = persist  # writes the FSM's Persisted (OSError: reported, the daemon goes on)
        self.control: ControlServer | None = None  # set by the wiring: events, waiting commands
        self.dirty = True  # something happened this wake-up: after() must run
        self.recent: deque = deque(maxlen=40)  # the last events, for `hasync status`
        self.late_throttle = Throttle(1.0)  # late-heartbeat warnings: at most one a second, the rest counted
        self.role_written = ""

    def log(self, level: str, msg: str) -> None:
        try:
            self.log_stream.write(f"hasync-failover[{self.local}] {level}: {msg}\n")
            self.log_stream.flush()
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ actions
    def apply(self, actions: list[Action]) -> None:
        self.sender.stale = True  # whatever the FSM did, the next send re-reads its fields
        if actions:
            self.dirty = True
        send = False
        for a in actions:
            if isinstance(a, Persist):  # on disk before the job it may belong to begins
                self._persist(a)
        for a in actions:
            if isinstance(a, Job):
                self.worker.submit(a, self.fsm.owned)
        for a in actions:
            if isinstance(a, Send):
                send = True
            elif isinstance(a, Event):
                self.event(a)
            elif isinstance(a, Job) and a.kind != JobKind.MONITOR:
                what = f"{a.kind}" + (f" {a.resource}" if a.resource else "") + (f" ({a.reason})" if a.reason else "")
                self.timeline.add("job", what, Level.INFO, self.clock.now(), job=a.kind)
        if send:
            self.sender.send()

    def _persist(self, a: Persist) -> None:
        if self.persist is None:
            return
        try:
            self.persist(a.state)
        except OSError as e:  # the daemon goes on: it only protects less after a restart
            self.event(Event("warn", f"cannot write the failover state ({e}): after a restart this daemon would "
                                     "accept replays it refuses now, and adopt the chain with an older epoch", Level.ERROR))

    def event(self, ev: Event) -> None:
        message = ev.message
        if ev.kind == "late":
            held = self.late_throttle.admit(self.clock.now())
            if held is None:
                return
            if held:
                message += f" ({held} more late heartbeat{'s' if held > 1 else ''} since the previous warning, not logged)"
        entry = self.timeline.add(ev.kind, message, ev.level, self.clock.now(), **dict(ev.data))
        self.recent.append(entry)
        self.log(ev.level, message)
        if self.control is not None:
            self.control.broadcast(entry)

    def new_state(self) -> None:
        """The peer's packets changed: waiting commands re-check, our fields may change."""
        self.dirty = True
        self.sender.stale = True

    # ------------------------------------------------------------------ the worker's reports
    def on_mail(self) -> None:
        """The mailbox's pipe is readable: job progress and results (or a signal)."""
        self.dirty = True
        for item in self.mailbox.take():
            now = self.clock.now()
            if isinstance(item, Progress):
                self._progress(now, item)
            else:
                self.apply(self.fsm.on_job_done(now, item))

    def _progress(self, now: float, p: Progress) -> None:
        if p.resource:
            report = self.resources.record(p, self.clock.wall())
            if report:
                self.apply(self.fsm.on_progress(now, p.resource, report))
        ev = progress_event(p)
        if ev is not None:
            self.event(ev)

    # ------------------------------------------------------------------ after a busy wake-up
    def after(self) -> None:
        fsm = self.fsm
        tl = self.timeline
        # an operator command still under way keeps its record open: `hasync takeover` on a
        # standby node waits for the peer to release before any job runs here, and its
        # record closed at once as "standby" (hasync history: the takeover's outcome)
        waits = self.control is not None and self.control.under_way()
        busy = record_job_under_way(fsm)
        if fsm.role != self.role_written:
            self.write_role()
            if not busy and fsm.role in SETTLED and not waits:
                tl.settle(fsm.role, self.clock.now())
        elif tl.current is not None and not busy and fsm.role in SETTLED and not fsm.gate and not waits:
            tl.settle(fsm.role, self.clock.now())
        if tl.pending or tl.dirty_last:
            tl.flush()
        if self.control is not None:
            self.control.check_waiting()

    def write_role(self) -> None:
        try:
            atomic_write(self.role_path, self.fsm.role + "\n")
        except OSError as e:
            self.log(Level.WARN, f"cannot write {self.role_path}: {e}")
        self.role_written = self.fsm.role
        self.notifier.status(f"{self.local}: {self.fsm.role}")

