"""How a command ends on an error: its exit status and the line on stderr.

A verb module's ``ERRORS`` (an :data:`ErrorMap`) says it for the typed errors its
library calls raise; main() applies it. Free of rich and of the rest of hasync, so
that main() and the daemon's verb load nothing they do not need: "error: MESSAGE" on
stderr, "error" in red on a terminal, as rich prints it elsewhere.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# exception type -> (exit status, label). The label starts the message: "error" (red on a
# terminal), "hasync VERB" (plain), or None (the message alone). A ConfigError's issues
# are one line each.
ErrorMap = dict[type[BaseException], tuple[int, str | None]]


def lookup(errors: ErrorMap, e: BaseException) -> tuple[int, str | None] | None:
    """The entry for *e*'s class or its nearest base class in *errors*."""
    return next((errors[t] for t in type(e).__mro__ if t in errors), None)


def print_error(message: str, label: str | None = "error") -> None:
    """One message on stderr: "error: ..." (see the module doc), "LABEL: ...", or bare."""
    if label == "error" and _color(sys.stderr):
        label = "\x1b[31merror\x1b[0m"
    sys.stderr.write(f"{label}: {message}\n" if label else f"{message}\n")
    sys.stderr.flush()


def error_doc(messages: list[str], status: int) -> dict:
    """What an error prints on stdout with --json: {"ok": false, "error", "errors", "exit"}
    (a script reading stdout gets this instead of nothing; stderr has the lines too)."""
    return {"ok": False, "error": messages[0] if messages else "", "errors": messages, "exit": status}


def _color(stream: Any) -> bool:
    """Whether rich would colour *stream*: a terminal, NO_COLOR unset, TERM not dumb."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") in ("dumb", "unknown"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
