"""The faults of the vm tier: the ns tier's draw (hasync_lab/campaign/ns/faults.py, the
same ``Fault`` data and step language) with the VM lab's timing and chain, narrowed to
what qemu guests can do here. The same seed gives the same faults.

Kinds this tier does not do are named in SKIPPED with the reason.
"""

from __future__ import annotations

from hasync_lab.campaign.faults import RACE, Fault
from hasync_lab.campaign.ns.faults import draw_faults as ns_draw
from hasync_lab.campaign.vm.prep import TIMING, VmTiming

# kind -> weight; slow kinds (a stop timing out three times, both nodes rebooting) weigh less
KINDS = {
    "power-loss": 8,
    "power-loss-both": 2,
    "sigkill": 6,
    "sigstop": 6,
    "restart-mid-job": 3,
    "daemon-stop": 4,
    "cut-link": 5,
    "cut-all": 5,
    "fence-fail": 3,
    "fence-slow": 2,
    "start-failure": 4,
    "stop-failure": 3,
    "stop-timeout": 2,
    "status-timeout": 2,
    "operator": 5,
    "resource-crash": 3,
    "clock-step": 4,
}

SKIPPED = {
    "fence-lie": "with the peer only looking dead, a lying fence lets both nodes promote DRBD: a real DRBD split "
                 "brain that only an operator's discard-my-data ends (losing writes by design); the ns tier runs it",
    "cut-oneway": "qemu's link state cuts both directions; no per-direction filter on the lab's L2 yet",
    "link-degrade": "no delay/loss on the lab's emulated L2 yet (the guests' netem would do it)",
    "serial-noise": "the null modem is a qemu chardev socket: no way in for noise yet",
    "replay-after-restart": "no tap on the VMs' multicast L2 to capture and replay heartbeat packets (the ns tier does)",
    "replay-peer-dead": "as replay-after-restart",
    "ping-loss": "the ping node is the only NFS client: blocking it would also cut the clients off the active node",
    "boot-enabled": "the guests boot with busybox init; units enabled at boot are the ns tier's",
    "config-drift": "the ns tier's (a config difference needs no real storage)",
    "sync-enospc": "the sync side runs in the ns tier (no watcher on the VMs)",
    "sync-unison-kill": "as sync-enospc",
    "sync-ssh-drop": "as sync-enospc",
    "sync-both-edit": "as sync-enospc",
}


def draw_faults(seed: int, n: int, kinds: tuple[str, ...] | None = None, t: VmTiming = TIMING) -> list[Fault]:
    return ns_draw(seed, n, kinds, t, weights=KINDS, tier="vm", gap_s=2.0)  # type: ignore[arg-type]  # VmTiming has what the draw reads


__all__ = ["KINDS", "RACE", "SKIPPED", "Fault", "draw_faults"]
