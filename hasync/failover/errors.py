"""Why the failover daemon cannot start (typed: the CLI turns them into a message and an
exit status; library code never exits the process)."""

from __future__ import annotations


class StartupError(Exception):
    """The daemon cannot start; the message says why (`hasync failover` prints it, exit 1)."""


class BadTiming(StartupError):
    """[heartbeat] timing breaks heartbeat's start-up rules."""


class AlreadyRunning(StartupError):
    """Another failover daemon answers on the control socket."""

