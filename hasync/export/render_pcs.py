"""A ``Cib`` as a pcs script: ``pcs -f FILE ...`` on a copy of the live CIB, then one
``pcs cluster cib-push``, so the cluster sees the whole configuration at once. Pure.

pcs gives every resource a monitor operation whether asked or not; a resource hasync
does not monitor (monitor_interval 0) gets that operation deleted again, so the script
builds the same CIB as the XML and crmsh forms.
"""

from __future__ import annotations

import shlex
import textwrap

from hasync.export.cib_model import Cib, Location, Primitive
from hasync.export.render_crm import op_words

CIB_VAR = '"$CIB"'


def _kv(ps) -> list[str]:
    return [shlex.quote(f"{k}={v}") for k, v in ps]


def render(cib: Cib) -> str:
    out = ["#!/bin/sh",
           f"# Pacemaker configuration of cluster {cib.cluster_name!r}, made by `hasync export pacemaker`",
           f"# from {cib.source}. Run it on one node of the running (still empty) cluster:",
           "# it edits a copy of the CIB offline (pcs -f) and pushes it once at the end.",
           "# (docs/pacemaker.md: the whole move, step by step)"]
    for n in cib.notes:
        out += textwrap.wrap(n, 96, initial_indent="# - ", subsequent_indent="#   ", break_on_hyphens=False)
    out += ["set -e", 'CIB="${CIB:-hasync-cib.xml}"', 'pcs cluster cib "$CIB"']
    pcs = f"pcs -f {CIB_VAR}"
    if cib.properties:
        out.append(f"{pcs} property set " + " ".join(_kv(cib.properties)))
    for p in cib.fence_devices:
        out.append(f"{pcs} stonith create {p.id} {p.type} " + _body(p))
    for c in cib.clones:  # the `promotable` keyword is the promotable=true meta attribute
        out.append(f"{pcs} resource create {c.primitive.id} {c.primitive.agent} {_body(c.primitive)} "
                   f"promotable {c.id} {' '.join(_kv(m for m in c.meta if m[0] != 'promotable'))} --no-default-ops")
    for g in cib.groups:
        for p in g.members:
            out.append(f"{pcs} resource create {p.id} {p.agent} {_body(p)} --group {g.id} --no-default-ops")
            if not any(op.name == "monitor" for op in p.ops):
                out.append(f"{pcs} resource op delete {p.id} monitor")
        if g.meta:
            out.append(f"{pcs} resource meta {g.id} " + " ".join(_kv(g.meta)))
    out += [_location(pcs, loc) for loc in cib.locations]
    for o in cib.orders:
        out.append(f"{pcs} constraint order {o.first_action} {o.first} then {o.then_action} {o.then} "
                   f"kind={o.kind} id={o.id}")
    for co in cib.colocations:
        out.append(f"{pcs} constraint colocation add {co.rsc_role or 'Started'} {co.rsc} with "
                   f"{co.with_rsc_role or 'Started'} {co.with_rsc} {co.score} id={co.id}")
    out.append('pcs cluster cib-push "$CIB" --config')
    return "\n".join(out) + "\n"


def _body(p: Primitive) -> str:
    words = _kv(p.params)
    if p.meta:
        words += ["meta"] + _kv(p.meta)
    if p.ops:
        words.append("op")
        for op in p.ops:
            words += op_words(op)
    return " ".join(words)


def _location(pcs: str, loc: Location) -> str:
    if loc.role:
        return (f"{pcs} constraint location {loc.rsc} rule constraint-id={loc.id} role={loc.role} score={loc.score} "
                f"'#uname' eq {loc.node}")
    # "--": a score of -INFINITY would otherwise be read as an option
    return f"{pcs} -- constraint location add {loc.id} {loc.rsc} {loc.node} {loc.score}"
