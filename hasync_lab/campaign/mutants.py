"""FSM variants that bring back known defect classes (issue 12), to show the campaign
finds them. Each is a subclass of the real ``Membership`` (or a replacement of the
worker's status classifier) that touches only what the daemon itself touches: the
public methods, the action types and the state attributes the daemon reads (``job``,
``owned``, ``role``, ``epoch``, ``peer``). While the real FSM still has a defect, its
mutant behaves the same or worse; after the fix the mutant must still be found.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hasync.failover import chain
from hasync.failover.membership import Event, Job, JobResult, Membership, Send
from hasync.failover.packets import F_LEAVING

HOLDING = ("starting", "active", "stopping", "stop-failed", "probing")
_MUTANT_JOB_IDS = itertools.count(10**9)  # never the FSM's own job ids


class CompletePartialChain(Membership):
    """Issue 12 item 2: a partly running chain found at start-up is completed whatever
    the peer does, with an epoch above the peer's (today's main)."""

    def on_job_done(self, now, res):
        job = self.job
        if job is not None and job.id == res.job_id and job.kind == "probe":
            found = [r for r in self.cfg.resources if r in (res.owned or ())]
            if found and len(found) < len(self.cfg.resources):
                self.owned = found
                self.epoch = max(self.epoch, self.peer.epoch) + 1
                old, self.role = self.role, "starting"
                self.job = Job(next(_MUTANT_JOB_IDS), "start", reason="complete a partly running chain")
                return [Event("adopt", f"part of the chain runs here ({', '.join(found)}): completing it", "warn"),
                        Event("role", f"role {old} -> starting (partial chain)", "info", (("from", old), ("to", "starting"))),
                        Send(), self.job]
        return super().on_job_done(now, res)


class AcceptReplayedLeaving(Membership):
    """Issue 12 item 1: a ``leaving`` packet from a peer that is dead or not yet known is
    believed, whatever its generation or sequence (a replay makes the peer "left")."""

    def on_packet(self, now, link, pkt):
        pr = self.peer
        if (pkt.node == self.cfg.peer and pkt.cluster == self.cfg.cluster and pkt.flags & F_LEAVING
                and not pkt.owned and pkt.role not in HOLDING and pr.state in ("dead", "unknown")):
            pr.state, pr.died_at = "left", now
            pr.role, pr.owned, pr.flags = pkt.role, (), pkt.flags
            pr.dead_role, pr.dead_owned = pkt.role, ()
            return [Event("detect", f"{pr.name} leaves cleanly (released everything)", "info", (("reason", "peer-left"),))] + self.tick(now)
        return super().on_packet(now, link, pkt)


class StickyPingPass(Membership):
    """Issue 12 item 4: a ping tiebreak that passed once keeps counting for later deaths
    of the peer (forgotten only when a ping fails): a ping job asked for while an old
    pass is remembered is answered "ok" at once instead of being run."""

    _passed = False

    def _skip_pings(self, now, out):
        res = []
        for a in out:
            if type(a) is Job and a.kind == "ping" and self._passed:
                res += self.on_job_done(now, JobResult(a.id, True, "", "an old tiebreak pass (mutant)"))
            else:
                res.append(a)
        return res

    def on_job_done(self, now, res):
        job = self.job
        if job is not None and job.id == res.job_id and job.kind == "ping":
            self._passed = res.ok
        return self._skip_pings(now, super().on_job_done(now, res))

    def tick(self, now):
        return self._skip_pings(now, super().tick(now))

    def on_packet(self, now, link, pkt):
        return self._skip_pings(now, super().on_packet(now, link, pkt))


class TakeoverWithoutFence(Membership):
    """A takeover that skips fencing whatever the mode (the classic split brain)."""

    def __init__(self, cfg, now, generation=1, persisted=None):
        from dataclasses import replace

        super().__init__(replace(cfg, fencing_mode="off", fence_configured=False), now, generation, persisted)


class HandoverLostInStart(Membership):
    """The takeover defects of 2026-12-07 (issue 14's operator-unanswered audit): a
    handover asked for while the chain starts is dropped when the start succeeds (the
    peer's `hasync takeover` during our start is acknowledged, then lost), and a takeover
    is asked of the peer once only (not again when the peer could not be asked, or
    restarted and forgot it): the chain stays where it is, the takeover never finishes."""

    def on_job_done(self, now, res):
        job = self.job
        if job is not None and job.id == res.job_id and job.kind in ("start", "restart") and res.ok:
            self.standby_asks_at_start = self.standby_asks  # what the start's success cleared before the fix
        return super().on_job_done(now, res)

    def command(self, now, cmd, *args, **kw):
        r = super().command(now, cmd, *args, **kw)
        self.takeover_wanted = False  # asked once, or never
        return r


class Boom(Membership):
    """The self-test's FSM bug: a tick raises once the chain runs."""

    def tick(self, now):
        if self.role == "active":
            raise RuntimeError("boom: a bug in the FSM (campaign self-test)")
        return super().tick(now)


def stop_timeout_counts_as_stopped(res, exit_code: int, stdout: str) -> str:
    """Issue 12 item 3, for every resource type: any status that is not "running" after a
    stop (a timeout, a bus error, a unit stuck deactivating) means stopped."""
    return "running" if exit_code == 0 and chain.classify_status(res, exit_code, stdout) == "running" else "stopped"


@dataclass(frozen=True)
class Mutant:
    name: str
    issue: str
    description: str
    fsm: type = Membership
    classify: object = chain.classify_status
    hidden: bool = False  # self-test only


MUTANTS = {m.name: m for m in (
    Mutant("partial-chain", "12.2", CompletePartialChain.__doc__ or "", fsm=CompletePartialChain),
    Mutant("replay-leaving", "12.1", AcceptReplayedLeaving.__doc__ or "", fsm=AcceptReplayedLeaving),
    Mutant("stop-timeout-ok", "12.3", stop_timeout_counts_as_stopped.__doc__ or "", classify=stop_timeout_counts_as_stopped),
    Mutant("ping-pass-sticky", "12.4", StickyPingPass.__doc__ or "", fsm=StickyPingPass),
    Mutant("no-fence", "-", TakeoverWithoutFence.__doc__ or "", fsm=TakeoverWithoutFence),
    Mutant("handover-lost", "14", HandoverLostInStart.__doc__ or "", fsm=HandoverLostInStart),
    Mutant("boom", "-", Boom.__doc__ or "", fsm=Boom, hidden=True),
)}


def get(name: str | None) -> Mutant | None:
    if name is None:
        return None
    if name not in MUTANTS:
        raise KeyError(name)
    return MUTANTS[name]
