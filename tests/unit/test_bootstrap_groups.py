"""Bootstrap of several resource groups (issue 17): each group's storage laid down (its DRBD
resource, VG/LV, filesystem, exports), created on the group's own preferred node; one
lvm.conf and one /etc/exports per node over every group; several NFS groups served by one
nfsd per node outside the groups; `check` refusing what cannot work.

The config: tests/unit/data/bootstrap/groups/cluster.toml (two NFS groups, "a" on alpha,
"b" on beta, each on DRBD + LVM)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hasync import config
from hasync.bootstrap import plan as P
from hasync.bootstrap import wanted
from hasync.bootstrap.apply import plan_once
from hasync.bootstrap.doctor import check_config
from hasync.bootstrap.testing import DataFacts
from hasync.cli import main

CFG = Path(__file__).parent / "data" / "bootstrap" / "groups" / "cluster.toml"
TEXT = CFG.read_text()


def plan(node: str, text: str = TEXT, facts: dict | None = None, tmp: Path | None = None) -> list[P.Change]:
    if tmp is not None:
        (tmp / "c.toml").write_text(text)
        w = wanted.wanted_state(str(tmp / "c.toml"), node=node)
    else:
        w = wanted.wanted_state(str(CFG), node=node)
    return [c for _, changes in plan_once(w, DataFacts(facts or {})) for c in changes]


def argvs(changes: list[P.Change], step: str) -> list[str]:
    return [" ".join(c.argv) for c in changes if c.step == step and c.action == "run"]


def written(changes: list[P.Change], path: str, step: str = "") -> str:
    (c,) = [c for c in changes if c.action == "write" and c.path == path and (c.step == step or not step)]
    return c.data or ""


def test_the_config_gives_each_group_its_own_storage_defaulting_to_the_first_groups() -> None:
    c = config.load(str(CFG))
    a, b = c.group_storage()
    assert (a.group.id, a.storage, a.nfs) == ("a", c.storage, c.nfs)
    assert (b.group.id, b.storage.drbd_resource, b.storage.drbd_device, b.storage.vg, b.storage.mount_point) == ("b", "r1", "/dev/drbd1", "havb", "/srv/b")
    # not given in [group.storage]: [storage]'s
    assert (b.storage.replication, b.storage.lv, b.storage.lvm_system_id) == (c.storage.replication, "data", "uname")
    assert [e.path for e in b.nfs.exports] == ["/srv/b/export"] and b.nfs.vip == "192.0.2.11/24"
    assert (b.nfs.grace_time, b.nfs.lease_time) == (c.nfs.grace_time, c.nfs.lease_time)


def test_each_group_is_created_on_its_own_preferred_node_and_both_nodes_get_both_resources() -> None:
    alpha, beta = plan("alpha"), plan("beta")
    for changes in (alpha, beta):
        assert {c.path for c in changes if c.step.startswith("drbd-config")} >= {"/etc/drbd.d/r0.res", "/etc/drbd.d/r1.res"}
        assert argvs(changes, "drbd-up:a") == ["drbdadm up r0"] and argvs(changes, "drbd-up:b") == ["drbdadm up r1"]
    # a's data on alpha, b's on beta: promote, PV/VG/LV, mkfs, mount
    assert argvs(alpha, "drbd-primary:a") == ["drbdadm primary --force r0"] and argvs(alpha, "drbd-primary:b") == []
    assert argvs(beta, "drbd-primary:b") == ["drbdadm primary --force r1"] and argvs(beta, "drbd-primary:a") == []
    assert argvs(alpha, "lvm-volumes:a")[0] == "pvcreate /dev/drbd0" and argvs(alpha, "lvm-volumes:b") == []
    assert argvs(beta, "lvm-volumes:b") == ["pvcreate /dev/drbd1", "vgcreate --setautoactivation n havb /dev/drbd1",
                                            "lvcreate --wipesignatures n -n data -l 100%FREE havb"]
    assert argvs(alpha, "filesystem:a") == ["mkfs.ext4 -q -L ha-pair /dev/hava/data"]
    assert argvs(beta, "filesystem:b") == ["mkfs.ext4 -q -L ha-pair-b /dev/havb/data"]  # the labels differ
    assert argvs(alpha, "mount:a") == ["mount -t ext4 /dev/hava/data /srv/a"] and argvs(alpha, "mount:b") == []
    assert argvs(beta, "mount:b") == ["mount -t ext4 /dev/havb/data /srv/b"]
    assert [c.path for c in beta if c.step == "mount:a" and c.action == "mkdir"] == ["/srv/a"]  # the mount point on both
    # the DRBD fence-peer handler once: one file serves every resource
    assert [c.step for c in alpha if c.path == "/usr/local/lib/hasync/drbd-fence-peer"] == ["drbd-config:a"]


def test_one_lvm_conf_accepts_every_groups_drbd_device_and_rejects_every_backing_disk() -> None:
    conf = written(plan("alpha"), "/etc/lvm/lvm.conf")
    flt = next(line for line in conf.splitlines() if "global_filter" in line and "=" in line)
    for entry in ('"a|^/dev/drbd0$|"', '"a|^/dev/drbd1$|"', '"r|^/dev/vdb$|"', '"r|^/dev/vdc$|"'):
        assert entry in flt, (entry, flt)


def test_neither_groups_vg_is_activated_at_boot(tmp_path: Path) -> None:
    vgs = ('{"report": [{"vg": [{"vg_name": "hava"}, {"vg_name": "havb"}, {"vg_name": "system"}]}]}')
    pvs = ('{"report": [{"pv": [{"pv_name": "/dev/drbd0", "vg_name": "hava"}, {"pv_name": "/dev/drbd1", "vg_name": "havb"},'
           ' {"pv_name": "/dev/vda2", "vg_name": "system"}]}]}')
    text = TEXT.replace('profile = "debian12"', 'profile = "rhel9"')
    facts = {"vgs": {"exit": 0, "stdout": vgs, "stderr": ""}, "pvs": {"exit": 0, "stdout": pvs, "stderr": ""}}
    w = wanted.wanted_state(str(_write(tmp_path, text)), node="alpha")
    if w.o("lvm_autoactivation", "setautoactivation") != "auto_activation_volume_list":
        w = replace(w, profile=replace(w.profile, options={**w.profile.options, "lvm_autoactivation": "auto_activation_volume_list"}))
    conf = written([c for _, cs in plan_once(w, DataFacts(facts)) for c in cs], "/etc/lvm/lvm.conf")
    line = next(x for x in conf.splitlines() if "auto_activation_volume_list" in x and "=" in x)
    assert '"system"' in line and "hava" not in line and "havb" not in line, line


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "c.toml"
    p.write_text(text)
    return p


def test_exports_hold_every_groups_exports_each_with_its_groups_mount_point() -> None:
    for node in ("alpha", "beta"):
        exports = written(plan(node), "/etc/exports")
        assert "/srv/a/export\t192.0.2.0/24(rw,sync,no_subtree_check,fsid=1,mountpoint=/srv/a)" in exports
        assert "/srv/b/export\t192.0.2.0/24(rw,sync,no_subtree_check,fsid=2,mountpoint=/srv/b)" in exports
    # each export's directory made by its group's first node only
    assert [c.path for c in plan("alpha") if c.step == "exports" and c.action == "mkdir"] == ["/srv/a/export"]
    assert [c.path for c in plan("beta") if c.step == "exports" and c.action == "mkdir"] == ["/srv/b/export"]


def test_two_nfs_groups_run_one_nfsd_per_node_from_boot_and_bind_no_single_address() -> None:
    for node in ("alpha", "beta"):
        changes = plan(node)
        assert argvs(changes, "nfs-boot-on") == ["systemctl enable nfs-server.service", "systemctl enable rpc-statd.service"]
        assert not [c for c in changes if c.step in ("nfs-boot-off", "sm-notify", "nfs-state")]
        assert "grace-time=20" in written(changes, "/etc/nfs.conf")
    enabled = {"exit": 0, "stdout": "enabled\n", "stderr": ""}
    assert argvs(plan("alpha", facts={"enabled:rpc-statd-notify": enabled}), "nfs-boot-on")[-1] == "systemctl disable rpc-statd-notify.service"


def test_two_nfs_groups_keep_statds_lists_on_each_nodes_own_disk_where_the_agents_read() -> None:
    """issue 15 with several NFS groups: one statd per node, /var/lib/nfs on the node's own
    disk, so each node makes its own /var/lib/nfs/statd (each group's nfsnotify reads it)."""
    user = {"exit": 0, "stdout": "statd:x:104:65534::/var/lib/nfs:/usr/sbin/nologin\n", "stderr": ""}
    for node in ("alpha", "beta"):
        changes = [c for c in plan(node, facts={"user:statd": user, "entries:/var/lib/nfs/sm": ["192.0.2.50"]}) if c.step == "nfs-statd"]
        assert [c.path for c in changes if c.action == "mkdir"] == ["/var/lib/nfs/statd", "/var/lib/nfs/statd/sm", "/var/lib/nfs/statd/sm.bak",
                                                                          "/var/lib/nfs/statd/sm.ha"]
        assert "cp -a -- /var/lib/nfs/sm/192.0.2.50 /var/lib/nfs/statd/sm/" in argvs(changes, "nfs-statd")
        assert "state-directory-path=/var/lib/nfs/statd" in written(changes, "/etc/nfs.conf", "nfs-statd")


def test_one_nfs_group_keeps_the_cluster_started_nfs(tmp_path: Path) -> None:
    """Group b without [group.nfs]: the one-NFS-group setup (NFS off at boot, sm-notify on the VIP)."""
    text = TEXT[: TEXT.index("[group.nfs]")] + TEXT[TEXT.index("[[group.resource]]\nid = \"b-drbd\""):]
    changes = plan("alpha", text, tmp=tmp_path)
    assert not [c for c in changes if c.step == "nfs-boot-on"]
    assert "outgoing-addr=192.0.2.10" in written(changes, "/etc/nfs.conf", "sm-notify")
    assert "/srv/b" not in written(changes, "/etc/exports")


def test_a_single_chain_plans_as_before_with_unnamed_steps() -> None:
    w = wanted.wanted_state(str(Path(__file__).parent / "data" / "bootstrap" / "golden" / "lab-cluster.toml"), node="node1")
    assert P.group_parts(w) == [w]
    assert all(":" not in s.name for s in P.active_steps(w))


def test_the_plan_of_a_second_run_converges_per_group() -> None:
    """A step bound to a group re-plans against that group (apply's probe-again)."""
    w = wanted.wanted_state(str(CFG), node="beta")
    (s,) = [s for s in P.active_steps(w) if s.name == "drbd-up:b"]
    up = {"exit": 0, "stdout": "r1 role:Secondary\n  disk:Inconsistent\n", "stderr": ""}
    assert s.plan(w, DataFacts({}).get(s.needs(w))) and s.needs(w) == ["drbd_status:r1"]
    assert s.plan(w, DataFacts({"drbd_status:r1": up}).get(s.needs(w))) == []


def test_dry_run_shows_every_groups_steps(tmp_path: Path, capsys) -> None:
    root = tmp_path / "root"
    root.mkdir()
    rc = main(["-c", str(CFG), "bootstrap", "--dry-run", "--node", "beta", "--root", str(root)])
    out = capsys.readouterr().out
    assert rc in (0, 1), out  # 1: the host check refuses this machine; the plan is printed all the same
    for head in ("drbd-config:a:", "drbd-config:b:", "drbd-up:a:", "drbd-up:b:", "drbd-primary:b:", "filesystem:b:", "mount:a:", "mount:b:"):
        assert head in out, head
    assert "drbdadm primary --force r1" in out and "drbdadm primary --force r0" not in out
    assert "mkfs.ext4 -q -L ha-pair-b /dev/havb/data" in out


# --------------------------------------------------------------------------- check refuses


def errors(text: str) -> list[str]:
    return config.check_text(text, "c.toml")[1].errors


def test_a_clean_two_group_config_checks() -> None:
    assert errors(TEXT) == []


@pytest.mark.parametrize(("drop", "what"), [
    ('drbd_resource = "r1"\n', "DRBD resource r0"),
    ('drbd_device = "/dev/drbd1"\n', "DRBD device /dev/drbd0"),
    ("drbd_port = 7790\n", "DRBD port 7789"),
    ('disks = { alpha = "/dev/vdc", beta = "/dev/vdc" }\n', "alpha's disk /dev/vdb"),
    ('vg = "havb"\n', "volume group hava"),
])
def test_check_refuses_a_later_group_that_would_get_the_first_groups_storage(drop: str, what: str) -> None:
    head, tail = TEXT.split("[group.storage]", 1)
    errs = errors(head + "[group.storage]" + tail.replace(drop, "", 1))
    assert any(f"group 'b' would get {what}, which bootstrap lays down for group 'a' too" in e for e in errs), errs
    assert all(e.startswith("c.toml:") for e in errs)


def test_check_refuses_shared_exports_addresses_fsids_and_nested_mount_points() -> None:
    errs = errors(TEXT.replace('vip = "192.0.2.11/24"', 'vip = "192.0.2.10/24"').replace('ip = "192.0.2.11"', 'ip = "192.0.2.10"'))
    assert any("group 'b' claims address 192.0.2.10, which group 'a' claims too" in e for e in errs), errs
    errs = errors(TEXT.replace('path = "/srv/b/export"', 'path = "/srv/a/export"'))
    assert any("would get export /srv/a/export" in e for e in errs), errs
    errs = errors(TEXT.replace("fsid = 2", "fsid = 1"))
    assert any("would get NFS fsid 1" in e for e in errs), errs
    errs = errors(TEXT.replace('mount_point = "/srv/b"', 'mount_point = "/srv/a/b"').replace('directory = "/srv/b"', 'directory = "/srv/a/b"')
                  .replace('path = "/srv/b/export"', 'path = "/srv/a/b/export"'))
    assert any("/srv/a/b is inside the mount point /srv/a of group 'a'" in e for e in errs), errs


def test_check_refuses_a_group_chain_that_is_not_its_own_storage() -> None:
    errs = errors(TEXT.replace('args = ["r1"]', 'args = ["r9"]'))
    assert any("group[1].resource[0]" in e and "DRBD resource 'r9' is not [storage].drbd_resource 'r1'" in e for e in errs), errs
    errs = errors(TEXT.replace('directory = "/srv/b"', 'directory = "/srv/c"'))
    assert any("group[1].storage.mount_point: /srv/b is where bootstrap makes the filesystem" in e for e in errs), errs


def test_check_refuses_node_wide_nfs_keys_in_a_group_and_a_first_groups_own_storage() -> None:
    errs = errors(TEXT.replace('[group.nfs]\nvip = "192.0.2.11/24"', '[group.nfs]\nvip = "192.0.2.11/24"\nstate_dir = "/srv/b/nfs"'))
    assert any("group[1].nfs.state_dir: state_dir is the node's nfsd's (one per node, serving every group): set it in [nfs]" in e for e in errs), errs
    first = TEXT.replace('id = "a"\npreferred_node = "alpha"\n', 'id = "a"\npreferred_node = "alpha"\n[group.storage]\nvg = "x"\n')
    assert any("group[0].storage: the first group's storage and exports are [storage] and [nfs]" in e for e in errors(first))
    no_storage = TEXT[: TEXT.index("[group.storage]")] + TEXT[TEXT.index("[group.nfs]"):]
    assert any("group[1].nfs: [group.nfs] needs [group.storage]" in e for e in errors(no_storage)), errors(no_storage)


def test_doctor_says_what_two_nfs_groups_mean_for_the_nfs_state() -> None:
    (f,) = [f for f in check_config(config.load(str(CFG))) if f.check == "nfs-state-dir"]
    assert "groups a and b both serve NFS" in f.message and "not reclaimed" in f.message


def test_check_refuses_one_groups_nfs_server_when_another_group_serves_nfs_too() -> None:
    server = '\n[[group.resource]]\nid = "a-nfsd"\ntype = "service"\nagent = "nfsserver"\n'
    at = TEXT.index('[[group.resource]]\nid = "a-ip"')
    errs = errors(TEXT[:at] + server.lstrip("\n") + "\n" + TEXT[at:])
    assert any("group 'a' starts the NFS server, and group 'b' serves NFS too" in e for e in errs), errs
