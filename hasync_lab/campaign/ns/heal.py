"""The heal after every fault of the ns tier: the lab as it was, whatever the fault did.

In order: background steps stop, the wire forwards everything again, flags and the ping
block go, frozen daemons resume, clocks are stepped back, a full state directory gets
its space back (what the watcher wrote meanwhile is kept), a drifted config is restored
(its daemon restarted cleanly), powered-off nodes power on and boot, every cable goes
back in, and units a fault stopped start again.
"""

from __future__ import annotations

import glob
import os
import signal
import time

from hasync_lab.campaign.ns import syncside
from hasync_lab.campaign.ns.inject import PING_TABLE, Injector
from hasync_lab.campaign.ns.prep import CLOCK_FILE, FLAGS


def heal(inj: Injector) -> list[str]:
    run, sv, lab = inj.run, inj.sv, inj.lab
    did: list[str] = []
    inj.stop_background(30)
    run.wire.clear()
    for node in run.nodes:
        flags = inj._path(node, FLAGS)
        for p in glob.glob(flags + "/*") if flags else []:
            os.unlink(p)
            did.append(f"{node}: flag {os.path.basename(p)} removed")
    for node in sorted(inj.ping_lost):
        lab._run(("ip", "netns", "exec", lab.netns(node), "nft", "delete", "table", "inet", PING_TABLE))
        did.append(f"{node}: ping node reachable again")
    inj.ping_lost.clear()
    if sv.frozen:
        did.append("thawed pid(s) " + ", ".join(str(p) for p in sorted(sv.frozen)))
        sv.thaw_all()
    for node, off in sorted(inj.clock.items()):
        if off:
            inj._append(node, CLOCK_FILE, f"{time.time():.6f} 0\n")
            did.append(f"{node}: wall clock back ({-off:+g} s)")
    inj.clock.clear()
    for node in sorted(inj.enospc):
        if not sv.crashed(node):
            sv.signal(node, "watch", signal.SIGSTOP, expected=False)
            r = lab.sh(node, syncside.enospc_heal_script())
            sv.signal(node, "watch", signal.SIGCONT, expected=False)
            did.append(f"{node}: state dir has space again (exit {r.exit_code})")
    inj.enospc.clear()
    for node, text in sorted(inj.drifted.items()):
        sv.config[node] = text
        path = inj._path(node, "/etc/hasync/cluster.toml")
        if path:
            with open(path, "w") as f:
                f.write(text)
        if not sv.crashed(node) and (node, "failover") not in inj.stopped:
            sv.stop(node, "failover")
            sv.start(node, "failover")
        did.append(f"{node}: config restored, daemon restarted")
    inj.drifted.clear()
    inj.boot_pieces.clear()
    with run.lab_lock:
        for node in run.nodes:
            if sv.crashed(node):
                sv.power_on(node)
                did.append(f"{node}: powered on")
        lab.heal()  # every cable back in (also a one-way serial cut)
    for node, unit in sorted(inj.stopped):
        if not sv.pid(node, unit) and not sv.crashed(node):
            sv.start(node, unit)
            did.append(f"{node}: {unit} started again")
    inj.stopped.clear()
    for (node, unit), want in list(sv.wanted.items()):
        if not want:
            sv.wanted[(node, unit)] = True
            if not sv.pid(node, unit):
                sv.start(node, unit)
    run.trace("both", "heal", "; ".join(did) or "nothing to undo")
    return did
