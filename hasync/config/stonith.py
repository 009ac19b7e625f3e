"""ha.cf's ``stonith_host`` lines -> a [fencing] command with the fence-agents agent (pure).

heartbeat's STONITH plugins (cluster-glue) take their settings positionally, in the order
their ``getconfignames`` prints; fence-agents take options. hasync runs ONE command for
either node, filling in ``{node}``: a plugin that names one BMC per node (IPMI, iLO, DRAC)
becomes ``--ip {node}-bmc`` with the /etc/hosts lines that make it resolve, since a fixed
address would make the survivor reset the wrong machine; a power switch (APC, WTI) keeps
its address and switches the outlet named ``{node}``. Secrets are never copied: the
command carries a ``check:`` marker where the password goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasync.config.heartbeat import HaCf, StonithHost


@dataclass(frozen=True)
class Plugin:
    agent: str
    names: tuple[str, ...]  # the plugin's settings, in its getconfignames order
    address: str  # the setting holding the device's address
    target: str = ""  # the setting naming the node it resets (a BMC per node)
    login: str = ""
    secret: str = ""
    flags: tuple[tuple[str, str, str], ...] = ()  # (setting, value, the agent's flag for it)


PLUGINS: dict[str, Plugin] = {
    "external/ipmi": Plugin("fence_ipmilan", ("hostname", "ipaddr", "userid", "passwd", "interface"), "ipaddr",
                            "hostname", "userid", "passwd", (("interface", "lanplus", "--lanplus"),)),
    "ipmilan": Plugin("fence_ipmilan", ("hostname", "ipaddr", "port", "auth", "priv", "login", "password", "reset_method"),
                      "ipaddr", "hostname", "login", "password"),
    "external/riloe": Plugin("fence_ilo", ("hostlist", "ilo_hostname", "ilo_user", "ilo_password"), "ilo_hostname",
                             "hostlist", "ilo_user", "ilo_password"),
    "external/drac5": Plugin("fence_drac5", ("hostname", "ipaddr", "userid"), "ipaddr", "hostname", "userid"),
    "apcmaster": Plugin("fence_apc", ("ipaddr", "login", "password"), "ipaddr", login="login", secret="password"),
    "wti_nps": Plugin("fence_wti", ("ipaddr", "password"), "ipaddr", secret="password"),
}


@dataclass
class Fencing:
    """What the import writes as [fencing], and what it tells the person running it."""

    mode: str
    command: list[str]
    comment: str  # for the command line: a `check:` marker
    notes: list[str]
    warnings: list[str]


def fencing(cf: HaCf, names: list[str]) -> Fencing | None:
    """[fencing] for ha.cf's stonith lines; None when there are none."""
    if cf.stonith_hosts:
        return _from_hosts(cf, names)
    if cf.stonith is not None:
        line, kind, file = cf.stonith
        where = f"{cf.path}:{line}"
        return Fencing("required", [f"check: the fence agent for the STONITH device {kind} (its settings: {file or '?'})"],
                       f"check: {where} (stonith {kind}): name the fence-agents agent and its options",
                       [], [f"{where}: stonith {kind} {file}: its settings live in {file or 'another file'}, which the import "
                            "does not read: write [fencing].command with the matching fence-agents agent"])
    return None


def _from_hosts(cf: HaCf, names: list[str]) -> Fencing:
    lines = ",".join(str(h.line) for h in cf.stonith_hosts)
    where = f"{cf.path}:{lines}"
    first = cf.stonith_hosts[0]
    plugin = PLUGINS.get(first.plugin)
    if plugin is None:
        known = ", ".join(sorted(PLUGINS))
        return Fencing("required", [f"check: the fence-agents agent for the STONITH plugin {first.plugin}"],
                       f"check: {where} (stonith_host ... {first.plugin})", [],
                       [f"{where}: stonith_host ... {first.plugin}: no fence-agents agent the import knows for it (it knows "
                        f"{known}): write [fencing].command with your hardware's fence agent (fence_ipmilan, fence_redfish, "
                        "fence_virsh, ...: apt install fence-agents)"])
    mine = [h for h in cf.stonith_hosts if h.plugin == first.plugin]
    others = [h for h in cf.stonith_hosts if h.plugin != first.plugin]
    settings = [_settings(plugin, h) for h in mine]
    notes: list[str] = []
    warnings = [f"{cf.path}:{h.line}: stonith_host ... {h.plugin}: not imported; hasync runs one fence command "
                f"({plugin.agent}) for both nodes" for h in others]
    cmd = [plugin.agent, "--ip"]
    if plugin.target:
        cmd.append("{node}-bmc")
        bmcs = {s.get(plugin.target, "?"): s.get(plugin.address, "?") for s in settings}
        hosts = "; ".join(f"{addr} {node}-bmc" for node, addr in bmcs.items())
        notes.append(f"{where}: {plugin.agent} reaches each node's BMC as NODE-bmc (hasync runs one command for either "
                     f"node): add to /etc/hosts on both nodes: {hosts}")
        missing = [n for n in names if n not in bmcs]
        if missing:
            warnings.append(f"{where}: no stonith_host names {' or '.join(missing)}: nothing could reset it; add its BMC "
                            f"as {missing[0]}-bmc to /etc/hosts")
    else:
        cmd.append(settings[0].get(plugin.address, ""))
    if plugin.login and settings[0].get(plugin.login):
        cmd += ["--username", settings[0][plugin.login]]
    if plugin.secret:
        cmd += ["--password", f"check: the password from {where} (or --password-script PATH, out of cluster.toml)"]
    for setting, value, flag in plugin.flags:
        if settings[0].get(setting) == value:
            cmd.append(flag)
    if not plugin.target:
        cmd += ["--plug", "{node}"]
        notes.append(f"{where}: {plugin.agent} switches the outlet named after the node ({{node}}): name the outlets so, "
                     "or write their numbers into [fencing].command")
    cmd += ["--action", "reboot"]  # heartbeat's STONITH resets
    comment = f"check: from {where} (stonith_host ... {first.plugin}); put the password in"
    if not plugin.secret:
        comment = f"check: from {where} (stonith_host ... {first.plugin}); {plugin.agent} logs in over ssh: add its key option"
    return Fencing("required", cmd, comment, notes, warnings)


def _settings(plugin: Plugin, host: StonithHost) -> dict[str, str]:
    return dict(zip(plugin.names, host.params, strict=False))
