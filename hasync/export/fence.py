"""[fencing].command -> a Pacemaker stonith device per node (pure).

hasync runs a fence-agents command line (``fence_ipmilan --ip {address} ...``); Pacemaker
runs the same agent but hands it its options as ``name=value`` parameters on stdin. The
option -> parameter names come from the agent's own metadata (``fence_X -o metadata``:
``<getopt mixed="-a, --ip=[ip]"/>``), which the CLI reads when the agent is installed;
otherwise the options every fence-agents agent shares (fencing.py's defaults) are used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# Pacemaker looks for fence agents in this directory only (Debian's build of the fencer).
FENCE_BINDIR = "/usr/sbin"


@dataclass(frozen=True)
class FenceOption:
    param: str  # the parameter name Pacemaker passes (the metadata's non-deprecated name)
    takes_value: bool


# The options fence-agents' fencing library gives every agent (the short ones differ
# between agents beyond these, so any other short option needs the agent's metadata).
COMMON_OPTIONS: dict[str, FenceOption] = {
    **{f"-{s}": FenceOption(p, v) for s, p, v in (
        ("a", "ip", True), ("l", "username", True), ("p", "password", True),
        ("S", "password_script", True), ("o", "action", True), ("n", "plug", True),
        ("u", "ipport", True), ("x", "ssh", False), ("z", "ssl", False),
        ("k", "identity_file", True), ("4", "inet4_only", False), ("6", "inet6_only", False),
        ("v", "verbose", False), ("q", "quiet", False), ("D", "debug_file", True),
    )},
    **{f"--{p.replace('_', '-')}": FenceOption(p, v) for p, v in (
        ("ip", True), ("username", True), ("password", True), ("password_script", True),
        ("action", True), ("plug", True), ("ipport", True), ("ssh", False), ("ssl", False),
        ("ssl_insecure", False), ("ssl_secure", False), ("identity_file", True),
        ("inet4_only", False), ("inet6_only", False), ("verbose", False), ("quiet", False),
        ("debug_file", True), ("lanplus", False), ("use_sudo", False), ("notls", False),
        ("missing_as_off", False), ("port_as_ip", False),
    )},
}

_GETOPT = re.compile(r"(?<![\w-])(--?[\w.-]+)(=)?")


def options_from_metadata(xml_text: str) -> dict[str, FenceOption]:
    """Option spelling -> parameter, from a fence agent's metadata XML. A deprecated name
    (ipaddr, login, passwd) never wins over the current one sharing its option."""
    out: dict[str, FenceOption] = {}
    root = ET.fromstring(xml_text)
    params = sorted(root.iter("parameter"), key=lambda p: p.get("deprecated") == "1")
    for p in params:
        g = p.find("getopt")
        if g is None or not p.get("name"):
            continue
        mixed = g.get("mixed", "")
        takes_value = "=" in mixed
        for m in _GETOPT.finditer(mixed):
            out.setdefault(m.group(1), FenceOption(p.get("name", ""), takes_value))
    return out


@dataclass(frozen=True)
class FenceDevice:
    agent: str  # fence_ipmilan
    params: tuple[tuple[str, str], ...]
    action: str  # off | reboot: what the command asked for ("" = the agent's default, reboot)
    notes: tuple[str, ...] = ()


class NotAFenceAgent(Exception):
    pass


def agent_name(command: tuple[str, ...]) -> str:
    """The stonith type for a command; NotAFenceAgent when it is not a fence agent."""
    prog = command[0] if command else ""
    base = prog.rsplit("/", 1)[-1]
    if not base.startswith("fence_"):
        raise NotAFenceAgent(
            f"[fencing].command runs {prog!r}, which is not a fence agent: Pacemaker only runs fence agents, "
            f"programs named fence_NAME in {FENCE_BINDIR} that read name=value options on stdin and answer the "
            "actions metadata, monitor, list, status, on, off and reboot. Use the fence-agents agent for your "
            "hardware (fence_ipmilan, fence_redfish, fence_virsh, ...: apt install fence-agents), or wrap the "
            f"script as {FENCE_BINDIR}/fence_NAME following the fence-agents API, and name it in [fencing].command")
    return base


def fence_device(command: tuple[str, ...], options: dict[str, FenceOption]) -> FenceDevice:
    """Turn one filled-in fence command into the agent and its parameters.

    Raises ValueError naming every option the agent does not know (or a stray argument),
    since a parameter Pacemaker does not pass means a fence that does not work."""
    agent = agent_name(command)
    notes = []
    prog = command[0]
    if "/" in prog and prog.rsplit("/", 1)[0] != FENCE_BINDIR:
        notes.append(f"{prog}: Pacemaker runs fence agents from {FENCE_BINDIR} only: install it as {FENCE_BINDIR}/{agent} on both nodes")
    params: list[tuple[str, str]] = []
    action = ""
    bad: list[str] = []
    args = list(command[1:])
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        opt, eq, value = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        if not tok.startswith("-") or tok == "-":
            bad.append(f"{tok!r} (fence agents take no positional arguments)")
            continue
        if not tok.startswith("--") and len(tok) > 2 and tok[:2] in options and options[tok[:2]].takes_value:
            opt, eq, value = tok[:2], "=", tok[2:]  # getopt's -aVALUE
        o = options.get(opt)
        if o is None:
            bad.append(f"{opt} (not an option of {agent})")
            if not eq and i < len(args) and not args[i].startswith("-"):
                i += 1
            continue
        if o.takes_value and not eq:
            if i >= len(args):
                bad.append(f"{opt} (needs a value)")
                continue
            value, i = args[i], i + 1
        elif not o.takes_value:
            value = value or "1"
        if o.param == "action":
            action = value
            continue
        params.append((o.param, value))
    if action not in ("", "off", "reboot"):
        bad.append(f"action {action!r} (a fence command must power the node off or reboot it)")
    if bad:
        raise ValueError(f"{agent}: " + "; ".join(bad))
    return FenceDevice(agent, tuple(params), action, tuple(notes))
