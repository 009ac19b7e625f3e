"""`hasync lab VERB` for VM labs (`hasync lab up --vm`, or a lab whose kind is "vm").

Called by hasync_lab.cli with the verb's argparse.Namespace; each returns an exit
status: up, down, status, exec, crash, cut, heal, fence, start. See docs/vm.md.
"""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table

from hasync_lab.vm.driver import VmLab, parse_size_mib, qemu_available
from hasync_lab.vm.image import ensure_image
from hasync_lab.vm.image_build import ImageError
from hasync_lab.vm.seed import default_guests
from hasync_lab.vm.wires import VmError

__all__ = ["up", "down", "status", "exec", "exec_", "crash", "cut", "heal", "fence", "start"]


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


def _reporter():
    con = _console(stderr=True)
    t0 = time.monotonic()

    def report(msg: str) -> None:
        con.print(f"[dim]{time.monotonic() - t0:6.1f}s[/dim] {msg}", markup=True, soft_wrap=True)

    return report


def _err(msg: str) -> None:
    _console(stderr=True).print(f"[red]error[/red]: {msg}", markup=True, soft_wrap=True)


def _name(args) -> str:
    return getattr(args, "name", None) or "hl"


def _guard(fn):
    def wrapper(args) -> int:
        try:
            return int(fn(args) or 0)
        except (VmError, ImageError, ValueError, KeyError, OSError) as e:
            _err(str(e))
            return 1

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_guard
def up(args) -> int:
    """Build the image (cached), lay down disks/seeds, boot node1, node2 and the clients."""
    why = qemu_available()
    if why:
        _err(why)
        return 2
    if getattr(args, "nodes", 2) != 2:
        _err("the VM lab has exactly two cluster nodes (--nodes 2)")
        return 2
    report = _reporter()
    lab = VmLab(_name(args), report=report)
    if lab.exists and all(lab.running(v) for v in lab.vms):
        report(f"VM lab {lab.name!r} is already up")
        return 0
    t0 = time.monotonic()
    image = ensure_image(report)
    lab.create(image, default_guests(getattr(args, "clients", 1)),
               init=getattr(args, "init", None) or "busybox",
               disk_mib=parse_size_mib(getattr(args, "disk_size", None) or "128M"))
    ready = lab.up()
    lab.close()
    report(f"VM lab {lab.name!r} up in {time.monotonic() - t0:.1f}s "
           f"(boot {max(ready.values()):.1f}s): {', '.join(lab.vms)}")
    _console().print(f"try: hasync lab exec --name {lab.name} node1 -- cat /proc/drbd")
    return 0


@_guard
def down(args) -> int:
    lab = VmLab(_name(args))
    lab.down()
    return 0


@_guard
def status(args) -> int:
    lab = VmLab(_name(args))
    if not lab.exists:
        _err(f"no VM lab named {lab.name!r}")
        return 1
    st = lab.status()
    if getattr(args, "json", False):
        print(json.dumps(st, indent=2, sort_keys=True))
    else:
        t = Table(title=f"VM lab {st['name']} ({st['dir']})")
        for col in ("VM", "role", "state", "pid", "public", "heartbeat", "links down"):
            t.add_column(col)
        for vm, v in st["vms"].items():
            down_links = ", ".join(k for k, s in v["links"].items() if s != "up") or "-"
            state = "[green]running[/green]" if v["state"] == "running" else "[red]off[/red]"
            t.add_row(vm, v["role"], state, str(v["pid"] or "-"), v["public"], v["replication"] or "-",
                      down_links)
        _console().print(t)
    return 0 if all(v["state"] == "running" for v in st["vms"].values()) else 1


@_guard
def exec(args) -> int:  # noqa: A001 -- the verb's name; exec_ is an alias
    """Run args.argv on args.node through its console agent; exit with its status."""
    lab = VmLab(_name(args))
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    res = lab.exec(args.node, argv, timeout=float(getattr(args, "timeout", None) or 3600))
    lab.close()
    sys.stdout.write(res.stdout)
    sys.stdout.flush()
    sys.stderr.write(res.stderr)
    return res.exit_code


exec_ = exec


@_guard
def crash(args) -> int:
    """Power the VM off without warning (kill -9 of its qemu)."""
    VmLab(_name(args)).crash(args.node)
    return 0


@_guard
def fence(args) -> int:
    lab = VmLab(_name(args))
    return 0 if lab.fence(args.node) else 1


@_guard
def cut(args) -> int:
    VmLab(_name(args)).cut(getattr(args, "node", None), args.link)
    return 0


@_guard
def heal(args) -> int:
    """Every cable back in; crashed VMs power on again (and are waited for)."""
    lab = VmLab(_name(args), report=_reporter())
    lab.heal(getattr(args, "node", None))
    lab.close()
    return 0


@_guard
def start(args) -> int:
    lab = VmLab(_name(args), report=_reporter())
    lab.start(args.node)
    lab.wait_ready([args.node])
    lab.close()
    return 0
