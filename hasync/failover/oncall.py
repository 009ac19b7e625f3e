"""The on-call admin's use cases on the failover daemon: `hasync cleanup`, `maintenance
on|off`, `stop`, `start`, `standby [NODE]`, `online [NODE]` (the daemon's rules:
membership_operator.py), and `hasync history` (the records timeline.py keeps).

Each operator verb is one request on the control socket (protocol.Request, the same shape
the server parses); the daemon answers, streams the events (a cleanup's "found"/"did"
lines among them) and says when the command is over. When no daemon runs here, the
settings a daemon keeps in its state directory (maintenance, stopped, this node's standby)
are written there (persist.edit_offline): the daemon starts with them and, for the
cluster-wide ones, tells the peer. The rest needs a running daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hasync.failover import client, protocol
from hasync.failover.daemon import persist
from hasync.failover.host import DEFAULT_STATE_DIR, Paths
from hasync.failover.states import Command
from hasync.failover.timeline import load_history


@dataclass(frozen=True)
class Outcome:
    """How an operator verb ended: the daemon's last line (``last``), or what was written
    for a daemon that is not running (``offline``), or why nothing could be done (``error``;
    ``bad_input``: the user's --state-dir cannot hold the setting)."""

    last: dict | None = None
    offline: str = ""
    error: str = ""
    bad_input: bool = False

    @property
    def ok(self) -> bool:
        if self.last is not None:
            return bool(self.last.get("ok"))
        return bool(self.offline)


def request(cmd: str, node: str = "", resource: str = "", force: bool = False) -> protocol.Request:
    """The request an operator verb sends (*node*: the node it names, "" = this one)."""
    return protocol.Request(cmd, to=node, resource=resource, force=force)


# the Persisted field a daemon that is down gets, per verb: (field, value)
OFFLINE = {
    Command.MAINTENANCE_ON: ("maintenance", True),
    Command.MAINTENANCE_OFF: ("maintenance", False),
    Command.STOP: ("stopped", True),
    Command.START: ("stopped", False),
    Command.STANDBY: ("operator_standby", True),
    Command.ONLINE: ("operator_standby", False),
}
OFFLINE_SAYS = {
    "maintenance": ("maintenance mode {on}", "the daemon starts in it and takes {peer} along (this copy is the newer one)"),
    "stopped": ("the chain {stopped}", "the daemon starts with it and tells {peer} (this copy is the newer one)"),
    "operator_standby": ("this node {standby}", "the daemon starts with it"),
}


def offline_change(paths: Paths, req: protocol.Request, *, local: str, peer: str) -> str:
    """A daemon that is not running: write the setting *req* changes into its state
    directory; what was done, or "" when *req* needs the running daemon."""
    if req.cmd not in OFFLINE or req.to not in ("", local):
        return ""
    field, on = OFFLINE[Command(req.cmd)]
    d = paths.state_dir
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(20, "not a directory (the failover daemon's state directory)", str(d))
    if not d.parent.is_dir() and str(d) != DEFAULT_STATE_DIR:  # a mistyped --state-dir: no tree made for it
        raise FileNotFoundError(2, f"no such directory ({d.parent} does not exist either)", str(d))
    persist.edit_offline(d, peer, **{field: on})
    what, then = OFFLINE_SAYS[field]
    what = what.format(on="on" if on else "off", stopped="stopped on purpose" if on else "may run again",
                       standby="in operator standby" if on else "online (no operator standby)")
    return (f"the failover daemon is not running here: {what}, written to {paths.state_dir / persist.MARKERS[field]}"
            f" ({'created' if on else 'removed'}); {then.format(peer=peer)}")


def run(paths: Paths, req: protocol.Request, on_line: Callable[[dict], None], *, wait: float,
        names: Callable[[], tuple[str, str]] = lambda: ("", "")) -> Outcome:
    """Send *req* to the daemon and feed each line to *on_line*; with no daemon here, the
    offline change (*names*: this node and its peer, "" when unknown: no offline change).
    TimeoutError: no end in *wait*."""
    try:
        return Outcome(last=client.command(paths.socket, req, on_line, wait=wait))
    except client.NotRunning as e:
        if req.cmd == Command.CLEANUP:
            return Outcome(offline=f"{e}: nothing to clean up (the failure marks live in the daemon; "
                                   "it probes the chain again when it starts)")
        local, peer = names()
        try:
            done = offline_change(paths, req, local=local, peer=peer) if local and peer else ""
        except OSError as err:  # nothing is left half-written (persist.edit_offline)
            return Outcome(error=f"{e}, and the setting cannot be written for it: {err.filename}: {err.strerror} "
                                 "(nothing changed; --state-dir names the daemon's state directory)", bad_input=True)
        if done:
            return Outcome(offline=done)
        if req.to and req.to != local and req.cmd in (Command.STANDBY, Command.ONLINE):
            return Outcome(error=f"{e}: {req.to}'s standby is told through this node's daemon; "
                                 f"or run `hasync {req.cmd}` on {req.to}")
        return Outcome(error=str(e))


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryRow:
    """One failover or operator action, as `hasync history` lists it."""

    number: int  # 1 = the oldest kept; `hasync history show N`
    began: str  # wall clock, ISO 8601 UTC
    node: str  # the node that recorded it
    cause: str  # the record's first event (what opened it)
    kind: str  # detect, command, monitor, stop-failed, maintenance ...
    duration_ms: float | None  # None while in progress
    outcome: str  # the role the node settled in (active, standby, stop-failed) or "in progress"

    def as_dict(self) -> dict:
        return {"number": self.number, "began": self.began, "node": self.node, "cause": self.cause, "kind": self.kind,
                "duration_ms": self.duration_ms, "outcome": self.outcome}


def history_rows(records: list[dict]) -> list[HistoryRow]:
    """The records (oldest first, as timeline.read_history returns them) as rows."""
    return [HistoryRow(i, str(r.get("began", "")), str(r.get("node", "")), str(r.get("trigger", "")),
                       str(r.get("kind", "")), r.get("duration_ms"), str(r.get("result", "")))
            for i, r in enumerate(records, 1)]


class NoSuchRecord(LookupError):
    """`hasync history show N` with no record N (bad input)."""


class StateUnreadable(Exception):
    """The state directory (or history.jsonl in it) cannot be read: a --state-dir that
    names no directory, or one this user may not read (bad input)."""


def history(state_dir: Path) -> tuple[list[dict], int]:
    """The records `hasync history` lists (oldest first) and how many lines were not
    records (timeline.load_history); StateUnreadable when there is nothing to read."""
    try:
        return load_history(state_dir)
    except FileNotFoundError:
        raise StateUnreadable(f"{state_dir}: no such directory (the failover daemon keeps its history there: it has "
                              "not run on this node, or --state-dir / HASYNC_FAILOVER_STATE_DIR names another)") from None
    except OSError as e:
        hint = " (run as root)" if isinstance(e, PermissionError) else ""
        raise StateUnreadable(f"{e.filename or state_dir}: {e.strerror or e}{hint}") from None


def history_record(records: list[dict], number: int) -> dict:
    """Record *number* (1 = the oldest; -1 = the newest, as in Python)."""
    if not records:
        raise NoSuchRecord("no failover or operator action recorded yet")
    try:
        if number == 0:
            raise IndexError
        return records[number - 1 if number > 0 else number]
    except IndexError:
        raise NoSuchRecord(f"no record {number}: there are {len(records)} (1 is the oldest, -1 the newest)") from None
