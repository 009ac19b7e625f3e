"""What the membership FSM keeps across daemon restarts (``membership_data.Persisted``),
in the state directory, next to the generation counter:

  <state_dir>/peer-generation   "NODE GENERATION": the highest generation ever accepted
                                from the peer (a replay of anything older is refused,
                                also right after this daemon restarts)
  <state_dir>/epoch             the takeover epoch this node last took (a restarted daemon
                                that adopts the running chain keeps its claim to it)

Each is written atomically, and only when it changes (the FSM's ``Persist`` action): when
the peer restarts or this node takes the chain, not per heartbeat. A missing or
unreadable file counts as 0 (and the unreadable one is reported).
"""

from __future__ import annotations

from pathlib import Path

from hasync.effects.files import atomic_write
from hasync.failover.membership_data import Persisted

PEER_GENERATION = "peer-generation"
EPOCH = "epoch"


def load(state_dir: Path, peer: str) -> tuple[Persisted, list[str]]:
    """The persisted state (for *peer*), and a message per file that could not be read."""
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
    p = state_dir / EPOCH
    try:
        epoch = int(p.read_text().strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        problems.append(f"{p}: cannot read the last epoch ({e}): starting from 0")
    return Persisted(peer_generation=max(gen, 0), epoch=max(epoch, 0)), problems


def save(state_dir: Path, peer: str, new: Persisted, old: Persisted) -> None:
    """Write what changed from *old* to *new* (OSError: the caller reports it)."""
    if new.peer_generation != old.peer_generation:
        p = state_dir / PEER_GENERATION
        if new.peer_generation:
            atomic_write(p, f"{peer} {new.peer_generation}\n")
        else:
            p.unlink(missing_ok=True)
    if new.epoch != old.epoch:
        atomic_write(state_dir / EPOCH, f"{new.epoch}\n")


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
