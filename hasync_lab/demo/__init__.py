"""`make demo` (`hasync lab demo`): a two-node HA pair on this machine, shown working,
then torn down.

Namespace lab (default, ``namespace.py``): bring the lab up, validate its config,
bootstrap both nodes and run the doctor, keep /etc/exports in sync (with the measured
latency), start the failover daemons, crash node1 and show node2 take over with the
timeline. `--vm` (``vm.py``) runs the VM tier (real DRBD, LVM and kernel NFS in qemu)
instead. Whatever happens, the lab is removed. Both stories run their steps through
``runner.Demo``.
"""

from __future__ import annotations

import argparse
import os

from hasync_lab.demo import namespace, vm
from hasync_lab.demo.runner import console


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hasync_lab.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vm", action="store_true", help="run the VM tier's demo (real DRBD/LVM/NFS in qemu)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        console.print("[red]the demo needs root (network namespaces, mounts, loop devices)[/]")
        return 2
    return vm.run() if args.vm else namespace.run()
