"""The verbs that run one of the harness's programs: `hasync lab bench KIND ...` (a
benchmark's main(ARGS)) and `hasync lab demo` (what `make demo` shows). Each program's
module is loaded only when its verb runs (args.load, hasync_lab/cli.py)."""

from __future__ import annotations

import argparse

# `hasync lab bench KIND`: the module whose main(argv) runs it (`failover --vm`: VM_FAILOVER)
BENCHES = {"sync": "hasync_lab.bench.sync", "failover": "hasync_lab.bench.failover"}
VM_FAILOVER = "hasync_lab.bench.vm_failover"
DEMO = "hasync_lab.demo"


def register(verbs) -> None:
    p = verbs.add_parser("bench", description="Runs hasync_lab.bench.<KIND>.main(ARGS); `failover --vm` runs "
                         "the VM lab's crash-to-client-resumed benchmark (hasync_lab.bench.vm_failover). "
                         "`hasync lab bench KIND --help` for each one's options.")
    p.add_argument("kind", choices=tuple(BENCHES))
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="ARGS")
    p.set_defaults(func=cmd_bench)

    p = verbs.add_parser("demo")
    p.add_argument("--vm", action="store_true", help="the VM tier's demo (real DRBD/LVM/NFS in qemu)")
    p.set_defaults(func=cmd_demo)


def cmd_bench(args) -> int:
    argv = list(args.bench_args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    module = BENCHES[args.kind]
    if args.kind == "failover" and "--vm" in argv:
        argv.remove("--vm")
        module = VM_FAILOVER
    return int(args.load(module).main(argv) or 0)


def cmd_demo(args) -> int:
    return int(args.load(DEMO).main(["--vm"] if args.vm else []) or 0)
