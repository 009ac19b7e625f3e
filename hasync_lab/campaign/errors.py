"""Exceptions of the simulator's daemon model."""


class DaemonDied(Exception):
    """A call into the FSM raised: the simulated daemon died with it (audit 4)."""
