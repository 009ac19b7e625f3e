"""The command line: the only place that parses argv and prints for people.

Each area registers its own subcommands through ``register(subparsers)``:
config (check, haresources), sync (watch, sync), failover (failover, status,
standby, takeover, migrate) and bootstrap (bootstrap, doctor). A handler is a function
``handler(args) -> int`` stored as ``args.func``.

``hasync lab ...`` belongs to the harness (package ``hasync_lab``, the ``lab`` extra),
which the product never imports: :func:`run_plugin_verb` finds it through the
``hasync.verbs`` entry point group, only when the verb is typed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hasync import __version__, config
from hasync.config import DEFAULT_CONFIG, ConfigError

# (module, what it registers) -- keep in the order they appear in --help.
AREAS = (
    "hasync.config_cli",
    "hasync.failover.cli",
    "hasync.sync.cli",
    "hasync.bootstrap.cli",
    "hasync.export.cli",
)

# Verbs another installed package provides (entry point group "hasync.verbs", each
# ``main(argv) -> int``): name -> (one-line help, how to get it when it is missing).
PLUGIN_GROUP = "hasync.verbs"
PLUGIN_VERBS = {
    "lab": (
        "a virtual cluster on this machine (namespaces or VMs)",
        "the lab harness is not installed: pip install 'hasync[lab]' from a source checkout, "
        "or `make setup`",
    ),
}

DESCRIPTION = """\
hasync builds and runs a two-node active/passive HA storage cluster:
DRBD -> LVM -> filesystem -> virtual IP -> NFS server.

  hasync check                 validate /etc/hasync/cluster.toml
  hasync status                what the cluster is doing, at a glance
  hasync standby|takeover|migrate   move services safely
  hasync watch                 keep configured files identical on both nodes
  hasync bootstrap             lay down DRBD/LVM/NFS state on a node
  hasync doctor                find known pitfalls on a running cluster
  hasync lab up|down|...       a virtual two-node lab on this machine
"""

EPILOG = """\
The config file is /etc/hasync/cluster.toml unless -c/--config or the HASYNC_CONFIG
environment variable names another. Exit status: 0 success, 1 failure, 2 bad input
(config errors, bad arguments).
"""


def config_path(args: argparse.Namespace) -> str:
    """The config file this invocation uses: -c, then $HASYNC_CONFIG, then the default."""
    return config.config_path(getattr(args, "config", None))


def load_config(args: argparse.Namespace):
    """Load and validate the cluster config or exit 2 with every error printed (file:line)."""
    try:
        return config.load(config_path(args))
    except ConfigError as e:
        from rich.console import Console
        from rich.markup import escape

        err = Console(stderr=True)
        for issue in e.issues:
            err.print(f"[red]error[/red]: {escape(issue)}", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hasync",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hasync {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help=f"cluster config (default: $HASYNC_CONFIG or {DEFAULT_CONFIG})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in AREAS:
        importlib.import_module(modname).register(sub)
    for verb, (help_, _) in PLUGIN_VERBS.items():
        # Everything after the verb goes to the plugin untouched, --help and "--" too:
        # no option prefix the plugin's arguments could start with.
        p = sub.add_parser(verb, help=help_, add_help=False, prefix_chars="\0")
        p.add_argument("plugin_argv", nargs=argparse.REMAINDER)
        p.set_defaults(func=run_plugin_verb, plugin_verb=verb)
    return parser


def run_plugin_verb(args: argparse.Namespace) -> int:
    """Load the package behind a plugin verb (the one lazy import of the CLI) and run it;
    exit 2 with one line saying how to install it when it is missing."""
    import importlib.metadata  # here, not at the top: ~40-80 ms that no other verb needs

    verb = args.plugin_verb
    found = importlib.metadata.entry_points(group=PLUGIN_GROUP, name=verb)
    try:
        main = next(iter(found)).load()
    except (StopIteration, ImportError) as e:
        why = f" ({e})" if isinstance(e, ImportError) else ""
        print(f"hasync {verb}: {PLUGIN_VERBS[verb][1]}{why}", file=sys.stderr)
        return 2
    return int(main(args.plugin_argv) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
