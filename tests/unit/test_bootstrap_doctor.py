"""Doctor's pure checks: probe output in, findings (each with a fix) out."""

from __future__ import annotations

from dataclasses import replace

from hasync import config, model
from hasync.bootstrap import doctor as D
from hasync.effects.run import RecordingRunner, Result

from .test_bootstrap_steps import ROOT

HEALTHY = """node=node1
nfs_link=/srv/ha/nfs-state
nfs_kind=symlink
nfs_resolves=1
authkey_mode=600
authkey_bytes=64
unison=unison version 2.52.1 (ocaml 4.13.1)
disk_bytes=268435456
dev=93:0
lvm.global_filter=["a|^/dev/drbd0$|","r|^/dev/vdb$|","r|^/dev/disk/by-path/virtio-pci-0000:00:05[.]0$|","r|^/dev/disk/by-id/virtio-hasync-disk1$|","r|^/dev/disk/by-path/pci-0000:00:05[.]0$|"]
lvm.filter=["a|.*|"]
lvm.use_devicesfile=0
lvm.devicesfile=-
lvm.disk_links=disk/by-path/virtio-pci-0000:00:05.0 disk/by-id/virtio-hasync-disk1 disk/by-path/pci-0000:00:05.0 disk/by-id/lvm-pv-uuid-wFlL0M
lvm.disk_real=/dev/vdb
lvm.pvs={"report": [{"pv": [{"pv_name":"/dev/vda2", "vg_name":"system"}, {"pv_name":"/dev/drbd0", "vg_name":"havg"}]}]}
lvm.lvs={"report": [{"lv": [{"vg_name":"system", "lv_active":"active"}, {"vg_name":"havg", "lv_active":"active"}]}]}
os.present=1
os.ID=debian
os.ID_LIKE=
os.VERSION_ID=12
os.PRETTY_NAME=Debian GNU/Linux 12 (bookworm)
tool.wipefs_json=1
tool.lvm=2.03.16
tool.drbdadm=9.22.0
tool.drbd_kernel=8.4.11
prog.0.0=/usr/lib/ocf/resource.d/linbit/drbd
prog.1.0=/usr/lib/ocf/resource.d/heartbeat/LVM-activate
prog.2.0=/usr/lib/ocf/resource.d/heartbeat/Filesystem
prog.3.0=/usr/lib/ocf/resource.d/heartbeat/IPaddr2
prog.4.0=/usr/lib/ocf/resource.d/heartbeat/nfsserver
prog.5.0=/usr/lib/ocf/resource.d/heartbeat/exportfs
prog.6.0=/usr/lib/ocf/resource.d/heartbeat/nfsnotify
nfs_mounts=
nfsconf.nfsd.grace-time=20
nfsconf.nfsd.lease-time=20
nfsconf.statd.state-directory-path=/var/lib/nfs/statd
statd.sm=1
statd.sm_ha=1
statd.cwd=/srv/ha/nfs-state/statd
statd.agents=/srv/ha/nfs-state/statd
nfsd.threads=8
nfsd.grace=20
nfsd.lease=20
nfsdcld_running=1
nfsdcld.db=/srv/ha/nfs-state/nfsdcld/main.sqlite
mnt.nfs_state=
mnt.fs=254:2 /
scope.run=192.0.2.10
scope.cfg=192.0.2.10
enabled.rpc-statd-notify=static
enabled.nfs-server=disabled
enabled.rpc-statd=static
clock=1800000000.25
"""


def cluster() -> model.Cluster:
    return config.load(str(ROOT / "profiles" / "cluster" / "example.toml"))


def profile() -> model.Profile:
    return config.load_profile("debian12")


def levels(findings, check):
    return [f.level for f in findings if f.check == check]


def test_probe_script_and_parse() -> None:
    script = D.probe_script(cluster(), profile(), "node1")
    assert "readlink /var/lib/nfs" in script and "systemctl is-enabled nfs-server.service" in script
    assert script.strip().endswith("echo clock=$(date +%s.%N)")
    p = D.parse_probe(HEALTHY + "garbage line\n")
    assert p["enabled.nfs-server"] == "disabled" and p["dev"] == "93:0" and "garbage line" not in p


def test_healthy_node_has_no_errors() -> None:
    c = replace(cluster(), nfs=replace(cluster().nfs, state_dir="/srv/ha/nfs-state"))
    f = D.check_node(c, profile(), "node1", D.parse_probe(HEALTHY))
    assert [x for x in f if x.level == "error"] == []
    assert levels(f, "nfs-state-link") == ["ok"]


def test_each_pitfall_is_found_with_a_fix() -> None:
    c = replace(cluster(), nfs=replace(cluster().nfs, state_dir="/srv/ha/nfs-state"))
    bad = D.parse_probe(
        HEALTHY.replace("nfs_kind=symlink", "nfs_kind=dir").replace("nfs_link=/srv/ha/nfs-state", "nfs_link=")
        .replace("enabled.nfs-server=disabled", "enabled.nfs-server=enabled")
        .replace("authkey_mode=600", "authkey_mode=644")
        .replace("lvm.global_filter=[", 'lvm.global_filter=["a|.*|",')
        .replace("disk_bytes=268435456", "disk_bytes=")
    )
    f = D.check_node(c, profile(), "node2", bad)
    by = {x.check: x for x in f if x.level == "error"}
    assert set(by) == {"nfs-state-link", "nfs-at-boot", "auth-key", "lvm-filter", "disk"}
    assert by["nfs-at-boot"].fix == "systemctl disable nfs-server"
    assert by["auth-key"].fix == "chmod 600 /etc/hasync/authkey"
    assert all(x.fix and x.where == "node2" for x in by.values())


def test_sysv_nfs_at_boot() -> None:
    p = D.parse_probe("enabled.nfsserver=nfsserver 0:off 1:off 2:off 3:on 4:off 5:on 6:off\nenabled.nfslock=nfslock 0:off 1:off 2:off 3:off 4:off 5:off 6:off\n")
    f = D.check_node(cluster(), config.load_profile("sles9"), "node1", p)
    [e] = [x for x in f if x.check == "nfs-at-boot"]
    assert e.level == "error" and e.fix == "chkconfig nfsserver off"


def test_config_checks() -> None:
    c = cluster()
    assert levels(D.check_config(c), "heartbeat-links") == ["ok"]
    one = replace(c, heartbeat=replace(c.heartbeat, links=c.heartbeat.links[:1]), fencing=replace(c.fencing, mode="off"))
    f = D.check_config(one)
    assert levels(f, "heartbeat-links") == ["warning"] and levels(f, "fencing") == ["warning"]
    nofsid = replace(c, nfs=replace(c.nfs, exports=(model.Export("/srv/ha/x"),)))
    assert levels(D.check_config(nofsid), "export-fsid") == ["warning"]


def test_pair_checks() -> None:
    c = cluster()
    a = D.parse_probe(HEALTHY)
    b = D.parse_probe(HEALTHY.replace("2.52.1", "2.48.4").replace("dev=93:0", "dev=93:1"))
    f = D.check_pair(c, "node1", "node2", a, b, 0.01)
    assert levels(f, "unison") == ["error"]
    assert levels(f, "clock") == ["ok"]
    assert levels(f, "device-identity") == ["ok"]  # every export of the example has fsid=
    nofsid = replace(c, nfs=replace(c.nfs, exports=(model.Export("/srv/ha/x"),)))
    assert levels(D.check_pair(nofsid, "node1", "node2", a, b, 5.0), "device-identity") == ["error"]
    assert levels(D.check_pair(nofsid, "node1", "node2", a, b, 5.0), "clock") == ["warning"]
    same = D.check_pair(nofsid, "node1", "node2", a, D.parse_probe(HEALTHY), None)
    assert levels(same, "device-identity") == ["ok"] and levels(same, "clock") == []
    assert D.parse_unison_version("unison version 2.53.3 (ocaml 5.1.0)") == (2, 53, 3)


def test_links() -> None:
    c = cluster()
    probes = D.link_probes(c, "node1")
    assert [p[1] for p in probes] == [
        ("ping", "-c", "1", "-W", "1", "203.0.113.2"),
        ("ping", "-c", "1", "-W", "1", "-I", "eth0", "192.0.2.12"),
        ("test", "-c", "/dev/ttyS1"),
    ]
    f = D.check_links(c, "node1", [(probes[0][0], True), (probes[1][0], False), (probes[2][0], True)])
    assert [x.level for x in f] == ["ok", "error", "info"]


def test_run_doctor_with_a_recording_runner() -> None:
    c = replace(cluster(), nfs=replace(cluster().nfs, state_dir="/srv/ha/nfs-state"))
    runner = RecordingRunner()

    def answer(argv):
        return Result(argv, 0, HEALTHY, "")

    runner.responses[("sh", "-c", D.probe_script(c, profile(), "node1"))] = answer
    peer_cmd = D.hasync_ssh(c, "192.0.2.12", D.probe_script(c, profile(), "node2"))
    runner.responses[peer_cmd] = lambda argv: Result(argv, 255, "", "ssh: connect to host 192.0.2.12 port 22: No route to host")
    f = D.run_doctor(c, profile(), "node1", runner)
    [e] = [x for x in f if x.check == "peer-ssh"]
    assert e.level == "error" and "No route to host" in e.message and "--join node1" in e.fix


def test_drbd_resource_file_compared() -> None:
    c = cluster()  # use_drbd
    assert "sha256sum < /etc/drbd.d/r0.res" in D.probe_script(c, profile(), "node1")
    a = D.parse_probe(HEALTHY + "drbd_res=0123456789abcdef\n")
    same = D.check_pair(c, "node1", "node2", a, dict(a), None)
    assert levels(same, "drbd-config") == ["ok"]
    other = D.check_pair(c, "node1", "node2", a, dict(a, drbd_res="fedcba9876543210"), None)
    assert levels(other, "drbd-config") == ["error"]
    lab = replace(c, storage=replace(c.storage, use_drbd=False))
    assert levels(D.check_pair(lab, "node1", "node2", a, dict(a), None), "drbd-config") == []


def test_portblock_with_iptables_1_8_9_needs_the_numeric_protocol_fix() -> None:
    import dataclasses

    c = cluster()
    pb = model.Resource(id="nfs-block", type="ocf", agent="heartbeat:portblock",
                        params={"action": "block", "protocol": "tcp", "portno": "2049", "ip": "10.0.0.9"})
    c = dataclasses.replace(c, resources=tuple(c.resources) + (pb,))
    script = D.probe_script(c, profile(), "node1")
    assert "iptables --version" in script and "portblock" in script
    assert "iptables" not in D.probe_script(cluster(), profile(), "node1")  # no portblock, no probe

    def finding(extra: str):
        f = [x for x in D.check_node(c, profile(), "node1", D.parse_probe(HEALTHY + extra)) if x.check == "portblock"]
        assert len(f) == 1, f
        return f[0]

    broken = finding("iptables=iptables v1.8.9 (nf_tables)\nportblock_numeric=0\n")
    assert broken.level == "error" and "1924" in broken.fix
    assert finding("iptables=iptables v1.8.9 (nf_tables)\nportblock_numeric=1\n").level == "ok"
    assert finding("iptables=iptables v1.8.10 (nf_tables)\nportblock_numeric=0\n").level == "ok"
    assert finding("iptables=\n").level == "error"


def test_short_auth_key_is_a_warning_with_a_fix() -> None:
    """issue 12 item 14: a 16-byte key (what the daemon still accepts) is below the
    32 bytes bootstrap makes; doctor says so, with how to replace it on both nodes."""
    assert "authkey_bytes=$(tr -d" in D.probe_script(cluster(), profile(), "node1")
    f = D.check_node(cluster(), profile(), "node1", D.parse_probe(HEALTHY.replace("authkey_bytes=64", "authkey_bytes=16")))
    [finding] = [x for x in f if x.check == "auth-key"]
    assert finding.level == "warning" and "16 bytes" in finding.message
    assert "openssl rand -hex 32" in finding.fix and "--join" in finding.fix
    assert levels(D.check_node(cluster(), profile(), "node1", D.parse_probe(HEALTHY)), "auth-key") == ["ok"]


def test_a_probe_that_did_not_finish_is_said_so_not_read_as_findings() -> None:
    """Found in the VM tier (a TCG guest on a busy host: the probe took 22 s locally and
    48 s over ssh): the local probe was cut off by its timeout and doctor read the missing
    lines as facts -- "iptables is not installed" on a node that has it -- and the peer's
    timeout came with the fix "hasync bootstrap --join". A probe without its last line
    (clock=) did not run to its end: one error that says so, and no checks from it."""
    import dataclasses

    c = replace(cluster(), nfs=replace(cluster().nfs, state_dir="/srv/ha/nfs-state"))
    pb = model.Resource(id="nfs-block", type="ocf", agent="heartbeat:portblock",
                        params={"action": "block", "protocol": "tcp", "portno": "2049", "ip": "10.0.0.9"})
    c = dataclasses.replace(c, resources=tuple(c.resources) + (pb,))
    cut = HEALTHY[: HEALTHY.index("nfsd.threads")]  # nothing after the LVM/host lines
    runner = RecordingRunner()
    runner.responses[("sh", "-c", D.probe_script(c, profile(), "node1"))] = Result((), 124, cut, "timed out after 120s")
    peer_cmd = D.hasync_ssh(c, "192.0.2.12", D.probe_script(c, profile(), "node2"))
    runner.responses[peer_cmd] = Result(peer_cmd, 124, "node=node2\n", "timed out after 120s")
    f = D.run_doctor(c, profile(), "node1", runner)
    assert [x.check for x in f if x.level == "error"] == ["probe", "peer-ssh"], [x for x in f if x.level == "error"]
    [local] = [x for x in f if x.check == "probe"]
    assert local.where == "node1" and "did not finish" in local.message
    assert not [x for x in f if x.check == "portblock"]  # nothing read from the cut output
    [peer] = [x for x in f if x.check == "peer-ssh"]
    assert "timed out" in peer.message and "--join" not in peer.fix
    # the peer read, this node cut off: nothing compared with the missing half
    pb_ok = "iptables=iptables v1.8.9 (nf_tables)\nportblock_numeric=1\n"
    runner.responses[peer_cmd] = Result(peer_cmd, 0, pb_ok + HEALTHY.replace("node=node1", "node=node2"), "")
    f = D.run_doctor(c, profile(), "node1", runner)
    assert [x.check for x in f if x.level == "error"] == ["probe"], [x for x in f if x.level == "error"]
    # a probe that did run to its end is read as before
    runner.responses[("sh", "-c", D.probe_script(c, profile(), "node1"))] = Result((), 0, HEALTHY, "")
    assert not [x for x in D.run_doctor(c, profile(), "node1", runner) if x.check == "probe"]


def test_doctor_waits_for_a_slow_node() -> None:
    """The probe's timeouts leave room for a loaded node: 48 s were measured over ssh on
    the VM tier's guests (host load 5.5), and ssh's ConnectTimeout also bounds its key
    exchange (7 s there for `ssh peer true`)."""
    c = cluster()
    runner = RecordingRunner()
    seen: dict[tuple, float | None] = {}
    orig = runner.run

    def run(argv, **kw):
        seen[tuple(argv)] = kw.get("timeout")
        return orig(argv, **kw)

    runner.run = run  # type: ignore[method-assign]
    D.run_doctor(c, profile(), "node1", runner)
    ssh = next(a for a in seen if a[0] == "ssh")
    assert (seen[("sh", "-c", D.probe_script(c, profile(), "node1"))] or 0) >= 90
    assert (seen[ssh] or 0) >= 90
    assert int(ssh[ssh.index("-o", ssh.index("BatchMode=yes")) + 1].split("=")[1]) >= 10
