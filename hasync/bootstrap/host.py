"""Can hasync run on this host with this distro profile? (issue 13 item 6; pure)

Each profile's ``[supported]`` table says what it was written for: the distros
(/etc/os-release ``ID``/``ID_LIKE`` and the major ``VERSION_ID``), the DRBD kernel
module versions its resource-file syntax serves, minimum tool versions, whether a test
runs it on a real host (``tested``), or that it is import-only (a layout to read old
configurations with, on no host hasync can run on). ``problems`` compares that with the
host's facts and returns what is wrong, one sentence each; bootstrap refuses and doctor
reports an error when there is any.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hasync import model

TESTED = ("vm", "lab", "none")  # vm: the VM tier runs it on a real host; lab: namespace lab only


def parse_os_release(text: str | None) -> dict[str, str] | None:
    """/etc/os-release (os-release(5): shell-style KEY=value) -> dict; None: no file."""
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        k, sep, v = line.strip().partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", k):
            out[k] = v.strip().strip("\"'")
    return out


def version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def os_matches(entries: list[str], osr: Mapping[str, str]) -> bool:
    """An entry "debian 12" matches ID (or ID_LIKE) debian with VERSION_ID 12 or 12.x."""
    ids = [osr.get("ID", "")] + osr.get("ID_LIKE", "").split()
    major = osr.get("VERSION_ID", "").split(".")[0]
    return any(e.split()[0] in ids and (len(e.split()) == 1 or e.split()[1] == major) for e in entries)


def describe_os(osr: Mapping[str, str]) -> str:
    return osr.get("PRETTY_NAME") or f"{osr.get('ID', '?')} {osr.get('VERSION_ID', '')}".strip()


def problems(profile: model.Profile, osr: Mapping[str, str] | None, tools: Mapping[str, Any], *,
             use_drbd: bool, use_lvm: bool) -> list[str]:
    """What keeps hasync from running here with *profile*. *tools*: ``lvm`` (version),
    ``drbdadm`` ({"utils", "kernel"}), ``wipefs_json`` (bool) -- None when not installed."""
    sup: Mapping[str, Any] = profile.supported
    name = profile.name
    if not sup:
        return []  # a profile of the admin's own that claims nothing: nothing to check
    if sup.get("import_only"):
        return [f"profile {name} is import-only: {sup.get('note', 'hasync does not run on this distro')}"]
    out = []
    oses = list(sup.get("os", []))
    if oses:
        if osr is None:
            out.append(f"no /etc/os-release: cannot tell whether this host is one profile {name} is for ({', '.join(oses)})")
        elif not os_matches(oses, osr):
            out.append(f"this host runs {describe_os(osr)}; profile {name} is for {', '.join(oses)}: pick the profile of this distro")
    minimum = dict(sup.get("minimum", {}))
    if tools.get("wipefs_json") is False or tools.get("wipefs_json") is None:
        out.append("wipefs has no --json (util-linux too old or missing): bootstrap reads every signature with it before writing a disk")
    if use_lvm:
        out += _at_least("lvm2", tools.get("lvm"), minimum.get("lvm2"), "lvm version")
    if use_drbd:
        drbd = tools.get("drbdadm") or {}
        out += _at_least("drbd-utils", drbd.get("utils"), minimum.get("drbd_utils"), "drbdadm --version")
        kernel = drbd.get("kernel") or ""
        served = list(sup.get("drbd_kernel", []))
        if kernel and kernel != "0" and served and not any(kernel == v or kernel.startswith(v + ".") for v in served):
            out.append(f"the DRBD kernel module here is {kernel}; profile {name} writes resource files for DRBD {', '.join(served)}")
    return out


def _at_least(tool: str, have: str | None, need: str | None, how: str) -> list[str]:
    if not need:
        return []
    if not have:
        return [f"{tool} is not installed (profile needs >= {need})"]
    h, n = version_tuple(have), version_tuple(need)
    if h is not None and n is not None and h < n:
        return [f"{tool} {have} is older than {need}, which the profile needs (`{how}`)"]
    return []
