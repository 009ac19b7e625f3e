"""DRBD's state as the on-call admin needs it (pure): connection, disk states, resync
progress with an estimate, split brain and its runbook. For `hasync status` (this node)
and `hasync doctor` (both nodes).

Two sources, whichever the node has:

- ``drbdadm status R`` / ``drbdsetup status R --verbose --statistics`` (DRBD 9, and the
  9.x utils on an 8.4 kernel): an indented ``key:value`` tree; with --statistics a peer
  device in resync also has ``out-of-sync:`` (KiB), ``dbdt1:`` (MiB/s) and ``eta:`` (s).
- ``/proc/drbd`` (DRBD 8.4): `` 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent``
  then ``oos:`` (KiB), ``sync'ed: 25.1%`` and ``finish: 0:01:18 speed: 39,404 (...) K/sec``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# connection states in which the peer's disk gets every write
CONNECTED = ("Connected",)
SYNCING = ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "VerifyS", "VerifyT")
SPLIT_BRAIN_CONNECTIONS = ("StandAlone",)  # DRBD drops the connection and stays there


@dataclass(frozen=True)
class Drbd:
    """One DRBD resource (its first volume) and its peer, as one node sees it."""

    resource: str
    role: str = ""  # Primary, Secondary
    disk: str = ""  # UpToDate, Inconsistent, Outdated, Diskless, ...
    peer: str = ""  # the peer's name (DRBD 9), "" for 8.4
    connection: str = ""  # Connected, Connecting, StandAlone, WFConnection ...
    peer_role: str = ""
    peer_disk: str = ""
    replication: str = ""  # Established, SyncSource, SyncTarget ... ("" when not connected)
    done: float | None = None  # resync progress, percent
    eta_s: float | None = None  # resync time left, as DRBD estimates it
    out_of_sync_kib: int | None = None
    rate_kib_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _kv(words: list[str]) -> dict[str, str]:
    return dict(w.split(":", 1) for w in words if ":" in w)


def parse_status(text: str) -> list[Drbd]:
    """``drbdadm status`` or ``drbdsetup status --verbose --statistics`` (every resource)."""
    out: list[dict] = []
    cur: dict | None = None
    in_peer = False
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        kv = _kv(words)
        if indent == 0:
            cur = {"resource": words[0], "role": kv.get("role", "")}
            out.append(cur)
            in_peer = False
            continue
        if cur is None:
            continue
        if indent == 2 and ("disk" in kv or words[0].startswith("volume:")):
            in_peer = False
            cur.setdefault("disk", kv.get("disk", ""))
        elif indent == 2 and not words[0].startswith(("write-ordering",)) and ":" not in words[0]:
            in_peer = True
            cur.setdefault("peer", words[0])
            cur.setdefault("connection", kv.get("connection", "Connected" if "role" in kv else ""))
            cur.setdefault("peer_role", kv.get("role", ""))
        elif in_peer and indent >= 4:
            if "replication" in kv:
                cur.setdefault("replication", kv["replication"])
            if "peer-disk" in kv:
                cur.setdefault("peer_disk", kv["peer-disk"])
            for key, name, conv in (("done", "done", float), ("eta", "eta_s", float), ("out-of-sync", "out_of_sync_kib", int),
                                    ("dbdt1", "rate_kib_s", lambda v: float(v) * 1024)):
                if key in kv and name not in cur:
                    try:
                        cur[name] = conv(kv[key])
                    except ValueError:
                        pass
    for d in out:  # connected and nothing said about replication: in sync
        if d.get("connection") == "Connected" and not d.get("replication"):
            d["replication"] = "Established"
    return [Drbd(**d) for d in out]


_PROC_RES = re.compile(r"^\s*(\d+):\s+cs:(\S+)\s+ro:(\S+)\s+ds:(\S+)")
_PROC_DONE = re.compile(r"sync'ed:\s*([\d.]+)%")
_PROC_FINISH = re.compile(r"finish:\s*(\d+):(\d+):(\d+)\s+speed:\s*([\d,]+)")
_PROC_OOS = re.compile(r"\boos:(\d+)")


def parse_proc(text: str, names: dict[str, str] | None = None) -> list[Drbd]:
    """``/proc/drbd`` of DRBD 8.4 (*names*: minor -> resource name, else "minor N")."""
    out: list[dict] = []
    for line in text.splitlines():
        m = _PROC_RES.match(line)
        if m:
            minor, cs, ro, ds = m.groups()
            role, _, peer_role = ro.partition("/")
            disk, _, peer_disk = ds.partition("/")
            connected = cs not in ("StandAlone", "WFConnection", "Unconfigured", "Disconnecting", "Unconnected",
                                   "Timeout", "BrokenPipe", "NetworkFailure", "ProtocolError", "TearDown")
            out.append({"resource": (names or {}).get(minor, f"minor {minor}"), "role": role,
                        "disk": disk, "connection": "Connected" if connected else cs,
                        "peer_role": peer_role if connected else "", "peer_disk": peer_disk if connected else "",
                        "replication": ("Established" if cs == "Connected" else cs) if connected else ""})
            continue
        if not out:
            continue
        cur = out[-1]
        if (m2 := _PROC_OOS.search(line)) and int(m2.group(1)):
            cur["out_of_sync_kib"] = int(m2.group(1))
        if m3 := _PROC_DONE.search(line):
            cur["done"] = float(m3.group(1))
        if m4 := _PROC_FINISH.search(line):
            h, mi, s, speed = m4.groups()
            cur["eta_s"] = float(int(h) * 3600 + int(mi) * 60 + int(s))
            cur["rate_kib_s"] = float(speed.replace(",", ""))
    return [Drbd(**d) for d in out]


# --------------------------------------------------------------------------- verdicts


def duration(s: float) -> str:
    s = int(s)
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def estimate(d: Drbd) -> str:
    """The resync's time left: DRBD's own estimate, else out-of-sync over the rate."""
    eta = d.eta_s
    if eta is None and d.out_of_sync_kib is not None and d.rate_kib_s:
        eta = d.out_of_sync_kib / d.rate_kib_s
    return f"about {duration(eta)} left" if eta is not None else "time left unknown (no rate yet)"


def health(d: Drbd) -> tuple[str, str]:
    """("ok" | "warn" | "bad", one line) for `hasync status` and its exit status."""
    name = f"DRBD {d.resource}"
    if d.connection in SPLIT_BRAIN_CONNECTIONS:
        return "bad", (f"{name} is StandAlone ({d.role}, disk {d.disk}): split brain, or disconnected by hand; "
                       "nothing is replicated (`hasync doctor` says which data to keep and how)")
    if d.disk in ("Diskless", "Failed", "Detaching") or (d.role == "Primary" and d.disk not in ("UpToDate",) and
                                                         d.replication != "SyncTarget"):
        return "bad", f"{name}: {d.role}, disk {d.disk}: no up-to-date data here"
    if d.replication in SYNCING:
        pct = f"{d.done:.1f}% done" if d.done is not None else "progress unknown"
        return "warn", f"{name}: resync {d.replication} ({d.disk} here, {d.peer_disk} on the peer), {pct}, {estimate(d)}"
    if d.connection and d.connection not in CONNECTED:
        return "warn", f"{name}: {d.role}, disk {d.disk}, peer {d.connection}: writes are not replicated"
    if d.peer_disk and d.peer_disk != "UpToDate":
        return "warn", f"{name}: the peer's disk is {d.peer_disk}"
    if d.disk != "UpToDate":
        return "warn", f"{name}: disk {d.disk} here"
    return "ok", f"{name}: {d.role}, {d.disk}/{d.peer_disk or '?'}, {d.connection or 'not connected'}"


def split_brain(a: Drbd | None, b: Drbd | None) -> bool:
    """Either node dropped the connection for good (StandAlone) while both hold data: the
    two copies may have diverged (split brain, or a disconnect by hand: the repair is the same)."""
    nodes = [d for d in (a, b) if d is not None]
    return any(d.connection in SPLIT_BRAIN_CONNECTIONS for d in nodes) and all(
        d.disk in ("UpToDate", "Outdated", "Consistent") for d in nodes)


def runbook(resource: str, keep: str, discard: str, why: str, *, pacemaker: bool = False) -> list[str]:
    """The manual split-brain recovery (DRBD 8.4 and 9: same drbdadm commands): *discard*'s
    changes since the split are thrown away, *keep*'s data is synced over them. Under
    Pacemaker its maintenance-mode holds the cluster still, and its failed actions and
    fencing history are cleaned up after, so it does not act on the repair's traces."""
    if pacemaker:
        return [
            f"keep the data of {keep} ({why}); the changes made on {discard} since the split are lost",
            "0. `crm_attribute --name maintenance-mode --update true` (`pcs property set maintenance-mode=true`): "
            "Pacemaker starts, stops and fences nothing while you repair",
            f"1. if {discard}'s changes matter, copy them off first (its DRBD device, read-only)",
            f"2. on {discard}: if `crm_mon -1` shows the group there, stop it by hand (its agents, in reverse); "
            f"drbdadm disconnect {resource}; drbdadm secondary {resource}; drbdadm connect --discard-my-data {resource}",
            f"3. on {keep}: drbdadm connect {resource} (if it is StandAlone too)",
            f"4. wait for the resync (`drbdadm status {resource}`), then `crm_resource --cleanup` (forget the failed "
            "actions) and `stonith_admin --history '*'` (what was fenced during the split), then "
            "`crm_attribute --name maintenance-mode --update false`; `crm_mon -1` shows the clone Promoted once",
        ]
    return [
        f"keep the data of {keep} ({why}); the changes made on {discard} since the split are lost",
        "0. `hasync maintenance on` (on either node): the daemons move nothing while you repair",
        f"1. if {discard}'s changes matter, copy them off first (its DRBD device, read-only)",
        f"2. on {discard}: hasync resource <its chain resources> stop if any runs there; "
        f"drbdadm disconnect {resource}; drbdadm secondary {resource}; drbdadm connect --discard-my-data {resource}",
        f"3. on {keep}: drbdadm connect {resource} (if it is StandAlone too)",
        "4. wait for the resync (`hasync status` shows its progress), then `hasync maintenance off`",
    ]
