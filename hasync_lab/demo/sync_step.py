"""The sync step of `make demo` (namespace.py calls ``show``):
start `hasync watch` on both lab nodes, edit /etc/exports on node1, show it arrive on
node2 with the measured latency, stop the watchers."""

from __future__ import annotations

import os
import time


def show(lab, say=print, timeout: float = 30.0) -> float | None:
    """Returns the latency in seconds (None if the file did not arrive in *timeout*)."""
    logs = {n: f"/tmp/hasync-demo-watch-{lab.name}-{n}.log" for n in ("node1", "node2")}
    procs = []
    for n, lg in logs.items():
        open(lg, "w").close()
        procs.append(lab.spawn(n, ["hasync", "watch"], log=lg))
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not all("watch: ready" in open(lg).read() for lg in logs.values()):
            time.sleep(0.05)
        src = f"/proc/{lab.sshd_pid('node1')}/root/etc/exports"
        dst = f"/proc/{lab.sshd_pid('node2')}/root/etc/exports"
        line = f"/srv/ha/export 10.200.0.0/24(rw,sync,no_subtree_check,fsid=1)  # demo {time.strftime('%H:%M:%S')}\n"
        say("node1$ echo '/srv/ha/export 10.200.0.0/24(rw,...)' > /etc/exports")
        t0 = time.monotonic()
        with open(src + ".demo-tmp", "w") as f:
            f.write(line)
        os.rename(src + ".demo-tmp", src)
        while time.monotonic() - t0 < timeout:
            try:
                with open(dst) as f:
                    if f.read() == line:
                        latency = time.monotonic() - t0
                        say(f"node2: /etc/exports identical after {latency * 1000:.0f} ms (hasync watch)")
                        return latency
            except OSError:
                pass
            time.sleep(0.001)
        say(f"node2: /etc/exports did not arrive within {timeout:.0f} s; see {logs['node1']}")
        return None
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
