"""The failover daemon: links, the membership FSM, a job worker, the control socket.

One epoll loop on a monotonic clock: heartbeat links, the control socket, and a
wake-up pipe (job results, signals). Every ``keepalive`` a packet goes out on every
link; every input is fed to ``membership.Membership`` and the actions it returns are
executed: packets sent at once, jobs (chain start/stop/restart/monitor, fence, ping,
self-fence) handed to ONE worker thread that runs the commands so heartbeats keep
flowing while a resource agent takes its time.

Files (see docs/failover.md):
  <run_dir>/failover.sock   control socket (status, standby, takeover, migrate)
  <run_dir>/role            this node's role, one word (read by the sync conflict policy)
  <state_dir>/timeline.jsonl, last-failover.json, generation
"""

from __future__ import annotations

import gc
import json
import operator
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hasync import __version__, model
from hasync.effects.files import atomic_write
from hasync.effects.keyfile import KeyFileError, load_key
from hasync.effects.net import ping_any
from hasync.effects.process import lock_memory, proc_stats, raise_priority
from hasync.effects.run import ProcRunner
from hasync.effects.systemd import Notifier
from hasync.failover import chain as C
from hasync.failover import packets as P
from hasync.failover.links import LinkError, open_link
from hasync.failover.membership import Event, FsmConfig, Job, JobResult, Membership, Monitor, Send
from hasync.failover.stall import StallMeter, Throttle, stall_threshold
from hasync.failover.timeline import Timeline

DEFAULT_STATE_DIR = "/var/lib/hasync/failover"
DEFAULT_RUN_DIR = "/run/hasync"


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    run_dir: Path

    @classmethod
    def default(cls, state_dir: str | None = None, run_dir: str | None = None) -> Paths:
        return cls(
            Path(state_dir or os.environ.get("HASYNC_FAILOVER_STATE_DIR") or DEFAULT_STATE_DIR),
            Path(run_dir or os.environ.get("HASYNC_RUN_DIR") or DEFAULT_RUN_DIR),
        )

    @property
    def socket(self) -> Path:
        return self.run_dir / "failover.sock"

    @property
    def role(self) -> Path:
        return self.run_dir / "role"


def local_node_name(cluster: model.Cluster, override: str | None = None) -> str:
    name = override or os.environ.get("HASYNC_NODE") or os.uname().nodename
    names = [n.name for n in cluster.nodes]
    if name not in names:
        short = name.split(".")[0]
        if short in names:
            return short
        raise SystemExit(f"this node is {name!r} (uname -n) but {cluster.path} names the nodes {', '.join(names)}; use --node")
    return name


def preference_order(cluster: model.Cluster) -> tuple[str, ...]:
    names = [n.name for n in cluster.nodes]
    pref = cluster.cluster.preferred_node
    if pref in names:
        names.remove(pref)
        names.insert(0, pref)
    return tuple(names)


def fsm_config(cluster: model.Cluster, local: str) -> FsmConfig:
    hb = cluster.heartbeat
    f = cluster.fencing
    return FsmConfig(
        cluster=cluster.cluster.name,
        local=local,
        peer=cluster.peer_of(local).name,
        order=preference_order(cluster),
        links=tuple(link.name for link in hb.links),
        resources=tuple(r.id for r in cluster.resources),
        keepalive=hb.keepalive,
        warntime=hb.warntime,
        deadtime=hb.deadtime,
        initdead=hb.initdead,
        auto_failback=hb.auto_failback,
        fencing_mode=f.mode,
        fence_configured=bool(f.command),
        on_stop_failure=f.on_stop_failure,
        ping_configured=bool(hb.ping),
        monitors=tuple((r.id, Monitor(r.monitor_interval, r.max_restarts)) for r in cluster.resources if r.monitor_interval > 0),
        fence_retry=max(1.0, hb.deadtime),
    )


def next_generation(state_dir: Path) -> int:
    """heartbeat's generation: grows at every start (persisted; the wall clock in ms is a
    floor, so a node whose state directory is lost, e.g. a tmpfs, still comes back higher)."""
    p = state_dir / "generation"
    try:
        old = int(p.read_text().strip())
    except (OSError, ValueError):
        old = 0
    gen = max(old + 1, time.time_ns() // 1_000_000)
    try:
        atomic_write(p, f"{gen}\n")
    except OSError:
        pass
    return gen


# --------------------------------------------------------------------------- worker


class Worker:
    """Runs one job at a time in a thread; posts progress and results to the main loop."""

    def __init__(self, cluster: model.Cluster, local: str, runner, post, profile: model.Profile | None):
        self.cluster = cluster
        self.local = local
        self.runner = runner
        self.post = post  # callable(kind, payload) -> None, thread-safe
        self.profile = profile
        self.resources = {r.id: r for r in cluster.resources}
        self.ids = tuple(r.id for r in cluster.resources)
        self.q: queue.Queue = queue.Queue()
        threading.stack_size(512 * 1024)
        self.thread = threading.Thread(target=self._loop, name="hasync-jobs", daemon=True)
        self.owned: list[str] = []
        self.stop_retries = 2
        self.retry_delay = 0.5
        # OCF agents run at this nice level (the takeover path must not starve behind a
        # busy CPU; an OCF agent does not leave long-lived daemons in our process tree)
        self.agent_nice = -10
        self.vip_fast = True  # IPaddr2: ip addr add + send_arp first, then the agent

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job, owned: list[str]) -> None:
        self.q.put((job, list(owned)))

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            job, owned = item
            try:
                res = self._run(job, owned)
            except Exception as e:  # a bug must not kill the worker silently
                res = JobResult(job.id, False, "error", f"internal error: {e!r}")
            self.post("done", res)

    def _run(self, job: Job, owned: list[str]) -> JobResult:
        k = job.kind
        if k == "probe":
            st = self._probe_all(job, list(self.ids))
            bad = [r for r, o in st.items() if o == "failed"]
            running = tuple(r for r in self.ids if st.get(r) == "running")
            return JobResult(job.id, not bad, "probed", f"status failed: {', '.join(bad)}" if bad else "", running)
        if k in ("start", "stop", "restart", "monitor"):
            idx = self.ids.index(job.resource) if job.resource else 0
            no_probe = tuple(r.id for r in self.cluster.resources if r.type in ("ocf", "systemd")) if job.trusted_stopped else ()
            plan = C.ChainPlan(k, self.ids, owned=owned, from_index=idx, parallel_probe=True, no_probe=no_probe,
                               stop_retries=self.stop_retries, retry_delay=self.retry_delay)
            return self._chain(job, plan)
        if k == "fence":
            return self._fence(job)
        if k == "ping":
            return self._ping(job)
        if k == "fence-self":
            return self._fence_self(job)
        return JobResult(job.id, False, "", f"unknown job {k}")

    def _chain(self, job: Job, plan: C.ChainPlan) -> JobResult:
        while True:
            step = plan.next_step()
            if step is None:
                break
            if step.op == "wait":
                time.sleep(step.seconds)
                plan.record(step, "ok")
                continue
            if step.op == "probe-all":
                plan.record(step, self._probe_all(job, [r for r in step.resource.split(",") if r not in plan.no_probe]))
                continue
            res = self.resources[step.resource]
            op = "status" if step.op in ("probe", "status", "monitor") else step.op
            t0 = time.monotonic()
            outcome, detail = self._op(res, op)
            dur = time.monotonic() - t0
            self.post("progress", {"job": job.id, "resource": step.resource, "op": step.op, "attempt": step.attempt, "outcome": outcome, "detail": detail, "duration_s": dur})
            plan.record(step, outcome, detail)
        r = plan.result
        detail = f"{r.failed_resource}: {r.reason}" if r.failed_resource else r.reason
        return JobResult(job.id, r.ok, r.outcome, detail, tuple(r.owned))

    def _probe_all(self, job: Job, ids: list[str]) -> dict[str, str]:
        """The status of several resources at once: one thread each, then the results."""
        results: dict[str, tuple[str, str, float]] = {}

        def one(rid: str) -> None:
            t0 = time.monotonic()
            try:
                o, d = self._op(self.resources[rid], "status")
            except Exception as e:  # pragma: no cover - defensive
                o, d = "failed", repr(e)
            results[rid] = (o, d, time.monotonic() - t0)

        threads = [threading.Thread(target=one, args=(rid,), daemon=True) for rid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for rid in ids:
            o, d, dur = results.get(rid, ("failed", "no result", 0.0))
            self.post("progress", {"job": job.id, "resource": rid, "op": "probe", "attempt": 1, "outcome": o, "detail": d, "duration_s": dur})
        return {rid: results.get(rid, ("failed",))[0] for rid in ids}

    def _vip_first(self, res: model.Resource) -> None:
        fast = C.vip_fast_path(res)
        if fast is None:
            return
        add, arp = fast
        t0 = time.monotonic()
        r = self.runner.run(add, timeout=5)
        if r.exit_code != 0:
            return  # e.g. already there, or no such device: the agent will say what is wrong
        try:
            os.makedirs("/run/resource-agents", exist_ok=True)
            subprocess.Popen(arp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            pass
        self.post("progress", {"job": 0, "resource": res.id, "op": "vip-up", "attempt": 1, "outcome": "ok", "detail": "", "duration_s": time.monotonic() - t0})

    def _op(self, res: model.Resource, op: str) -> tuple[str, str]:
        if op == "start" and self.vip_fast:
            self._vip_first(res)
        cmds = C.commands(res, op, profile=self.profile)
        for cmd in cmds:
            argv = cmd.argv
            if res.type == "ocf" and self.agent_nice:
                argv = ("nice", "-n", str(self.agent_nice), *argv)
            r = self.runner.run(argv, env=dict(cmd.env), timeout=cmd.timeout)
            if op == "status":
                st = C.classify_status(res, r.exit_code, r.stdout)
                if st != "running":
                    return st, _why(res, op, r)
            elif r.exit_code != 0:
                return ("timeout" if r.exit_code == 124 else "failed"), _why(res, op, r)
        return ("running" if op == "status" else "ok"), ""

    def _fence(self, job: Job) -> JobResult:
        f = self.cluster.fencing
        peer = self.cluster.peer_of(self.local)
        argv = [a.replace("{node}", peer.name).replace("{address}", peer.address) for a in f.command]
        t0 = time.monotonic()
        r = self.runner.run(argv, env={"HASYNC_FENCE_NODE": peer.name, "HASYNC_FENCE_ADDRESS": peer.address}, timeout=f.timeout)
        self.post("progress", {"job": job.id, "resource": "", "op": "fence", "outcome": "ok" if r.ok else "failed", "detail": _tail(r), "duration_s": time.monotonic() - t0, "argv": argv})
        return JobResult(job.id, r.ok, "fenced" if r.ok else "fence_failed", "" if r.ok else f"`{' '.join(argv)}` exited {r.exit_code}: {_tail(r)}")

    def _ping(self, job: Job) -> JobResult:
        addrs = self.cluster.heartbeat.ping
        t0 = time.monotonic()
        ok = ping_any(addrs)  # the same probe `hasync fence --tiebreak` uses
        self.post("progress", {"job": job.id, "resource": "", "op": "ping", "outcome": "ok" if ok else "failed", "detail": ", ".join(addrs), "duration_s": time.monotonic() - t0})
        return JobResult(job.id, ok, "", "" if ok else f"none of {', '.join(addrs)} answers")

    def _fence_self(self, job: Job) -> JobResult:
        f = self.cluster.fencing
        me = self.cluster.node(self.local)
        if job.reason == "fence-self" and f.self_command:
            argv = [a.replace("{node}", me.name).replace("{address}", me.address) for a in f.self_command]
        else:
            argv = ["reboot", "-f"]
        r = self.runner.run(argv, timeout=f.timeout)
        return JobResult(job.id, False, "", f"`{' '.join(argv)}` exited {r.exit_code}: {_tail(r)}")


def _tail(r) -> str:
    text = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return text[-1][:200] if text else ""


def _why(res: model.Resource, op: str, r) -> str:
    code = r.exit_code
    name = f" {C.OCF_CODES.get(code, '')}" if res.type == "ocf" and code in C.OCF_CODES else ""
    if code == 124:
        name = " timeout"
    t = _tail(r)
    return f"{op} exited {code}{name}" + (f": {t}" if t else "")


# --------------------------------------------------------------------------- daemon


_first = operator.itemgetter(0)


class Poller:
    """An epoll with the data of each registered fd (the main loop's one wait)."""

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.data: dict[int, tuple] = {}

    def register(self, fileobj, data: tuple) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self.ep.register(fd, select.EPOLLIN)
        self.data[fd] = data

    def unregister(self, fileobj) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if self.data.pop(fd, None) is not None:
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
        runner=None,
        priority: str = "fifo",
        mlock: bool = True,
        agent_nice: int = -10,
        vip_fast: bool = True,
        rx_wake: bool = False,
        log=None,
    ):
        self.cluster = cluster
        self.local = local
        self.key = key
        self.paths = paths
        self.runner = runner or ProcRunner()
        self.priority_mode = priority
        self.agent_nice = agent_nice
        self.vip_fast = vip_fast
        # rx_wake False (default): the links are not in the poll set; they are drained
        # (with kernel receive timestamps) whenever the daemon wakes anyway: to send, at
        # a deadline, for a command or a job result. Fewer wake-ups, same accuracy.
        self.rx_wake = rx_wake
        self.mlock = mlock
        self.log_stream = log or sys.stderr
        self.cfg = fsm_config(cluster, local)
        errs = self.cfg.validate()
        if errs:
            raise SystemExit("invalid heartbeat timing: " + "; ".join(errs))
        self.peer = cluster.peer_of(local)
        self.sel = Poller()
        # the links are not in the main wait (see rx_wake): a second epoll, polled without
        # waiting, says which have datagrams when the loop wakes anyway
        self.rx_poll = select.epoll()
        self.rx_links: dict[int, Any] = {}  # fd -> UdpLink | SerialLink
        self.links: list = []
        self.mac = P.Mac(key)  # HMAC key schedule done once, for every send and receive
        self.decoders: dict[str, P.FrameDecoder] = {}
        # per link: the last frame accepted from the peer, split around its sequence number
        # (a frame that starts and ends the same is the same state repeated: not parsed)
        self.last_sig: dict[str, tuple[bytes, bytes, int]] = {}
        self._tpl_fields: dict | None = None
        self._fields_stale = True  # the FSM may have changed what goes into our packets
        self._tx: list[list] = []  # per link: [link, head prefix, head suffix, seq, (sendto, dest) or None]
        self.seq: dict[str, int] = {}
        self.results: deque = deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stop_requested = False
        self.leave_started = False
        self.subscribers: list[dict] = []
        self.conns: dict[socket.socket, bytearray] = {}
        self.resource_state: dict[str, dict] = {r.id: {"state": "unknown"} for r in cluster.resources}
        self.recent: deque = deque(maxlen=40)
        self.role_written = ""
        self.started_wall = time.time()
        self.priority = "unchanged"
        self.mlocked = False
        self.notifier = Notifier()
        self.dirty = True
        self.n_wakes = self.n_fast = self.n_parsed = self.n_ticks = 0
        self.next_send = 0.0
        self.stall = StallMeter(stall_threshold(self.cfg.warntime))
        self.late_throttle = Throttle(1.0)  # late-heartbeat warnings: at most one a second, the rest counted
        self.profile = None
        try:
            from hasync.config import load_profile

            self.profile = load_profile(cluster.cluster.profile)
        except Exception:
            self.profile = None

    # ------------------------------------------------------------------ logging
    def log(self, level: str, msg: str) -> None:
        try:
            self.log_stream.write(f"hasync-failover[{self.local}] {level}: {msg}\n")
            self.log_stream.flush()
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ setup
    def setup(self, clock=None) -> None:
        self.clock = clock or time
        now = self._now()
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.generation = next_generation(self.paths.state_dir)
        self.fsm = Membership(self.cfg, now, generation=self.generation)
        self.timeline = Timeline(self.paths.state_dir, self.local)
        for link in self.cluster.heartbeat.links:
            try:
                lk = open_link(link, self.local)
            except LinkError as e:
                raise SystemExit(str(e)) from None
            self.links.append(lk)
            self.seq[lk.name] = 0
            self.decoders[lk.name] = P.FrameDecoder(self.key, mac=self.mac)
            self.rx_poll.register(lk.fileno(), select.EPOLLIN)
            self.rx_links[lk.fileno()] = lk
            if self.rx_wake:
                self.sel.register(lk, ("link", lk))
        self.sel.register(self.wake_r, ("wake", None))
        self._listen()
        self.priority = raise_priority(self.priority_mode)
        self.worker = Worker(self.cluster, self.local, self.runner, self._post, self.profile)
        self.worker.agent_nice = self.agent_nice
        self.worker.vip_fast = self.vip_fast
        self.worker.start()
        if self.mlock:
            self.mlocked = lock_memory()
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self._write_role()
        gc.collect()
        gc.freeze()  # start-up objects never change: keep them out of every collection
        self._event(Event("start", f"daemon started: generation {self.generation}, links {', '.join(lk.name for lk in self.links)}, "
                                   f"keepalive {self.cfg.keepalive * 1000:.0f} ms, deadtime {self.cfg.deadtime * 1000:.0f} ms, "
                                   f"priority {self.priority}, memory {'locked' if self.mlocked else 'not locked'}", "info"))
        self._apply(self.fsm.begin(now))
        if self.cfg.fencing_mode == "off":
            self._event(Event("warn", "fencing is OFF: shared data is not protected; a node that only looks dead may still write", "warn"))

    def _listen(self) -> None:
        path = self.paths.socket
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                probe.close()
                raise SystemExit(f"{path}: another hasync failover daemon is running")
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        s.bind(str(path))
        os.chmod(path, 0o600)
        s.listen(8)
        self.listener = s
        self.sel.register(s, ("listen", s))

    def _now(self) -> float:
        return self.clock.monotonic()

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def _post(self, kind: str, payload) -> None:
        self.results.append((kind, payload))
        try:
            os.write(self.wake_w, b"j")
        except BlockingIOError:
            pass

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        self.setup()
        self.notifier.ready(f"{self.local}: {self.fsm.role}")
        wd = self.notifier.watchdog_interval or 0.0
        mono = self.clock.monotonic
        poll = self.sel.ep.poll
        pdata = self.sel.data
        stall_limit = self.stall.threshold
        now = mono()
        next_wd = now + wd if wd else float("inf")
        self.next_send = now
        fsm_deadline = now
        fsm_stale = False  # fsm_deadline may be earlier than needed (heartbeats moved it later)
        # The steady state (a heartbeat to send, the peer's repeats to read) is one wake-up
        # per keepalive: one epoll wait, one poll of the links, a recvmsg per datagram, a
        # sendto per link; the FSM is ticked only when one of its deadlines passed or
        # something happened, and nothing is written to disk unless something changed.
        while True:
            if fsm_stale and fsm_deadline < self.next_send:
                fsm_deadline = self.fsm.next_deadline(now)
                fsm_stale = False
            due = min(fsm_deadline, self.next_send, next_wd)
            self.dirty = False
            self.n_wakes += 1
            waited_at = mono()
            events = poll(max(0.0, due - waited_at))
            now = mono()
            if now - due > stall_limit:
                self._on_stall(due, now, waited_at)
            for fd, _ in events:
                kind, obj = pdata.get(fd, ("gone", None))
                if kind == "wake":
                    self.dirty = True
                    self._on_wake()
                elif kind == "listen":
                    self._accept()
                elif kind == "conn":
                    self.dirty = True
                    self._on_conn(obj)
                # "link": drained below with the others
            if self._drain(now):
                fsm_stale = True  # repeats only move the deadlines later
                now = mono()
            # A quiet heartbeat only moves deadlines later: waking at the old one is
            # harmless, so the FSM is ticked (and the deadline recomputed) only when a
            # deadline passed or something happened.
            if now >= fsm_deadline or self.dirty or self.stop_requested:
                self.n_ticks += 1
                self._apply(self.fsm.tick(now))
                self.dirty = True
            if now >= self.next_send:
                self._send_all(now, scheduled=True)
            if now >= next_wd:
                self.notifier.watchdog()
                next_wd = now + wd
            if self.stop_requested and not self.leave_started:
                self.leave_started = True
                self.notifier.stopping()
                self._event(Event("stop", "shutting down: releasing the chain" if self.fsm.owned or self.fsm.role != "standby" else "shutting down", "info"))
                self._apply(self.fsm.begin_leave(now))
            if self.dirty:
                self._after()
                now = mono()
                fsm_deadline = self.fsm.next_deadline(now)
                fsm_stale = False
            if self.leave_started and self.fsm.can_exit:
                self._send_all()
                time.sleep(min(0.02, self.cfg.keepalive / 2))
                self._send_all()
                self._event(Event("stop", "left the cluster cleanly", "info"))
                self._after()
                self._cleanup()
                return 0

    def _on_stall(self, due: float, now: float, waited_at: float) -> None:
        st = self.stall.observe(due, now, waited_at)
        if st is not None:
            self._event(Event("stall", st.message(self.stall.threshold), "warn",
                              (("late_ms", round(st.late_s * 1000, 1)), ("busy_ms", round(st.busy_s * 1000, 1)),
                               ("count", st.count), ("unreported", st.unreported))))
            self.dirty = True  # the timeline line gets written

    def _cleanup(self) -> None:
        for s in list(self.conns):
            try:
                s.close()
            except OSError:
                pass
        try:
            self.listener.close()
            self.paths.socket.unlink(missing_ok=True)
        except OSError:
            pass
        try:
            self.paths.role.unlink(missing_ok=True)
        except OSError:
            pass
        for lk in self.links:
            lk.close()
        self.worker.q.put(None)

    # ------------------------------------------------------------------ actions
    def _apply(self, actions) -> None:
        self._fields_stale = True  # whatever the FSM did, the next send re-reads its fields
        if actions:
            self.dirty = True
        send = False
        for a in actions:
            if isinstance(a, Job):
                self.worker.submit(a, self.fsm.owned)
        for a in actions:
            if isinstance(a, Send):
                send = True
            elif isinstance(a, Event):
                self._event(a)
            elif isinstance(a, Job) and a.kind != "monitor":
                self.timeline.add("job", f"{a.kind}" + (f" {a.resource}" if a.resource else "") + (f" ({a.reason})" if a.reason else ""), "info", self._now(), job=a.kind)
        if send:
            self._send_all()

    def _event(self, ev: Event) -> None:
        message = ev.message
        if ev.kind == "late":
            held = self.late_throttle.admit(self._now())
            if held is None:
                return
            if held:
                message += f" ({held} more late heartbeat{'s' if held > 1 else ''} since the previous warning, not logged)"
        entry = self.timeline.add(ev.kind, message, ev.level, self._now(), **dict(ev.data))
        self.recent.append(entry)
        self.log(ev.level, message)
        for sub in self.subscribers:
            self._sub_send(sub, {"event": entry})

    def _send_all(self, now: float | None = None, scheduled: bool = False) -> None:
        """A heartbeat on every link. Scheduled ones keep a fixed rhythm (one per keepalive
        on average, whatever the wake-up latency); an extra one (a state change the peer
        must learn now) starts the rhythm again from now."""
        if now is None:
            now = self._now()
        if self._fields_stale:
            self._fields_stale = False
            fields = self.fsm.packet_fields()
            if fields != self._tpl_fields:  # the state changed: new per-link templates
                self._tpl_fields = fields
                for tx in self._tx:  # the sequence numbers go on across template changes
                    self.seq[tx[0].name] = tx[3]
                self._tx = []
                for lk in self.links:
                    pre, suf = P.encoder_template(P.Packet(link=lk.name, seq=0, **fields), self.key)
                    # a UDP link with one destination is sent to directly (no method call)
                    direct = (lk.sock.sendto, lk.dests[0]) if lk.kind != "serial" and len(getattr(lk, "dests", ())) == 1 else None
                    self._tx.append([lk, pre, suf, self.seq[lk.name], direct])
        ctx = self.mac.ctx
        for tx in self._tx:
            lk, pre, suf, seq, direct = tx
            seq += 1
            tx[3] = seq
            head = pre + seq.to_bytes(8, "big") + suf
            m = ctx.copy()
            m.update(head)
            if direct is not None:
                try:
                    direct[0](head + m.digest(), direct[1])
                    continue
                except OSError:
                    pass
            elif lk.send(head + m.digest()):
                continue
            self.fsm.on_send_error(lk.name)
        nxt = now + self.cfg.keepalive
        if scheduled and self.next_send + self.cfg.keepalive > now:
            nxt = self.next_send + self.cfg.keepalive  # else late (a stall): no burst to catch up
        self.next_send = nxt

    def _drain(self, now: float) -> bool:
        """Read every link that has something; feed it to the FSM in arrival order."""
        ready = self.rx_poll.poll(0)
        if not ready:
            return False
        real = time.time()
        items = []
        rx_links = self.rx_links
        for _ in range(64):
            for fd, _ev in ready:
                lk = rx_links[fd]
                if lk.kind == "serial":
                    for t, data in lk.receive_stamped(now, real):
                        items.append((t, lk, data))
                else:
                    got = lk.recv_one(now, real)
                    if got is not None:
                        items.append((got[0], lk, got[1]))
            ready = self.rx_poll.poll(0)
            if not ready:
                break
        if len(items) > 1:
            items.sort(key=_first)
        mac = self.mac
        fsm = self.fsm
        last_sig = self.last_sig
        for t, lk, data in items:
            if t > now:
                t = now
            if lk.kind == "serial":
                self._on_link(lk, [data], t)
                continue
            head = P.datagram_head(data, mac)
            if head is None:  # not exactly one valid frame: the decoder counts what is wrong
                self._on_link(lk, [data], t)
                continue
            # fast path: the frame equals the last one accepted on this link but for its
            # sequence number (the steady state): not parsed at all
            sig = last_sig.get(lk.name)
            if sig is not None and len(head) == sig[2] and head.startswith(sig[0]) and head.endswith(sig[1]):
                acts = fsm.on_repeat(t, lk.name, int.from_bytes(head[P.SEQ_SLICE], "big"))
                if acts is not None:
                    self.n_fast += 1
                    if acts:
                        self._apply(acts)
                    continue
            self._on_heads(lk, (head,), t, fast=False)
        return True

    def _on_link(self, lk, chunks: list[bytes], now: float) -> None:
        """Raw bytes from a link: through the link's frame decoder (counts bad MACs,
        garbage), then the frames found."""
        dec = self.decoders[lk.name]
        c = dec.counters
        before = (c.bad_mac, c.malformed, c.garbage_bytes)
        heads: list[bytes] = []
        for data in chunks:
            if lk.kind != "serial":
                dec.buf.clear()  # one datagram = one frame: never glue two together
            heads += dec.feed_raw(data)
        if lk.kind != "serial":
            dec.buf.clear()
        self._count_decode(lk.name, c, before)
        self._on_heads(lk, heads, now)

    def _on_heads(self, lk, heads, now: float, fast: bool = True) -> None:
        """Authenticated frames (header + payload) from *lk* (fast: try the repeat path)."""
        name = lk.name
        c = self.decoders[name].counters
        before = (c.bad_mac, c.malformed, c.garbage_bytes)
        for head in heads:
            sig = self.last_sig.get(name)
            if fast and sig is not None and len(head) == sig[2] and head.startswith(sig[0]) and head.endswith(sig[1]):
                acts = self.fsm.on_repeat(now, name, int.from_bytes(head[P.SEQ_SLICE], "big"))
                if acts is not None:
                    self.n_fast += 1
                    if acts:
                        self._apply(acts)
                    continue
            p = P.parse_head(head, c)
            self.n_parsed += 1
            self.dirty = True  # a new state from the peer: waiting commands re-check
            self._fields_stale = True
            if p is None:
                continue
            self._apply(self.fsm.on_packet(now, name, p))
            if p.node == self.peer.name and self.fsm.guard.last_seq.get((p.node, name)) == p.seq:
                self.last_sig[name] = (head[: P.SEQ_SLICE.start], head[P.SEQ_SLICE.stop :], len(head))
        self._count_decode(name, c, before)

    def _count_decode(self, name: str, c, before) -> None:
        after = (c.bad_mac, c.malformed, c.garbage_bytes)
        if after != before:
            self.fsm.on_decode_errors(name, after[0] - before[0], after[1] - before[1], after[2] - before[2])

    def _on_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while self.results:
            kind, payload = self.results.popleft()
            now = self._now()
            if kind == "progress":
                self._progress(now, payload)
            elif kind == "done":
                self._apply(self.fsm.on_job_done(now, payload))

    def _progress(self, now: float, p: dict) -> None:
        rid, op, outcome = p["resource"], p["op"], p["outcome"]
        ms = round(p["duration_s"] * 1000, 1)
        if rid:
            state = {"start": {"ok": "started"}, "probe": {"running": "running"}, "stop": {"ok": "stopped"}, "status": {"stopped": "stopped"}}.get(op, {}).get(outcome)
            rs = self.resource_state[rid]
            rs.update({"last_op": op, "outcome": outcome, "duration_ms": ms, "detail": p.get("detail", ""), "at": time.time()})
            if state in ("started", "running"):
                rs["state"] = "running"
            elif state == "stopped":
                rs["state"] = "stopped"
            elif op == "probe" and outcome != "running":
                rs["state"] = "stopped"
            elif op == "monitor":
                rs["state"] = "running" if outcome == "running" else "failed"
            elif outcome in ("failed", "timeout"):
                rs["state"] = "failed"
            if state:
                self._apply(self.fsm.on_progress(now, rid, state))
            level = "info" if outcome in ("ok", "running", "stopped") or op == "probe" else "error"
            if op == "monitor" and outcome == "running":
                return  # routine: not worth a timeline line
            msg = f"{rid} {op}: {outcome} in {ms:.0f} ms" + (f" ({p['detail']})" if p.get("detail") and level != "info" else "")
            self._event(Event("resource", msg, level, (("resource", rid), ("op", op), ("outcome", outcome), ("duration_ms", ms))))
        else:
            level = "info" if outcome == "ok" else "warn"
            self._event(Event(op, f"{op}: {outcome} in {ms:.0f} ms" + (f" ({p.get('detail')})" if p.get("detail") else ""), level, (("outcome", outcome), ("duration_ms", ms))))

    def _after(self) -> None:
        if self.fsm.role != self.role_written:
            self._write_role()
            if self.fsm.job is None and self.fsm.role in ("active", "standby"):
                self.timeline.settle(self.fsm.role, self._now())
        elif self.timeline.current is not None and self.fsm.job is None and self.fsm.role in ("active", "standby") and not self.fsm.gate:
            self.timeline.settle(self.fsm.role, self._now())
        if self.timeline.pending or self.timeline.dirty_last:
            self.timeline.flush()
        if self.subscribers:
            self._check_subscribers()

    def _write_role(self) -> None:
        try:
            atomic_write(self.paths.role, self.fsm.role + "\n")
            self.role_written = self.fsm.role
        except OSError as e:
            self.log("warn", f"cannot write {self.paths.role}: {e}")
            self.role_written = self.fsm.role
        self.notifier.status(f"{self.local}: {self.fsm.role}")

    # ------------------------------------------------------------------ control socket
    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, OSError):
            return
        conn.setblocking(False)
        self.conns[conn] = bytearray()
        self.sel.register(conn, ("conn", conn))

    def _close(self, conn: socket.socket) -> None:
        self.sel.unregister(conn)
        self.conns.pop(conn, None)
        self.subscribers = [s for s in self.subscribers if s["conn"] is not conn]
        try:
            conn.close()
        except OSError:
            pass

    def _on_conn(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        buf = self.conns.get(conn)
        if buf is None:
            return
        buf += data
        if len(buf) > 65536:
            self._close(conn)
            return
        if b"\n" not in buf:
            return
        line = bytes(buf).split(b"\n", 1)[0]
        buf.clear()
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
        except (ValueError, AttributeError):
            self._reply(conn, {"ok": False, "message": "bad request"})
            self._close(conn)
            return
        now = self._now()
        if cmd == "status":
            self._reply(conn, self.status(now))
            self._close(conn)
            return
        if cmd == "migrate":
            to = req.get("to", "")
            if to == self.local:
                cmd = "takeover"
            elif to == self.peer.name:
                cmd = "standby"
            else:
                self._reply(conn, {"ok": False, "message": f"no node named {to!r}; nodes: {self.local}, {self.peer.name}"})
                self._close(conn)
                return
        if cmd in ("standby", "takeover"):
            if self.leave_started:
                self._reply(conn, {"ok": False, "message": "the daemon is shutting down"})
                self._close(conn)
                return
            self.timeline.add("command", f"operator: {cmd}", "info", now)
            ok, msg, actions = self.fsm.command(now, cmd)
            self._reply(conn, {"ok": ok, "message": msg, "node": self.local, "role": self.fsm.role})
            if not ok:
                self._close(conn)
                return
            sub = {"conn": conn, "cmd": cmd, "since": now}
            self.subscribers.append(sub)
            self._apply(actions)
            self._after()
            return
        self._reply(conn, {"ok": False, "message": f"unknown command {cmd!r}"})
        self._close(conn)

    def _reply(self, conn: socket.socket, obj: dict) -> bool:
        try:
            conn.sendall((json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode())
            return True
        except (BlockingIOError, OSError):
            return False

    def _sub_send(self, sub: dict, obj: dict) -> None:
        if not self._reply(sub["conn"], obj):
            sub["dead"] = True

    def _check_subscribers(self) -> None:
        f = self.fsm
        for sub in list(self.subscribers):
            done, ok = False, False
            if sub.get("dead"):
                self._close(sub["conn"])
                continue
            if f.job is None and not f.gate:
                if sub["cmd"] == "standby":
                    if f.role == "standby" and (f.peer.role == "active" or f.peer.state != "up"):
                        done, ok = True, f.peer.role == "active" and f.peer.state == "up"
                    elif f.role == "stop-failed":
                        done = True
                    elif f.role == "standby" and f.peer.state == "up" and f.peer.flags & P.F_FAILED:
                        done = True
                elif sub["cmd"] == "takeover":
                    if f.role == "active":
                        done, ok = True, True
                    elif f.role == "stop-failed" or (f.role == "standby" and f.failed):
                        done = True
            if done:
                self._sub_send(sub, {"done": True, "ok": ok, "role": f.role, "peer_role": f.peer.role, "peer_state": f.peer.state, "timeline": self.timeline.last})
                self._close(sub["conn"])

    # ------------------------------------------------------------------ status
    def status(self, now: float) -> dict:
        snap = self.fsm.snapshot(now)
        owned_here = set(self.fsm.owned)
        owned_peer = set(self.fsm.peer.owned) if self.fsm.peer.state == "up" else set()
        resources = []
        for r in self.cluster.resources:
            rs = dict(self.resource_state[r.id])
            where = [n for n, o in ((self.local, owned_here), (self.peer.name, owned_peer)) if r.id in o]
            resources.append({
                "id": r.id,
                "type": r.type,
                "agent": r.agent,
                "running_on": where,
                "state_here": rs.get("state", "unknown"),
                "last_op": rs.get("last_op"),
                "last_outcome": rs.get("outcome"),
                "last_duration_ms": rs.get("duration_ms"),
                "detail": rs.get("detail", ""),
                "monitor_interval_s": r.monitor_interval,
            })
        warnings = list(snap["warnings"])
        if len(self.links) < 2:
            warnings.append("only one heartbeat link: a single failure looks like a dead peer")
        if set(owned_here) and owned_peer:
            warnings.append("the chain runs on BOTH nodes")
        p = self.fsm.peer
        snap.update({
            "nodes": [
                {"name": self.local, "this": True, "state": "up", "role": self.fsm.role, "owned": list(self.fsm.owned)},
                {"name": p.name, "this": False, "state": p.state, "role": p.role if p.state == "up" else p.state, "owned": list(p.owned) if p.state == "up" else []},
            ],
            "cluster": self.cluster.cluster.name,
            "config": self.cluster.path,
            "preferred_node": self.cfg.order[0],
            "auto_failback": self.cfg.auto_failback,
            "fencing": {"mode": self.cluster.fencing.mode, "configured": bool(self.cluster.fencing.command), "on_stop_failure": self.cluster.fencing.on_stop_failure},
            "resources": resources,
            "warnings": warnings,
            "last_failover": self.timeline.last,
            "recent": list(self.recent)[-15:],
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started_wall, 1),
                "priority": self.priority,
                "memory_locked": self.mlocked,
                "wakes": self.n_wakes,
                "packets_fast": self.n_fast,
                "packets_parsed": self.n_parsed,
                "ticks": self.n_ticks,
                "late_heartbeats": self.late_throttle.total,
                **self.stall.snapshot(now),
                **proc_stats(),
            },
            "files": {"role": str(self.paths.role), "socket": str(self.paths.socket), "timeline": str(self.timeline.path)},
        })
        return snap


def run_daemon(cluster: model.Cluster, *, node: str | None, state_dir: str | None, run_dir: str | None, priority: str, mlock: bool, agent_nice: int = -10, vip_fast: bool = True, rx_wake: bool = False) -> int:
    local = local_node_name(cluster, node)
    try:
        key = load_key(cluster.heartbeat.auth_key)
    except KeyFileError as e:
        print(f"hasync failover: {e}", file=sys.stderr)
        return 2
    d = Daemon(cluster, local, key, Paths.default(state_dir, run_dir), priority=priority, mlock=mlock, agent_nice=agent_nice, vip_fast=vip_fast, rx_wake=rx_wake)
    return d.run()
