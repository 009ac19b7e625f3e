"""`hasync lab bench failover --vm [--json]`: crash-to-client-I/O-resumed on the VM lab.

One VM lab (node1, node2, client1, client2; real DRBD 8.4, LVM, kernel NFS), bootstrapped
with `hasync bootstrap`, the failover daemons on both, each client writing its numbered,
checksummed, fsync'd record stream on its mount of the VIP: client1 a hard NFSv3 mount,
client2 Debian 12's default mount (v4.2). Then, per trial: each client takes a flock and
an fcntl lock (hasync_lab/bench/vm_clients.py), the active node is powered off (kill -9
of its qemu), and, per client kind, on the client's own clock, the time until its next
acknowledged write; the survivor's failover record for the breakdown (detection, ping
tiebreak, fence, each resource's start); every acknowledged write on the survivor; the
other client's attempt at the locks (refused: reclaimed, not lost); the server's grace
timeline. The victim powers on again and rejoins (DRBD resync, daemon standby). The
top-level keys (median_s, lost_writes, ...) are client1's (v3), as before; ``clients``
has each kind.

Then ``baseline``: the same trials with the distro's defaults for the NFS v4 state (grace
and lease 90 s, no pinned server scope, nfsdcld's records on each node's own disk:
vm_clients.baseline_toml/baseline_nfs_conf), installed by restarting both daemons over
the running chain (the active one adopts it), side by side (``side_by_side``).

Last, the chain's commands by hand (``manual``): the same takeover by hand. Both daemons are killed (resources stay
where they are), the active node is powered off, and on the survivor the same commands
the chain runs (the [fencing] command, then each resource's start, in order, exactly the
argv and environment hasync would use) are run one after the other, each timed.
``manual_sum_s`` is the sum of those commands; a human would add the time to notice.

With ``--peers pacemaker`` the same is measured with Pacemaker running the chain, at each
``--tokens`` setting (hasync_lab/bench/vm_pacemaker.py): the JSON's ``peers`` list, one
entry per setting (tool, setting, median_s, min_s, max_s, trials, lost_writes).
``--trials 0`` with ``--peers`` measures the peers alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from hasync import operations
from hasync.config import load_profile, loads
from hasync_lab.bench import vm_clients, vm_pacemaker
from hasync_lab.bench.vm_clients import install_files, node_files, write_files
from hasync_lab.vm import VmLab, ensure_image, grace, manual
from hasync_lab.vm import pacemaker as pcmk
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import default_guests


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hasync lab bench failover --vm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress goes to stderr)")
    p.add_argument("--trials", type=int, default=5, help="crash trials (default 5)")
    p.add_argument("--name", default="vbench", help="the VM lab's name (default vbench; made and removed)")
    p.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    p.add_argument("--no-manual", action="store_true", help="skip the by-hand baseline")
    p.add_argument("--no-baseline", action="store_true", help="skip the distro-defaults baseline (grace 90 s, no pinned scope, "
                                                              "nfsdcld's records per node): --trials more crashes")
    p.add_argument("--keepalive", default="", help="override [heartbeat] keepalive for the run (e.g. 250ms)")
    p.add_argument("--warntime", default="", help="override [heartbeat] warntime")
    p.add_argument("--deadtime", default="", help="override [heartbeat] deadtime (e.g. 3s)")
    p.add_argument("--out", default="", help="also write the JSON to this file")
    p.add_argument("--peers", default="", choices=["", "pacemaker"],
                   help="also measure Pacemaker on the same lab, chain, crash and clients")
    p.add_argument("--tokens", default=",".join(map(str, pcmk.TOKENS_MS)),
                   help="the peers' Corosync token settings in ms (default 3000,1000)")
    p.add_argument("--peer-trials", type=int, default=5, help="crash trials per peer setting (default 5)")
    return p.parse_args(argv)


def _say(msg: str) -> None:
    print(f"[vm bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def override_timing(lab, args) -> dict[str, str]:
    """Rewrite the [heartbeat] timing keys on both nodes (before the daemons start)."""
    changes = {k: getattr(args, k) for k in ("keepalive", "warntime", "deadtime") if getattr(args, k)}
    for n in lab.nodes:
        for k, v in changes.items():
            lab.sh(n, f"sed -i 's/^{k} = .*/{k} = \"{v}\"/' /etc/hasync/cluster.toml")
        r = lab.exec(n, ("hasync", "check"))
        if not r.ok:
            raise SystemExit(f"the overridden timing does not pass `hasync check` on {n}:\n{r.stdout}{r.stderr}")
    return changes


def lost_writes(lab, w: dict, server: str) -> tuple[int, int]:
    """(acknowledged records missing on *server*, corrupt records) -- the ack log is read
    first, so every record in it must already be in the data file read afterwards."""
    return vm_clients.lost_writes(lab, "client1", w, server)


def stale_handles(lab, w: dict) -> int:
    return vm_clients.stale_handles(lab, "client1", w)


def chain_commands(lab, node: str) -> list[tuple[str, tuple[str, ...], dict[str, str], float]]:
    """(label, argv, env, timeout) of the fence command and each resource's start, as the
    daemon on *node* would run them (its own cluster.toml and profile)."""
    text = lab.exec(node, ("cat", "/etc/hasync/cluster.toml"), check=True).stdout
    cluster = loads(text, path=f"{node}:/etc/hasync/cluster.toml")
    profile = load_profile(cluster.cluster.profile)
    out: list[tuple[str, tuple[str, ...], dict[str, str], float]] = []
    peer = cluster.peer_of(node)
    fence = tuple(a.replace("{node}", peer.name).replace("{address}", peer.address) for a in cluster.fencing.command)
    out.append(("fence", fence, {"HASYNC_FENCE_NODE": peer.name}, cluster.fencing.timeout))

    def exists(path: str) -> bool:
        return lab.exec(node, ("test", "-e", path)).ok

    for res in cluster.resources:
        for i, cmd in enumerate(operations.commands(res, "start", profile=profile, exists=exists)):
            out.append((f"start_{res.id}" + (f"_{i}" if i else ""), cmd.argv, dict(cmd.env), cmd.timeout))
    return out


def manual_takeover(lab, victim: str, survivor: str, w: dict) -> dict:
    """The baseline: daemons killed, *victim* powered off, the chain's commands by hand."""
    for n in lab.nodes:
        lab.exec(n, ("pkill", "-9", "-f", "hasync failover run"))
    cmds = chain_commands(lab, survivor)
    offset = sc.guest_clock_offset(lab, "client1")
    manual.wait_acked(lab, "client1", w, manual.acked(lab, "client1", w) + 2, timeout=60)
    t_crash = time.time()
    lab.crash(victim)
    manual.wait_drbd_peer_lost(lab, survivor)
    steps: dict[str, float] = {}
    for label, argv, env, timeout in cmds:
        r = lab.exec(survivor, argv, env=env, timeout=timeout)
        if not r.ok:
            raise RuntimeError(f"by hand on {survivor}: {' '.join(argv)} exited {r.exit_code}: {r.stderr[-500:]}")
        steps[f"{label}_s"] = round(r.duration_s, 3)
    resumed = sc.client_resumed_after(lab, "client1", w, t_crash, offset, timeout=180)
    return {"steps": steps, "sum_s": round(sum(steps.values()), 3), "client_resumed_s": resumed,
            "note": "commands timed one by one through the console (a few ms each of round trip); "
                    "started once DRBD on the survivor saw its peer gone"}


def median_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    """Each phase's median over the trials that have it (a record still open when read has
    no ``record_s``: counting it as 0 gave a median of 0.0 in the 2026-12-07 bench)."""
    keys = sorted({k for p in phases for k in p})
    return {k: round(statistics.median([p[k] for p in phases if k in p]), 3) for k in keys}


def crash_trials(lab, args, w: dict, clients: list, active: str, standby: str, label: str,
                 trials: list[dict]) -> tuple[int, str, str]:
    """*args.trials* crashes of the active node, each measured (appended to *trials* as it
    ends, so a failure keeps the ones before) and followed by the victim's rejoin: (false
    failovers seen, the active and standby after)."""
    false_failovers = 0
    grace_s = vm_clients.grace_time(lab, active)
    for i in range(1, args.trials + 1):
        roles = {n: sc.role(lab, n) for n in lab.nodes}
        if roles[active] != "active" or roles[standby] != "standby":
            # nobody crashed anything since the last trial: a false failover
            false_failovers += 1
            _say(f"  unexpected roles before {label}trial {i}: {roles} (counted as a false failover)")
            active = next((n for n, r in roles.items() if r == "active"), active)
            standby = next(n for n in lab.nodes if n != active)
        marked = vm_clients.arm(lab, clients, f"{label.strip() or 'ours'}{i}", standby)
        _say(f"{label}trial {i}/{args.trials}: power {active} off")
        stale0 = stale_handles(lab, w)
        c = sc.crash_and_wait(lab, active, standby, w)
        lost, bad = lost_writes(lab, w, standby)
        nfs = vm_clients.measure(lab, clients, c.t_crash_host, standby, grace_s, marked, resumed={"v3": c.resumed_s})
        t = {"trial": i, "victim": active, "survivor": standby, "resumed_s": c.resumed_s,
             "active_s": c.active_s, "detect_s": c.detect_s, "phases": c.phases,
             "lost_writes": lost, "corrupt_records": bad, "stale_handles": stale_handles(lab, w) - stale0, "nfs": nfs}
        trials.append(t)
        if args.out:  # an hour of trials: what is done so far is on disk at every step
            with open(f"{args.out}.{label.strip() or 'ours'}.partial", "w") as f:
                json.dump({"label": label, "trials": trials}, f, indent=1, sort_keys=True)
        per_kind = ", ".join(f"{r['kind']} {r['resumed_s']:.2f}s (lost {r['lost_writes']}, locks lost {r['locks_lost']})"
                             for r in nfs["clients"])
        _say(f"  resumed: {per_kind}; {standby} declared {active} dead at {c.detect_s:.2f}s, active at {c.active_s:.2f}s "
             f"(its record: {c.phases.get('record_s', -1):.2f}s); {grace.summary(nfs['grace'])}")
        _say(f"  {active} powers on and rejoins")
        sc.rejoin(lab, active, standby)
        active, standby = standby, active
    return false_failovers, active, standby


def run(args: argparse.Namespace) -> dict:
    t_all = time.monotonic()
    image = ensure_image(_say)
    lab = VmLab(args.name, report=_say)
    if lab.exists:
        lab.down()
        lab = VmLab(args.name, report=_say)
    result: dict = {"tool": "hasync", "lab": args.name, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "load_avg_start": os.getloadavg()[0]}
    try:
        if args.trials:
            try:
                hasync_trials(lab, image, args, result)
            finally:
                if args.keep:
                    lab.close()
                else:
                    lab.down()  # one lab at a time: the peers get a fresh one each
        if args.peers and "error" not in result:
            result["peers"] = [vm_pacemaker.run_setting(ms, args.peer_trials, f"{args.name}p", _say, lost_writes, stale_handles)
                               for ms in tokens(args.tokens)]
    finally:
        result["load_avg_end"] = os.getloadavg()[0]
        result["wall_s"] = round(time.monotonic() - t_all, 1)
    return result


def tokens(text: str) -> list[int]:
    """--tokens: Corosync token settings in ms, comma-separated; ValueError when not."""
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out or any(t < 100 for t in out):
        raise ValueError(f"--tokens: milliseconds, comma-separated (e.g. 3000,1000), not {text!r}")
    return out


def hasync_trials(lab: VmLab, image, args: argparse.Namespace, result: dict) -> None:
    """hasync's own trials, the distro-defaults baseline and the by-hand run on *lab* (into
    *result*; a failure is kept in it, with the trials so far)."""
    trials: list[dict] = []
    base: list[dict] = []
    try:
        lab.create(image, default_guests(2))  # client2: the v4.2 client
        lab.up()
        _say("bootstrap node1, join node2, initial sync")
        result["setup"] = sc.bootstrap_pair(lab)
        result["timing_override"] = override_timing(lab, args)
        sc.start_cluster(lab)
        sc.mount_client(lab)
        w = manual.start_writer(lab, "client1", "/mnt/ha/stream", "bench")
        manual.wait_acked(lab, "client1", w, 10, timeout=90)
        clients = vm_clients.start(lab, "bench", writers={"v3": w})
        false_failovers, active, standby = crash_trials(lab, args, w, clients, "node1", "node2", "", trials)
        result["trials"] = len(trials)
        result["runs"] = trials
        resumed = [t["resumed_s"] for t in trials]
        result["median_s"] = round(statistics.median(resumed), 3)
        result["min_s"], result["max_s"] = min(resumed), max(resumed)
        result["false_failovers"] = false_failovers
        result["lost_writes"] = sum(t["lost_writes"] for t in trials)
        result["stale_handles"] = sum(t["stale_handles"] for t in trials)
        bd = median_phases([t["phases"] for t in trials])
        bd["detect_s"] = round(statistics.median([t["detect_s"] for t in trials]), 3)
        bd["client_after_active_s"] = round(statistics.median([t["resumed_s"] - t["active_s"] for t in trials]), 3)
        result["breakdown"] = bd
        ours = {n: node_files(lab, n) for n in lab.nodes}
        if not args.no_baseline:
            _say("baseline: the distro's defaults (grace/lease 90 s, no pinned scope, nfsdcld's records per node)")
            install_files(lab, {n: vm_clients.baseline_files(f) for n, f in ours.items()}, active, standby)
            base_false, active, standby = crash_trials(lab, args, w, clients, active, standby, "baseline ", base)
            result["baseline_runs"] = base
            result["baseline_false_failovers"] = base_false
            for n, files in ours.items():  # the by-hand run below kills the daemons: files suffice
                write_files(lab, n, files)
        if not args.no_manual:
            _say(f"by hand: daemons killed, {active} powered off, {standby} runs the chain's commands")
            m = manual_takeover(lab, active, standby, w)
            result["manual"] = m
            result["manual_sum_s"] = m["sum_s"]
            result["ratio"] = round(result["median_s"] / m["sum_s"], 2) if m["sum_s"] else None
            result["target_ratio"] = 1.5
        result.update(vm_clients.figures([t["nfs"] for t in trials], [t["nfs"] for t in base], result.get("manual_sum_s")))
        vm_clients.stop(lab, clients)
    except Exception as e:  # noqa: BLE001 -- an hour of trials is worth keeping: the JSON says where it stopped
        result["error"] = f"{type(e).__name__}: {e}"[-4000:]
        result["runs_so_far"], result["baseline_runs_so_far"] = trials, base
        _say(f"stopped: {result['error'][-1000:]}")


def side_by_side(res: dict) -> list[str]:
    """hasync's figures and each peer's, one line each, lined up: crash -> the client's next
    acknowledged write (client1's, the v3 mount, for hasync: the peers' client)."""
    rows = [("hasync", "this run's [heartbeat]", res)] if res.get("peers") and "median_s" in res else []
    rows += [(p["tool"], p["setting"], p) for p in res.get("peers", [])]
    if not rows:
        return []
    out = [f"{'tool':10} {'setting':24} {'trials':>6} {'median s':>9} {'min-max s':>15} {'lost writes':>11}"]
    for tool, setting, r in rows:
        span = f"{r['min_s']}-{r['max_s']}"
        out.append(f"{tool:10} {setting:24} {r['trials']:>6} {r['median_s']:>9} {span:>15} {r['lost_writes']:>11}")
    return out


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.trials < (0 if args.peers else 1):
        print("--trials must be at least 1 (0 only with --peers)", file=sys.stderr)
        return 2
    if args.peers:
        try:
            tokens(args.tokens)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        if args.keep or args.peer_trials < 1:
            print("--peers: --peer-trials at least 1, and no --keep (one lab at a time)", file=sys.stderr)
            return 2
    res = run(args)
    text = json.dumps(res, indent=2, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json or "error" in res:
        print(text)
    if "error" in res:
        return 1
    out = sys.stderr if args.json else sys.stdout  # --json: stdout is the JSON alone
    for line in side_by_side(res):
        print(line, file=out)
    if not args.json and "median_s" in res:
        print(f"crash -> client I/O resumed: median {res['median_s']} s over {res['trials']} trials "
              f"(min {res['min_s']}, max {res['max_s']}); lost writes {res['lost_writes']}, "
              f"stale handles {res['stale_handles']}")
        if "manual_sum_s" in res:
            print(f"the same commands by hand: {res['manual_sum_s']} s (ratio {res['ratio']}, target <= 1.5)")
        for k, v in res["breakdown"].items():
            print(f"  {k:28} {v}")
        print(vm_clients.table(res))
    return 0
