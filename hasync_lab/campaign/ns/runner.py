"""A campaign run of the ns tier: one live lab, the real daemons, N faults.

Set-up: the campaign's files into every node, the boot steps, both units on both nodes,
the sampler (ground truth every 10 ms, ARP every 130 ms), the wire (taps on the switch),
a supervisor thread (systemd's part), a settled cluster, then a clean restart of each
daemon so the wire holds genuine `leaving` packets of both nodes for the replays.
Then the self-test, then each fault: gap, steps, heal, quiescence (clean for settle_s
within the liveness bound), audits. The lab is reset only as far as a fault needs (its
heal); after a violation with --keep-going the cluster is restarted from scratch.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

try:
    from hasync.effects.keyfile import load_key
except ImportError:  # before the key loader moved out of the packets module
    from hasync.failover.packets import load_key  # type: ignore[attr-defined,no-redef]
from hasync_lab.campaign.faults import Fault
from hasync_lab.campaign.live import LiveRun, each_group_once, one_active
from hasync_lab.campaign.ns import audits as A
from hasync_lab.campaign.ns.faults import SYNC_KINDS
from hasync_lab.campaign.ns.heal import heal
from hasync_lab.campaign.ns.inject import PING_TABLE, Injector
from hasync_lab.campaign.ns.prep import (
    CHAIN,
    TIMING,
    Timing,
    campaign_toml,
    install_script,
    piece_script,
)
from hasync_lab.campaign.ns.services import Services
from hasync_lab.campaign.ns.truth import Sampler, daemon_status, tcp_answer
from hasync_lab.campaign.ns.wire import Wire

SYNC_BOUND_S = 45.0  # the watcher's retry backoff is capped at 30 s


class Run(LiveRun):
    def __init__(self, lab, seed: int, faults: list[Fault], logdir: Path, *, keep_going: bool = False, t: Timing = TIMING):
        super().__init__(lab, seed, faults, logdir, keep_going=keep_going, t=t)
        self.lab_lock = threading.RLock()
        self.strays: list = []  # (node, rid, t, late) started behind hasync's back
        self.conflicts: list[dict] = []
        # --groups 2: group -> its pieces (the audits per group, own-group-stopped); {}: one chain
        self.groups: dict[str, tuple[str, ...]] = t.groups_pieces if t.groups == 2 else {}
        self.owners: dict[str, str] = {}  # group -> the node running it, at the last clean look

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        lab = self.lab
        self.logdir.mkdir(parents=True, exist_ok=True)
        lab.reset()
        text = campaign_toml(lab.spec, lab.public_addr(lab.clients[0]), self.t)
        for n in self.nodes:
            lab.exec(n, ["/bin/sh", "-s"], input=install_script(), check=True)
            lab.exec(n, ["sh", "-c", "cat > /etc/hasync/cluster.toml"], input=text, check=True)
        r = lab.exec(self.nodes[0], ["hasync", "check"])
        if not r.ok:
            raise RuntimeError(f"the campaign's cluster.toml does not pass `hasync check`: {r.stdout}{r.stderr}")
        self.key = load_key(str(lab.store.ssh_dir / "authkey"))
        self.services = Services(lab, self.logdir, self.trace, self.lab_lock, self.t)
        self.services.config = {n: text for n in self.nodes}
        self.sampler = Sampler(lab, self.nodes, self.trace, groups=self.groups)
        self.views = self.sampler.views
        self.wire = Wire(lab, self.key, self.nodes)
        self.inj = Injector(self)
        self.logs = A.LogScan(self.services.log_path(n, u) for n in self.nodes for u in ("failover", "watch"))
        self.wire.start()
        self.sampler.start()
        for n in self.nodes:
            self.services.boot(n)
        self.sup = threading.Thread(target=self._supervise, name="campaign-systemd", daemon=True)
        self.sup.start()
        ok, why = self.await_clean(self.t.liveness_bound_s)
        if not ok:
            raise RuntimeError(f"the cluster did not settle at start-up: {why}")
        self.capture_leaving()

    def _supervise(self) -> None:
        while not self.stop_ev.is_set():
            try:
                self.services.tick()
            except Exception as e:  # keep supervising; say what happened
                self.trace("both", "systemd", f"supervisor error: {e!r}")
            self.stop_ev.wait(0.03)

    def capture_leaving(self) -> None:
        """A clean restart of each daemon, the standby first: the wire then holds both
        nodes' `leaving` packets, the stuff of the replay faults."""
        for role in ("standby", "active", "standby", "active"):
            if all(self.wire.has(n, "leaving") for n in self.nodes):
                break
            node = self.inj.resolve(role)[0]
            self.services.stop(node, "failover")
            self.services.start(node, "failover")
            ok, why = self.await_clean(self.t.liveness_bound_s)
            if not ok:
                raise RuntimeError(f"the cluster did not settle after a clean restart of {node}: {why}")
        self.trace("both", "capture", f"leaving packets captured: {[n for n in self.nodes if self.wire.has(n, 'leaving')]}")

    # ------------------------------------------------------------------ quiescence
    def clean_now(self) -> tuple[bool, str]:
        snap = self.sampler.snapshot()
        if len(snap) < 2 or not all(snap[n]["up"] for n in self.nodes):
            return False, f"a node is down: {snap}"
        roles = {n: snap[n]["role"] for n in self.nodes}
        if self.groups:
            held = {n: {r for p in self.groups.values() for r in p if snap[n][r]} for n in self.nodes}
            ok, act, self.owners = each_group_once(self.nodes, held, self.groups, roles)
        else:
            held = {n: {r for r in CHAIN if snap[n][r]} for n in self.nodes}
            ok, act = one_active(self.nodes, held, CHAIN, roles)
        if ok and not all(self.services.alive(n) for n in self.nodes):
            return False, "a daemon is not running"
        return ok, act

    def late_strays(self, strays: list) -> list[tuple[str, str]]:
        """Pieces started behind hasync's back after a daemon's start-up probe that still
        run on a node beside the other node's whole chain (no daemon will look at them)."""
        snap = self.sampler.snapshot()
        out = []
        for node, rid, _t, late in strays:
            other = self.nodes[1] if node == self.nodes[0] else self.nodes[0]
            if late and snap.get(node, {}).get(rid) and all(snap.get(other, {}).get(r) for r in CHAIN):
                out.append((node, rid))
        return out

    def no_eligible_node(self) -> bool:
        """Nobody runs any of the chain, both daemons are standby and idle, each flagged
        failed or in operator standby: nobody will take it until an operator acts."""
        snap = self.sampler.snapshot()
        if any(snap.get(n, {}).get(r) for n in self.nodes for r in CHAIN):
            return False
        st = [self.chain_status(daemon_status(self.views[n])) for n in self.nodes]
        return all(s.get("role") == "standby" and s.get("job") is None and {"failed", "standby"} & set(s.get("flags", []))
                   for s in st)

    def chain_status(self, st: dict) -> dict:
        """A daemon's status of the chain the faults aim at: with two groups, group a's
        entry (its role, job and flags), else the node's own."""
        if not self.groups:
            return st
        return next((g for g in st.get("groups", ()) if g.get("id") == "a"), {})

    def await_clean(self, bound: float, strays: list | None = None) -> tuple[bool, str]:
        """Clean for settle_s within *bound*; with *strays* (a fault's), give up early once
        the stray bound passed when an operator's case keeps it from being clean (a late
        stray, no eligible node)."""
        next_look = 0.0

        def give_up(t0: float) -> str:
            nonlocal next_look
            if strays is None or time.monotonic() - t0 <= self.t.stray_bound_s or time.monotonic() < next_look:
                return ""
            next_look = time.monotonic() + 1.0  # an operator's case shows early: no need to wait the bound out
            if self.late_strays(strays):
                return f"late strays: {self.late_strays(strays)}"
            return "no eligible node" if self.no_eligible_node() else ""

        return self.hold_clean(bound, self.settled, poll_s=0.05, give_up=give_up)

    def settled(self, act: str) -> str:
        """'' when the daemons see each other in their roles (the standby idle), ARP
        answers from the active node only and the service answers from it; else why not.
        Two groups: each daemon sees its peer, no group has a job, and both place every
        group where ground truth has it; ARP and the service from group a's node."""
        if self.groups:
            why = self._groups_settled()
            if why:
                return why
            arp = self.sampler.arp_answer()
            said = tcp_answer(self.lab, self.lab.clients[0])
            return "" if arp == [act] and said.endswith(act) else f"ARP answered by {arp}, the service said {said!r}"
        stb = self.nodes[1] if act == self.nodes[0] else self.nodes[0]
        sa, ss = daemon_status(self.views[act]), daemon_status(self.views[stb])
        if not (sa.get("peer", {}).get("state") == "up" and sa["peer"].get("role") == "standby"
                and ss.get("peer", {}).get("state") == "up" and ss["peer"].get("role") == "active"
                and ss.get("job") is None):
            return f"the daemons have not settled: {act} sees {sa.get('peer')}, {stb} sees {ss.get('peer')}"
        arp = self.sampler.arp_answer()
        said = tcp_answer(self.lab, self.lab.clients[0])
        return "" if arp == [act] and said.endswith(act) else f"ARP answered by {arp}, the service said {said!r}"

    def _groups_settled(self) -> str:
        for n in self.nodes:
            st = daemon_status(self.views[n])
            if st.get("peer", {}).get("state") != "up":
                return f"{n} does not see its peer up: {st.get('peer')}"
            docs = {g.get("id"): g for g in st.get("groups", ())}
            busy = [gid for gid, g in docs.items() if g.get("job") is not None]
            seen = {gid: docs.get(gid, {}).get("owner") for gid in self.groups}
            if busy or seen != self.owners:
                return f"{n}: groups {seen} (ground truth {self.owners})" + (f", jobs in {busy}" if busy else "")
        return ""

    # ------------------------------------------------------------------ a fault
    def run_fault(self, i: int, f: Fault) -> list:
        n_strays, n_conflicts = len(self.strays), len(self.conflicts)
        t0, wall0 = self.begin_fault(i, f)
        try:
            heal(self.inj)
        except Exception as e:  # the harness's own failure: recorded, and the cluster rebuilt
            self.res.step_errors.append({"fault_index": i, "op": "heal", "error": repr(e)})
            self.trace("both", "heal", f"HARNESS ERROR: heal failed: {e!r}")
            self.hard_reset()
        healed = time.monotonic()
        ok, why = self.await_clean(self.t.liveness_bound_s, self.strays[n_strays:])
        hits = []
        if ok:
            self.clean_fault = i
            self.res.recovery_s.append(round(self.clean_at - t0, 3))
            self.res.after_heal_s.append(round(max(0.0, self.clean_at - healed), 3))
        else:
            hits += self.liveness(i, why, self.strays[n_strays:])
        lied = any(A.fence_lied(v, wall0) for v in self.views.values())
        hits += A.overlap_hits(self.sampler.overlaps_since(i), self.strays[n_strays:], i, self.t.stray_bound_s, lied,
                               time.monotonic(), self.groups or None)
        if self.groups:
            hits += A.group_stop_hits(self.sampler.stops_since(i), i, time.monotonic())
        hits += A.died_hits(self.services.unexpected_exits(t0 - f.gap_s), i, self.logdir)
        if f.kind in SYNC_KINDS:
            hits += self.sync_audits(i, self.conflicts[n_conflicts:])
        logged = self.logs.scan(i, lied)
        if self.strays[n_strays:] and not any(h.audit in ("dual-run", "arp", "stray") and not h.limit for h in hits):
            # pieces the fault started behind hasync's back made both nodes hold the chain
            # (a whole chain enabled at boot, adopted, then given up to the active peer):
            # the daemons saying so is no violation when the double run ended within the
            # stray bound, which the ground-truth audits above checked
            for h in [h for h in logged if "also holds the chain" in h.evidence.get("line", "")]:
                logged.remove(h)
                self.trace("both", "audit", f"excused (the fault's own double run, within the stray bound): {h.evidence['line']}")
        hits += logged
        self.res.per_fault_s.append(round(time.monotonic() - t0 + f.gap_s, 3))
        return self.record(hits)

    def liveness(self, i: int, why: str, strays: list) -> list:
        """Not clean within the bound: an operator's case (a named limit) or a violation."""
        late = self.late_strays(strays)
        if late:
            h = A.hit("liveness", i, {"why": why, "late_strays": late}, "late-stray")
            for node, rid in late:  # as an operator would: stop what nobody started
                self.trace(node, "operator", f"operator stops {rid}, started behind hasync's back")
                self.lab.sh(node, piece_script("stop", rid, self.lab))
            ok, why2 = self.await_clean(self.t.liveness_bound_s)
            return [h] if ok else [h, A.hit("liveness", i, {"why": why2, "after_operator": "late-stray"})]
        st = {n: self.chain_status(daemon_status(self.views[n])) for n in self.nodes}
        flags = {n: set(s.get("flags", [])) for n, s in st.items()}
        roles = {n: s.get("role") for n, s in st.items()}
        if all(roles.get(n) == "standby" and flags.get(n, set()) & {"failed", "standby"} for n in self.nodes):
            h = A.hit("liveness", i, {"why": why, "roles": roles, "flags": {n: sorted(f) for n, f in flags.items()}},
                      "no-eligible-node")
            node = next((n for n in self.nodes if "standby" in flags[n]), self.nodes[0])  # not the one that failed
            self.trace(node, "operator", "operator: hasync takeover (no eligible node)")
            self.lab.exec(node, ["hasync", "takeover"], timeout=60)
            ok, why2 = self.await_clean(self.t.liveness_bound_s)
            return [h] if ok else [h, A.hit("liveness", i, {"why": why2, "after_operator": "no-eligible-node"})]
        return [A.hit("liveness", i, {"why": why, "bound_s": self.t.liveness_bound_s, "roles": roles,
                                      "flags": {n: sorted(f) for n, f in flags.items()}})]

    def sync_audits(self, i: int, conflicts: list[dict]) -> list:
        end = time.monotonic() + SYNC_BOUND_S
        diff: list[str] = []
        pending: dict = {}
        while time.monotonic() < end:
            trees = {n: A.tree(v) for n, v in self.views.items()}
            pending = {n: A.journal_pending(v) for n, v in self.views.items()}
            t1, t2 = (trees[n] for n in self.nodes)
            diff = A.tree_diff(t1, t2) if t1 is not None and t2 is not None else ["(a node is down)"]
            if not diff and not any(pending.values()):
                break
            time.sleep(0.2)
        hits = []
        if diff:
            hits.append(A.hit("sync-trees", i, {"differ": diff[:20], "count": len(diff), "bound_s": SYNC_BOUND_S}))
        if any(pending.values()):
            hits.append(A.hit("sync-journal", i, {"pending": pending, "bound_s": SYNC_BOUND_S}))
        return hits + A.conflict_hits(conflicts, self.views, i)

    def bootstrap_audit(self, i: int) -> list:
        hits = []
        for n in self.nodes:
            r = self.lab.exec(n, ["hasync", "bootstrap", "--dry-run"], timeout=120)
            hits += A.plan_hits(n, r.stdout, i)
        return hits

    # ------------------------------------------------------------------ the whole run
    def end_audits(self, end: int) -> list:
        return self.bootstrap_audit(end) + self.sync_audits(end, self.conflicts)

    def after_violation(self) -> None:
        self.hard_reset()

    def hard_reset(self) -> None:
        """After a violation (--keep-going): every process stopped, the lab reset, the
        nodes booted and the cluster settled again, so the next fault starts clean."""
        self.trace("both", "reset", "restarting the cluster from scratch after a violation")
        with self.lab_lock:
            for p in list(self.services.procs.values()):
                self.services.expect_exit.add(p.pid)
            self.lab.reset()
            self.services.procs.clear()
            self.services.restart_at.clear()
            self.services.frozen.clear()
        for n in self.nodes:
            self.services.boot(n)
        self.await_clean(self.t.liveness_bound_s)

    def close(self) -> None:
        self.stop_ev.set()
        for part in ("services", "sampler", "wire"):
            obj = getattr(self, part, None)
            if obj is None:
                continue
            try:
                obj.stop_all() if part == "services" else obj.close()
            except Exception:
                pass
        for n in self.nodes:  # a run stopped mid-fault may leave the ping node blocked: netns outlive a wipe
            self.lab._run(("ip", "netns", "exec", self.lab.netns(n), "nft", "delete", "table", "inet", PING_TABLE))
        try:
            self.lab.cable.set_oneway(self.nodes[0], False)
            self.lab.cable.set_oneway(self.nodes[1], False)
            self.lab.reset(files=True)  # the nodes' files as the lab made them
        except Exception:
            pass
