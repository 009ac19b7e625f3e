"""The Pacemaker export's mapping, pure: cluster.toml -> Cib (no Pacemaker binaries here;
test_export_validate.py runs crm_verify/crm_simulate/crmsh/pcs on the same output)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hasync import config
from hasync.export import pacemaker, render_cib
from hasync.export.pacemaker import ExportError, build, chain_groups

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
[cluster]
name = "pair"
profile = "{profile}"
preferred_node = "alpha"

[[node]]
name = "alpha"
address = "192.0.2.1"

[[node]]
name = "beta"
address = "192.0.2.2"

[heartbeat]
keepalive = "100ms"
deadtime = "500ms"
auto_failback = {failback}

[[heartbeat.link]]
name = "hb"
kind = "udp-unicast"
interface = "hb0"
addresses = {{ alpha = "198.51.100.1", beta = "198.51.100.2" }}

[fencing]
{fencing}
"""

IPMI = 'mode = "required"\ncommand = ["fence_ipmilan", "-a", "{address}", "-l", "admin", "-S", "/etc/ipmi-pass", "-o", "off"]'


def cluster(resources: str, *, fencing: str = IPMI, profile: str = "debian12", failback: bool = False, extra: str = ""):
    text = BASE.format(profile=profile, failback=str(failback).lower(), fencing=fencing) + extra + "\n" + resources
    return config.loads(text, "cluster.toml")


def res(id_: str, type_: str, agent: str, args=(), params: dict | None = None, more: str = "") -> str:
    out = f'[[resource]]\nid = "{id_}"\ntype = "{type_}"\nagent = "{agent}"\n'
    if args:
        out += "args = [" + ", ".join(f'"{a}"' for a in args) + "]\n"
    if params:
        out += "params = { " + ", ".join(f'{k} = "{v}"' for k, v in params.items()) + " }\n"
    return out + more + "\n"


def hb(id_: str, agent: str, *args: str) -> str:
    return res(id_, "heartbeat", agent, args)


def profile(name: str):
    return config.load_profile(name)


def export(c, **kw):
    kw.setdefault("profile", profile(c.cluster.profile))
    return build(c, **kw)


def prim(cib, rid):
    return next(p for p in cib.primitives() if p.id == rid)


FIELD_CHAIN = (hb("drbddisk", "drbddisk", "ha-disk0") + hb("filesystem", "Filesystem", "/dev/drbd0", "/home", "ext3")
               + hb("ipaddr", "IPaddr", "10.0.0.10/24/eth0") + hb("nfsboot", "nfsboot") + hb("nfsserver", "nfsserver")
               + hb("nfslock", "nfslock"))


# ------------------------------------------------------------------ the chain as Pacemaker expects it


def test_example_config_drbd_is_a_promotable_clone_and_the_rest_one_group_after_it():
    c = config.load(ROOT / "profiles" / "cluster" / "example.toml")
    cib = export(c).cib
    [clone] = cib.clones
    meta = dict(clone.meta)
    assert clone.primitive.agent == "ocf:linbit:drbd" and dict(clone.primitive.params) == {"drbd_resource": "r0"}
    assert (meta["promotable"], meta["notify"], meta["promoted-max"], meta["clone-max"]) == ("true", "true", "1", "2")
    [group] = cib.groups
    assert [p.id for p in group.members] == ["vg", "fs", "nfs", "exports", "vip", "notify"]  # the chain's order
    [order] = cib.orders
    assert (order.first, order.first_action, order.then, order.then_action) == (clone.id, "promote", group.id, "start")
    [coloc] = cib.colocations
    assert (coloc.rsc, coloc.with_rsc, coloc.with_rsc_role, coloc.score) == (group.id, clone.id, "Promoted", "INFINITY")
    xml = render_cib.render(cib)
    root = ET.fromstring(xml[xml.index("<cib"):])
    assert root.get("validate-with") == "pacemaker-3.9"
    assert root.find(".//master") is None and root.find("status") is None  # the removed element; no status
    assert {o.get("role") for o in root.iter("op") if o.get("name") == "monitor" and o.get("role")} == {"Promoted", "Unpromoted"}


def test_field_notes_chain_maps_each_resource_d_script_to_its_ocf_agent():
    c = cluster(FIELD_CHAIN, fencing='mode = "off"', extra='[nfs]\nvip = "10.0.0.10/24"\n')
    cib = export(c).cib
    assert cib.clones[0].primitive.params == (("drbd_resource", "ha-disk0"),)
    assert [(p.id, p.agent) for p in cib.groups[0].members] == [
        ("filesystem", "ocf:heartbeat:Filesystem"),
        ("ipaddr", "ocf:heartbeat:IPaddr2"),
        ("nfsserver", "ocf:heartbeat:nfsserver"),
        ("nfslock", "ocf:heartbeat:nfsnotify"),  # nfsboot and nfslock: one sm-notify, after the VIP
    ]
    assert dict(prim(cib, "filesystem").params) == {"device": "/dev/drbd0", "directory": "/home", "fstype": "ext3"}
    assert dict(prim(cib, "ipaddr").params) == {"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"}
    assert dict(prim(cib, "nfslock").params) == {"source_host": "10.0.0.10"}
    # debian12 symlinks /var/lib/nfs itself: the agent must not bind-mount it too
    assert dict(prim(cib, "nfsserver").params) == {"nfs_ip": "10.0.0.10"}


@pytest.mark.parametrize("arg, params", [
    ("10.0.0.10", {"ip": "10.0.0.10"}),
    ("10.0.0.10/255.255.255.0", {"ip": "10.0.0.10", "cidr_netmask": "24"}),
    ("10.0.0.10/24/eth0:1/10.0.0.255", {"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0", "iflabel": "1", "broadcast": "10.0.0.255"}),
    ("10.0.0.10/24/10.0.0.255", {"ip": "10.0.0.10", "cidr_netmask": "24", "broadcast": "10.0.0.255"}),
])
def test_ipaddr_becomes_ipaddr2_with_netmask_nic_label_and_broadcast(arg, params):
    cib = export(cluster(hb("ip", "IPaddr", arg))).cib
    assert prim(cib, "ip").agent == "ocf:heartbeat:IPaddr2" and dict(prim(cib, "ip").params) == params


def test_portblock_lvm_and_bind_profile_nfsserver():
    chain = (hb("drbd", "drbddisk", "r0") + hb("lvm", "LVM", "havg") + hb("block", "portblock", "tcp", "2049", "block")
             + hb("nfsserver", "nfsserver"))
    e = export(cluster(chain, profile="rhel9", extra='[nfs]\nstate_dir = "/srv/nfs-state"\nvip = "192.0.2.10/24"\n'))
    assert dict(prim(e.cib, "lvm").params) == {"vgname": "havg", "vg_access_mode": "system_id"}
    assert any("system_id_source" in w for w in e.warnings)
    assert dict(prim(e.cib, "block").params) == {"protocol": "tcp", "portno": "2049", "action": "block"}
    # rhel9 bind-mounts /var/lib/nfs from the chain: the nfsserver agent does it
    assert dict(prim(e.cib, "nfsserver").params) == {"nfs_ip": "192.0.2.10", "nfs_shared_infodir": "/srv/nfs-state"}


def test_service_kind_uses_the_profile_units_systemd_or_lsb():
    chain = res("nfs", "service", "nfsserver") + res("lock", "service", "nfslock")
    assert [p.agent for p in export(cluster(chain)).cib.groups[0].members] == ["systemd:nfs-server", "systemd:rpc-statd"]
    assert [p.agent for p in export(cluster(chain, profile="sles9")).cib.groups[0].members] == ["lsb:nfsserver", "lsb:nfslock"]


def test_an_init_script_name_becomes_lsb_with_a_warning():
    e = export(cluster(hb("web", "httpd") + res("db", "lsb", "postgresql") + res("u", "systemd", "foo")))
    assert [p.agent for p in e.cib.groups[0].members] == ["lsb:httpd", "lsb:postgresql", "systemd:foo.service"]
    assert any("heartbeat ran /etc/init.d/httpd" in w for w in e.warnings)


def test_every_resource_with_no_equivalent_is_named_and_nothing_is_built():
    chain = (hb("drbd", "drbddisk", "r0") + hb("ip", "IPaddr", "") + hb("alarm", "AudibleAlarm") + hb("fs", "Filesystem", "/dev/drbd0", "/srv")
             + res("d", "service", "drbd") + hb("custom", "myscript", "arg") + hb("late", "drbddisk", "r1"))
    with pytest.raises(ExportError) as e:
        export(cluster(chain))
    text = "\n".join(e.value.issues)
    for rid in ("'ip'", "'alarm'", "'fs'", "'d'", "'custom'", "'late'"):
        assert f"resource {rid}" in text
    assert "cluster.toml:" in e.value.issues[0]  # file:line of the resource
    assert "the cluster address is missing" in text and "DRBD must come first" in text
    assert "resource 'drbd'" not in text


# ------------------------------------------------------------------ groups, preference, stickiness, ops


def test_one_chain_is_one_group_named_after_the_cluster():
    c = cluster(res("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "192.0.2.10"}))
    [g] = chain_groups(c)
    assert (g.id, g.preferred_node, g.auto_failback, [r.id for r in g.resources]) == ("pair", "alpha", False, ["vip"])


@pytest.mark.parametrize("failback, stickiness", [(True, "0"), (False, str(pacemaker.STICKINESS_NO_FAILBACK))])
def test_auto_failback_is_stickiness_against_the_preference(failback, stickiness):
    cib = export(cluster(hb("drbd", "drbddisk", "r0") + hb("fs", "Filesystem", "/dev/drbd0", "/srv", "ext4"), failback=failback)).cib
    assert dict(cib.groups[0].meta)["resource-stickiness"] == stickiness
    assert dict(cib.clones[0].meta)["resource-stickiness"] == stickiness
    [pref] = [loc for loc in cib.locations if loc.rsc == "pair"]
    assert (pref.node, pref.score) == ("alpha", str(pacemaker.PREFERENCE_SCORE))
    assert pacemaker.STICKINESS_NO_FAILBACK > pacemaker.PREFERENCE_SCORE


def test_each_group_is_its_own_group_clone_preference_and_constraints():
    def grp(gid, extra, drbd, mount, ip):
        return (f'[[group]]\nid = "{gid}"\n{extra}\n'
                + (hb(f"{gid}-drbd", "drbddisk", drbd) + hb(f"{gid}-fs", "Filesystem", f"/dev/{drbd}", mount, "ext4")
                   + res(f"{gid}-vip", "ocf", "heartbeat:IPaddr2", params={"ip": ip})).replace("[[resource]]", "[[group.resource]]"))
    c = cluster(grp("web", "", "drbd0", "/srv/web", "192.0.2.10")
                + grp("db", 'preferred_node = "beta"\nauto_failback = true', "drbd1", "/srv/db", "192.0.2.11"))
    assert [(g.id, g.preferred_node, g.auto_failback) for g in chain_groups(c)] == [("web", "alpha", False), ("db", "beta", True)]
    cib = export(c).cib
    assert [(g.id, [p.id for p in g.members]) for g in cib.groups] == [("web", ["web-fs", "web-vip"]), ("db", ["db-fs", "db-vip"])]
    assert [cl.id for cl in cib.clones] == ["web-drbd-clone", "db-drbd-clone"]
    assert {(o.first, o.then) for o in cib.orders} == {("web-drbd-clone", "web"), ("db-drbd-clone", "db")}  # no order across groups
    assert {(co.rsc, co.with_rsc) for co in cib.colocations} == {("web", "web-drbd-clone"), ("db", "db-drbd-clone")}
    prefs = {loc.rsc: (loc.node, loc.score) for loc in cib.locations if not loc.rsc.startswith("fence")}
    assert prefs == {"web": ("alpha", "100"), "db": ("beta", "100")}
    assert dict(cib.groups[0].meta)["resource-stickiness"] == str(pacemaker.STICKINESS_NO_FAILBACK)
    assert dict(cib.groups[1].meta)["resource-stickiness"] == "0"  # db's own auto_failback


def test_ops_from_timeouts_monitor_interval_and_max_restarts():
    more = 'start_timeout = "40s"\nstop_timeout = "90s"\nmonitor_timeout = "15s"\nmonitor_interval = "10s"\nmax_restarts = 0\n'
    chain = res("drbd", "ocf", "linbit:drbd", params={"drbd_resource": "r0"}, more=more) + res("vip", "ocf", "heartbeat:IPaddr2", params={"ip": "192.0.2.10"}, more=more)
    cib = export(cluster(chain)).cib
    vip = prim(cib, "vip")
    assert [(o.name, o.interval, o.timeout) for o in vip.ops] == [("start", 0, 40), ("stop", 0, 90), ("monitor", 10, 15)]
    assert dict(vip.meta) == {"migration-threshold": "1"}
    drbd = prim(cib, "drbd")
    assert [(o.name, o.interval, o.role) for o in drbd.ops if o.name == "monitor"] == [("monitor", 10, "Promoted"), ("monitor", 12, "Unpromoted")]
    assert {o.name for o in drbd.ops} == {"start", "stop", "promote", "demote", "monitor"}


def test_unmonitored_resources_get_no_monitor_and_drbd_gets_linbits_defaults():
    cib = export(cluster(hb("drbd", "drbddisk", "r0") + hb("fs", "Filesystem", "/dev/drbd0", "/srv", "ext4"))).cib
    assert not [o for o in prim(cib, "fs").ops if o.name == "monitor"]
    assert [o.interval for o in prim(cib, "drbd").ops if o.name == "monitor"] == [29, 31]


def test_two_drbd_resources_are_promoted_together_before_the_group():
    cib = export(cluster(hb("d0", "drbddisk", "r0") + hb("d1", "drbddisk", "r1") + hb("fs", "Filesystem", "/dev/drbd0", "/srv", "ext4"))).cib
    assert [c.id for c in cib.clones] == ["d0-clone", "d1-clone"]
    assert ("d0-clone", "promote", "d1-clone", "promote") in [(o.first, o.first_action, o.then, o.then_action) for o in cib.orders]
    assert ("d1-clone", "Promoted", "d0-clone", "Promoted") in [(c.rsc, c.rsc_role, c.with_rsc, c.with_rsc_role) for c in cib.colocations]
    assert {(o.first, o.then) for o in cib.orders} >= {("d0-clone", "pair"), ("d1-clone", "pair")}


def test_drbd_alone_prefers_the_node_for_its_promoted_role():
    [loc] = [x for x in export(cluster(hb("d0", "drbddisk", "r0"))).cib.locations if not x.rsc.startswith("fence")]
    assert (loc.rsc, loc.role, loc.node) == ("d0-clone", "Promoted", "alpha")


def test_a_resource_id_pacemaker_cannot_take_or_one_used_twice():
    with pytest.raises(ExportError, match="not a valid Pacemaker id"):
        export(cluster(res("1vip", "ocf", "heartbeat:IPaddr2", params={"ip": "192.0.2.10"})))
    with pytest.raises(ExportError, match="'pair' is used twice"):
        export(cluster(res("pair", "ocf", "heartbeat:IPaddr2", params={"ip": "192.0.2.10"})))


# ------------------------------------------------------------------ fencing


def test_one_fence_device_per_node_kept_off_its_own_target():
    cib = export(cluster(hb("fs", "Filesystem", "/dev/sdb", "/srv", "ext4"))).cib
    assert [(d.id, d.agent, dict(d.params)) for d in cib.fence_devices] == [
        ("fence-alpha", "stonith:fence_ipmilan", {"ip": "192.0.2.1", "username": "admin", "password_script": "/etc/ipmi-pass", "pcmk_host_list": "alpha"}),
        ("fence-beta", "stonith:fence_ipmilan", {"ip": "192.0.2.2", "username": "admin", "password_script": "/etc/ipmi-pass", "pcmk_host_list": "beta"}),
    ]
    assert [(x.rsc, x.node, x.score) for x in cib.locations if x.rsc.startswith("fence")] == [
        ("fence-alpha", "alpha", "-INFINITY"), ("fence-beta", "beta", "-INFINITY")]
    props = dict(cib.properties)
    assert (props["stonith-enabled"], props["stonith-action"], props["no-quorum-policy"]) == ("true", "off", "stop")


def test_fencing_off_is_stonith_disabled_with_the_loud_warning():
    e = export(cluster(hb("fs", "Filesystem", "/dev/sdb", "/srv", "ext4"), fencing='mode = "off"'))
    assert dict(e.cib.properties)["stonith-enabled"] == "false" and not e.cib.fence_devices
    assert any(pacemaker.FENCING_OFF_WARNING in w for w in e.warnings)
    assert any(pacemaker.FENCING_OFF_WARNING[:40] in n for n in e.cib.notes)  # written into the file too


def test_fencing_optional_warns_and_block_on_stop_failure():
    f = 'mode = "optional"\non_stop_failure = "block"\ncommand = ["fence_ipmilan", "--ip={address}", "--action", "reboot"]'
    e = export(cluster(hb("fs", "Filesystem", "/dev/sdb", "/srv", "ext4"), fencing=f))
    assert any("no Pacemaker equivalent" in w for w in e.warnings)
    assert "stonith-action" not in dict(e.cib.properties)  # reboot is Pacemaker's default
    assert [o.on_fail for o in prim(e.cib, "fs").ops if o.name == "stop"] == ["block"]


def test_a_script_that_is_not_a_fence_agent_is_refused_with_what_to_do():
    f = 'mode = "required"\ncommand = ["/usr/local/bin/kill-node", "{node}"]'
    with pytest.raises(ExportError, match="not a fence agent.*fence_NAME"):
        export(cluster(hb("fs", "Filesystem", "/dev/sdb", "/srv", "ext4"), fencing=f))


def test_an_unknown_fence_option_is_an_error():
    f = 'mode = "required"\ncommand = ["fence_ipmilan", "-a", "{address}", "-Y", "x", "stray"]'
    with pytest.raises(ExportError, match=r"-Y \(not an option of fence_ipmilan\).*'stray'"):
        export(cluster(hb("fs", "Filesystem", "/dev/sdb", "/srv", "ext4"), fencing=f))
