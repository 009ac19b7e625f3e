"""Network probes used by fencing decisions (the ping tiebreak)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def ping_argv(address: str, wait_s: int = 1) -> tuple[str, ...]:
    """One ICMP echo, numeric, quiet, waiting at most *wait_s* seconds for the answer."""
    return ("ping", "-n", "-q", "-c", "1", "-W", str(max(1, int(wait_s))), address)


def ping_any(addresses: Sequence[str], wait_s: int = 1) -> bool:
    """True when at least one of *addresses* answers one ping (all are tried at once)."""
    procs = []
    for a in addresses:
        try:
            procs.append(subprocess.Popen(ping_argv(a, wait_s), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except OSError:
            pass
    ok = False
    for p in procs:
        try:
            ok = (p.wait(timeout=wait_s + 1) == 0) or ok
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return ok
