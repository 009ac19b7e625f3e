"""`make demo`: a two-node HA pair in network namespaces on this machine, shown working,
then torn down.

Bring the lab up, validate its config, bootstrap both nodes and run the doctor, keep
/etc/exports in sync (with the measured latency), start the failover daemons, crash
node1 and show node2 take over with the timeline. Whatever happens, the lab is removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rich.panel import Panel

from hasync_lab.demo import sync_step
from hasync_lab.demo.runner import Demo, console
from hasync_lab.ns import Lab

LAB_NAME = "demo"


class NamespaceDemo(Demo):
    """The namespace story, one method per step."""

    def lab_up(self) -> None:
        t0 = time.monotonic()
        self.lab.up(nodes=2, clients=1)
        console.print(f"lab [bold]{self.lab.name}[/] up in {time.monotonic() - t0:.1f} s: node1, node2 and client1, "
                      "each its own network/mount/UTS namespace with sshd; a public bridge, a heartbeat link, "
                      "a serial null-modem cable and a disk per node.")
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
        latency = sync_step.show(self.lab, say=lambda m: console.print(m, markup=False))
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


def run() -> int:
    lab = Lab(LAB_NAME)
    demo = NamespaceDemo(lab)
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
