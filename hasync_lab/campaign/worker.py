"""The daemon's job worker in simulation: one job at a time, in submission order, each
step taking simulated time, over the node's ground truth.

Chain jobs run the real ``ChainPlan`` with the options ``Worker._run`` gives it
(parallel probe, no probe of OCF/systemd resources when the FSM trusts they are stopped,
two stop retries 0.5 s apart); status results go through the real ``classify_status``
(a mutant may replace it). Ground truth:
- a start makes the resource run from the moment it begins (a half-started resource
  may already hold the address or the mount) and a failed start leaves it running
  until it is stopped;
- a stop removes it when it succeeds; a failed or timed-out stop leaves it running;
- a status or probe reads what runs (exit 0), else "not running" (7 for OCF, 3
  otherwise; systemd units say "active"/"inactive" as ``systemctl is-active`` does), or
  times out (124) while a status-timeout fault holds;
- the daemon's unit has KillMode=process: a SIGKILLed daemon's agents finish what they
  were doing (the effect happens), only nobody reads the result;
- SIGSTOP freezes the worker thread, not its children: effects happen, results wait.
"""

from __future__ import annotations

from hasync import model
from hasync.failover import chain
from hasync.failover.membership import Job, JobResult

from .errors import DaemonDied

HASYNC, FAULT = "hasync", "fault"  # who started a running resource (ground truth)
CHAIN_KINDS = ("start", "stop", "restart", "monitor")
STOP_RETRIES, RETRY_DELAY = 2, 0.5  # Worker's defaults


def model_resource(spec) -> model.Resource:
    return model.Resource(id=spec.id, type=spec.type, agent=spec.id)


class Worker:
    def __init__(self, driver, group: str = ""):
        self.d = driver
        self.sim = driver.sim
        self.group = group  # several resource groups: this worker's group ("": the one chain)
        self.ids = driver.sim.sc.group_ids(group)
        self.node = driver.node
        self.alive = True
        self.queue: list = []
        self.busy = False
        self.job: Job | None = None
        self.plan: chain.ChainPlan | None = None
        self.token = 0

    def submit(self, job: Job, owned: list, now: float) -> None:
        self.queue.append((job, owned))
        if not self.busy:
            self.busy = True
            self.sim.at(now, self._next)

    def _next(self) -> None:
        if not self.alive:
            return
        if not self.queue:
            self.busy = False
            self.job = self.plan = None
            return
        job, owned = self.queue.pop(0)
        self.job = job
        self.token += 1
        sc = self.sim.sc
        k = job.kind
        if k == "probe":
            self._later(max(self.sim.spec[r].status_s for r in self.ids), self._probe_done)
        elif k in CHAIN_KINDS:
            idx = self.ids.index(job.resource) if job.resource else 0
            no_probe = tuple(r for r in self.ids if self.sim.spec[r].type in ("ocf", "systemd")) if job.trusted_stopped else ()
            self.plan = chain.ChainPlan(k, self.ids, owned=owned, from_index=idx, parallel_probe=True, no_probe=no_probe,
                                        stop_retries=STOP_RETRIES, retry_delay=RETRY_DELAY)
            self._step()
        elif k == "fence":
            mode = self.node.fence_behaviour
            dur = self.node.fence_slow_s if mode == "slow" else sc.fence_s
            if dur > sc.fence_timeout_s:  # the runner kills the agent: a failed fence
                self._later(sc.fence_timeout_s, self._fence_done, "timeout")
            else:
                self._later(dur, self._fence_done, mode)
        elif k == "ping":
            self._later(sc.ping_s, self._ping_done)
        elif k == "fence-self":
            self._later(0.01, self._fence_self)
        else:
            self._finish(JobResult(job.id, False, "", f"unknown job {k}"))

    # ------------------------------------------------------------------ plumbing
    def _later(self, dur: float, fn, *args) -> None:
        self.sim.at(self.sim.now + dur, self._fire, self.token, self.node.boot_id, fn, args)

    def _fire(self, token: int, boot_id: int, fn, args) -> None:
        node = self.node
        if boot_id != node.boot_id or not node.powered:
            return  # the node lost power: nothing of this job happened after that
        fn(*args, report=self.alive and token == self.token)

    def _report(self, fn, *args) -> None:
        """Hand a result to the daemon now, or when it is thawed (``Driver.thaw`` runs the
        waiting ones with settle=False: the daemon reads its backlog before it ticks)."""
        node = self.node
        if node.frozen:
            node.deferred.append((self.report_now, (fn, args)))
        else:
            self.report_now(fn, args)

    def report_now(self, fn, args, settle: bool = True) -> None:
        if not self.alive:
            return
        try:
            fn(*args)
            if settle:
                self.d.settle(self.sim.now)
        except DaemonDied:
            pass

    def _finish(self, res: JobResult) -> None:
        def done(res=res):
            self.d.job_done(self.sim.now, res)
            self.sim.at(self.sim.now, self._next)

        self._report(done)

    # ------------------------------------------------------------------ status
    def status(self, rid: str) -> tuple[str, int]:
        node = self.node
        spec = self.sim.spec[rid]
        if rid in node.status_hang:
            code, out = 124, ""
        elif rid in node.running:
            code, out = 0, {"heartbeat": "running", "systemd": "active"}.get(spec.type, "")
        else:
            code, out = (7, "") if spec.type == "ocf" else (3, "inactive" if spec.type == "systemd" else "stopped")
        return self.sim.classify(self.sim.model_res[rid], code, out), code

    def _status_s(self, rid: str) -> float:
        spec = self.sim.spec[rid]
        return spec.monitor_timeout if rid in self.node.status_hang else spec.status_s

    # ------------------------------------------------------------------ probe, ping, fence-self
    def _probe_done(self, report: bool) -> None:
        if not report:
            return
        job = self.job
        st = {rid: self.status(rid)[0] for rid in self.ids}

        def post():
            for rid, o in st.items():
                self.d.progress(self.sim.now, rid, "probe", o)

        self._report(post)
        bad = [r for r, o in st.items() if o == "failed"]
        running = tuple(r for r in self.ids if st[r] == "running")
        self._finish(JobResult(job.id, not bad, "probed", f"status failed: {', '.join(bad)}" if bad else "", running))

    def _ping_done(self, report: bool) -> None:
        if report:
            ok = self.node.ping_ok or self.node.ping_lies
            self._finish(JobResult(self.job.id, ok, "", "" if ok else "no ping node answers"))

    def _fence_done(self, mode: str, report: bool) -> None:
        """The fence agent returns: "ok"/"slow" reset the peer (off, then it boots again; a
        node already without power is confirmed off and stays so), "lie" says so but did
        nothing, "fail"/"timeout" failed."""
        peer = self.sim.peer_of(self.node)
        ok = mode in ("ok", "slow", "lie")
        self.sim.fence_result(self.node, peer, ok, lied=mode == "lie")
        if mode in ("ok", "slow") and peer.powered:
            peer.reboot(f"fenced by {self.node.name}")
        if report:
            detail = "" if ok else f"fence agent {'timed out' if mode == 'timeout' else 'exited 1'}"
            self._finish(JobResult(self.job.id, ok, "fenced" if ok else "fence_failed", detail))

    def _fence_self(self, report: bool) -> None:
        self.sim.trace(self.node.name, "fence-self", f"{self.node.name} fences itself ({self.job.reason if self.job else ''})")
        self.node.reboot("fence-self")

    # ------------------------------------------------------------------ chain steps
    def _step(self) -> None:
        plan = self.plan
        step = plan.next_step()
        if step is None:
            r = plan.result
            detail = f"{r.failed_resource}: {r.reason}" if r.failed_resource else r.reason
            self._finish(JobResult(self.job.id, r.ok, r.outcome, detail, tuple(r.owned)))
            return
        node = self.node
        op, rid = step.op, step.resource
        if op == "wait":
            self._later(step.seconds, self._step_done, step, None)
        elif op == "probe-all":
            ids = [r for r in rid.split(",") if r not in plan.no_probe]
            self._later(max(self._status_s(r) for r in ids), self._step_done, step, ids)
        elif op in ("probe", "status", "monitor"):
            self._later(self._status_s(rid), self._step_done, step, None)
        elif op == "start":
            spec = self.sim.spec[rid]
            node.set_running(rid, HASYNC)
            self._later(spec.start_s, self._step_done, step, None)
        elif op == "stop":
            spec = self.sim.spec[rid]
            self._later(spec.stop_timeout if rid in node.stop_hang else spec.stop_s, self._step_done, step, None)
        else:
            raise ValueError(f"unknown step {step}")

    def _step_done(self, step, ids, report: bool) -> None:
        node = self.node
        op, rid = step.op, step.resource
        # the effect on the node happens whether or not the daemon is there to see it
        outcome: object
        if op == "wait":
            outcome = "ok"
        elif op == "probe-all":
            outcome = {r: self.status(r)[0] for r in ids}
        elif op in ("probe", "status", "monitor"):
            outcome = self.status(rid)[0]
        elif op == "start":
            outcome = "failed" if rid in node.start_fail else "ok"
            if outcome == "ok" and rid not in node.running:
                node.set_running(rid, HASYNC)  # stopped meanwhile (a crash): the start wins
        else:  # stop
            if rid in node.stop_hang:
                outcome = "timeout"
            elif rid in node.stop_fail:
                outcome = "failed"
            else:
                outcome = "ok"
                node.drop_running(rid)
        if not report:
            return
        plan = self.plan

        def post():
            now = self.sim.now
            if op == "probe-all":
                for r, o in outcome.items():
                    self.d.progress(now, r, "probe", o)
            elif op != "wait":
                self.d.progress(now, rid, op, outcome)
            plan.record(step, outcome)
            if plan.done and self.job is not None and self.job.kind in ("start", "restart") and plan.result.ok:
                for r in plan.result.owned:  # a chain hasync completed is hasync's
                    if r in node.running:
                        node.set_running(r, HASYNC)
            self.sim.at(now, self._step_when_alive)

        self._report(post)

    def _step_when_alive(self) -> None:
        if self.alive and self.plan is not None:
            self._step()
