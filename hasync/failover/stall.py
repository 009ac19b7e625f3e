"""Late wake-ups of the daemon's main loop: the host did not run the daemon (pure).

The main loop knows when it must wake next (the next heartbeat to send, an FSM deadline).
When it wakes much later than that, the *host* did not schedule it: CPU starvation, a
hypervisor pause, swapping, a SIGSTOP. A peer declared dead or late heartbeats around
such a moment are this node's trouble, not the network's: the operator sees both, the
stall in the log, the timeline and ``hasync status`` (``daemon.scheduler_stalls``).

``StallMeter.observe(due, now)`` is fed every wake-up later than the worst so far or than
the threshold; it keeps the worst lateness of any wake-up (below the threshold too: how
close this host came, the figure to shorten deadtime by), counts the late ones and says
when one is worth a log line (at most one per ``report_interval``; the others are
counted and summed up in the next line). ``now`` and ``due`` are monotonic seconds
passed in: tested on a fake clock (tests/unit/test_failover_stall.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stall:
    """A late wake-up worth reporting."""

    late_s: float  # how much later than due the loop woke
    due: float  # when it should have woken (monotonic)
    count: int  # late wake-ups so far (this one included)
    unreported: int  # late wake-ups since the previous report that were not logged
    worst_unreported_s: float  # the worst of those
    busy_s: float = 0.0  # how much of late_s the loop was still at work (past due before it even waited)

    def message(self, threshold_s: float) -> str:
        more = ""
        if self.unreported:
            more = f"; {self.unreported} more since the last warning (worst {self.worst_unreported_s * 1000:.0f} ms)"
        if self.busy_s * 2 >= self.late_s:
            return (
                f"slow main loop: it ran {self.late_s * 1000:.0f} ms late (threshold {threshold_s * 1000:.0f} ms), "
                f"{self.busy_s * 1000:.0f} ms of it in the daemon's own work (a slow disk or control command?): "
                f"heartbeats went out late{more}"
            )
        return (
            f"scheduler stall: the main loop woke {self.late_s * 1000:.0f} ms late "
            f"(threshold {threshold_s * 1000:.0f} ms): this host did not run the daemon, so late heartbeats or "
            f"a peer declared dead right now may be this host's stall, not the network{more}"
        )


def stall_threshold(warntime: float) -> float:
    """How late a wake-up must be to count: half of warntime (a stall that long eats most
    of the margin before a late-heartbeat warning), at least 5 ms (timer granularity)."""
    return max(0.005, warntime / 2)


@dataclass
class StallMeter:
    threshold: float
    report_interval: float = 1.0
    count: int = 0
    worst_s: float = 0.0  # the latest any wake-up was, stall or not
    last_at: float | None = None  # monotonic time of the last late wake-up
    last_late_s: float = 0.0
    _last_report: float | None = None
    _unreported: int = 0
    _worst_unreported: float = 0.0

    def observe(self, due: float, now: float, waited_at: float | None = None) -> Stall | None:
        """The loop meant to wake at *due* and woke at *now*; it began to wait at
        *waited_at* (after due: it was still busy). A Stall when it is worth a warning,
        None otherwise (on time, or late but rate-limited: counted)."""
        late = now - due
        if late > self.worst_s:
            self.worst_s = late
        if late <= self.threshold:
            return None
        self.count += 1
        self.last_at = now
        self.last_late_s = late
        if self._last_report is not None and now - self._last_report < self.report_interval:
            self._unreported += 1
            self._worst_unreported = max(self._worst_unreported, late)
            return None
        busy = max(0.0, min(late, waited_at - due)) if waited_at is not None else 0.0
        st = Stall(late, due, self.count, self._unreported, self._worst_unreported, busy)
        self._last_report = now
        self._unreported = 0
        self._worst_unreported = 0.0
        return st

    def recent(self, now: float, window: float = 60.0) -> bool:
        """A late wake-up within the last *window* seconds."""
        return self.last_at is not None and now - self.last_at <= window

    def watch_above(self) -> float:
        """The lateness from which the next wake-up must be observed: past the worst so
        far (a new worst) or past the threshold (a stall), whichever is lower. The loop
        compares against this and calls observe() only then: one float compare a wake-up."""
        return min(self.threshold, self.worst_s)

    def snapshot(self, now: float) -> dict:
        return {
            "scheduler_stalls": self.count,
            "stall_threshold_ms": round(self.threshold * 1000, 1),
            "worst_late_wake_ms": round(self.worst_s * 1000, 1),
            "last_stall_ms": round(self.last_late_s * 1000, 1) if self.last_at is not None else None,
            "last_stall_ago_s": round(now - self.last_at, 1) if self.last_at is not None else None,
        }


@dataclass
class Throttle:
    """At most one warning of a kind per *interval*; the ones in between are counted and
    named in the next (pure: ``now`` passed in). Late-heartbeat warnings go through one:
    at a tight warntime a jittery network can make dozens a second, each a log line and
    a timeline write, which buries the line that matters and costs the daemon CPU."""

    interval: float = 1.0
    total: int = 0
    _last: float | None = None
    _held: int = 0

    def admit(self, now: float) -> int | None:
        """None: held back (counted). Otherwise log it, and this many were held back since
        the previous one."""
        self.total += 1
        if self._last is not None and now - self._last < self.interval:
            self._held += 1
            return None
        held, self._held, self._last = self._held, 0, now
        return held
