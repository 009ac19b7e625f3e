"""The raw observation of a command fact, and the error a fact parser raises
(shared by hasync.bootstrap.facts and hasync.bootstrap.facts_drbd).
"""

from __future__ import annotations

from typing import Any


class FactError(RuntimeError):
    """A probe's output could not be understood."""


def cmd_text(raw: Any) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a command fact's raw ``{"exit", "stdout", "stderr"}``."""
    if not isinstance(raw, dict) or "exit" not in raw:
        raise FactError(f"expected a command result, got {raw!r}")
    return int(raw["exit"]), str(raw.get("stdout", "")), str(raw.get("stderr", ""))
