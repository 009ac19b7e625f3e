"""NFS clients across a failover on the VM lab, per client kind (issue 15): shared by
`hasync lab bench failover --vm` and the VM scenario (tests/vm/test_the_scenario.py).

Two client VMs, each a kind: client1 on a hard NFSv3 mount (the scenario's), client2 on
Debian 12's default mount (no options: NFS v4.2, hard). Each writes its numbered,
checksummed, fsync'd record stream and, armed before a crash, holds a `flock` and an
`fcntl` byte-range lock on files of its own (hasync_lab/vm/locks.py). After the crash,
per kind: crash -> that client's next acknowledged write, acknowledged records missing on
the survivor, stale handles, and the locks: the *other* client VM tries to take them
through its own mount (a cross-protocol attempt: the server's locks are one table, NLM's
and NFSv4's alike), refused if the new server reclaimed them for their holder.

The baseline (`baseline_toml`, `baseline_nfs_conf`): the same cluster with the distro's
defaults for what issue 15 changed -- grace and lease 90 s, no pinned NFSv4 server scope,
nfsdcld's client records on each node's own disk -- everything else (statd's state on the
replicated disk, sm-notify from the VIP, portblock) as the cluster has it.

Pure: `summarize`, `side_by_side`, `targets`, `baseline_toml`, `baseline_nfs_conf`.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field

from hasync import model
from hasync.bootstrap import edit
from hasync.config import loads
from hasync.failover.membership_data import fsm_config
from hasync_lab.vm import grace, locks, manual
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.driver import VmLab
from hasync_lab.vm.seed import VIP

EXPORT = manual.EXPORT
KIND_NAMES = ("v3", "v4.2")


@dataclass(frozen=True)
class Kind:
    kind: str  # "v3" | "v4.2": the version the mount must have negotiated
    vm: str  # the client VM that writes and holds the locks
    mnt: str
    options: str  # mount -o; "" is the distro's default mount
    contender: str  # the other client VM, which tries the locks after the failover
    contender_mnt: str


KINDS = (
    Kind("v3", "client1", "/mnt/ha", "vers=3,hard,timeo=10", "client2", "/mnt/ha4"),
    Kind("v4.2", "client2", "/mnt/ha4", "", "client1", "/mnt/ha"),
)
# The VM scenario's (make test): both kinds on client1, each mount the other's contender.
# The server's lock table does not care which VM asks: a v4 lock owner and an NLM owner
# (the same machine's lockd) are two owners, so a reclaimed lock is refused across them.
ONE_VM = (
    Kind("v3", "client1", "/mnt/ha", "vers=3,hard,timeo=10", "client1", "/mnt/ha4"),
    Kind("v4.2", "client1", "/mnt/ha4", "", "client1", "/mnt/ha"),
)


@dataclass
class Client:
    k: Kind
    w: dict[str, str]  # the writer's files (manual.start_writer)
    holder: locks.Holder | None = None
    armed: dict = field(default_factory=dict)


def mount(lab: VmLab, k: Kind) -> str:
    """Mount the VIP's export on *k*'s VM (once) and return the version it negotiated."""
    opts = f"-o {k.options} " if k.options else ""
    lab.sh(k.vm, f"mkdir -p {k.mnt}\ngrep -q ' {k.mnt} nfs' /proc/mounts || mount -t nfs {opts}{VIP}:{EXPORT} {k.mnt}\n", timeout=120)
    got = mounted_version(lab.exec(k.vm, ("cat", "/proc/mounts")).stdout, k.mnt)
    if got != k.kind:
        raise AssertionError(f"{k.vm}: {k.mnt} mounted NFS {got!r}, not {k.kind} ({k.options or 'the default mount'})")
    return got


def mounted_version(proc_mounts: str, mnt: str) -> str:
    """The NFS version of the mount on *mnt* ("3", "4.2" -> "v3", "v4.2"), "" if none."""
    for line in proc_mounts.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == mnt and parts[2].startswith("nfs"):
            m = re.search(r"(?:^|,)vers=([\d.]+)", parts[3])
            return f"v{m.group(1)}" if m else ""
    return ""


def start(lab: VmLab, tag: str, writers: dict[str, dict[str, str]] | None = None, kinds: tuple[Kind, ...] = KINDS) -> list[Client]:
    """Every kind's mount and record stream (a writer already running on a kind's mount
    is passed in *writers*, by kind); returns once each has acknowledged writes."""
    out = []
    for k in kinds:
        mount(lab, k)
    for k in kinds:
        w = (writers or {}).get(k.kind) or manual.start_writer(lab, k.vm, f"{k.mnt}/{tag}-{k.kind}", f"{tag}-{k.kind}")
        out.append(Client(k, w))
    for c in out:
        manual.wait_acked(lab, c.k.vm, c.w, 5, timeout=120)
    return out


def arm(lab: VmLab, clients: list[Client], tag: str, standby: str) -> tuple[str, float]:
    """Before a crash: each client takes its locks; its clock offset and stale count so
    far. Returns a mark in *standby*'s kernel log (the grace timeline's first point)."""
    for c in clients:
        c.holder = locks.hold(lab, c.k.vm, c.k.mnt, f"{tag}-{c.k.kind}")
        c.armed = {"offset": sc.guest_clock_offset(lab, c.k.vm), "stale": stale_handles(lab, c.k.vm, c.w)}
    return grace.mark(lab, standby)


def grace_time(lab: VmLab, node: str) -> float:
    """[nfs] grace_time of *node*'s cluster.toml."""
    text = lab.exec(node, ("cat", "/etc/hasync/cluster.toml"), check=True).stdout
    return loads(text, path=f"{node}:/etc/hasync/cluster.toml").nfs.grace_time


def lost_writes(lab: VmLab, vm: str, w: dict[str, str], server: str) -> tuple[int, int]:
    """(acknowledged records missing on *server*, corrupt records): the ack log is read
    first, so every record in it must already be in the data file read afterwards."""
    ack_text = lab.exec(vm, ("cat", w["ack"])).stdout
    data_text = lab.exec(server, ("cat", f"{EXPORT}/" + w["data"].rsplit("/", 1)[1])).stdout
    missing, bad = manual.check_records(ack_text, data_text)
    return len(missing), len(bad)


def stale_handles(lab: VmLab, vm: str, w: dict[str, str]) -> int:
    return lab.exec(vm, ("cat", w["log"])).stdout.count("Stale")


def measure(lab: VmLab, clients: list[Client], t_crash: float, survivor: str, grace_s: float,
            marked: tuple[str, float] | None, resumed: dict[str, float] | None = None) -> dict:
    """After a crash at *t_crash* (host clock) and *survivor*'s takeover: per kind the
    resume time (from *resumed* when the caller measured it already), lost and corrupt
    records, stale handles and locks lost; the grace timeline from the survivor (placed
    with the mark `arm` returned, *marked*). The
    holders are released afterwards. Returns {"clients": [...], "grace": {...}}; the
    grace's ``status`` is what `hasync status --json` on the survivor said of it
    (``nfs_grace``) right after the crash's measurement."""
    wait = 2 * grace_s + 120  # the grace may stretch up to two leases past its time
    # what `hasync status` on the survivor says of the grace, as early as can be
    try:
        shown = sc.status_json(lab, survivor).get("nfs_grace")
    except AssertionError as e:  # a loaded guest's status may time out: a note, not the end of the run
        shown = {"error": str(e)[-300:]}
    rows = []
    for c in clients:
        r = (resumed or {}).get(c.k.kind)
        if r is None:
            r = sc.client_resumed_after(lab, c.k.vm, c.w, t_crash, c.armed["offset"], timeout=wait)
        rows.append({"kind": c.k.kind, "resumed_s": r})
    g = grace.read(lab, survivor, t_crash, marked, wait_s=wait)
    for c, row in zip(clients, rows, strict=True):
        assert c.holder is not None, "measure() before arm()"
        tried = locks.attempt(lab, c.k.contender, c.k.contender_mnt, c.holder.tag, timeout=wait)
        v = locks.verdict(locks.read_status(lab, c.holder), locks.alive(lab, c.holder), tried, t_crash + c.armed["offset"])
        lost, bad = lost_writes(lab, c.k.vm, c.w, survivor)
        row.update(lost_writes=lost, corrupt_records=bad, stale_handles=stale_handles(lab, c.k.vm, c.w) - c.armed["stale"],
                   locks_lost=v["locks_lost"], locks=v)
    for c in clients:
        if c.holder is not None:
            locks.release(lab, c.holder)
            c.holder = None
    g["status"] = shown
    return {"clients": rows, "grace": g}


def stop(lab: VmLab, clients: list[Client]) -> None:
    for c in clients:
        manual.stop_writer(lab, c.k.vm, c.w)


# ---- the figures (pure) --------------------------------------------------------------


def summarize(trials: list[dict]) -> list[dict]:
    """Per kind over *trials* (each one `measure` result): resume median/min/max and the
    sums of lost writes, stale handles and locks lost; ``locks_inconclusive`` counts
    trials whose lock check proved nothing (see locks.verdict)."""
    out = []
    kinds = [k for k in KIND_NAMES if any(r["kind"] == k for t in trials for r in t["clients"])]
    kinds += sorted({r["kind"] for t in trials for r in t["clients"]} - set(kinds))
    for kind in kinds:
        rows = [r for t in trials for r in t["clients"] if r["kind"] == kind]
        resumed = [r["resumed_s"] for r in rows]
        out.append({
            "kind": kind, "trials": len(rows),
            "median_s": round(statistics.median(resumed), 3), "min_s": min(resumed), "max_s": max(resumed),
            "lost_writes": sum(r["lost_writes"] for r in rows),
            "corrupt_records": sum(r.get("corrupt_records", 0) for r in rows),
            "stale_handles": sum(r["stale_handles"] for r in rows),
            "locks_lost": sum(r["locks_lost"] for r in rows),
            "locks_inconclusive": sum(1 for r in rows if not r.get("locks", {}).get("conclusive", True)),
        })
    return out


def problems(trial: dict, slack_s: float = 2.0) -> list[str]:
    """What one `measure` result breaks of issue 15's promise, as sentences (none: kept):
    an acknowledged write lost, more than one corrupt record (the torn, unacknowledged
    last one is allowed), a stale handle, a lock lost or a lock check that proved
    nothing, the v4.2 client back later than the v3 client + *slack_s*."""
    out = []
    by = {r["kind"]: r for r in trial["clients"]}
    for k, r in by.items():
        for key, most in (("lost_writes", 0), ("corrupt_records", 1), ("stale_handles", 0), ("locks_lost", 0)):
            if r.get(key, 0) > most:
                out.append(f"{k}: {key} {r[key]} (at most {most})" + (f": {r['locks']}" if key == "locks_lost" else ""))
        if not r.get("locks", {}).get("conclusive", False):
            out.append(f"{k}: the lock check proved nothing: {r.get('locks')}")
    if "v3" in by and "v4.2" in by and by["v4.2"]["resumed_s"] > by["v3"]["resumed_s"] + slack_s:
        out.append(f"v4.2 resumed {by['v4.2']['resumed_s']:.2f} s after the crash, later than v3 ({by['v3']['resumed_s']:.2f} s) + {slack_s:.0f} s")
    return out


def grace_summary(trials: list[dict]) -> dict:
    """How the grace periods of *trials* ended: counts by reason, median length."""
    why: dict[str, int] = {}
    lasted = []
    for t in trials:
        g = t.get("grace", {})
        why[g.get("why", "unknown")] = why.get(g.get("why", "unknown"), 0) + 1
        if "lasted_s" in g:
            lasted.append(g["lasted_s"])
    return {"why": why, **({"median_lasted_s": round(statistics.median(lasted), 3)} if lasted else {})}


def side_by_side(ours: list[dict], baseline: list[dict]) -> list[dict]:
    """Per kind: our median, the baseline's, and how many times faster ours is
    (baseline median / ours); locks lost on each side."""
    base = {b["kind"]: b for b in baseline}
    out = []
    for o in ours:
        b = base.get(o["kind"])
        row = {"kind": o["kind"], "median_s": o["median_s"], "locks_lost": o["locks_lost"]}
        if b is not None:
            row.update(baseline_median_s=b["median_s"], baseline_locks_lost=b["locks_lost"],
                       speedup=round(b["median_s"] / o["median_s"], 2) if o["median_s"] > 0 else None)
        out.append(row)
    return out


def targets(ours: list[dict], manual_sum_s: float | None, slack_s: float = 2.0, ratio: float = 1.5) -> dict[str, bool]:
    """Issue 15's targets: v4.2 resumes no later than v3 + *slack_s* (medians); each kind
    within *ratio* x the chain's commands by hand (when measured); nothing lost."""
    by = {o["kind"]: o for o in ours}
    out: dict[str, bool] = {}
    if "v3" in by and "v4.2" in by:
        out["v4.2_within_v3_plus_2s"] = by["v4.2"]["median_s"] <= by["v3"]["median_s"] + slack_s
    if manual_sum_s:
        for k, o in by.items():
            out[f"{k}_within_{ratio}x_manual"] = o["median_s"] <= ratio * manual_sum_s
    out["nothing_lost"] = all(o["lost_writes"] == 0 and o["stale_handles"] == 0 and o["locks_lost"] == 0 for o in ours)
    return out


def figures(ours: list[dict], baseline: list[dict], manual_sum_s: float | None) -> dict:
    """The bench's issue-15 keys from the `measure` results of our trials and of the
    baseline's (empty: not run): ``clients``, ``grace``, ``targets`` and, with a
    baseline, ``baseline``, ``baseline_grace``, ``side_by_side``."""
    out: dict = {"clients": summarize(ours), "grace": grace_summary(ours)}
    if baseline:
        out.update(baseline=summarize(baseline), baseline_grace=grace_summary(baseline))
        out["side_by_side"] = side_by_side(out["clients"], out["baseline"])
    out["targets"] = targets(out["clients"], manual_sum_s)
    return out


def table(res: dict) -> str:
    """The per-kind figures of a bench result, ours beside the baseline's, as text."""
    base = {b["kind"]: b for b in res.get("baseline", [])}
    lines = ["per client kind (crash -> next acknowledged write, s):  ours  |  distro defaults"]
    for o in res.get("clients", []):
        b = base.get(o["kind"])
        theirs = (f"median {b['median_s']} (min {b['min_s']}, max {b['max_s']}), lost writes {b['lost_writes']}, "
                  f"locks lost {b['locks_lost']}") if b else "-"
        lines.append(f"  {o['kind']:5} median {o['median_s']} (min {o['min_s']}, max {o['max_s']}), lost writes "
                     f"{o['lost_writes']}, stale {o['stale_handles']}, locks lost {o['locks_lost']}  |  {theirs}")
    for r in res.get("side_by_side", []):
        if r.get("speedup"):
            lines.append(f"  {r['kind']}: {r['speedup']}x faster than the defaults")
    if res.get("grace"):
        lines.append(f"  grace ended: ours {res['grace']}; defaults {res.get('baseline_grace', '-')}")
    if res.get("targets"):
        lines.append("  targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in res["targets"].items()))
    return "\n".join(lines)


# ---- the baseline: the distro's defaults (pure) --------------------------------------

DEFAULT_GRACE = "90s"  # the kernel's nfsd default grace and lease (nfs.conf(5))
LOCAL_CLD_DIR = "/var/lib/nfsdcld-local"  # nfsdcld's records on the node's own disk


def baseline_toml(text: str) -> str:
    """*text* (a cluster.toml) with the distro's defaults for what issue 15 sets: [nfs]
    grace_time and lease_time 90 s, no nfs_server_scope on the NFS server resource."""
    text = edit.ini_set(text, "nfs", "grace_time", f'"{DEFAULT_GRACE}"')
    text = edit.ini_set(text, "nfs", "lease_time", f'"{DEFAULT_GRACE}"')
    # inline (params = { nfs_server_scope = "...", ... }) or a line of its own ([resource.params])
    text = re.sub(r'nfs_server_scope\s*=\s*"[^"]*"\s*,\s*', "", text)
    text = re.sub(r',\s*nfs_server_scope\s*=\s*"[^"]*"', "", text)
    text = re.sub(r'\{\s*nfs_server_scope\s*=\s*"[^"]*"\s*\}', "{}", text)
    return re.sub(r'(?m)^\s*nfs_server_scope\s*=.*\n', "", text)


def baseline_nfs_conf(text: str) -> str:
    """*text* (a node's nfs.conf) with the kernel's grace and lease (written out: a node
    that ran nfsd with 20 s keeps 20 s in /proc/fs/nfsd and lockd until told otherwise)
    and nfsdcld's client records on the node's own disk, so the peer never sees them."""
    secs = str(int(DEFAULT_GRACE.rstrip("s")))
    text = edit.ini_set(text, "nfsd", "grace-time", secs)
    text = edit.ini_set(text, "nfsd", "lease-time", secs)
    return edit.ini_set(text, "nfsdcld", "storagedir", LOCAL_CLD_DIR)


CONFIG_FILES = ("/etc/hasync/cluster.toml", "/etc/nfs.conf")


def baseline_files(files: dict[str, str]) -> dict[str, str]:
    """A node's cluster.toml and nfs.conf (`node_files`) as the baseline has them."""
    return {"/etc/hasync/cluster.toml": baseline_toml(files["/etc/hasync/cluster.toml"]),
            "/etc/nfs.conf": baseline_nfs_conf(files["/etc/nfs.conf"])}


def node_files(lab: VmLab, node: str) -> dict[str, str]:
    return {p: lab.exec(node, ("cat", p), check=True).stdout for p in CONFIG_FILES}


def write_files(lab: VmLab, node: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        lab.exec(node, ("sh", "-c", f"cat > {path}.new && mv {path}.new {path}"), input=text, check=True)
    lab.sh(node, f"mkdir -p {LOCAL_CLD_DIR}")


def install_files(lab: VmLab, files: dict[str, dict[str, str]], active: str, standby: str) -> None:
    """New config files on both nodes under a running chain: both daemons killed (the
    chain runs on), the files written, the daemons started again -- the active one
    adopts the chain, the new settings apply at the next start of each resource (nfsd
    reads nfs.conf when it starts: on the survivor of the next crash)."""
    for n in (standby, active):
        lab.exec(n, ("pkill", "-9", "-f", "hasync failover run"))
    for n, f in files.items():
        write_files(lab, n, f)
    sc.start_daemon(lab, active)
    sc.wait_role(lab, active, "active", timeout=600)
    sc.start_daemon(lab, standby)
    sc.wait_role(lab, standby, "standby", timeout=300)
    # each new daemon probes the chain a second time once any agent of its killed
    # predecessor must be over; a crash during that probe (the whole chain at once: up to
    # a minute on a loaded TCG guest) would wait for it and time the probe, not NFS
    time.sleep(reprobe_after(loads(files[active]["/etc/hasync/cluster.toml"], path=f"{active}:cluster.toml")) + 30.0)


def reprobe_after(cluster: model.Cluster) -> float:
    """Seconds from a daemon's start to its second probe (hasync.failover.membership)."""
    cfg = fsm_config(cluster, cluster.nodes[0].name)
    return cfg.agent_timeout + cfg.probe_retry
