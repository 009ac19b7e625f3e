"""The fence commands (pure): what runs to power off the peer, or this node itself.

``[fencing].command`` is an argv template: ``{node}`` and ``{address}`` are replaced by
the target's name and address, and the command also gets them as $HASYNC_FENCE_NODE and
$HASYNC_FENCE_ADDRESS. The daemon (before a takeover) and `hasync fence NODE` (DRBD's
fence-peer handler) both run what ``fence_command`` returns. When this node cannot stop
its resources it fences itself: ``[fencing].self_command`` (same placeholders, no
environment) when on_stop_failure is "fence-self" and one is configured, else
``reboot -f``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync import model


@dataclass(frozen=True)
class FenceCommand:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    timeout: float

    @property
    def text(self) -> str:
        """The command line as people read it in messages."""
        return " ".join(self.argv)


def fill(template: tuple[str, ...], node: model.Node) -> tuple[str, ...]:
    return tuple(a.replace("{node}", node.name).replace("{address}", node.address) for a in template)


def fence_command(fencing: model.Fencing, target: model.Node) -> FenceCommand:
    """What fences *target* (the peer): the configured command, filled in."""
    env = (("HASYNC_FENCE_NODE", target.name), ("HASYNC_FENCE_ADDRESS", target.address))
    return FenceCommand(fill(fencing.command, target), env, fencing.timeout)


def self_fence_command(fencing: model.Fencing, me: model.Node, how: str) -> FenceCommand:
    """What takes this node down after a stop failure (*how*: on_stop_failure)."""
    if how == "fence-self" and fencing.self_command:
        return FenceCommand(fill(fencing.self_command, me), (), fencing.timeout)
    return FenceCommand(("reboot", "-f"), (), fencing.timeout)
