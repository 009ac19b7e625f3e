"""Agent parameters against the installed agents' metadata (resource-agents, drbd-utils'
ocf:linbit:drbd, fence-agents), which crm_verify does not check."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

from hasync import model
from hasync.effects.run import ProcRunner
from hasync.export import agents, fence
from hasync.export.cib_model import Op, Primitive
from hasync.export.heartbeat_agents import MAPPED, NfsContext, heartbeat_agent
from hasync.export.output import metadata_lookup

pytestmark = pytest.mark.skipif(shutil.which("crm_resource") is None, reason="needs pacemaker-cli-utils (apt-packages.txt)")


@pytest.fixture(scope="module")
def lookup():
    look = metadata_lookup(ProcRunner())
    assert look is not None
    return functools.cache(look)


def metadata(lookup, agent: str) -> agents.Metadata:
    xml = lookup(agent)
    if xml is None:
        pytest.skip(f"{agent} is not installed here")
    return agents.parse_metadata(xml)


# one argument list per mapped heartbeat script, in the shape its resource.d wrapper takes
SAMPLE_ARGS = {
    "drbddisk": ("r0",),
    "Filesystem": ("/dev/drbd0", "/srv", "ext4", "noatime"),
    "IPaddr": ("10.0.0.10/24/eth0:1/10.0.0.255",),
    "IPaddr2": ("10.0.0.10/24/eth0",),
    "portblock": ("tcp", "2049", "block"),
    "LVM": ("havg",),
    "IPv6addr": ("2001:db8::10/64/eth0",),
    "SendArp": ("10.0.0.10/eth0",),
    "IPsrcaddr": ("10.0.0.10",),
    "Delay": ("5", "2"),
    "MailTo": ("root@example.org", "failover"),
    "Xinetd": ("tftp",),
    "apache": ("/etc/apache2/apache2.conf",),
    "nfsserver": (),
    "nfsboot": (),
    "nfslock": (),
}


def test_every_mapped_script_has_a_sample():
    assert set(MAPPED) | {"nfsserver", "nfsboot", "nfslock"} == set(SAMPLE_ARGS)


@pytest.mark.parametrize("script", sorted(SAMPLE_ARGS))
def test_each_heartbeat_mapping_gives_parameters_its_agent_knows_and_requires(script, lookup):
    a = heartbeat_agent(model.Resource("r", "heartbeat", script, SAMPLE_ARGS[script]), NfsContext("10.0.0.10", "/srv/nfs"))
    p = Primitive("r", a.standard, a.type, a.provider, a.params)
    found = agents.check(p, metadata(lookup, p.agent))
    assert found.errors == []
    assert not [w for w in found.warnings if "deprecated" in w]


def test_a_misspelt_or_missing_parameter_is_an_error_with_a_hint(lookup):
    md = metadata(lookup, "ocf:heartbeat:IPaddr2")
    found = agents.check(Primitive("vip", "ocf", "IPaddr2", "heartbeat", (("cidr_mask", "24"),), source="c.toml:9"), md)
    assert found.errors == [
        "c.toml:9: resource 'vip' (ocf:heartbeat:IPaddr2): unknown parameter 'cidr_mask'; did you mean 'cidr_netmask'?",
        "c.toml:9: resource 'vip' (ocf:heartbeat:IPaddr2): missing the required parameter 'ip'",
    ]


def test_timeouts_under_the_agents_advice_are_warnings(lookup):
    md = metadata(lookup, "ocf:linbit:drbd")
    p = Primitive("drbd", "ocf", "drbd", "linbit", (("drbd_resource", "r0"),), ops=(Op("start", 0, 20), Op("stop", 0, 240)))
    found = agents.check(p, md)
    assert found.errors == [] and len(found.warnings) == 1 and "start timeout 20s is under the agent's advised 240s" in found.warnings[0]


def test_stonith_devices_take_the_fencers_pcmk_parameters_too(lookup):
    md, fencer = metadata(lookup, "stonith:fence_ipmilan"), metadata(lookup, "pacemaker-fenced")
    ok = Primitive("f", "stonith", "fence_ipmilan", "", (("ip", "10.0.0.1"), ("pcmk_host_list", "node1")))
    assert agents.check(ok, md, extra=fencer).errors == []
    bad = Primitive("f", "stonith", "fence_ipmilan", "", (("pcmk_hostlist", "node1"),))
    assert "did you mean 'pcmk_host_list'?" in agents.check(bad, md, extra=fencer).errors[0]


# ------------------------------------------------------------------ fence agents' options


def fence_metadata(agent: str) -> str:
    if shutil.which(agent) is None:
        pytest.skip(f"{agent} not installed (fence-agents)")
    return subprocess.run([agent, "-o", "metadata"], capture_output=True, text=True, timeout=30).stdout


def test_fence_options_come_from_the_agents_metadata():
    opts = fence.options_from_metadata(fence_metadata("fence_ipmilan"))
    assert opts["-a"] == opts["--ip"] == fence.FenceOption("ip", True)  # not the deprecated ipaddr
    assert opts["-l"] == fence.FenceOption("username", True)
    assert opts["-P"] == opts["--lanplus"] == fence.FenceOption("lanplus", False)
    dev = fence.fence_device(("fence_ipmilan", "-a", "10.0.0.1", "-l", "admin", "-P", "--password-script=/etc/p", "-o", "off"), opts)
    assert (dev.agent, dev.params, dev.action) == ("fence_ipmilan", (("ip", "10.0.0.1"), ("username", "admin"), ("lanplus", "1"), ("password_script", "/etc/p")), "off")


@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_virsh", "fence_apc", "fence_redfish", "fence_ilo_ssh", "fence_idrac"])
def test_the_built_in_common_options_agree_with_each_agent_that_has_them(agent):
    """Without the agent on this machine the exporter falls back to COMMON_OPTIONS: every
    entry must mean what the agent's own metadata says where the agent has the option."""
    opts = fence.options_from_metadata(fence_metadata(agent))
    shared = {o for o in fence.COMMON_OPTIONS if o in opts}
    assert len(shared) >= 8
    assert {o: opts[o] for o in shared} == {o: fence.COMMON_OPTIONS[o] for o in shared}
