"""doctor's host checks: the host is one the profile serves (issue 13 item 6: distro, DRBD
module, tools; hasync.bootstrap.host decides), and every program the chain names is on
the node (item 5: an OCF agent, a heartbeat or LSB script, a systemd unit). Which program
a resource runs comes from the failover chain's own commands, so the two never disagree.
"""

from __future__ import annotations

import shlex

from hasync import model, operations
from hasync.bootstrap import doctor_groups, host
from hasync.bootstrap.findings import Finding, probe_line
from hasync.bootstrap.plan import unit_name

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/lib/systemd/system", "/usr/lib/systemd/system")


def programs(res: model.Resource, profile: model.Profile) -> list[tuple[str, ...]]:
    """What *res* runs, as alternatives (the first that exists is used): heartbeat scripts
    are looked up in resource.d, then init.d; a unit in systemd's unit folders."""
    found = operations.commands(res, "start", profile=profile, exists=lambda p: True)
    fallback = operations.commands(res, "start", profile=profile, exists=lambda p: False)
    out = []
    for a, b in zip(found, fallback, strict=True):
        if a.argv[0] == "systemctl":
            out.append(tuple(f"{d}/{unit_name(a.argv[-1])}" for d in UNIT_DIRS))
        else:
            out.append(tuple(dict.fromkeys((a.argv[0], b.argv[0]))))
    return out


def probe_lines(cluster: model.Cluster, profile: model.Profile, node: str) -> list[str]:
    q = shlex.quote
    lines = [
        "[ -r /etc/os-release ] && echo os.present=1 || echo os.present=0",
        '(. /etc/os-release; echo "os.ID=$ID"; echo "os.ID_LIKE=$ID_LIKE"; echo "os.VERSION_ID=$VERSION_ID"; echo "os.PRETTY_NAME=$PRETTY_NAME")',
        probe_line("tool.wipefs_json", "wipefs --help | grep -c -- --json"),
        probe_line("tool.lvm", "lvm version | sed -n 's/.*LVM version: *\\([0-9.]*\\).*/\\1/p'"),
        probe_line("tool.drbdadm", "drbdadm --version | sed -n 's/^DRBDADM_VERSION=//p'"),
        probe_line("tool.drbd_kernel", "drbdadm --version | sed -n 's/^DRBD_KERNEL_VERSION=//p'"),
    ]
    for i, res in enumerate(cluster.resources):
        for j, alts in enumerate(programs(res, profile)):
            test = "-e" if alts[0].startswith(UNIT_DIRS) else "-x"
            lines.append(probe_line(f"prog.{i}.{j}", f"for p in {' '.join(q(a) for a in alts)}; do [ {test} \"$p\" ] && {{ echo \"$p\"; break; }}; done"))
    return lines


def check_node(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    out = _host(cluster, profile, node, p) if "os.present" in p else []
    return out + _programs(cluster, profile, node, p)


def _host(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    osr = {k[3:]: v for k, v in p.items() if k.startswith("os.") and k != "os.present"} if p.get("os.present") == "1" else None
    tools = {"wipefs_json": p.get("tool.wipefs_json", "0") not in ("", "0"), "lvm": p.get("tool.lvm") or None,
             "drbdadm": {"utils": p.get("tool.drbdadm", ""), "kernel": p.get("tool.drbd_kernel", "")} if p.get("tool.drbdadm") else None}
    groups = [gc.storage for _, gc in doctor_groups.parts(cluster)]  # the tools any group's storage needs
    found = host.problems(profile, osr, tools, use_drbd=any(st.use_drbd for st in groups), use_lvm=any(st.use_lvm for st in groups))
    fix = (f"set [cluster] profile to this host's distro, or install/upgrade the tool named "
           f"(profiles/distro/{profile.name}.toml [supported]; docs/bootstrap.md)")
    if found:
        return [Finding("host", "error", node, f, fix) for f in found]
    return [Finding("host", "ok", node, f"{host.describe_os(osr) if osr else 'this host'} is one profile {profile.name} serves")]


def _fix(res: model.Resource, path: str) -> str:
    if res.type == "ocf":
        provider = res.agent.partition(":")[0]
        pkg = {"heartbeat": "resource-agents", "linbit": "drbd-utils (it ships ocf:linbit:drbd)"}.get(provider, f"the package of OCF provider {provider}")
        return f"install {pkg}"
    if res.type == "heartbeat":
        return (f"install the {res.agent} script in {operations.RESOURCE_D} or {operations.INIT_D}, or use the OCF agent "
                "(`hasync export pacemaker` names the equivalents)")
    return f"install the package that provides {path}"


def _programs(cluster: model.Cluster, profile: model.Profile, node: str, p: dict[str, str]) -> list[Finding]:
    out = []
    for i, res in enumerate(cluster.resources):
        for j, alts in enumerate(programs(res, profile)):
            if f"prog.{i}.{j}" in p and not p[f"prog.{i}.{j}"]:
                what = " or ".join(alts) if not alts[0].startswith(UNIT_DIRS) else f"unit {alts[0].rsplit('/', 1)[1]}"
                out.append(Finding("chain-programs", "error", node, f"resource {res.id!r} ({res.type} {res.agent}) runs {what}, which is missing on {node}", _fix(res, alts[-1])))
    if cluster.resources and not out and any(k.startswith("prog.") for k in p):
        out.append(Finding("chain-programs", "ok", node, f"every program of the chain's {len(cluster.resources)} resources is on {node}"))
    return out
