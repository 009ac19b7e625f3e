"""`make demo`: a two-node HA pair on this machine, shown working, then torn down.

Namespace lab (default): bring the lab up, validate its config, bootstrap both nodes and
run the doctor, keep /etc/exports in sync (with the measured latency), start the failover
daemons, crash node1 and show node2 take over with the timeline. `--vm` runs the VM tier
(real DRBD, LVM and kernel NFS in qemu) instead. Whatever happens, the lab is removed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule

console = Console(highlight=False)

LAB_NAME = "demo"


class Demo:
    def __init__(self, lab):
        self.lab = lab
        self.failed: list[str] = []
        self.env = {"COLUMNS": str(max(100, console.width))}
        if console.is_terminal:
            self.env["FORCE_COLOR"] = "1"
        else:
            self.env["NO_COLOR"] = "1"
            self.env["TERM"] = "dumb"

    # -- helpers -------------------------------------------------------------------

    def step(self, title: str, fn: Callable[[], object], *, needs: tuple[str, ...] = ()) -> bool:
        console.print(Rule(f"[bold]{title}"))
        missing = [n for n in needs if n in self.failed]
        if missing:
            console.print(f"[yellow]skipped[/]: needs {', '.join(missing)}")
            self.failed.append(title)
            return False
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # the demo goes on; the failure is reported and counted
            console.print(f"[bold red]✗ {title} failed[/]: {e}")
            self.failed.append(title)
            return False
        console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")
        return True

    def show(self, node: str, argv: list[str], *, ok_codes=(0,), timeout: float = 120) -> str:
        console.print(f"[dim]{node}#[/] [bold]{' '.join(argv)}[/]")
        r = self.lab.exec(node, argv, timeout=timeout, env=self.env)
        out = (r.stdout + r.stderr).rstrip()
        if out:  # already laid out by the command itself: pass it through untouched
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
        if r.exit_code not in ok_codes:
            raise RuntimeError(f"`{' '.join(argv)}` on {node} exited {r.exit_code}")
        return r.stdout

    def wait(self, what: str, cond: Callable[[], bool], timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def holds_vip(self, node: str) -> bool:
        r = self.lab.exec(node, ["ip", "-o", "-4", "addr", "show"], timeout=10)
        return f" {self.lab.vip}/" in r.stdout

    def lab_down(self, removed: str) -> None:
        console.print(Rule("[bold]lab down"))
        try:
            self.lab.down()
            console.print(f"[green]✓[/] {removed}")
        except Exception as e:  # noqa: BLE001 -- reported and counted
            console.print(f"[bold red]✗ lab down failed[/]: {e}")
            self.failed.append("lab down")

    def verdict(self, what: str) -> int:
        if self.failed:
            console.print(f"[bold red]{what} finished with failures:[/] {', '.join(self.failed)}")
            return 1
        console.print(f"[bold green]{what} finished: every step worked[/]")
        return 0

    # -- the story -----------------------------------------------------------------

    def lab_up(self) -> None:
        t0 = time.monotonic()
        self.lab.up(nodes=2, clients=1)
        console.print(f"lab [bold]{self.lab.name}[/] up in {time.monotonic() - t0:.1f} s: node1, node2 and client1, "
                      "each its own network/mount/UTS namespace with sshd; a public bridge, a heartbeat link, "
                      "a serial null-modem cable and a disk per node.")
        import subprocess

        console.print(f"[dim]host#[/] [bold]hasync lab status --name {self.lab.name}[/]")
        sys.stdout.flush()
        subprocess.run([sys.executable, "-m", "hasync", "lab", "status", "--name", self.lab.name], env={**os.environ, **self.env}, check=True)
        self.show("node1", ["ssh", "node2", "hostname"])

    def check(self) -> None:
        self.show("node1", ["hasync", "check"])

    def bootstrap(self) -> None:
        # The lab's disks come with a scratch filesystem: bootstrap refuses to mkfs over it
        # until the admin names the device. Shown on purpose: nothing is destroyed silently.
        self.show("node1", ["hasync", "bootstrap", "--yes"], ok_codes=(1,), timeout=300)
        console.print("[bold]refused, nothing changed[/]: the admin confirms the device may be erased")
        self.show("node1", ["hasync", "bootstrap", "--yes", "--allow-data-loss", "/dev/vdb"], timeout=300)
        self.show("node2", ["hasync", "bootstrap", "--join", "node1", "--yes"], timeout=300)
        out = self.show("node1", ["hasync", "bootstrap", "--yes"], timeout=300)
        if "0 changes" not in out:
            raise RuntimeError("a second bootstrap run should report 0 changes")
        self.show("node1", ["hasync", "doctor"], ok_codes=(0, 1))

    def sync(self) -> None:
        from hasync.sync.demo import show

        latency = show(self.lab, say=lambda m: console.print(m, markup=False))
        if latency is None:
            raise RuntimeError("the change did not reach node2")
        self.show("node2", ["cat", "/etc/exports"])

    def failover(self) -> None:
        for node in ("node1", "node2"):
            self.lab.spawn(node, ["hasync", "failover", "run"], log=f"/tmp/hasync-demo-failover-{node}.log")
        waited = self.wait("node1 to start the chain", lambda: self.holds_vip("node1"), 60)
        console.print(f"node1 holds the VIP {self.lab.vip} ({waited:.1f} s after the daemons started)")
        self.show("node1", ["hasync", "status"], ok_codes=(0, 1))
        console.print(Panel("[bold]Crash node1[/]: every process killed and every cable dead, like pulling the power."))
        t0 = time.monotonic()
        self.lab.crash("node1")
        self.wait("node2 to take over", lambda: self.holds_vip("node2"), 60)
        took = time.monotonic() - t0
        ping = self.lab.exec("client1", ["ping", "-c", "1", "-W", "2", self.lab.vip], timeout=10)
        answered = "answers" if ping.ok else "does NOT answer"
        console.print(f"node2 holds the VIP [bold green]{took:.2f} s[/] after the crash; the client's ping {answered}")
        self.show("node2", ["hasync", "status"], ok_codes=(0, 1))
        if not ping.ok:
            raise RuntimeError("the VIP does not answer the client after the takeover")


def run_namespace_demo() -> int:
    from hasync.lab import Lab

    lab = Lab(LAB_NAME)
    demo = Demo(lab)
    console.print(Panel.fit(
        "[bold]hasync demo[/]: a two-node active/passive HA pair in network namespaces on this machine.\n"
        "It brings a lab up, validates the config, bootstraps both nodes, syncs /etc/exports,\n"
        "runs the failover daemons, crashes node1 and shows node2 take over. Then it cleans up.",
    ))
    try:
        demo.step("lab up", demo.lab_up)
        demo.step("hasync check", demo.check, needs=("lab up",))
        demo.step("bootstrap both nodes, then doctor", demo.bootstrap, needs=("lab up",))
        demo.step("config sync: hasync watch", demo.sync, needs=("lab up",))
        demo.step("failover: crash node1", demo.failover, needs=("lab up",))
    finally:
        demo.lab_down("lab removed: no namespaces, mounts, loop devices or processes left")
    return demo.verdict("demo")


def run_vm_demo() -> int:
    from hasync.lab.vm.demo import demo

    return int(demo(console) or 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hasync.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vm", action="store_true", help="run the VM tier's demo (real DRBD/LVM/NFS in qemu)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        console.print("[red]the demo needs root (network namespaces, mounts, loop devices)[/]")
        return 2
    return run_vm_demo() if args.vm else run_namespace_demo()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
