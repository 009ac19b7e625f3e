"""The lab's null-modem cable: two ptys whose masters this process cross-connects.

    python -m hasync_lab.ns.serial_relay STATE_DIR A B

Writes STATE_DIR/ttys.json ({"A": "/dev/pts/N", "B": "/dev/pts/M"}) once the ptys exist.
Bytes written to A's pty come out of B's and the other way round, byte-exact (the ptys are
raw). When the file STATE_DIR/cut names a side (one per line), everything to and from that
side is dropped, like a pulled cable; a line "A>" drops only what A sends (the file
is checked before each chunk is forwarded, so a cut is in force as soon as the file is
written). Bytes nobody reads are dropped when the pty's buffer is full, as on a real
line.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys
import tty


class CutFile:
    """The set of cut sides, re-read whenever the file changes."""

    def __init__(self, path: str):
        self.path = path
        self.stamp: tuple | None = None
        self.sides: set[str] = set()

    def get(self) -> set[str]:
        try:
            st = os.stat(self.path)
            stamp: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                with open(self.path) as f:
                    self.sides = {line.strip() for line in f if line.strip()}
            except FileNotFoundError:
                self.sides = set()
        return self.sides


def main(argv: list[str]) -> int:
    state_dir, a, b = argv
    sides = {}
    keep = []
    for name in (a, b):
        master, slave = os.openpty()
        tty.setraw(slave)  # the line discipline is shared by every opener: binary-exact
        os.set_blocking(master, False)
        sides[name] = master
        keep.append(slave)  # held open so the master never sees a hang-up
    paths = {name: os.ttyname(s) for name, s in zip((a, b), keep, strict=True)}
    cut = CutFile(os.path.join(state_dir, "cut"))
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    tmp = os.path.join(state_dir, "ttys.json.tmp")
    with open(tmp, "w") as f:
        json.dump(paths, f)
    os.replace(tmp, os.path.join(state_dir, "ttys.json"))

    peer = {sides[a]: sides[b], sides[b]: sides[a]}
    name_of = {sides[a]: a, sides[b]: b}
    poller = select.poll()
    for fd in peer:
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ev in poller.poll(1000):
            try:
                data = os.read(fd, 65536)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EIO):
                    continue
                raise
            if not data:
                continue
            sides_cut = cut.get()
            if name_of[fd] in sides_cut or name_of[peer[fd]] in sides_cut or name_of[fd] + ">" in sides_cut:
                continue  # "A>" in the file: only what A sends is dropped (a one-way cut)
            try:
                os.write(peer[fd], data)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EIO):
                    raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
