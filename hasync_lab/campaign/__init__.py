"""The fault campaign (issue 14): randomized, seeded faults, audits from ground truth
that are shown to fire, at three tiers. Built so far: the fsm tier, a deterministic
simulation of two nodes around the real ``hasync.failover.membership.Membership``.

    python -m hasync_lab.campaign --tier fsm --seeds 2000 --faults 3

Modules: scenario (a seed's cluster settings), net (links and captures), worker (jobs
on ground truth), driver (the daemon's loop around the FSM), node (power, daemon life
cycle), sim (clock, queue, timeline), faults + inject (what goes wrong, and the heal),
audits, selftest, mutants, runner, report, cli. See docs/campaign.md.
"""
