"""The DRBD facts: how ``drbdadm`` is asked about a resource, and what its answers mean
(pure: ``drbd_status``, ``drbd_gi``, ``drbd_dump`` of hasync.bootstrap.facts).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hasync.bootstrap.facts_raw import FactError, cmd_text

if TYPE_CHECKING:  # the type only: the pure core imports no effects (an import-linter contract)
    from hasync.effects.run import Argv


def drbd_status_argv(resource: str) -> Argv:
    return ("drbdadm", "status", resource)


def drbd_dump_argv(resource: str) -> Argv:
    return ("drbdadm", "dump", resource)


def drbd_gi_argv(resource: str) -> Argv:
    """The data generation identifiers (UUIDs): from the kernel when the resource is up,
    else from the metadata on the backing disk (drbdadm runs drbdmeta then)."""
    return ("drbdadm", "get-gi", resource)


def parse_drbd_status(raw: Any) -> dict:
    """``drbdadm status R`` (DRBD 9 and 8.4's drbdsetup status) -> role/disk/peer.

    ``{"up": bool, "role": "Primary", "disk": "UpToDate", "peer": {"name", "role",
    "connection", "replication", "peer_disk", "done"}}``; a resource that is not up
    (or no kernel module) gives ``{"up": False}``.
    """
    code, out, err = cmd_text(raw)
    if code != 0 or not out.strip():
        return {"up": False, "error": (err.strip() or out.strip())[-300:]}
    res: dict[str, Any] = {"up": True, "role": "", "disk": "", "peer": None}
    peer: dict[str, Any] | None = None
    for line in out.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        kv = dict(w.split(":", 1) for w in words if ":" in w)
        if indent == 0:
            res["name"] = words[0]
            res["role"] = kv.get("role", "")
        elif indent == 2 and words[0].startswith("disk:"):
            res["disk"] = kv.get("disk", "")
        elif indent == 2:
            peer = {
                "name": words[0],
                "role": kv.get("role", ""),
                "connection": kv.get("connection", "Connected" if "role" in kv else ""),
                "replication": "",
                "peer_disk": "",
                "done": None,
            }
            res["peer"] = peer
        elif indent >= 4 and peer is not None:
            peer["replication"] = kv.get("replication", peer["replication"])
            peer["peer_disk"] = kv.get("peer-disk", peer["peer_disk"])
            if "done" in kv:
                peer["done"] = float(kv["done"])
    if not res["role"]:
        raise FactError(f"drbdadm status: no role in output: {out[:200]!r}")
    return res


# DRBD's UUID_JUST_CREATED: the current UUID `create-md` writes (8.4 and 9). It stays until
# a node is made Primary (the first `primary --force`, or the peer's data synced over);
# bit 0 of a UUID is a flag (was Primary), not part of the value.
UUID_JUST_CREATED = 0x4
_GI_RE = re.compile(r"^([0-9A-Fa-f]{16})((?::[0-9A-Fa-f]{16}){3})((?::[01])+)\s*$")


def parse_drbd_gi(raw: Any) -> dict:
    """``drbdadm get-gi R``: ``current:bitmap:history1:history2:flags...`` (one line per
    peer device; 8.4 prints 7 flags, 9 prints 12) ->
    ``{"readable": True, "current", "bitmap", "history": [h1, h2], "fresh": bool}``;
    ``fresh``: metadata as `create-md` left it (current UUID just created, no bitmap or
    history UUID: this disk never held replicated data). ``{"readable": False, "error"}``
    when there is no metadata, no such resource, or no drbdadm.
    """
    code, out, err = cmd_text(raw)
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if code != 0 or not lines:
        return {"readable": False, "error": (err.strip() or out.strip() or f"exit {code}")[-300:]}
    parsed = []
    for ln in lines:
        m = _GI_RE.match(ln)
        if not m:
            raise FactError(f"drbdadm get-gi: not a generation identifier line: {ln[:200]!r}")
        uuids = [m.group(1).upper(), *m.group(2)[1:].upper().split(":")]
        parsed.append(uuids)
    current, bitmap, h1, h2 = parsed[0]
    fresh = all(int(u[0], 16) & ~1 == UUID_JUST_CREATED and not any(int(x, 16) for x in u[1:]) for u in parsed)
    return {"readable": True, "current": current, "bitmap": bitmap, "history": [h1, h2], "fresh": fresh}


_ON_RE = re.compile(r"^\s*on\s+(\S+)\s*\{(.*?)^\s*\}", re.M | re.S)


def parse_drbd_dump(raw: Any) -> dict:
    """``drbdadm dump R`` -> {"protocol", "hosts": {name: {"device", "minor", "disk", "address"}}}."""
    code, out, err = cmd_text(raw)
    if code != 0:
        return {}
    text = "\n".join(line for line in out.splitlines() if not line.lstrip().startswith("#"))
    m = re.search(r"\bprotocol\s+(\w+)\s*;", text)
    hosts = {}
    for on in _ON_RE.finditer(text):
        body = on.group(2)
        host: dict[str, Any] = {}
        dm = re.search(r"\bdevice\s+(\S+?)(?:\s+minor\s+(\d+))?\s*;", body)
        if dm:
            host["device"] = dm.group(1)
            host["minor"] = int(dm.group(2)) if dm.group(2) else None
        km = re.search(r"\bdisk\s+(\S+?)\s*;", body)
        if km:
            host["disk"] = km.group(1)
        am = re.search(r"\baddress\s+(?:ipv[46]\s+)?(\S+?)\s*;", body)
        if am:
            host["address"] = am.group(1)
        hosts[on.group(1)] = host
    return {"protocol": m.group(1) if m else "", "hosts": hosts}
