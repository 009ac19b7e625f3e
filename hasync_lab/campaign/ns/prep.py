"""What the ns tier lays into a lab before its run: the cluster config, the fence command
and the resource agents wrapped so a fault can make them fail, hang or lie, and the
boot steps a node repeats every time it comes up (as its fstab and units would).

Every wrapper is transparent until a flag file in the node says otherwise:

    /etc/hasync/campaign/flags/fence               fail | lie | slow SECONDS
    /etc/hasync/campaign/flags/RID.OP.fail         start|stop|status of RID exits 1
    /etc/hasync/campaign/flags/RID.OP.hang         ... hangs until the flag goes (or the
                                                   daemon's timeout kills it)

The flags live on the node's disk (/etc): a node that reboots mid-fault keeps them, the
heal removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hasync_lab.campaign.live import fence_script
from hasync_lab.ns.config_gen import MOUNT_POINT2, VIP2, cluster_toml
from hasync_lab.ns.spec import PREFIX

CAMPAIGN_DIR = "/etc/hasync/campaign"
FLAGS = f"{CAMPAIGN_DIR}/flags"
FENCE = f"{CAMPAIGN_DIR}/fence"
FENCE_LOG = f"{CAMPAIGN_DIR}/fence.log"
AGENTS = f"{CAMPAIGN_DIR}/agents"
OCF_DIR = "/usr/lib/ocf/resource.d/heartbeat"
DEMO_SRC = Path(__file__).resolve().parents[3] / "failover" / "resource.d" / "hasync-demo"
CLOCK_FILE = "/run/hasync-campaign/clock"
SHIM_DIR = str(Path(__file__).resolve().parent / "clockshim")
STATE_DIR = "/var/lib/hasync/sync"
BACKUP_DIR = "/var/lib/hasync/backups"
SYNC_DIR = "/etc/hasync/sync-test"
DEMO_PORT = 8080

# resource id -> (agent the wrapper stands in for, where the daemon looks for it)
WRAPPED = {
    "fs": ("Filesystem", f"{OCF_DIR}/Filesystem"),
    "vip": ("IPaddr2", f"{OCF_DIR}/IPaddr2"),
    "demo": ("hasync-demo", "/etc/ha.d/resource.d/hasync-demo"),
}
CHAIN = ("fs", "vip", "demo")
# --groups 2 (issue 17): the chain is group "a" (preferred on node1); group "b", preferred
# on node2, is a tmpfs and a second VIP (hasync_lab.ns.config_gen's two-group config).
# The faults aim at group a's pieces; group b meets the node-level ones (crashes, kills,
# cuts) and its own audits.
GROUP_B = ("fs2", "vip2")
GROUPS = {"a": CHAIN, "b": GROUP_B}
PIECES = CHAIN + GROUP_B  # what the sampler reads (fs2 and vip2 are never up in a one-group run)


@dataclass(frozen=True)
class Timing:
    """The campaign config's timing (what the bounds and the fault draw are made of)."""

    keepalive: float = 0.1
    deadtime: float = 0.5
    initdead: float = 1.0
    op_timeout: float = 3.0  # start, stop and monitor timeout of every resource
    fence_timeout: float = 5.0
    daemon_start_s: float = 1.5  # python start-up until the daemon listens (a loaded box)
    boot_s: float = 1.0  # a fenced node is powered on again after this
    restart_s: float = 1.0  # RestartSec of hasync-failover.service
    settle_s: float = 0.8  # a clean state must hold this long (16 keepalives)
    chain: tuple[str, ...] = CHAIN  # the pieces a fault may make fail, hang or start at boot
    monitored: tuple[str, ...] = ("vip", "demo")  # the pieces a monitor watches (resource-crash)
    groups: int = 1  # 2: the two-group config (GROUPS)

    @property
    def groups_pieces(self) -> dict[str, tuple[str, ...]]:
        """Resource group -> its pieces (one group: the chain, named "main")."""
        return dict(GROUPS) if self.groups == 2 else {"main": CHAIN}

    @property
    def liveness_bound_s(self) -> float:
        """From a heal to a clean cluster, at most: a reboot, the daemon's start and
        initdead, a few deadtimes to notice, a fence that times out and its retry, and a
        chain that stops with every stop timing out (2 retries) before it starts (with
        two groups: both groups' pieces, a node may have to run both)."""
        chain = sum(map(len, self.groups_pieces.values())) * self.op_timeout
        return round(self.boot_s + self.daemon_start_s + self.initdead + 6 * self.deadtime
                     + 2 * self.fence_timeout + 3 * chain + chain + self.settle_s, 1)

    @property
    def stray_bound_s(self) -> float:
        """A piece started behind hasync's back on the standby node may run beside the
        active node's chain this long: the daemon's start, initdead, two deadtimes and a
        chain stop."""
        return round(self.daemon_start_s + self.initdead + 2 * self.deadtime + len(CHAIN) * 0.5 + 1.0, 1)


TIMING = Timing()
TIMING2 = Timing(groups=2)

GROUP_B_HEAD = '[[group]]\nid = "b"'


def campaign_toml(spec, ping: str, t: Timing = TIMING) -> str:
    """The lab's cluster.toml with the campaign's changes: a ping node (the tiebreak),
    short operation timeouts, a third resource with a process (hasync-demo), the wrapped
    fence command and a self-fence that takes the node down the lab's way. With
    ``t.groups == 2`` the lab's two-group config, the demo service in group a."""
    text = cluster_toml(spec, groups=t.groups == 2)
    head = text.split("[fencing]")[0]
    if "ping = []" not in head or 'start_timeout = "10s"' not in head or (t.groups == 2 and GROUP_B_HEAD not in head):
        raise RuntimeError("the lab's cluster.toml changed shape: update hasync_lab/campaign/ns/prep.py")
    op = f'"{t.op_timeout:g}s"'
    head = head.replace("ping = []", f'ping = ["{ping}"]')
    head = head.replace('start_timeout = "10s"', f"start_timeout = {op}")
    head = head.replace('stop_timeout = "10s"', f"stop_timeout = {op}\nmonitor_timeout = {op}")
    tail = ""
    if t.groups == 2:  # the demo service belongs to group a: before group b's tables
        head, tail = head.split(GROUP_B_HEAD, 1)
        tail = GROUP_B_HEAD + tail
    head += "\n".join([
        "[[group.resource]]" if t.groups == 2 else "[[resource]]",
        'id = "demo"',
        'type = "heartbeat"',
        'agent = "hasync-demo"',
        f'args = ["{DEMO_PORT}"]',
        f"start_timeout = {op}",
        f"stop_timeout = {op}",
        f"monitor_timeout = {op}",
        'monitor_interval = "1s"',
        "max_restarts = 1",
        "",
        tail,
        "[fencing]",
        'mode = "required"',
        f'command = ["{FENCE}", "{{node}}"]',
        f'timeout = "{t.fence_timeout:g}s"',
        'on_stop_failure = "fence-self"',
        'self_command = ["hasync", "lab", "fence", "{node}"]',  # as the lab's: never `reboot -f`
        "",
    ])
    return head


FENCE_SCRIPT = fence_script("ns", "`hasync lab fence NODE`", FLAGS, FENCE_LOG, 'exec hasync lab fence "$node"')


def wrapper_script(rid: str, real: str) -> str:
    return f"""#!/bin/sh
# The fault campaign's wrapper around {real} (hasync_lab/campaign/ns): transparent
# unless a flag in {FLAGS} names resource {rid} and the operation.
for op; do :; done
[ "$op" = monitor ] && op=status
# the flags name the resource (OCF_RESOURCE_INSTANCE: with two groups, group b's
# Filesystem and IPaddr2 run through these wrappers too and must not meet group a's faults)
f={FLAGS}/${{OCF_RESOURCE_INSTANCE:-{rid}}}.$op
if [ -e "$f.fail" ]; then echo "campaign: {rid} $op failure injected" >&2; exit 1; fi
while [ -e "$f.hang" ]; do sleep 0.1; done
exec {real} "$@"
"""


def install_script() -> str:
    """Run once in each node (files on its disk): agents copied aside, wrappers, flags."""
    lines = [
        "set -e",
        f"mkdir -p {FLAGS} {AGENTS} /etc/ha.d/resource.d",
        f"rm -f {FLAGS}/* {FENCE_LOG}",
        f"cp {OCF_DIR}/Filesystem {OCF_DIR}/IPaddr2 {AGENTS}/",
        f"install -m 755 {DEMO_SRC} {AGENTS}/hasync-demo",
        "rm -rf /var/lib/hasync /run/hasync-demo.*.pid",
        f"mkdir -p {SYNC_DIR}",
    ]
    for rid, (agent, _where) in WRAPPED.items():
        lines.append(f"cat > {CAMPAIGN_DIR}/wrap-{rid} <<'EOF'\n{wrapper_script(rid, f'{AGENTS}/{agent}')}EOF")
        lines.append(f"chmod 755 {CAMPAIGN_DIR}/wrap-{rid}")
    lines.append(f"cat > {FENCE} <<'EOF'\n{FENCE_SCRIPT}EOF")
    lines.append(f"chmod 755 {FENCE}")
    lines.append(f"install -m 755 {CAMPAIGN_DIR}/wrap-demo /etc/ha.d/resource.d/hasync-demo")
    return "\n".join(lines) + "\n"


def boot_script() -> str:
    """What a node does every time it boots, before its units start: the OCF agents it
    runs are the wrappers (bind mounts in the node's own mount namespace: the host's
    /usr is untouched), and a fresh wall-clock offset file for the clock shim."""
    lines = ["set -e"]
    for rid in ("fs", "vip"):
        where = WRAPPED[rid][1]
        lines.append(f"mountpoint -q {where} || mount --bind {CAMPAIGN_DIR}/wrap-{rid} {where}")
    lines += [f"mkdir -p {Path(CLOCK_FILE).parent}", f": > {CLOCK_FILE}"]
    return "\n".join(lines) + "\n"


def piece_script(action: str, rid: str, lab) -> str:
    """Start or stop (*action*) one piece of the chain behind hasync's back: a unit
    enabled at boot starting it, an operator cleaning up a stray by hand."""
    start = action == "start"
    if rid in ("fs", "fs2"):
        where = lab.mount_point if rid == "fs" else MOUNT_POINT2
        source = f"-t ext4 {lab.disk_device}" if rid == "fs" else "-t tmpfs ha2"
        return f"mountpoint -q {where} || mount {source} {where}" if start else f"! mountpoint -q {where} || umount {where}"
    if rid in ("vip", "vip2"):
        cidr = lab.vip_cidr if rid == "vip" else f"{VIP2}/{PREFIX}"
        return f"ip addr {'add' if start else 'del'} {cidr} dev {lab.public_if} 2>/dev/null || true"
    return f"{AGENTS}/hasync-demo {DEMO_PORT} {action}"
