"""The null-modem cable between node1 and node2: the relay process and its cut file.

The relay (hasync_lab.ns.serial_relay) runs in the host's namespaces and holds both ptys;
each node's /dev/ttyS1 is a bind mount of its pty. A cut is a line in serial/cut.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

from hasync.effects.files import atomic_write
from hasync_lab.ns import procs


class SerialError(RuntimeError):
    pass


def is_relay(pid: int) -> bool:
    return procs.alive(pid) and "hasync_lab.ns.serial_relay" in procs.cmdline(pid)


def relays_of(directory: Path) -> list[int]:
    """Every live relay serving the cable in *directory*, recorded in state.json or not (a
    ^C between starting one and recording it, in `up`, left it running unknown to `down`)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = procs.cmdline(int(entry))
            if "hasync_lab.ns.serial_relay" in argv and str(directory) in argv and procs.alive(int(entry)):
                out.append(int(entry))
    return out


class SerialCable:
    def __init__(self, directory: Path):
        self.dir = directory

    def ttys(self) -> dict[str, str]:
        """node -> host pty path (/dev/pts/N) of its end."""
        try:
            return json.loads((self.dir / "ttys.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self, a: str, b: str, cut: set[str]) -> int:
        """Start a relay between *a* and *b* with *cut* sides cut; its PID."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ttys.json").unlink(missing_ok=True)
        self.write_cut(cut)
        env = dict(os.environ)
        env.pop("HASYNC_LAB_FROM_NODE", None)  # the relay belongs to the lab, not to a node
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.dir / "relay.log", "ab") as log:
            p = subprocess.Popen(
                [sys.executable, "-m", "hasync_lab.ns.serial_relay", str(self.dir), a, b],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives this process; `lab down` ends it
                env=env,
            )
        deadline = time.monotonic() + 10
        while not (self.dir / "ttys.json").exists():
            if p.poll() is not None or time.monotonic() > deadline:
                raise SerialError(f"serial relay did not start: see {self.dir / 'relay.log'}")
            time.sleep(0.01)
        return p.pid

    def cut_sides(self) -> set[str]:
        try:
            return {s for s in (self.dir / "cut").read_text().split() if s}
        except FileNotFoundError:
            return set()

    def write_cut(self, sides: set[str]) -> None:
        atomic_write(self.dir / "cut", "".join(f"{s}\n" for s in sorted(sides)))

    def set_cut(self, node: str, cut: bool) -> None:
        sides = self.cut_sides()
        self.write_cut(sides | {node} if cut else sides - {node, node + ">"})

    def set_oneway(self, node: str, cut: bool) -> None:
        """Drop (or pass again) only the bytes *node* sends."""
        sides = self.cut_sides()
        self.write_cut(sides | {node + ">"} if cut else sides - {node + ">"})

    def reset_line(self) -> None:
        """Empty both ends and put back the lab's line settings (raw, blocking reads:
        VMIN 1), which a program using the tty may have changed (e.g. VMIN 0)."""
        for path in self.ttys().values():
            try:
                fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                tty.setraw(fd)
                termios.tcflush(fd, termios.TCIOFLUSH)
            finally:
                os.close(fd)
