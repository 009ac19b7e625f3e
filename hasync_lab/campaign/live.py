"""What the live tiers (ns: a namespace lab, vm: qemu guests) share, in one place.

The argv -> (seed, faults) step and the command's frame, the progress lines, the
result they fill, the fault player (a fault's steps at their offsets) and the run's
frame around the tier's own set-up, heal, quiescence and audits: one fault after
another, each hit recorded as a violation or a named limit, then the end-of-run audits.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hasync_lab.campaign.faults import RACE, Fault

BUSY_ROLES = ("starting", "stopping", "acquiring", "probing")  # a daemon in the middle of a job


# ---------------------------------------------------------------------- the command
def seed_and_faults(args, err, tier: str, kinds_table, draw) -> tuple[int, list[Fault], tuple | None] | int:
    """A live tier's argv -> (seed, faults, kinds), or an exit status: one seed, no
    mutant, known kinds, a replay of that tier's faults.json or a fresh draw."""
    if args.seeds != 1 or args.mutant:
        err.print(f"hasync lab campaign: --tier {tier} runs one seed on a live lab (no --seeds, no --mutant)")
        return 2
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    if kinds is not None and (not kinds or any(k not in kinds_table for k in kinds)):
        err.print(f"hasync lab campaign: --kinds: unknown {tier} fault kind(s) {', '.join(k for k in kinds if k not in kinds_table) or '(none)'}; "
                  f"expected some of {', '.join(kinds_table)}")
        return 2
    if args.replay:
        try:
            d = json.loads(Path(args.replay).read_text())
            seed, faults = int(d["seed"]), [Fault.from_dict(x) for x in d["fault_list"]]
            if d.get("tier") != tier:
                raise ValueError(f"tier {d.get('tier')!r}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            err.print(f"hasync lab campaign: {args.replay}: not an {tier} campaign faults.json ({e})")
            return 2
        return seed, faults, kinds
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    if args.faults < 1:
        err.print("hasync lab campaign: --faults must be >= 1")
        return 2
    if args.seed is None:
        err.print(f"campaign seed {seed} (replay with --seed {seed})")
    return seed, draw(seed, args.faults, kinds), kinds


def run_tier(args, err, tier: str, kinds_table, draw, run_on) -> int:
    """`hasync lab campaign --tier ns|vm`: argv -> run_on(seed, faults, ...) -> the
    summary or JSON, and the exit status."""
    from hasync_lab.campaign.cli import _finish

    got = seed_and_faults(args, err, tier, kinds_table, draw)
    if isinstance(got, int):
        return got
    seed, faults, kinds = got
    groups = getattr(args, "groups", 1)
    try:
        doc = run_on(seed, faults, lab_name=args.lab, out=args.out, keep_going=args.keep_going, kinds=kinds,
                     progress=lambda line: err.print(line, highlight=False), **({"groups": groups} if groups != 1 else {}))
    except RuntimeError as e:  # the lab or the cluster could not be brought to a clean start
        err.print(f"[red]hasync lab campaign: {e}[/]")
        return 1
    if args.replay:
        doc["replay"] = f"python -m hasync_lab.campaign --tier {tier} --replay {args.replay}"
    return _finish(args, doc, doc["selftest"], err)


@contextmanager
def live_run(make_run, out: str, tier: str, lab, own: bool):
    """make_run(logdir) -> the tier's Run, with a scratch log dir under *out*; after it,
    whatever happened: the run closed, the scratch gone, a lab this run made taken down."""
    logdir = Path(out) / f".{tier}-run-{os.getpid()}"
    shutil.rmtree(logdir, ignore_errors=True)
    run = make_run(logdir)
    try:
        yield run
    finally:
        run.close()
        shutil.rmtree(logdir, ignore_errors=True)
        if own:
            lab.down()


def selftest_and_faults(run, run_selftest, say, *, only_if_fired: bool) -> None:
    """The self-test on the live lab, then the faults (with *only_if_fired*, only when
    every case fired), a progress line each."""
    t0 = time.monotonic()
    run.res.selftest = run_selftest(run)
    run.selftest_s = round(time.monotonic() - t0, 1)
    say("self-test: " + ", ".join(f"{k} {'fired' if v else 'DID NOT FIRE'}" for k, v in run.res.selftest.items()))
    if only_if_fired and not all(run.res.selftest.values()):
        say("[red]a self-test did not fire: no fault is run[/]")
        return
    run.run(fault_reporter(run, len(run.res.faults), say))


def fault_reporter(run, n_faults: int, say):
    """The run's faults_done callback: one progress line per fault."""

    def done(i, f, bad):
        rec = run.res.recovery_s[-1] if run.clean_fault == i else None
        lim = sorted({f"{h.audit}/{h.limit}" for h in run.res.limits if h.fault_index == i})
        say(f"fault {i + 1}/{n_faults} {f.kind} ({f.note or f.target}): "
            + (f"[red]{len(bad)} violation(s): {', '.join(h.audit for h in bad)}[/]" if bad
               else f"clean, recovered in {rec} s" if rec is not None else "clean after an operator's action")
            + (f" (named limits: {', '.join(lim)})" if lim else "")
            + f" [{run.res.per_fault_s[-1]} s]"
            + "".join(f" [red]HARNESS ERROR {e['op']}: {e['error']}[/]" for e in run.res.step_errors if e["fault_index"] == i))

    return done


def one_active(nodes: tuple[str, str], held: dict[str, set[str]], whole, roles: dict[str, str]) -> tuple[bool, str]:
    """(True, the active node) when one node holds every piece of *whole* with role file
    `active` and the other holds none with `standby`; else (False, why). Pure."""
    full = [n for n in nodes if set(whole) <= held[n]]
    some = [n for n in nodes if held[n]]
    if len(full) != 1 or some != full:
        return False, "chain: " + ", ".join(f"{n} {sorted(held[n])}" for n in nodes)
    act = full[0]
    stb = nodes[1] if act == nodes[0] else nodes[0]
    if roles[act] != "active" or roles[stb] != "standby":
        return False, f"roles: {act} {roles[act]}, {stb} {roles[stb]}"
    return True, act


def each_group_once(nodes: tuple[str, str], held: dict[str, set[str]], groups: dict[str, tuple[str, ...]],
                    roles: dict[str, str]) -> tuple[bool, str, dict[str, str]]:
    """Several resource groups: (True, the first group's node, group -> node) when every
    group runs whole on one node and none of it on the other, and each node's role file
    says `active` when it runs a group and `standby` when it runs none; else (False, why,
    {}). Pure."""
    owners: dict[str, str] = {}
    for gid, pieces in groups.items():
        full = [n for n in nodes if set(pieces) <= held[n]]
        some = [n for n in nodes if set(pieces) & held[n]]
        if len(full) != 1 or some != full:
            return False, f"group {gid}: " + ", ".join(f"{n} {sorted(set(pieces) & held[n])}" for n in nodes), {}
        owners[gid] = full[0]
    for n in nodes:
        runs = sorted(g for g, o in owners.items() if o == n)
        if roles[n] != ("active" if runs else "standby"):
            return False, f"roles: {n} {roles[n]} (runs {', '.join(runs) or 'no group'})", {}
    return True, owners[next(iter(groups))], owners


CONTROL_SOCKET = "/run/hasync/failover.sock"  # hasync/failover/host.py's default


def control_status(path: str, timeout: float = 2.0) -> dict:
    """The failover daemon's status document off its control socket ({} when it does not
    answer): only to know that both daemons have settled, ground truth decides the rest.
    Self-contained (stdlib only): the vm tier runs its source inside the guests."""
    import json
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b'{"cmd": "status"}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)
    except (OSError, ValueError):
        return {}


def wait_for(pred, timeout: float, step: float) -> bool:
    """Poll *pred* every *step* s until it holds or *timeout* s passed; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def fence_script(tier: str, what: str, flags: str, log: str, fence: str) -> str:
    """The campaign's fence command of a live tier: *fence* (a shell command, the node to
    fence in $node: the last argument), unless FLAGS/fence says fail, lie or slow SECONDS;
    every call logged "<time> fence <node> <mode>" in *log*."""
    return f"""#!/bin/sh
# The fault campaign's fence command (hasync_lab/campaign/{tier}): {what},
# unless {flags}/fence says fail, lie or slow SECONDS. The node is the last argument.
for node; do :; done
mode=$(cat {flags}/fence 2>/dev/null)
echo "$(date +%s.%N) fence $node ${{mode:-ok}}" >> {log}
case "$mode" in
fail) echo "campaign: fence failure injected" >&2; exit 1 ;;
lie) echo "campaign: fence reports success, $node stays up" >&2; exit 0 ;;
slow*) sleep "${{mode#slow }}" ;;
esac
{fence}
"""


# ---------------------------------------------------------------------- the result
@dataclass
class LiveResult:
    seed: int
    faults: list[Fault]
    faults_run: int = 0
    violations: list = field(default_factory=list)
    limits: list = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    after_heal_s: list[float] = field(default_factory=list)
    per_fault_s: list[float] = field(default_factory=list)
    by_fault: Counter = field(default_factory=Counter)
    timeline: list = field(default_factory=list)
    selftest: dict = field(default_factory=dict)
    step_errors: list = field(default_factory=list)  # the harness could not do a step
    mutant: None = None


# ---------------------------------------------------------------------- a fault's steps
class StepPlayer:
    """A fault's steps at their offsets (op_<step> of the tier's injector), the harness's
    own failures recorded, then the wait until the heal: shared by the live tiers."""

    run: Any  # the tier's Run
    threads: list[threading.Thread]
    stop_ev: threading.Event

    def resolve(self, target: str) -> tuple[str, str]:
        raise NotImplementedError

    def op_restart(self, r, **kw) -> None:
        raise NotImplementedError

    def play(self, fault, t0: float) -> None:
        a, b = self.resolve(fault.target)
        roles = {"A": a, "B": b}
        self.run.trace(a, "fault", f"#{self.run.fault_index} {fault.kind} on {a} ({fault.target})"
                                   + (f": {fault.note}" if fault.note else "") + (" + operator race" if fault.race else ""))
        for offset, op, args in fault.steps:
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                getattr(self, f"op_{op}")(roles, **args)
            except Exception as e:  # the harness's own failure: recorded, reported, never hidden
                self.run.res.step_errors.append({"fault_index": self.run.fault_index, "op": op, "error": repr(e)})
                self.run.trace(a, "fault", f"HARNESS ERROR: step {op} failed: {e!r}")
        left = t0 + fault.duration_s - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _bg(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def stop_background(self, timeout: float) -> None:
        """The heal's first step: a fault's background steps told to stop, and joined."""
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout)
        self.threads.clear()
        self.stop_ev.clear()

    def op_restart_busy(self, r, **kw) -> None:
        """Restart the daemon that is in the middle of a job (else A's)."""
        snap = self.run.sampler.snapshot()
        busy = [n for n in self.run.nodes if snap.get(n, {}).get("role") in BUSY_ROLES]
        node = busy[0] if busy else r["A"]
        self.op_restart({"X": node}, who="X", how=kw["how"])

    @staticmethod
    def command_argv(r, node: str, cmd: str, owners: dict[str, str] | None = None) -> list[str]:
        """An operator's command on *node*: a migrate goes to the other node; a group's
        migrate ("migrate b") to the node that does not hold the group at the last clean
        look (*owners*: group -> node), so the group moves and the other keeps running."""
        words = cmd.split()
        if words[0] != "migrate":
            return ["hasync", *words]
        other = r["B"] if node == r["A"] else r["A"]
        if len(words) > 1 and owners and words[1] in owners:
            holder = owners[words[1]]
            other = r["B"] if holder == r["A"] else r["A"]
        return ["hasync", "migrate", *words[1:], "--to", other]


# ---------------------------------------------------------------------- the run
class LiveRun:
    """The frame of a live tier's run; the tier gives set-up, the injector (`inj`), the
    sampler, `await_clean`, its per-fault audits, `after_violation` and `end_audits`."""

    inj: Any
    sampler: Any

    def __init__(self, lab, seed: int, faults: list[Fault], logdir: Path, *, keep_going: bool, t: Any):
        self.lab = lab
        self.seed = seed
        self.t = t  # the tier's timing (settle_s, the bounds)
        self.nodes: tuple[str, str] = tuple(lab.nodes[:2])  # type: ignore[assignment]
        self.logdir = logdir
        self.keep_going = keep_going
        self.res = LiveResult(seed, faults)
        self.t_start = time.monotonic()
        self.fault_index = -1
        self.clean_fault = -1  # the last fault that recovered without an operator
        self.clean_at = 0.0
        self.stop_ev = threading.Event()
        self.selftest_s = self.end_audits_s = 0.0  # their wall time (the JSON's)

    def trace(self, node: str, kind: str, msg: str) -> None:
        self.res.timeline.append((round(time.monotonic() - self.t_start, 3), node, kind, msg))

    def begin_fault(self, i: int, f: Fault) -> tuple[float, float]:
        """The gap, then the fault's steps until its heal is due: (t0, wall0) of its start."""
        self.fault_index = i
        self.sampler.fault_index = i
        time.sleep(f.gap_s)
        t0, wall0 = time.monotonic(), time.time()
        self.inj.play(f, t0)
        self.res.faults_run += 1
        self.res.by_fault[f.kind] += 1
        if f.race:
            self.res.by_fault[RACE] += 1
        return t0, wall0

    def record(self, hits: list) -> list:
        """Each hit to the violations or the named limits (and the timeline); the violations back."""
        for h in hits:
            (self.res.limits if h.limit else self.res.violations).append(h)
            self.trace("both", "VIOLATION" if not h.limit else "limit", f"{h.audit}: {json.dumps(h.evidence, default=str)[:400]}")
        return [h for h in hits if not h.limit]

    def clean_now(self) -> tuple[bool, str]:
        """(True, the active node) when ground truth shows a clean cluster; else (False, why)."""
        raise NotImplementedError

    def hold_clean(self, bound: float, settled, *, poll_s: float, give_up=None) -> tuple[bool, str]:
        """Within *bound*: clean_now() for settle_s in a row, then settled(active) == ''
        (what the daemons and the clients say); `clean_at` is when that stretch began.
        give_up(t0) may end the wait early with its reason (an operator's case)."""
        t0 = time.monotonic()
        end = t0 + bound
        since, why = None, ""
        while time.monotonic() < end:
            stop = give_up(t0) if give_up is not None else ""
            if stop:
                return False, stop
            ok, why = self.clean_now()
            now = time.monotonic()
            if not ok:
                since = None
            else:
                since = since or now
                if now - since >= self.t.settle_s:
                    more = settled(why)
                    if not more:
                        self.clean_at = since
                        return True, why
                    why, since = more, None
            time.sleep(poll_s)
        return False, why

    def run_fault(self, i: int, f: Fault) -> list:
        raise NotImplementedError

    def after_violation(self) -> None:
        """With --keep-going, after a fault that violated: the next one must start clean."""

    def end_audits(self, end: int) -> list:
        raise NotImplementedError

    def run(self, faults_done=None) -> LiveResult:
        for i, f in enumerate(self.res.faults):
            bad = self.run_fault(i, f)
            if faults_done is not None:
                faults_done(i, f, bad)
            if bad and not self.keep_going:
                break
            if bad:
                self.after_violation()
        if not self.res.violations or self.keep_going:
            end = len(self.res.faults)  # "end of run" in the report
            seen = {(h.audit, json.dumps(h.evidence, sort_keys=True, default=str)) for h in self.res.violations}
            t0 = time.monotonic()
            found = self.end_audits(end)
            self.end_audits_s = round(time.monotonic() - t0, 1)
            for h in found:
                if (h.audit, json.dumps(h.evidence, sort_keys=True, default=str)) in seen:
                    continue  # already reported under the fault that made it
                self.res.violations.append(h)
                self.trace("both", "VIOLATION", f"{h.audit}: {json.dumps(h.evidence, default=str)[:400]}")
        return self.res
