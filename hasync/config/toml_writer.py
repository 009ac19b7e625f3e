"""TOML out of hasync's values (pure).

Everything TOML cannot hold literally is escaped, so what the import writes always
parses, whatever bytes its input had; comments are made single-line and printable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string holding *text*. Printable characters are written as they are
    (the output is UTF-8); everything else as \\uXXXX / \\UXXXXXXXX (json.dumps wrote
    astral characters as UTF-16 surrogate pairs, which TOML rejects). A lone surrogate
    is no character at all and becomes U+FFFD."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\uFFFD")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}")
    out.append('"')
    return "".join(out)


def toml_comment(text: str) -> str:
    """*text* made safe for a comment: any printable character as it is (quotes too), line
    breaks and other control characters (which TOML forbids there) as \\uXXXX."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF:
            out.append("\\uFFFD")
        elif ch.isprintable() or ch == "\t":
            out.append(ch)
        else:
            out.append(f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}")
    return "".join(out)


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_string(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


@dataclass
class Table:
    """One ``[header]`` / ``[[header]]`` with its keys; each key and the header may carry
    a comment, and ``lines`` are comment lines written after the keys."""

    header: str
    items: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, comment)
    comment: str = ""
    lines: list[str] = field(default_factory=list)

    def add(self, key: str, value: object, comment: str = "") -> Table:
        self.items.append((key, value, comment))
        return self


def _commented(text: str, comment: str) -> str:
    return f"{text}   # {toml_comment(comment)}" if comment else text


def render(tables: list[Table], preamble: list[str] = ()) -> str:  # type: ignore[assignment]
    out = [f"# {toml_comment(line)}" for line in preamble] + ([""] if preamble else [])
    for t in tables:
        out.append(_commented(t.header, t.comment))
        out += [_commented(f"{toml_key(k)} = {toml_value(v)}", c) for k, v, c in t.items]
        out += [f"# {toml_comment(line)}" for line in t.lines]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
