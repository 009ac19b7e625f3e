"""A fault's steps on the live lab, and the heal.

Steps run at their offsets from the fault's start; the slow ones (a clean daemon stop,
waiting for a daemon to restart before a replay, noise on the line) run in threads so
the schedule keeps time. The heal undoes everything a fault can leave behind, whatever
subset of its steps ran: impairments, flags, frozen daemons, clock offsets, ENOSPC, a
drifted config, powered-off nodes, pulled cables, stopped units.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

from hasync_lab.campaign.live import StepPlayer
from hasync_lab.campaign.ns import syncside
from hasync_lab.campaign.ns.prep import CLOCK_FILE, FLAGS, piece_script
from hasync_lab.campaign.ns.wire import Impair

PING_TABLE = "hasync_campaign_ping"
LINKS = ("heartbeat", "public", "serial")


class Injector(StepPlayer):
    def __init__(self, run):
        self.run = run
        self.lab = run.lab
        self.sv = run.services
        self.threads: list[threading.Thread] = []
        self.stop_ev = threading.Event()
        self.ping_lost: set[str] = set()
        self.clock: dict[str, float] = {}
        self.enospc: set[str] = set()
        self.drifted: dict[str, str] = {}
        self.boot_pieces: dict[str, tuple[list[str], bool]] = {}
        self.stopped: set[tuple[str, str]] = set()
        self.notes: list[str] = []
        self.sv.pre_start = self.pre_start

    # ------------------------------------------------------------------ running a fault
    def resolve(self, target: str) -> tuple[str, str]:
        """(A, B): A is the node the fault is aimed at, from ground truth."""
        n1, n2 = self.run.nodes
        snap = self.run.sampler.snapshot()
        act = next((n for n in (n1, n2) if snap.get(n, {}).get("vip") and snap[n].get("fs")), None)
        act = act or next((n for n in (n1, n2) if snap.get(n, {}).get("role") == "active"), n1)
        stb = n2 if act == n1 else n1
        a = {"active": act, "standby": stb}.get(target, target if target in (n1, n2) else act)
        return a, (n2 if a == n1 else n1)

    def _path(self, node: str, p: str) -> str | None:
        """A node's file from the host: through a process inside it, or (node down) its
        copy-on-write layer on the host, where /etc lives while the node is off."""
        hp = self.run.views[node].path(p)
        if hp is not None:
            return hp
        if p.startswith("/etc/"):
            return str(self.lab.store.node_dir(node) / "etc.upper" / p[len("/etc/"):])
        return None

    # ------------------------------------------------------------------ power, daemons
    def op_power_off(self, r, **kw) -> None:
        node = r[kw["who"]]
        if not self.sv.crashed(node):
            self.sv.power_off(node)

    def op_power_on(self, r, **kw) -> None:
        self.sv.power_on(r[kw["who"]])

    def op_kill(self, r, **kw) -> None:
        node = r[kw["who"]]
        pid = self.sv.signal(node, "failover", signal.SIGKILL)
        self.run.trace(node, "fault", f"SIGKILL failover (pid {pid})")

    def op_freeze(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.run.trace(node, "fault", f"SIGSTOP failover (pid {self.sv.signal(node, 'failover', signal.SIGSTOP)})")

    def op_thaw(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.run.trace(node, "fault", f"SIGCONT failover (pid {self.sv.signal(node, 'failover', signal.SIGCONT)})")

    def op_stop_unit(self, r, **kw) -> None:
        node, unit, then = r[kw["who"]], kw["unit"], kw["then"]
        self.stopped.add((node, unit))
        if kw.get("sig") == "KILL":  # the daemon dies for good; its resources keep running
            self.sv.wanted[(node, unit)] = False
            self.run.trace(node, "fault", f"SIGKILL {unit}, not restarted (pid {self.sv.signal(node, unit, signal.SIGKILL)})")
            return

        def go():
            code = self.sv.stop(node, unit)
            self.run.trace(node, "fault", f"{unit} stopped cleanly (exit {code}); then {then}")
            if then == "restart":
                self.stopped.discard((node, unit))
                self.sv.start(node, unit)
            elif then == "poweroff":
                self.op_power_off({"X": node}, who="X")
        self._bg(go)

    def op_restart(self, r, **kw) -> None:
        node = r[kw["who"]]
        if kw["how"] == "kill":
            self.op_kill(r, who=kw["who"])  # systemd starts it again after RestartSec
            return

        def go():
            self.sv.stop(node, "failover")
            self.sv.start(node, "failover")
        self._bg(go)

    def op_command(self, r, **kw) -> None:
        node = r[kw["who"]]
        argv = self.command_argv(r, node, kw["cmd"], self.run.owners)
        if self.sv.crashed(node):
            return
        with self.run.lab_lock:
            self.lab.spawn(node, argv, log=self.run.logdir / "commands.log")
        self.run.trace(node, "operator", " ".join(argv))

    # ------------------------------------------------------------------ links
    def op_cut(self, r, **kw) -> None:
        node = r[kw["who"]]
        links = LINKS if kw["links"] == "all" else kw["links"]
        with self.run.lab_lock:
            for lk in links:
                self.lab.cut(node, lk)
        self.run.trace(node, "fault", f"cables pulled: {', '.join(links)}")

    def op_oneway(self, r, **kw) -> None:
        src = r[kw["src"]]
        dst = r["B"] if src == r["A"] else r["A"]
        links = LINKS if kw["links"] == "all" else kw["links"]
        self.run.wire.set_rule(src, dst, links, Impair(cut=True))
        if "serial" in links:
            self.lab.cable.set_oneway(src, True)
        self.run.trace(src, "fault", f"one way: nothing from {src} to {dst} on {', '.join(links)}")

    def op_degrade(self, r, **kw) -> None:
        rule = Impair(loss=kw["loss"], delay=kw["delay"], jitter=kw["jitter"], dup=kw["dup"])
        pairs = [(r["A"], r["B"])] if kw["src"] else [(r["A"], r["B"]), (r["B"], r["A"])]
        for s, d in pairs:
            self.run.wire.set_rule(s, d, kw["links"], rule)
        self.run.trace(r["A"], "fault", f"degraded {pairs} on {kw['links']}: {rule}")

    def op_noise(self, r, **kw) -> None:
        a, b = r["A"], r["B"]
        pty = self.lab.serial_pty(b)  # what b's end "sends" arrives at a's /dev/ttyS1
        rng = random.Random(f"noise:{self.run.seed}:{self.run.fault_index}")

        def go():
            fd = os.open(pty, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
            sent = 0
            try:
                while not self.stop_ev.is_set():
                    chunk = bytearray(rng.randbytes(max(1, kw["rate"] // 50)))
                    if kw["magic"] and rng.random() < 0.3:  # a frame's start, then garbage
                        chunk[0:3] = b"\xa5HS"
                    try:
                        sent += os.write(fd, bytes(chunk))
                    except (BlockingIOError, OSError):
                        pass
                    time.sleep(0.02)
            finally:
                os.close(fd)
                self.run.trace(a, "fault", f"serial noise toward {a}: {sent} bytes")
        self._bg(go)

    # ------------------------------------------------------------------ replays
    def op_replay(self, r, **kw) -> None:
        a, b = r[kw["into"]], r["B"] if kw["into"] == "A" else r["A"]
        sent = self.run.wire.replay(b, a, kw["prefer"], kw["k"])
        self.run.trace(a, "fault", f"replayed {len(sent)} captured packet(s) of {b}: {sent}")

    def op_replay_on_start(self, r, **kw) -> None:
        a = r[kw["into"]]
        old = self.sv.pid(a)

        def go():
            end = time.monotonic() + 15
            while time.monotonic() < end and not self.stop_ev.is_set():
                pid = self.sv.pid(a)
                role = self.run.views[a].path("/run/hasync/role")
                if pid and pid != old and role and os.path.exists(role) and os.stat(role).st_mtime > time.time() - 1:
                    self.op_replay(r, into=kw["into"], k=kw["k"], prefer=kw["prefer"])
                    return
                time.sleep(0.005)
            self.run.trace(a, "fault", "replay: the restarted daemon never came up")
        self._bg(go)

    # ------------------------------------------------------------------ fencing, ping, agents
    def op_fence_mode(self, r, **kw) -> None:
        node, mode = r[kw["who"]], kw["mode"]
        self._write(node, f"{FLAGS}/fence", f"slow {kw['slow_s']}" if mode == "slow" else mode)
        self.run.trace(node, "fault", f"fence command: {mode}")

    def op_ping(self, r, **kw) -> None:
        node = r[kw["who"]]
        ping = self.lab.public_addr(self.lab.clients[0])
        rules = (f"table inet {PING_TABLE} {{\n chain o {{\n  type filter hook output priority 0;\n  ip daddr {ping} drop\n }}\n"
                 f" chain i {{\n  type filter hook input priority 0;\n  ip saddr {ping} drop\n }}\n}}\n")
        self.lab._run(("ip", "netns", "exec", self.lab.netns(node), "nft", "-f", "-"), input=rules, check=True)
        self.ping_lost.add(node)
        self.run.trace(node, "fault", f"ping node {ping} unreachable from {node}")

    def op_flag(self, r, **kw) -> None:
        node = r[kw["who"]]
        self._write(node, f"{FLAGS}/{kw['rid']}.{kw['op']}.{kw['mode']}", "")
        self.run.trace(node, "fault", f"{kw['rid']} {kw['op']}: {kw['mode']}")

    def op_crash_resource(self, r, **kw) -> None:
        node, rid = r[kw["who"]], kw["rid"]
        script = ("kill $(cat /run/hasync-demo.8080.pid)" if rid == "demo"
                  else f"ip addr del {self.lab.vip_cidr} dev {self.lab.public_if}")
        r = self.lab.sh(node, script)
        self.run.trace(node, "fault", f"{rid} killed behind hasync's back (exit {r.exit_code})")

    def op_boot_enable(self, r, **kw) -> None:
        self.boot_pieces[r[kw["who"]]] = (list(kw["rids"]), kw["late"])

    def pre_start(self, node: str) -> None:
        """Services.boot's hook: pieces enabled at boot start before the daemon (or, late,
        just after its start-up probe)."""
        rids, late = self.boot_pieces.pop(node, ([], False))
        if not rids:
            return

        def start():
            for rid in rids:
                self.lab.sh(node, piece_script("start", rid, self.lab))
                self.run.strays.append((node, rid, time.monotonic(), late))
            self.run.trace(node, "fault", f"started at boot behind hasync's back: {', '.join(rids)}" + (" (late)" if late else ""))

        if not late:
            start()
            return

        def later():
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6:
                role = self.run.views[node].read().get("role")
                if role not in ("none", "down", "probing") and time.monotonic() - t0 > 0.3:
                    break
                time.sleep(0.02)
            time.sleep(random.uniform(0.1, 0.5))
            start()
        self._bg(later)

    def op_drift(self, r, **kw) -> None:
        node = r[kw["who"]]
        path = self._path(node, "/etc/hasync/cluster.toml")
        if path is None:
            raise RuntimeError(f"{node}: no way to its cluster.toml")
        text = open(path).read()
        self.drifted[node] = text
        n1, n2 = self.run.nodes
        cur = f'preferred_node = "{n1}"' if f'preferred_node = "{n1}"' in text else f'preferred_node = "{n2}"'
        want = f'preferred_node = "{n2 if n1 in cur else n1}"'
        open(path, "w").write(text.replace(cur, want))
        self.sv.config[node] = text.replace(cur, want)  # and so it boots, should it reboot
        self.run.trace(node, "fault", f"config drift: {want} on {node} only; daemon restarted")
        self.op_restart({"X": node}, who="X", how="graceful")

    def op_clock(self, r, **kw) -> None:
        node = r[kw["who"]]
        self.clock[node] = self.clock.get(node, 0.0) + kw["step_s"]
        self._append(node, CLOCK_FILE, f"{time.time():.6f} {self.clock[node]}\n")
        self.run.trace(node, "fault", f"wall clock stepped {kw['step_s']:+g} s (daemons' view)")

    # ------------------------------------------------------------------ sync side
    def op_enospc(self, r, **kw) -> None:
        node = r[kw["who"]]
        r = self.lab.sh(node, syncside.enospc_script())
        if r.ok:
            self.enospc.add(node)
        self.run.trace(node, "fault", f"state dir full (ENOSPC): exit {r.exit_code} {r.stderr.strip()[:200]}")

    def op_sync_write(self, r, **kw) -> None:
        node = r[kw["who"]]
        root = self.run.views[node].path("")
        if root is not None:
            syncside.write_files(root, f"f{self.run.fault_index}-{node}", kw["n"])
            self.run.trace(node, "fault", f"{kw['n']} file(s) written into the synced tree")

    def op_sync_kill(self, r, **kw) -> None:
        node = r[kw["who"]]
        self._bg(lambda: self.run.trace(node, "fault", syncside.kill_when_seen(self.run, node, kw["what"])))

    def op_sync_both(self, r, **kw) -> None:
        notes = syncside.both_edit(self.run, kw["path"], kw["rounds"], kw["apart"], self.run.conflicts)
        self.run.trace("both", "fault", f"edits on both nodes at once: {'; '.join(notes)}")

    # ------------------------------------------------------------------ files in nodes
    def _write(self, node: str, p: str, text: str) -> None:
        hp = self._path(node, p)
        if hp is not None:
            os.makedirs(os.path.dirname(hp), exist_ok=True)
            with open(hp, "w") as f:
                f.write(text)

    def _append(self, node: str, p: str, text: str) -> None:
        hp = self.run.views[node].path(p)
        if hp is not None:
            with open(hp, "a") as f:
                f.write(text)
