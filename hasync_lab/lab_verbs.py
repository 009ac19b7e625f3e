"""The verbs on a lab: `hasync lab up|down|status|exec|crash|fence|cut|heal`.

A namespace lab's verbs run here (hasync_lab.ns); a VM lab's are handed to
hasync_lab.vm.verbs (see hasync_lab/cli.py for how they are called), loaded only then.
Inside a lab node (whose private /run hides /run/netns) a verb is repeated on the host,
out of band like IPMI: `hasync lab fence` from a node's fence agent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType

from rich.console import Console

from hasync_lab.ns.lab import Lab, LabError
from hasync_lab.ns.render import status_table
from hasync_lab.ns.spec import LINKS, check_name, lab_root
from hasync_lab.ns.store import (
    Store,
    all_lab_names,
    default_lab_name,
    host_anchor_pid,
    inside_node,
    node_info,
)

VM_VERBS = "hasync_lab.vm.verbs"


def _name_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name",
        default=None,
        help="lab name: 1-16 lowercase letters/digits (default: $HASYNC_LAB, the lab this "
        "runs inside, or 'hl')",
    )


def register(verbs) -> None:
    p = verbs.add_parser("up", description="Build the lab; what already runs is left alone, crashed nodes stay "
                         "down (see heal).")
    _name_arg(p)
    p.add_argument("--nodes", type=int, default=2, help="cluster nodes (default 2)")
    p.add_argument("--clients", type=int, default=1, help="client nodes on the public net (default 1)")
    p.add_argument("--disk-size", default="256M", help="loop disk per cluster node (default 256M)")
    p.add_argument("--vm", action="store_true", help="qemu VMs instead of namespaces (slow, real DRBD/NFS)")
    p.set_defaults(func=cmd_up)

    p = verbs.add_parser("down", description="Remove every namespace, link, bridge, mount, loop device, "
                         "file and process of the lab, also after a crash or an interrupted up.")
    _name_arg(p)
    p.add_argument("--all", action="store_true",
                   help="every lab on this machine, except labs held by a running process "
                   "(a pytest session's lab) unless --force")
    p.add_argument("--force", action="store_true", help="with --all: held labs too")
    p.set_defaults(func=cmd_down)

    p = verbs.add_parser("status")
    _name_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = verbs.add_parser("exec", description="Run CMD inside NODE's namespaces (cwd /, HOME=/root); "
                         "exits with CMD's status.")
    _name_arg(p)
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=cmd_exec)

    for verb, func in (("crash", cmd_crash), ("fence", cmd_fence)):
        p = verbs.add_parser(verb)
        _name_arg(p)
        p.add_argument("node")
        p.set_defaults(func=func)

    p = verbs.add_parser("cut")
    _name_arg(p)
    p.add_argument("node")
    p.add_argument("link", choices=LINKS + ("replication",),
                   help="public, heartbeat (= replication, the dedicated link) or serial")
    p.set_defaults(func=cmd_cut)

    p = verbs.add_parser("heal")
    _name_arg(p)
    p.add_argument("node", nargs="?", default=None)
    p.set_defaults(func=cmd_heal)


# ------------------------------------------------------------------------ helpers


def _err(msg: str) -> None:
    Console(stderr=True).print(f"[red]error[/red]: {msg}", markup=True, highlight=False, soft_wrap=True)


def _resolve(args) -> str:
    args.name = check_name(args.name or default_lab_name())
    return args.name


def _vm_verbs(args) -> ModuleType:
    return args.load(VM_VERBS)


def _vm(args, verb: str) -> int | None:
    """Hand the verb to hasync_lab.vm.verbs when the lab is a VM lab; None otherwise."""
    if Store(args.name).kind() != "vm":
        return None
    return int(getattr(_vm_verbs(args), verb)(args) or 0)


def _need_root() -> int | None:
    if os.geteuid() != 0:
        _err("the namespace lab needs root")
        return 2
    return None


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapper(args) -> int:
        try:
            _resolve(args)
            if inside_node():
                return _from_host(args)
            return fn(args)
        except (LabError, ValueError, KeyError) as e:
            _err(str(e))
            return 1
        except KeyboardInterrupt:
            # the lab's lock went with the interrupt (locks.py); what was made stays
            _err(f"interrupted: lab {args.name!r} may be half made or half changed: `hasync lab up --name "
                 f"{args.name}` finishes it (idempotent; a node caught mid-crash is booted again by `hasync lab heal "
                 f"--name {args.name}`), `hasync lab down --name {args.name}` removes it")
            return 130

    wrapper.__name__ = fn.__name__
    return wrapper


def host_argv(args) -> list[str]:
    """The `hasync lab ...` argv that repeats this invocation (pure)."""
    verb = args.lab_command
    out = ["lab", verb, "--name", args.name]
    if verb == "up":
        out += ["--nodes", str(args.nodes), "--clients", str(args.clients),
                "--disk-size", args.disk_size] + (["--vm"] if args.vm else [])
    elif verb == "down":
        out += (["--all"] if args.all else []) + (["--force"] if args.force else [])
    elif verb == "status":
        out += ["--json"] if args.json else []
    elif verb == "exec":
        rest = list(args.argv)
        out += [args.node, "--", *(rest[1:] if rest[:1] == ["--"] else rest)]
    elif verb == "cut":
        out += [args.node, args.link]
    elif verb == "heal":
        out += [args.node] if args.node else []
    else:  # crash, fence
        out += [args.node]
    return out


def _from_host(args) -> int:
    """Inside a lab node (whose private /run hides /run/netns): do it from the host, out of
    band like IPMI, by entering the namespaces of the lab's relay (or PID 1's)."""
    info = node_info() or {}
    env = dict(os.environ)
    if info.get("root"):
        env["HASYNC_LAB_DIR"] = info["root"]
    # Marks this command as coming from a node: Lab.reset() lets such commands (e.g. a
    # fence a daemon started just before the test ended) finish before it heals the lab.
    env["HASYNC_LAB_FROM_NODE"] = f"{args.name}:{info.get('node', '')}"
    anchor = host_anchor_pid(info.get("root") or lab_root(), args.name)
    argv = ["nsenter", "-t", str(anchor), "-m", "-n", "-u", "--", sys.executable, "-m", "hasync",
            *host_argv(args)]
    return subprocess.call(argv, env=env)


# ------------------------------------------------------------------------ verbs


@_guard
def cmd_up(args) -> int:
    if args.vm:
        store = Store(args.name)
        if store.kind() == "ns":
            _err(f"lab {args.name!r} is a namespace lab: `hasync lab down --name {args.name}` first")
            return 1
        store.dir.mkdir(parents=True, exist_ok=True)
        (store.dir / "kind").write_text("vm\n")
        return int(_vm_verbs(args).up(args) or 0)
    r = _vm(args, "up")
    if r is not None:
        return r
    if (rc := _need_root()) is not None:
        return rc
    t0 = time.monotonic()
    spec = Lab(args.name).up(args.nodes, args.clients, args.disk_size)
    print(f"lab {spec.name!r} up in {time.monotonic() - t0:.1f}s: {', '.join(spec.all_nodes)}"
          f" (hasync lab status --name {spec.name})")
    return 0


@_guard
def cmd_down(args) -> int:
    if (rc := _need_root()) is not None:
        return rc
    names = _all_names() if args.all else [args.name]
    rc = 0
    for name in names:
        store = Store(name)
        if store.kind() == "vm":
            ns = argparse.Namespace(**{**vars(args), "name": name})
            r = int(_vm_verbs(args).down(ns) or 0)
            if r == 0:
                shutil.rmtree(store.dir, ignore_errors=True)
            rc = rc or r
            continue
        lab = Lab(name)
        holder = lab.holder()
        if args.all and holder and not args.force:
            print(f"lab {name!r}: held by running process {holder}, left alone (--force)")
            continue
        lab.down()
    return rc


def _all_names() -> list[str]:
    names = set(all_lab_names(with_vm=True))
    try:
        for n in os.listdir("/run/netns"):
            if n.endswith("-sw"):
                try:
                    names.add(check_name(n[:-3]))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return sorted(names)


@_guard
def cmd_status(args) -> int:
    r = _vm(args, "status")
    if r is not None:
        return r
    st = Lab(args.name).status()
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0 if st.get("up") else 1
    if not st.get("up"):
        print(f"lab {args.name!r} is not up (labs here: {', '.join(_all_names()) or 'none'})")
        return 1
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(status_table(st))
    return 0


@_guard
def cmd_exec(args) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _err("exec: no command (hasync lab exec NODE -- CMD ...)")
        return 2
    args.argv = argv
    r = _vm(args, "exec")
    if r is not None:
        return r
    lab = Lab(args.name)
    state = lab.status_of(args.node)
    if state != "up":
        _err(f"{args.node} is {state}" + (f" (hasync lab heal {args.node})" if state == "crashed" else ""))
        return 255
    full = list(lab.enter_argv(args.node)) + argv
    env = lab.node_env(args.node)
    sys.stdout.flush()
    try:
        os.execvpe(full[0], full, env)
    except OSError as e:
        _err(f"exec: {e}")
        return 127


def _on_lab(args, verb: str, act: Callable[[Lab], object]) -> int:
    """A VM lab's *verb*, else *act* on the namespace lab (0 unless it returns a status)."""
    r = _vm(args, verb)
    if r is not None:
        return r
    status = act(Lab(args.name))
    return status if isinstance(status, int) else 0


@_guard
def cmd_crash(args) -> int:
    return _on_lab(args, "crash", lambda lab: lab.crash(args.node))


@_guard
def cmd_fence(args) -> int:
    return _on_lab(args, "fence", lambda lab: _fence(lab, args.node))


def _fence(lab: Lab, node: str) -> int:
    if lab.fence(node):
        return 0
    _err(f"{node} is not down after fencing")
    return 1


@_guard
def cmd_cut(args) -> int:
    return _on_lab(args, "cut", lambda lab: lab.cut(args.node, args.link))


@_guard
def cmd_heal(args) -> int:
    return _on_lab(args, "heal", lambda lab: lab.heal(args.node))
