"""Check the exported parameters against the agents' own metadata (pure).

crm_verify checks the CIB's structure, not the agents' parameter names: a misspelt
``cidr_mask`` loads fine and the VIP never starts. The metadata (``crm_resource
--show-metadata ocf:heartbeat:IPaddr2``, which runs the agent's meta-data action) says
which parameters exist, which are required and how long each action may take.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from hasync.export.cib_model import Primitive, seconds


@dataclass(frozen=True)
class Metadata:
    params: dict[str, bool] = field(default_factory=dict)  # name -> required
    deprecated: frozenset[str] = frozenset()
    advised: dict[str, float] = field(default_factory=dict)  # action -> advised timeout (s)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")


def _duration(text: str | None) -> float | None:
    m = _DURATION.match(text or "")
    if not m:
        return None
    unit = {"ms": 0.001, "m": 60.0, "min": 60.0}.get(m.group(2) or "s", 1.0)
    return float(m.group(1)) * unit


def parse_metadata(xml_text: str) -> Metadata:
    root = ET.fromstring(xml_text)
    params: dict[str, bool] = {}
    deprecated = set()
    for p in root.iter("parameter"):
        name = p.get("name", "")
        if not name:
            continue
        params[name] = p.get("required") == "1"
        if p.get("deprecated") in ("1", "true") or p.find("deprecated") is not None:
            deprecated.add(name)
    advised: dict[str, float] = {}
    for a in root.iter("action"):
        t = _duration(a.get("timeout"))
        name = a.get("name", "")
        if t is not None and name:
            advised[name] = min(t, advised.get(name, t))
    return Metadata(params, frozenset(deprecated), advised)


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(p: Primitive, md: Metadata, *, extra: Metadata | None = None, findings: Findings | None = None) -> Findings:
    """Unknown and missing required parameters are errors; deprecated ones and timeouts
    under the agent's advice are warnings. *extra*: parameters every device of this class
    takes (the fencer's pcmk_* for stonith)."""
    out = findings if findings is not None else Findings()
    where = f"{p.source}: resource {p.id!r} ({p.agent})" if p.source else f"resource {p.id!r} ({p.agent})"
    known = dict(md.params) | (dict.fromkeys(extra.params, False) if extra else {})
    given = [k for k, _ in p.params]
    for k in given:
        if k not in known:
            hint = difflib.get_close_matches(k, list(known), n=1)
            also = f"; did you mean {hint[0]!r}?" if hint else f"; it takes: {', '.join(sorted(md.params)) or 'none'}"
            out.errors.append(f"{where}: unknown parameter {k!r}{also}")
        elif k in md.deprecated:
            out.warnings.append(f"{where}: parameter {k!r} is deprecated by the agent")
    for k, required in md.params.items():
        if required and k not in given:
            out.errors.append(f"{where}: missing the required parameter {k!r}")
    for op in p.ops:
        advised = md.advised.get(op.name)
        if op.timeout is not None and advised is not None and op.timeout < advised:
            out.warnings.append(f"{where}: {op.name} timeout {seconds(op.timeout)} is under the agent's advised "
                                f"{seconds(advised)}")
    return out
