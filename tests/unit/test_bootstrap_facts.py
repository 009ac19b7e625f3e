"""Fact parsers on captured command output (tests/unit/data/bootstrap/captured)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hasync.bootstrap import facts as F
from hasync.bootstrap import facts_drbd

CAP = Path(__file__).parent / "data" / "bootstrap" / "captured"


def ok(name: str, code: int = 0) -> dict:
    return {"exit": code, "stdout": (CAP / name).read_text(), "stderr": ""}


def test_wipefs_signatures() -> None:
    assert F.parse_wipefs(ok("wipefs-empty.json")) == []
    [sig] = F.parse_wipefs(ok("wipefs-ext4-data.json"))
    assert (sig["type"], sig["offset"], sig["label"]) == ("ext4", "0x438", "data")
    types = [s["type"] for s in F.parse_wipefs(ok("wipefs-lvm-over-drbd-md.json"))]
    assert types == ["LVM2_member", "drbd"]
    [md] = F.parse_wipefs(ok("wipefs-drbd-md.json"))
    assert md["type"] == "drbd" and md["label"] == ""


def test_wipefs_missing_device_and_garbage() -> None:
    missing = {"exit": 1, "stdout": "", "stderr": "wipefs: error: /dev/vdx: probing initialization failed: No such file or directory"}
    assert F.parse_wipefs(missing) is None
    with pytest.raises(F.FactError):
        F.parse_wipefs({"exit": 0, "stdout": "not json", "stderr": ""})
    with pytest.raises(F.FactError):
        F.parse_wipefs({"exit": 1, "stdout": "", "stderr": "wipefs: permission denied"})


def test_drbd_status_formats() -> None:
    s = facts_drbd.parse_drbd_status(ok("drbd9-status-syncsource.txt"))
    assert s["up"] and s["role"] == "Primary" and s["disk"] == "UpToDate"
    assert s["peer"] == {"name": "node2", "role": "Secondary", "connection": "Connected", "replication": "SyncSource", "peer_disk": "Inconsistent", "done": 37.52}
    c = facts_drbd.parse_drbd_status(ok("drbd9-status-fresh-connecting.txt"))
    assert c["peer"]["connection"] == "Connecting" and c["peer"]["role"] == ""
    old = facts_drbd.parse_drbd_status(ok("drbd84-status-synctarget.txt"))
    assert old["peer"]["name"] == "peer" and old["peer"]["replication"] == "SyncTarget" and old["peer"]["done"] == 80.10


def test_drbd_status_not_up() -> None:
    down = {"exit": 20, "stdout": "", "stderr": "Command 'drbdsetup status r0' terminated with exit code 20"}
    assert facts_drbd.parse_drbd_status(down)["up"] is False
    with pytest.raises(F.FactError):
        facts_drbd.parse_drbd_status({"exit": 0, "stdout": "r0 something\n", "stderr": ""})


def test_drbd_dump() -> None:
    d = facts_drbd.parse_drbd_dump(ok("drbdadm-dump-r0.txt"))
    assert d["protocol"] == "C"
    assert d["hosts"]["other"] == {"device": "/dev/drbd0", "minor": 0, "disk": "/dev/vdb", "address": "127.0.0.2:7789"}


def test_lvm_reports() -> None:
    assert F.parse_lvm_report(ok("pvs-havg.json"), "pvs") == [{"pv_name": "/dev/loop0", "vg_name": "havg", "pv_size": "130023424"}]
    assert F.parse_lvm_report(ok("vgs-havg-noauto.json"), "vgs")[0]["vg_autoactivation"] == ""
    assert F.parse_lvm_report(ok("lvs-empty.json"), "lvs") == []
    assert F.parse_lvm_report({"exit": 127, "stdout": "", "stderr": "lvs: command not found"}, "lvs") is None
    with pytest.raises(F.FactError, match="lvs"):
        F.parse_lvm_report({"exit": 5, "stdout": "", "stderr": "  /dev/mapper/control: open failed"}, "lvs")
    with pytest.raises(F.FactError, match="'vg'"):
        F.parse_lvm_report(ok("pvs-havg.json"), "vgs")


def test_enabled_systemd_and_chkconfig() -> None:
    assert F.parse_enabled({"exit": 0, "stdout": "enabled\n", "stderr": ""}, "systemd") == "enabled"
    assert F.parse_enabled({"exit": 1, "stdout": "disabled\n", "stderr": ""}, "systemd") == "disabled"
    assert F.parse_enabled({"exit": 0, "stdout": "static\n", "stderr": ""}, "systemd") == "static"
    nf = {"exit": 1, "stdout": "", "stderr": "Failed to get unit file state for x.service: No such file or directory"}
    assert F.parse_enabled(nf, "systemd") == "not-found"
    assert F.parse_enabled(ok("sles9-chkconfig-nfsserver-on.txt"), "sysv") == "enabled"
    assert F.parse_enabled(ok("sles9-chkconfig-nfslock-off.txt"), "sysv") == "disabled"
    assert F.parse_enabled({"exit": 1, "stdout": "", "stderr": "x: unknown service"}, "sysv") == "not-found"
    assert F.parse_enabled({"exit": 0, "stdout": "nfsserver  on\n", "stderr": ""}, "sysv") == "enabled"


def test_partitions_and_mountinfo() -> None:
    parts = F.parse_partitions({"exit": 0, "stdout": "major minor  #blocks  name\n\n 254       16     262144 vdb\n 147        0     131072 drbd0\n", "stderr": ""})
    assert parts["vdb"] == {"major": 254, "minor": 16, "bytes": 262144 * 1024}
    assert parts["drbd0"]["major"] == 147
    mi = "36 25 7:1 / /srv/ha rw,relatime shared:20 - ext4 /dev/vdb rw\n37 25 0:5 / /mnt/a\\040b rw - tmpfs tmpfs rw\n"
    got = F.parse_mountinfo({"exit": 0, "stdout": mi, "stderr": ""})
    assert got[0] == {"mount_point": "/srv/ha", "dev": "7:1", "fstype": "ext4", "source": "/dev/vdb"}
    assert got[1]["mount_point"] == "/mnt/a b"


def test_commands_are_tuples() -> None:
    assert F.command("signatures:/dev/vdb") == ("wipefs", "--no-act", "--json", "/dev/vdb")
    assert F.command("enabled:nfs-server", init="systemd") == ("systemctl", "is-enabled", "nfs-server.service")
    assert F.command("enabled:nfs-server", init="systemd", root="/tmp/r") == ("systemctl", "--root=/tmp/r", "is-enabled", "nfs-server.service")
    assert F.command("enabled:nfsserver", init="sysv") == ("chkconfig", "--list", "nfsserver")
    assert F.command("file:/etc/exports") is None
    assert F.command("peer_file:/etc/x", peer="node1")[-2:] == ("root@node1", "cat /etc/x")
    with pytest.raises(F.FactError):
        F.command("bogus:x")


def test_drbd_generation_identifiers() -> None:
    """Captured with drbd-utils 9.22 (drbdadm get-gi reading the metadata through drbdmeta):
    right after create-md (9 and 8.4 formats), and a disk that has held data."""
    for name in ("drbdadm-get-gi-fresh-v09.txt", "drbdmeta-get-gi-fresh-v08.txt"):
        gi = facts_drbd.parse_drbd_gi(ok(name))
        assert gi["readable"] and gi["fresh"] and gi["current"] == "0000000000000004", name
    used = facts_drbd.parse_drbd_gi(ok("drbdadm-get-gi-outdated-v09.txt"))
    assert used["readable"] and not used["fresh"]
    assert used["current"] == "8D3C1E5A7B2F4C90" and used["history"] == ["4A7B1C9E3D2F5A60", "0000000000000004"]
    assert not facts_drbd.parse_drbd_gi(ok("drbdmeta-get-gi-outdated-v08.txt"))["fresh"]
    # bit 0 is the "was Primary" flag, not part of the UUID
    assert facts_drbd.parse_drbd_gi({"exit": 0, "stdout": "0000000000000005:0000000000000000:0000000000000000:0000000000000000:0:0:0:0:0:0:0\n"})["fresh"]
    # a fresh current UUID with a history is not brand-new metadata
    assert not facts_drbd.parse_drbd_gi({"exit": 0, "stdout": "0000000000000004:0000000000000000:4A7B1C9E3D2F5A60:0000000000000000:0:0:0:0:0:0:0\n"})["fresh"]


def test_drbd_generation_identifiers_unreadable_and_garbage() -> None:
    undefined = {"exit": 1, "stdout": "", "stderr": "'r0' not defined in your config (for this host).\n"}
    assert facts_drbd.parse_drbd_gi(undefined) == {"readable": False, "error": "'r0' not defined in your config (for this host)."}
    assert facts_drbd.parse_drbd_gi({"exit": 1, "stdout": "", "stderr": ""})["readable"] is False  # no metadata: drbdmeta says nothing
    with pytest.raises(F.FactError):
        facts_drbd.parse_drbd_gi({"exit": 0, "stdout": "r0: something else\n", "stderr": ""})


def test_a_peer_file_read_that_timed_out_is_an_error_not_a_missing_file() -> None:
    """Found in the VM tier: a join's read of the first node's known_hosts over ssh timed
    out on a loaded host (exit 124); read as "no such file", step ssh-trust wanted its
    change again after applying it and bootstrap stopped with "did not converge"."""
    assert F.parse("peer_file:/etc/x", {"exit": 1, "stdout": "", "stderr": "cat: /etc/x: No such file or directory"}) is None
    with pytest.raises(F.FactError, match="timed out"):
        F.parse("peer_file:/etc/x", {"exit": 124, "stdout": "", "stderr": "timed out after 60s"})


def test_user_and_directory_entries() -> None:
    """`getent passwd NAME` -> uid and login group (None: exit 2, no such user); a
    directory's names sorted (None: no such directory); path facts carry the owner."""
    line = {"exit": 0, "stdout": "statd:x:104:65534::/var/lib/nfs:/usr/sbin/nologin\n", "stderr": ""}
    assert F.command("user:statd") == ("getent", "passwd", "statd")
    assert F.parse("user:statd", line) == {"uid": 104, "gid": 65534}
    assert F.parse("user:statd", {"exit": 2, "stdout": "", "stderr": ""}) is None
    with pytest.raises(F.FactError, match="getent passwd statd"):
        F.parse("user:statd", {"exit": 0, "stdout": "garbage\n", "stderr": ""})
    assert F.command("entries:/var/lib/nfs/sm") is None
    assert F.parse("entries:/var/lib/nfs/sm", ["b", "a"]) == ["a", "b"] and F.parse("entries:/x", None) is None
    # path facts captured before they carried the owner read as "owner unknown"
    assert F.parse("path:/x", {"kind": "dir", "target": "", "mode": 493}) == {"kind": "dir", "target": "", "mode": 493, "uid": -1, "gid": -1}
