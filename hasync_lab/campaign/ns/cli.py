"""`hasync lab campaign --tier ns`: one run on a live namespace lab (argv -> run -> doc)."""

from __future__ import annotations

import os
import time

from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.live import live_run, run_tier, selftest_and_faults
from hasync_lab.campaign.ns.faults import KINDS, draw_faults


def run_ns(args, err) -> int:
    from hasync_lab.campaign.ns.prep import TIMING, TIMING2

    t = TIMING2 if getattr(args, "groups", 1) == 2 else TIMING  # (the draw of a two-group run knows its groups)
    return run_tier(args, err, "ns", KINDS, lambda seed, n, kinds: draw_faults(seed, n, kinds, t), run_on_lab)


def run_on_lab(seed: int, faults: list[Fault], *, lab=None, lab_name: str | None = None, out: str,
               keep_going: bool = False, kinds=None, progress=None, groups: int = 1) -> dict:
    """One ns run: on *lab* (a Lab, left up) or on the lab named *lab_name* (brought up
    if needed; a lab this call made is taken down again), the JSON document back.
    *groups* 2: the lab's two-group config, audited per group."""
    from hasync_lab.campaign.ns.prep import TIMING, TIMING2
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
    t0 = time.perf_counter()
    folder = None
    t = TIMING2 if groups == 2 else TIMING
    with live_run(lambda logdir: Run(lab, seed, faults, logdir, keep_going=keep_going, t=t), out, "ns", lab, own) as run:
        run.setup()
        say(f"ns campaign on lab {lab.name}: cluster settled in {time.perf_counter() - t0:.1f} s; self-test ...")
        selftest_and_faults(run, run_selftest, say, only_if_fired=False)
        if run.res.violations:
            folder = ns_folder(out, run, len(faults), kinds)
        doc = ns_doc(run.res, len(faults), time.perf_counter() - t0, folder, kinds, lab.name,
                     {"wire": dict(run.wire.counts), "samples": run.sampler.samples, "arp_probes": run.sampler.arp_samples,
                      "groups": groups},
                     bounds={"liveness_s": t.liveness_bound_s, "stray_s": t.stray_bound_s, "settle_s": t.settle_s})
    return doc
