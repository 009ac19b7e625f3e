"""Both sides of a conflicting path, and the role of each node (what the conflict policy
decides from, hasync.sync.policy).

This node's side is read here (lstat, sha256); the peer's by one shell command over the
master connection (``inspect_command``, parsed by ``parse_inspect``) that also prints the
peer's role. The role file is written by the failover daemon.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat as statmod

from hasync.config.paths import HASYNC_RUN_ROOT
from hasync.sync import policy

ROLE_FILE = HASYNC_RUN_ROOT + "/role"  # the failover daemon's role file (hasync.failover.host.Paths.role)


def read_role(path: str = ROLE_FILE) -> str | None:
    """This node's role as the failover daemon wrote it ("active", "standby"), None without one."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def local_side(path: str) -> policy.Side:
    """What *path* is here: kind, sha256 (of a symlink: of its target), mtime, size."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return policy.Side("absent")
    if statmod.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        return policy.Side("link", hashlib.sha256((target + "\n").encode()).hexdigest(), st.st_mtime)
    if statmod.S_ISDIR(st.st_mode):
        return policy.Side("dir", "", st.st_mtime)
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:  # unreadable: the hash of no bytes
        digest = hashlib.sha256().hexdigest()
    return policy.Side("file", digest, st.st_mtime, st.st_size)


INSPECT_SCRIPT = r"""
for p do
  if [ -L "$p" ]; then printf 'link %s %s %s\n' "$(stat -c %Y "$p")" 0 "$(readlink "$p" | sha256sum | cut -c1-64)"
  elif [ -d "$p" ]; then printf 'dir %s 0 -\n' "$(stat -c %Y "$p")"
  elif [ -f "$p" ]; then printf 'file %s %s %s\n' "$(stat -c %Y "$p")" "$(stat -c %s "$p")" "$(sha256sum < "$p" | cut -c1-64)"
  else echo 'absent 0 0 -'; fi
done
printf 'ROLE %s\n' "$(cat "$ROLEFILE" 2>/dev/null)"
"""


def inspect_command(paths, role_file: str) -> str:
    """The shell command that describes *paths* on the peer (one line each) and its role."""
    return "ROLEFILE=" + shlex.quote(role_file) + " sh -c " + shlex.quote(INSPECT_SCRIPT) + " sh " + " ".join(
        shlex.quote(p) for p in paths
    )


def parse_inspect(text: str, paths) -> tuple[dict[str, policy.Side], str | None]:
    """The peer's sides of *paths* and its role, from ``inspect_command``'s output."""
    sides: dict[str, policy.Side] = {}
    role = None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("ROLE")]
    for ln in lines:
        if ln.startswith("ROLE"):
            role = ln[4:].strip() or None
    for p, ln in zip(paths, body, strict=False):
        parts = ln.split()
        kind = parts[0]
        mtime = float(parts[1]) if len(parts) > 1 else 0.0
        size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        sha = parts[3] if len(parts) > 3 and parts[3] != "-" else ""
        sides[p] = policy.Side(kind, sha, mtime, size)
    return sides, role
