"""The fault campaign's vm tier (issue 14): the real daemons on real DRBD 8.4, LVM,
kernel NFS and NFS clients (v3 and v4.2 record streams), seeded faults, audits from
ground truth on the guests, each audit made to fire on purpose first.

One bounded campaign on the session's VM lab: VM_FAULTS faults (10 by default,
HASYNC_CAMPAIGN_VM_FAULTS) from a fresh seed printed in the log (HASYNC_CAMPAIGN_SEED
replays them), --keep-going. It runs first among tests/vm (the files run in name order):
it bootstraps the lab itself, and leaves it as the other tests expect (the agents it
wrapped put back, its daemons stopped; their fixture resets the storage).
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from hasync_lab.campaign.report import DEFAULT_OUT
from hasync_lab.campaign.vm.audits import AUDITS
from hasync_lab.campaign.vm.faults import draw_faults

from .conftest import TIMINGS

# Not in `make test`: on this 2-core TCG build machine 10 faults take ~25 min (set-up
# ~7 min, self-test ~2.5, 1-2 min a fault: docs/campaign.md, "In make test" of the vm
# tier), against ~14 min left of CI's 40. HASYNC_CAMPAIGN_VM=1 runs it (as `make
# campaign` runs the tier).
pytestmark = [pytest.mark.vm, pytest.mark.skipif(os.environ.get("HASYNC_CAMPAIGN_VM") != "1",
                                                 reason="the vm campaign test runs with HASYNC_CAMPAIGN_VM=1 (not in CI yet)")]

VM_FAULTS = int(os.environ.get("HASYNC_CAMPAIGN_VM_FAULTS", "10"))


def _summary(doc: dict) -> str:
    found = [(v["fault_index"], v["fault"], v["audit"], json.dumps(v["evidence"], default=str)[:300]) for v in doc["violations"]]
    return (f"seed {doc['seed']} (HASYNC_CAMPAIGN_SEED={doc['seed']}): {len(doc['violations'])} violation(s) {found}; "
            f"folder {doc.get('folder')}; replay: {doc['replay']}")


def test_a_bounded_vm_campaign_finds_no_violation(vm_lab, say):
    from hasync_lab.campaign.vm.cli import run_on_vm_lab

    seed = int(os.environ.get("HASYNC_CAMPAIGN_SEED") or random.SystemRandom().randrange(10**8))
    say(f"vm campaign seed {seed}, {VM_FAULTS} faults (set HASYNC_CAMPAIGN_SEED={seed} to run the same faults again)")
    faults = draw_faults(seed, VM_FAULTS)
    t0 = time.monotonic()
    doc = run_on_vm_lab(seed, faults, lab=vm_lab, out=os.environ.get("HASYNC_CAMPAIGN_OUT", DEFAULT_OUT),
                        keep_going=True, progress=say)
    TIMINGS["campaign_vm_s"] = round(time.monotonic() - t0, 1)
    say(f"vm campaign: {doc['faults_run']} faults in {doc['wall_s']} s; per fault {doc['per_fault_s']}; "
        f"recovery {doc['recovery_s']}; by fault {doc['by_fault']}")
    # the audits were shown to fire, and they were looking
    assert set(AUDITS) <= set(doc["selftest"]) and all(doc["selftest"].values()), doc["selftest"]
    assert doc["faults_run"] == VM_FAULTS, _summary(doc)
    assert doc["step_errors"] == [], doc["step_errors"]
    assert doc["samples"] > 100 and doc["blind_samples"] < doc["samples"] / 5, (doc["samples"], doc["blind_samples"])
    assert doc["arp_probes"] > 10
    assert len(set(doc["drbd_digests"].values())) == 1 and len(doc["drbd_digests"]) == 2, doc["drbd_digests"]
    assert doc["recovery_s"]["n"] >= 1
    # and found nothing
    assert doc["violations"] == [], _summary(doc)
