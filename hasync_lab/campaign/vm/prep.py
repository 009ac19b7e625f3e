"""What the vm tier lays into the guests before its run, and its timing.

The VM lab's own cluster.toml (hasync_lab/vm/seed.py) with one change: the fence
command is the campaign's wrapper around the lab's BMC fence. The resource agents of
the chain are wrapped in place on each node's root disk (the real agent kept beside it
as ``.NAME.campaign-real``, so an OCF agent still finds its functions next to it), and
systemd's part for the failover daemon is a small loop in the guest (Restart=always
after 1 s, KillMode=process: the chain stays when the daemon dies). Every wrapper is
transparent until a flag file on the node's disk says otherwise:

    /var/lib/hasync-campaign/flags/fence           fail | lie | slow SECONDS
    /var/lib/hasync-campaign/flags/RID.OP.fail     start|stop|status of RID exits 1
    /var/lib/hasync-campaign/flags/RID.OP.hang     ... hangs until the flag goes (or the
                                                   daemon's timeout kills it)
"""

from __future__ import annotations

import inspect
import re
import tomllib
from dataclasses import dataclass

from hasync_lab.campaign.live import control_status, fence_script
from hasync_lab.vm.seed import FENCE_COMMAND, VIP, cluster_toml, default_guests

CAMPAIGN_DIR = "/var/lib/hasync-campaign"
FLAGS = f"{CAMPAIGN_DIR}/flags"
FENCE = f"{CAMPAIGN_DIR}/fence"
UNIT = f"{CAMPAIGN_DIR}/unit"
RUN_DIR = "/run/hasync-campaign"  # tmpfs: the loop's pid files go with a reboot
DAEMON_PID = f"{RUN_DIR}/daemon.pid"
DOWN_FLAG = f"{RUN_DIR}/down"  # the unit is stopped (systemctl stop): the loop waits
LOG_DIR = "/var/log/hasync-campaign"
FENCE_LOG = f"{LOG_DIR}/fence.log"
EXITS_LOG = f"{LOG_DIR}/exits.log"  # "<time> <pid> <exit status>" per daemon exit
DAEMON_LOG = "/var/log/hasync-failover.log"
OCF_DIR = "/usr/lib/ocf/resource.d"
PIECES = ("drbd", "vg", "fs", "vip", "nfs")  # ground truth the sampler reads (truth.py)


def _lab_config() -> dict:
    return tomllib.loads(cluster_toml(default_guests(1)))


def agent_path(res: dict) -> str | None:
    """Where the daemon runs a resource's agent from (hasync/failover/chain.py's lookup;
    a heartbeat-style script is taken from /etc/init.d when resource.d has none)."""
    kind, agent = res.get("type"), res.get("agent", "")
    if kind == "ocf" and ":" in agent:
        provider, name = agent.split(":", 1)
        return f"{OCF_DIR}/{provider}/{name}"
    if kind == "lsb":
        return f"/etc/init.d/{agent}"
    if kind == "heartbeat":
        return f"/etc/ha.d/resource.d/{agent}"
    return None  # systemd units: not wrapped


def chain_agents() -> dict[str, str]:
    """rid -> agent path for every wrappable resource of the VM lab's chain, in order."""
    out = {}
    for res in _lab_config().get("resource", []):
        p = agent_path(res)
        if p:
            out[res["id"]] = p
    return out


def monitored() -> tuple[str, ...]:
    """The chain's pieces with a monitor that a fault can pull from under the daemon
    (the VIP: it is what the other pieces' crash would also take down for a client)."""
    mon = [r["id"] for r in _lab_config().get("resource", []) if r.get("monitor_interval")]
    return tuple(r for r in mon if r == "vip") or ("vip",)


@dataclass(frozen=True)
class VmTiming:
    """The VM lab's timing (seed.py's [heartbeat]; TCG guests are slow), what the fault
    draw and the bounds are made of. The draw functions are the ns tier's."""

    keepalive: float = 0.5
    deadtime: float = 6.0
    initdead: float = 20.0
    op_timeout: float = 40.0  # every start/stop/monitor timeout (campaign_toml: TCG guests on a busy host)
    fence_timeout: float = 20.0
    daemon_start_s: float = 6.0  # python under TCG: the daemon listens a few seconds after exec
    boot_s: float = 40.0  # a powered-off node boots (busybox init, udev, LVM) under load
    restart_s: float = 1.0
    settle_s: float = 3.0  # a clean state must hold this long (a few samples)
    chain: tuple[str, ...] = ()
    monitored: tuple[str, ...] = ("vip",)

    @property
    def liveness_bound_s(self) -> float:
        """From a heal to a clean cluster with the clients writing again: a boot, DRBD up
        and the daemon's start, initdead, six deadtimes, a fence timing out twice, a stop
        that times out with its two retries, the chain's start (a few s a piece under
        TCG), the clients' NFS retransmission backoff (up to 60 s for a hard mount)."""
        return round(self.boot_s + self.daemon_start_s + self.initdead + 6 * self.deadtime + 2 * self.fence_timeout
                     + 3 * self.op_timeout + 5 * len(self.chain) + 60 + self.settle_s, 1)

    @property
    def stray_bound_s(self) -> float:
        return round(self.daemon_start_s + self.initdead + 2 * self.deadtime + len(self.chain) * 2.0 + 2.0, 1)


TIMING = VmTiming(chain=tuple(chain_agents()), monitored=monitored())


def campaign_toml() -> str:
    """The lab's cluster.toml with the campaign's fence wrapper as the fence command and
    TIMING.op_timeout for every operation of every resource."""
    text = cluster_toml(default_guests(1))
    real = ", ".join(f'"{a}"' for a in FENCE_COMMAND)
    if real not in text:
        raise RuntimeError("the VM lab's fence command changed shape: update hasync_lab/campaign/vm/prep.py")
    text = text.replace(real, ", ".join(f'"{a}"' for a in (FENCE, *FENCE_COMMAND)))
    # hasync's default 20 s per operation is tight for 8 agents probed at once on one
    # emulated vCPU of a loaded host (a probe that times out cannot tell what runs)
    op = f'"{TIMING.op_timeout:g}s"'
    return re.sub(r'(\[\[resource\]\]\nid = "[^"]+"\n)',
                  rf"\1start_timeout = {op}\nstop_timeout = {op}\nmonitor_timeout = {op}\n", text)


FENCE_SCRIPT = fence_script("vm", "the lab's BMC fence", FLAGS, FENCE_LOG, 'exec "$@"')

UNIT_SCRIPT = f"""#!/bin/sh
# systemd's part for hasync-failover.service in the campaign's guests: Restart=always
# after 1 s, KillMode=process (the chain stays when the daemon dies), every exit logged.
mkdir -p {RUN_DIR} {LOG_DIR}
while :; do
  if [ -e {DOWN_FLAG} ]; then sleep 0.2; continue; fi
  hasync failover run >> {DAEMON_LOG} 2>&1 &
  pid=$!
  echo $pid > {DAEMON_PID}
  wait $pid
  rc=$?
  echo "$(date +%s.%N) $pid $rc" >> {EXITS_LOG}
  rm -f {DAEMON_PID}
  sleep 1
done
"""


def wrapper_script(rid: str, real: str) -> str:
    """*rid*: the resource this agent runs for, unless the daemon names another (an OCF
    agent used twice, as portblock is: OCF_RESOURCE_INSTANCE)."""
    return f"""#!/bin/sh
# The fault campaign's wrapper around {real} (hasync_lab/campaign/vm): transparent
# unless a flag in {FLAGS} names the resource and the operation.
for op; do :; done
[ "$op" = monitor ] && op=status
f={FLAGS}/${{OCF_RESOURCE_INSTANCE:-{rid}}}.$op
if [ -e "$f.fail" ]; then echo "campaign: {rid} $op failure injected" >&2; exit 1; fi
if [ -e "$f.hang" ]; then while [ -e "$f.hang" ]; do sleep 0.2; done; exit 1; fi
exec {real} "$@"
"""


def real_path(where: str) -> str:
    d, name = where.rsplit("/", 1)
    return f"{d}/.{name}.campaign-real"


def install_script() -> str:
    """Once per node, on its root disk (kept across crashes): the wrappers, the fence
    command, the unit loop, empty flags and logs."""
    lines = ["set -e", f"mkdir -p {FLAGS} {LOG_DIR} {RUN_DIR}", f"rm -f {FLAGS}/* {LOG_DIR}/*"]
    wrapped: set[str] = set()
    for rid, where in chain_agents().items():
        if where in wrapped:
            continue
        wrapped.add(where)
        real = real_path(where)
        lines.append(f"[ -e {real} ] || {{ [ -e {where} ] && cp -p {where} {real}; }} || "
                     f"{{ echo 'no agent {where} for {rid}' >&2; exit 1; }}")
        lines.append(f"cat > {where} <<'EOF'\n{wrapper_script(rid, real)}EOF")
        lines.append(f"chmod 755 {where}")
    for path, text in ((FENCE, FENCE_SCRIPT), (UNIT, UNIT_SCRIPT)):
        lines.append(f"cat > {path} <<'EOF'\n{text}EOF")
        lines.append(f"chmod 755 {path}")
    return "\n".join(lines) + "\n"


def uninstall_script() -> str:
    """After the run: the unit loops and their daemons stopped, the real agents back."""
    lines = [f"pkill -f '^/bin/sh {UNIT}' || true", f"p=$(cat {DAEMON_PID} 2>/dev/null) && kill -TERM $p; sleep 1",
             "pkill -f 'hasync failover run' || true", f"rm -f {FLAGS}/*"]
    for where in sorted(set(chain_agents().values())):
        real = real_path(where)
        lines.append(f"[ ! -e {real} ] || mv -f {real} {where}")
    return "\n".join(lines) + "\ntrue\n"


def boot_script() -> str:
    """What a node does each time it comes up, as its units would: DRBD up (drbd.service),
    then the failover unit."""
    return (f"mkdir -p {RUN_DIR} {LOG_DIR}\n"
            "drbdadm up r0 2>/dev/null || true\n"
            # (a simple command in the background: a backgrounded `a || b` list would keep
            # the agent's stdout open as long as the unit runs)
            f"if ! pgrep -f '^/bin/sh {UNIT}' >/dev/null; then setsid /bin/sh {UNIT} >/dev/null 2>&1 </dev/null & fi\n")


# shell builtins only (one fork per sample: under TCG every fork costs the guest's vCPU)
SAMPLE_SCRIPT = f"""d=""; [ -r /proc/drbd ] && while read -r l; do case "$l" in *ro:*) d="$l";; esac; done < /proc/drbd
echo "$d"
[ -e /dev/mapper/havg-data ] && echo vg
while read -r dev mnt rest; do [ "$mnt" = /srv/ha ] && echo fs && break; done < /proc/mounts
p=""; while read -r a b c rest; do
  [ "$p" = "{VIP}" ] && [ "$a" = /32 ] && [ "$c" = LOCAL ] && echo vip && break
  [ "$a" = "|--" ] && p="$b"
done < /proc/net/fib_trie
t=0; [ -r /proc/fs/nfsd/threads ] && read -r t < /proc/fs/nfsd/threads; [ "${{t:-0}}" -gt 0 ] 2>/dev/null && echo nfs
r=""; [ -r /run/hasync/role ] && read -r r < /run/hasync/role; echo "role=$r"
p=""; [ -r {DAEMON_PID} ] && read -r p < {DAEMON_PID}
if [ -n "$p" ] && [ -r /proc/$p/stat ]; then read -r st < /proc/$p/stat; set -- ${{st##*) }}; echo "pid=$p $1"; fi
true
"""

# The daemon's status straight from its control socket (the document `hasync status`
# shows, without the CLI's imports and DRBD probe: a `hasync status` took 10-60 s on a
# busy TCG guest, `python3 -S` with a socket well under that): live.control_status's own
# source, run in the guest with the socket's path as argv[1].
DAEMON_STATUS_PY = (inspect.getsource(control_status)
                    + "\nimport json, sys\nprint(json.dumps(control_status(sys.argv[1], 10.0)))\n")
