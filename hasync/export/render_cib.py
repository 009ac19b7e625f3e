"""A ``Cib`` as complete CIB XML (no <status>: the cluster writes that itself). Pure.

``crm_verify --xml-file`` accepts it as it is; ``cibadmin --replace --xml-file`` or
``pcs cluster cib-push --config`` loads it into a running cluster.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

from hasync.export.cib_model import Cib, Clone, Group, Op, Pairs, Primitive, seconds

# The newest CIB schema Debian 12's Pacemaker (2.1.5) ships and validates
# (/usr/share/pacemaker/pacemaker-3.9.rng); Pacemaker 3 upgrades it on load.
SCHEMA = "pacemaker-3.9"


def render(cib: Cib, *, schema: str = SCHEMA) -> str:
    root = ET.Element("cib", {"validate-with": schema, "epoch": "1", "num_updates": "0", "admin_epoch": "0"})
    conf = ET.SubElement(root, "configuration")
    crm = ET.SubElement(conf, "crm_config")
    _nvset(crm, "cluster_property_set", "cib-bootstrap-options", cib.properties)
    nodes = ET.SubElement(conf, "nodes")
    for nodeid, uname in cib.nodes:
        ET.SubElement(nodes, "node", {"id": nodeid, "uname": uname})
    resources = ET.SubElement(conf, "resources")
    for p in cib.fence_devices:
        _primitive(resources, p)
    for c in cib.clones:
        _clone(resources, c)
    for g in cib.groups:
        _group(resources, g)
    cons = ET.SubElement(conf, "constraints")
    for loc in cib.locations:
        _el(cons, "rsc_location", id=loc.id, rsc=loc.rsc, role=loc.role, node=loc.node, score=loc.score)
    for o in cib.orders:
        _el(cons, "rsc_order", {"id": o.id, "first": o.first, "first-action": o.first_action, "then": o.then,
                                "then-action": o.then_action, "kind": o.kind})
    for co in cib.colocations:
        _el(cons, "rsc_colocation", {"id": co.id, "rsc": co.rsc, "rsc-role": co.rsc_role, "with-rsc": co.with_rsc,
                                     "with-rsc-role": co.with_rsc_role, "score": co.score})
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0"?>\n{_comment(cib)}\n{body}\n'


def _comment(cib: Cib) -> str:
    lines = [
        f"Pacemaker configuration of cluster {cib.cluster_name!r}, made by `hasync export pacemaker`",
        f"from {cib.source}. Check it: crm_verify -V -x cib.xml",
        "Load it into the running (still empty) cluster: cibadmin -R -o configuration -x cib.xml",
        "(docs/pacemaker.md: the whole move, step by step)",
    ]
    if cib.notes:
        lines.append("Notes:")
        for n in cib.notes:
            lines += textwrap.wrap(n, 96, initial_indent="  - ", subsequent_indent="    ", break_on_hyphens=False)
    # "--" may not appear inside an XML comment (the notes avoid long options)
    return "<!--\n" + "\n".join("  " + x.replace("--", "- -") for x in lines) + "\n-->"


def _el(parent: ET.Element, tag: str, attrs: dict | None = None, **kw: str) -> ET.Element:
    """A child element without the attributes that are empty (optional ones not set)."""
    merged = {**(attrs or {}), **kw}
    return ET.SubElement(parent, tag, {k: v for k, v in merged.items() if v})


def _nvset(parent: ET.Element, tag: str, set_id: str, pairs: Pairs) -> None:
    if not pairs:
        return
    s = ET.SubElement(parent, tag, {"id": set_id})
    for name, value in pairs:
        ET.SubElement(s, "nvpair", {"id": f"{set_id}-{name}", "name": name, "value": value})


def _op(parent: ET.Element, owner: str, op: Op) -> None:
    _el(parent, "op", {"id": f"{owner}-{op.key()}", "name": op.name, "interval": seconds(op.interval),
                       "timeout": seconds(op.timeout) if op.timeout is not None else "", "role": op.role,
                       "on-fail": op.on_fail})


def _primitive(parent: ET.Element, p: Primitive) -> None:
    el = _el(parent, "primitive", {"id": p.id, "class": p.standard, "provider": p.provider, "type": p.type})
    _nvset(el, "instance_attributes", f"{p.id}-instance_attributes", p.params)
    _nvset(el, "meta_attributes", f"{p.id}-meta_attributes", p.meta)
    if p.ops:
        ops = ET.SubElement(el, "operations")
        for op in p.ops:
            _op(ops, p.id, op)


def _clone(parent: ET.Element, c: Clone) -> None:
    el = ET.SubElement(parent, "clone", {"id": c.id})
    _nvset(el, "meta_attributes", f"{c.id}-meta_attributes", c.meta)
    _primitive(el, c.primitive)


def _group(parent: ET.Element, g: Group) -> None:
    el = ET.SubElement(parent, "group", {"id": g.id})
    _nvset(el, "meta_attributes", f"{g.id}-meta_attributes", g.meta)
    for p in g.members:
        _primitive(el, p)
