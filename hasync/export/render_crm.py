"""A ``Cib`` as crmsh configuration text, for ``crm configure load update FILE``. Pure.

crmsh has no syntax for a role on a plain node preference, so such a preference (a chain
that is DRBD alone) is written as the equivalent rule on ``#uname``.
"""

from __future__ import annotations

import re
import textwrap

from hasync.export.cib_model import Cib, Location, Op, Pairs, Primitive, seconds

_PLAIN = re.compile(r"^[\w./:,@%+=-]+$")


def quote(value: str) -> str:
    """crmsh reads its lines like a shell: quote what would split or be read as syntax."""
    if value and _PLAIN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pairs(ps: Pairs) -> str:
    return " ".join(f"{k}={quote(v)}" for k, v in ps)


def op_words(op: Op) -> list[str]:
    """name interval=.. timeout=.. role=.. on-fail=.. (pcs reads the same words)."""
    words = [op.name, f"interval={seconds(op.interval)}"]
    if op.timeout is not None:
        words.append(f"timeout={seconds(op.timeout)}")
    if op.role:
        words.append(f"role={op.role}")
    if op.on_fail:
        words.append(f"on-fail={op.on_fail}")
    return words


def render(cib: Cib) -> str:
    out = [f"# Pacemaker configuration of cluster {cib.cluster_name!r}, made by `hasync export pacemaker`",
           f"# from {cib.source}. Load it into the running (still empty) cluster:",
           "#   crm configure load update cib.crm",
           "# (docs/pacemaker.md: the whole move, step by step)"]
    for n in cib.notes:
        out += textwrap.wrap(n, 96, initial_indent="# - ", subsequent_indent="#   ", break_on_hyphens=False)
    out.append("")
    out += [f"node {nodeid}: {uname}" for nodeid, uname in cib.nodes]
    for p in cib.fence_devices:
        out.append(_primitive(p))
    for c in cib.clones:
        out.append(_primitive(c.primitive))
        out.append(f"clone {c.id} {c.primitive.id}" + (f" \\\n    meta {pairs(c.meta)}" if c.meta else ""))
    for g in cib.groups:
        out += [_primitive(p) for p in g.members]
        out.append(f"group {g.id} {' '.join(p.id for p in g.members)}" + (f" \\\n    meta {pairs(g.meta)}" if g.meta else ""))
    out += [_location(loc) for loc in cib.locations]
    for o in cib.orders:
        out.append(f"order {o.id} {o.kind}: {o.first}:{o.first_action} {o.then}:{o.then_action}")
    for co in cib.colocations:
        rsc = co.rsc + (f":{co.rsc_role}" if co.rsc_role else "")
        with_rsc = co.with_rsc + (f":{co.with_rsc_role}" if co.with_rsc_role else "")
        out.append(f"colocation {co.id} {_score(co.score)}: {rsc} {with_rsc}")
    if cib.properties:
        out.append(f"property cib-bootstrap-options: \\\n    {pairs(cib.properties)}")
    return "\n".join(out) + "\n"


def _score(score: str) -> str:
    return {"INFINITY": "inf", "-INFINITY": "-inf"}.get(score, score)


def _primitive(p: Primitive) -> str:
    lines = [f"primitive {p.id} {p.agent}"]
    if p.params:
        lines.append(f"params {pairs(p.params)}")
    if p.meta:
        lines.append(f"meta {pairs(p.meta)}")
    lines += ["op " + " ".join(op_words(op)) for op in p.ops]
    return " \\\n    ".join(lines)


def _location(loc: Location) -> str:
    if loc.role:
        return f"location {loc.id} {loc.rsc} rule $role={loc.role} {_score(loc.score)}: #uname eq {loc.node}"
    return f"location {loc.id} {loc.rsc} {_score(loc.score)}: {loc.node}"
