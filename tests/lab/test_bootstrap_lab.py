"""`hasync bootstrap` and `hasync doctor` on a namespace lab of their own.

The tests of this module run in order on one lab (named "b<pid>", made for this module
and removed after it, so the files bootstrap lays down never reach other tests' nodes):
full run on node1, --join on node2, re-runs print `0 changes`, DRBD/LVM steps checked as
plans, refusal over an existing filesystem, doctor finds seeded pitfalls, rollback
restores byte-identical files, a run killed (SIGKILL) mid-way converges.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.lab.conftest import fresh_lab

pytestmark = pytest.mark.lab

STATE = "/srv/ha/nfs-state"
WATCHED = ("/etc/exports", "/etc/nfs.conf", "/etc/fstab", "/etc/systemd/system/hasync-watch.service",
           "/etc/systemd/system/hasync-failover.service", "/etc/systemd/system/nfs-server.service",
           "/etc/systemd/system/multi-user.target.wants/nfs-server.service",
           "/etc/systemd/system/multi-user.target.wants/hasync-watch.service", "/var/lib/nfs")

STATD_RECORD = "0100007f 000186b5 00000003 00000010 7c3f 192.0.2.50 node1"  # a monitor record of statd's (sm/)

DUMMY_NFS_UNIT = """[Unit]
Description=stand-in for the distro's NFS server unit (enabled at install, as Debian does)
[Service]
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="module")
def blab():
    with fresh_lab("b", clients=0) as lab:
        base = lab.sh("node1", "cat /etc/hasync/cluster.toml", check=True).stdout
        cfg = base.replace("[nfs]\n", f'[nfs]\nstate_dir = "{STATE}"\n', 1)
        cfg += '\n[[nfs.export]]\npath = "/srv/ha/export"\nclients = "10.200.0.0/24"\nfsid = 1\n'
        # DRBD and LVM on the disk: the chain mounts the LV bootstrap makes, not the disk under DRBD
        drbd = (cfg.replace("use_drbd = false", "use_drbd = true").replace("use_lvm = false", "use_lvm = true")
                .replace('device = "/dev/vdb"', 'device = "/dev/havg/data"', 1))
        for node in ("node1", "node2"):
            lab.exec(node, ["sh", "-c", "cat > /etc/hasync/cluster.toml"], input=cfg, check=True)
            lab.exec(node, ["sh", "-c", "cat > /etc/hasync/drbd.toml"], input=drbd, check=True)
            lab.exec(node, ["sh", "-c", "cat > /etc/hasync/first-is-node2.toml"],
                     input=cfg.replace('preferred_node = "node1"', 'preferred_node = "node2"'), check=True)
        # node1 starts like a distro install: an exports file, an NFS unit enabled at boot
        lab.sh("node1", "printf '/home\\t*(ro)\\n' > /etc/exports", check=True)
        lab.exec("node1", ["sh", "-c", "cat > /etc/systemd/system/nfs-server.service"], input=DUMMY_NFS_UNIT, check=True)
        lab.sh("node1", "systemctl enable nfs-server.service", check=True)
        lab.sh("node1", "mkdir -p /var/lib/nfs/sm && echo x > /var/lib/nfs/etab", check=True)
        lab.sh("node2", "mkdir -p /var/lib/nfs/sm", check=True)
        for node in ("node1", "node2"):  # what Debian's nfs-common makes (its postinst): the host has none
            lab.sh(node, "adduser --quiet --system --home /var/lib/nfs --no-create-home statd && mkdir -p /var/lib/nfs/sm.bak "
                         "&& chown statd: /var/lib/nfs/sm /var/lib/nfs/sm.bak", check=True)
        lab.sh("node1", f"echo {STATD_RECORD!r} > /var/lib/nfs/sm/192.0.2.50 && chown statd: /var/lib/nfs/sm/192.0.2.50", check=True)
        yield lab


def hs(lab, node: str, *args: str, env: dict | None = None):
    return lab.exec(node, ["hasync", *args], timeout=120, env=env)


def snapshot(lab, node: str) -> dict[str, str]:
    script = "for f in " + " ".join(WATCHED) + "; do " + (
        'if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; '
        'elif [ -f "$f" ]; then echo "$f $(sha256sum < "$f" | cut -c1-16) $(stat -c %a "$f")"; '
        'elif [ -d "$f" ]; then echo "$f dir $(ls "$f" | tr "\\n" " ")"; else echo "$f missing"; fi; done'
    )
    out = lab.sh(node, script, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def label(lab, node: str) -> str:
    return lab.sh(node, "blkid -p -s LABEL -o value /dev/vdb").stdout.strip()


ORIGINAL: dict[str, dict[str, str]] = {}


def test_first_node_full_run_then_zero_changes(blab) -> None:
    ORIGINAL["node1"] = snapshot(blab, "node1")
    ORIGINAL["node2"] = snapshot(blab, "node2")
    r = hs(blab, "node1", "bootstrap", "--yes", "--allow-data-loss", "/dev/vdb")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "changes applied" in r.stdout
    again = hs(blab, "node1", "bootstrap")
    assert again.exit_code == 0 and again.stdout.strip().endswith("0 changes"), again.stdout
    assert label(blab, "node1") == ("ha-lab-" + blab.name)[:12]  # xfs labels hold 12 bytes
    assert blab.sh("node1", "readlink /var/lib/nfs").stdout.strip() == STATE
    assert blab.sh("node1", f"cat {STATE}/etab").stdout.strip() == "x"  # the state moved onto the disk
    assert blab.sh("node1", "mountpoint -q /srv/ha").exit_code == 0
    exports = blab.sh("node1", "cat /etc/exports").stdout
    assert exports.startswith("/home\t*(ro)\n") and "fsid=1,mountpoint=/srv/ha" in exports
    assert blab.sh("node1", "systemctl is-enabled nfs-server.service").stdout.strip() == "disabled"
    assert blab.sh("node1", "systemctl is-enabled hasync-failover.service").stdout.strip() == "enabled"
    assert "outgoing-addr=10.200.0.100" in blab.sh("node1", "cat /etc/nfs.conf").stdout
    # issue 15: statd's lists where resource-agents' nfsnotify reads them, the record carried over
    assert "state-directory-path=/var/lib/nfs/statd" in blab.sh("node1", "cat /etc/nfs.conf").stdout
    assert blab.sh("node1", "stat -c '%U %a' /var/lib/nfs/statd /var/lib/nfs/statd/sm /var/lib/nfs/statd/sm.bak").stdout.split("\n")[:3] == [
        "root 755", "statd 755", "statd 755"]
    for where in ("/var/lib/nfs/statd/sm", "/var/lib/nfs/sm"):
        assert blab.sh("node1", f"stat -c %U {where}/192.0.2.50 && cat {where}/192.0.2.50").stdout.split("\n")[:2] == ["statd", STATD_RECORD]


def test_join_second_node_then_zero_changes(blab) -> None:
    before = label(blab, "node2")
    r = hs(blab, "node2", "bootstrap", "--join", "node1", "--yes")
    assert r.exit_code == 0, r.stdout + r.stderr
    again = hs(blab, "node2", "bootstrap", "--join", "node1")
    assert again.exit_code == 0 and again.stdout.strip().endswith("0 changes"), again.stdout
    assert label(blab, "node2") == before  # the second node never makes a filesystem
    assert blab.sh("node2", "readlink /var/lib/nfs").stdout.strip() == STATE
    assert "state-directory-path=/var/lib/nfs/statd" in blab.sh("node2", "cat /etc/nfs.conf").stdout
    assert blab.sh("node2", "cat /etc/hasync/cluster.toml").stdout == blab.sh("node1", "cat /etc/hasync/cluster.toml").stdout
    # hasync's own ssh (key + known_hosts) now works both ways
    for a, b in (("node1", "node2"), ("node2", "node1")):
        ssh = blab.exec(a, ["ssh", "-i", "/etc/hasync/ssh/id_ed25519", "-o", "UserKnownHostsFile=/etc/hasync/ssh/known_hosts",
                            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{b}", "uname", "-n"])
        assert ssh.stdout.strip() == b, ssh.stderr


def test_drbd_and_lvm_steps_are_planned(blab) -> None:
    """No DRBD module nor device-mapper here: the DRBD/LVM steps are checked as a plan."""
    before = label(blab, "node1")
    r = hs(blab, "node1", "-c", "/etc/hasync/drbd.toml", "bootstrap", "--dry-run", "--allow-data-loss", "/dev/vdb")
    out = r.stdout
    for line in ("create /etc/drbd.d/r0.res", "run wipefs --all /dev/vdb", "run drbdadm create-md r0",
                 "run drbdadm up r0", "run drbdadm primary --force r0", "global_filter",
                 "run vgcreate --setautoactivation n", "run lvcreate --wipesignatures n -n data"):
        assert line in out, (line, out)
    assert label(blab, "node1") == before
    refused = hs(blab, "node1", "-c", "/etc/hasync/drbd.toml", "bootstrap", "--dry-run")
    assert refused.exit_code == 1 and "drbdadm create-md would destroy it" in refused.stdout


def test_refuses_to_overwrite_an_existing_filesystem(blab) -> None:
    before = label(blab, "node2")
    runs = blab.sh("node2", "ls /var/lib/hasync/bootstrap/runs | wc -l").stdout
    r = hs(blab, "node2", "-c", "/etc/hasync/first-is-node2.toml", "bootstrap", "--yes")
    assert r.exit_code == 1
    assert "refused" in r.stderr and "--allow-data-loss /dev/vdb" in r.stderr
    assert label(blab, "node2") == before
    assert blab.sh("node2", "ls /var/lib/hasync/bootstrap/runs | wc -l").stdout == runs


def findings(blab, node: str) -> list[dict]:
    r = hs(blab, node, "doctor", "--json")
    return json.loads(r.stdout)["findings"]


def errors(fs: list[dict]) -> set[tuple[str, str]]:
    return {(f["check"], f["where"]) for f in fs if f["level"] == "error"}


def test_doctor_finds_each_seeded_pitfall(blab) -> None:
    assert errors(findings(blab, "node1")) == set()
    blab.sh("node2", "rm /var/lib/nfs && mkdir /var/lib/nfs", check=True)  # an upgrade broke the link
    blab.sh("node1", "systemctl enable nfs-server.service", check=True)  # nfs at boot again
    blab.sh("node2", "chmod 644 /etc/hasync/authkey", check=True)
    got = findings(blab, "node1")
    assert errors(got) == {("nfs-state-link", "node2"), ("nfs-at-boot", "node1"), ("auth-key", "node2")}
    assert all(f["fix"] for f in got if f["level"] == "error")
    # bootstrap repairs all three
    assert hs(blab, "node1", "bootstrap", "--yes").exit_code == 0
    assert hs(blab, "node2", "bootstrap", "--join", "node1", "--yes").exit_code == 0
    assert errors(findings(blab, "node1")) == set()
    assert errors(findings(blab, "node2")) == set()


def rollback_all(blab, node: str) -> None:
    for _ in range(20):
        r = hs(blab, node, "bootstrap", "--rollback")
        if r.exit_code != 0:
            assert "no bootstrap run" in r.stdout
            return
    raise AssertionError("rollback did not finish")


def test_rollback_restores_byte_identical_files(blab) -> None:
    for node in ("node1", "node2"):
        assert snapshot(blab, node) != ORIGINAL[node]
        rollback_all(blab, node)
        assert snapshot(blab, node) == ORIGINAL[node], node


@pytest.mark.parametrize("kill_after", [1, 3, 6])
def test_run_killed_midway_converges(blab, kill_after: int) -> None:
    blab.sh("node1", "! mountpoint -q /srv/ha || umount /srv/ha", check=True)
    # SIGKILL after N changes (a power cut mid-run): the shell reports 128 + 9
    r = blab.sh("node1", f"HASYNC_BOOTSTRAP_KILL_AFTER={kill_after} hasync bootstrap --yes >/dev/null 2>&1; echo rc=$?")
    assert r.stdout.strip() == "rc=137", r.stdout
    r = hs(blab, "node1", "bootstrap", "--yes")
    assert r.exit_code == 0, r.stdout + r.stderr
    again = hs(blab, "node1", "bootstrap")
    assert again.stdout.strip().endswith("0 changes"), again.stdout
    assert blab.sh("node1", "readlink /var/lib/nfs").stdout.strip() == STATE
    rollback_all(blab, "node1")
    assert snapshot(blab, "node1") == ORIGINAL["node1"]


USED_GI = "8D3C1E5A7B2F4C90:0000000000000000:4A7B1C9E3D2F5A60:0000000000000004:1:0:0:0:1:0:1:0:0:0:0:1"


def test_drbd_primary_is_not_forced_over_used_metadata(blab) -> None:
    """issue 12 item 6 with drbd-utils' own tools (no DRBD module here: the resource is
    down, `drbdadm get-gi` reads the metadata through drbdmeta). node1's disk carries
    metadata that has held replicated data -- what a node keeps after its peer took over
    -- so bootstrap refuses `primary --force` unless --allow-data-loss names /dev/drbd0."""
    from hasync import config
    from hasync.bootstrap.plan import Wanted
    from hasync.bootstrap.steps_drbd import render_drbd_res

    text = blab.sh("node1", "cat /etc/hasync/drbd.toml", check=True).stdout
    w = Wanted(cluster=config.loads(text, "drbd.toml"), profile=config.load_profile("lab"), node="node1", first=True)
    blab.exec("node1", ["sh", "-c", f"mkdir -p /etc/drbd.d && cat > {w.drbd_res_path}"], input=render_drbd_res(w), check=True)
    blab.sh("node1", "! mountpoint -q /srv/ha || umount /srv/ha", check=True)
    blab.sh("node1", "wipefs -a -q /dev/vdb && drbdadm create-md --force r0 "
            f"&& drbdmeta --force 0 v09 /dev/vdb internal --node-id=1 set-gi {USED_GI}", check=True)
    gi = blab.sh("node1", "drbdadm get-gi r0", check=True).stdout.strip()
    assert gi.split(":")[:4] == USED_GI.split(":")[:4]  # the UUIDs (drbdmeta keeps some flags its own)
    r = hs(blab, "node1", "-c", "/etc/hasync/drbd.toml", "bootstrap", "--dry-run")
    assert r.exit_code == 1
    out = " ".join(r.stdout.split())
    assert "REFUSED: not forcing r0 Primary: r0 is down here and its metadata shows replicated data" in out, r.stdout
    assert "8D3C1E5A7B2F4C90" in out and "--allow-data-loss /dev/drbd0" in out
    assert "primary --force" not in out.replace("`drbdadm primary --force` would", "")
    allowed = hs(blab, "node1", "-c", "/etc/hasync/drbd.toml", "bootstrap", "--dry-run", "--allow-data-loss", "/dev/drbd0")
    assert "run drbdadm primary --force r0" in allowed.stdout and "not forcing" not in allowed.stdout
    # brand-new metadata (what create-md leaves): the very first sync, forced without the flag
    blab.sh("node1", "wipefs -a -q /dev/vdb && drbdadm create-md --force r0", check=True)
    fresh = hs(blab, "node1", "-c", "/etc/hasync/drbd.toml", "bootstrap", "--dry-run")
    assert "run drbdadm primary --force r0" in fresh.stdout and "not forcing" not in fresh.stdout


def test_doctor_checks_the_rhel9_bind_mount_for_real(blab) -> None:
    """issue 13 item 5: on a bind profile doctor only looked for a folder at /var/lib/nfs,
    so its check could not fail. Now /proc/self/mountinfo is read on each node: the node
    with the cluster filesystem mounted needs state_dir bound on /var/lib/nfs, the other
    must not keep a bind. (The rhel9 profile on this lab's host also fails the host check:
    not looked at here.)"""
    cfg = blab.sh("node1", "cat /etc/hasync/cluster.toml", check=True).stdout.replace('profile = "lab"', 'profile = "rhel9"')
    assert 'profile = "rhel9"' in cfg
    for node in ("node1", "node2"):
        blab.exec(node, ["sh", "-c", "cat > /etc/hasync/bind.toml"], input=cfg, check=True)

    def state_link(node: str) -> dict:
        r = hs(blab, node, "-c", "/etc/hasync/bind.toml", "doctor", "--json", "--no-peer")
        [f] = [f for f in json.loads(r.stdout)["findings"] if f["check"] == "nfs-state-link"]
        return f

    blab.sh("node1", "! mountpoint -q /srv/ha || umount /srv/ha", check=True)
    assert blab.sh("node1", "[ -d /var/lib/nfs ] && [ ! -L /var/lib/nfs ]").exit_code == 0
    try:
        blab.sh("node1", f"mount -t tmpfs hasync-bind-test /srv/ha && mkdir -p {STATE}", check=True)
        missing = state_link("node1")
        assert missing["level"] == "error" and "not bind-mounted from" in missing["message"], missing
        blab.sh("node1", f"mount --bind {STATE} /var/lib/nfs", check=True)
        assert state_link("node1")["level"] == "ok"
        blab.sh("node2", "mkdir -p /tmp/hasync-stale && mount --bind /tmp/hasync-stale /var/lib/nfs", check=True)
        stale = state_link("node2")
        assert stale["level"] == "error" and stale["fix"] == "umount /var/lib/nfs", stale
    finally:
        blab.sh("node2", "! mountpoint -q /var/lib/nfs || umount /var/lib/nfs")
        blab.sh("node1", "! mountpoint -q /var/lib/nfs || umount /var/lib/nfs; ! mountpoint -q /srv/ha || umount /srv/ha")
    assert state_link("node2")["level"] == "ok"  # a plain folder on the node without the filesystem

# --------------------------------------------------------------------------- real LVM, the filter

LVM_NAMES = {  # device -> the names LVM sees it by under /dev (what udev would make)
    "drbd0": ["/dev/drbd0"],
    "sda2": ["/dev/sda2"],
    "vdb": ["/dev/vdb", "/dev/disk/by-id/virtio-hasync-disk1", "/dev/disk/by-path/pci-0000:00:05.0",
            "/dev/disk/by-id/lvm-pv-uuid-wFlL0M"],  # the last one appears only once the PV label is there
}
UDEVADM_VDB = "N: vdb\nS: disk/by-id/virtio-hasync-disk1\nS: disk/by-path/pci-0000:00:05.0\nS: disk/by-id/lvm-pv-uuid-wFlL0M\n"


@pytest.fixture(scope="module")
def lvm_disks(tmp_path_factory):
    """Three loop devices: the DRBD device (havg on it), the root PV (VG "system") and the
    backing disk, a copy of the DRBD device's start (the same PV label, as DRBD makes it)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("losetup", "lvm", "unshare", "mknod")):
        pytest.skip("needs root, losetup, lvm2 and unshare")
    d = tmp_path_factory.mktemp("lvm")
    loops = {}
    try:
        for name in ("drbd0", "sda2", "vdb"):
            (d / f"{name}.img").write_bytes(b"")
            os.truncate(d / f"{name}.img", 32 * 2**20)
            loops[name] = subprocess.run(["losetup", "--find", "--show", str(d / f"{name}.img")], check=True,
                                         capture_output=True, text=True).stdout.strip()
        (d / "setup").mkdir()
        (d / "setup" / "lvm.conf").write_text('devices {\n\tobtain_device_list_from_udev = 0\n\tglobal_filter = [ "r|^/dev/vdb$|" ]\n}\n')
        r = in_dev_namespace(d, loops, d / "setup", "pvcreate -q /dev/drbd0 && vgcreate -q havg /dev/drbd0 && "
                             "pvcreate -q /dev/sda2 && vgcreate -q system /dev/sda2 && dd if=/dev/drbd0 of=/dev/vdb bs=1M count=4 status=none")
        assert r.returncode == 0, r.stderr
        yield d, loops
    finally:
        for dev in loops.values():
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def in_dev_namespace(d, loops: dict[str, str], conf_dir, script: str):
    """Run *script* in a private mount namespace whose /dev holds only the test's devices,
    by the names a node would have (LVM_SYSTEM_DIR = conf_dir)."""
    import subprocess

    nodes = " && ".join(f"mknod /dev/{n} b {os.major(os.stat(dev).st_rdev)} {os.minor(os.stat(dev).st_rdev)}" for n, dev in loops.items())
    links = " && ".join(f"ln -s ../../vdb {link}" for link in LVM_NAMES["vdb"][1:])
    setup = (f"mount -t tmpfs hasync-dev /dev && mknod -m 666 /dev/null c 1 3 && mknod -m 444 /dev/urandom c 1 9 && {nodes} && "
             f"mkdir -p /dev/disk/by-id /dev/disk/by-path && {links}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{setup} && {script}"],
                          env={"PATH": os.environ["PATH"], "LVM_SYSTEM_DIR": str(conf_dir)}, capture_output=True, text=True, timeout=60)


def lvm_sees(d, loops, conf_text: str, tag: str) -> tuple[dict[str, str], str]:
    """pvs under *conf_text*: {pv_name: vg_name} and LVM's warnings."""
    conf = d / tag
    conf.mkdir(exist_ok=True)
    (conf / "lvm.conf").write_text(conf_text)
    r = in_dev_namespace(d, loops, conf, "pvs --reportformat json -o pv_name,vg_name")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["report"][0]["pv"]
    return {x["pv_name"]: x["vg_name"] for x in rows}, r.stderr


HOST_FILTERS = {
    "none": "",
    "catch-all": '\tglobal_filter = [ "a|.*|" ]\n',
    "root-only": '\tglobal_filter = [ "a|^/dev/sda2$|", "r|.*|" ]\n\tfilter = [ "a|^/dev/sda2$|", "r|.*|" ]\n',
    "old-hasync": '\tglobal_filter = [ "a|^/dev/drbd|", "r|.*|" ]\n',
}


@pytest.mark.parametrize("host", list(HOST_FILTERS))
def test_filter_bootstrap_writes_hides_only_the_backing_disk_for_real_lvm(lvm_disks, host: str) -> None:
    """issue 13 item 2 with lvm2 itself: the lvm.conf the lvm-config step writes over the
    host's own leaves the root VG and the DRBD device's VG visible and the backing disk
    (same PV label, four names) hidden -- no duplicate PV; and hasync's pure reading of the
    filter agrees with LVM's for every device."""
    from dataclasses import replace

    from hasync import config
    from hasync.bootstrap import edit, lvmconf
    from hasync.bootstrap.plan import STEPS, Wanted
    from hasync.bootstrap.testing import DataFacts

    d, loops = lvm_disks
    host_conf = "devices {\n\tobtain_device_list_from_udev = 0\n" + HOST_FILTERS[host] + "}\n"
    if host == "old-hasync":  # what bootstrap wrote before: the root VG disappears
        seen, _ = lvm_sees(d, loops, host_conf, "before")
        assert "/dev/sda2" not in seen and seen.get("/dev/drbd0") == "havg"
    cluster = config.load(os.path.join(os.path.dirname(__file__), "..", "..", "profiles", "cluster", "example.toml"))
    cluster = replace(cluster, storage=replace(cluster.storage, disks={"node1": "/dev/vdb", "node2": "/dev/vdb"}))
    w = Wanted(cluster=cluster, profile=config.load_profile("debian12"), node="node1", first=True)
    step = next(s for s in STEPS if s.name == "lvm-config")
    facts = DataFacts({"file:/etc/lvm/lvm.conf": host_conf, "devlinks:/dev/vdb": {"exit": 0, "stdout": UDEVADM_VDB, "stderr": ""}})
    [text] = [c.data for c in step.plan(w, facts.get(step.needs(w))) if c.action == "write" and c.path == "/etc/lvm/lvm.conf"]
    seen, warnings = lvm_sees(d, loops, text or "", host)
    assert seen == {"/dev/drbd0": "havg", "/dev/sda2": "system"}, (seen, text)
    assert "Not using device" not in warnings and "duplicate" not in warnings.lower(), warnings
    flts = [lvmconf.parse_list(edit.lvm_get(text or "", "devices", k)) for k in ("global_filter", "filter") if edit.lvm_get(text or "", "devices", k)]
    for dev, names in LVM_NAMES.items():
        assert lvmconf.visible(flts, names) == (f"/dev/{dev}" in seen), (dev, flts)
