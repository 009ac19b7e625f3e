"""doctor on the field's pitfalls (issue 13 items 2, 5, 6; issue 15): each one found from
probe output, with a one-line fix; and the probe script itself, run by sh here."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from hasync import config, model
from hasync.bootstrap import doctor as D
from hasync.bootstrap import doctor_host

from .test_bootstrap_doctor import HEALTHY, cluster, profile


def node(text: str = HEALTHY, **changes: str) -> dict[str, str]:
    p = D.parse_probe(text)
    p.update(changes)
    return p


def found(findings, check: str, level: str = "error"):
    return [f for f in findings if f.check == check and f.level == level]


def with_chain(c: model.Cluster, **params: dict) -> model.Cluster:
    return replace(c, resources=tuple(replace(r, params={k: v for k, v in {**r.params, **params.get(r.id, {})}.items() if v is not None})
                                      for r in c.resources))


def test_healthy_active_node_is_all_ok() -> None:
    f = D.check_config(cluster(), profile()) + D.check_node(cluster(), profile(), "node1", node())
    assert [x for x in f if x.level in ("error", "warning")] == []
    for check in ("nfs-scope", "sm-notify", "host", "chain-programs", "nfs-grace", "lvm-filter", "nfs-state-link", "statd-dir"):
        assert [x.level for x in f if x.check == check] and all(x.level == "ok" for x in f if x.check == check), check


# --------------------------------------------------------------------------- item 5: programs, own mounts, bind


def test_a_missing_agent_or_script_is_an_error_naming_the_package() -> None:
    f = D.check_node(cluster(), profile(), "node2", node(**{"prog.0.0": "", "prog.3.0": ""}))
    drbd, ip = found(f, "chain-programs")
    assert "resource 'drbd' (ocf linbit:drbd) runs /usr/lib/ocf/resource.d/linbit/drbd, which is missing on node2" in drbd.message
    assert drbd.fix.startswith("install drbd-utils") and ip.fix == "install resource-agents"
    # a heartbeat script: resource.d, then init.d (Debian's resource.d has no drbddisk)
    c = replace(cluster(), resources=(model.Resource("disk", "heartbeat", "drbddisk", args=("r0",)),))
    assert doctor_host.programs(c.resources[0], profile()) == [("/etc/ha.d/resource.d/drbddisk", "/etc/init.d/drbddisk")]
    [e] = found(D.check_node(c, profile(), "node1", node(**{"prog.0.0": ""})), "chain-programs")
    assert "/etc/ha.d/resource.d/drbddisk or /etc/init.d/drbddisk" in e.message and "hasync export pacemaker" in e.fix
    unit = replace(cluster(), resources=(model.Resource("nfs", "service", "nfsserver"),))
    assert doctor_host.programs(unit.resources[0], profile())[0][0] == "/etc/systemd/system/nfs-server.service"


def test_a_node_mounting_the_clusters_own_export_is_an_error() -> None:
    """The field notes: HA nodes must not be NFS clients (of their own cluster least of all)."""
    f = D.check_node(cluster(), profile(), "node2", node(nfs_mounts="192.0.2.10:/srv/ha/export@/mnt/ha nas:/backup@/backup"))
    [e] = found(f, "nfs-client")
    assert "mounts the cluster's own export 192.0.2.10:/srv/ha/export on /mnt/ha" in e.message
    assert e.fix == "umount -l /mnt/ha and remove it from /etc/fstab (or the automounter)"
    assert found(D.check_node(cluster(), profile(), "node2", node(nfs_mounts="node1:/srv/ha/export@/x")), "nfs-client")
    assert not found(D.check_node(cluster(), profile(), "node2", node(nfs_mounts="nas:/backup@/backup")), "nfs-client")


def rhel9() -> tuple[model.Cluster, model.Profile]:
    c = with_chain(cluster(), nfs={"nfs_shared_infodir": "/srv/ha/nfs-state"})
    return replace(c, cluster=replace(c.cluster, profile="rhel9")), config.load_profile("rhel9")


def test_rhel9_bind_mount_is_really_checked() -> None:
    """issue 13 item 5: on the bind profile doctor only looked for a directory -- it
    could not fail. Now, on the node with the filesystem, /var/lib/nfs must be a bind
    mount of state_dir; on the other, no leftover mount."""
    c, prof = rhel9()
    rocky = {"os.ID": "rocky", "os.ID_LIKE": "rhel centos fedora", "os.VERSION_ID": "9.3", "nfs_kind": "dir", "nfs_link": ""}
    missing = D.check_node(c, prof, "node1", node(**rocky, **{"mnt.fs": "253:0 /", "mnt.nfs_state": ""}))
    [e] = found(missing, "nfs-state-link")
    assert "not bind-mounted from /srv/ha/nfs-state" in e.message and "nfs_shared_infodir" in e.fix
    other = D.check_node(c, prof, "node1", node(**rocky, **{"mnt.fs": "253:0 /", "mnt.nfs_state": "8:2 /var-lib-nfs"}))
    assert "not /srv/ha/nfs-state" in found(other, "nfs-state-link")[0].message
    good = D.check_node(c, prof, "node1", node(**rocky, **{"mnt.fs": "253:0 /", "mnt.nfs_state": "253:0 /nfs-state"}))
    assert [x.level for x in good if x.check == "nfs-state-link"] == ["ok"]
    stale = D.check_node(c, prof, "node2", node(**rocky, **{"mnt.fs": "", "mnt.nfs_state": "253:0 /nfs-state"}))
    assert found(stale, "nfs-state-link")[0].fix == "umount /var/lib/nfs"
    passive = D.check_node(c, prof, "node2", node(**rocky, **{"mnt.fs": "", "mnt.nfs_state": ""}))
    assert [x.level for x in passive if x.check == "nfs-state-link"] == ["ok"]
    # the chain must do the bind: an nfsserver without nfs_shared_infodir is a config error
    bare = with_chain(c, nfs={"nfs_shared_infodir": None})
    [e] = found(D.check_config(bare, prof), "nfs-state-bind")
    assert 'nfs_shared_infodir = "/srv/ha/nfs-state"' in e.fix
    assert not found(D.check_config(c, prof), "nfs-state-bind")


# --------------------------------------------------------------------------- NFS v4 state (issue 15)


def test_grace_and_lease_set_as_configured() -> None:
    unset = D.check_node(cluster(), profile(), "node1", node(**{"nfsconf.nfsd.grace-time": "", "nfsconf.nfsd.lease-time": ""}))
    [e] = found(unset, "nfs-grace")
    assert "grace-time unset (90) and lease-time unset (90), [nfs] says 20 and 20" in e.message and e.fix == "hasync bootstrap --yes"
    stale = D.check_node(cluster(), profile(), "node1", node(**{"nfsd.grace": "90", "nfsd.lease": "90"}))
    [w] = found(stale, "nfs-grace", "warning")
    assert "nfsd runs with grace 90 s and lease 90 s" in w.message
    idle = D.check_node(cluster(), profile(), "node2", node(**{"nfsd.threads": "0", "nfsd.grace": "90"}))
    assert not found(idle, "nfs-grace", "warning")  # nfsd not running there: nothing to compare


def test_nfsdcld_records_on_the_replicated_disk_and_nfsdcld_running() -> None:
    off = D.check_node(cluster(), profile(), "node1", node(**{"nfsconf.nfsdcld.storagedir": "/var/local/nfsdcld"}))
    [e] = found(off, "nfs-v4-records")
    assert "/var/local/nfsdcld, off the replicated disk" in e.message and e.fix == "hasync bootstrap --yes"
    assert not found(D.check_node(cluster(), profile(), "node1", node(**{"nfsconf.nfsdcld.storagedir": "/srv/ha/nfs-state/nfsdcld"})), "nfs-v4-records")
    [w] = found(D.check_node(cluster(), profile(), "node1", node(nfsdcld_running="0")), "nfsdcld", "warning")
    assert "grace does not end as soon as every client has reclaimed" in w.message and "systemctl start nfsdcld" in w.fix


def test_nfsd_running_where_the_filesystem_is_not_mounted_is_an_error() -> None:
    # the VM scenario (busybox init): the nfsserver agent's stop through Debian's init
    # script left nfsd's threads on node2 after a migrate back; the takeover there had no
    # grace period and both clients lost their locks
    [e] = found(D.check_node(cluster(), profile(), "node2", node(**{"mnt.fs": "", "nfsd.threads": "8"})), "nfsd-stray")
    assert "nfsd runs here (8 threads) though the cluster filesystem is not mounted here" in e.message and e.fix.startswith("echo 0 > /proc/fs/nfsd/threads")
    assert not found(D.check_node(cluster(), profile(), "node2", node(**{"mnt.fs": "", "nfsd.threads": "0"})), "nfsd-stray")
    assert not found(D.check_node(cluster(), profile(), "node1", node()), "nfsd-stray")  # the active node: it serves


def test_an_nfsdcld_holding_the_database_of_before_the_move_is_an_error() -> None:
    # the VM field run under systemd: nfsdcld started at boot kept the node's own database
    # open after bootstrap moved /var/lib/nfs (the old folder is kept as .hasync-orig)
    stale = node(**{"nfsdcld.db": "/var/lib/nfs.hasync-orig/nfsdcld/main.sqlite"})
    [e] = found(D.check_node(cluster(), profile(), "node2", stale), "nfsdcld-db")
    assert "/var/lib/nfs.hasync-orig/nfsdcld/main.sqlite, not on the replicated disk" in e.message and "systemctl stop nfsdcld" in e.fix
    for fine in ("/srv/ha/nfs-state/nfsdcld/main.sqlite", ""):
        assert not found(D.check_node(cluster(), profile(), "node1", node(**{"nfsdcld.db": fine})), "nfsdcld-db"), fine
    assert not found(D.check_node(cluster(), profile(), "node2", node(nfsdcld_running="0", **{"nfsdcld.db": "/var/x/main.sqlite"})), "nfsdcld-db")


def test_statd_keeps_its_lists_where_nfsnotify_reads_them() -> None:
    """issue 15: resource-agents' nfsnotify sends `sm-notify -P /var/lib/nfs/statd`;
    Debian's statd keeps its lists in /var/lib/nfs/sm unless nfs.conf says otherwise, and
    then no NFSv3 client is told to reclaim its locks after a failover."""
    unset = D.check_node(cluster(), profile(), "node1", node(**{"nfsconf.statd.state-directory-path": ""}))
    [e] = found(unset, "statd-dir")
    assert "statd keeps its lists in /var/lib/nfs/sm (debian12's default)" in e.message and "sm-notify -P /var/lib/nfs/statd" in e.message
    assert e.fix.startswith("hasync bootstrap --yes") and "state-directory-path = /var/lib/nfs/statd" in e.fix
    [e] = found(D.check_node(cluster(), profile(), "node2", node(**{"nfsconf.statd.state-directory-path": "/srv/statd"})), "statd-dir")
    assert "in /srv/statd/sm (nfs.conf [statd] state-directory-path)" in e.message and e.where == "node2"
    # the directory without sm/: statd would not start there
    [e] = found(D.check_node(cluster(), profile(), "node1", node(**{"statd.sm": "0"})), "statd-dir")
    assert "/var/lib/nfs/statd has no sm/" in e.message and e.fix == "hasync bootstrap --yes"
    # no sm.ha/ beside them: the nfsserver agent saves nothing across its stop (the VM field
    # run, 2026-12-07: the locking client's record gone on node2 after a migrate)
    [e] = found(D.check_node(cluster(), profile(), "node1", node(**{"statd.sm_ha": "0"})), "statd-dir")
    assert "/var/lib/nfs/statd has no sm.ha/" in e.message and "lost at a migrate" in e.message and e.fix == "hasync bootstrap --yes"
    no_server = replace(cluster(), resources=tuple(r for r in cluster().resources if r.agent != "heartbeat:nfsserver"))
    assert not found(D.check_node(no_server, profile(), "node1", node(**{"statd.sm_ha": "0"})), "statd-dir")
    # ... unless /var/lib/nfs dangles here (the passive node of a symlink profile)
    passive = D.check_node(cluster(), profile(), "node2", node(**{"statd.sm": "0", "statd.sm_ha": "0", "nfs_resolves": "0", "statd.cwd": "", "statd.agents": ""}))
    assert [x.level for x in passive if x.check == "statd-dir"] == ["ok"]
    # RHEL's statd is built with the agents' directory: nothing to set
    rhel9 = config.load_profile("rhel9")
    assert [x.level for x in D.check_node(cluster(), rhel9, "node1", node(**{"nfsconf.statd.state-directory-path": ""})) if x.check == "statd-dir"] == ["ok"]
    # statd started before bootstrap moved it: a warning until it restarts
    [w] = found(D.check_node(cluster(), profile(), "node1", node(**{"statd.cwd": "/srv/ha/nfs-state"})), "statd-dir", "warning")
    assert "rpc.statd runs in /srv/ha/nfs-state" in w.message and "systemctl restart rpc-statd" in w.fix
    # no nfsnotify in the chain: statd's place does not matter to it
    quiet = replace(cluster(), resources=tuple(r for r in cluster().resources if r.id != "notify"))
    assert not [x for x in D.check_node(quiet, profile(), "node1", node(**{"nfsconf.statd.state-directory-path": ""})) if x.check == "statd-dir"]


def test_server_scope_identical_on_both_nodes() -> None:
    a, b = node(), node(node="node2", **{"scope.run": ""})
    assert [x.level for x in D.check_pair(cluster(), "node1", "node2", a, b, None) if x.check == "nfs-scope"] == ["ok"]
    # the peer's cluster.toml has no nfs_server_scope: its nfsd would use its host name
    f = D.check_pair(cluster(), "node1", "node2", a, node(node="node2", **{"scope.cfg": "", "scope.run": ""}), None)
    [e] = found(f, "nfs-scope")
    assert "192.0.2.10 on node1, node2 on node2" in e.message and "server_scope" in e.message
    # running with an old scope: a warning until nfsd restarts
    [w] = found(D.check_pair(cluster(), "node1", "node2", node(**{"scope.run": "node1"}), b, None), "nfs-scope", "warning")
    assert w.where == "node1" and "runs with server scope node1" in w.message


def test_the_chain_pins_the_scope_and_notifies_after_the_vip_and_exports() -> None:
    c = cluster()
    [e] = found(D.check_config(with_chain(c, nfs={"nfs_server_scope": None}), profile()), "nfs-scope")
    assert 'nfs_server_scope = "192.0.2.10"' in e.fix and "#1644" in e.message
    no_notify = replace(c, resources=tuple(r for r in c.resources if r.id != "notify"))
    [e] = found(D.check_config(no_notify, profile()), "sm-notify")
    assert "heartbeat:nfsnotify" in e.fix and "after 'vip'" in e.fix  # the last of the address and the exports
    # its place and address are check's (hasync.config.chain_rules); a second notice is doctor's
    [w] = found(D.check_config(with_chain(c, nfs={"nfs_no_notify": None}), profile()), "sm-notify", "warning")
    assert w.fix == 'set nfs_no_notify = "true" on \'nfs\''
    service = replace(c, resources=tuple(model.Resource("nfs", "service", "nfsserver") if r.id == "nfs" else r for r in c.resources))
    [e] = found(D.check_config(service, profile()), "nfs-scope")
    assert "starts nfsd as a service nfsserver" in e.message
    # a chain without an NFS server (the namespace lab's) has nothing to pin or notify
    lab = replace(c, resources=tuple(r for r in c.resources if r.id in ("fs", "vip")))
    assert not [x for x in D.check_config(lab, profile()) if x.check in ("nfs-scope", "sm-notify")]


# --------------------------------------------------------------------------- LVM (item 2)


def test_lvm_filter_and_devices_file() -> None:
    legacy = node(**{"lvm.global_filter": '["a|^/dev/drbd|","r|.*|"]'})
    f = D.check_node(cluster(), profile(), "node1", legacy)
    assert not found(f, "lvm-filter")  # DRBD seen, backing disk hidden...
    [w] = found(f, "lvm-hidden-vg", "warning")  # ... but the root VG, active now, is hidden
    assert "VG system is active now but the filter hides its PV /dev/vda2" in w.message and "a|^/dev/vda2$|" in w.fix
    # rejected by its kernel name only, with a catch-all after: accepted by its by-id name
    by_link = node(**{"lvm.global_filter": '["a|^/dev/drbd0$|","r|^/dev/vdb$|","a|.*|"]'})
    [e] = found(D.check_node(cluster(), profile(), "node1", by_link), "lvm-filter")
    assert "LVM can use the backing disk /dev/vdb (the filter)" in e.message
    assert not found(D.check_node(cluster(), profile(), "node1", node(**{"lvm.global_filter": '["a|^/dev/drbd0$|","r|^/dev/vdb$|"]'})), "lvm-filter")
    devfile = "VERSION=1.1.1;IDTYPE=sys_wwid IDNAME=x DEVNAME=/dev/vda2 PVID=a;IDTYPE=sys_serial IDNAME=hasync-disk1 DEVNAME=/dev/vdb PVID=b;"
    f = D.check_node(cluster(), profile(), "node1", node(**{"lvm.use_devicesfile": "1", "lvm.devicesfile": devfile}))
    msgs = [x.message for x in found(f, "lvm-filter")]
    assert any("backing disk /dev/vdb (the devices file)" in m for m in msgs) and any("does not see /dev/drbd0" in m for m in msgs)


# --------------------------------------------------------------------------- host (item 6)


def test_doctor_refuses_a_host_the_profile_does_not_serve() -> None:
    rocky = node(**{"os.ID": "rocky", "os.ID_LIKE": "rhel centos fedora", "os.VERSION_ID": "9.3", "os.PRETTY_NAME": "Rocky Linux 9.3"})
    [e] = found(D.check_node(cluster(), profile(), "node1", rocky), "host")
    assert "this host runs Rocky Linux 9.3; profile debian12 is for debian 12" in e.message and "[cluster] profile" in e.fix
    [e] = found(D.check_node(cluster(), config.load_profile("sles9"), "node1", node()), "host")
    assert e.message.startswith("profile sles9 is import-only")


def test_probe_script_runs_in_sh_here() -> None:
    """The probe is one POSIX sh script; run here it prints the new keys, one line each."""
    script = D.probe_script(cluster(), profile(), "node1")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    p = D.parse_probe(r.stdout)
    for key in ("os.present", "tool.wipefs_json", "prog.6.0", "lvm.global_filter", "lvm.pvs", "nfs_mounts", "mnt.fs", "scope.cfg", "statd.sm", "statd.cwd", "statd.agents", "clock"):
        assert key in p, (key, r.stdout)
    assert p["scope.cfg"] == "192.0.2.10"  # read from the node's own cluster.toml
    assert p["os.present"] in ("0", "1") and len(r.stdout.splitlines()) == len(set(line.partition("=")[0] for line in r.stdout.splitlines()))
