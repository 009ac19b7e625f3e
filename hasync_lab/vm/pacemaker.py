"""The VM tier's Pacemaker trial (issue 16): the same pair, the same chain, the same crash,
with Pacemaker running the chain instead of hasync's failover daemon.

1. cluster.toml says `[cluster] manager = "pacemaker"` and fences with the lab's power
   switch as a fence-agents agent (guest/fence_hasynclab); `hasync bootstrap` lays down
   DRBD, LVM, the filesystem and the NFS state (and no hasync-failover);
2. `hasync export pacemaker` on node1 gives corosync.conf and the CIB; the lab key for
   Corosync is made once on the host; corosync and pacemakerd start on both nodes (the
   guests boot busybox init: started as the init scripts would, in the foreground under
   setsid), the CIB is loaded with cibadmin;
3. the DRBD clone is promoted and the group started on node1, the client writes, node1 is
   powered off: Pacemaker fences it through the lab's BMC wire, promotes DRBD on node2
   and starts the group there. Measured as the hasync bench measures: crash -> the
   client's next acknowledged write, on the client's clock.

The pure parts (the trial's cluster.toml, the token, the reading of crm_mon's answers)
are tested in tests/unit/test_vm_pacemaker.py; the steps take a running VmLab.
"""

from __future__ import annotations

import calendar
import os
import re
import shlex
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from hasync.bootstrap import doctor_pacemaker
from hasync.operations import ocf
from hasync_lab.vm import manual
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.driver import VmLab
from hasync_lab.vm.seed import FENCE_COMMAND, Guest, cluster_toml, default_guests, lab_cluster_toml

FENCE_AGENT = "/usr/sbin/fence_hasynclab"
# the lab's power switch as Pacemaker runs it: the fence-agents options the export maps
# to the agent's parameters through its metadata (-o off -> stonith-action=off, --plug)
PCMK_FENCE_COMMAND = (FENCE_AGENT, "--action", "off", "--plug", "{node}")
OUT = "/root/pcmk"  # where node1 keeps the export
COROSYNC_LOG = "/var/log/hasync-vm-corosync.log"
PACEMAKER_LOG = "/var/log/hasync-vm-pacemakerd.log"
NODE_MEM_MIB = 384  # corosync + the six Pacemaker daemons next to NFS and DRBD
# Corosync's default token and the fastest its maintainers recommend (the bench's settings)
TOKENS_MS = (3000, 1000)
# Timeouts for the slow emulated nodes. hasync's default 20 s is what the export gives
# every operation, and the first live run showed it too short under TCG at host load
# 5-7: an agent's start took 9-10 s, nfs-kernel-server's over 20 s, monitors of the
# DRBD clone, the VIP and the fence device timed out, and a start that times out is
# fatal to its node (start-failure-is-fatal): the group went to node2. The agents'
# advice is 40-240 s for starts; every resource gets these, the fence device [fencing]'s.
START_STOP_TIMEOUT = "120s"
MONITOR_TIMEOUT = "60s"
FENCE_TIMEOUT = "60s"


def guests(clients: int = 1) -> tuple[Guest, ...]:
    """The lab's guests, the nodes with room for the cluster stack."""
    return default_guests(clients, NODE_MEM_MIB)


def trial_toml(gs: tuple[Guest, ...]) -> str:
    """The lab's cluster.toml with the chain Pacemaker's: manager = "pacemaker", fencing
    by fence_hasynclab, timeouts for slow emulated nodes on every operation."""
    text = cluster_toml(gs)  # the lab's chain, without the lab's own operation timeouts
    fence_old = ", ".join(f'"{a}"' for a in FENCE_COMMAND)
    fence_new = ", ".join(f'"{a}"' for a in PCMK_FENCE_COMMAND)
    head, fencing = text.split("\n[fencing]\n")
    assert fence_old in fencing and "\n[cluster]\n" in head
    fencing = fencing.replace(fence_old, fence_new)
    fencing, n = re.subn(r'^timeout = "[^"]*".*$', f'timeout = "{FENCE_TIMEOUT}"', fencing, count=1, flags=re.M)
    assert n == 1, "the lab's [fencing] has a timeout"
    text = head.replace("\n[cluster]\n", '\n[cluster]\nmanager = "pacemaker"\n', 1) + "\n[fencing]\n" + fencing
    return re.sub(r'(\[\[resource\]\]\nid = "[^"]+"\n)',
                  rf'\1start_timeout = "{START_STOP_TIMEOUT}"\nstop_timeout = "{START_STOP_TIMEOUT}"\n'
                  rf'monitor_timeout = "{MONITOR_TIMEOUT}"\n', text)


def with_token(conf: str, token_ms: int) -> str:
    """corosync.conf with totem.token set to *token_ms* (the export derives it from
    deadtime; the bench runs Corosync's default and the fastest recommended setting)."""
    lines = conf.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if re.match(r"\s*token:\s*\d+\s*$", ln)]
    if len(hits) != 1:
        raise ValueError(f"expected one totem token line in corosync.conf, found {len(hits)}")
    i = hits[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}# the VM lab's trial sets the token itself (hasync_lab/vm/pacemaker.py)\n{indent}token: {token_ms}\n"
    return "".join(lines)


@dataclass
class ClusterView:
    """What the trial asks of crm_mon: who has DRBD promoted, where the group runs, fences."""

    online: tuple[str, ...] = ()
    promoted: tuple[str, ...] = ()
    group_on: tuple[str, ...] = ()  # nodes where every member of the group is Started
    fenced: tuple[str, ...] = ()  # targets of successful fence events
    failures: tuple[str, ...] = ()
    down: tuple[str, ...] = ()  # top-level primitives (the fence devices) not Started anywhere


def _down(xml_text: str) -> tuple[str, ...]:
    try:
        res = ET.fromstring(xml_text).find("resources")
    except ET.ParseError:
        return ()
    return tuple(sorted(r.get("id", "") for r in (res.iterfind("resource") if res is not None else ())
                        if r.get("role") != "Started"))


def view(xml_text: str) -> ClusterView | None:
    """crm_mon's XML -> ClusterView (None: no status, e.g. Pacemaker not up yet)."""
    st = doctor_pacemaker.parse(xml_text)
    if st is None:
        return None
    promoted = sorted({n for insts in st.clones.values() for i in insts if i.role == "Promoted" for n in i.nodes})
    group_on: list[str] = []
    for members in st.groups.values():
        places = [set(m.nodes) if m.role == "Started" else set() for m in members]
        common = set.intersection(*places) if places else set()
        group_on += sorted(common)
    return ClusterView(
        online=tuple(sorted(n for n, a in st.nodes.items() if a.get("online") == "true")),
        promoted=tuple(promoted), group_on=tuple(group_on),
        fenced=tuple(e.get("target", "") for e in st.fencing if e.get("status") == "success"),
        failures=tuple(f.get("op_key", "") + "@" + f.get("node", "") for f in st.failures),
        down=_down(xml_text))


# --------------------------------------------------------------------------- steps (effects)


def crm_mon(lab: VmLab, node: str, timeout: float = 60.0) -> str:
    return lab.exec(node, ("crm_mon", "-1", "--output-as=xml", "--fence-history=2"), timeout=timeout).stdout


def wait_view(lab: VmLab, node: str, ok, what: str, timeout: float, period: float = 2.0) -> ClusterView:
    """Poll crm_mon on *node* until ok(view); AssertionError with Pacemaker's own words."""
    deadline = time.monotonic() + timeout
    last: ClusterView | None = None
    while time.monotonic() < deadline:
        last = view(crm_mon(lab, node))
        if last is not None and ok(last):
            return last
        time.sleep(period)
    text = lab.exec(node, ("crm_mon", "-1", "-rf", "--fence-history=2"), timeout=60).stdout
    log = lab.exec(node, ("tail", "-40", "/var/log/pacemaker/pacemaker.log")).stdout
    raise AssertionError(f"{node}: not {what} after {timeout:.0f}s: {last}\n{text}\n--- pacemaker.log\n{log}")


def write_file(lab: VmLab, node: str, path: str, data: str | bytes, mode: str) -> None:
    q = shlex.quote(path)
    lab.exec(node, ("sh", "-c", f"umask 077; mkdir -p $(dirname {q}); cat > {q}.tmp && chmod {mode} {q}.tmp && mv {q}.tmp {q}"),
             input=data, check=True)


def release_node1(lab: VmLab) -> None:
    """bootstrap left the data up on node1 (Primary, mounted, to lay down the NFS state):
    Pacemaker starts from everything stopped, as at a real hand-over."""
    lab.sh("node1", f"umount {manual.MOUNT} 2>/dev/null; vgchange -an {manual.VG} >/dev/null 2>&1; "
                    f"drbdadm secondary {manual.RESOURCE}", timeout=120)


def start_stack(lab: VmLab, node: str) -> None:
    # the log directories the packages made (the logfile of corosync.conf, Pacemaker's
    # detail log, owned by its hacluster user), should a guest lack them; and the agents'
    # HA_RSCTMP, which systemd-tmpfiles makes at boot and busybox init does not (hasync's
    # daemon makes it itself, Pacemaker does not: exportfs and portblock track themselves
    # there, docs/vm.md)
    lab.sh(node, "mkdir -p /var/log/corosync; [ -d /var/log/pacemaker ] || install -d -o hacluster -g haclient /var/log/pacemaker; "
                 f"install -d -m {ocf.RSCTMP_MODE:o} {ocf.RSCTMP}")
    lab.spawn(node, "corosync -f", COROSYNC_LOG)
    for _ in range(60):  # pacemakerd needs corosync's IPC
        if lab.exec(node, ("corosync-cfgtool", "-s")).ok:
            break
        time.sleep(1)
    lab.spawn(node, "pacemakerd", PACEMAKER_LOG)


def setup(lab: VmLab, token_ms: int) -> dict[str, float]:
    """The pair bootstrapped by hasync, the chain handed to Pacemaker from the export
    (hasync's failover daemon not running), the group Started on node1. Seconds per step."""
    t0 = time.monotonic()
    text = trial_toml(tuple(Guest(**lab.state["vms"][n]["guest"]) for n in lab.vms))
    for n in lab.nodes:
        write_file(lab, n, "/etc/hasync/cluster.toml", text, "0644")
    out: dict[str, Any] = dict(sc.bootstrap_pair(lab))
    for n in lab.nodes:
        if lab.exec(n, ("pgrep", "-f", "hasync failover run")).ok:
            raise AssertionError(f"{n}: hasync's failover daemon runs next to Pacemaker")
    release_node1(lab)
    r = lab.exec("node1", ("hasync", "export", "pacemaker", "--out", OUT), timeout=300)
    if not r.ok:
        raise AssertionError(f"node1: hasync export pacemaker exited {r.exit_code}\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    out["export_s"] = round(time.monotonic() - t0, 2)
    conf = with_token(lab.exec("node1", ("cat", f"{OUT}/corosync.conf"), check=True).stdout, token_ms)
    key = os.urandom(256)  # what corosync-keygen writes
    for n in lab.nodes:
        write_file(lab, n, "/etc/corosync/corosync.conf", conf, "0644")
        write_file(lab, n, "/etc/corosync/authkey", key, "0400")
    for n in lab.nodes:
        start_stack(lab, n)
    wait_view(lab, "node1", lambda v: set(v.online) == set(lab.nodes), "both nodes online", timeout=300)
    out["stack_up_s"] = round(time.monotonic() - t0, 2)
    lab.sh("node1", f"cibadmin --replace --scope configuration --xml-file {OUT}/cib.xml", timeout=120)
    wait_view(lab, "node1", lambda v: v.promoted == ("node1",) and v.group_on == ("node1",),
              "DRBD Promoted and the group Started on node1", timeout=400)
    out["group_up_s"] = round(time.monotonic() - t0, 2)
    return out


def rejoin(lab: VmLab, node: str, peer: str) -> dict[str, float]:
    """*node* powers on again after its crash and fence and rejoins: corosync and
    Pacemaker started (as at boot), Pacemaker starts its DRBD instance (Unpromoted), the
    resync from *peer* runs, its after-resync-target handler lifts the constraint the
    fence-peer handler placed; the group stays on *peer* (stickiness: auto_failback off)."""
    t0 = time.monotonic()
    lab.heal(node)
    out = {"boot_s": round(time.monotonic() - t0, 2)}
    start_stack(lab, node)
    wait_view(lab, peer, lambda v: node in v.online, f"{node} online", timeout=300)
    manual.wait_drbd(lab, node, "UpToDate/UpToDate", timeout=300)
    out["resync_done_s"] = round(time.monotonic() - t0, 2)
    deadline = time.monotonic() + 120
    while lab.exec(peer, ("sh", "-c", "cibadmin -Q -o constraints | grep -q drbd-fence-by-handler")).ok:
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer}: crm-fence-peer's constraint still in the CIB after {node}'s resync")
        time.sleep(2)
    # and the fence devices started again (the one aimed at *peer* runs on *node*): a trial
    # begun before that waited for its start before fencing (2026-12-07: fence done 125 s)
    wait_view(lab, peer, lambda v: v.promoted == (peer,) and v.group_on == (peer,) and not v.down,
              f"the group still on {peer}, every fence device started", timeout=180)
    out["rejoined_s"] = round(time.monotonic() - t0, 2)
    return out


def stop_stack(lab: VmLab) -> None:
    """Pacemaker and Corosync off on every running node, at once (no clean stop: the
    resources are the next test's reset to tear down), and the lab's own cluster.toml
    back, as the other VM tests expect it."""
    text = lab_cluster_toml(tuple(Guest(**lab.state["vms"][n]["guest"]) for n in lab.vms),
                            lab.state.get("init", "busybox"))
    for n in lab.nodes:
        if lab.running(n):
            lab.exec(n, ("sh", "-c", "pkill -9 pacemaker; pkill -9 corosync; "
                                     "rm -f /etc/corosync/corosync.conf /etc/corosync/authkey; rm -rf /var/lib/pacemaker/cib/*"))
            write_file(lab, n, "/etc/hasync/cluster.toml", text, "0644")


@dataclass
class PcmkCrash:
    victim: str
    survivor: str
    t_crash_host: float
    resumed_s: float = -1.0  # crash -> the client's first acknowledged write afterwards
    acked_before: int = 0
    view_after: ClusterView = field(default_factory=ClusterView)
    phases: dict[str, float] = field(default_factory=dict)


def crash_and_wait(lab: VmLab, victim: str, survivor: str, w: dict[str, str], client: str = "client1",
                   timeout: float = 240.0) -> PcmkCrash:
    """Power *victim* off with the client writing; wait for the client's next acknowledged
    write (nothing polls the survivor meanwhile: crm_mon under TCG costs a busy node
    seconds), then read what Pacemaker did."""
    offset = sc.guest_clock_offset(lab, client)
    survivor_offset = sc.guest_clock_offset(lab, survivor)
    manual.wait_acked(lab, client, w, manual.acked(lab, client, w) + 2, timeout=60)
    t_crash = time.time()
    lab.crash(victim)
    res = PcmkCrash(victim, survivor, t_crash)
    res.acked_before = max((s for s, _ in sc.ack_times(lab, client, w)), default=0)
    res.resumed_s = sc.client_resumed_after(lab, client, w, t_crash, offset, timeout)
    res.view_after = wait_view(lab, survivor, lambda v: v.group_on == (survivor,) and victim in v.fenced,
                               f"fenced {victim}, the group Started here", timeout=120)
    res.phases = phases(crm_mon_history(lab, survivor), t_crash + survivor_offset)
    return res


def crm_mon_history(lab: VmLab, node: str) -> str:
    return lab.exec(node, ("crm_mon", "-1", "--output-as=xml", "--fence-history=3", "--include=operations"),
                    timeout=60).stdout


TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%a %b %d %H:%M:%S %Y")


def epoch(text: str) -> float | None:
    """A time crm_mon prints (its history's "Mon Dec  7 09:05:08 2026", a fence event's
    "2026-12-07 09:10:00Z" or with "+00:00"; the guests run UTC) -> seconds, or None."""
    t = re.sub(r"\s*(Z|[+-]\d\d:?\d\d|UTC)$", "", text.strip())
    t = re.sub(r"\.\d+", "", " ".join(t.split()))
    for fmt in TIME_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(t, fmt)))
        except ValueError:
            continue
    return None


def phases(xml_text: str, t_crash_guest: float) -> dict[str, float]:
    """Seconds from the crash (on the survivor's clock) to the fence's completion and to
    the end of the promotion and of each start after it, from crm_mon's history (whole
    seconds: Pacemaker's own resolution)."""
    out: dict[str, float] = {}
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return out
    for ev in root.iterfind("fence_history/fence_event"):
        t = epoch(ev.get("completed", ""))
        if ev.get("status") == "success" and t is not None and t >= t_crash_guest - 1:
            out["fence_done_s"] = round(t - t_crash_guest, 1)
    for rh in root.iterfind("node_history/node/resource_history"):
        for op in rh.iterfind("operation_history"):
            if op.get("task") not in ("promote", "start"):
                continue
            t = epoch(op.get("last-rc-change", ""))
            if t is None or t < t_crash_guest - 1:
                continue
            ms = float(op.get("exec-time", "0ms").rstrip("ms") or 0)
            out[f"{op.get('task')}_{rh.get('id')}_done_s"] = round(t + ms / 1000 - t_crash_guest, 1)
    return out
