"""The first bootstrap step: refuse on a host the profile does not serve (issue 13 item 6)."""

from __future__ import annotations

from hasync.bootstrap import host
from hasync.bootstrap.plan import Change, Facts, Wanted, step

OS_RELEASE = "/etc/os-release"


def host_facts(w: Wanted) -> list[str]:
    """The facts host.problems reads for this cluster (doctor asks the same of its probe)."""
    return ([f"file:{OS_RELEASE}", "wipefs_json"] + (["version:lvm"] if w.st.use_lvm else [])
            + (["version:drbdadm"] if w.st.use_drbd else []))


@step("host", needs=host_facts)
def plan_host(w: Wanted, f: Facts) -> list[Change]:
    """This host is one the profile is for: distro, DRBD module, tool versions."""
    tools = {"wipefs_json": f["wipefs_json"], "lvm": f.get("version:lvm"), "drbdadm": f.get("version:drbdadm")}
    found = host.problems(w.profile, host.parse_os_release(f[f"file:{OS_RELEASE}"]), tools,
                          use_drbd=w.st.use_drbd, use_lvm=w.st.use_lvm)
    if not found:
        return []
    return [Change("host", "refuse", "; ".join(found) + " (profiles/distro/*.toml [supported]; docs/bootstrap.md)", target=w.profile.name)]
