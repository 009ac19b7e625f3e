"""What the verb modules share: the config file and its loading, options, JSON, and
``ERRORS``, the mapping every module that loads the config starts its own from.

Free of rich on purpose: `hasync failover run` imports this module and not the
renderings (views.py), so the daemon, whose memory is locked (mlockall) on both nodes,
does not carry rich.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from hasync import config, model
from hasync.cli.errors import ErrorMap, print_error

__all__ = ["ERRORS", "ErrorMap", "config_option", "config_path", "daemon_parser", "dirs_options", "wait_option", "load_cluster", "print_error",
           "print_json", "show_help"]

CONFIG_HELP = f"cluster config (default: $HASYNC_CONFIG or {config.DEFAULT_CONFIG})"

# a config error is bad input: exit 2, every problem on its own line (file:line: key: ...);
# NodeIdentityError (this host is none of the [[node]]s) is one
ERRORS: ErrorMap = {config.ConfigError: (2, "error")}

Handler = Callable[[argparse.Namespace], int]


def config_option(p: argparse.ArgumentParser) -> None:
    """-c/--config after the verb too (`hasync check -c FILE`); the root's otherwise."""
    p.add_argument("-c", "--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)


def dirs_options(p: argparse.ArgumentParser) -> None:
    """Where the failover daemon's files are: for the daemon and the commands that talk to it."""
    p.add_argument("--run-dir", metavar="DIR", help="where the control socket and role file live (default: $HASYNC_RUN_DIR or /run/hasync)")
    p.add_argument("--state-dir", metavar="DIR", help="timeline and generation (default: $HASYNC_FAILOVER_STATE_DIR or /var/lib/hasync/failover)")


def daemon_parser(sub, name: str, description: str) -> argparse.ArgumentParser:
    """The parser of a verb that talks to the failover daemon: its help as written,
    --run-dir/--state-dir, -c."""
    p = sub.add_parser(name, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    dirs_options(p)
    config_option(p)
    return p


def wait_option(p: argparse.ArgumentParser) -> None:
    """How long a command that waits for the daemon's "done" waits."""
    p.add_argument("--wait", type=float, default=120.0, metavar="SECONDS", help="give up waiting after this long (default 120)")


def config_path(args: argparse.Namespace) -> str:
    """The config file this invocation uses: -c, then $HASYNC_CONFIG, then the default."""
    return config.config_path(getattr(args, "config", None))


def load_cluster(args: argparse.Namespace) -> model.Cluster:
    """The validated cluster config; ConfigError (exit 2, every problem file:line) if not."""
    return config.load(config_path(args))


def show_help(p: argparse.ArgumentParser, status: int = 2) -> Handler:
    """A handler printing *p*'s help: a verb typed without the action it needs."""

    def handler(args: argparse.Namespace) -> int:
        p.print_help()
        return status

    return handler


def print_json(doc: Any, **kw: Any) -> None:
    print(json.dumps(doc, indent=2, **kw))
