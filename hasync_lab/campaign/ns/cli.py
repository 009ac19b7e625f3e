"""`hasync lab campaign --tier ns`: one run on a live namespace lab (argv -> run -> doc)."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.ns.faults import KINDS, draw_faults


def run_ns(args, err) -> int:
    from hasync_lab.campaign.cli import _finish

    got = seed_and_faults(args, err, "ns", KINDS, draw_faults)
    if isinstance(got, int):
        return got
    seed, faults, kinds = got
    try:
        doc = run_on_lab(seed, faults, lab_name=args.lab, out=args.out, keep_going=args.keep_going, kinds=kinds,
                         progress=lambda line: err.print(line, highlight=False))
    except RuntimeError as e:  # the lab or the cluster could not be brought to a clean start
        err.print(f"[red]hasync lab campaign: {e}[/]")
        return 1
    if args.replay:
        doc["replay"] = f"python -m hasync_lab.campaign --tier ns --replay {args.replay}"
    return _finish(args, doc, doc["selftest"], err)


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


def run_on_lab(seed: int, faults: list[Fault], *, lab=None, lab_name: str | None = None, out: str,
               keep_going: bool = False, kinds=None, progress=None) -> dict:
    """One ns run: on *lab* (a Lab, left up) or on the lab named *lab_name* (brought up
    if needed; a lab this call made is taken down again), the JSON document back."""
    from hasync_lab.campaign.ns.report import ns_doc, ns_folder
    from hasync_lab.campaign.ns.runner import Run
    from hasync_lab.campaign.ns.selftest import run_selftest
    from hasync_lab.ns import Lab

    say = progress or (lambda line: None)
    own = False
    if lab is None:
        lab = Lab(lab_name or f"c{os.getpid()}")
        own = not lab.exists()
        lab.up()
    logdir = Path(out) / f".ns-run-{os.getpid()}"
    shutil.rmtree(logdir, ignore_errors=True)
    t0 = time.perf_counter()
    run = Run(lab, seed, faults, logdir, keep_going=keep_going)
    folder = None
    try:
        run.setup()
        say(f"ns campaign on lab {lab.name}: cluster settled in {time.perf_counter() - t0:.1f} s; self-test ...")
        run.res.selftest = run_selftest(run)
        say("self-test: " + ", ".join(f"{k} {'fired' if v else 'DID NOT FIRE'}" for k, v in run.res.selftest.items()))

        def done(i, f, bad):
            rec = run.res.recovery_s[-1] if run.clean_fault == i else None
            lim = sorted({f"{h.audit}/{h.limit}" for h in run.res.limits if h.fault_index == i})
            say(f"fault {i + 1}/{len(faults)} {f.kind} ({f.note or f.target}): "
                + (f"[red]{len(bad)} violation(s): {', '.join(h.audit for h in bad)}[/]" if bad
                   else f"clean, recovered in {rec} s" if rec is not None else "clean after an operator's action")
                + (f" (named limits: {', '.join(lim)})" if lim else "")
                + f" [{run.res.per_fault_s[-1]} s]"
                + "".join(f" [red]HARNESS ERROR {e['op']}: {e['error']}[/]" for e in run.res.step_errors if e["fault_index"] == i))

        run.run(done)
        if run.res.violations:
            folder = ns_folder(out, run, len(faults), kinds)
        doc = ns_doc(run.res, len(faults), time.perf_counter() - t0, folder, kinds, lab.name,
                     {"wire": dict(run.wire.counts), "samples": run.sampler.samples, "arp_probes": run.sampler.arp_samples})
    finally:
        run.close()
        shutil.rmtree(logdir, ignore_errors=True)
        if own:
            lab.down()
    return doc
