"""The ns tier's audits, from ground truth on the nodes (never from the daemons' view).

1. ``dual-run``: a piece of the chain (the filesystem mounted, the VIP configured, the
   demo service listening) on both nodes at once -- any sample, 10 ms apart.
   ``arp``: the VIP answers ARP (asked from the client) from more than one MAC.
   ``stray``: a piece a fault started behind hasync's back (enabled at boot) still runs
   beside the other node's chain after ``Timing.stray_bound_s``.
3. ``liveness`` (the runner): within ``Timing.liveness_bound_s`` of a heal, one node has
   the whole chain and the role file says active, the other has none of it and says
   standby, both daemons run, ARP answers from the active node's MAC only and the
   service answers from it; held for ``settle_s``.
   ``log``: no line of a forbidden kind in any daemon's log (FORBIDDEN, heartbeat's
   BadNews); ``daemon-died``: no daemon exits by itself (an exit status, or a signal
   other than SIGKILL: a traceback, a segfault, a crash loop).
4. ``sync-trees``, ``sync-journal``, ``sync-backups`` (after quiescence): the synced
   trees identical on both nodes, both journals empty, and the losing version of every
   conflict the campaign made present in a node's backups.
5. ``bootstrap-plan``: `hasync bootstrap --dry-run` on each node plans no forced DRBD
   primary, wipefs, mkfs or pvcreate.
6. Two resource groups (``--groups 2``): the audits above per group (a piece of group b
   on both nodes is a ``dual-run`` naming group b; liveness wants every group whole on
   one node), and ``own-group-stopped``: while one node is down, the other never stops
   a group it ran whole (ground truth, every sample).

Findings caused by a fault the design cannot survive carry a named limit (the fsm
tier's ``LIMITS``) and are reported apart.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time

from hasync_lab.campaign.audits import LIMITS, Hit
from hasync_lab.campaign.ns.prep import BACKUP_DIR, FENCE_LOG, STATE_DIR, SYNC_DIR

AUDITS = ("dual-run", "arp", "stray", "liveness", "log", "daemon-died", "sync-trees", "sync-journal",
          "sync-backups", "bootstrap-plan")
GROUP_AUDITS = ("own-group-stopped",)  # two-group runs only
NODE_DOWN_GRACE_S = 1.0  # a stop that ends in the node's own going down this soon is that going down


def audits_for(groups: int) -> tuple[str, ...]:
    return AUDITS + (GROUP_AUDITS if groups == 2 else ())

FORBIDDEN = {
    "Traceback (most recent call last)": "a Python traceback",
    "core dumped": "a core dump",
    "Segmentation fault": "a segfault",
    "internal error": "a job raised inside the daemon",
    "also holds the chain": "both nodes held the chain (the daemon saw the split brain itself)",
    "still alive after a successful fence": "a fence reported success on a live node",
    "operator needed": "the daemon gave up and waits for an operator",
}
SYNC_PATHS = ("/etc/exports", SYNC_DIR)
SYNC_IGNORE = ("*.swp", "*~", ".#*", ".unison.*.unison.tmp")  # the lab's [sync].ignore, and unison's own
DESTRUCTIVE = {
    "forced primary": re.compile(r"drbdadm\b.*(--force\b.*\bprimary|\bprimary\b.*--force)"),
    "wipefs": re.compile(r"\bwipefs\b"),
    "mkfs": re.compile(r"\bmkfs(\.\w+)?\b"),
    "pvcreate": re.compile(r"\bpvcreate\b"),
}


def hit(audit: str, fault_index: int, evidence: dict, limit: str | None = None) -> Hit:
    return Hit(audit, time.monotonic(), fault_index, evidence, limit)


# ------------------------------------------------------------------ 1. one node only


def overlap_hits(overlaps, strays, fault_index: int, stray_bound: float, lied: bool, now: float,
                 groups: dict[str, tuple[str, ...]] | None = None) -> list[Hit]:
    """Overlaps of the fault -> hits (naming the piece's resource group when *groups* are
    given). A piece the fault itself started on a node is allowed beside the other
    node's for the stray bound; a lying fence is a limit."""
    out = []
    stray_rids = {rid for _, rid, _, _ in strays}
    late = any(lt for _, _, _, lt in strays)
    for o in overlaps:
        dur = (o.t1 if o.t1 is not None else now) - o.t0
        piece = "vip" if o.what == "arp" else o.what
        ev = {"what": o.what, "lasted_s": round(dur, 3), "ongoing": o.t1 is None, "detail": o.detail}
        if groups:
            ev["group"] = next((g for g, pieces in groups.items() if piece in pieces), "")
        audit = "arp" if o.what == "arp" else "dual-run"
        if piece in stray_rids:
            if dur <= stray_bound:
                continue
            out.append(hit("stray", fault_index, {**ev, "bound_s": stray_bound}, "late-stray" if late else None))
            continue
        out.append(hit(audit, fault_index, ev, "lying-fence" if lied else None))
    return out


def group_stop_hits(stops, fault_index: int, now: float) -> list[Hit]:
    """Own-group stops of the fault -> hits: a survivor that stopped (part of) a group it
    ran whole while the other node was down. One that ended in the node's own going down
    within NODE_DOWN_GRACE_S is that going down (a crash, a self-fence), not a stop."""
    out = []
    for o in stops:
        dur = (o.t1 if o.t1 is not None else now) - o.t0
        if o.ended == "node down" and dur <= NODE_DOWN_GRACE_S:
            continue
        out.append(hit("own-group-stopped", fault_index, {"group": o.group, "node": o.node, "missing": list(o.missing),
                                                          "lasted_s": round(dur, 3), "ended": o.ended or "ongoing"}))
    return out


def fence_lied(view, since_wall: float) -> bool:
    """Did this node's fence command lie (report success, fence nobody) since then?"""
    p = view.path(FENCE_LOG)
    try:
        lines = open(p).read().splitlines() if p else []
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "lie" and float(parts[0]) >= since_wall:
            return True
    return False


# ------------------------------------------------------------------ 3. logs, deaths


class LogScan:
    """New lines of every daemon log since the last scan, checked against FORBIDDEN."""

    def __init__(self, paths):
        self.paths = list(paths)
        self.offsets = {str(p): 0 for p in self.paths}

    def scan(self, fault_index: int, lied: bool = False) -> list[Hit]:
        out = []
        for p in self.paths:
            try:
                with open(p, "rb") as f:
                    f.seek(self.offsets[str(p)])
                    text = f.read().decode(errors="replace")
                    self.offsets[str(p)] = f.tell()
            except OSError:
                continue
            out += forbidden_hits(os.path.basename(str(p)), text, fault_index, lied)
        return out


def forbidden_hits(log: str, text: str, fault_index: int, lied: bool = False) -> list[Hit]:
    """New text of one log -> a hit per forbidden kind found in it (its first line);
    what a lying fence makes the daemons say is that limit's."""
    out = []
    for needle, what in FORBIDDEN.items():
        for line in text.splitlines():
            if needle in line:
                excused = lied and needle in ("also holds the chain", "still alive after a successful fence")
                out.append(hit("log", fault_index, {"log": log, "kind": what, "line": line.strip()[:300]},
                               "lying-fence" if excused else None))
                break
    return out


def died_hits(exits, fault_index: int, logdir) -> list[Hit]:
    out = []
    for e in exits:
        tail = ""
        try:
            tail = "".join(open(logdir / f"{e.node}-{e.unit}.log").readlines()[-8:])
        except OSError:
            pass
        out.append(hit("daemon-died", fault_index, {"node": e.node, "unit": e.unit, "pid": e.pid, "exit": e.code,
                                                     "log_tail": tail[-1500:]}))
    return out


# ------------------------------------------------------------------ 4. sync


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pat) for pat in SYNC_IGNORE)


def tree(view) -> dict[str, tuple] | None:
    """The synced paths of one node: relative path -> (kind, mode, digest or target);
    what the sync never carries (its ignore patterns, unison's temporary files) left out."""
    root = view.path("")
    if root is None:
        return None
    out: dict[str, tuple] = {}
    for top in SYNC_PATHS:
        base = root + top
        if not os.path.lexists(base):
            continue
        walk = [(base, [], [""])] if not os.path.isdir(base) else os.walk(base)
        for d, dirs, files in walk:
            for name in list(dirs) + list(files):
                if name and _ignored(name):
                    continue
                p = os.path.join(d, name) if name else d
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                rel = p[len(root):]
                if os.path.islink(p):
                    out[rel] = ("l", 0, os.readlink(p))
                elif os.path.isdir(p):
                    out[rel] = ("d", st.st_mode & 0o7777, "")
                else:
                    try:
                        out[rel] = ("f", st.st_mode & 0o7777, hashlib.sha256(open(p, "rb").read()).hexdigest())
                    except OSError:
                        out[rel] = ("f?", 0, "")
    return out


def tree_diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def journal_pending(view) -> list[str] | None:
    p = view.path(f"{STATE_DIR}/journal.json")
    if p is None:
        return None
    try:
        return sorted(json.load(open(p)).get("pending") or {})
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return ["(journal unreadable)"]


def backup_digests(view) -> set[str]:
    root = view.path(BACKUP_DIR)
    out: set[str] = set()
    if root is None:
        return out
    for d, _dirs, files in os.walk(root):
        for name in files:
            try:
                out.add(hashlib.sha256(open(os.path.join(d, name), "rb").read()).hexdigest())
            except OSError:
                pass
    return out


def conflict_hits(conflicts, views, fault_index: int) -> list[Hit]:
    """Every conflict's loser must be in a node's backups. The winner is what both nodes
    had once the conflict settled (the campaign watched); a conflict that never settled
    is the trees audit's finding, not this one's."""
    kept = set().union(*(backup_digests(v) for v in views.values()))
    out = []
    for c in conflicts:
        if not c.get("winner"):
            continue
        for node, digest in c["versions"].items():
            if digest == c["winner"] or digest in kept:
                continue
            out.append(hit("sync-backups", fault_index, {"path": c["path"], "lost_version_of": node, "sha256": digest,
                                                         "made_at_fault": c["fault_index"],
                                                         "winner_kept": c["winner"] in c["versions"].values()}))
    return out


# ------------------------------------------------------------------ 5. bootstrap


def plan_hits(node: str, text: str, fault_index: int) -> list[Hit]:
    runs = [m.group(1).strip() for m in re.finditer(r"^\s*run (.+)$", text, re.M)]
    out = []
    for what, rx in DESTRUCTIVE.items():
        bad = [r for r in runs if rx.search(r)]
        if bad:
            out.append(hit("bootstrap-plan", fault_index, {"node": node, "plans": what, "lines": bad[:5]}))
    return out


__all__ = ["AUDITS", "FORBIDDEN", "LIMITS", "Hit"]
