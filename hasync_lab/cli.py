"""`hasync lab ...`: the namespace lab (and, with --vm, the VM lab) from the command line.

The product's CLI hands `hasync lab ARGS` to :func:`main` (the ``hasync.verbs`` entry
point ``lab``). It has the product CLI's shape (hasync/cli/table.py): ``VERBS`` is the
static table (verb, one-line help, module); the typed verb's module is imported through
table.load, the one lazy import, and argv parsed again with the parsers that module
registers (``register(sub)``, each verb ``set_defaults(func=handler)``). So a `hasync
lab fence` from inside a node -- two processes, this one and the one on the host --
loads the namespace lab's code and not the benchmarks, demos, VM lab or campaign. A
handler that picks its module at run time (a VM lab's verbs, the benchmark of a kind,
the demo) gets table.load as ``args.load``.

VM labs: `up --vm`, or any verb on a lab whose state dir says kind "vm", is handed to
hasync_lab.vm.verbs (lab_verbs.py does), called as

    verbs.up(args) -> int        args.name, args.nodes, args.clients, args.disk_size
    verbs.down(args) -> int      args.name
    verbs.status(args) -> int    args.name, args.json
    verbs.exec(args) -> int      args.name, args.node, args.argv (list[str])
    verbs.crash(args) -> int     args.name, args.node
    verbs.cut(args) -> int       args.name, args.node, args.link
    verbs.heal(args) -> int      args.name, args.node (None: everything)
    verbs.fence(args) -> int     args.name, args.node

where args is the argparse.Namespace of the verb. Before verbs.up is called the lab dir
($HASYNC_LAB_DIR or /var/tmp/hasync-lab)/NAME/kind holds "vm"; after verbs.down returns 0
the dir is removed.
"""

from __future__ import annotations

import argparse
import sys

from hasync.cli import table
from hasync.cli.table import Register, Verb, add_verbs

HELP = """\
A virtual two-node cluster on this machine, made of Linux namespaces (root only).

Each node (node1, node2, ..., client1, ...) has its own network, mount and UTS namespace
(hostname = node name), a private copy-on-write /etc, /var/lib, /var/log, /root, /srv and
/usr/local, a private /run and /dev, and its own sshd. Cluster nodes share a public
bridge (10.200.0.0/24, with the clients) and a heartbeat bridge (10.201.0.0/24); node1
and node2 are joined by a serial null-modem cable (/dev/ttyS1 in both) and each has a
loop disk (/dev/vdb). The VIP is 10.200.0.100/24. Every node gets a working
/etc/hasync/cluster.toml. Several labs with different names can run at once.

  hasync lab up [--nodes 2] [--clients 1] [--disk-size 256M]
  hasync lab exec node1 -- ssh node2 hostname
  hasync lab cut node1 heartbeat; hasync lab crash node2; hasync lab heal
  hasync lab status; hasync lab down

See docs/lab.md.
"""


VERBS = (
    Verb("up", "build the lab (idempotent)", "hasync_lab.lab_verbs"),
    Verb("down", "remove everything the lab made", "hasync_lab.lab_verbs"),
    Verb("status", "nodes, addresses, links, processes, disks", "hasync_lab.lab_verbs"),
    Verb("exec", "run a command inside a node", "hasync_lab.lab_verbs"),
    Verb("crash", "power loss: kill every process of NODE, its links down", "hasync_lab.lab_verbs"),
    Verb("fence", "crash NODE out of band (works from inside a node); exit 0 only when it is down",
         "hasync_lab.lab_verbs"),
    Verb("cut", "pull one cable of NODE", "hasync_lab.lab_verbs"),
    Verb("heal", "cables back in; crashed nodes boot again", "hasync_lab.lab_verbs"),
    Verb("bench", "benchmarks: `hasync lab bench sync|failover [--vm] ...`", "hasync_lab.bench_verbs"),
    Verb("demo", "what `make demo` shows: a lab up, bootstrap, sync, a crash and the takeover, then the lab "
         "removed (--vm: in qemu VMs)", "hasync_lab.bench_verbs"),
    Verb("campaign", "randomized, seeded fault campaign with self-tested audits", "hasync_lab.campaign.cli"),
)


def build_parser(register: Register | None = None, prog: str = "hasync lab") -> argparse.ArgumentParser:
    """The parser of `hasync lab ARGS` (ARGS without the leading "lab"). Without
    *register*: every verb of the table taking the rest of argv as it is (what --help
    lists, what finds the verb typed); with it: the verbs *register* adds."""
    lab = argparse.ArgumentParser(prog=prog, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = lab.add_subparsers(dest="lab_command", metavar="VERB")
    if register is None:
        add_verbs(verbs, VERBS)
    else:
        register(verbs)
    return lab


def parse_args(argv: list[str]) -> argparse.Namespace | None:
    """argv parsed by the typed verb's own parser (None: no verb, the help was printed)."""
    parsed = table.parse(build_parser, VERBS, argv, dest="lab_command")
    if parsed is None:
        return None
    args, _ = parsed
    args.load = table.load
    return args


def main(argv: list[str] | None = None) -> int:
    """`hasync lab ARGS` -> exit status (the ``hasync.verbs`` entry point ``lab``)."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if args is None:
        return 2
    return int(args.func(args) or 0)


__all__ = ["VERBS", "build_parser", "main", "parse_args"]
