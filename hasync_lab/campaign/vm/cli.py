"""`hasync lab campaign --tier vm`: one run on a VM lab (argv -> run -> doc).

Root only; qemu (TCG) guests: each busy VM eats a core, so run one VM lab at a time on
a small machine. The lab is made for the run (vc<pid>) and taken down after, unless
--lab names one that is already up (it is then left up, its storage as the run left it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.live import live_run, run_tier, selftest_and_faults
from hasync_lab.campaign.vm.faults import KINDS, SKIPPED, draw_faults


def run_vm(args, err) -> int:
    return run_tier(args, err, "vm", KINDS, draw_faults, run_on_vm_lab)


def run_on_vm_lab(seed: int, faults: list[Fault], *, lab=None, lab_name: str | None = None, out: str,
                  keep_going: bool = False, kinds=None, progress=None) -> dict:
    """One vm run: on *lab* (a VmLab, up, storage reset: left up) or on a new VM lab
    (taken down after); the JSON document back."""
    from hasync.effects.run import CommandError
    from hasync_lab.campaign.ns.report import ns_doc
    from hasync_lab.campaign.report import replay_command, write_run_folder
    from hasync_lab.campaign.vm.prep import TIMING
    from hasync_lab.campaign.vm.runner import Run
    from hasync_lab.campaign.vm.selftest import run_selftest
    from hasync_lab.vm import VmLab, manual
    from hasync_lab.vm.seed import default_guests

    say = progress or (lambda line: None)
    own = lab is None
    t0 = time.perf_counter()
    if lab is None:
        lab = VmLab(lab_name or f"vc{os.getpid() % 10**8}", report=say)
        if lab.exists and all(lab.running(v) for v in lab.vms):
            own = False
            manual.reset(lab)
        else:
            lab.create(None, default_guests(1))
            lab.up()
    setup: dict = {}
    folder = None
    with live_run(lambda logdir: Run(lab, seed, faults, logdir, keep_going=keep_going, say=say), out, "vm", lab, own) as run:
        try:
            setup = run.setup()
        except (AssertionError, TimeoutError, OSError, CommandError) as e:  # bootstrap, a role, a mount
            raise RuntimeError(f"the VM cluster could not be set up: {e}") from e
        say(f"vm campaign on lab {lab.name}: cluster settled in {time.perf_counter() - t0:.1f} s ({setup}); self-test ...")
        selftest_and_faults(run, run_selftest, say, only_if_fired=True)
        r = run.res
        if r.violations:
            replay = replay_command(seed, len(faults), None, kinds, tier="vm")
            folder = write_run_folder(Path(out) / f"vm-seed{seed}-f{len(faults)}", r,
                                      {"tier": "vm", "seed": seed, "faults": len(faults),
                                       "kinds": list(kinds) if kinds else None, "timing": TIMING.__dict__}, replay)
            run.collect_logs(Path(folder) / "logs")
        doc = ns_doc(r, len(faults), time.perf_counter() - t0, folder, kinds, lab.name,
                     {"samples": run.sampler.samples, "blind_samples": run.sampler.blind,
                      "arp_probes": run.sampler.arp_samples, "boots": run.boots, "setup_s": setup,
                      "selftest_s": run.selftest_s, "phases_s": run.phases, "end_audits_s": run.end_audits_s,
                      "drbd_digests": getattr(r, "drbd_digests", {}),
                      "resolution_s": round(2 * run.sampler.period, 2)},
                     tier="vm", skipped=SKIPPED,
                     bounds={"liveness_s": TIMING.liveness_bound_s, "settle_s": TIMING.settle_s})
    return doc
