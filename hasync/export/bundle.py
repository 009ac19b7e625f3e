"""The whole export as documents in memory: checked first, written only when all is well.

``make_bundle`` builds the Pacemaker configuration, checks every primitive against its
agent's metadata (through an injected lookup, the one effect), renders the chosen form
and corosync.conf. Any error raises ExportError before a single file is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hasync import model
from hasync.export import agents, corosync, fence, pacemaker, render_cib, render_crm, render_pcs
from hasync.export.pacemaker import ExportError
from hasync.failover.fencing import fill

FORMATS = ("cib", "crm", "pcs", "corosync")
FILENAMES = {"cib": "cib.xml", "crm": "cib.crm", "pcs": "cib-pcs.sh", "corosync": "corosync.conf"}
RENDER = {"cib": render_cib.render, "crm": render_crm.render, "pcs": render_pcs.render}

# The lookup's name for the fencer's own parameters (pcmk_host_list, ...), which every
# stonith device takes besides its agent's.
FENCER = "pacemaker-fenced"

# agent ("ocf:heartbeat:IPaddr2", "stonith:fence_ipmilan", FENCER) -> metadata XML, or
# None when the agent is not installed here
MetadataLookup = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Bundle:
    documents: dict[str, str]  # file name -> text: the chosen form, then corosync.conf
    primary: str  # the file name of the form --format chose (what goes to stdout)
    warnings: tuple[str, ...]
    checked: tuple[str, ...]  # agents whose parameters were checked against their metadata
    unchecked: tuple[str, ...]  # agents that could not be (not installed here)
    token_ms: int


def _fence_options(cluster: model.Cluster, lookup: MetadataLookup | None) -> dict[str, fence.FenceOption] | None:
    f = cluster.fencing
    if f.mode == "off" or not f.command or lookup is None or not cluster.nodes:
        return None
    try:
        name = fence.agent_name(fill(f.command, cluster.nodes[0]))
    except fence.NotAFenceAgent:
        return None  # build() reports it
    xml = lookup(f"stonith:{name}")
    return fence.options_from_metadata(xml) if xml else None


def check_agents(cib, lookup: MetadataLookup) -> tuple[agents.Findings, list[str], list[str]]:
    found = agents.Findings()
    checked: list[str] = []
    unchecked: list[str] = []
    cache: dict[str, agents.Metadata | None] = {}

    def md(agent: str) -> agents.Metadata | None:
        if agent not in cache:
            xml = lookup(agent)
            cache[agent] = agents.parse_metadata(xml) if xml else None
        return cache[agent]

    for p in cib.primitives():
        if p.standard not in ("ocf", "stonith"):
            continue  # lsb/systemd take no parameters
        meta = md(p.agent)
        if meta is None:
            if p.agent not in unchecked:
                unchecked.append(p.agent)
            continue
        agents.check(p, meta, extra=md(FENCER) if p.standard == "stonith" else None, findings=found)
        if p.agent not in checked:
            checked.append(p.agent)
    return found, checked, unchecked


def make_bundle(cluster: model.Cluster, *, profile: model.Profile | None, fmt: str,
                lookup: MetadataLookup | None) -> Bundle:
    """Every document of the export, or ExportError naming everything that is wrong.
    *lookup* None: no metadata on this machine (the parameters are not checked)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "corosync":  # the membership layer alone: the chain does not matter to it
        conf = corosync.corosync_conf(cluster)
        return Bundle({FILENAMES["corosync"]: conf.text}, FILENAMES["corosync"], conf.warnings, (), (), conf.token_ms)
    export = pacemaker.build(cluster, profile=profile, fence_options=_fence_options(cluster, lookup))
    warnings = list(export.warnings)
    checked: list[str] = []
    unchecked: list[str] = []
    if lookup is not None:
        found, checked, unchecked = check_agents(export.cib, lookup)
        if found.errors:
            raise ExportError(found.errors)
        warnings += found.warnings
        warnings += [f"{a}: not installed on this machine: its parameters were not checked" for a in unchecked]
    else:
        warnings.append("crm_resource (pacemaker-cli-utils) is not installed here: agent parameters were not "
                        "checked against the agents' metadata")
    conf = corosync.corosync_conf(cluster)
    docs = {FILENAMES[fmt]: RENDER[fmt](replace(export.cib, notes=tuple(warnings))), FILENAMES["corosync"]: conf.text}
    warnings += conf.warnings
    return Bundle(docs, FILENAMES[fmt], tuple(warnings), tuple(checked), tuple(unchecked), conf.token_ms)
