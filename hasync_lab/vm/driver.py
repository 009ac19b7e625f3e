"""The VM lab: qemu (TCG) guests for node1, node2 and client1, and how to drive them.

Wiring (all of it on this machine, none of it routed to the host's networks):

    eth0  "public"       -netdev socket,mcast=239.x.y.z:PORT,localaddr=127.0.0.1 (all VMs)
    eth1  "replication"  a second mcast L2, nodes only (DRBD + heartbeat)
    ttyS0 console        unix socket; the guest's command agent (agent.py) speaks JSON lines
    ttyS1 "serial"       null-modem node1 <-> node2 (socket server on node1, client on node2)
    ttyS2 BMC wire       wired to the *peer's* qemu monitor: the lab fence agent's power switch
    vda  root            qcow2 overlay over the cached base image (survives crash + restart)
    vdb  DRBD disk       raw sparse file (nodes only)
    vdc/vdb seed         read-only: hasync source, VM scripts, identity (seed.py)

Group and port of the multicast L2s are random per lab, so parallel labs don't collide.
State lives in the lab's directory beside the namespace labs (``$HASYNC_LAB_DIR/<lab>/``,
default /var/tmp/hasync-lab/<lab>, with ``kind`` = "vm"): lab.json, the disks, sockets,
console logs and qemu pid files.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from hasync.effects.run import CommandError, Result
from hasync_lab.ns.spec import lab_root
from hasync_lab.vm import seed as seedmod
from hasync_lab.vm.image import Image, ensure_image
from hasync_lab.vm.qemu import qemu_argv
from hasync_lab.vm.seed import Guest
from hasync_lab.vm.wires import Console, Monitor, VmError

DRBD_DISK_MIB = 128  # initial full sync ~6 s under TCG at resync-rate 200M
BOOT_TIMEOUT = 300.0
# Same names as the namespace lab: "heartbeat" is the dedicated replication/heartbeat L2.
LINKS = ("public", "heartbeat", "serial")
LINK_ALIASES = {"replication": "heartbeat", "repl": "heartbeat", "hb": "heartbeat"}
NETDEV = {"public": "pub", "heartbeat": "rep"}

Report = Callable[[str], None]


def run_root() -> Path:
    return Path(lab_root())


def lab_dir(name: str) -> Path:
    return run_root() / name


def qemu_available() -> str | None:
    """None if qemu can run here, else the reason it cannot."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (apt-get install qemu-system-x86; see apt-packages.txt)"
    if shutil.which("qemu-img") is None:
        return "qemu-img not installed (apt-get install qemu-utils)"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not a running VM
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class VmLab:
    """A running (or to-be-started) VM lab. Tests use this; the CLI verbs wrap it."""

    def __init__(self, name: str = "hl", report: Report | None = None):
        self.name = name
        self.dir = lab_dir(name)
        self.report: Report = report or (lambda s: None)
        self.state: dict = {}
        self.consoles: dict[str, Console] = {}
        self._console_lock = threading.Lock()  # one connection per VM, even with threads
        if (self.dir / "lab.json").exists():
            self.state = json.loads((self.dir / "lab.json").read_text())

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return bool(self.state)

    @property
    def vms(self) -> list[str]:
        return list(self.state.get("vms", {}))

    @property
    def nodes(self) -> list[str]:
        return [n for n, v in self.state.get("vms", {}).items() if v["role"] == "node"]

    def _save(self) -> None:
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        os.replace(tmp, self.dir / "lab.json")

    def create(self, image: Image | None = None, guests: tuple[Guest, ...] | None = None,
               init: str = "busybox", disk_mib: int = DRBD_DISK_MIB, deb: Path | None = None) -> None:
        """Lay down disks, seeds and the qemu command lines (does not boot); *deb*: a
        package the nodes' seeds carry (`make deb`'s, for the field run to install)."""
        why = qemu_available()
        if why:
            raise VmError(why)
        if self.exists and any(self.running(v) for v in self.vms):
            raise VmError(f"VM lab {self.name!r} is already up (hasync lab down --vm {self.name})")
        image = image or ensure_image(self.report)
        guests = guests or seedmod.default_guests()
        self._clear()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "kind").write_text("vm\n")
        rnd = random.Random()
        groups = {link: (f"239.{rnd.randint(1, 254)}.{rnd.randint(1, 254)}.{rnd.randint(1, 254)}",
                         rnd.randint(20000, 60000)) for link in NETDEV}
        self.state = {"name": self.name, "image": str(image.dir), "key": image.key, "init": init,
                      "deb": deb.name if deb else "",
                      "groups": {k: list(v) for k, v in groups.items()}, "links": {}, "vms": {}}
        t0 = time.monotonic()
        nodes = [g for g in guests if g.role == "node"]
        for i, g in enumerate(guests):
            d = self.dir / g.name
            d.mkdir()
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.rootfs),
                            str(d / "root.qcow2")], check=True, capture_output=True)
            if g.role == "node":
                with open(d / "drbd.img", "wb") as f:
                    f.truncate(disk_mib * 1024 * 1024)
            seedmod.make_seed(d / "seed.img", g, guests, self.dir, init, deb)
            peer = None
            if g.role == "node":
                peer = next(n.name for n in nodes if n.name != g.name)
            argv = qemu_argv(self.dir, image, g, i, groups, peer, server=(g.role == "node" and g is nodes[0]),
                             init=init)
            self.state["vms"][g.name] = {"role": g.role, "guest": asdict(g), "argv": argv, "pid": None,
                                         "links": {k: "up" for k in (LINKS if g.role == "node" else ("public",))}}
        self._save()
        self.report(f"lab {self.name}: disks and seeds ready in {time.monotonic() - t0:.1f}s ({self.dir})")

    def start(self, vm: str, kernel_args: str = "") -> None:
        """Power on *vm* (after create, or after a crash: its disks are kept); *kernel_args*
        added to its kernel command line for this boot only (e.g. ``systemd.mask=UNIT``)."""
        if self.running(vm):
            return
        info = self.state["vms"][vm]
        argv = list(info["argv"])
        if kernel_args:
            at = argv.index("-append") + 1
            argv[at] += " " + kernel_args
        d = self.dir / vm
        for sock in ("console.sock", "monitor.sock", "bmc.sock"):
            (d / sock).unlink(missing_ok=True)
        if vm == self.nodes[0]:
            (self.dir / "serial.sock").unlink(missing_ok=True)
        (d / "qemu.pid").unlink(missing_ok=True)
        self.consoles.pop(vm, None)
        with open(d / "qemu.log", "ab") as log:
            p = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise VmError(f"{vm}: qemu failed to start (exit {p.returncode}): {(d / 'qemu.log').read_text()[-1500:]}")
        info["pid"] = int((d / "qemu.pid").read_text().strip())
        info["started_at"] = time.time()
        info["links"] = {k: "up" for k in info["links"]}
        self._save()

    def up(self, boot_timeout: float = BOOT_TIMEOUT) -> dict[str, float]:
        """Start every VM and wait until each agent answers; returns seconds to ready per VM."""
        t0 = time.monotonic()
        for vm in self.vms:
            self.start(vm)
        self.report(f"lab {self.name}: {len(self.vms)} VMs started, waiting for them to boot")
        return self.wait_ready(self.vms, boot_timeout, t0)

    def wait_ready(self, vms: Sequence[str], timeout: float = BOOT_TIMEOUT,
                   t0: float | None = None) -> dict[str, float]:
        t0 = time.monotonic() if t0 is None else t0
        ready: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(ready) < len(vms):
            for vm in vms:
                if vm in ready:
                    continue
                if not self.running(vm):
                    raise VmError(f"{vm}: qemu exited during boot; console log tail:\n{self.console_tail(vm)}")
                try:
                    con = self.console(vm, connect_timeout=1.0, check=False)
                    if con.ping(0.5 if time.monotonic() - t0 < 5 else 1.0):
                        con.set_clock()  # the RTC gave it whole seconds: see Console.set_clock
                        ready[vm] = round(time.monotonic() - t0, 2)
                        self.report(f"  {vm}: ready after {ready[vm]:.1f}s")
                except (OSError, VmError):
                    self.consoles.pop(vm, None)
            if len(ready) < len(vms):
                if time.monotonic() > deadline:
                    missing = [v for v in vms if v not in ready]
                    tails = "\n".join(f"--- {v}:\n{self.console_tail(v)}" for v in missing)
                    raise VmError(f"VMs {missing} not ready after {timeout:.0f}s\n{tails}")
                time.sleep(0.3)
        return ready

    def console(self, vm: str, connect_timeout: float = 5.0, check: bool = True) -> Console:
        """This process's connection to *vm*'s agent. With *check*, a new connection must
        answer a ping: qemu serves one client per console socket, so a second process
        (a test holding a VmLab) would otherwise leave us waiting for nothing."""
        with self._console_lock:
            con = self.consoles.get(vm)
            if con is None or con.closed:
                con = Console(self.dir / vm / "console.sock", vm)
                con.connect(connect_timeout)
                if check and con.ping(10.0) is None:
                    con.close()
                    raise VmError(f"{vm}: its console agent does not answer: another process holds the "
                                  f"console (a test's VmLab?) or the guest hangs (see {self.dir / vm / 'console.log'})")
                self.consoles[vm] = con
            return con

    def console_tail(self, vm: str, n: int = 30) -> str:
        p = self.dir / vm / "console.log"
        if not p.exists():
            return "(no console log)"
        lines = p.read_bytes().decode(errors="replace").replace("\r", "").splitlines()
        return "\n".join(ln for ln in lines[-n:] if "HASYNC1" not in ln)

    def pid(self, vm: str) -> int | None:
        p = self.dir / vm / "qemu.pid"
        try:
            return int(p.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, vm: str) -> bool:
        pid = self.pid(vm)
        return pid is not None and _pid_alive(pid)

    def monitor(self, vm: str) -> Monitor:
        return Monitor(self.dir / vm / "monitor.sock")

    # ---- the verbs -------------------------------------------------------------------
    def exec(self, vm: str, argv: Sequence[str] | str, *, input: str | bytes | None = None,
             timeout: float = 120.0, check: bool = False, env: dict | None = None) -> Result:
        """Run *argv* on *vm* (a string runs through /bin/sh -c)."""
        if isinstance(argv, str):
            argv = ("/bin/sh", "-c", argv)
        if vm not in self.state.get("vms", {}):
            raise VmError(f"no VM named {vm!r} in lab {self.name!r} (have {', '.join(self.vms)})")
        if not self.running(vm):
            res = Result(tuple(argv), 125, "", f"{vm} is powered off")
        else:
            res = self.console(vm).exec(argv, input=input, timeout=timeout, env=env)
        if check and not res.ok:
            raise CommandError(res, what=vm)
        return res

    def sh(self, vm: str, script: str, *, errexit: bool = True, **kw) -> str:
        """Run a shell script on *vm* (with `set -e` unless errexit=False), raise if it
        fails, return its stdout."""
        return self.exec(vm, ("/bin/sh", "-ec" if errexit else "-c", script), check=True, **kw).stdout

    def spawn(self, vm: str, argv: Sequence[str] | str, log: str) -> None:
        """Start a long-running command on *vm* in the background, output to *log* (in the guest)."""
        cmd = argv if isinstance(argv, str) else shlex.join(argv)
        self.exec(vm, ("/bin/sh", "-c", f"setsid {cmd} >{shlex.quote(log)} 2>&1 </dev/null &"), check=True)

    def crash(self, vm: str) -> None:
        """Power *vm* off without warning (the guest gets no chance to flush or stop anything)."""
        pid = self.pid(vm)
        if pid is None or not _pid_alive(pid):
            return
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)
        con = self.consoles.pop(vm, None)
        if con:
            con.close()
        self.state["vms"][vm]["crashed_at"] = time.time()
        self._save()

    def _link_targets(self, link: str, vm: str | None) -> list[str]:
        link = LINK_ALIASES.get(link, link)
        if link not in LINKS:
            raise VmError(f"unknown link {link!r}: one of {', '.join(LINKS)}")
        if link == "public":
            return [vm] if vm else self.nodes
        if link == "serial":  # one cable: unplugged at node2's end, whichever node is named
            return [self.nodes[-1]]
        return self.nodes if vm is None else [vm]

    def cut(self, vm: str | None, link: str) -> None:
        """Pull *link*'s cable on *vm* (None: on every node). The serial cable is unplugged
        at node2's end, whichever node is named."""
        self._set_link(link, vm, up=False)

    def heal(self, vm: str | None = None, *, boot: bool = True, timeout: float = BOOT_TIMEOUT,
             kernel_args: str = "") -> dict:
        """Cables back in; crashed VMs (of *vm*, or all) power on again (with *kernel_args*
        for this boot, see start) and are waited for."""
        for ln in LINKS:
            self._set_link(ln, vm, up=True)
        off = [v for v in ([vm] if vm else self.vms) if not self.running(v)]
        if not boot or not off:
            return {}
        for v in off:
            self.start(v, kernel_args)
        return self.wait_ready(off, timeout)

    def fence(self, vm: str) -> bool:
        """Power *vm* off out of band and confirm it is off."""
        self.crash(vm)
        return not self.running(vm)

    def _set_link(self, link: str, vm: str | None, up: bool) -> None:
        link = LINK_ALIASES.get(link, link)
        targets = self._link_targets(link, vm)
        for t in targets:
            info = self.state["vms"][t]
            if link not in info["links"] or not self.running(t):
                continue
            if link == "serial":
                if up:
                    backend = f"socket,path={self.dir / 'serial.sock'},reconnect=1"
                else:
                    backend = "null"
                out = self.monitor(t).command(f"chardev-change ser1 {backend}")
            else:
                out = self.monitor(t).command(f"set_link {NETDEV[link]} {'on' if up else 'off'}")
            if out.strip():
                raise VmError(f"{t}: {link} {'heal' if up else 'cut'}: qemu said: {out.strip()}")
            info["links"][link] = "up" if up else "down"
            if link == "serial":
                for n in self.nodes:
                    self.state["vms"][n]["links"]["serial"] = "up" if up else "down"
        self._save()

    def status(self) -> dict:
        vms = {}
        for vm, info in self.state.get("vms", {}).items():
            vms[vm] = {"role": info["role"], "state": "running" if self.running(vm) else "off",
                       "pid": self.pid(vm), "public": info["guest"]["public"],
                       "replication": info["guest"].get("replication") or None, "links": info["links"]}
        return {"name": self.name, "kind": "vm", "dir": str(self.dir), "image": self.state.get("image"),
                "init": self.state.get("init"), "vms": vms}

    def down(self) -> None:
        """Power every VM off and remove the lab's directory."""
        for con in self.consoles.values():
            con.close()
        self.consoles.clear()
        for vm in self.vms:
            pid = self.pid(vm)
            if pid and _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for vm in self.vms:
            pid = self.pid(vm)
            for _ in range(100):
                if not pid or not _pid_alive(pid):
                    break
                time.sleep(0.05)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.state = {}

    def _clear(self) -> None:
        """Remove what an earlier VM lab of this name left (its VMs must be off)."""
        for vm in self.state.get("vms", {}):
            shutil.rmtree(self.dir / vm, ignore_errors=True)
        for name in ("lab.json", "serial.sock"):
            (self.dir / name).unlink(missing_ok=True)
        self.state = {}

    def close(self) -> None:
        """Drop this process's console connections (the VMs keep running)."""
        for con in self.consoles.values():
            con.close()
        self.consoles.clear()


def all_labs() -> list[str]:
    root = run_root()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/lab.json"))


def parse_size_mib(text: str) -> int:
    """"256M", "1G", "128" (MiB) -> MiB."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 / 1024, "M": 1, "G": 1024}.get(t[-1:], None)
    num = t[:-1] if mult is not None else t
    value = float(num) * (mult if mult is not None else 1)
    if value < 16:
        raise ValueError(f"disk size {text!r}: at least 16M")
    return int(value)
