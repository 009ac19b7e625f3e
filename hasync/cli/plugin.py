"""`hasync lab ...`: verbs another installed package provides (entry point group
``hasync.verbs``, each ``main(argv) -> int``). The harness (package ``hasync_lab``, the
``lab`` extra) provides ``lab``; the product never imports it by name."""

from __future__ import annotations

import argparse
import importlib.metadata
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
    found = importlib.metadata.entry_points(group=GROUP, name=verb)
    try:
        main = next(iter(found)).load()
    except (StopIteration, ImportError) as e:
        why = f" ({e})" if isinstance(e, ImportError) else ""
        print(f"hasync {verb}: {MISSING[verb]}{why}", file=sys.stderr)
        return 2
    return int(main(args.plugin_argv) or 0)
