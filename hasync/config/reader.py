"""Reading config text: errors, durations, the TOML line index, typed getters.

tomllib keeps no positions, so every problem is located through a ``LineIndex`` built
from the same text; a ``Reader`` records each problem as ``file:line: key: message``
instead of raising, so ``hasync check`` reports all of them at once.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """One or more problems in a config file; ``issues`` are "file:line: key: message"."""

    def __init__(self, issues: list[str]):
        self.issues = list(issues)
        super().__init__("\n".join(self.issues))


@dataclass
class Report:
    """What ``check`` found: errors make the config unusable, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# a year: far beyond any timeout or interval, and small enough that arithmetic on it
# (2 x keepalive, deadline sums) and format_duration never overflow
MAX_DURATION = 365 * 24 * 3600.0


def parse_duration(text: str) -> float:
    """"200ms" -> 0.2, "2s" -> 2.0, "5m" -> 300.0. Raises ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like \"200ms\" or \"2s\", got {text!r}")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like \"200ms\", \"2s\" or \"5m\", got {show(text)}")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not seconds <= MAX_DURATION:  # also catches inf from a 400-digit number
        raise ValueError(f"expected a duration of at most {MAX_DURATION / 3600:.0f}h (a year), got {show(text)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, choosing a readable unit."""
    if not math.isfinite(seconds):
        return str(seconds)
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    if s % 60 or s < 60:
        return f"{s}s"
    return f"{s // 60}m"


def show(value: Any, limit: int = 60) -> str:
    """repr() for an error message, cut short: a 16 kB value must not flood the terminal."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# --------------------------------------------------------------------------- line index

_WS = re.compile(r"[ \t]*")
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dotted_key(line: str, i: int) -> tuple[list[str], int] | None:
    """The dotted key starting at ``line[i]`` and the index after it (and its trailing
    blanks), or None. A hand-written scan: the regular expression it replaces backtracked
    cubically on a header with a long run of blanks (10 s for 16k spaces)."""
    parts: list[str] = []
    n = len(line)
    while True:
        i = _WS.match(line, i).end()  # type: ignore[union-attr]
        if i >= n:
            return None
        c = line[i]
        if c == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= n:
                return None
            parts.append(_unescape(line[i + 1 : j]))
            j += 1
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                return None
            parts.append(line[i + 1 : j])
            j += 1
        else:
            m = _BARE.match(line, i)
            if not m:
                return None
            parts.append(m.group())
            j = m.end()
        j = _WS.match(line, j).end()  # type: ignore[union-attr]
        if j < n and line[j] == ".":
            i = j + 1
            continue
        return parts, j


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        return str(tomllib.loads(f'k = "{raw}"')["k"])
    except tomllib.TOMLDecodeError:
        return raw


class LineIndex:
    """Maps TOML key paths to the line they are defined on.

    The text is scanned once: table headers (``[a.b]``, ``[[a.b]]`` with their array
    index) and ``key =`` lines. Paths are tuples like ``("heartbeat", "link", 1, "kind")``.
    """

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        current: tuple = ()
        in_multiline: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = self._header(line)
            if header is not None:
                parts, array = header
                if array:
                    idx = counts.get(parts, -1) + 1
                    counts[parts] = idx
                    for inner in [k for k in counts if k[:len(parts)] == parts and len(k) > len(parts)]:
                        del counts[inner]  # [[group.resource]] counts from 0 again in the next [[group]]
                    current = _resolve(parts, counts) + (idx,)
                    self.lines.setdefault(current[:-1], lineno)
                else:
                    current = _resolve(parts, counts)
                self.lines.setdefault(current, lineno)
                continue
            key = _dotted_key(line, 0)
            if key is not None and key[1] < len(line) and line[key[1]] == "=":
                self.lines.setdefault(current + tuple(key[0]), lineno)
                rest = line[key[1] + 1 :]
                for q in ('"""', "'''"):
                    if rest.count(q) % 2 == 1:
                        in_multiline = q

    @staticmethod
    def _header(line: str) -> tuple[tuple, bool] | None:
        """(key parts, is an array of tables) for a ``[a.b]`` / ``[[a.b]]`` line."""
        i = _WS.match(line).end()  # type: ignore[union-attr]
        if not line.startswith("[", i):
            return None
        array = line.startswith("[[", i)
        key = _dotted_key(line, i + (2 if array else 1))
        if key is None:
            return None
        parts, j = key
        close = "]]" if array else "]"
        if not line.startswith(close, j):
            return None
        j = _WS.match(line, j + len(close)).end()  # type: ignore[union-attr]
        if j < len(line) and line[j] != "#":
            return None
        return tuple(parts), array

    def line(self, path: tuple) -> int | None:
        """The line of *path*, or of its nearest defined ancestor."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None


def _resolve(parts: tuple, counts: dict[tuple, int]) -> tuple:
    """Insert array indices for array-of-tables ancestors: [heartbeat.link] inside [[node]]."""
    out: tuple = ()
    for i, p in enumerate(parts):
        out += (p,)
        prefix = tuple(parts[: i + 1])
        if prefix in counts and i < len(parts) - 1:
            out += (counts[prefix],)
    return out


# --------------------------------------------------------------------------- typed reader

KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "bool": "true or false",
    "duration": 'a duration like "200ms" or "2s"',
    "strlist": "a list of strings",
    "strmap": "a table of strings",
    "argv": "a list of strings (a command and its arguments)",
    "paramsmap": "a table of strings/numbers",
}


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind, kind)


def typename(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def convert(v: Any, kind: str) -> Any:
    """*v* as *kind*, or ValueError saying what was expected."""
    if kind == "str":
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {typename(v)} {show(v)}")
        return v
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {typename(v)} {show(v)}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {typename(v)} {show(v)}")
        return v
    if kind == "duration":
        if isinstance(v, bool) or isinstance(v, (int, float)):
            raise ValueError(f'expected a duration with a unit like "{v}s" or "{v}ms", got the bare number {show(v)}')
        return parse_duration(v)
    if kind in ("strlist", "argv"):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"expected {kind_words(kind)}, got {typename(v)} {show(v)}")
        return tuple(v)
    if kind == "strmap":
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise ValueError(f"expected a table of strings, got {typename(v)} {show(v)}")
        return dict(v)
    if kind == "paramsmap":
        if not isinstance(v, dict) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v.values()):
            raise ValueError(f"expected a table of strings or numbers, got {typename(v)} {show(v)}")
        return {k: str(x) for k, x in v.items()}
    raise AssertionError(kind)


class Reader:
    """Typed access to the parsed TOML that records errors with file:line instead of raising."""

    def __init__(self, path: str, data: dict, index: LineIndex):
        self.path = path
        self.data = data
        self.index = index
        self.errors: list[str] = []
        self.warnings: list[str] = []
        # key paths that are wrong, missing or misspelt: the rules between fields and the
        # cross-checks skip them, so one mistake gives one error (not one per rule that
        # would otherwise judge the default standing in for the value)
        self.bad: set[tuple] = set()

    def is_bad(self, path: tuple) -> bool:
        """True if *path* or a table holding it had an error (or was misspelt)."""
        return any(tuple(path[:i]) in self.bad for i in range(1, len(path) + 1))

    def where(self, path: tuple) -> str:
        line = self.index.line(path)
        return f"{self.path}:{line}" if line else self.path

    @staticmethod
    def dotted(path: tuple) -> str:
        out = ""
        for p in path:
            if isinstance(p, int):
                out += f"[{p}]"
            else:
                out += ("." if out else "") + p
        return out

    def error(self, path: tuple, message: str) -> None:
        self.bad.add(tuple(path))
        self.errors.append(f"{self.where(path)}: {self.dotted(path)}: {message}")

    def warn(self, path: tuple, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {self.dotted(path)}: {message}")

    def table(self, obj: Any, path: tuple, allowed: Iterable[str]) -> dict:
        """Check *obj* is a table whose keys are all in *allowed*."""
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.error(path, f"expected a table, got {typename(obj)}")
            return {}
        known = list(allowed)
        for key in obj:
            if key not in known:
                hint = difflib.get_close_matches(key[:100], known, n=1)
                if hint:  # the key meant is as good as missing
                    self.bad.add(path + (hint[0],))
                also = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(sorted(known))}"
                self.error(path + (key,), f"unknown key{also}")
        return obj

    def tables(self, obj: dict, path: tuple, key: str, expected: str) -> list:
        """The array of tables ``obj[key]`` ([] when absent; an error when not an array)."""
        raw = obj.get(key, [])
        if not isinstance(raw, list):
            self.error(path + (key,), f"expected {expected}")
            return []
        return raw

    def get(self, obj: dict, path: tuple, key: str, kind: str, default: Any = None, *, required: bool = False) -> Any:
        """Read one value; kind is str|int|bool|duration|strlist|strmap|argv|paramsmap."""
        p = path + (key,)
        if key not in obj:
            if required and p not in self.bad:  # a misspelt key was already reported as such
                self.error(p, f"missing (required: {kind_words(kind)})")
            return default
        try:
            return convert(obj[key], kind)
        except ValueError as e:
            self.error(p, str(e))
            return default
