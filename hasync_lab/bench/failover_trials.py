"""The failover bench's runs on one lab (class Bench): the soak of a tool's settings
under load, the crash trials, and the footprint at rest of a daemon pair and of the
bare heartbeat loop. failover.py decides what to run and reports it.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from rich.markup import escape

from hasync_lab.bench import failover_peers as bp
from hasync_lab.bench import failover_settings as bs
from hasync_lab.bench.failover_lab import (
    PORT,
    PROBE,
    busy_cpus,
    cpu_ticks,
    drop_vips,
    flush_neighbours,
    kill_group,
    loss,
    net_for,
    rss_kb,
    slug,
    soak_vip,
    stall_meter,
    vip_on,
    wait_answer,
    wait_for,
)
from hasync_lab.ns import procs


def _stop_all(instances) -> None:
    for i in instances:
        i.stop()


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
        self.soak_daemons: dict[str, dict] = {}  # setting key -> node -> the daemon's own stall figures

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
            if tool == "hasync":
                self.read_daemon_stalls(pairs)
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

    def read_daemon_stalls(self, pairs) -> None:
        """At the end of a soak: each hasync daemon's worst wake-up lateness and stall count
        (its status) and the longest late-heartbeat gap it logged: how close the soak came
        to deadtime, beside the host-wide SCHED_FIFO probe."""
        for s, _net, pair in pairs:
            per_node = {}
            for inst in pair:
                try:
                    fig = bs.daemon_stalls(bp.hasync_status(inst))
                except Exception as e:  # a daemon that exited: its log still says why
                    fig = {"error": f"{type(e).__name__}: {e}"[:300]}
                log = inst.dir / "out.log"
                n, worst = bs.late_gaps(log.read_text(errors="replace")) if log.exists() else (0, None)
                fig.update(late_warnings_logged=n, worst_late_gap_ms=worst)
                per_node[inst.node] = fig
                self.con.log(escape(f"  {s.label} {inst.node}: {fig}"))
            self.soak_daemons[s.key] = per_node

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
                stack.callback(kill_group, srv)
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
            stack.callback(kill_group, probe)
            events: queue.Queue = queue.Queue()

            def reader():
                for line in iter(probe.stdout.readline, b""):
                    events.put(line.decode(errors="replace").split())

            threading.Thread(target=reader, daemon=True).start()
            if not wait_answer(events, a, 10.0):
                return None, f"client never got an answer from {a} before the crash"
            t0 = time.monotonic()
            lab.crash(a)
            self.crash_s.append(time.monotonic() - t0)
            limit = 3 * setting.detect_s + 30.0
            t = wait_answer(events, b, limit)
            if t is None:
                return None, f"no answer from {b} within {limit:g} s:\n" + pair[1].log_tail(8)
            return t - t0, ""

    def trials(self, tool: str, setting: bs.Setting, n: int) -> tuple[list[float], int]:
        base = self.work / "trials" / f"{tool}-{slug(setting.label)}"
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
                pids = [p for p in inst.pids() if procs.alive(p)]
                per_node[inst.node] = (pids, time.monotonic(), cpu_ticks(pids))
            time.sleep(window)
            out = {}
            for inst in pair:
                pids, t0, ticks0 = per_node[inst.node]
                wall = time.monotonic() - t0
                cpu = bs.cpu_pct(ticks0, cpu_ticks(pids), wall, hz)
                rss = sum(rss_kb(p) for p in pids) / 1024
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
        loops = []
        try:
            for n in (a, b):
                loops.append(subprocess.Popen(["ip", "netns", "exec", lab.netns(n), *argv_for(pairs[n])],
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            time.sleep(2.0)
            for p in loops:
                if p.poll() is not None:
                    err = p.stderr.read() if p.stderr else b""
                    raise RuntimeError(f"floor loop exited {p.returncode}: {err.decode(errors='replace')[-300:]}")
            pid = loops[0].pid  # `ip netns exec` execs the command: same pid
            t0, ticks0 = time.monotonic(), cpu_ticks([pid])
            time.sleep(window)
            ticks1, wall = cpu_ticks([pid]), time.monotonic() - t0
            cpu = bs.cpu_pct(ticks0, ticks1, wall, os.sysconf("SC_CLK_TCK"))
            return {"idle_cpu_pct": round(cpu, 2), "rss_mb": round(rss_kb(pid) / 1024, 1)}
        finally:
            for p in loops:
                kill_group(p)
