"""Who runs the chain on a node: hasync's failover daemon, or Pacemaker (issue 16: a site
that moved with `hasync export pacemaker` keeps hasync for bootstrap, the config watcher
and doctor).

On a node where Pacemaker and Corosync manage the chain, doctor says so and leaves out
what only holds under hasync's daemon: its operator markers (maintenance, stopped: the
daemon's state directory, stale there), its heartbeat key, and the heartbeat resource.d
scripts of the chain (Pacemaker runs their OCF equivalents, the export's mapping). The
checks that hold under any manager stay: storage, DRBD, the NFS state, the LVM filter,
NFS not started at boot, sync. And one check is added: hasync's daemon must not run
there too (two managers would each start the chain).

The facts come from the probe (``probe_lines``); :func:`manager` and :func:`adjust` are
pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hasync import model
from hasync.bootstrap import doctor_pacemaker
from hasync.bootstrap.findings import Finding, probe_line

CIB = "/var/lib/pacemaker/cib/cib.xml"
SOCKET = "/run/hasync/failover.sock"  # hasync.failover.host.Paths' default control socket
UNITS = ("pacemaker", "corosync", "hasync-failover")
# findings that only hold when hasync's daemon runs the chain
HASYNC_ONLY = ("maintenance", "stopped", "auth-key")


def probe_lines() -> list[str]:
    lines = []
    for unit in UNITS:
        lines.append(probe_line(f"unit.{unit}.active", f"systemctl is-active {unit}.service"))
        lines.append(probe_line(f"unit.{unit}.enabled", f"systemctl is-enabled {unit}.service"))
    lines += [
        f"[ -e {CIB} ] && echo pcmk.cib_file=1 || echo pcmk.cib_file=0",
        # the CIB answers only where pacemaker runs; bounded, and only when installed
        "command -v cibadmin >/dev/null && timeout 10 cibadmin -Q -l >/dev/null && echo pcmk.cib_answers=1 || echo pcmk.cib_answers=0",
        f"[ -S {SOCKET} ] && echo hasync.socket=1 || echo hasync.socket=0",
        *doctor_pacemaker.probe_lines(),
    ]
    return lines


@dataclass(frozen=True)
class Manager:
    """Who runs the chain here: "pacemaker" or "hasync", and what said so."""

    name: str
    evidence: tuple[str, ...] = ()
    hasync_daemon: tuple[str, ...] = ()  # signs that hasync's failover daemon runs or starts here
    configured: str = "hasync"  # what cluster.toml's [cluster] manager says
    seen: bool = False  # the node itself shows Pacemaker (units, CIB)


def _word(p: dict[str, str], key: str) -> str:
    words = p.get(key, "").split()
    return words[-1] if words else ""


def manager(p: dict[str, str], configured: str = "hasync") -> Manager:
    """Pacemaker when cluster.toml says so (*configured*), when pacemaker.service is
    active, the CIB answers, or pacemaker or corosync is enabled (or active) next to a
    CIB file (a configured cluster after a reboot, before they start); else hasync.
    Debian enables both units when the packages are installed, so an enabled unit without
    a CIB (never configured) is not enough, nor a CIB file alone (Pacemaker installed
    once, off now)."""
    ev = []
    for unit in ("pacemaker", "corosync"):
        for state, yes in (("active", ("active", "activating", "reloading")), ("enabled", ("enabled", "enabled-runtime"))):
            if _word(p, f"unit.{unit}.{state}") in yes:
                ev.append(f"{unit}.service {state}")
    if p.get("pcmk.cib_answers") == "1":
        ev.append("the CIB answers (cibadmin -Q)")
    if p.get("pcmk.cib_file") == "1":
        ev.append(f"{CIB} present")
    units = [e for e in ev if e.endswith(("active", "enabled"))]
    pacemaker = ("pacemaker.service active" in ev or "the CIB answers (cibadmin -Q)" in ev
                 or (bool(units) and f"{CIB} present" in ev))
    daemon = [f"hasync-failover.service {s}" for s, yes in (("active", ("active", "activating")), ("enabled", ("enabled", "enabled-runtime")))
              if _word(p, f"unit.hasync-failover.{s}") in yes]
    if p.get("hasync.socket") == "1":
        daemon.append(f"{SOCKET} exists")
    said = ('cluster.toml: [cluster] manager = "pacemaker"',) if configured == "pacemaker" else ()
    name = "pacemaker" if pacemaker or said else "hasync"
    return Manager(name, said + (tuple(ev) if pacemaker else ()), tuple(daemon), configured, pacemaker)


def check_node(node: str, m: Manager, p: dict[str, str]) -> list[Finding]:
    """What doctor says about the manager itself, and under Pacemaker what Pacemaker says
    (doctor_pacemaker: its nodes, the promoted DRBD, the group, failed actions, fencing)."""
    if m.name != "pacemaker":
        return []
    out = [Finding("chain-manager", "info", node,
                   f"the chain is run by Pacemaker ({', '.join(m.evidence)}): hasync's failover daemon is not expected "
                   "here; storage, DRBD, the NFS state, the LVM filter and sync are still checked")]
    if m.configured != "pacemaker":
        out.append(Finding("chain-manager", "warning", node,
                           "Pacemaker runs the chain here but cluster.toml does not say so: `hasync bootstrap` would install and "
                           "enable hasync-failover again", 'set [cluster] manager = "pacemaker" in cluster.toml'))
    if m.seen or "pcmk.mon" in p:
        out += doctor_pacemaker.check_node(node, p)
    else:  # an older probe: nothing read of Pacemaker here
        out.append(Finding("pacemaker", "error", node, "cluster.toml says Pacemaker runs the chain, but it is not running here",
                           "systemctl enable --now corosync pacemaker; then crm_mon -1"))
    if m.hasync_daemon:
        out.append(Finding("chain-manager", "error", node,
                           f"hasync's failover daemon runs or starts here too ({', '.join(m.hasync_daemon)}): two cluster "
                           "managers would each start the chain", "systemctl disable --now hasync-failover"))
    return out


def adjust(cluster: model.Cluster, m: Manager, findings: list[Finding]) -> list[Finding]:
    """*findings* (one node's) as they hold under *m*: under Pacemaker without those that
    only hasync's daemon makes true (HASYNC_ONLY; a heartbeat script of the chain that
    is missing, since Pacemaker runs its OCF equivalent)."""
    if m.name != "pacemaker":
        return findings
    scripts = {r.id for r in cluster.resources if r.type == "heartbeat"}
    out = []
    for f in findings:
        if f.check in HASYNC_ONLY:
            continue
        if f.check == "chain-programs" and f.level == "error" and any(f.message.startswith(f"resource {rid!r} ") for rid in scripts):
            out.append(replace(f, level="info", message=f.message + " (Pacemaker runs its OCF equivalent: `hasync export pacemaker`)",
                               fix=""))
            continue
        out.append(f)
    return out
