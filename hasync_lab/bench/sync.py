"""``hasync lab bench sync [--json]``: hasync watch vs unison-only and lsyncd, side by side.

Everything runs on one namespace lab. Latency is measured from the host: the benchmark
writes a file into node1 through ``/proc/<pid>/root`` (a node's private /etc, the same
inode the node sees, so inotify fires there) and polls node2's copy the same way every
millisecond until its content is identical. No nsenter or ssh sits in the measurement.

Tools, one at a time, each on its own directory under /etc/hasync:
- hasync: ``hasync watch`` on both nodes, the lab's [sync] settings (debounce 100 ms);
- unison-watch: Debian's unison ships no ``unison-fsmonitor``, so ``-repeat watch``
  cannot run; the best unison-only loop is ``-repeat 1`` (re-scan every second over
  one ssh connection);
- lsyncd (rsync over ssh, ``default.rsyncssh``) with its default delay (15 s) and with
  ``delay = 0``.
Then a burst of 10,000 small files through hasync watch vs one plain unison run over
the same kind of files, and the watcher's CPU and RSS, idle and during the burst.

The burst figures (``burst`` in the JSON; medians over the rounds):
- ``hasync_s``: from the start of ``cp -r`` of 10,000 files into a watched directory on
  node1 until all of them are identical on node2 -- the writes themselves included;
- ``cp_s``: how long that ``cp -r`` took (until it exited);
- ``after_writes_s``: ``hasync_s - cp_s``, from the burst's last write to identical;
- ``unison_once_s``: one plain unison run (fresh ssh connection, fresh archives) over
  10,000 new small files already written, right after each round.
The target compares ``hasync_s`` with ``unison_once_s``. Nothing is deleted between
rounds (see bench_hasync: freed inodes make the next file creations slow on the lab's
ext4); hasync's archive grows by 10,000 entries a round, the plain runs' is fresh.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from hasync_lab.ns import Lab

TARGETS = {"p50_ms": 200, "p99_ms": 600, "burst_ratio": 2.0, "rss_mb": 80}
BASE = "/etc/hasync"
UDIR = "/var/lib/hasync/bench-unison"  # the unison-only runs' archives, on both nodes
UNISON_ONLY = (
    f"env UNISON={UDIR} unison / ssh://root@node2// -servercmd 'env UNISON={UDIR} unison' "
    "-batch -times -owner -group -numericids"
)


def _fresh_archives(lab) -> None:
    for n in ("node1", "node2"):
        lab.sh(n, f"rm -rf {UDIR} && mkdir -p {UDIR}", check=True)


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100 * (len(v) - 1)))))
    return v[k]


def summary(lat_s: list[float]) -> dict:
    ms = [x * 1000 for x in lat_s]
    return {
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(pct(ms, 99), 1) if ms else None,
        "samples": len(ms),
    }


class NodeFS:
    """A node's files seen from the host through /proc/<pid>/root."""

    def __init__(self, lab, node: str):
        self.lab, self.node = lab, node

    def p(self, path: str) -> str:
        return f"/proc/{self.lab.sshd_pid(self.node)}/root{path}"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def latency(lab, directory: str, samples: int, gap: float = 0.3, timeout: float = 30.0, log=print) -> list[float]:
    """Save `directory/f` on node1 *samples* times; seconds until node2 has it."""
    n1, n2 = NodeFS(lab, "node1"), NodeFS(lab, "node2")
    src, dst = n1.p(directory + "/f"), n2.p(directory + "/f")
    out = []
    for i in range(samples):
        data = f"change {i} {time.time_ns()}\n".encode()
        t0 = time.monotonic()
        # an editor's save: temp file + rename (a new inode: unison's own fastcheck,
        # which the unison-only loop uses, misses a same-size rewrite in place)
        with open(src + ".tmp", "wb") as f:
            f.write(data)
        os.rename(src + ".tmp", src)
        while True:
            now = time.monotonic()
            if _read(dst) == data:
                out.append(now - t0)
                break
            if now - t0 > timeout:
                log(f"  sample {i}: not on node2 after {timeout:.0f}s")
                break
            time.sleep(0.001)
        time.sleep(gap)
    return out


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_pct(pid: int, seconds: float) -> float:
    hz = os.sysconf("SC_CLK_TCK")
    a, t0 = _cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    b, t1 = _cpu_ticks(pid), time.monotonic()
    return 100.0 * (b - a) / hz / (t1 - t0)


def _wait(pred, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _fresh_dir(lab, path: str) -> None:
    for n in ("node1", "node2"):
        lab.sh(n, f"rm -rf {path} && mkdir -p {path}", check=True)


def _watchers_ready(lab, logs) -> bool:
    return all("watch: ready" in (open(lg).read() if os.path.exists(lg) else "") for lg in logs)


def bench_hasync(lab, samples, workdir, log, burst_rounds: int = 3, with_once: bool = True,
                 settle: float = 0.0):
    d = f"{BASE}/sync-test/bench"
    _fresh_dir(lab, d)
    logs = [f"{workdir}/watch-{n}.log" for n in ("node1", "node2")]
    for lg in logs:
        open(lg, "w").close()
    procs = [lab.spawn(n, ["hasync", "watch"], log=lg) for n, lg in zip(("node1", "node2"), logs, strict=True)]
    try:
        if not _wait(lambda: _watchers_ready(lab, logs), 60):
            raise RuntimeError("hasync watch did not start: " + open(logs[0]).read()[-800:])
        lat = latency(lab, d, samples, log=log)
        time.sleep(1)
        watcher_pid = procs[0].pid
        idle = cpu_pct(watcher_pid, 10.0)
        rss = _rss_mb(watcher_pid)
        # the burst: 10,000 files written on node1 at once, until all are on node2; each
        # round is followed at once by one plain unison run over the same kind of files
        # (the machine's load moves both figures: compare them side by side)
        files = 10000
        n1, n2 = NodeFS(lab, "node1"), NodeFS(lab, "node2")
        lab.sh("node1", f"rm -rf /tmp/hasync-burst-src; mkdir -p /tmp/hasync-burst-src/burst && cd /tmp/hasync-burst-src/burst "
               f"&& seq -f 'f%05g' 0 {files - 1} | while read n; do echo \"small file $n\" > $n; done", timeout=600, check=True)
        rounds = []
        peak = rss
        cpu = []
        if settle > 0:
            # the lab's own set-up (and whatever ran before the bench) just deleted files on
            # the host's ext4, which avoids reusing freed inodes for 60 s (360 s while their
            # inode table block is dirty): flush, then let that pass before the first round
            log(f"  burst: letting the disk settle for {settle:.0f} s first (see bench_hasync)")
            os.sync()
            time.sleep(settle)
        for r in range(burst_rounds):
            burst_dir = f"{BASE}/sync-test/burst{r}"
            a0 = _cpu_ticks(watcher_pid)
            t0 = time.monotonic()
            # cp -r: 10,000 creates and writes as fast as a shell command makes them
            lab.sh("node1", f"cp -r /tmp/hasync-burst-src/burst {burst_dir}", timeout=600, check=True)
            t_written = time.monotonic()  # cp has exited: the burst's last write is done

            def arrived(burst_dir=burst_dir):
                nonlocal peak
                peak = max(peak, _rss_mb(watcher_pid))
                # cheap first (a listdir of 10,000 entries every poll costs the node a core)
                if _read(n2.p(f"{burst_dir}/f{files - 1:05d}")) != f"small file f{files - 1:05d}\n".encode():
                    return False
                try:
                    return len(os.listdir(n2.p(burst_dir))) >= files
                except OSError:
                    return False

            ok = _wait(arrived, 300, 0.02)
            burst_s = time.monotonic() - t0
            cpu.append(100.0 * (_cpu_ticks(watcher_pid) - a0) / os.sysconf("SC_CLK_TCK") / burst_s)
            if not ok:
                log("  burst: not all files arrived within 300 s")
            bad = [i for i in range(0, files, 97) if _read(n1.p(f"{burst_dir}/f{i:05d}")) != _read(n2.p(f"{burst_dir}/f{i:05d}"))]
            if bad:
                log(f"  burst: {len(bad)} sampled files differ")
            time.sleep(2)  # let the watchers settle
            # Nothing is deleted until all rounds are done (each round and each plain run
            # writes a directory of its own; hasync's archive grows by 10,000 entries a
            # round, which only costs hasync): the lab's files live on the host's ext4,
            # which (without a journal) skips inodes freed in the last 60-360 s when it
            # allocates new ones -- after 10,000-20,000 deletions, creating files costs
            # several times more for minutes, and whichever run came next paid for it.
            once = unison_once_burst(lab, files, log, tag=str(r)) if with_once else None
            rounds.append({"hasync_s": round(burst_s, 2) if ok else None,
                           "cp_s": round(t_written - t0, 2),
                           "after_writes_s": round(burst_s - (t_written - t0), 2) if ok else None,
                           "unison_once_s": round(once, 2) if once else None})
            log(f"  burst round {r + 1}: {rounds[-1]}")
        lab.sh("node1", "rm -rf /tmp/hasync-burst-src")
        return lat, {"idle_cpu_pct": round(idle, 2), "rss_mb": round(rss, 1),
                     "burst_cpu_pct": round(statistics.median(cpu), 1), "burst_rss_mb": round(peak, 1)}, rounds, files
    finally:
        _stop(procs)
        for n in ("node1", "node2"):
            lab.sh(n, f"rm -rf {BASE}/sync-test/burst* {BASE}/sync-test/bench {BASE}/bench-once*", timeout=600)


def unison_once_burst(lab, files, log, tag: str = "") -> float:
    """One plain unison run (fresh ssh connection) over *files* new small files (left in
    place: the caller deletes them after the last round)."""
    d = f"{BASE}/bench-once{tag}"
    _fresh_dir(lab, d)
    lab.sh("node1", f"cd {d} && seq -f 'f%05g' 0 {files - 1} | while read n; do echo \"small file $n\" > $n; done",
           timeout=600, check=True)
    lab.sh("node2", f"rmdir {d}")
    _fresh_archives(lab)
    r = lab.sh("node1", f"/usr/bin/time -f %e {UNISON_ONLY} -silent -path {d.lstrip('/')} 2>&1 | tail -1", timeout=600)
    try:
        secs = float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"unison run failed: {r.stdout} {r.stderr}") from None
    have = len(os.listdir(NodeFS(lab, "node2").p(d)))
    if have != files:
        log(f"  unison once: {have}/{files} files arrived")
    return secs


def bench_unison_repeat(lab, samples, workdir, log):
    d = f"{BASE}/bench-unison"
    _fresh_dir(lab, d)
    lg = f"{workdir}/unison-repeat.log"
    _fresh_archives(lab)
    p = lab.spawn("node1", ["sh", "-c", f"exec {UNISON_ONLY} -repeat 1 -path {d.lstrip('/')}"], log=lg)
    try:
        time.sleep(3)
        return latency(lab, d, samples, log=log)
    finally:
        _stop([p])
        for n in ("node1", "node2"):
            lab.sh(n, f"rm -rf {d}")


LSYNCD_CONF = """settings {{ nodaemon = true, logfile = "{log}", statusFile = "{status}", insist = true }}
sync {{ default.rsyncssh, source = "{d}", host = "root@node2", targetdir = "{d}"{delay} }}
"""


def bench_lsyncd(lab, samples, workdir, delay, log):
    d = f"{BASE}/bench-lsyncd"
    _fresh_dir(lab, d)
    conf = f"{workdir}/lsyncd-{delay}.lua"
    with open(conf, "w") as f:
        f.write(LSYNCD_CONF.format(log=f"{workdir}/lsyncd-{delay}.log", status=f"{workdir}/lsyncd-{delay}.status",
                                   d=d, delay="" if delay is None else f", delay = {delay}"))
    p = lab.spawn("node1", ["lsyncd", conf], log=f"{workdir}/lsyncd-{delay}.out")
    try:
        time.sleep(3)
        return latency(lab, d, samples, gap=0.3, timeout=20, log=log)
    finally:
        _stop([p])
        for n in ("node1", "node2"):
            lab.sh(n, f"rm -rf {d}")


def run(lab, *, samples: int, lsyncd_default_samples: int, burst: bool, workdir: str, log,
        burst_rounds: int = 3, settle: float = 60.0) -> dict:
    res: dict = {}
    log(f"hasync watch: {samples} changes, then {burst_rounds} bursts...")
    lat, watcher, rounds, files = bench_hasync(lab, samples, workdir, log, burst_rounds, burst, settle)
    res["hasync"] = summary(lat)
    log(f"  {res['hasync']}")
    log(f"unison -repeat 1: {samples} changes...")
    res["unison-watch"] = dict(summary(bench_unison_repeat(lab, samples, workdir, log)),
                               mode="-repeat 1 (Debian's unison has no unison-fsmonitor: -repeat watch cannot run)")
    log(f"  {res['unison-watch']}")
    log(f"lsyncd, default delay: {lsyncd_default_samples} changes (~15 s each)...")
    res["lsyncd"] = summary(bench_lsyncd(lab, lsyncd_default_samples, workdir, None, log))
    log(f"  {res['lsyncd']}")
    log(f"lsyncd, delay = 0: {samples} changes...")
    res["lsyncd-delay0"] = summary(bench_lsyncd(lab, samples, workdir, 0, log))
    log(f"  {res['lsyncd-delay0']}")
    def med(key):
        vals = [r[key] for r in rounds if r[key] is not None]
        return round(statistics.median(vals), 2) if vals else None

    res["burst"] = {"files": files, "hasync_s": med("hasync_s"), "unison_once_s": med("unison_once_s"),
                    "cp_s": med("cp_s"), "after_writes_s": med("after_writes_s"), "rounds": rounds}
    log(f"  burst {res['burst']}")
    res["watcher"] = watcher
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hasync lab bench sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--name", default="bsync", help="lab name (default bsync; made and removed unless --keep)")
    ap.add_argument("--samples", type=int, default=50, help="changes per tool (default 50)")
    ap.add_argument("--lsyncd-default-samples", type=int, default=8,
                    help="changes for lsyncd with its 15 s default delay (default 8: ~2 minutes)")
    ap.add_argument("--no-burst", action="store_true", help="skip the plain unison runs over 10,000 files")
    ap.add_argument("--burst-rounds", type=int, default=3,
                    help="10,000-file bursts, each followed by one plain unison run (default 3; medians reported)")
    ap.add_argument("--settle", type=float, default=60.0, metavar="SECONDS",
                    help="pause before the first burst, after a sync, so that inodes freed just before "
                         "(the lab's set-up) no longer slow file creation on the host's ext4 (default 60)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    lab = Lab(args.name)
    made = not lab.exists()
    lab.up(clients=0)
    lab.reset()
    workdir = tempfile.mkdtemp(prefix="hasync-bench-sync-")
    try:
        res = run(lab, samples=args.samples, lsyncd_default_samples=args.lsyncd_default_samples,
                  burst=not args.no_burst, workdir=workdir, log=log, burst_rounds=max(1, args.burst_rounds),
                  settle=max(0.0, args.settle))
    finally:
        if made and not args.keep:
            lab.down()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for tool in ("hasync", "unison-watch", "lsyncd", "lsyncd-delay0"):
            r = res[tool]
            print(f"{tool:<14} p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  ({r['samples']} changes)")
        b, w = res["burst"], res["watcher"]
        print(f"burst of {b['files']} files (median of {len(b['rounds'])}): hasync {b['hasync_s']} s "
              f"(cp -r {b['cp_s']} s, then {b['after_writes_s']} s from its last write), "
              f"one plain unison run {b['unison_once_s']} s")
        print(f"watcher: idle CPU {w['idle_cpu_pct']} %, RSS {w['rss_mb']} MB "
              f"(burst: {w['burst_cpu_pct']} % CPU, {w['burst_rss_mb']} MB)")
        print(f"targets: p50 <= {TARGETS['p50_ms']} ms, p99 <= {TARGETS['p99_ms']} ms, "
              f"burst <= {TARGETS['burst_ratio']}x one unison run, RSS <= {TARGETS['rss_mb']} MB")
    return 0
