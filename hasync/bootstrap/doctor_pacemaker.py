"""doctor on a node whose chain Pacemaker runs (issue 16): what Pacemaker itself says,
in Pacemaker's words and with its commands.

The probe keeps `crm_mon -1 --output-as=xml --fence-history=2` (base64, one line): the
nodes, the resources (the promotable DRBD clone, the group), the failed actions and the
fencing history. ``parse`` reads it (pure); ``check_node`` turns it into findings whose
fixes are crm_mon / crm_resource / stonith_admin / pcs commands, never hasync's daemon
verbs: under Pacemaker there is no hasync daemon to ask.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from hasync.bootstrap.findings import Finding

# bounded: a node in trouble may not answer; only where crm_mon is installed
PROBE = ("command -v crm_mon >/dev/null && echo pcmk.mon=$(timeout 20 crm_mon -1 --output-as=xml --fence-history=2 "
         "| base64 -w0)")


def probe_lines() -> list[str]:
    return [PROBE]


@dataclass(frozen=True)
class Instance:
    """One resource (or clone instance) as crm_mon shows it."""

    id: str
    role: str  # Started, Stopped, Promoted, Unpromoted ...
    nodes: tuple[str, ...]
    failed: bool = False
    blocked: bool = False
    managed: bool = True


@dataclass(frozen=True)
class Status:
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> crm_mon's node attributes
    clones: dict[str, list[Instance]] = field(default_factory=dict)  # promotable clones only
    groups: dict[str, list[Instance]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    fencing: list[dict[str, str]] = field(default_factory=list)
    maintenance: bool = False
    quorum: bool = True


def _instance(el: ET.Element) -> Instance:
    return Instance(el.get("id", ""), el.get("role", ""), tuple(n.get("name", "") for n in el.iterfind("node")),
                    el.get("failed") == "true", el.get("blocked") == "true", el.get("managed", "true") == "true")


def parse(xml_text: str) -> Status | None:
    """crm_mon's XML (api 2.x); None when there is none or it does not parse."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    if root.find("summary") is None:
        return None
    opts = root.find("summary/cluster_options")
    dc = root.find("summary/current_dc")
    res = root.find("resources")
    return Status(
        nodes={n.get("name", ""): dict(n.attrib) for n in root.iterfind("nodes/node")},
        clones={c.get("id", ""): [_instance(r) for r in c.iterfind("resource")]
                for c in (res.iterfind("clone") if res is not None else ()) if c.get("multi_state") == "true"},
        groups={g.get("id", ""): [_instance(r) for r in g.iterfind("resource")]
                for g in (res.iterfind("group") if res is not None else ())},
        failures=[dict(f.attrib) for f in root.iterfind("failures/failure")],
        fencing=[dict(f.attrib) for f in root.iterfind("fence_history/fence_event")],
        maintenance=opts is not None and opts.get("maintenance-mode") == "true",
        quorum=dc is None or dc.get("present") != "true" or dc.get("with_quorum") != "false",
    )


def status_of(p: dict[str, str]) -> Status | None:
    try:
        text = base64.b64decode(p.get("pcmk.mon", ""), validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return None
    return parse(text) if text else None


def check_node(node: str, p: dict[str, str]) -> list[Finding]:
    """Pacemaker's view from *node*: the nodes, the promoted DRBD, the groups, failed
    actions and fencing. Nothing when crm_mon gave nothing (the manager finding says
    whether Pacemaker runs)."""
    st = status_of(p)
    if st is None:
        if "pcmk.mon" in p:
            return [Finding("pacemaker", "error", node, "crm_mon gave no cluster status here (Pacemaker not running, or not answering)",
                            "systemctl start corosync pacemaker; then crm_mon -1")]
        return []
    out: list[Finding] = []
    if st.maintenance:
        out.append(Finding("pacemaker-maintenance", "warning", node, "Pacemaker's maintenance-mode is on: it neither starts, stops nor "
                           "fences anything", "crm_attribute --name maintenance-mode --update false (pcs property set maintenance-mode=false)"))
    if not st.quorum:
        out.append(Finding("pacemaker-quorum", "error", node, "this partition has no quorum: no-quorum-policy=stop stops the chain here",
                           "corosync-quorumtool -s; bring the peer's corosync back (two_node: the survivor of a clean loss keeps quorum)"))
    out += _nodes(node, st) + _promotable(node, st) + _groups(node, st) + _failures(node, st) + _fencing(node, st)
    if not [f for f in out if f.level in ("error", "warning")]:
        out.append(Finding("pacemaker", "ok", node, "Pacemaker: nodes online, DRBD promoted once, the chain started, no failed actions"))
    return out


def _nodes(node: str, st: Status) -> list[Finding]:
    out = []
    for name, a in st.nodes.items():
        if a.get("unclean") == "true":
            out.append(Finding("pacemaker-node", "error", node, f"{name} is UNCLEAN: Pacemaker waits for its fencing before it moves anything",
                               f"stonith_admin --history {name} (why the fence did not succeed); stonith_admin --list-registered"))
        elif a.get("online") != "true":
            out.append(Finding("pacemaker-node", "warning", node, f"{name} is offline: nothing is replicated or standing by",
                               f"on {name}: systemctl start corosync pacemaker; then crm_mon -1"))
        elif a.get("standby") == "true" or a.get("maintenance") == "true":
            what = "in standby" if a.get("standby") == "true" else "in maintenance"
            out.append(Finding("pacemaker-node", "warning", node, f"{name} is {what}: it takes nothing over",
                               f"pcs node unstandby {name} (crm node online {name})" if what == "in standby"
                               else f"crm_attribute --node {name} --name maintenance --delete"))
    return out


def _promotable(node: str, st: Status) -> list[Finding]:
    out = []
    for cid, insts in st.clones.items():
        promoted = sorted({n for i in insts if i.role == "Promoted" for n in i.nodes})
        if len(promoted) > 1:
            out.append(Finding("pacemaker-drbd", "error", node, f"{cid} is Promoted on {' and '.join(promoted)}: two writers of one disk",
                               "crm_mon -1; doctor's drbd-split-brain finding says which data to keep"))
        elif not promoted:
            out.append(Finding("pacemaker-drbd", "error", node, f"{cid} (the promotable DRBD clone) is Promoted nowhere: the group cannot start",
                               f"crm_resource --why --resource {cid}; drbdadm status; after fixing the cause: crm_resource --cleanup --resource {cid}"))
        else:
            out.append(Finding("pacemaker-drbd", "ok", node, f"{cid} Promoted on {promoted[0]}"))
    return out


def _groups(node: str, st: Status) -> list[Finding]:
    out = []
    for gid, members in st.groups.items():
        stopped = [m.id for m in members if m.role != "Started" or not m.nodes]
        where = sorted({n for m in members for n in m.nodes})
        if stopped:
            out.append(Finding("pacemaker-group", "error", node, f"group {gid}: {', '.join(stopped)} not started: the service is down",
                               f"crm_resource --why --resource {stopped[0]}; after fixing the cause: crm_resource --cleanup --resource {gid}"))
        elif len(where) > 1:
            out.append(Finding("pacemaker-group", "error", node, f"group {gid} runs on {' and '.join(where)}", "crm_mon -1"))
        else:
            out.append(Finding("pacemaker-group", "ok", node, f"group {gid} started on {where[0]}"))
        for m in members:
            if m.blocked or not m.managed:
                out.append(Finding("pacemaker-group", "warning", node, f"{m.id} is {'blocked' if m.blocked else 'unmanaged'}: Pacemaker does "
                                   "not act on it", f"crm_resource --cleanup --resource {m.id} (after fixing the cause)"))
    return out


def _failures(node: str, st: Status) -> list[Finding]:
    out = []
    for f in st.failures:
        key, where = f.get("op_key", "?"), f.get("node", "?")
        rid = key.rsplit("_", 2)[0] if key.count("_") >= 2 else key
        reason = f.get("exitreason") or f.get("exitstatus", "")
        out.append(Finding("pacemaker-failed-action", "warning", node,
                           f"failed action {key} on {where} ({reason}, {f.get('last-rc-change', '')}): it counts towards "
                           "migration-threshold and stays until cleaned up",
                           f"crm_resource --cleanup --resource {rid} --node {where} (pcs resource cleanup {rid}) after fixing the cause"))
    return out


def _fencing(node: str, st: Status) -> list[Finding]:
    out = []
    for e in st.fencing:
        target, action, status = e.get("target", "?"), e.get("action", "?"), e.get("status", "")
        by = e.get("delegate") or "?"
        when = e.get("completed", "")
        if status == "failed":
            out.append(Finding("pacemaker-fencing", "error", node,
                               f"fencing ({action}) of {target} by {by} failed{' at ' + when if when else ''}"
                               f"{': ' + e['exit-reason'] if e.get('exit-reason') else ''}: while it fails nothing moves",
                               f"stonith_admin --history {target} --verbose; fix the device, then stonith_admin --cleanup --history {target}"))
        elif status == "pending":
            out.append(Finding("pacemaker-fencing", "warning", node, f"fencing ({action}) of {target} is under way (by {by})",
                               f"stonith_admin --history {target}"))
        elif status == "success":
            out.append(Finding("pacemaker-fencing", "info", node, f"{target} was fenced ({action}) by {by}{' at ' + when if when else ''}"))
    return out
