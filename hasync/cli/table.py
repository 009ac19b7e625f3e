"""A static verb table, as both command lines use it (`hasync` and the harness's
`hasync lab`): each row names a verb, its one-line help and the module that handles it.

:func:`parse` goes in two passes. The first parser has every verb of the table, each
taking the rest of argv as it is: it prints --help, refuses a mistyped verb and finds
the verb typed, importing nothing. Then :func:`load` -- the one lazy import of either
command line -- imports that verb's module, and argv is parsed again with the parsers
the module's ``register(sub)`` adds.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import NamedTuple

Register = Callable[[argparse._SubParsersAction], None]


class Verb(NamedTuple):
    name: str
    help: str
    module: str  # register(sub) adds the verb's parser and handler


def add_verbs(sub: argparse._SubParsersAction, verbs: Iterable[Verb]) -> None:
    """The first pass's verbs: each takes everything after it (no option prefix, so
    --help too) for the second pass."""
    for verb in verbs:
        p = sub.add_parser(verb.name, help=verb.help, add_help=False, prefix_chars="\0")
        p.add_argument("rest", nargs=argparse.REMAINDER)


def load(module: str) -> ModuleType:
    """The one lazy import (see the module doc)."""
    return importlib.import_module(module)


def parse(build: Callable[[Register | None], argparse.ArgumentParser], verbs: Sequence[Verb], argv: list[str],
          dest: str) -> tuple[argparse.Namespace, ModuleType] | None:
    """argv parsed by the typed verb's own parser, and the verb's module; None when no
    verb was typed (the help was printed). *build(register)* makes the root parser with
    the verbs *register* adds (None: add_verbs(VERBS)); *dest* is its subparsers' dest."""
    table = build(None)
    found = getattr(table.parse_args(argv), dest)
    if found is None:
        table.print_help()
        return None
    module = load(next(v.module for v in verbs if v.name == found))
    return build(module.register).parse_args(argv), module
