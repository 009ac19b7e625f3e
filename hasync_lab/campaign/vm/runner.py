"""A campaign run of the vm tier: one VM lab (node1, node2, client1), the real daemons on
real DRBD/LVM/nfsd, two NFS clients' record streams (v3 and v4.2), N faults.

Set-up: the campaign's files into both nodes, `hasync bootstrap` (node1, then node2
joins), the failover units, the client's mounts and writers, the sampler (ground truth
every ~1 s, ARP every 2 s), a supervisor thread (a node a fence or a self-fence
powered off boots again after 1 s, its cables as they were, as a BMC's power cycle),
a settled cluster. Then the self-test, then each fault: gap, steps, heal, quiescence
(clean for settle_s within the liveness bound, the clients writing again), audits.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.live import CONTROL_SOCKET, LiveRun, one_active
from hasync_lab.campaign.vm import audits as A
from hasync_lab.campaign.vm.inject import Injector
from hasync_lab.campaign.vm.prep import (
    DAEMON_LOG,
    DAEMON_STATUS_PY,
    EXITS_LOG,
    FENCE_LOG,
    PIECES,
    TIMING,
    VmTiming,
    boot_script,
    campaign_toml,
    install_script,
    uninstall_script,
)
from hasync_lab.campaign.vm.truth import Sampler
from hasync_lab.vm import manual
from hasync_lab.vm import scenario as sc

CLIENT = "client1"
MOUNTS = {"v3": ("3", "/mnt/ha3"), "v4.2": ("4.2", "/mnt/ha4")}


def fault_phases(gap: float, t0: float, t_heal: float, healed: float, clean_at: float | None, t_clean: float,
                 end: float) -> dict[str, float]:
    """Where a fault's wall time went: the quiet gap, its steps (start to heal), the heal
    (a power-on boots the node), heal to the clean stretch's start (the recovery the
    cluster makes), the stretch held and the daemons' and clients' word (the harness's
    check), the audits after it. Seconds, rounded; a fault that never got clean has its
    whole wait under "to_clean"."""
    start = clean_at if clean_at is not None else t_clean
    return {"gap": round(gap, 1), "steps": round(t_heal - t0, 1), "heal": round(healed - t_heal, 1),
            "to_clean": round(max(0.0, start - healed), 1), "confirm": round(t_clean - start, 1),
            "audits": round(end - t_clean, 1)}


class Run(LiveRun):
    def __init__(self, lab, seed: int, faults: list[Fault], logdir: Path, *, keep_going: bool = False,
                 t: VmTiming = TIMING, say=None):
        super().__init__(lab, seed, faults, logdir, keep_going=keep_going, t=t)
        self.say = say or (lambda line: None)
        self.power_lock = threading.RLock()
        self.expected_exits: set[tuple[str, int]] = set()
        self.writers: dict[str, dict] = {}
        self.boots = 0
        self.phases: list[dict[str, float]] = []  # where each fault's time went (fault_phases)

    # ------------------------------------------------------------------ set-up
    def setup(self) -> dict[str, float]:
        lab, out = self.lab, {}
        self.logdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        text = campaign_toml()
        for n in self.nodes:
            lab.exec(n, ("/bin/sh", "-s"), input=install_script(), check=True)
            lab.exec(n, ("sh", "-c", "cat > /etc/hasync/cluster.toml"), input=text, check=True)
        out.update(sc.bootstrap_pair(lab))
        self.inj = Injector(self)
        self.logs = A.GuestLogs(lab)
        for n in self.nodes:
            lab.sh(n, boot_script())
        sc.wait_role(lab, self.nodes[0], "active", timeout=self.t.liveness_bound_s)
        sc.wait_role(lab, self.nodes[1], "standby", timeout=self.t.liveness_bound_s)
        out["cluster_up_s"] = round(time.monotonic() - t0, 1)
        for tag, (vers, mnt) in MOUNTS.items():
            sc.mount_client(lab, CLIENT, vers=vers, mnt=mnt)
            self.writers[tag] = manual.start_writer(lab, CLIENT, f"{mnt}/stream-{tag.replace('.', '')}",
                                                    f"w{tag.replace('.', '')}")
        self.sampler = Sampler(lab, self.nodes, CLIENT, self.trace)
        self.sampler.start()
        self.sup = threading.Thread(target=self._supervise, name="vm-campaign-power", daemon=True)
        self.sup.start()
        ok, why = self.await_clean(self.t.liveness_bound_s)
        if not ok:
            raise RuntimeError(f"the cluster did not settle at start-up: {why}")
        for n in self.nodes:  # what set-up wrote is not a fault's
            self.logs.skip(n, DAEMON_LOG)
            self.logs.skip(n, EXITS_LOG)
        out["settled_s"] = round(time.monotonic() - t0, 1)
        return out

    def power_on(self, node: str) -> None:
        """Power on, boot, the cables as they were, the node's boot steps."""
        with self.power_lock:
            if not self.lab.running(node):
                self.lab.start(node)
                self.boots += 1
            for link in sorted(self.inj.cut.get(node, ())):
                self.lab.cut(node, link)
        self.lab.wait_ready([node], timeout=300)
        self.lab.sh(node, boot_script(), timeout=120)
        self.trace(node, "power", "booted; DRBD up, failover unit started")

    def _supervise(self) -> None:
        """A node powered off by a fence (or its own) boots again after 1 s."""
        while not self.stop_ev.wait(0.5):
            for n in self.nodes:
                if n in self.inj.off or self.lab.running(n):
                    continue
                time.sleep(1.0)
                if n in self.inj.off or self.lab.running(n) or self.stop_ev.is_set():
                    continue
                self.trace(n, "power", "powered off by a fence: power cycle")
                try:
                    self.power_on(n)
                except Exception as e:  # noqa: BLE001 -- keep supervising; say what happened
                    self.trace(n, "power", f"HARNESS ERROR: power on failed: {e!r}")

    # ------------------------------------------------------------------ quiescence
    def clean_now(self) -> tuple[bool, str]:
        snap = self.sampler.snapshot()
        if len(snap) < 2 or not all(snap[n].get("up") and not snap[n].get("unknown") for n in self.nodes):
            return False, f"a node is down or silent: {({n: snap.get(n, {}).get('up') for n in self.nodes})}"
        ok, act = one_active(self.nodes, {n: snap[n]["pieces"] for n in self.nodes}, PIECES,
                             {n: snap[n]["role"] for n in self.nodes})
        if ok and not all(snap[n].get("pid") and snap[n].get("pstate") not in ("T", "t", "") for n in self.nodes):
            return False, "a daemon is not running (or stopped)"
        return ok, act

    def settled(self, act: str, acked0: dict[str, int]) -> str:
        """'' when ARP answers from the active node only, both clients' writes were
        acknowledged since *acked0* and the daemons see each other in their roles; else
        why not (the cheap checks first: a `hasync status` costs seconds under TCG)."""
        stb = self.nodes[1] if act == self.nodes[0] else self.nodes[0]
        arp = self.sampler.arp_answer()
        if arp != [act]:
            return f"ARP for the VIP answered by {arp}"
        acked = A.acked_counts(self.lab, CLIENT, self.writers)
        stuck = [tag for tag in self.writers if acked[tag] <= acked0.get(tag, 0)]
        if stuck:
            return f"the clients' writes do not go through: {stuck}"
        st = self._statuses()
        if not (st[act].get("peer", {}).get("state") == "up" and st[act]["peer"].get("role") == "standby"
                and st[stb].get("peer", {}).get("state") == "up" and st[stb]["peer"].get("role") == "active"):
            return f"the daemons have not settled: {act} sees {st[act].get('peer')}, {stb} sees {st[stb].get('peer')}"
        return ""

    def _statuses(self) -> dict[str, dict]:
        """Both daemons' status documents (their control sockets), asked at once."""
        got: dict[str, dict] = {n: {} for n in self.nodes}

        def one(node: str) -> None:
            r = self.lab.exec(node, ("python3", "-S", "-c", DAEMON_STATUS_PY, CONTROL_SOCKET), timeout=60)
            try:
                got[node] = json.loads(r.stdout)
            except ValueError:
                pass

        ts = [threading.Thread(target=one, args=(n,), daemon=True) for n in self.nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join(70)
        return got

    def await_clean(self, bound: float) -> tuple[bool, str]:
        acked0 = A.acked_counts(self.lab, CLIENT, self.writers)
        return self.hold_clean(bound, lambda act: self.settled(act, acked0) or ("" if self.clean_now()[0] else "not clean any more"),
                               poll_s=0.3)

    # ------------------------------------------------------------------ a fault
    def run_fault(self, i: int, f: Fault) -> list:
        t0, wall0 = self.begin_fault(i, f)
        t_heal = time.monotonic()
        try:
            self.inj.heal()
        except Exception as e:  # the harness's own failure: recorded
            self.res.step_errors.append({"fault_index": i, "op": "heal", "error": repr(e)})
            self.trace("both", "heal", f"HARNESS ERROR: heal failed: {e!r}")
        healed = time.monotonic()
        ok, why = self.await_clean(self.t.liveness_bound_s)
        t_clean = time.monotonic()
        hits = []
        if ok:
            self.clean_fault = i
            self.res.recovery_s.append(round(self.clean_at - t0, 3))
            self.res.after_heal_s.append(round(max(0.0, self.clean_at - healed), 3))
            hits += A.records_hits(self.lab, CLIENT, self.writers, why, i)
        else:
            hits.append(A.hit("liveness", i, {"why": why, "bound_s": self.t.liveness_bound_s,
                                              "truth": {n: sorted(v.get("pieces", [])) for n, v in self.sampler.snapshot().items()}}))
        lied = self.fence_lied(wall0)
        hits += A.overlap_hits(self.sampler.overlaps_since(i), [], i, self.t.stray_bound_s, lied, time.monotonic())
        hits += A.died_hits(self.logs, self.nodes, self.expected_exits, i)
        hits += A.log_hits(self.logs, self.nodes, i, lied)
        self.res.per_fault_s.append(round(time.monotonic() - t0 + f.gap_s, 3))
        self.phases.append(fault_phases(f.gap_s, t0, t_heal, healed, self.clean_at if ok else None, t_clean, time.monotonic()))
        return self.record(hits)

    def fence_lied(self, since_wall: float) -> bool:
        for n in self.nodes:
            for line in self.lab.exec(n, ("cat", FENCE_LOG)).stdout.splitlines():
                parts = line.split()
                if len(parts) >= 4 and parts[3] == "lie" and float(parts[0]) >= since_wall - 5:
                    return True
        return False

    # ------------------------------------------------------------------ the end
    def end_audits(self, i: int) -> list:
        hits = []
        for n in self.nodes:
            r = self.lab.exec(n, ("hasync", "bootstrap", "--dry-run"), timeout=180)
            hits += A.plan_hits(n, r.stdout, i)
        act = self.clean_now()[1] if self.clean_now()[0] else None
        if act is None:
            return hits + [A.hit("drbd-data", i, {"skipped": "the cluster is not clean at the end"})]
        for n in self.nodes:
            manual.wait_drbd(self.lab, n, "UpToDate/UpToDate", timeout=300)
        digests = A.drbd_digests(self.lab, act, self.nodes)
        self.res.drbd_digests = digests  # type: ignore[attr-defined]
        return hits + A.data_hits(digests, i, {n: manual.drbd_state(self.lab, n) for n in self.nodes})

    def collect_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for n in self.nodes:
            for src, name in ((DAEMON_LOG, "failover.log"), (EXITS_LOG, "exits.log"), (FENCE_LOG, "fence.log"),
                              ("/var/lib/hasync/failover/timeline.jsonl", "timeline.jsonl"),
                              ("/var/log/hasync-campaign/commands.log", "commands.log")):
                if self.lab.running(n):
                    (dest / f"{n}-{name}").write_text(self.lab.exec(n, ("cat", src), timeout=60).stdout)
        for tag, w in self.writers.items():
            (dest / f"{CLIENT}-writer-{tag}.log").write_text(self.lab.exec(CLIENT, ("cat", w["log"])).stdout)

    def close(self) -> None:
        self.stop_ev.set()
        sampler = getattr(self, "sampler", None)
        if sampler is not None:
            sampler.close()
        for w in self.writers.values():
            try:
                manual.stop_writer(self.lab, CLIENT, w)
            except Exception:  # noqa: BLE001,S110 -- the lab goes down next anyway
                pass
        for n in self.nodes:  # a lab that stays up (a test session's) gets its agents back
            if self.lab.running(n):
                self.lab.exec(n, ("/bin/sh", "-c", uninstall_script()), timeout=60)
