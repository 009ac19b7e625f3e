"""What the membership FSM keeps across daemon restarts (``membership_data.Persisted``),
in the state directory, next to the generation counter:

  <state_dir>/peer-generation   "NODE GENERATION": the highest generation ever accepted
                                from the peer (a replay of anything older is refused,
                                also right after this daemon restarts)
  <state_dir>/epoch             the takeover epoch this node last took (a restarted daemon
                                that adopts the running chain keeps its claim to it)
  <state_dir>/epoch.GROUP       with several resource groups: each group's own epoch
  <state_dir>/maintenance       present: maintenance mode (`hasync maintenance on`)
  <state_dir>/stopped           present: the chain is stopped on purpose (`hasync stop`)
  <state_dir>/settings-new      present: this node changed one of the two above and the
                                peer has not shown it yet (its copy is the newer one)
  <state_dir>/standby           present: this node is in operator standby (`hasync standby`)

The four operator files hold one line, "since <unix time> <ISO time>", for people and for
`hasync doctor` (how long maintenance has been on); only their presence counts, so an
admin may create or remove one by hand while the daemon is down.

Each is written atomically, and only when it changes (the FSM's ``Persist`` action): when
the peer restarts, this node takes the chain or an operator setting changes, not per
heartbeat. A missing or unreadable number counts as 0 (and the unreadable one is reported).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

from hasync.effects.files import atomic_write
from hasync.failover.membership_data import Persisted

PEER_GENERATION = "peer-generation"
EPOCH = "epoch"
# Persisted field -> its marker file
MARKERS = {"maintenance": "maintenance", "stopped": "stopped", "settings_new": "settings-new", "operator_standby": "standby"}


def _read_int(p: Path, what: str, problems: list[str]) -> int:
    try:
        return max(int(p.read_text().strip()), 0)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as e:
        problems.append(f"{p}: cannot read {what} ({e}): starting from 0")
        return 0


def load(state_dir: Path, peer: str, groups: tuple[str, ...] = ()) -> tuple[Persisted, list[str]]:
    """The persisted state (for *peer*; with several resource *groups*, each one's epoch),
    and a message per file that could not be read."""
    problems: list[str] = []
    gen = epoch = 0
    p = state_dir / PEER_GENERATION
    try:
        name, _, value = p.read_text().strip().partition(" ")
        if name == peer:  # a file about another node (the config changed) is not this peer's
            gen = int(value)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        problems.append(f"{p}: cannot read the peer's highest generation ({e}): starting from 0")
    epoch = _read_int(state_dir / EPOCH, "the last epoch", problems)
    group_epochs = tuple((g, _read_int(state_dir / f"{EPOCH}.{g}", f"group {g}'s last epoch", problems)) for g in groups)
    markers = {field: (state_dir / name).exists() for field, name in MARKERS.items()}
    return Persisted(peer_generation=max(gen, 0), epoch=epoch, maintenance=markers["maintenance"], stopped=markers["stopped"],
                     settings_new=markers["settings_new"], operator_standby=markers["operator_standby"],
                     group_epochs=group_epochs), problems


def save(state_dir: Path, peer: str, new: Persisted, old: Persisted, wall: float | None = None) -> None:
    """Write what changed from *old* to *new* (OSError: the caller reports it)."""
    if new.peer_generation != old.peer_generation:
        p = state_dir / PEER_GENERATION
        if new.peer_generation:
            atomic_write(p, f"{peer} {new.peer_generation}\n")
        else:
            p.unlink(missing_ok=True)
    if new.epoch != old.epoch:
        atomic_write(state_dir / EPOCH, f"{new.epoch}\n")
    before = dict(old.group_epochs)
    for g, epoch in new.group_epochs:
        if before.get(g) != epoch:
            atomic_write(state_dir / f"{EPOCH}.{g}", f"{epoch}\n")
    for field, name in MARKERS.items():
        on = getattr(new, field)
        if on != getattr(old, field):
            if on:
                t = time.time() if wall is None else wall
                atomic_write(state_dir / name, f"since {t:.0f} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))}\n")
            else:
                (state_dir / name).unlink(missing_ok=True)


def since(state_dir: Path, field: str) -> float | None:
    """When an operator marker (a Persisted field name) was set: its unix time, or None
    (not set; a file made by hand without the line counts from its mtime)."""
    p = state_dir / MARKERS[field]
    try:
        words = p.read_text().split()
        return float(words[1]) if len(words) > 1 and words[0] == "since" else p.stat().st_mtime
    except (OSError, ValueError):
        return None


def edit_offline(state_dir: Path, peer: str, **changes: bool) -> Persisted:
    """For a daemon that is not running: set operator markers (Persisted field names) in
    its state directory; it starts with them. A cluster-wide setting changed here is the
    newer copy (settings-new): the peer takes it when the two next talk."""
    old, _ = load(state_dir, peer)
    new = replace(old, **changes)  # type: ignore[arg-type]  # (operator markers: bool fields only)
    if (new.maintenance, new.stopped) != (old.maintenance, old.stopped):
        new = replace(new, settings_new=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        save(state_dir, peer, new, old)
    except OSError:
        # one marker written, the next not (maintenance without settings-new: the peer's
        # older copy would win): put back what was there, then say why
        with contextlib.suppress(OSError):
            save(state_dir, peer, old, new)
        raise
    return new


def forget_peer(state_dir: Path, node: str) -> bool:
    """Forget *node*'s highest generation (it was reinstalled and its clock went back):
    True if there was one to forget. For a stopped daemon; a running one is told over
    its control socket (it rewrites the file itself)."""
    p = state_dir / PEER_GENERATION
    try:
        name = p.read_text().split(" ", 1)[0]
    except FileNotFoundError:
        return False
    except OSError:
        name = node  # unreadable: remove it anyway
    if name != node:
        return False
    p.unlink(missing_ok=True)
    return True
