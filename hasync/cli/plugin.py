"""`hasync lab ...`: verbs another installed package provides (entry point group
``hasync.verbs``, each ``main(argv) -> int``). The harness (package ``hasync_lab``, the
``lab`` extra) provides ``lab``; the product never imports it by name."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

GROUP = "hasync.verbs"
# verb -> how to get it when it is missing
MISSING = {
    "lab": "the lab harness is not installed: pip install 'hasync[lab]' from a source checkout, or `make setup`",
}


def register(sub) -> None:
    for verb in MISSING:
        # Everything after the verb goes to the plugin untouched, --help and "--" too:
        # no option prefix the plugin's arguments could start with.
        p = sub.add_parser(verb, add_help=False, prefix_chars="\0")
        p.add_argument("plugin_argv", nargs=argparse.REMAINDER)
        p.set_defaults(func=run_plugin_verb, plugin_verb=verb)


def run_plugin_verb(args: argparse.Namespace) -> int:
    """Load the package behind the verb and run it; exit 2 with one line saying how to
    install it when it is missing."""
    verb = args.plugin_verb
    try:
        main = load(entry_point(verb, sys.path))
    except (LookupError, ImportError, AttributeError) as e:
        why = "" if isinstance(e, LookupError) else f" ({e})"
        print(f"hasync {verb}: {MISSING[verb]}{why}", file=sys.stderr)
        return 2
    return int(main(args.plugin_argv) or 0)


def entry_point(verb: str, path: list[str]) -> str:
    """``module:attr`` of *verb* in GROUP, from the entry_points.txt of the distributions
    installed on *path* (the first one that has it, as importlib.metadata finds them).

    Read here rather than through importlib.metadata: importing that costs ~160 M
    instructions, a third of `hasync lab status`'s start, and every lab fence from a node
    runs `hasync lab fence` (docs/benchmarks.md, CLI start-up). Raises LookupError when
    no installed distribution provides the verb."""
    for d in path:
        try:
            names = sorted(os.listdir(d or "."))
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(d or ".", n, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            found = _in_group(text, verb)
            if found:
                return found
    raise LookupError(verb)


def _in_group(text: str, verb: str) -> str | None:
    """The value of *verb* in GROUP's section of an entry_points.txt (an ini file)."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == GROUP and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            if name.strip() == verb:
                return value.strip()
    return None


def load(value: str):
    """``module:attr.attr [extras]`` -> the object (an entry point's reference)."""
    module, _, attrs = value.split("[", 1)[0].strip().partition(":")
    obj = importlib.import_module(module.strip())
    for name in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, name)
    return obj
