"""The config's text files (cluster.toml, profiles, haresources, ha.cf): read bounded,
refused cleanly when they are no text (missing, a directory, a device, binary, oversized,
undecodable), so ``check`` says why instead of hanging on /dev/zero or tracing back.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE = 1 << 20  # a cluster.toml, haresources or ha.cf is a few kB: 1 MiB is not one


class UnreadableFile(Exception):
    """A file that cannot be used as text: missing, a directory, a device, binary,
    oversized or undecodable. ``str()`` says why; ``line`` is set when a line is to blame."""

    def __init__(self, message: str, line: int | None = None, *, missing: bool = False):
        super().__init__(message)
        self.line = line
        self.missing = missing

    def located(self, path: str | Path) -> str:
        """"path[:line]: why"."""
        return f"{path}{f':{self.line}' if self.line else ''}: {self}"


def read_bytes(path: str | Path, limit: int = MAX_FILE, *, allow_pipe: bool = False) -> bytes:
    """The bytes of a regular file (or, with *allow_pipe*, a pipe such as ``<(...)``) of
    at most *limit* bytes, or UnreadableFile. A directory, a device (/dev/zero would never
    end) or a file the kernel refuses to read (/proc/self/mem) is a clean error."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnreadableFile("no such file", missing=True) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise UnreadableFile(f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFile("is a directory; expected a file")
    if not (stat.S_ISREG(st.st_mode) or allow_pipe and stat.S_ISFIFO(st.st_mode)):
        raise UnreadableFile("is not a regular file (a device, socket or pipe); expected a file")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:  # /proc/self/mem: EIO
        raise UnreadableFile(f"cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise UnreadableFile(f"larger than {limit // 1024} KiB; expected a small text file")
    return data


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_text(data: bytes, *, latin1_fallback: bool) -> tuple[str, str]:
    """(text, encoding). UTF-8; with *latin1_fallback* (heartbeat's files, often Latin-1 on
    old SLES nodes) anything else is read as Latin-1. Binary data is refused."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise UnreadableFile("binary data (a NUL byte); expected a text file", _line_of(data, nul))
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        if latin1_fallback:
            return data.decode("latin-1"), "latin-1"
        raise UnreadableFile("not UTF-8 (a TOML file must be UTF-8)", _line_of(data, e.start)) from None

