"""One incarnation of the failover daemon in the simulation: drives a ``Membership`` the
way ``hasync.failover.daemon.Daemon`` does, on the simulator's clock.

What is kept from the real loop (and why it matters for what the FSM sees):
- a heartbeat on every link every keepalive, with the same rhythm rule (a ``Send``
  action sends at once and restarts the rhythm; a late scheduled send does not burst);
- receive: a packet identical to the last one accepted on its link but for its
  sequence number goes to ``on_repeat`` first; ``None`` (or a new state) goes to
  ``on_packet``; the last accepted signature is remembered per link only when the guard
  took the packet (as ``Daemon._on_heads`` reads ``fsm.guard.last_seq``);
- the FSM is ticked when something new happened or a deadline passed, never per
  heartbeat, and the next wake-up is ``next_deadline``;
- jobs go to one worker (see worker.py), whose progress and results come back as
  ``on_progress`` / ``on_job_done``; with several resource groups (``GroupMembership``)
  one worker per group, each one job at a time, as the daemon's job queue per group;
- a clean stop is ``begin_leave`` until ``can_exit``, then two last heartbeats.
One difference: packets are handed to the FSM when they arrive, with their arrival
time (the daemon drains them at its next wake-up with the kernel's receive timestamp:
the same time, a few ms later).

Every call into the FSM is guarded: an exception is audit 4 (``fsm-error``) and the
daemon dies as it would (systemd restarts it after RestartSec).
"""

from __future__ import annotations

from heapq import heappush

from hasync.failover.membership import Event, Job, JobResult, Persist, Send
from hasync.failover.membership_groups import GroupMembership
from hasync.failover.packets import Packet
from hasync.failover.protocol import supersedes

from .errors import DaemonDied
from .worker import Worker

__all__ = ["DaemonDied", "Driver"]

SPIN_LIMIT = 200  # consecutive wake-ups with a deadline already due: a busy loop


class Driver:
    def __init__(self, node, cfg, fsm_cls, generation: int, now: float, persisted=None):
        """*cfg*: an FsmConfig, or (group id, FsmConfig) per group (several groups: the
        FSM is a GroupMembership of *fsm_cls* members)."""
        self.node = node
        self.sim = node.sim
        groups = cfg if isinstance(cfg, tuple) else ()
        if groups:
            cfg = groups[0][1]
        self.cfg = cfg
        self.name = cfg.local
        self.peer = cfg.peer
        self.generation = generation
        self.alive = True
        self.links = cfg.links
        self.seq = dict.fromkeys(cfg.links, 0)
        self.last_sig: dict = {}
        self.fields: dict | None = None
        self.sig: tuple = ()
        self.stale = True
        self.next_send = now
        self.tick_at: float | None = None
        self.spins = 0
        self.leaving = False
        self.after_leave = None  # callable once the clean stop is done
        self.workers = {gid: Worker(self, gid) for gid, _ in groups} if groups else {"": Worker(self)}
        self.worker = next(iter(self.workers.values()))  # (one group: the worker)
        self.accepted: list[tuple[str, str, float]] = []  # operator commands accepted: (cmd, group, when)
        self.fsm = None
        if groups:
            self.fsm = self._call(GroupMembership, groups, now, generation=generation, persisted=persisted, member_cls=fsm_cls)
        else:
            self.fsm = self._call(fsm_cls, cfg, now, generation=generation, persisted=persisted)

    # ------------------------------------------------------------------ guard
    def _call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:  # an FSM bug: the daemon dies with it
            self.fsm_raised(getattr(fn, "__name__", str(fn)), e)

    def fsm_raised(self, where: str, e: Exception):
        self.sim.audit.fsm_error(self.node, f"{where}: {e!r}", e)
        self.node.crash_daemon(self)
        raise DaemonDied from e

    def start(self, now: float) -> None:
        try:
            self.apply(self._call(self.fsm.begin, now))
            self.settle(now)
            self.send_all(now, scheduled=True)
        except DaemonDied:
            pass

    def die(self) -> None:
        self.alive = False
        for w in self.workers.values():
            w.alive = False

    @property
    def busy(self) -> bool:
        return any(w.busy for w in self.workers.values())

    # ------------------------------------------------------------------ actions
    def apply(self, actions) -> None:
        """Carry out the FSM's actions now (a packet may carry an earlier arrival time:
        the FSM gets that, what it asks for happens at the simulator's now)."""
        now = self.sim.now
        self.stale = True
        if not actions:
            return
        node = self.node
        sim = self.sim
        send = False
        jobs = []
        for a in actions:  # events first: the audits of a job read what they say (a death)
            t = type(a)
            if t is Send:
                send = True
            elif t is Event:
                sim.on_event(node, a, now)
            elif t is Job:
                jobs.append(a)
            elif t is Persist:
                node.persisted = a.state  # the state directory survives the daemon
        for job in jobs:  # audits look before the worker's first step changes anything
            sim.on_job(node, job, now)
        for job in jobs:
            w = self.workers.get(job.group, self.worker)
            w.submit(job, [r for r in self.fsm.owned if r in w.ids], now)
        if send:
            self.send_all(now)

    def settle(self, now: float) -> None:
        """The end of a loop iteration where something happened: tick, leave if done,
        and wake up again at the FSM's next deadline."""
        if not self.alive:
            return
        fsm = self.fsm
        try:  # (the guard of _call, inlined: this runs at every wake-up)
            acts = fsm.tick(now)
        except Exception as e:
            self.fsm_raised("tick", e)
        if acts:
            self.apply(acts)
            if not self.alive:
                return
        else:
            self.stale = True
        if self.leaving and fsm.can_exit:
            self._exit_clean(now)
            return
        if self.accepted:  # the control socket answers a waiting command once it is over
            self.accepted = [c for c in self.accepted if self.verdict(c) is None]
        try:
            dl = fsm.next_deadline(now)
        except Exception as e:
            self.fsm_raised("next_deadline", e)
        if dl <= now:
            self.spins += 1
            if self.spins == SPIN_LIMIT:  # once per daemon: the loop would spin until it changes
                self.sim.audit.fsm_error(self.node, f"busy loop: next_deadline() returned a time already past "
                                                    f"{SPIN_LIMIT} times in a row (role {fsm.role}, peer {fsm.peer.state} {fsm.peer.role})", None)
            dl = now + min(0.001, self.cfg.keepalive / 10)
        elif self.spins < SPIN_LIMIT:
            self.spins = 0
        if dl != self.tick_at:
            self.tick_at = dl
            self.sim.at(dl, self._tick_due, dl)

    def _tick_due(self, t: float) -> None:
        if not self.alive or t != self.tick_at or self.node.frozen:
            return  # frozen: thaw() ticks
        try:
            self.settle(t)
        except DaemonDied:
            pass

    # ------------------------------------------------------------------ heartbeats
    def send_all(self, now: float, scheduled: bool = False) -> None:
        if self.stale:
            self.stale = False
            f = self._call(self.fsm.packet_fields)
            if f != self.fields:
                self.fields = f
                self.sig = tuple(f.values())
        seq = self.seq
        pairs = []
        for link in self.links:
            s = seq[link] + 1
            seq[link] = s
            pairs.append((link, s))
        sim = self.sim
        sim.transmit(self.node, now, pairs, self.fields, self.sig)
        ka = self.cfg.keepalive
        nxt = now + ka
        if scheduled and self.next_send + ka > now:
            nxt = self.next_send + ka
        self.next_send = nxt
        heappush(sim.q, (nxt, next(sim._n), self._send_due, (nxt,)))

    def _send_due(self, t: float) -> None:
        if not self.alive or t != self.next_send or self.node.frozen:
            return
        try:
            self.send_all(t, scheduled=True)
        except DaemonDied:
            pass

    def receive(self, t: float, pairs, fields: dict, sig: tuple) -> bool:
        """Packets of one state from the peer's daemon (or a replay), pairs [(link, seq)].
        True: something new, the FSM must be ticked."""
        fsm = self.fsm
        last_sig = self.last_sig
        dirty = False
        for link, seq in pairs:
            last = last_sig.get(link)
            if last is not None and (last is sig or last == sig):
                acts = self._call(fsm.on_repeat, t, link, seq)  # the steady state: 9 packets in 10
                if acts is not None:
                    if acts:
                        self.apply(acts)
                        dirty = True
                    continue
            pkt = Packet(link=link, seq=seq, **fields)
            self.apply(self._call(fsm.on_packet, t, link, pkt))
            dirty = True
            if not self.alive:
                break
            if pkt.node == self.peer and fsm.guard.last_seq.get((pkt.node, link)) == seq:
                last_sig[link] = sig
        return dirty

    # ------------------------------------------------------------------ jobs
    def progress(self, now: float, rid: str, op: str, outcome: str) -> None:
        """``Daemon._progress``: the per-resource result of a chain step."""
        state = _PROGRESS.get(op, {}).get(outcome)
        if state:
            self.apply(self._call(self.fsm.on_progress, now, rid, state))

    def job_done(self, now: float, res: JobResult) -> None:
        self.apply(self._call(self.fsm.on_job_done, now, res))

    # ------------------------------------------------------------------ operator, shutdown
    def command(self, now: float, cmd: str, group: str = "") -> tuple[bool, str]:
        """An operator command; *group*: of that resource group only (migrate GROUP)."""
        try:
            ok, msg, acts = self._call(self.fsm.command, now, cmd, group=group) if group else self._call(self.fsm.command, now, cmd)
            if ok:
                # as the control socket does: a later different command ends an earlier one
                self.accepted = [c for c in self.accepted if not supersedes((cmd, group), (c[0], c[1]))]
                self.accepted.append((cmd, group, now))
                self.apply(acts)
            self.settle(now)
            return ok, msg
        except DaemonDied:
            return False, "daemon died"

    def verdict(self, c: tuple[str, str, float]) -> bool | None:
        """An accepted command's result as the control socket reads it (None: under way)."""
        cmd, group, _ = c
        return self.fsm.command_result(cmd, group=group) if group else self.fsm.command_result(cmd)

    def leave(self, now: float, then) -> None:
        """SIGTERM: release the chain, send ``leaving``, exit; systemd SIGKILLs the daemon
        after TimeoutStopSec (a stop that hangs)."""
        if self.leaving:
            return
        self.leaving = True
        self.after_leave = then
        self.sim.at(now + self.sim.sc.stop_timeout_s, self._leave_timeout)
        try:
            self.apply(self._call(self.fsm.begin_leave, now))
            self.settle(now)
        except DaemonDied:
            pass

    def _leave_timeout(self) -> None:
        if self.alive and self.leaving:
            self.sim.trace(self.node.name, "sim", "the clean stop took longer than TimeoutStopSec: SIGKILL")
            then = self.after_leave
            self.node.kill_daemon(restart_after=None)
            if then is not None:
                then()

    def _exit_clean(self, now: float) -> None:
        self.send_all(now)
        self.send_all(now + min(0.02, self.cfg.keepalive / 2))
        self.die()
        self.node.daemon_exited(self, clean=True)
        if self.after_leave is not None:
            self.after_leave()

    # ------------------------------------------------------------------ SIGSTOP
    def thaw(self, now: float, inbox: list, deferred: list) -> None:
        """SIGCONT, in the order of the daemon's first loop iteration: the worker's results
        that waited (the wake-up pipe), then the packets queued in the socket buffers (with
        their arrival times), a tick, and the heartbeat that is due."""
        try:
            for report, args in deferred:
                if not self.alive:
                    return
                report(*args, settle=False)
            for t, link, seq, fields, sig in inbox:
                if not self.alive:
                    return
                self.receive(min(t, now), ((link, seq),), fields, sig)
            self.settle(now)
            if self.alive and self.next_send <= now:
                self.send_all(now, scheduled=True)
        except DaemonDied:
            pass


# Daemon._progress: which step outcomes change what the FSM believes runs here
_PROGRESS = {"start": {"ok": "started"}, "probe": {"running": "running"}, "stop": {"ok": "stopped"}, "status": {"stopped": "stopped"}}
