"""`hasync check` compares the config's two sources of truth and refuses chains that cannot
work (issue 13 items 3 and 4, issue 18's check list). Each case edits the example config
the README deploys, so the example itself is held to every rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from hasync import config, model
from hasync.config import agents

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "profiles" / "cluster" / "example.toml").read_text()
MINIMAL = (Path(__file__).parent / "data" / "config" / "good" / "minimal.toml").read_text()



def edited(*pairs: tuple[str, str], text: str = EXAMPLE) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def check(text: str):
    _, report = config.check_text(text, "c.toml")
    return report


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def only(issues: list[str], word: str) -> list[str]:
    return [i for i in issues if word in i]


def test_the_example_has_no_errors_and_no_warning_to_act_on():
    report = check(EXAMPLE)
    assert report.errors == []
    # a dedicated heartbeat link apart from DRBD's, the canonical order, DRBD promoted by the
    # chain; what is left says what hasync does by itself (node-local files are not synced)
    assert [w for w in report.warnings if "never synced, each node keeps its own" not in w] == []


# ------------------------------------------------------------------ [nfs].vip against the chain


def test_nfs_vip_not_the_chains_address_is_one_error():
    text = edited(('vip = "192.0.2.10/24"', 'vip = "192.0.2.20/24"'))
    report = check(text)
    assert report.errors == [f"c.toml:{line_of(text, 'vip = ')}: nfs.vip: 192.0.2.20 (where sm-notify tells clients of a failover) "
                             "is not the address the chain brings up: 192.0.2.10 ('vip' (IPaddr2)); clients mount one and "
                             "ignore notices from the other, so their locks are lost: make them the same"]


def test_nfsserver_nfs_ip_not_the_cluster_address_is_an_error():
    text = edited(('params = { nfs_server_scope', 'params = { nfs_ip = "192.0.2.99", nfs_server_scope'))
    [e] = check(text).errors
    assert e == (f"c.toml:{line_of(text, 'nfs_ip = ')}: resource[3].params.nfs_ip: nfs_ip 192.0.2.99 is not the cluster "
                 "address (192.0.2.10: [nfs].vip and the chain's IP resource)")


def test_nfs_vip_with_no_address_in_the_chain_is_a_warning():
    text = edited(('agent = "heartbeat:IPaddr2"\nparams = { ip = "192.0.2.10", cidr_netmask = "24", nic = "eth0" }',
                   'agent = "heartbeat:Dummy"\nparams = {}'))
    report = check(text)
    assert report.errors == [] and only(report.warnings, "no resource of the chain brings up 192.0.2.10/24")


# ------------------------------------------------------------------ [storage] against the chain


@pytest.mark.parametrize("old,new,key,says", [
    ('directory = "/srv/ha"', 'directory = "/srv/data"', "storage.mount_point", "/srv/ha is where bootstrap makes the filesystem"),
    ('device = "/dev/havg/data"', 'device = "/dev/havg/other"', "resource[2].params.device", "device /dev/havg/other is not"),
    ('fstype = "ext4"', 'fstype = "xfs"', "resource[2].params.fstype", "fstype xfs is not [storage].filesystem ext4"),
    ('vgname = "havg"', 'vgname = "datavg"', "resource[1].params.vgname", "volume group 'datavg' is not [storage].vg 'havg'"),
    ('params = { drbd_resource = "r0" }', 'params = { drbd_resource = "r1" }', "resource[0].params.drbd_resource", "DRBD resource 'r1' is not"),
])
def test_storage_and_the_chain_must_agree(old, new, key, says):
    [e] = check(edited((old, new))).errors
    assert f": {key}: " in e and says in e


def test_the_mapper_name_of_the_lv_is_the_same_device():
    assert check(edited(('device = "/dev/havg/data"', 'device = "/dev/mapper/havg-data"'))).errors == []


def test_a_haresources_chain_is_compared_too(tmp_path):
    (tmp_path / "haresources").write_text("node1 drbddisk::r0 Filesystem::/dev/drbd0::/home::ext4 IPaddr::192.0.2.10/24/eth0\n")
    text = MINIMAL.replace('"alpha"', '"node1"').replace("alpha =", "node1 =")
    text = 'haresources = "haresources"\n' + text[: text.index("[[resource]]")] + text[text.index("[fencing]"):]
    text += '\n[storage]\nuse_lvm = false\nmount_point = "/srv/ha"\n'
    f = tmp_path / "c.toml"
    f.write_text(text)
    _, report = config.check(f)
    assert report.errors == [f"{f}:{line_of(text, 'mount_point')}: storage.mount_point: /srv/ha is where bootstrap makes the "
                             f"filesystem and the exports, but the chain mounts /home ('filesystem' (Filesystem)): make them the same"]


# ------------------------------------------------------------------ order


def move_first(text: str, rid: str) -> str:
    """The [[resource]] with id *rid* moved to the head of the chain."""
    head, _, chain = text.partition("[[resource]]")
    blocks = ["[[resource]]" + b for b in chain.split("[[resource]]")]
    tail = blocks[-1][blocks[-1].index("[fencing]"):]
    blocks[-1] = blocks[-1][: blocks[-1].index("[fencing]")]
    blocks.sort(key=lambda b: f'id = "{rid}"' not in b)
    return head + "".join(b if b.endswith("\n\n") else b.rstrip("\n") + "\n\n" for b in blocks) + tail


def test_nfsserver_before_drbd_is_an_error():
    report = check(move_first(EXAMPLE, "nfs"))
    [e] = report.errors
    assert ": resource[0]: 'nfs' (nfsserver) starts before 'drbd' (drbd), 'vg' (LVM-activate), 'fs' (Filesystem): it would serve" in e
    assert "move it after 'fs'" in e


def test_drbd_after_the_volume_group_on_it_is_an_error():
    report = check(move_first(EXAMPLE, "vg"))
    [e] = report.errors
    assert ": resource[0]: 'vg' (LVM-activate) starts before 'drbd' (drbd): the lvm sits on the drbd" in e


def test_an_address_before_the_filesystem_is_a_warning():
    report = check(move_first(EXAMPLE, "vip"))
    assert report.errors == []
    assert only(report.warnings, "'vip' (IPaddr2) starts before 'drbd' (drbd), 'vg' (LVM-activate), 'fs' (Filesystem), 'nfs'")


def test_the_canonical_order_is_quiet():
    text = move_first(move_first(move_first(move_first(EXAMPLE, "vip"), "exports"), "nfs"), "fs")
    text = move_first(move_first(text, "vg"), "drbd")
    assert not only(check(text).warnings, "starts before")


def test_a_haresources_chain_is_linted_at_its_line(tmp_path):
    (tmp_path / "haresources").write_text("node1 \\\n  nfsserver \\\n  drbddisk::r0\n")
    text = MINIMAL.replace('"alpha"', '"node1"').replace("alpha =", "node1 =")
    text = 'haresources = "haresources"\n' + text[: text.index("[[resource]]")] + text[text.index("[fencing]"):]
    f = tmp_path / "c.toml"
    f.write_text(text)
    _, report = config.check(f)
    assert [e.split(": it would")[0] for e in report.errors] == [
        f"{tmp_path / 'haresources'}:2: resource 'nfsserver' (nfsserver): 'nfsserver' (nfsserver) starts before 'drbddisk' (drbd)"]


# ------------------------------------------------------------------ chains that cannot work


def test_a_promotable_agent_is_run_promoted_and_check_says_nothing_of_it():
    # before the chain runner promoted, check warned that ocf:linbit:drbd's start leaves it Secondary
    cluster, report = config.check_text(EXAMPLE, "c.toml")
    assert not only(report.warnings, "promot") and not only(report.errors, "promot")
    assert cluster is not None and [r.id for r in cluster.resources if r.promotable] == ["drbd"]


def test_promotable_true_on_an_agent_without_a_promote_action_is_refused():
    text = edited(('monitor_interval = "5s"', 'monitor_interval = "5s"\npromotable = true'))
    [e] = check(text).errors
    line = line_of(text, "promotable = true")
    assert e.startswith(f"c.toml:{line}: resource[5].promotable: ocf:heartbeat:IPaddr2 has no promote action")


def test_promotable_false_on_drbd_is_refused():
    text = edited(('params = { drbd_resource = "r0" }', 'params = { drbd_resource = "r0" }\npromotable = false'))
    [e] = check(text).errors
    line = line_of(text, "promotable = false")
    assert e.startswith(f"c.toml:{line}: resource[0].promotable: ocf:linbit:drbd only works promoted")


def test_promotable_is_for_ocf_agents_only():
    text = edited(('type = "ocf"\nagent = "heartbeat:exportfs"', 'type = "systemd"\nagent = "nfs-server"\npromotable = true'),
                  ('params = { directory = "/srv/ha/export", clientspec = "192.0.2.0/24", options = "rw,sync", fsid = "1" }\n', ''))
    errors = only(check(text).errors, "promot")
    line = line_of(text, "promotable = true")
    assert errors == [f"c.toml:{line}: resource[4].promotable: only an OCF agent can be promoted; a systemd resource starts and stops"]


def test_a_dual_mode_agent_runs_plain_with_promotable_false():
    # mysql has a promote action but also runs as one plain instance: promotable = false is fine
    text = edited(('agent = "heartbeat:nfsnotify"  # `sm-notify -f -v VIP`: NFSv3 clients reclaim their locks now\n'
                   'params = { source_host = "192.0.2.10" }',
                   'agent = "heartbeat:mysql"\npromotable = false'))
    cluster, report = config.check_text(text, "c.toml")
    assert not only(report.errors, "promot") and cluster is not None and not cluster.resources[-1].promotable


def test_promotable_is_read_from_the_agents_metadata(tmp_path):
    root = tmp_path / "ocf"
    (root / "resource.d" / "site").mkdir(parents=True)
    (root / "resource.d" / "site" / "db").write_text('<actions>\n<action name="promote"\t timeout="90" />\n</actions>\n')
    (root / "resource.d" / "site" / "web").write_text('<actions>\n<action name="start" timeout="20" />\n</actions>\n')
    assert agents.promotable("site:db", str(root)) and not agents.promotable("site:web", str(root))
    assert agents.promotable("linbit:drbd", str(root))  # not installed there: the known list
    assert not agents.promotable("heartbeat:IPaddr2", str(root))


def test_lvm_activate_system_id_needs_bootstrap_to_write_the_source():
    text = edited(('lvm_system_id = "uname"', 'lvm_system_id = ""'))
    [e] = check(text).errors
    line = line_of(text, 'vgname = "havg"')
    assert e.startswith(f"c.toml:{line}: resource[1].params.vg_access_mode: vg_access_mode=system_id "
                        "needs system_id_source in lvm.conf")
    assert 'add lvm_system_id = "uname" to [storage]' in e
    [e] = check(edited(('lvm_system_id = "uname"', 'lvm_system_id = "lvmlocal"'))).errors
    assert "storage.lvm_system_id: expected one of uname, machineid, appmachineid" in e
    assert config.loads(EXAMPLE).storage.lvm_system_id == "uname"


def test_an_unknown_ocf_agent_is_a_warning_with_a_hint():
    text = edited(('agent = "heartbeat:IPaddr2"', 'agent = "heartbeat:IPaddr3"'))
    report = check(text)
    assert report.errors == []
    [w] = only(report.warnings, "IPaddr3")
    assert w == (f"c.toml:{line_of(text, 'IPaddr3')}: resource[5].agent: OCF agent 'heartbeat:IPaddr3' is unknown: "
                 "did you mean 'heartbeat:IPaddr' or 'heartbeat:IPaddr2'?")


# ------------------------------------------------------------------ links and addresses


def test_a_heartbeat_link_on_the_replication_addresses_is_a_warning():
    text = edited(('addresses = { node1 = "203.0.113.1", node2 = "203.0.113.2" }',
                   'addresses = { node1 = "198.51.100.1", node2 = "198.51.100.2" }'))
    line = line_of(text, "addresses = { node1")
    [w] = only(check(text).warnings, "replication addresses")
    assert w.startswith(f"c.toml:{line}: heartbeat.link[0].addresses: link 'heartbeat' runs on DRBD's replication addresses "
                        "(node1 198.51.100.1, node2 198.51.100.2)")
    assert not only(check(EXAMPLE).warnings, "replication addresses")  # the example keeps them apart


def test_an_ipv6_link_address_is_refused():
    text = edited(('addresses = { node1 = "203.0.113.1"', 'addresses = { node1 = "2001:db8::1"'))
    [e] = check(text).errors
    assert e.startswith(f"c.toml:{line_of(text, '2001:db8::1')}: heartbeat.link[0].addresses.node1: 2001:db8::1 is an IPv6 "
                        "address, and the heartbeat links open IPv4 (AF_INET) sockets only")
    [e] = check(edited(('group = "239.0.0.43"', 'group = "ff02::43"'))).errors
    assert "heartbeat.link[1].group: ff02::43 is an IPv6 group" in e


def test_a_vip_outside_every_subnet_of_a_node_is_a_warning():
    text = edited(('vip = "192.0.2.10/24"', 'vip = "192.0.2.10/28"'),
                  ('address = "192.0.2.12"', 'address = "192.0.2.22"'))
    report = check(text)
    assert report.errors == []
    [w] = only(report.warnings, "outside every subnet")
    assert w.startswith(f"c.toml:{line_of(text, 'vip = ')}: nfs.vip: the cluster address 192.0.2.10/28 is outside every subnet "
                        "of node2's addresses")
    # the IPaddr2 resource's own /24 holds both nodes: said once, for the /28 only
    assert len(only(report.warnings, "outside every subnet")) == 1


def test_no_prefix_anywhere_means_no_subnet_check():
    text = edited(('vip = "192.0.2.10/24"', 'vip = "192.0.2.10"'), ('cidr_netmask = "24", ', ""),
                  ('address = "192.0.2.12"', 'address = "10.1.1.12"'))
    assert not only(check(text).warnings, "outside every subnet")


def test_no_storage_section_is_a_warning():
    report = check(MINIMAL)
    assert [w for w in report.warnings if "no [storage] section" in w] == [
        "c.toml: storage: no [storage] section: use_drbd and use_lvm default to true, so bootstrap would build DRBD and LVM "
        "with no disks named; add [storage] with disks and replication per node, or use_drbd = false and use_lvm = false "
        "for a filesystem on the disk itself"]
    assert not only(check(MINIMAL + '\n[storage]\nuse_drbd = false\nuse_lvm = false\n').warnings, "no [storage]")


def test_import_placeholders_left_in_are_warnings():
    text = edited(('address = "192.0.2.12"', 'address = "0.0.0.0"   # check: this node\'s management address'),
                  ('timeout = "30s"', 'timeout = "30s"   # check: the BMC answers within this'))
    report = check(text)
    node2, fence = line_of(text, '"0.0.0.0"'), line_of(text, "BMC answers")
    assert only(report.warnings, "placeholder") == [f"c.toml:{node2}: node[1].address: 0.0.0.0 is a placeholder "
                                                    "(`hasync haresources import` writes it where it cannot know the address): "
                                                    "put the real address here"]
    assert only(report.warnings, "marker") == [f"c.toml:{fence}: a `check:` marker is left in: review what it says, then delete it"]


def test_the_model_keeps_the_lvm_system_id_default_empty():
    assert model.Storage().lvm_system_id == ""
