"""The hasync VM lab's command agent: runs commands the host sends over the console port.

Protocol (one JSON object per line, both ways, on a raw tty: no echo, no line editing):
  host -> guest  {"id": "...", "argv": [...], "input": <base64>|null, "timeout": s|null,
                  "env": {...}, "cwd": "..."}            or  {"id": "...", "op": "ping"}
                                                        or  {"id": "...", "op": "settime", "t": epoch}
  guest -> host  HASYNC1 {"id": "...", "rc": n, "out": <base64>, "err": <base64>, "s": secs}
Each request runs in its own thread, so a slow command does not block the next one.
Kernel messages on the same port are kept off by `dmesg -n 1` in rc; the host ignores any
line that is not a well-formed HASYNC1 reply.
"""

import base64
import json
import os
import subprocess
import sys
import termios
import threading
import time
import tty

DEV = sys.argv[1] if len(sys.argv) > 1 else "/dev/ttyS0"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}

fd = os.open(DEV, os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
attrs = termios.tcgetattr(fd)
attrs[4] = attrs[5] = termios.B115200
termios.tcsetattr(fd, termios.TCSANOW, attrs)
write_lock = threading.Lock()


def send(obj):
    line = ("\r\nHASYNC1 " + json.dumps(obj, separators=(",", ":")) + "\r\n").encode()
    with write_lock:
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]


def b64(data):
    return base64.b64encode(data or b"").decode()


def handle(req):
    rid = req.get("id")
    t0 = time.monotonic()
    env = dict(ENV)
    env.update(req.get("env") or {})
    try:
        p = subprocess.run(
            req["argv"],
            input=base64.b64decode(req.get("input") or ""),
            capture_output=True,
            timeout=req.get("timeout"),
            env=env,
            cwd=req.get("cwd") or "/",
            start_new_session=True,
        )
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = 124, e.stdout or b"", (e.stderr or b"") + b"\nagent: timed out"
    except FileNotFoundError as e:
        rc, out, err = 127, b"", str(e).encode()
    except Exception as e:  # noqa: BLE001 -- report anything to the host rather than die
        rc, out, err = 126, b"", repr(e).encode()
    send({"id": rid, "rc": rc, "out": b64(out), "err": b64(err), "s": round(time.monotonic() - t0, 3)})


def main():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    send({"ready": boot_id})
    buf = b""
    while True:
        data = os.read(fd, 65536)
        if not data:
            time.sleep(0.05)
            continue
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"{"):
                continue
            try:
                req = json.loads(line)
            except ValueError:
                continue
            if req.get("op") == "ping":
                send({"id": req.get("id"), "pong": boot_id})
                continue
            if req.get("op") == "settime":  # here, not in a thread: as close to the send as can be
                time.clock_settime(time.CLOCK_REALTIME, float(req["t"]))
                send({"id": req.get("id"), "pong": boot_id})
                continue
            threading.Thread(target=handle, args=(req,), daemon=True).start()


main()
