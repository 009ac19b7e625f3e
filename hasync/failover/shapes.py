"""What the daemon's answers and its state files must look like before anything reads
them: the status document (`hasync status`) and a failover record (history.jsonl,
last-failover.json). Pure.

A shape is a template: ``str``, ``bool``, ``int``, ``NUMBER`` (int or float, no bool), a
``dict`` of key -> shape (other keys are free), a one-item ``list`` (each item has that
shape), :class:`Opt` (absent or null allowed), or ``ANY``. :func:`problem` says where
the first mismatch is ("peer.state: expected text, got a number"), "" when none: the
renderers index these documents directly, so an answer from another version of hasync,
a hand-edited or torn file, or whatever listens on the control socket is refused with
one clear line instead of a traceback halfway through a table.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class Opt(NamedTuple):
    """A key that may be absent or null."""

    shape: Any


NUMBER = "number"
ANY = "any"
# an int beyond a double's range breaks f"{x:.0f}"; nothing the daemon writes comes near it
_BIG = 2**53

_KIND = {str: "text", bool: "true/false", int: "an integer", NUMBER: "a finite number"}


def _what(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true/false"
    if isinstance(obj, (int, float)):
        return "a number"
    if isinstance(obj, str):
        return "text"
    return "an object" if isinstance(obj, dict) else "a list" if isinstance(obj, list) else type(obj).__name__


def _scalar_ok(obj: Any, shape: Any) -> bool:
    if shape is bool:
        return isinstance(obj, bool)
    if shape is int:
        return isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) < _BIG
    if shape == NUMBER:
        if isinstance(obj, bool) or not isinstance(obj, (int, float)):
            return False
        return abs(obj) < _BIG if isinstance(obj, int) else math.isfinite(obj)
    return isinstance(obj, shape)


def problem(obj: Any, shape: Any, where: str = "") -> str:
    """"" when *obj* has *shape*; else "WHERE: expected ..., got ..." for the first mismatch."""
    at = where or "the document"
    if shape == ANY:
        return ""
    if isinstance(shape, Opt):
        return "" if obj is None else problem(obj, shape.shape, where)
    if isinstance(shape, dict):
        if not isinstance(obj, dict):
            return f"{at}: expected an object, got {_what(obj)}"
        for key, sub in shape.items():
            if key not in obj:
                if isinstance(sub, Opt):
                    continue
                return f"{where + '.' if where else ''}{key}: missing"
            found = problem(obj[key], sub, f"{where + '.' if where else ''}{key}")
            if found:
                return found
        return ""
    if isinstance(shape, list):
        if not isinstance(obj, list):
            return f"{at}: expected a list, got {_what(obj)}"
        for i, item in enumerate(obj):
            found = problem(item, shape[0], f"{where}[{i}]")
            if found:
                return found
        return ""
    if not _scalar_ok(obj, shape):
        return f"{at}: expected {_KIND[shape]}, got {_what(obj)}"
    return ""


# one event of a failover record (timeline.py writes them)
EVENT = {"message": str, "offset_ms": Opt(NUMBER), "level": Opt(str)}

# a failover record, as `hasync history`, `history show N` and status's "Last failover" read it
RECORD = {
    "node": Opt(str), "began": Opt(str), "trigger": Opt(str), "kind": Opt(str), "result": Opt(str),
    "duration_ms": Opt(NUMBER), "events": Opt([EVENT]), "events_dropped": Opt(int),
}

_LINK = {
    "name": str, "state": str, "last_seen_s": Opt(NUMBER), "loss_pct": NUMBER, "received": int, "bad_mac": int,
    "replay": int, "malformed": int, "old_generation": int, "stale": Opt(int), "foreign": int, "send_errors": int,
}
_RESOURCE = {
    "id": str, "type": str, "agent": str, "running_on": [str], "state_here": str, "last_op": Opt(str),
    "last_outcome": Opt(str), "last_duration_ms": Opt(NUMBER), "detail": Opt(str),
}
_PEER = {"node": str, "state": str, "role": str, "owned": [str], "flags": Opt([str]), "last_seen_s": Opt(NUMBER)}

# the daemon's answer to `status` (Membership.snapshot plus the daemon's additions), as
# status_view.health and render read it
STATUS = {
    "node": str, "role": str, "cluster": str, "epoch": int, "owned": [str], "flags": Opt([str]), "peer": _PEER,
    "timing": {"keepalive": NUMBER, "deadtime": NUMBER}, "links": [_LINK], "resources": [_RESOURCE],
    "fencing": {"mode": str}, "warnings": Opt([str]), "preferred_node": Opt(str), "last_failover": Opt(RECORD),
    "daemon": Opt({"uptime_s": Opt(NUMBER)}),
    "nfs_grace": Opt({"in_grace": ANY, "since_s": Opt(NUMBER), "left_at_most_s": Opt(NUMBER), "grace_time_s": NUMBER}),
}


def record_problem(obj: Any) -> str:
    return problem(obj, RECORD, "record")


def status_problem(obj: Any) -> str:
    return problem(obj, STATUS)
