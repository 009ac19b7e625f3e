"""Clocks: the core takes ``now`` as an argument; effects get it from one of these.

``now()`` is monotonic seconds (deadlines, durations); ``wall()`` is the wall clock
(seconds since the epoch: timestamps for people, the kernel's receive timestamps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class MonotonicClock:
    # the functions themselves, not wrappers: the failover daemon reads the clock several
    # times per wake-up (100 a second at 10 ms keepalive) and a Python frame each costs
    now = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


@dataclass
class FakeClock:
    t: float = 1000.0
    epoch: float = 1_700_000_000.0  # wall() = epoch + t

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.epoch + self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
