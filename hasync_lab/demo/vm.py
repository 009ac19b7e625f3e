"""`make demo VM=1`: the field notes' storage half for real, in three qemu VMs.

Boots node1, node2 and client1 (the image is built once, ~1.5-2 min cold, then cached),
bootstraps the pair (DRBD 8.4, LVM, ext4, /var/lib/nfs on the replicated disk, exports
with fsid), starts the failover daemons, mounts the export on the client over the VIP
and has it write a checksummed, fsync'd record stream; then powers node1 off and shows
node2 fence it, take the chain over, the client resume by itself with every acknowledged
record intact, and node1 come back as the standby. The lab is removed at the end.
"""

from __future__ import annotations

import time

from rich.panel import Panel

from hasync_lab.demo.runner import Demo, console
from hasync_lab.vm import VmLab, ensure_image, manual, qemu_available
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import VIP, default_guests

LAB_NAME = "vmdemo"


def run() -> int:
    why = qemu_available()
    if why:
        console.print(f"[red]the VM demo needs qemu: {why}[/]")
        return 2
    console.print(Panel.fit(
        "[bold]hasync VM demo[/]: real DRBD, LVM and kernel NFS in three qemu VMs (software emulation,\n"
        "so every step is slower than on hardware). Bootstrap, failover daemons, an NFS client writing\n"
        "checksummed records, node1 powered off, node2 takes over, node1 rejoins. ~6-10 minutes."))

    def report(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    lab = VmLab(LAB_NAME, report=report)
    if lab.exists:
        lab.down()
        lab = VmLab(LAB_NAME, report=report)
    d = Demo(lab)
    w: dict[str, str] = {}

    def up() -> None:
        image = ensure_image(report)
        lab.create(image, default_guests(1))
        ready = lab.up()
        console.print(f"node1, node2 and client1 booted in {max(ready.values()):.0f} s; public network "
                      f"192.0.2.0/24 (VIP {VIP}), replication/heartbeat 198.51.100.0/24, a serial null modem, "
                      "and each node's BMC wired to the other (the fence path)")

    def bootstrap() -> None:
        d.show("node1", ["hasync", "check"])
        d.show("node1", ["hasync", "bootstrap", "--yes"], timeout=600)
        d.show("node2", ["hasync", "bootstrap", "--join", "node1", "--yes"], timeout=600)
        t0 = time.monotonic()
        manual.wait_drbd(lab, "node2", "UpToDate/UpToDate", timeout=300)
        console.print(f"initial DRBD sync finished ({time.monotonic() - t0:.0f} s more)")
        lab.sh("node1", f"mkdir -p {sc.EXPORT} && chmod 1777 {sc.EXPORT}")
        d.show("node1", ["hasync", "doctor"], ok_codes=(0, 1))

    def failover_up() -> None:
        t = sc.start_cluster(lab)
        console.print(f"`hasync failover run` on both: node1 runs the chain, node2 stands by ({t:.0f} s)")
        d.show("node1", ["hasync", "status"], ok_codes=(0, 1))

    def client() -> None:
        sc.mount_client(lab)
        w.update(manual.start_writer(lab, "client1", "/mnt/ha/stream", "demo"))
        manual.wait_acked(lab, "client1", w, 10, timeout=90)
        d.show("client1", ["sh", "-c", f"grep {VIP} /proc/mounts; echo; tail -3 {w['ack']}"])

    def crash() -> None:
        console.print(Panel("[bold]Power node1 off[/] (kill -9 of its qemu): no warning, nothing flushed."))
        r = sc.crash_and_wait(lab, "node1", "node2", w)
        console.print(f"node2 declared node1 dead after [bold]{r.detect_s:.1f} s[/], fenced it and ran the chain: "
                      f"active [bold]{r.active_s:.1f} s[/] after the crash; the client's next acknowledged write "
                      f"came [bold green]{r.resumed_s:.1f} s[/] after the crash")
        d.show("node2", ["hasync", "status"], ok_codes=(0, 1))
        log = manual.stop_writer(lab, "client1", w)
        ack = lab.exec("client1", ("cat", w["ack"])).stdout
        data = lab.exec("node2", ("cat", f"{sc.EXPORT}/stream")).stdout
        missing, bad = manual.check_records(ack, data)
        n = len(ack.splitlines())
        console.print(f"the client saw {n} writes acknowledged: {n - len(missing)} are on node2 intact, "
                      f"{len(missing)} missing, {len(bad)} corrupt; stale file handles: {log.count('Stale')}")
        if missing or log.count("Stale"):
            raise RuntimeError("an acknowledged write was lost or the client saw a stale handle")

    def rejoin() -> None:
        t = sc.rejoin(lab, "node1", "node2")
        console.print(f"node1 powered on, DRBD resynced, its daemon standing by ({t['standby_s']:.0f} s)")
        d.show("node1", ["hasync", "status"], ok_codes=(0, 1))

    try:
        d.step("VM lab up", up)
        d.step("bootstrap: node1, then node2 joins; doctor", bootstrap, needs=("VM lab up",))
        d.step("failover daemons", failover_up, needs=("bootstrap: node1, then node2 joins; doctor",))
        d.step("NFS client writing through the VIP", client, needs=("failover daemons",))
        d.step("crash node1: node2 takes over", crash, needs=("NFS client writing through the VIP",))
        d.step("node1 returns as the standby", rejoin, needs=("crash node1: node2 takes over",))
    finally:
        d.lab_down("VM lab removed (the cached image stays in /var/cache/hasync/vm)")
    return d.verdict("VM demo")
