"""`hasync lab bench failover`: crash the active node, time until the VIP answers from node2.

For hasync, heartbeat 3 (haresources, IPaddr2) and keepalived (VRRP, unicast), side by
side in one namespace lab:

1. soak: every setting of a tool runs at once (one daemon pair per setting, each with
   its own VIP) for --soak seconds while two busy processes keep both cores loaded and
   node2 drops 1 % of the packets on its public link (nft `numgen random` in its
   namespace, both directions; this kernel has no netem). Each time a VIP appears on
   node2 is a false failover (`ip monitor address` in node2).
2. trials: for the default, for every setting faster than the fastest safe one, and
   for the fastest safe one: start the pair, wait for the VIP on node1, start the
   client probe (client1 connects to VIP:port in a tight loop; a listener on each node
   answers with its name), crash node1 (`Lab.crash`: processes stopped, links down,
   killed) and take the first answer from node2. The clock starts right before the
   crash call; the time includes the crash's own work (scanning /proc, `ip link`).
3. at rest: CPU (utime + stime of every process of the pair, from /proc/PID/stat: the
   kernel scales them to the exact run time, dead threads included) and RSS of each tool's pair at its fastest safe setting
   and at its defaults, and the floor: the bare heartbeat loop (2 links, HMAC, timer
   wake-ups only) at hasync's fastest keepalive, in CPython and in C (built with cc when
   present). The JSON's ``daemon`` is hasync on the active node at its fastest safe
   setting, with its defaults and the floor beside it; ``idle`` lists every measurement.

Prints progress on stderr; --json prints the figures as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shlex
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync.model import Heartbeat
from hasync_lab.bench import failover_floor as bf
from hasync_lab.bench import failover_peers as bp
from hasync_lab.bench import failover_settings as bs
from hasync_lab.ns import Lab

PROBE = str(Path(__file__).with_name("probe.py"))  # run by path, with the nodes' python3
PORT = 7070
LOSS_TABLE = "hasync_bench"
DEFAULT_LAB = "fbench"
HASYNC_RUN = ["hasync", "-c", "{config}", "failover", "run"]



def _stop_all(instances) -> None:
    for i in instances:
        i.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hasync lab bench failover",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--soak", type=float, default=120.0, metavar="SECONDS", help="soak length per tool (default 120)")
    p.add_argument("--trials", type=int, default=10, metavar="N", help="failovers per setting (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke run: one fast setting per tool, 2 trials, 5 s soak")
    p.add_argument("--tools", default=",".join(bs.TOOLS), help="comma-separated subset of hasync,heartbeat,keepalived")
    p.add_argument("--soak-mode", choices=("each", "together"), default="each",
                   help="each: soak one setting at a time, fastest first, until one shows no false "
                        "failover (the default setting rides along with the first); together: all of "
                        "a tool's settings in one soak (faster, but a flapping pair loads the others)")
    p.add_argument("--no-defaults", action="store_true", help="skip the tools' default settings")
    p.add_argument("--idle", type=float, default=20.0, metavar="SECONDS", help="window for the daemon's idle CPU (default 20)")
    p.add_argument("--idle-only", action="store_true",
                   help="measure only the daemons at rest: each of --tools at its fastest tried setting (no soak ran, "
                        "so not known to be safe) and its defaults, and the floor loops; hasync's fast setting "
                        "--idle-runs times (a fresh pair each); no soak, no trials")
    p.add_argument("--idle-runs", type=int, default=1, metavar="N", help="idle measurements (default 1; the JSON's daemon "
                   "figures and the floors are medians of the active node's, every run is in idle)")
    p.add_argument("--lab", default=None, metavar="NAME", help=f"lab to use; made (and removed after) if not up (default {DEFAULT_LAB})")
    p.add_argument("--workdir", default="/var/tmp/hasync-bench", help="daemon configs and logs (kept after the run)")
    p.add_argument("--markdown", metavar="JSON", help="print a saved run (the --json output) as a markdown table and exit")
    p.add_argument("--hasync-run", default=shlex.join(HASYNC_RUN), help="how a node starts the hasync daemon; {config} is replaced (default: %(default)s)")
    return p


# --------------------------------------------------------------------------- helpers


def _console():
    return Console(stderr=True, highlight=False, width=max(120, Console(stderr=True).width))


def vip_on(lab, node: str, vip: str) -> bool:
    r = subprocess.run(
        ["ip", "-n", lab.netns(node), "-o", "-4", "addr", "show"],
        capture_output=True, text=True,
    )
    return f" {vip}/" in r.stdout


def wait_for(pred, timeout: float, interval: float = 0.05, alive=()) -> bool:
    """Poll *pred* until true or *timeout*; give up early when a daemon in *alive* exited."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline or any(not i.alive() for i in alive):
            return False
        time.sleep(interval)


def flush_neighbours(lab) -> None:
    for n in tuple(lab.nodes) + tuple(lab.clients):
        subprocess.run(["ip", "-n", lab.netns(n), "neigh", "flush", "all"], capture_output=True)


def drop_vips(lab, vips) -> None:
    """Remove leftover bench VIPs from the nodes (a killed daemon leaves them)."""
    for n in lab.nodes:
        for v in vips:
            subprocess.run(
                ["ip", "-n", lab.netns(n), "addr", "del", f"{v}/{lab_prefix(lab)}", "dev", lab.public_if],
                capture_output=True,
            )


def lab_prefix(lab) -> int:
    return int(str(lab.vip_cidr).split("/")[1])


def net_for(lab, slot: int, vip: str) -> bp.Net:
    a, b = lab.nodes[0], lab.nodes[1]
    return bp.Net(
        nodes=(a, b),
        public_if=lab.public_if,
        heartbeat_if=lab.heartbeat_if,
        public={n: lab.public_addr(n) for n in (a, b)},
        heartbeat={n: lab.heartbeat_addr(n) for n in (a, b)},
        vip=vip,
        prefix=lab_prefix(lab),
        slot=slot,
    )


def soak_vip(lab, slot: int) -> str:
    base, last = lab.vip.rsplit(".", 1)
    return f"{base}.{int(last) + 1 + slot}"


class Bench:
    def __init__(self, lab, args, console):
        self.lab = lab
        self.args = args
        self.con = console
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.hasync_run = shlex.split(args.hasync_run)
        self.crash_s: list[float] = []
        self.soak_stalls: dict[str, dict] = {}

    # ---------------------------------------------------------------- pairs
    def start_pair(self, tool: str, setting: bs.Setting, net: bp.Net, base: Path) -> list[bp.Instance]:
        out: list[bp.Instance] = []
        try:
            for node in net.nodes:
                if tool == "hasync":
                    out.append(bp.start_hasync(self.lab, node, setting, net, base, run_argv=self.hasync_run))
                else:
                    out.append(bp.STARTERS[tool](self.lab, node, setting, net, base))
        except Exception:
            for i in out:
                i.stop()
            raise
        return out

    def acquire_timeout(self, setting: bs.Setting) -> float:
        # heartbeat's first acquisition takes 10-12 s; defaults wait for initdead too
        return max(40.0, 3 * setting.detect_s + 20.0)

    def heal(self) -> None:
        st = self.lab.status()
        if any(v.get("state") != "up" for v in st.get("nodes", {}).values()):
            self.lab.heal()

    # ---------------------------------------------------------------- soak
    def soak(self, tool: str, settings: list[bs.Setting]) -> dict[str, int]:
        """Run every setting of *tool* at once under load; false failovers per setting key."""
        lab = self.lab
        self.heal()
        flush_neighbours(lab)
        base = self.work / "soak" / tool
        nets = [net_for(lab, i, soak_vip(lab, i)) for i in range(len(settings))]
        drop_vips(lab, [n.vip for n in nets])
        result: dict[str, int] = {}
        with ExitStack() as stack:
            pairs = []
            for s, net in zip(settings, nets, strict=True):
                pair = self.start_pair(tool, s, net, base)
                stack.callback(_stop_all, pair)
                pairs.append((s, net, pair))
            stack.callback(lambda: drop_vips(lab, [n.vip for n in nets]))
            a, b = lab.nodes[0], lab.nodes[1]
            timeout = max(self.acquire_timeout(s) for s in settings)
            self.con.log(f"soak {tool}: {len(settings)} pairs started, waiting for the VIPs on {a}")
            missing = []
            for s, net, pair in pairs:
                if not wait_for(lambda v=net.vip: vip_on(lab, a, v), timeout, alive=pair):
                    missing.append(s.label + ":\n" + "\n".join(i.log_tail(6) for i in pair))
            if missing:
                raise RuntimeError(f"soak {tool}: VIP never came up on {a} for " + "\n".join(missing))
            time.sleep(2.0)  # let every backup hear its master
            already = [s.label for s, net, _ in pairs if vip_on(lab, b, net.vip)]
            mon = subprocess.Popen(
                ["ip", "-n", lab.netns(b), "-o", "monitor", "address"],
                stdout=subprocess.PIPE, text=True,
            )
            stack.callback(mon.kill)
            lines: list[str] = []
            assert mon.stdout is not None
            out = mon.stdout
            t = threading.Thread(target=lambda: lines.extend(iter(out.readline, "")), daemon=True)
            t.start()
            stack.enter_context(loss(lab, b, lab.public_if, 0.01))
            meter = stack.enter_context(stall_meter())
            stack.enter_context(busy_cpus(2))
            self.con.log(f"soak {tool}: {self.args.soak:g} s with 2 busy processes and 1 % loss on {b}:{lab.public_if}")
            time.sleep(self.args.soak)
            n_stalls, worst = meter.read()
            self.soak_stalls[tool] = {"over_50ms": n_stalls, "max_s": worst}
            if worst is not None:
                self.con.log(f"soak {tool}: a SCHED_FIFO probe on the host overslept {n_stalls} times > 50 ms, worst {worst * 1000:.0f} ms")
            mon.kill()
            t.join(timeout=2)
            end_state = {s.key: (vip_on(lab, a, net.vip), vip_on(lab, b, net.vip)) for s, net, _ in pairs}
            for s, net, pair in pairs:
                n = bs.count_vip_adds(lines, net.vip)
                on_a, on_b = end_state[s.key]
                if s.label in already or (on_b and n == 0):
                    n += 1
                if not on_a:
                    n = max(n, 1)  # the VIP left node1 during the soak: not a clean run either
                result[s.key] = n
                dead = [i.node for i in pair if not i.alive()]
                extra = f" (daemon exited on {', '.join(dead)})" if dead else ""
                self.con.log(f"  {s.label}: {n} false failover(s){extra}")
        return result

    # ---------------------------------------------------------------- trials
    def trial(self, tool: str, setting: bs.Setting, base: Path) -> tuple[float | None, str]:
        """One crash of node1; seconds until node2 answers on the VIP (None: never)."""
        lab = self.lab
        a, b = lab.nodes[0], lab.nodes[1]
        client = lab.clients[0]
        self.heal()
        net = net_for(lab, 0, lab.vip)
        drop_vips(lab, [net.vip])
        flush_neighbours(lab)
        with ExitStack() as stack:
            for n in (a, b):
                srv = lab.spawn(n, ["python3", PROBE, "serve", "--port", str(PORT), "--name", n], log=str(base / f"serve-{n}.log"))
                stack.callback(_kill, srv)
            pair = self.start_pair(tool, setting, net, base)
            stack.callback(_stop_all, pair)
            stack.callback(lambda: drop_vips(lab, [net.vip]))
            if not wait_for(lambda: vip_on(lab, a, net.vip), self.acquire_timeout(setting), alive=pair):
                return None, f"VIP never came up on {a}:\n" + "\n".join(i.log_tail(8) for i in pair)
            if vip_on(lab, b, net.vip):
                return None, f"VIP on both {a} and {b} before the crash"
            time.sleep(max(1.0, 4 * (setting.keepalive or setting.advert or 0.25)))
            probe = lab.spawn(
                client,
                ["python3", PROBE, "probe", "--vip", net.vip, "--port", str(PORT)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_kill, probe)
            events: queue.Queue = queue.Queue()

            def reader():
                for line in iter(probe.stdout.readline, b""):
                    events.put(line.decode(errors="replace").split())

            threading.Thread(target=reader, daemon=True).start()
            if not _wait_answer(events, a, 10.0):
                return None, f"client never got an answer from {a} before the crash"
            t0 = time.monotonic()
            lab.crash(a)
            self.crash_s.append(time.monotonic() - t0)
            limit = 3 * setting.detect_s + 30.0
            t = _wait_answer(events, b, limit)
            if t is None:
                return None, f"no answer from {b} within {limit:g} s:\n" + pair[1].log_tail(8)
            return t - t0, ""

    def trials(self, tool: str, setting: bs.Setting, n: int) -> tuple[list[float], int]:
        base = self.work / "trials" / f"{tool}-{_slug(setting.label)}"
        base.mkdir(parents=True, exist_ok=True)
        samples: list[float] = []
        failed = 0
        for i in range(n):
            try:
                dt, why = self.trial(tool, setting, base)
            except Exception as e:  # a daemon that would not start, a crash that failed ...
                dt, why = None, f"{type(e).__name__}: {e}"
            if dt is None:
                failed += 1
                self.con.log(f"  [red]trial {i + 1}/{n} failed[/red]: {escape(why)}")
                if failed >= 3 and not samples:
                    self.con.log("  three failures in a row: giving up on this setting")
                    break
            else:
                samples.append(dt)
                self.con.log(f"  trial {i + 1}/{n}: {dt:.3f} s")
        self.heal()
        return samples, failed

    # ---------------------------------------------------------------- daemon footprint
    def daemon_footprint(self, setting: bs.Setting, window: float, tool: str = "hasync") -> dict:
        """CPU (% of one core, utime + stime from /proc/PID/stat) and RSS of *tool*'s
        pair at rest, per node, over *window* seconds after the VIP came up on node1."""
        lab = self.lab
        self.heal()
        net = net_for(lab, 0, lab.vip)
        drop_vips(lab, [net.vip])
        base = self.work / "idle" / tool
        pair = self.start_pair(tool, setting, net, base)
        try:
            if not wait_for(lambda: vip_on(lab, net.nodes[0], net.vip), self.acquire_timeout(setting)):
                raise RuntimeError(f"{tool}: VIP never came up for the idle measurement")
            time.sleep(3.0)
            hz = os.sysconf("SC_CLK_TCK")
            per_node = {}
            for inst in pair:
                pids = [p for p in inst.pids() if bp._alive(p)]
                per_node[inst.node] = (pids, time.monotonic(), _ticks(pids))
            time.sleep(window)
            out = {}
            for inst in pair:
                pids, t0, ticks0 = per_node[inst.node]
                wall = time.monotonic() - t0
                cpu = bs.cpu_pct(ticks0, _ticks(pids), wall, hz)
                rss = sum(_rss_kb(p) for p in pids) / 1024
                out[inst.node] = {"idle_cpu_pct": round(cpu, 2), "rss_mb": round(rss, 1), "processes": len(pids)}
            return out
        finally:
            for i in pair:
                i.stop()
            drop_vips(lab, [net.vip])

    def floor_footprint(self, argv_for, window: float) -> dict:
        """CPU of the bare heartbeat loop (failover_floor) on node1 while node2 runs the same:
        argv_for(pairs) gives the command for a node's (local, peer) address pairs."""
        lab = self.lab
        self.heal()
        a, b = lab.nodes[0], lab.nodes[1]
        pairs = {
            a: [(lab.heartbeat_addr(a), lab.heartbeat_addr(b)), (lab.public_addr(a), lab.public_addr(b))],
            b: [(lab.heartbeat_addr(b), lab.heartbeat_addr(a)), (lab.public_addr(b), lab.public_addr(a))],
        }
        procs = []
        try:
            for n in (a, b):
                procs.append(subprocess.Popen(["ip", "netns", "exec", lab.netns(n), *argv_for(pairs[n])],
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            time.sleep(2.0)
            for p in procs:
                if p.poll() is not None:
                    err = p.stderr.read() if p.stderr else b""
                    raise RuntimeError(f"floor loop exited {p.returncode}: {err.decode(errors='replace')[-300:]}")
            pid = procs[0].pid  # `ip netns exec` execs the command: same pid
            t0, ticks0 = time.monotonic(), _ticks([pid])
            time.sleep(window)
            ticks1, wall = _ticks([pid]), time.monotonic() - t0
            cpu = bs.cpu_pct(ticks0, ticks1, wall, os.sysconf("SC_CLK_TCK"))
            return {"idle_cpu_pct": round(cpu, 2), "rss_mb": round(_rss_kb(pid) / 1024, 1)}
        finally:
            for p in procs:
                _kill(p)


def _median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else round((v[m - 1] + v[m]) / 2, 2)


def _ticks(pids) -> int:
    """utime + stime of *pids* in clock ticks. The kernel scales the pair to the process's
    exact run time (sum_exec_runtime, every thread, dead ones included): checked against
    the threads' schedstat on the floor loop, 1.46/1.50, 1.23/1.25 and 1.95/1.95 %."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                total += bs.parse_stat_ticks(f.read())
        except OSError:
            pass
    return total


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return bs.parse_rss_kb(f.read())
    except (OSError, ValueError):
        return 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60]


def _kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, 9)
        except (ProcessLookupError, PermissionError):
            p.kill()
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def _wait_answer(events: queue.Queue, node: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            ev = events.get(timeout=left)
        except queue.Empty:
            return None
        if len(ev) == 3 and ev[0] == "ANSWER" and ev[2] == node:
            return float(ev[1])


class loss:
    """1 % (or *p*) random drop on one interface of a node, both directions (nft)."""

    def __init__(self, lab, node: str, iface: str, p: float):
        self.ns, self.iface, self.p = lab.netns(node), iface, p

    def __enter__(self):
        rules = bs.loss_rules(LOSS_TABLE, self.iface, self.p)
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "exec", self.ns, "nft", "delete", "table", "inet", LOSS_TABLE], capture_output=True)


class stall_meter:
    """The stall probe (probe.py stalls) under SCHED_FIFO 50 on the host."""

    def __enter__(self):
        self.p = subprocess.Popen(
            ["chrt", "-f", "50", "python3", PROBE, "stalls"], stdout=subprocess.PIPE, text=True
        )
        return self

    def read(self) -> tuple[int | None, float | None]:
        if self.p.poll() is not None:
            return None, None
        self.p.terminate()
        try:
            out, _ = self.p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None, None
        parts = out.split()
        if len(parts) == 3 and parts[0] == "STALLS":
            return int(parts[1]), float(parts[2])
        return None, None

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class busy_cpus:
    """*n* processes spinning on the CPU for the duration of the block."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------- main


def open_lab(name: str | None, console):
    lab = Lab(name or DEFAULT_LAB)
    made = False
    if not lab.exists():
        console.log(f"lab {lab.name!r}: bringing it up")
        lab.up()
        made = True
    else:
        lab.reset()
    return lab, made



def run_tool(bench: Bench, tool: str, args, hb, rows: dict, console) -> bs.Setting | None:
    """Soak then trials for one tool; appends its rows; returns its fastest safe setting."""
    ordered = list(bs.quick_candidates(tool) if args.quick else bs.candidates(tool))
    default = bs.default_setting(tool, (hb.keepalive, hb.deadtime))
    with_default = not (args.quick or args.no_defaults)
    console.rule(f"{tool}")
    if args.soak_mode == "together":
        soaked = bench.soak(tool, ([default] if with_default else []) + ordered)
    else:
        soaked = {}
        for i, s in enumerate(ordered):
            soaked.update(bench.soak(tool, ([default] if with_default and i == 0 else []) + [s]))
            if soaked[s.key] == 0:
                break
    plan = bs.trial_plan(default, ordered, soaked)
    if not with_default:
        plan = plan[1:]
    safe = bs.fastest_safe(soaked, ordered)
    if safe is None:
        console.log(f"[yellow]{tool}: no tried setting survived the soak[/yellow]")
    rows[tool] = []
    for setting, role in plan:
        console.log(escape(f"{tool} [{role}] {setting.label}: {args.trials} trials"))
        samples, failed = bench.trials(tool, setting, args.trials)
        rows[tool].append(bs.Figures(setting, tuple(samples), soaked.get(setting.key), failed, role))
    return safe


def measure_idle(bench: Bench, args, tools: list[str], safe: dict, meta: dict, console) -> dict:
    """Every daemon at rest: each tool at its default and at its fastest safe setting
    (with --idle-only, at its fastest tried one: no soak ran), and the floor (the bare
    heartbeat loop, CPython and C) at hasync's keepalive. The hasync figure at the fast
    setting and the floors are medians of --idle-runs measurements (the JSON's ``daemon``)."""
    idle_tools = [t.strip() for t in (args.tools.split(",") if args.idle_only else tools) if t.strip()]
    if args.quick:
        idle_tools = [t for t in idle_tools if t == "hasync"]  # the smoke run: hasync's fast setting only
    rows: list[dict] = []
    daemon: dict = {}
    lab = bench.lab

    def one(tool: str, setting: bs.Setting, role: str, runs: int = 1) -> dict | None:
        got = []
        for i in range(max(1, runs)):
            console.log(f"{tool} at rest ({setting.label}): {args.idle:g} s" + (f", run {i + 1}" if runs > 1 else ""))
            try:
                fp = bench.daemon_footprint(setting, args.idle, tool=tool)
            except Exception as e:
                console.log(f"[red]{tool} at rest: {escape(str(e))}[/red]")
                meta.setdefault("errors", {})[f"idle {tool} {setting.label}"] = str(e)[-2000:]
                continue
            got.append(fp)
            rows.append({"tool": tool, "setting": setting.label, "role": role, "run": i + 1,
                         "loadavg": round(os.getloadavg()[0], 2), **fp})
        if not got:
            return None
        active = [g.get(lab.nodes[0], {}) for g in got]
        return {"idle_cpu_pct": _median([a.get("idle_cpu_pct") for a in active]),
                "rss_mb": _median([a.get("rss_mb") for a in active])}

    hb = Heartbeat()
    fast_hasync = None
    for tool in idle_tools:
        fast = bs.candidates(tool)[0] if args.idle_only else safe.get(tool)
        if tool == "hasync":
            fast = fast or bs.candidates("hasync")[-1]
            fast_hasync = fast
            d = one(tool, fast, "fastest safe" if not args.idle_only else "fastest tried", args.idle_runs)
            if d:
                daemon.update(d, setting=fast.label)
        elif fast is not None:
            one(tool, fast, "fastest safe" if not args.idle_only else "fastest tried")
        if args.quick:
            continue  # the smoke run: no defaults, no floor
        default = bs.default_setting(tool, (hb.keepalive, hb.deadtime) if tool == "hasync" else None)
        d = one(tool, default, "default")
        if tool == "hasync" and d:
            daemon.update(defaults_idle_cpu_pct=d["idle_cpu_pct"], defaults_setting=default.label)
    if fast_hasync is not None and not args.quick:
        period = fast_hasync.keepalive
        floors = [("python", lambda pairs: bf.argv_python(period, pairs))]
        binary, why = bf.build_c(bench.work / "floor")
        if binary is not None:
            floors.append(("c", lambda pairs: bf.argv_c(binary, period, pairs)))
        else:
            console.log(f"[yellow]floor in C skipped: {escape(why)}[/yellow]")
            meta["floor_c_skipped"] = why
        for kind, argv_for in floors:
            got = []
            for i in range(max(1, args.idle_runs)):
                console.log(f"floor ({kind}: the bare heartbeat loop every {period * 1000:g} ms, 2 links): {args.idle:g} s"
                            + (f", run {i + 1}" if args.idle_runs > 1 else ""))
                try:
                    fp = bench.floor_footprint(argv_for, args.idle)
                except Exception as e:
                    console.log(f"[red]floor {kind}: {escape(str(e))}[/red]")
                    meta.setdefault("errors", {})[f"floor {kind}"] = str(e)[-2000:]
                    continue
                got.append(fp["idle_cpu_pct"])
                rows.append({"tool": f"floor-{kind}", "setting": f"keepalive {period * 1000:g}ms", "role": "floor", "run": i + 1,
                             "loadavg": round(os.getloadavg()[0], 2), lab.nodes[0]: fp})
            if got:
                daemon[f"floor_{kind}_pct"] = _median(got)
    return {"daemon": daemon, "rows": rows}


def run(args, console) -> dict:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in bs.TOOLS:
            raise SystemExit(f"unknown tool {t!r} (known: {', '.join(bs.TOOLS)})")
    if args.quick:
        args.trials, args.soak, args.idle = min(args.trials, 2), min(args.soak, 5.0), min(args.idle, 3.0)
    hb = Heartbeat()
    if args.idle_only:
        tools = []
    lab, made = open_lab(args.lab, console)
    rows: dict[str, list[bs.Figures]] = {}
    daemon: dict = {}
    idle_rows: list[dict] = []
    safe: dict[str, bs.Setting | None] = {}
    meta: dict = {
        "command": "hasync lab bench failover " + " ".join(args.argv),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "soak_s": args.soak,
        "trials": args.trials,
    }
    bench = Bench(lab, args, console)
    try:
        for tool in tools:
            try:
                safe[tool] = run_tool(bench, tool, args, hb, rows, console)
            except Exception as e:  # one tool's trouble must not lose the others' figures
                console.log(f"[red]{tool}: {escape(str(e))}[/red]")
                meta.setdefault("errors", {})[tool] = str(e)[-2000:]
            finally:
                # keep what was measured so far, whatever happens to the rest of the run
                partial = bs.report(rows, daemon, meta)
                (bench.work / "partial.json").write_text(json.dumps(partial, indent=2, default=str))
        idle = measure_idle(bench, args, tools, safe, meta, console)
        daemon = idle.pop("daemon")
        idle_rows = idle.pop("rows")
    finally:
        meta["loadavg_end"] = os.getloadavg()
        meta["crash_call_s"] = bs.summarize(bench.crash_s)
        meta["soak_stalls"] = bench.soak_stalls
        if made:
            console.log(f"lab {lab.name!r}: taking it down")
            lab.down()
        else:
            lab.reset()
    return bs.report(rows, daemon, meta, idle_rows)


def table(doc: dict):
    t = Table(title="failover: crash of node1 -> VIP answers from node2", title_justify="left")
    for col in ("tool", "setting", "role", "median s", "min s", "max s", "trials", "false failovers"):
        t.add_column(col)
    for tool in bs.TOOLS:
        for r in doc.get(tool, []):
            f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            t.add_row(tool, r["setting"], r["role"], f(r["median_s"]), f(r["min_s"]), f(r["max_s"]),
                      f"{r['trials']}" + (f" (+{r['failed_trials']} failed)" if r["failed_trials"] else ""),
                      "-" if r["false_failovers"] is None else str(r["false_failovers"]))
    d = doc["daemon"]
    t.caption = f"hasync daemon at rest: {d['idle_cpu_pct']} % CPU, {d['rss_mb']} MB RSS" + (f" ({d['setting']})" if d.get("setting") else "")
    return t


def idle_table(doc: dict):
    t = Table(title="at rest: CPU (% of one core) and RSS of each daemon pair", title_justify="left")
    for col in ("tool", "setting", "role", "node1 CPU %", "node2 CPU %", "node1 RSS MB"):
        t.add_column(col)
    for r in idle_lines(doc):
        t.add_row(*r)
    return t


def idle_lines(doc: dict) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in doc.get("idle", []):
        nodes = [k for k in r if isinstance(r[k], dict)]
        n1 = r[nodes[0]] if nodes else {}
        n2 = r[nodes[1]] if len(nodes) > 1 else {}
        out.append((r["tool"], r["setting"], r["role"], str(n1.get("idle_cpu_pct", "-")), str(n2.get("idle_cpu_pct", "-")),
                    str(n1.get("rss_mb", "-"))))
    return out


def markdown(doc: dict) -> str:
    """The figures as a markdown table (for docs/benchmarks.md)."""
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    out = [
        "| tool | setting | role | median s | min s | max s | trials | false failovers |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for tool in bs.TOOLS:
        for r in doc.get(tool, []):
            trials = f"{r['trials']}" + (f" (+{r['failed_trials']} failed)" if r.get("failed_trials") else "")
            ff = "–" if r["false_failovers"] is None else str(r["false_failovers"])
            out.append(f"| {tool} | {r['setting']} | {r.get('role', '')} | {f(r['median_s'])} | {f(r['min_s'])} | {f(r['max_s'])} | {trials} | {ff} |")
    d = doc.get("daemon", {})
    out.append("")
    out.append(f"hasync daemon at rest: {d.get('idle_cpu_pct')} % of one core, {d.get('rss_mb')} MB RSS"
               + (f" ({d['setting']})." if d.get("setting") else "."))
    lines = idle_lines(doc)
    if lines:
        out += ["", "| at rest | setting | role | node1 CPU % | node2 CPU % | node1 RSS MB |", "|---|---|---|---:|---:|---:|"]
        out += ["| " + " | ".join(r) + " |" for r in lines]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.markdown:
        with open(args.markdown) as fh:
            print(markdown(json.load(fh)), end="")
        return 0
    console = _console()
    if os.geteuid() != 0:
        console.print("[red]error[/red]: the failover bench needs root (namespaces, nft)")
        return 2
    doc = run(args, console)
    console.print(table(doc))
    if doc.get("idle"):
        console.print(idle_table(doc))
    if args.json:
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
