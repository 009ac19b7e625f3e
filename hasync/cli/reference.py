"""The whole command line as data: every command (``hasync``, ``hasync check``,
``hasync sync status``, ...) with its argparse parser, its one-line help and its options.

The man page (manpage.py), the bash completion (completion.py) and the docs' test
(tests/unit/test_docs_truth.py) read the command line from here, so none of them can
drift from what ``--help`` prints. Building it imports every verb module of the table
(the second pass of table.parse, for all verbs at once); a command's own run still
imports only its verb's module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from hasync.cli import table
from hasync.cli.table import Register, Verb


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # "-c", "--config"
    metavar: str | None  # None: a switch that takes no value
    help: str
    choices: tuple[str, ...] = ()
    required: bool = False  # positionals: must be given


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # () is the root; ("sync", "status")
    parser: argparse.ArgumentParser
    help: str  # one line
    options: tuple[Option, ...]
    positionals: tuple[Option, ...]  # flags = (its name,)
    subcommands: tuple[str, ...]  # the words that may follow
    subparsers: dict[str, argparse.ArgumentParser]

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(f for o in self.options for f in o.flags)


def full_parser(build: Callable[[Register | None], argparse.ArgumentParser], verbs: Sequence[Verb]) -> argparse.ArgumentParser:
    """The root parser with every verb's real parser (each module's register(sub) once)."""
    modules = list(dict.fromkeys(v.module for v in verbs))

    def register_all(sub: argparse._SubParsersAction) -> None:
        for name in modules:
            table.load(name).register(sub)

    return build(register_all)


def _metavar(action: argparse.Action) -> str | None:
    if action.nargs == 0:
        return None
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper()


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    default = action.default
    if "%(default)" in text and default is not argparse.SUPPRESS:
        text = text % {"default": default}
    return " ".join(text.split())


def _first_line(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text.split(". ")[0].rstrip(".") if text else ""


def walk(parser: argparse.ArgumentParser, verbs: Sequence[Verb] = (), words: tuple[str, ...] = (),
         help: str = "") -> Iterator[Command]:
    """Every command under *parser*, depth first in the order of --help. *verbs* gives the
    top level's one-line helps (the table's); below it, the subparsers' help=."""
    options: list[Option] = []
    positionals: list[Option] = []
    subs: dict[str, argparse.ArgumentParser] = {}
    sub_help: dict[str, str] = {v.name: v.help for v in verbs}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subs.update(action.choices)
            for choice in action._choices_actions:
                sub_help.setdefault(choice.dest, choice.help or "")
        elif action.help == argparse.SUPPRESS:
            continue
        elif action.option_strings:
            choices = tuple(map(str, action.choices)) if action.choices else ()
            options.append(Option(tuple(action.option_strings), _metavar(action), _help(action), choices))
        elif action.nargs != argparse.REMAINDER:
            required = action.nargs not in ("?", "*")
            choices = tuple(map(str, action.choices)) if action.choices else ()
            name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            positionals.append(Option((name,), None, _help(action), choices, required))
    yield Command(words, parser, help or _first_line(parser.description), tuple(options), tuple(positionals),
                  tuple(subs), subs)
    for name, sub in subs.items():
        yield from walk(sub, (), words + (name,), sub_help.get(name) or _first_line(sub.description))


def product_commands() -> list[Command]:
    """Every command of ``hasync`` (the product; ``lab`` only as the verb that hands its
    arguments to the harness)."""
    from hasync import cli

    return list(walk(full_parser(cli.build_parser, cli.VERBS), cli.VERBS, ("hasync",)))
