"""What the verb modules share: the config file and its loading, options, JSON, and
``ERRORS``, the mapping every module that loads the config starts its own from.

Free of rich on purpose: `hasync failover run` imports this module and not the
renderings (views.py), so the daemon, whose memory is locked (mlockall) on both nodes,
does not carry rich.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from hasync import config, model
from hasync.cli.errors import ErrorMap, error_doc, print_error

__all__ = ["ERRORS", "ErrorMap", "config_option", "config_path", "count", "daemon_parser", "dirs_options", "error_doc", "fail", "seconds", "wait_option", "load_cluster", "print_error",
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


def seconds(text: str) -> float:
    """argparse type: a number of seconds, > 0 and finite."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def count(text: str) -> int:
    """argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def wait_option(p: argparse.ArgumentParser) -> None:
    """How long a command that waits for the daemon's "done" waits."""
    p.add_argument("--wait", type=seconds, default=120.0, metavar="SECONDS", help="give up waiting after this long (default 120)")


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


def fail(args: argparse.Namespace, message: str, status: int) -> int:
    """End a command on an error: "error: MESSAGE" on stderr and, with --json, the same as
    one JSON object on stdout (what a script reading stdout gets instead of nothing)."""
    print_error(message)
    if getattr(args, "json", False):
        print(json.dumps(error_doc([message], status)), flush=True)
    return status

