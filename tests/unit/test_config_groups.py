"""Several resource groups on one pair (issue 17): [[group]] tables, a haresources file of
several lines, the import, check's refusals of what two groups both claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hasync import config, model
from tests.unit.test_export_pacemaker import BASE

DATA = Path(__file__).parent / "data" / "export"

HEAD = BASE.format(profile="debian12", failback="false", fencing='mode = "off"') + """
[storage]
use_drbd = true
use_lvm = false
drbd_resource = "r0"
drbd_device = "/dev/drbd0"
mount_point = "/srv/a"
disks = { alpha = "/dev/vdb", beta = "/dev/vdb" }
replication = { alpha = "198.51.100.1", beta = "198.51.100.2" }
"""


def group(gid: str, drbd: str, device: str, mount: str, ip: str, extra: str = "") -> str:
    return f"""
[[group]]
id = "{gid}"
{extra}
[[group.resource]]
id = "{gid}-drbd"
type = "heartbeat"
agent = "drbddisk"
args = ["{drbd}"]

[[group.resource]]
id = "{gid}-fs"
type = "ocf"
agent = "heartbeat:Filesystem"
params = {{ device = "{device}", directory = "{mount}", fstype = "ext4" }}

[[group.resource]]
id = "{gid}-ip"
type = "ocf"
agent = "heartbeat:IPaddr2"
params = {{ ip = "{ip}", cidr_netmask = "24" }}
"""


A = group("a", "r0", "/dev/drbd0", "/srv/a", "192.0.2.10")
B = group("b", "r1", "/dev/drbd1", "/srv/b", "192.0.2.11", 'preferred_node = "beta"\nauto_failback = true\n')


def check(text: str):
    return config.check_text(text, "c.toml")


def test_two_groups_each_with_its_preferred_node_order_and_auto_failback():
    c = config.loads(HEAD + A + B, "c.toml")
    a, b = c.resource_groups()
    assert (a.id, a.preferred_node, a.auto_failback) == ("a", "alpha", False)  # [cluster] and [heartbeat] values
    assert (b.id, b.preferred_node, b.auto_failback) == ("b", "beta", True)
    assert [r.id for r in b.resources] == ["b-drbd", "b-fs", "b-ip"]
    assert [r.id for r in c.resources] == ["a-drbd", "a-fs", "a-ip", "b-drbd", "b-fs", "b-ip"]
    lines = (HEAD + A + B).splitlines()
    assert lines[int(b.src.split(":")[1]) - 1] == "[[group]]" and lines[int(b.resources[2].src.split(":")[1]) - 1] == "[[group.resource]]"
    assert c.group("b") == b


def test_a_top_level_chain_is_one_group_named_main():
    chain = A.replace("[[group.resource]]", "[[resource]]").replace('[[group]]\nid = "a"\n', "")
    c = config.loads(HEAD + chain, "c.toml")
    (g,) = c.resource_groups()
    assert (g.id, g.preferred_node, g.auto_failback) == (model.IMPLICIT_GROUP, "alpha", False)
    assert g.resources == c.resources and c.groups == ()


@pytest.mark.parametrize("what, b, message", [
    ("mount point", group("b", "r1", "/dev/drbd1", "/srv/a/", "192.0.2.11"), "group 'b' claims mount point /srv/a, which group 'a' claims too (resource 'a-fs', c.toml:"),
    ("address", group("b", "r1", "/dev/drbd1", "/srv/b", "192.0.2.10"), "group 'b' claims address 192.0.2.10, which group 'a' claims too (resource 'a-ip', c.toml:"),
    ("DRBD", group("b", "r0", "/dev/drbd1", "/srv/b", "192.0.2.11"), "group 'b' claims DRBD resource r0, which group 'a' claims too (resource 'a-drbd', c.toml:"),
    ("device", group("b", "r1", "/dev/drbd0", "/srv/b", "192.0.2.11"), "group 'b' claims device /dev/drbd0, which group 'a' claims too (resource 'a-fs', c.toml:"),
])
def test_check_refuses_two_groups_that_claim_the_same_thing_and_says_where(what, b, message):
    text = HEAD + A + b
    cluster, report = check(text)
    assert cluster is None
    [error] = [e for e in report.errors if "claims" in e]
    assert message in error
    where = int(error.split(":")[1])
    key = {"mount point": "params", "address": "params", "device": "params", "DRBD": "args"}[what]
    assert text.splitlines()[where - 1].startswith(key)  # the second group's own line
    assert config.check_text(HEAD + A + B, "c.toml")[0] is not None  # the same config with its own storage passes


def test_group_table_errors_name_file_line_and_key():
    dup = HEAD + A + group("a", "r1", "/dev/drbd1", "/srv/b", "192.0.2.11")
    errors = check(dup)[1].errors
    assert any("group[1].id: duplicate group id 'a'" in e for e in errors)
    assert any("group[1].resource[0].id: duplicate resource id 'a-drbd': another group has it (c.toml:" in e for e in errors)
    bad = check(HEAD + A + B.replace('preferred_node = "beta"', 'preferred_node = "gamma"'))[1].errors
    assert [e for e in bad if "preferred_node" in e][0].endswith("group[1].preferred_node: 'gamma' is not a node; nodes: alpha, beta")
    empty = check(HEAD + '[[group]]\nid = "x"\n')[1].errors
    assert any("group[0]: group 'x' has no resources" in e for e in empty)
    both = check(HEAD + A + '[[resource]]\nid = "r"\ntype = "lsb"\nagent = "x"\n')[1].errors
    assert any("give the chain once" in e and "resource and group" in e for e in both)


def test_several_groups_are_run_by_the_daemon_so_check_no_longer_warns_about_it():
    warnings = check(HEAD + A + B)[1].warnings
    assert not any("refuses several groups" in w for w in warnings), warnings


# ------------------------------------------------------------------ haresources


def imported(tmp_path: Path, haresources: Path) -> tuple[str, Path]:
    p = subprocess.run([sys.executable, "-m", "hasync", "haresources", "import", str(haresources),
                        "--ha-cf", str(DATA / "field-notes.ha.cf")], capture_output=True, text=True, check=True)
    text = p.stdout.replace('address = "0.0.0.0"', 'address = "10.0.0.1"', 1).replace('address = "0.0.0.0"', 'address = "10.0.0.2"', 1)
    f = tmp_path / "imported.toml"
    f.write_text(text)
    return p.stdout, f


def test_import_of_a_two_line_haresources_file_is_two_groups_in_order_with_their_nodes(tmp_path):
    # was refused: "more than one resource group; hasync runs one chain per two-node cluster"
    text, f = imported(tmp_path, DATA / "two-groups.haresources")
    assert text.count("[[group]]") == 2 and "[[resource]]" not in text
    c = config.load(f)
    a, b = c.resource_groups()
    assert (a.id, a.preferred_node, b.id, b.preferred_node) == ("node1-group", "node1", "node2-group", "node2")
    assert [r.id for r in a.resources] == ["drbddisk", "filesystem", "ipaddr", "nfsserver", "nfslock"]
    assert [(r.agent, r.params.get("directory") or r.params.get("ip") or r.args[0]) for r in b.resources] == [
        ("drbddisk", "ha-disk1"), ("heartbeat:Filesystem", "/srv/web"), ("heartbeat:IPaddr2", "10.0.0.11")]
    # each later group's storage read off its chain, for bootstrap: its own DRBD resource,
    # device, port (a guess marked check:), filesystem and mount point
    gs = b.storage
    assert gs is not None and b.nfs is None
    assert (gs.drbd_resource, gs.drbd_device, gs.drbd_port, gs.filesystem, gs.mount_point) == ("ha-disk1", "/dev/drbd1", 7790, "ext3", "/srv/web")
    assert (c.storage.drbd_resource, c.storage.mount_point) == ("ha-disk0", "/home")
    assert "drbd_port = 7790   # check: the port of this group's DRBD resource" in text
    assert [g.group.id for g in c.group_storage()] == ["node1-group", "node2-group"]


def test_import_gives_a_later_group_on_lvm_a_drbd_device_of_its_own_and_a_group_without_storage_none(tmp_path):
    hares = tmp_path / "haresources"
    hares.write_text("node1 drbddisk::r0 LVM::vga Filesystem::/dev/vga/data::/srv/a::ext4 IPaddr::10.0.0.10/24/eth0\n"
                     "node2 drbddisk::r1 LVM::vgb Filesystem::/dev/vgb/data::/srv/b::ext4 IPaddr::10.0.0.11/24/eth0 nfsserver\n"
                     "node2 IPaddr::10.0.0.12/24/eth0\n")
    text, f = imported(tmp_path, hares)
    c = config.load(f)
    a, b, x = c.resource_groups()
    assert b.storage is not None and (b.storage.vg, b.storage.lv, b.storage.drbd_device, b.storage.drbd_port) == ("vgb", "data", "/dev/drbd1", 7790)
    assert b.nfs is not None and b.nfs.vip == "10.0.0.11/24"
    assert "check: the DRBD device of this group's resource" in text
    assert x.storage is None  # nothing to lay down: no [group.storage]
    assert [g.group.id for g in c.group_storage()] == [a.id, b.id]


def test_one_line_haresources_still_imports_to_a_top_level_chain(tmp_path):
    text, f = imported(tmp_path, DATA / "field-notes.haresources")
    assert "[[group]]" not in text and text.count("[[resource]]") == 5
    assert config.load(f).groups == ()


def test_haresources_path_of_two_lines_is_two_groups_and_its_conflicts_are_refused(tmp_path):
    hares = tmp_path / "haresources"
    hares.write_text("alpha IPaddr::192.0.2.10/24 lsb-a\nbeta IPaddr::192.0.2.11/24 lsb-b\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('haresources = "haresources"\n' + HEAD.replace('preferred_node = "alpha"\n', ""))
    c = config.load(cfg)
    assert [(g.id, g.preferred_node, [r.id for r in g.resources]) for g in c.resource_groups()] == [
        ("alpha-group", "alpha", ["ipaddr", "lsb-a"]), ("beta-group", "beta", ["ipaddr-2", "lsb-b"])]
    assert c.cluster.preferred_node == "alpha" and c.groups[1].src == f"{hares}:2"
    hares.write_text("alpha IPaddr::192.0.2.10/24 lsb-a\nbeta IPaddr::192.0.2.10/24 lsb-b\n")
    _, report = config.check(cfg)
    assert [e for e in report.errors if "claims" in e] == [
        f"{hares}:2: resource 'ipaddr-2' (IPaddr): group 'beta-group' claims address 192.0.2.10, which group 'alpha-group' "
        f"claims too (resource 'ipaddr', {hares}:1): each group fails over on its own, so both nodes would use it at once; "
        "give each group its own"]


NFSD = """
[[group.resource]]
id = "{gid}-nfsd"
type = "ocf"
agent = "heartbeat:nfsserver"
"""


def exports(gid: str, fsid: str) -> str:
    return f"""
[[group.resource]]
id = "{gid}-export"
type = "ocf"
agent = "heartbeat:exportfs"
params = {{ directory = "/srv/{gid}", clientspec = "*", fsid = "{fsid}" }}
"""


def test_two_groups_starting_the_nfs_server_are_refused_with_the_fields_setup():
    text = HEAD + A + NFSD.format(gid="a") + exports("a", "1") + B + NFSD.format(gid="b") + exports("b", "2")
    errors = check(text)[1].errors
    [error] = [e for e in errors if "NFS server" in e]
    assert "group[1].resource[3]: group 'b' starts the NFS server, and so does group 'a' (resource 'a-nfsd', c.toml:" in error
    assert "Run nfsd on both nodes outside the groups" in error
    # the field's setup: nfsd outside the groups, each group its own exports: accepted
    cluster, report = check(HEAD + A + exports("a", "1") + B + exports("b", "2"))
    assert cluster is not None, report.errors


def test_two_nfs_groups_refuse_a_shared_state_dir_and_one_fsid():
    text = HEAD + '\n[nfs]\nstate_dir = "/srv/a/nfs"\n' + A + exports("a", "1") + B + exports("b", "1")
    errors = check(text)[1].errors
    assert any("nfs.state_dir: groups 'a' and 'b' both serve NFS" in e for e in errors), errors
    assert any("group 'b' claims NFS fsid 1, which group 'a' claims too" in e for e in errors), errors


def test_check_shows_each_group_with_its_node_and_chain(tmp_path, capsys):
    from hasync import cli

    f = tmp_path / "c.toml"
    f.write_text(HEAD + A + B)
    assert cli.main(["-c", str(f), "check"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "group a (preferred node alpha, auto_failback off)" in out and "group b (preferred node beta, auto_failback on)" in out
    assert out.index("a-ip") < out.index("group b") < out.index("b-drbd")


def test_a_cluster_whose_resources_are_not_its_groups_chains_is_refused():
    c = config.loads(HEAD + A + B, "c.toml")
    with pytest.raises(ValueError, match="the groups' resources in order"):
        model.Cluster(**{**c.__dict__, "resources": c.resources[::-1]})
