"""`hasync lab campaign` (today: `python -m hasync_lab.campaign`): argv -> one run -> one view."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from . import mutants
from .faults import KINDS, Fault
from .report import DEFAULT_OUT, campaign_doc, print_summary, seed_doc, write_folder
from .runner import run_many, run_seed
from .scenario import Scenario
from .selftest import run_selftest

DESCRIPTION = """\
The fault campaign: a seeded series of faults against a two-node cluster, with audits
from ground truth after every event (the chain on one node only, safe takeovers, the
ping tiebreak, liveness after each heal, no FSM exception) that are each shown to fire
on a violation made on purpose before any result is believed.

Tier fsm: the real membership FSM of both nodes on a simulated clock, links, resources
and fences (thousands of seeds a minute). Tier ns: the real daemons, agents, links and
sync watcher on a live namespace lab (a few seconds a fault). Tier vm: the real daemons
on qemu guests with real DRBD, LVM, kernel NFS and NFS clients (about a minute a fault).
The same --seed replays the same run; a violation leaves a folder with the timeline,
the faults (JSON) and the command that replays it.
"""


def register(sub) -> None:
    p = sub.add_parser("campaign", help="randomized, seeded fault campaign with self-tested audits",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tier", choices=("fsm", "ns", "vm"), default="fsm",
                   help="fsm (default, simulated), ns (a live namespace lab, root), vm (a qemu VM lab, root)")
    p.add_argument("--faults", type=int, default=5, metavar="N", help="faults per seed (default 5)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="first seed (default: a fresh one, printed)")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="run K seeds, S .. S+K-1 (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--keep-going", action="store_true", help="do not stop at the first violation")
    p.add_argument("--mutant", choices=sorted(k for k, m in mutants.MUTANTS.items() if not m.hidden),
                   help="run a variant of the FSM that brings back a known defect (see --list-mutants)")
    p.add_argument("--list-mutants", action="store_true", help="list the mutants and exit")
    p.add_argument("--groups", type=int, choices=(1, 2), default=1,
                   help="resource groups per cluster (issue 17): fsm tier, 2: each seed's chain cut in two groups; "
                        "ns tier, 2: the lab's two-group config (group b: a tmpfs and a second VIP on node2), audited per group")
    p.add_argument("--kinds", default=None, metavar="K1,K2", help=f"draw only these fault kinds: {', '.join(KINDS)}")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"where violation folders go (default {DEFAULT_OUT})")
    p.add_argument("--max-folders", type=int, default=20, help="folders written at most in one run (default 20)")
    p.add_argument("--replay", metavar="FAULTS_JSON", help="run exactly the scenario and faults of a violation folder")
    p.add_argument("--lab", default=None, metavar="NAME",
                   help="ns/vm tier: run on this lab (default: a new one, c<pid> / vc<pid>, removed afterwards)")


def run(args) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    if args.list_mutants:
        for m in mutants.MUTANTS.values():
            if not m.hidden:
                print(f"{m.name:18} issue {m.issue:5} {' '.join(m.description.split())}")
        return 0
    if args.tier == "ns":
        from .ns.cli import run_ns

        return run_ns(args, err)
    if args.tier == "vm":
        if args.groups != 1:
            err.print("hasync lab campaign: --tier vm runs one resource group (--groups 2: the fsm and ns tiers)")
            return 2
        from .vm.cli import run_vm

        return run_vm(args, err)
    kinds = None
    if args.kinds:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            err.print(f"hasync lab campaign: --kinds: unknown fault kind(s) {', '.join(unknown) or '(none given)'}; expected some of {', '.join(KINDS)}")
            return 2
    if args.faults < 0 or args.seeds < 1:
        err.print("hasync lab campaign: --faults must be >= 0 and --seeds >= 1")
        return 2
    mutant = mutants.get(args.mutant)
    selftest = run_selftest()
    if args.replay:
        return _replay(args, mutant, selftest, err)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    if args.seed is None and not args.json:
        err.print(f"campaign seed {seed} (replay with --seed {seed})")
    if args.seeds == 1:
        t0 = time.perf_counter()
        r = run_seed(seed, args.faults, mutant=mutant, keep_going=args.keep_going, kinds=kinds, groups=args.groups)
        folder = write_folder(args.out, r, args.faults, kinds) if r.violations else None
        doc = seed_doc(r, args.faults, selftest, time.perf_counter() - t0, folder, kinds)
    else:
        folders: dict = {}

        def keep(r):
            if r.violations and len(folders) < args.max_folders:
                folders[r.seed] = write_folder(args.out, r, args.faults, kinds)

        c = run_many(seed, args.seeds, args.faults, mutant=mutant, keep_going=args.keep_going, kinds=kinds, on_seed=keep,
                     groups=args.groups)
        doc = campaign_doc(c, selftest, folders, args.mutant, kinds)
    return _finish(args, doc, selftest, err)


def _replay(args, mutant, selftest, err) -> int:
    try:
        with open(args.replay) as f:
            d = json.load(f)
        sc = Scenario.from_dict(d["scenario"])
        faults = [Fault.from_dict(x) for x in d["fault_list"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        err.print(f"hasync lab campaign: {args.replay}: not a campaign faults.json ({e})")
        return 2
    if mutant is None and d.get("mutant"):
        mutant = mutants.get(d["mutant"])
    t0 = time.perf_counter()
    r = run_seed(d["seed"], len(faults), mutant=mutant, keep_going=args.keep_going, scenario=sc, faults=faults)
    doc = seed_doc(r, len(faults), selftest, time.perf_counter() - t0, None)
    doc["replay"] = f"python -m hasync_lab.campaign --tier fsm --replay {args.replay}"
    return _finish(args, doc, selftest, err)


def _finish(args, doc: dict, selftest: dict, err) -> int:
    from rich.console import Console

    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print_summary(doc, Console())
    if not all(selftest.values()):
        dead = [k for k, ok in selftest.items() if not ok]
        err.print(f"[red]self-test: audit(s) {', '.join(dead)} did not fire on a violation made on purpose: "
                  f"no result of this campaign can be trusted[/]")
        return 1
    return 1 if doc["violations"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hasync_lab.campaign", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
