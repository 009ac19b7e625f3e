"""The resource chain's plans and the reading of a status (pure). The commands each
operation runs are hasync.operations' (``commands(resource, op)``).

``ChainPlan`` is the step machine of one job (start, stop, restart-from, monitor):
``next_step()`` says what to run, ``record(step, outcome)`` feeds back what happened.
It implements heartbeat's rules: start in order skipping resources whose status says
running -- unless a resource before it had to be started, in which case it is restarted
(Pacemaker's ordering: a service left running over a stopped dependency is not trusted); on a start failure stop what runs, in reverse, and report the failure (the
caller hands the chain to the peer); stop in reverse, retrying a failed stop, and if
it still fails and the status says running, report ``stop_failed`` (escalation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hasync import model
from hasync.failover.states import CHAIN_JOBS, JobKind, JobOutcome, OpOutcome, StepOp
from hasync.operations import commands
from hasync.operations.ocf import OCF_NOT_RUNNING, OCF_RUNNING_MASTER, OCF_SUCCESS

_HB_RUNNING = re.compile(r"\b(running|ok)\b", re.I)
_HB_STOPPED = re.compile(r"\b(stopped|not running|dead)\b", re.I)
# systemctl is-active: exit 0 for these (the unit runs) ...
SYSTEMD_RUNNING = ("active", "reloading", "refreshing")
# ... exit 3 and one of these: the unit has no process left. "failed" is "inactive" after a
# run that ended badly: systemd only enters it once the unit's processes were stopped
# (ExecStop, then KillMode's signals), exactly as for "inactive".
SYSTEMD_STOPPED = ("inactive", "failed")
SYSTEMD_WORDS = SYSTEMD_RUNNING + SYSTEMD_STOPPED + ("activating", "deactivating", "maintenance", "unknown")
LSB_NOT_RUNNING = 3  # LSB status: "program is not running"


def classify_status(res: model.Resource, exit_code: int, stdout: str) -> OpOutcome:
    """Turn a status/monitor result into RUNNING, STOPPED or FAILED (= it cannot tell).

    Only a definite answer is STOPPED (issue 12 item 3): OCF 7, ``systemctl is-active``
    exit 3 printing inactive/failed, LSB status 3, a heartbeat script saying stopped.
    A timeout (124), a bus error, activating/deactivating, an unknown code: FAILED, which
    after a stop is a failed stop (the escalation), at start-up a probe that cannot tell.
    """
    if res.type == "ocf" and res.promotable:
        # only the promoted instance is a piece of the chain; started-unpromoted (a DRBD
        # Secondary) is what a released or standby node holds
        if exit_code == OCF_RUNNING_MASTER:
            return OpOutcome.RUNNING
        if exit_code in (OCF_SUCCESS, OCF_NOT_RUNNING):
            return OpOutcome.STOPPED
        return OpOutcome.FAILED  # 9 FAILED_MASTER: may still hold the data, cannot tell
    if res.type == "ocf":
        if exit_code in (OCF_SUCCESS, OCF_RUNNING_MASTER):
            return OpOutcome.RUNNING
        if exit_code == OCF_NOT_RUNNING:
            return OpOutcome.STOPPED
        return OpOutcome.FAILED
    if res.type == "heartbeat":
        # heartbeat looks at what status prints: "running"/"OK" means running
        stopped_text = bool(_HB_STOPPED.search(stdout))
        if exit_code == 0 and _HB_RUNNING.search(stdout) and not stopped_text:
            return OpOutcome.RUNNING
        if exit_code == 0 and not stdout.strip():
            return OpOutcome.RUNNING  # LSB-style script behind a heartbeat name
        if exit_code == LSB_NOT_RUNNING or (stopped_text and exit_code in (0, 1, 3, 7)):
            return OpOutcome.STOPPED
        return OpOutcome.FAILED
    word = stdout.strip().split("\n")[-1].strip() if stdout.strip() else ""
    if res.type == "systemd" or (res.type == "service" and word in SYSTEMD_WORDS):
        if exit_code == 0:
            return OpOutcome.RUNNING  # is-active exits 0 only for a unit that runs
        if exit_code == 3 and word in SYSTEMD_STOPPED:
            return OpOutcome.STOPPED
        return OpOutcome.FAILED
    # lsb (and a service run through its init script): LSB status codes
    if exit_code == 0:
        return OpOutcome.RUNNING
    if exit_code == LSB_NOT_RUNNING:
        return OpOutcome.STOPPED
    return OpOutcome.FAILED  # 1/2 (dead, files left), 4 (unknown), 124 (timeout), 126/127 ...


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Step:
    resource: str  # resource id ("" for a wait)
    op: StepOp  # PROBE_ALL: resource = "a,b,c"
    attempt: int = 1
    seconds: float = 0.0  # for WAIT


@dataclass
class ChainResult:
    kind: JobKind
    ok: bool
    outcome: JobOutcome
    failed_resource: str = ""
    reason: str = ""
    owned: list[str] = field(default_factory=list)  # what still runs here after the job


@dataclass
class ChainPlan:
    """One job on the chain as a step machine (pure; the runner executes the steps).

    kind: "start" (all, in order), "stop" (all, reverse), "restart" (from
    ``from_index``: stop the tail in reverse, start it again; a failure stops everything),
    "monitor" (one status of ``from_index``).
    """

    kind: JobKind
    resources: tuple[str, ...]
    owned: list[str] = field(default_factory=list)  # running here when the job begins
    from_index: int = 0
    probe: bool = True
    parallel_probe: bool = False
    no_probe: tuple[str, ...] = ()  # known stopped, idempotent start: start without a probe
    stop_retries: int = 2
    retry_delay: float = 0.5
    # internal
    _queue: list[Step] = field(default_factory=list)
    _phase: str = ""
    _result: ChainResult | None = None
    _failed: str = ""
    _reason: str = ""
    _probe_set: list[str] = field(default_factory=list)
    _started_here: bool = False  # this job started a resource: later "running" ones restart

    def __post_init__(self) -> None:
        if self.kind not in CHAIN_JOBS:
            raise ValueError(f"unknown chain job {self.kind!r}")
        self.owned = [r for r in self.resources if r in self.owned]
        if self.kind == JobKind.START:
            self._begin_start(self.resources)
        elif self.kind == JobKind.STOP:
            self._begin_stop(list(self.resources), then="stopped")
        elif self.kind == JobKind.RESTART:
            tail = self.resources[self.from_index :]
            self._begin_stop(list(tail), then="restart")
        else:
            self._phase = "monitor"
            self._queue = [Step(self.resources[self.from_index], StepOp.MONITOR)]

    # -- phases
    def _begin_start(self, which: Sequence[str]) -> None:
        self._phase = "start"
        self._queue = []
        to_probe = [r for r in which if self.probe and r not in self.no_probe]
        if self.parallel_probe and len(to_probe) > 1:
            # one status of those resources at once (the runner runs them concurrently),
            # then start, in order, those that do not run yet
            self._queue.append(Step(",".join(which), StepOp.PROBE_ALL))
            self._probe_set = to_probe
            return
        for r in which:
            self._queue.append(Step(r, StepOp.PROBE if r in to_probe else StepOp.START))

    def _begin_stop(self, which: list[str], *, then: str) -> None:
        self._phase = "stop:" + then
        self._queue = [Step(r, StepOp.STOP) for r in reversed(which)]

    def _finish(self, ok: bool, outcome: JobOutcome) -> None:
        self._queue = []
        self._result = ChainResult(self.kind, ok, outcome, self._failed, self._reason, list(self.owned))

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> ChainResult:
        assert self._result is not None, "plan not finished"
        return self._result

    def next_step(self) -> Step | None:
        if self._result is not None:
            return None
        if not self._queue:
            self._phase_complete()
            if self._result is not None:
                return None
        return self._queue[0] if self._queue else None

    def _phase_complete(self) -> None:
        ph = self._phase
        if ph == "start":
            self._finish(True, JobOutcome.STARTED)
        elif ph == "stop:stopped":
            self._finish(True, JobOutcome.STOPPED)
        elif ph == "stop:restart":
            self._begin_start(self.resources[self.from_index :])
        elif ph == "stop:rollback":
            self._finish(False, JobOutcome.START_FAILED)
        else:  # pragma: no cover - every phase is handled above
            self._finish(False, JobOutcome.INTERNAL)

    def _own(self, r: str) -> None:
        if r not in self.owned:
            self.owned.append(r)
            self.owned.sort(key=self.resources.index)

    def _disown(self, r: str) -> None:
        if r in self.owned:
            self.owned.remove(r)

    def record(self, step: Step, outcome, detail: str = "") -> None:
        """Feed back the outcome of *step*: ok|failed|timeout (start/stop), running|stopped|failed
        (probe/status/monitor); for probe-all a dict resource -> running|stopped|failed."""
        assert self._queue and self._queue[0] == step, f"unexpected step {step}"
        self._queue.pop(0)
        r = step.resource
        if step.op == StepOp.PROBE_ALL:
            starts: list[Step] = []
            for rid in r.split(","):
                if rid in self._probe_set and outcome.get(rid) == OpOutcome.RUNNING:
                    if starts:  # runs although something before it did not: restart it
                        starts += [Step(rid, StepOp.STOP), Step(rid, StepOp.START)]
                    else:
                        self._own(rid)
                else:
                    starts.append(Step(rid, StepOp.START))
            self._queue[0:0] = starts
            return
        if step.op == StepOp.WAIT:
            return
        if step.op == StepOp.MONITOR:
            if outcome == OpOutcome.RUNNING:
                self._finish(True, JobOutcome.MONITOR_OK)
            else:
                self._failed, self._reason = r, detail or outcome
                self._finish(False, JobOutcome.MONITOR_FAILED)
            return
        if step.op == StepOp.PROBE:
            if outcome == OpOutcome.RUNNING and self._started_here:
                # It runs although a resource before it in the chain did not (nfsd left
                # behind without its exports or filesystem): its state can't be trusted,
                # so restart it on top of what was just started.
                self._queue[0:0] = [Step(r, StepOp.STOP), Step(r, StepOp.START)]
            elif outcome == OpOutcome.RUNNING:
                self._own(r)  # already running, and so is everything before it: skip its start
            else:
                self._queue.insert(0, Step(r, StepOp.START))
            return
        if step.op == StepOp.START:
            if outcome == OpOutcome.OK:
                self._own(r)
                self._started_here = True
                return
            # the failed resource may be half up: stop it too, then everything else, in reverse
            self._own(r)
            self._failed, self._reason = r, detail or outcome
            self._begin_stop(list(self.owned), then="rollback")
            return
        if step.op == StepOp.STOP:
            if outcome == OpOutcome.OK:
                self._disown(r)
                return
            if step.attempt <= self.stop_retries:
                self._queue[0:0] = [Step("", StepOp.WAIT, seconds=self.retry_delay), Step(r, StepOp.STOP, step.attempt + 1)]
                return
            self._queue.insert(0, Step(r, StepOp.STATUS, step.attempt))
            if not self._failed:
                self._failed, self._reason = r, detail or outcome
            return
        if step.op == StepOp.STATUS:  # after the last failed stop: does it still run?
            if outcome == OpOutcome.STOPPED:
                self._disown(r)
                if self._failed == r and self._phase != "stop:rollback":
                    self._failed, self._reason = "", ""
                return
            self._failed, self._reason = r, f"stop failed: {self._reason or outcome}"
            self._finish(False, JobOutcome.STOP_FAILED)
            return
        raise ValueError(f"unknown step op {step.op!r}")


SEND_ARP = "/usr/libexec/heartbeat/send_arp"


def vip_fast_path(res: model.Resource) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """For an IPaddr2 VIP with ip, cidr_netmask and nic given: the two commands that make
    the address answer at once (``ip addr add``, then send_arp in the background, exactly
    what the agent does), run before the real agent's start. The agent then finds the
    address in place and only checks it. None when the agent must work it out itself."""
    if res.type != "ocf" or res.agent != "heartbeat:IPaddr2":
        return None
    p = res.params
    ip, nic, cidr = p.get("ip", ""), p.get("nic", ""), p.get("cidr_netmask", "")
    if not (ip and nic and cidr.isdigit()) or ":" in ip or any(k in p for k in ("clusterip_hash", "lvs_support", "iflabel", "broadcast")):
        return None
    add = ("ip", "-4", "addr", "add", f"{ip}/{cidr}", "brd", "+", "dev", nic)
    arp = (SEND_ARP, "-i", str(p.get("arp_interval", "200")), "-r", str(p.get("arp_count", "5")),
           "-p", f"/run/resource-agents/send_arp-{ip}", nic, ip, "auto", "not_used", "not_used")
    return add, arp


def plan_summary(resources: Sequence[model.Resource], *, profile: model.Profile | None = None, exists=os.path.exists) -> list[dict]:
    """What a migrate would run, for --dry-run: start order with the command of each."""
    out = []
    for r in resources:
        out.append(
            {
                "id": r.id,
                "type": r.type,
                "start": [" ".join(c.argv) for c in commands(r, "start", profile=profile, exists=exists)],
                "stop": [" ".join(c.argv) for c in commands(r, "stop", profile=profile, exists=exists)],
            }
        )
    return out
