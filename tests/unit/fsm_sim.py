"""Two nodes' membership FSMs on a fake clock, wired together in memory: the loop the FSM
tests (one chain: test_failover_membership.py, several groups: test_failover_groups.py)
share.

A test's node says how its jobs wait and are answered (``queue``, ``finish_jobs``); its
sim says how packets travel (``send``) and what it checks after each step
(``after_step``).
"""

from __future__ import annotations

from hasync.failover.membership import Event, Job, Send


class FakeNode:
    """One node: keeps the FSM's events, sends when the FSM asks, keeps what it persists."""

    keepalive = 0.05  # s between heartbeats (a node with a config reads its own)

    def handle(self, actions) -> None:
        for a in actions:
            if isinstance(a, Event):
                self.events.append(a)
            elif isinstance(a, Send):
                self.send_now = True
            elif isinstance(a, Job):
                self.queue(a)
            elif type(a).__name__ == "Persist":
                self.disk = a.state

    def queue(self, job: Job) -> None:
        raise NotImplementedError

    def finish_jobs(self) -> None:
        raise NotImplementedError

    def command(self, cmd: str, **kw) -> tuple[bool, str]:
        """An operator command (`hasync standby` ...) on this node, its actions handled."""
        ok, msg, acts = self.fsm.command(self.sim.now, cmd, **kw)
        self.handle(acts)
        return ok, msg

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class TwoNodeSim:
    """Each step: every live node finishes its due jobs, sends when its FSM asks or its
    keepalive is due, and ticks; then the sim checks ground truth (``after_step``)."""

    def other(self, n):
        return self.n2 if n is self.n1 else self.n1

    def step(self) -> None:
        self.now += self.dt
        for n in self.nodes:
            if not n.alive:
                continue
            n.finish_jobs()
            if n.send_now or self.now >= n.next_send:
                n.send_now = False
                n.next_send = self.now + n.keepalive
                self.send(n)
            n.handle(n.fsm.tick(self.now))
        self.after_step()

    def after_step(self) -> None:
        pass

    def send(self, n) -> None:
        raise NotImplementedError

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()
