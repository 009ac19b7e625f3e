"""What every verb module shares: the config file and its loading, error lines, JSON.

Free of rich on purpose: `hasync failover run` imports this module and not the
renderings (views.py), so the daemon, whose memory is locked (mlockall) on both nodes,
does not carry rich's ~5 MB. An error line is "error: MESSAGE" on stderr, "error" in red
on a terminal, as rich prints it elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from hasync import config, model

CONFIG_HELP = f"cluster config (default: $HASYNC_CONFIG or {config.DEFAULT_CONFIG})"

Handler = Callable[[argparse.Namespace], int]
# How a verb module's typed errors end the command: exception type -> (exit status,
# label). The label starts the message: "error" (red on a terminal), "hasync VERB" (plain),
# or None (the message alone).
ErrorMap = dict[type[BaseException], tuple[int, str | None]]


def config_option(p: argparse.ArgumentParser) -> None:
    """-c/--config after the verb too (`hasync check -c FILE`); the root's otherwise."""
    p.add_argument("-c", "--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)


def dirs_options(p: argparse.ArgumentParser) -> None:
    """Where the failover daemon's files are: for the daemon and the commands that talk to it."""
    p.add_argument("--run-dir", metavar="DIR", help="where the control socket and role file live (default: $HASYNC_RUN_DIR or /run/hasync)")
    p.add_argument("--state-dir", metavar="DIR", help="timeline and generation (default: $HASYNC_FAILOVER_STATE_DIR or /var/lib/hasync/failover)")


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


def print_error(message: str, label: str | None = "error") -> None:
    """One message on stderr: "error: ..." (see the module doc), "LABEL: ...", or bare."""
    if label == "error" and _color(sys.stderr):
        label = "\x1b[31merror\x1b[0m"
    sys.stderr.write(f"{label}: {message}\n" if label else f"{message}\n")
    sys.stderr.flush()


def _color(stream: Any) -> bool:
    """Whether rich would colour *stream*: a terminal, NO_COLOR unset, TERM not dumb."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") in ("dumb", "unknown"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
