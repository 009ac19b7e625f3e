"""The host's two wires into a VM: its qemu monitor (power, link state) and its console,
on which the guest's command agent (guest/agent.py) answers JSON lines."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from hasync.effects.run import Result


class VmError(RuntimeError):
    pass


class Monitor:
    """The qemu human monitor (HMP) on a unix socket: one command per connection."""

    def __init__(self, path: Path):
        self.path = path

    def command(self, cmd: str, timeout: float = 10.0) -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(self.path))
            out = self._until_prompt(s)
            s.sendall(cmd.encode() + b"\n")
            if cmd.strip() == "quit":
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
                return ""
            out = self._until_prompt(s)
            # the first line is the monitor's echo of the command (with cursor moves);
            # the last is the next prompt
            text = out.decode(errors="replace").replace("\r", "")
            lines = [ln for ln in text.split("\n")[1:] if not ln.startswith("(qemu)")]
            return "\n".join(lines).strip()
        finally:
            s.close()

    @staticmethod
    def _until_prompt(s: socket.socket) -> bytes:
        buf = b""
        while not buf.rstrip().endswith(b"(qemu)"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


class Console:
    """A connection to a guest's command agent (ttyS0). Thread-safe; many requests in flight."""

    def __init__(self, path: Path, vm: str):
        self.path = path
        self.vm = vm
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.pending: dict[str, dict] = {}
        self.cond = threading.Condition()
        self.reader: threading.Thread | None = None
        self.boot_id = ""
        self.closed = False

    def connect(self, timeout: float = 5.0) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(str(self.path))
        s.settimeout(None)
        self.sock = s
        self.closed = False
        self.reader = threading.Thread(target=self._read, name=f"console-{self.vm}", daemon=True)
        self.reader.start()

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        with self.cond:
            self.cond.notify_all()

    def _read(self) -> None:
        buf = b""
        sock = self.sock
        while sock is not None:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                i = line.find(b"HASYNC1 ")
                if i < 0:
                    continue
                try:
                    msg = json.loads(line[i + 8 :].strip())
                except ValueError:
                    continue
                if "ready" in msg:
                    self.boot_id = msg["ready"]
                    continue
                with self.cond:
                    if msg.get("id") in self.pending:
                        self.pending[msg["id"]] = msg
                        self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def request(self, req: dict, timeout: float) -> dict | None:
        rid = uuid.uuid4().hex[:12]
        req = dict(req, id=rid)
        line = b"\n" + json.dumps(req, separators=(",", ":")).encode() + b"\n"
        with self.cond:
            self.pending[rid] = {}
        try:
            with self.lock:
                if self.sock is None:
                    raise VmError(f"{self.vm}: console not connected")
                self.sock.sendall(line)
            deadline = time.monotonic() + timeout
            with self.cond:
                while not self.pending[rid]:
                    left = deadline - time.monotonic()
                    if left <= 0 or self.closed:
                        return None
                    self.cond.wait(min(left, 0.5))
                return self.pending[rid]
        finally:
            with self.cond:
                self.pending.pop(rid, None)

    def ping(self, timeout: float = 1.0) -> str | None:
        msg = self.request({"op": "ping"}, timeout)
        return msg.get("pong") if msg else None

    def set_clock(self, tries: int = 3) -> float:
        """Set the guest's wall clock to the host's. A guest boots with its clock from the
        emulated RTC, whole seconds: two nodes could start up to a second apart, which
        `hasync doctor` rightly reports (bound 1 s; the guests run no NTP). The agent sets
        the time the moment it reads the request; the host adds half the round trip of a
        ping just before (the faster of *tries*). Returns that round trip."""
        best = None
        for _ in range(tries):
            t0 = time.monotonic()
            if self.ping(5.0) is None:
                continue
            rtt = time.monotonic() - t0
            best = rtt if best is None else min(best, rtt)
        if best is None:
            raise VmError(f"{self.vm}: no answer from the guest agent to set its clock")
        if self.request({"op": "settime", "t": time.time() + best / 2}, 5.0) is None:
            raise VmError(f"{self.vm}: no answer from the guest agent to set its clock")
        return best

    def exec(self, argv: Sequence[str], *, input: str | bytes | None = None, timeout: float = 120.0,
             env: dict | None = None, cwd: str | None = None) -> Result:
        argv = tuple(str(a) for a in argv)
        data = input.encode() if isinstance(input, str) else (input or b"")
        req = {"argv": list(argv), "input": base64.b64encode(data).decode() if data else None,
               "timeout": timeout, "env": env or {}, "cwd": cwd}
        t0 = time.monotonic()
        msg = self.request(req, timeout + 15.0)
        dt = time.monotonic() - t0
        if msg is None:
            return Result(argv, 125, "", f"{self.vm}: no answer from the guest agent (VM down or hung)", dt)
        out = base64.b64decode(msg.get("out") or "").decode(errors="replace")
        err = base64.b64decode(msg.get("err") or "").decode(errors="replace")
        return Result(argv, int(msg.get("rc", 1)), out, err, dt)
