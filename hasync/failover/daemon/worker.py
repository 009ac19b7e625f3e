"""The job thread: runs the FSM's jobs one at a time, every command through the Runner.

Chain jobs (probe, start, stop, restart, monitor) follow chain.ChainPlan step by step;
fence, ping and self-fence run one command. The thread posts a ``Progress`` for every
command and a ``JobResult`` at the end to the ``Mailbox``, whose pipe wakes the main loop:
heartbeats keep flowing while a resource agent takes its time.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable

from hasync import model, operations
from hasync.effects import net
from hasync.effects.clock import MonotonicClock
from hasync.effects.files import ensure_dir
from hasync.effects.run import BackgroundRunner, Result
from hasync.failover import chain
from hasync.failover.fencing import fence_command, self_fence_command
from hasync.failover.membership import Job, JobResult
from hasync.failover.resource_state import Progress
from hasync.failover.states import CHAIN_JOBS, JobKind, JobOutcome, OpOutcome, StepOp
from hasync.operations import ocf


class Mailbox:
    """From the worker thread to the main loop: a queue and a pipe that wakes the loop's
    epoll (the same pipe is the signal wake-up fd: a signal also wakes the loop)."""

    def __init__(self) -> None:
        self.items: deque = deque()
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self.r

    def post(self, item: Progress | JobResult) -> None:
        """Thread-safe (deque.append is atomic; the pipe write wakes the loop)."""
        self.items.append(item)
        try:
            os.write(self.w, b"j")
        except BlockingIOError:
            pass  # the pipe is full: the loop is woken anyway

    def take(self) -> list[Progress | JobResult]:
        """Empty the pipe and the queue (the main loop, on a wake-up)."""
        try:
            while os.read(self.r, 512):
                pass
        except BlockingIOError:
            pass
        out = []
        while self.items:
            out.append(self.items.popleft())
        return out

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class Worker:
    """Runs one job at a time in a thread; posts progress and results. *group*: the
    resource group whose chain it runs (several groups: one worker each, ``WorkerPool``);
    None: the whole chain."""

    def __init__(
        self,
        cluster: model.Cluster,
        local: str,
        runner: BackgroundRunner,
        post: Callable[[Progress | JobResult], None],
        profile: model.Profile | None,
        *,
        clock=None,
        agent_nice: int = -10,
        vip_fast: bool = True,
        group: model.Group | None = None,
        rsctmp: str | None = None,
    ):
        self.cluster = cluster
        self.local = local
        self.runner = runner
        self.post = post  # thread-safe
        self.profile = profile
        self.clock = clock or MonotonicClock()
        chain_resources = group.resources if group is not None else cluster.resources
        self.resources = {r.id: r for r in chain_resources}
        self.ids = tuple(r.id for r in chain_resources)
        self.q: queue.Queue = queue.Queue()
        threading.stack_size(512 * 1024)
        name = f"hasync-jobs-{group.id}" if group is not None else "hasync-jobs"
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.stop_retries = 2
        self.retry_delay = 0.5
        # OCF agents run at this nice level (the takeover path must not starve behind a
        # busy CPU; an OCF agent does not leave long-lived daemons in our process tree)
        self.agent_nice = agent_nice
        self.vip_fast = vip_fast  # IPaddr2: ip addr add + send_arp first, then the agent
        self.rsctmp = ocf.RSCTMP if rsctmp is None else rsctmp  # (read now: tests point it elsewhere)

    def start(self) -> None:
        if any(r.type == "ocf" for r in self.resources.values()):
            ensure_dir(self.rsctmp, ocf.RSCTMP_MODE)  # before the first agent runs (ocf.RSCTMP)
        self.thread.start()

    def submit(self, job: Job, owned: list[str]) -> None:
        self.q.put((job, list(owned)))

    def stop(self) -> None:
        self.q.put(None)

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            job, owned = item
            try:
                res = self._run(job, owned)
            except Exception as e:  # a bug must not kill the worker silently
                res = JobResult(job.id, False, JobOutcome.ERROR, f"internal error: {e!r}")
            self.post(res)

    def _run(self, job: Job, owned: list[str]) -> JobResult:
        k = job.kind
        if k == JobKind.PROBE:
            st = self._probe_all(job, list(self.ids))
            bad = [r for r, o in st.items() if o == OpOutcome.FAILED]
            running = tuple(r for r in self.ids if st.get(r) == OpOutcome.RUNNING)
            return JobResult(job.id, not bad, JobOutcome.PROBED, f"status failed: {', '.join(bad)}" if bad else "", running)
        if k in CHAIN_JOBS:
            idx = self.ids.index(job.resource) if job.resource else 0
            no_probe = tuple(r.id for r in self.resources.values() if r.type in ("ocf", "systemd")) if job.trusted_stopped else ()
            plan = chain.ChainPlan(JobKind(k), self.ids, owned=owned, from_index=idx, parallel_probe=True, no_probe=no_probe,
                                   stop_retries=self.stop_retries, retry_delay=self.retry_delay)
            return self._chain(job, plan)
        if k == JobKind.FENCE:
            return self._fence(job)
        if k == JobKind.PING:
            return self._ping(job)
        if k == JobKind.FENCE_SELF:
            return self._fence_self(job)
        return JobResult(job.id, False, JobOutcome.NONE, f"unknown job {k}")

    def _chain(self, job: Job, plan: chain.ChainPlan) -> JobResult:
        while True:
            step = plan.next_step()
            if step is None:
                break
            if step.op == StepOp.WAIT:
                self.clock.sleep(step.seconds)
                plan.record(step, OpOutcome.OK)
                continue
            if step.op == StepOp.PROBE_ALL:
                plan.record(step, self._probe_all(job, [r for r in step.resource.split(",") if r not in plan.no_probe]))
                continue
            res = self.resources[step.resource]
            op = "status" if step.op in (StepOp.PROBE, StepOp.STATUS, StepOp.MONITOR) else step.op
            t0 = self.clock.now()
            outcome, detail = self._op(res, op, interval=res.monitor_interval if step.op == StepOp.MONITOR else 0.0)
            self.post(Progress(step.resource, step.op, outcome, detail, self.clock.now() - t0, job.id, step.attempt))
            plan.record(step, outcome, detail)
        r = plan.result
        detail = f"{r.failed_resource}: {r.reason}" if r.failed_resource else r.reason
        return JobResult(job.id, r.ok, r.outcome, detail, tuple(r.owned))

    def _probe_all(self, job: Job, ids: list[str]) -> dict[str, str]:
        """The status of several resources at once: one thread each, then the results."""
        results: dict[str, tuple[str, str, float]] = {}

        def one(rid: str) -> None:
            t0 = self.clock.now()
            try:
                o, d = self._op(self.resources[rid], "status")
            except Exception as e:  # pragma: no cover - defensive
                o, d = OpOutcome.FAILED, repr(e)
            results[rid] = (o, d, self.clock.now() - t0)

        threads = [threading.Thread(target=one, args=(rid,), daemon=True) for rid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for rid in ids:
            o, d, dur = results.get(rid, (OpOutcome.FAILED, "no result", 0.0))
            self.post(Progress(rid, StepOp.PROBE, o, d, dur, job.id))
        return {rid: results.get(rid, (OpOutcome.FAILED,))[0] for rid in ids}

    def _vip_first(self, res: model.Resource) -> None:
        fast = chain.vip_fast_path(res)
        if fast is None:
            return
        add, arp = fast
        t0 = self.clock.now()
        r = self.runner.run(add, timeout=5)
        if r.exit_code != 0:
            return  # e.g. already there, or no such device: the agent will say what is wrong
        ensure_dir(self.rsctmp, ocf.RSCTMP_MODE)  # send_arp's pid file
        self.runner.spawn(arp)  # it keeps announcing after the start: not waited for
        self.post(Progress(res.id, "vip-up", OpOutcome.OK, "", self.clock.now() - t0))

    def _op(self, res: model.Resource, op: str, *, interval: float = 0.0) -> tuple[str, str]:
        if op == "start" and self.vip_fast:
            self._vip_first(res)
        states: list[tuple[str, str]] = []  # status: (outcome, why) of each unit
        for cmd in operations.commands(res, op, profile=self.profile, interval=interval):
            argv = cmd.argv
            if res.type == "ocf" and self.agent_nice:
                argv = ("nice", "-n", str(self.agent_nice), *argv)
            r = self.runner.run(argv, env=dict(cmd.env), timeout=cmd.timeout)
            # an OCF agent's action names the step that failed (promote after a good start)
            what = cmd.argv[-1] if res.type == "ocf" else op
            if op == "status":
                states.append((chain.classify_status(res, r.exit_code, r.stdout), _why(res, what, r)))
            elif r.exit_code != 0:
                return (OpOutcome.TIMEOUT if r.exit_code == 124 else OpOutcome.FAILED), _why(res, what, r)
        if op != "status":
            return OpOutcome.OK, ""
        return status_of_units(states)

    def _fence(self, job: Job) -> JobResult:
        cmd = fence_command(self.cluster.fencing, self.cluster.peer_of(self.local))
        t0 = self.clock.now()
        r = self.runner.run(cmd.argv, env=dict(cmd.env), timeout=cmd.timeout)
        self.post(Progress("", "fence", OpOutcome.OK if r.ok else OpOutcome.FAILED, _tail(r), self.clock.now() - t0, job.id))
        if r.ok:
            return JobResult(job.id, True, JobOutcome.FENCED, "")
        return JobResult(job.id, False, JobOutcome.FENCE_FAILED, f"`{cmd.text}` exited {r.exit_code}: {_tail(r)}")

    def _ping(self, job: Job) -> JobResult:
        addrs = self.cluster.heartbeat.ping
        t0 = self.clock.now()
        ok = net.ping_any(addrs)  # the same probe `hasync fence --tiebreak` uses
        self.post(Progress("", "ping", OpOutcome.OK if ok else OpOutcome.FAILED, ", ".join(addrs), self.clock.now() - t0, job.id))
        return JobResult(job.id, ok, JobOutcome.NONE, "" if ok else f"none of {', '.join(addrs)} answers")

    def _fence_self(self, job: Job) -> JobResult:
        cmd = self_fence_command(self.cluster.fencing, self.cluster.node(self.local), job.reason)
        r = self.runner.run(cmd.argv, timeout=cmd.timeout)
        return JobResult(job.id, False, JobOutcome.NONE, f"`{cmd.text}` exited {r.exit_code}: {_tail(r)}")


class WorkerPool:
    """Several resource groups: one ``Worker`` (thread, queue) per group, so each group
    runs one job at a time and the groups' agents may run at once. A job goes to its
    group's worker (``Job.group``; the node's fence, ping and self-fence jobs too: the
    group that asked for them)."""

    def __init__(self, workers: dict[str, Worker]):
        self.workers = workers
        self.first = next(iter(workers.values()))

    def start(self) -> None:
        for w in self.workers.values():
            w.start()

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()

    def submit(self, job: Job, owned: list[str]) -> None:
        w = self.workers.get(job.group, self.first)
        w.submit(job, [r for r in owned if r in w.resources])


def status_of_units(states: list[tuple[str, str]]) -> tuple[str, str]:
    """One resource's status from its units' (a `service` may be several): RUNNING or
    STOPPED only when every unit says so; a unit that cannot tell, or some running and
    some not, is FAILED (a stop is not done, a start must run, a monitor restarts it)."""
    outcomes = {o for o, _ in states}
    if outcomes <= {OpOutcome.RUNNING}:
        return OpOutcome.RUNNING, ""
    if outcomes == {OpOutcome.STOPPED}:
        return OpOutcome.STOPPED, states[0][1]
    bad = [why for o, why in states if o == OpOutcome.FAILED]
    return OpOutcome.FAILED, "; ".join(bad) if bad else "partly running: " + "; ".join(f"{o}" + (f" ({w})" if w else "") for o, w in states)


def _tail(r: Result) -> str:
    text = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return text[-1][:200] if text else ""


def _why(res: model.Resource, op: str, r: Result) -> str:
    code = r.exit_code
    name = f" {ocf.OCF_CODES.get(code, '')}" if res.type == "ocf" and code in ocf.OCF_CODES else ""
    if code == 124:
        name = " timeout"
    t = (ocf.status_detail(res, code) if res.type == "ocf" and op == "monitor" else "") or _tail(r)
    return f"{op} exited {code}{name}" + (f": {t}" if t else "")
