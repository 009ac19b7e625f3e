"""OCF resource agents as the chain runs them (pure): the action and environment per operation.

The chain has three operations on a resource (start, stop, status). A plain OCF agent
maps them one to one onto its ``start``, ``stop`` and ``monitor`` actions. A
*promotable* agent (``model.Resource.promotable``: ``ocf:linbit:drbd``, whose ``start``
only attaches and connects DRBD as Secondary) runs as this node's instance of a
two-node promotable clone, one node promoted, as Pacemaker would run it:

- the chain's start is ``start`` then ``promote`` (DRBD: up, then Primary);
- the chain's stop is ``demote`` only: the instance stays started, unpromoted (DRBD
  Secondary, connected, still receiving the peer's writes), exactly as a Pacemaker clone
  stays started on the node that lost the promoted role. Taking DRBD down at every
  release would leave the new active node writing with no replica until someone brings
  it up again, and with ``fencing resource-and-stonith`` its promote against a peer that
  went away would call the fence-peer handler and power that peer off;
- its status is ``monitor``, where only OCF_RUNNING_MASTER (8) counts as running: 0
  (started, unpromoted -- a DRBD Secondary) is not a piece of the chain, so a start-up
  probe does not claim it, a monitor of the active chain treats it as a failure, and a
  stop that leaves it there has released it.

The environment is what such agents read: ``OCF_RESKEY_<param>`` for the parameters and
the ``OCF_RESKEY_CRM_meta_*`` attributes Pacemaker passes to an instance of a promotable
clone (clone-max 2, clone-node-max 1, one promoted instance, notify true). The DRBD agent
refuses start, promote and demote without notify=true ("you really should enable notify
when using this RA"); the notifications themselves are not needed here: its pre/post
notify only re-runs ``drbdadm adjust`` (which its own start does) and refreshes the
Pacemaker promotion score (crm_master), which nothing reads without Pacemaker.
"""

from __future__ import annotations

from hasync import model

OCF_ROOT = "/usr/lib/ocf"
# resource-agents' HA_RSCTMP (ocf-directories): where the agents keep their state files.
# systemd-tmpfiles makes it at boot (resource-agents.conf: 1755 root); without systemd
# nobody does, and heartbeat, which hasync replaces, made it at its start. Without it every
# agent that tracks itself with ha_pseudo_resource (exportfs, portblock ...) starts fine
# but cannot touch its file: its monitor then says "not running" and its stop does
# nothing -- an exportfs stop that neither unexports nor releases the NFS locks
# (unlock_on_stop), whose file system then cannot be unmounted (the VM tier's first
# migrate of the example chain under busybox init: Filesystem's stop timed out three
# times, the node fenced itself). Whatever runs agents makes it first.
RSCTMP = "/run/resource-agents"
RSCTMP_MODE = 0o1755

# OCF exit codes (OCF resource agent API)
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_MASTER = 8
OCF_FAILED_MASTER = 9
OCF_CODES = {
    0: "OK",
    1: "ERR_GENERIC",
    2: "ERR_ARGS",
    3: "ERR_UNIMPLEMENTED",
    4: "ERR_PERM",
    5: "ERR_INSTALLED",
    6: "ERR_CONFIGURED",
    7: "NOT_RUNNING",
    8: "RUNNING_MASTER",
    9: "FAILED_MASTER",
}

# the chain's operation -> the agent's actions, in order
PLAIN_ACTIONS = {"start": ("start",), "stop": ("stop",), "status": ("monitor",)}
# (promote and demote alone: `hasync resource ID promote|demote`, the hand-run of one action)
PROMOTABLE_ACTIONS = {"start": ("start", "promote"), "stop": ("demote",), "status": ("monitor",),
                      "promote": ("promote",), "demote": ("demote",)}

# Pacemaker's meta attributes of a promotable clone on two nodes with one promoted
# instance, under both of its names (master_* before Pacemaker 2.1, promoted_* since;
# the DRBD agent of drbd-utils 9 still reads master_*)
CLONE_META = (
    ("promotable", "true"),
    ("clone_max", "2"),
    ("clone_node_max", "1"),
    ("master_max", "1"),
    ("master_node_max", "1"),
    ("promoted_max", "1"),
    ("promoted_node_max", "1"),
    ("notify", "true"),
    ("globally_unique", "false"),
)


def actions(res: model.Resource, op: str) -> tuple[str, ...]:
    """The agent's actions for the chain's *op* (start, stop, status; promote and demote
    of a promotable agent), in order. ValueError for an operation the agent has not."""
    table = PROMOTABLE_ACTIONS if res.promotable else PLAIN_ACTIONS
    if op not in table:
        raise ValueError(f"{res.id}: no operation {op!r} for a{' promotable' if res.promotable else ' plain'} OCF agent")
    return table[op]


def action_timeout(res: model.Resource, action: str) -> float:
    """Seconds *action* may take: promote is part of the start, demote the stop."""
    if action in ("start", "promote"):
        return res.start_timeout
    if action in ("stop", "demote"):
        return res.stop_timeout
    return res.monitor_timeout


def environment(res: model.Resource, action: str, *, ocf_root: str = OCF_ROOT, interval: float = 0.0) -> tuple[tuple[str, str], ...]:
    """The environment of one agent call. *interval*: a recurring monitor's period (0: a
    probe, which agents tell apart by OCF_RESKEY_CRM_meta_interval = 0)."""
    provider, _, agent = res.agent.partition(":")
    env = [
        ("OCF_ROOT", ocf_root),
        ("OCF_FUNCTIONS_DIR", f"{ocf_root}/lib/heartbeat"),
        ("OCF_RESOURCE_INSTANCE", res.id),
        ("OCF_RESOURCE_TYPE", agent),
        ("OCF_RESOURCE_PROVIDER", provider),
        ("OCF_RA_VERSION_MAJOR", "1"),
        ("OCF_RA_VERSION_MINOR", "0"),
        ("OCF_RESKEY_CRM_meta_timeout", str(int(action_timeout(res, action) * 1000))),
        ("OCF_RESKEY_CRM_meta_interval", str(int(interval * 1000)) if action == "monitor" else "0"),
    ]
    if res.promotable:
        env += [(f"OCF_RESKEY_CRM_meta_{k}", v) for k, v in CLONE_META]
    env += [(f"OCF_RESKEY_{k}", str(v)) for k, v in sorted(res.params.items())]
    return tuple(env)


def status_detail(res: model.Resource, code: int) -> str:
    """Why a monitor's exit code means what it does, where the code alone misleads."""
    if res.promotable and code == OCF_SUCCESS:
        return "started but not promoted"
    return ""
