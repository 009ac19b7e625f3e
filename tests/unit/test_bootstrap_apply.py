"""Applying plans under a temporary root: manifest, rollback byte for byte, interrupted
runs that converge, refusals that change nothing, errors that name step and command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hasync import config
from hasync.bootstrap import apply as A
from hasync.bootstrap import edit, steps_drbd
from hasync.bootstrap import manifest as M
from hasync.bootstrap import plan as P
from hasync.bootstrap.wanted import fence_peer_script, load_units
from hasync.effects.run import RecordingRunner, Result

from .test_bootstrap_steps import CAP_DIR, ROOT


def lab_like_cluster():
    c = config.load(str(ROOT / "profiles" / "cluster" / "example.toml"))
    st = replace(c.storage, use_drbd=False, use_lvm=False)
    return replace(c, storage=st, cluster=replace(c.cluster, profile="lab"))


def wanted(**kw) -> P.Wanted:
    prof = config.load_profile("lab")
    args = dict(cluster=lab_like_cluster(), profile=prof, node="node1", first=True, units=load_units(prof.init), fence_peer_script=fence_peer_script())
    args.update(kw)
    return P.Wanted(**args)


class FakeNode(RecordingRunner):
    """Answers probes like a node with a blank /dev/vdb; records what is run, runs nothing
    but `mkfs` (which it remembers, so the next probe sees the filesystem) and `systemctl
    enable` (remembered too)."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.fs_label = ""
        self.enabled: set[str] = set()
        self.mounted = False

    def run(self, argv, **kw):
        argv = tuple(argv)
        self.calls.append(argv)
        if argv == ("wipefs", "--help"):
            return Result(argv, 0, (CAP_DIR / "wipefs-help-2.38.txt").read_text(), "")
        if argv[0] == "wipefs":
            if self.fs_label:
                out = json.dumps({"signatures": [{"device": "vdb", "offset": "0x438", "type": "ext4", "uuid": "u", "label": self.fs_label}]})
                return Result(argv, 0, out, "")
            return Result(argv, 0, "", "")
        if argv[0].startswith("mkfs."):
            self.fs_label = argv[argv.index("-L") + 1]
        if argv[0] == "systemctl":
            unit = argv[-1]
            if "is-enabled" in argv:
                return Result(argv, 0 if unit in self.enabled else 1, "enabled\n" if unit in self.enabled else "disabled\n", "")
            if "enable" in argv:
                self.enabled.add(unit)
        if argv[0] == "mount":
            self.mounted = True
        if argv[0] == "ssh-keygen":
            key = self.root / argv[argv.index("-f") + 1].lstrip("/")
            key.write_text("PRIVATE\n")
            key.with_suffix(".pub").write_text("ssh-ed25519 AAAA hasync@node\n")
        if argv[:3] == ("getent", "passwd", "statd"):  # the user this test runs as: owning needs no chown
            return Result(argv, 0, f"statd:x:{os.getuid()}:{os.getgid()}::/var/lib/nfs:/usr/sbin/nologin\n", "")
        if argv[:2] == ("cat", "/proc/self/mountinfo"):
            line = "36 25 7:1 / /srv/ha rw - ext4 /dev/vdb rw\n" if self.mounted else ""
            return Result(argv, 0, "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n" + line, "")
        if argv[0] in ("cp", "mv", "rm"):
            # the nfs-state copy: do it under the root so the next probe sees it
            real = [a if not a.startswith("/") else str(self.root / a.lstrip("/")) for a in argv]
            subprocess.run(real, check=True)
        return Result(argv, 0, "", "")


def seed(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/fstab").write_text((CAP_DIR / "debian12-fstab-with-cluster-fs").read_text().replace("/dev/havg/data", "/dev/vdb"))
    (root / "etc/exports").write_text("/home\t*(ro)\n")
    (root / "etc/nfs.conf").write_text((CAP_DIR / "debian12-nfs.conf").read_text())
    nfs = root / "var/lib/nfs"
    nfs.mkdir(parents=True)
    (nfs / "etab").write_text("")
    (nfs / "sm").mkdir()
    (nfs / "sm" / "client1").write_text("0100007f 000186b5 00000003 00000010 ... 192.0.2.50 node1\n")  # statd's record
    (root / "srv/ha").mkdir(parents=True)


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + dirnames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if rel.startswith("var/lib/hasync"):
                continue
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f" {p.stat().st_mode & 0o7777:o}"
            else:
                out[rel] = "dir"
    return out


def run_bootstrap(root: Path, node: FakeNode, w: P.Wanted, kill_after: int | None = None) -> A.Applier:
    prober = A.Prober(node, root=str(root), init=w.profile.init)
    manifest = M.Manifest.new(str(root / "var/lib/hasync/bootstrap"), w.node, 1_800_000_000.0 + len(node.calls))
    applier = A.Applier(node, manifest, root=str(root), prober=prober, new_secret=lambda: "k" * 64 + "\n")
    if kill_after is not None:
        real = applier.apply

        def apply(ch):
            if applier.changes_done >= kill_after:
                raise KeyboardInterrupt("killed")
            real(ch)

        applier.apply = apply  # type: ignore[method-assign]
    A.converge(w, prober, applier)
    return applier


def plan_count(root: Path, node: FakeNode, w: P.Wanted) -> int:
    prober = A.Prober(node, root=str(root), init=w.profile.init)
    return sum(len(cs) for _, cs in A.plan_once(w, prober))


def test_full_run_then_nothing_left(tmp_path: Path) -> None:
    seed(tmp_path)
    node = FakeNode(tmp_path)
    w = wanted()
    applier = run_bootstrap(tmp_path, node, w)
    assert applier.changes_done > 5
    assert plan_count(tmp_path, node, w) == 0
    assert os.readlink(tmp_path / "var/lib/nfs") == "/srv/ha/nfs-state"
    assert (tmp_path / "var/lib/nfs.hasync-orig/etab").exists()
    # issue 15: statd's lists where resource-agents read them, the record carried over
    assert edit.ini_get((tmp_path / "etc/nfs.conf").read_text(), "statd", "state-directory-path") == "/var/lib/nfs/statd"
    assert (tmp_path / "srv/ha/nfs-state/statd/sm/client1").read_text() == (tmp_path / "srv/ha/nfs-state/sm/client1").read_text()
    assert (tmp_path / "etc/hasync/authkey").stat().st_mode & 0o777 == 0o600
    exports = (tmp_path / "etc/exports").read_text()
    assert exports.startswith("/home\t*(ro)\n") and "fsid=1,mountpoint=/srv/ha" in exports
    assert "\n/dev/vdb" not in (tmp_path / "etc/fstab").read_text()
    assert node.fs_label == "ha-nfs-ha"
    assert {"hasync-watch.service", "hasync-failover.service"} <= node.enabled


def test_rollback_restores_files_byte_for_byte(tmp_path: Path) -> None:
    seed(tmp_path)
    before = snapshot(tmp_path)
    node = FakeNode(tmp_path)
    run_bootstrap(tmp_path, node, wanted())
    assert snapshot(tmp_path) != before
    run, report = M.rollback(str(tmp_path / "var/lib/hasync/bootstrap"), str(tmp_path))
    assert run is not None
    after = snapshot(tmp_path)
    # what commands made (the copy on the replicated disk, the ssh key, so the folders
    # holding them) stays; every file bootstrap wrote, linked or moved is back as it was
    extra = {k for k in after if k.startswith(("srv/ha/nfs-state", "etc/hasync"))}
    assert extra == {"etc/hasync", "etc/hasync/ssh", "etc/hasync/ssh/id_ed25519", "etc/hasync/ssh/id_ed25519.pub"} | {k for k in extra if k.startswith("srv/ha/nfs-state")}
    assert "kept directory /etc/hasync/ssh (not empty)" in report
    assert {k: v for k, v in after.items() if k not in extra} == before
    assert any("not undone" in line and "mkfs.ext4" in line for line in report)
    # a second rollback has nothing left
    assert M.rollback(str(tmp_path / "var/lib/hasync/bootstrap"), str(tmp_path))[0] is None


@pytest.mark.parametrize("kill_after", [0, 1, 3, 5, 7, 9, 11])
def test_run_killed_midway_converges(tmp_path: Path, kill_after: int) -> None:
    seed(tmp_path)
    node = FakeNode(tmp_path)
    w = wanted()
    with pytest.raises(KeyboardInterrupt):
        run_bootstrap(tmp_path, node, w, kill_after=kill_after)
    run_bootstrap(tmp_path, node, w)
    assert plan_count(tmp_path, node, w) == 0
    assert os.readlink(tmp_path / "var/lib/nfs") == "/srv/ha/nfs-state"
    assert sorted(os.listdir(tmp_path / "srv/ha/nfs-state")) == ["etab", "sm", "statd"]
    # statd's record where resource-agents' nfsnotify reads it, and still where it was
    assert os.listdir(tmp_path / "srv/ha/nfs-state/statd/sm") == os.listdir(tmp_path / "srv/ha/nfs-state/sm") == ["client1"]
    assert os.listdir(tmp_path / "srv/ha/nfs-state/statd/sm.bak") == []


def test_refusal_over_existing_filesystem_changes_nothing(tmp_path: Path) -> None:
    seed(tmp_path)
    node = FakeNode(tmp_path)
    node.fs_label = "precious"
    w = wanted()
    prober = A.Prober(node, root=str(tmp_path), init=w.profile.init)
    plan = A.plan_once(w, prober)
    refused = [c for _, cs in plan for c in cs if c.action == "refuse"]
    assert len(refused) == 1 and "--allow-data-loss /dev/vdb" in refused[0].why
    before = snapshot(tmp_path)
    with pytest.raises(A.BootstrapError, match="step filesystem: refused"):
        run_bootstrap(tmp_path, node, w)
    assert not any(a[0].startswith("mkfs") or a[0] == "wipefs" and "--all" in a for a in node.calls)
    # allowed: wipe then mkfs
    run_bootstrap(tmp_path, node, replace(w, allow_data_loss=frozenset({"/dev/vdb"})))
    assert ("wipefs", "--all", "/dev/vdb") in node.calls and node.fs_label == "ha-nfs-ha"
    assert before != snapshot(tmp_path)


def test_error_names_step_command_and_output(tmp_path: Path) -> None:
    seed(tmp_path)

    class Failing(FakeNode):
        def run(self, argv, **kw):
            if tuple(argv)[:1] == ("mount",):
                self.calls.append(tuple(argv))
                return Result(tuple(argv), 32, "", "mount: /srv/ha: wrong fs type, bad option")
            return super().run(argv, **kw)

    with pytest.raises(A.BootstrapError) as e:
        run_bootstrap(tmp_path, Failing(tmp_path), wanted())
    msg = str(e.value)
    assert msg.startswith("step mount: `mount -t ext4 /dev/vdb /srv/ha` exited 32: mount: /srv/ha: wrong fs type")


def test_second_node_without_key_must_join(tmp_path: Path) -> None:
    seed(tmp_path)
    with pytest.raises(A.BootstrapError, match="--join node1"):
        run_bootstrap(tmp_path, FakeNode(tmp_path), wanted(node="node2", first=False))
    assert not (tmp_path / "etc/hasync/authkey").exists()


def test_second_node_never_runs_mkfs(tmp_path: Path) -> None:
    seed(tmp_path)
    node = FakeNode(tmp_path)
    (tmp_path / "etc/hasync").mkdir()
    (tmp_path / "etc/hasync/authkey").write_text("k\n")
    os.chmod(tmp_path / "etc/hasync/authkey", 0o600)
    w = wanted(node="node2", first=False)
    run_bootstrap(tmp_path, node, w)
    assert not any(a[0].startswith("mkfs") or a[0] == "mount" for a in node.calls)
    assert os.readlink(tmp_path / "var/lib/nfs") == "/srv/ha/nfs-state"
    assert plan_count(tmp_path, node, w) == 0


def test_manifest_is_written_before_each_change(tmp_path: Path) -> None:
    seed(tmp_path)
    node = FakeNode(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_bootstrap(tmp_path, node, wanted(), kill_after=4)
    [run] = M.runs(str(tmp_path / "var/lib/hasync/bootstrap"))
    m = json.loads((run / "manifest.json").read_text())
    assert len(m["entries"]) == 4 and m["finished"] is False


@pytest.mark.skipif(shutil.which("drbdadm") is None, reason="drbd-utils not installed (drbdadm parses the resource file)")
@pytest.mark.parametrize("profile,tool", [("debian12", "/usr/lib/drbd/drbdadm-84"), ("sles15", "drbdadm")])
def test_drbd_resource_file_parses(tmp_path: Path, profile: str, tool: str) -> None:
    import socket

    c = config.load(str(ROOT / "profiles" / "cluster" / "example.toml"))
    me = socket.gethostname()
    text = steps_drbd.render_drbd_res(P.Wanted(c, config.load_profile(profile), "node1", True)).replace("on node1 {", f"on {me} {{")
    conf = tmp_path / "drbd.conf"
    conf.write_text("global { usage-count no; }\n" + text)
    if not os.path.exists(tool) and shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    r = subprocess.run([tool, "-c", str(conf), "dump", "r0"], capture_output=True, text=True)
    assert "Parse error" not in r.stderr, r.stderr
    assert "protocol" in r.stdout and "fencing" in r.stdout
    assert "resync-rate" in r.stdout and "33M" in r.stdout, r.stdout


def test_wait_sync_reports_progress_and_rate(tmp_path: Path) -> None:
    from hasync.effects.clock import FakeClock

    states = iter(["parts", 10.0, 40.0, 70.0, None])

    class Syncing(RecordingRunner):
        def run(self, argv, **kw):
            argv = tuple(argv)
            self.calls.append(argv)
            done = next(states)
            if done == "parts":
                assert argv == ("cat", "/proc/partitions")
                return Result(argv, 0, "major minor  #blocks  name\n\n 254       16     1048576 vdb\n", "")
            if done is None:
                text = "r0 role:Primary\n  disk:UpToDate\n  node2 role:Secondary\n    peer-disk:UpToDate\n"
            else:
                text = f"r0 role:Primary\n  disk:UpToDate\n  node2 role:Secondary\n    replication:SyncSource peer-disk:Inconsistent done:{done:.2f}\n"
            return Result(argv, 0, text, "")

    runner = Syncing()
    seen: list[tuple[float, str, str]] = []
    clock = FakeClock()
    prober = A.Prober(runner, root=str(tmp_path))
    applier = A.Applier(runner, M.Manifest.new(str(tmp_path), "node1", 0.0), root=str(tmp_path), prober=prober,
                        progress=lambda d, r, t: seen.append((d, r, t)), clock=clock)
    applier.apply(P.Change("drbd-sync", "wait-sync", target="r0", path="/dev/vdb"))
    assert [s[0] for s in seen] == [10.0, 40.0, 70.0, 100.0]
    # 30 % of a 1 GiB disk per (fake) second
    assert seen[2][1] == "307.2 MiB/s"
    assert seen[-1][2] == "done"
    assert runner.calls == [("cat", "/proc/partitions")] + [("drbdadm", "status", "r0")] * 4


def test_inverse_commands() -> None:
    assert M.inverse(("systemctl", "enable", "x.service")) == ("systemctl", "disable", "x.service")
    assert M.inverse(("systemctl", "--root=/r", "disable", "x.service")) == ("systemctl", "--root=/r", "enable", "x.service")
    assert M.inverse(("chkconfig", "nfsserver", "off")) == ("chkconfig", "nfsserver", "on")
    assert M.inverse(("mkfs.ext4", "-q", "/dev/vdb")) is None
    assert M.inverse(("drbdadm", "up", "r0")) is None


def test_generated_auth_key_holds_32_random_bytes() -> None:
    """issue 12 item 14: the key bootstrap generates is at least 32 random bytes (hex)."""
    keys = {A.new_auth_key() for _ in range(3)}
    assert len(keys) == 3
    for k in keys:
        assert k.endswith("\n") and len(bytes.fromhex(k.strip())) >= 32


def test_nfsdcld_started_at_boot_is_stopped_before_the_nfs_state_moves() -> None:
    """The VM field run under systemd (2026-12-07): nfsdcld, started at boot with Debian's
    NFS server, kept its database open in the node's own /var/lib/nfs after bootstrap moved
    it ("attempt to write a readonly database"), and nfsd fell back to the old client
    tracking. The move stops it first (before the copy); once moved, nothing is stopped
    (a re-run on the active node touches no running NFS); not where systemd is not init."""
    from hasync.bootstrap import steps_nfs
    from hasync.bootstrap.testing import DataFacts

    def nfs_state(w, facts):
        [s] = [s for s in P.STEPS if s.name == "nfs-state"]
        return s.plan(w, DataFacts(facts, w.profile.init).get(s.needs(w)))

    prof = config.load_profile("debian12")
    w = wanted(profile=prof, cluster=config.load(str(ROOT / "profiles" / "cluster" / "example.toml")))
    sd = w.cluster.nfs.state_dir
    fresh = {"path:/var/lib/nfs": {"kind": "dir", "target": "", "mode": 0o755}}
    first = nfs_state(w, fresh)
    assert first[0].argv == steps_nfs.NFSDCLD_STOP and first[0].action == "run", first
    assert [c.argv[0] for c in first[1:] if c.action == "run"] == ["rm", "cp", "mv"]
    joined = nfs_state(replace(w, first=False, node="node2"), fresh)  # the join: the link only
    assert joined[0].argv == steps_nfs.NFSDCLD_STOP and [c.action for c in joined[1:]] == ["link"]
    done = {"path:/var/lib/nfs": {"kind": "symlink", "target": sd, "mode": 0o777},
            f"path:{sd}": {"kind": "dir", "target": "", "mode": 0o755}}
    assert nfs_state(w, done) == []
    sysv = replace(w, profile=config.load_profile("sles9"))
    assert steps_nfs.NFSDCLD_STOP not in [c.argv for c in nfs_state(sysv, fresh)]
