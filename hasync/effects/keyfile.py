"""The heartbeat key file: read it, refusing (like heartbeat's authkeys) one others can read.

An effect (it reads a file) kept out of the wire-format module, which stays pure.
"""

from __future__ import annotations

import os
import stat

from hasync.packet_layout import MIN_KEY


class KeyFileError(Exception):
    """The authentication key file is missing, empty or readable by others."""


def load_key(path: str) -> bytes:
    """Read the cluster key; refuse a file group or others can read, or a short key."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read the heartbeat key: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: the heartbeat key must be a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: mode {st.st_mode & 0o777:04o}: the heartbeat key must not be readable by "
            f"group or others (chmod 600 {path}); refusing to start, as heartbeat does with authkeys"
        )
    with open(path, "rb") as f:
        key = f.read().strip()
    if len(key) < MIN_KEY:
        raise KeyFileError(f"{path}: the heartbeat key is too short ({len(key)} bytes; use at least {MIN_KEY}, e.g. `openssl rand -hex 32`)")
    return key
