"""A doctor finding: one check's verdict on one node (or the cluster), with a one-line fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | info | warning | error
    where: str  # node name or "cluster"
    message: str
    fix: str = ""
    group: str = ""  # the resource group whose storage this is about ("": the node or cluster as a whole)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def probe_line(key: str, command: str) -> str:
    """A probe script line printing ``key=<command's output>``, quoted (no word splitting,
    no globbing of an output like ``["a|.*|"]``) and on one line."""
    return f"printf '%s=%s\\n' {key} \"$({command} | tr '\\n' ' ')\""
