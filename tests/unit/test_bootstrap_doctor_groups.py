"""doctor over several resource groups (issue 17): each group's storage checked on its own
-- its DRBD resource, VG/LV behind the LVM filter, filesystem device, exports -- each finding
naming its group; several NFS groups served by one nfsd per node (enabled at boot, the
NFS state on each node's own disk). Pure: probe text in, findings out.

The config: tests/unit/data/bootstrap/groups/cluster.toml (groups "a" on r0/drbd0/vdb/hava
and "b" on r1/drbd1/vdc/havb, both serving NFS)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path

from hasync import config
from hasync.bootstrap import doctor as D

from .test_bootstrap_doctor import HEALTHY

CFG = Path(__file__).parent / "data" / "bootstrap" / "groups" / "cluster.toml"

# the node-wide lines of the one-group doctor test's healthy probe (host, programs, NFS,
# services): a group's storage lines come from group_lines; /var/lib/nfs a plain folder
# and nfsd enabled at boot, as several NFS groups want them
_STORAGE = ("disk_bytes=", "dev=", "lvm.", "mnt.fs=", "scope.", "clock=")
NODE = "".join(line + "\n" for line in HEALTHY.splitlines() if not line.startswith(_STORAGE)) \
    .replace("node=node1", "node=alpha").replace("nfs_kind=symlink", "nfs_kind=dir") \
    .replace("nfs_link=/srv/ha/nfs-state", "nfs_link=").replace("nfs-server=disabled", "nfs-server=enabled")
FILTER = '["a|^/dev/drbd0$|","a|^/dev/drbd1$|","r|^/dev/vdb$|","r|^/dev/vdc$|"]'


def _status(res: str, role: str = "Primary", peer_role: str = "Secondary") -> str:
    text = f"{res} role:{role}\n  disk:UpToDate\n  beta role:{peer_role}\n    peer-disk:UpToDate\n"
    return base64.b64encode(text.encode()).decode()


def group_lines(gid: str, res: str, disk: str, minor: int, vg: str, mp: str, *, status: str | None = None,
                global_filter: str = FILTER, drbd_res: str = "abcd") -> str:
    lines = {
        "disk_bytes": "268435456", "dev": f"fd:{minor}",
        "lvm.global_filter": global_filter, "lvm.filter": '["a|.*|"]', "lvm.use_devicesfile": "0", "lvm.devicesfile": "-",
        "lvm.disk_links": "", "lvm.disk_real": disk,
        "lvm.pvs": '{"report": [{"pv": [{"pv_name":"/dev/drbd0", "vg_name":"hava"}, {"pv_name":"/dev/drbd1", "vg_name":"havb"}]}]}',
        "lvm.lvs": '{"report": [{"lv": [{"vg_name":"hava", "lv_active":"active"}, {"vg_name":"havb", "lv_active":"active"}]}]}',
        "drbd.status": _status(res) if status is None else status, "drbd.proc": "",
        "drbd_res": drbd_res, "mnt.fs": f"fd:{minor} /",
    }
    return "".join(f"group.{gid}.{k}={v}\n" for k, v in lines.items())


def probe(a: str = "", b: str = "", node: str = NODE) -> dict[str, str]:
    return D.parse_probe(node + (a or group_lines("a", "r0", "/dev/vdb", 0, "hava", "/srv/a"))
                         + (b or group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b")) + "clock=1800000000.25\n")


def cluster():
    return config.load(str(CFG))


def profile():
    return config.load_profile("debian12")


def per_group(findings, check):
    return sorted((f.group, f.level) for f in findings if f.check == check)


def test_the_probe_reads_every_groups_storage_under_its_group() -> None:
    s = D.probe_script(cluster(), profile(), "alpha")
    for gid, res, disk in (("a", "r0", "/dev/vdb"), ("b", "r1", "/dev/vdc")):
        m = re.search(r"^\{\n(.*?)^\} \| sed 's/\^/group\." + gid + r"\./'$", s, re.S | re.M)
        assert m is not None, gid
        section = m.group(1)
        assert f"drbdsetup status {res} " in section and f"blockdev --getsize64 {disk}" in section
        assert f"/etc/drbd.d/{res}.res" in section
    assert "echo clock=" in s.split("group.b.")[-1]  # node-wide lines stay outside the groups


def test_a_healthy_two_group_node_has_no_errors_and_names_each_group() -> None:
    f = D.check_node(cluster(), profile(), "alpha", probe())
    assert [x for x in f if x.level == "error"] == []
    assert per_group(f, "drbd-state") == [("a", "ok"), ("b", "ok")]
    assert per_group(f, "lvm-filter") == [("a", "ok"), ("b", "ok")]
    assert per_group(f, "disk") == [("a", "ok"), ("b", "ok")]
    assert per_group(f, "auth-key") == [("", "ok")]  # node-wide: no group


def test_the_second_groups_drbd_down_is_found_for_that_group() -> None:
    down = group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b", status="")
    f = D.check_node(cluster(), profile(), "alpha", probe(b=down))
    [e] = [x for x in f if x.check == "drbd-state" and x.level == "error"]
    assert e.group == "b" and "r1" in e.message and e.fix.startswith("drbdadm up r1")


def test_the_lvm_filter_must_cover_every_groups_disk_and_drbd_device() -> None:
    def lvm_filter(flt: str) -> list:
        f = D.check_node(cluster(), profile(), "alpha", probe(
            a=group_lines("a", "r0", "/dev/vdb", 0, "hava", "/srv/a", global_filter=flt),
            b=group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b", global_filter=flt)))
        assert per_group(f, "lvm-hidden-vg") == []  # the other group's VG is ours, not a stranger's
        assert per_group(f, "lvm-filter")[0] == ("a", "ok")
        return [x for x in f if x.check == "lvm-filter" and x.level == "error" and x.fix]

    [seen] = lvm_filter('["a|^/dev/drbd0$|","r|^/dev/vdb$|"]')  # group b's backing disk not hidden
    assert seen.group == "b" and "backing disk /dev/vdc" in seen.message
    [unseen] = lvm_filter('["a|^/dev/drbd0$|","r|.*|"]')  # group b's DRBD device hidden
    assert unseen.group == "b" and "does not see /dev/drbd1" in unseen.message and "havb" in unseen.message


def test_several_nfs_groups_want_nfsd_at_boot_and_state_on_each_node() -> None:
    c = cluster()
    c = replace(c, nfs=replace(c.nfs, state_dir="/srv/a/nfs-state"))  # the one-group layout's key
    f = D.check_node(c, profile(), "alpha", probe())
    assert per_group(f, "nfs-at-boot") == [("", "ok")]
    assert [x for x in f if x.check in ("nfs-state-link", "nfs-v4-records") and x.level == "error"] == []
    off = D.check_node(c, profile(), "alpha", probe(node=NODE.replace("nfs-server=enabled", "nfs-server=disabled")))
    [e] = [x for x in off if x.check == "nfs-at-boot"]
    assert e.level == "error" and e.fix == "systemctl enable nfs-server"


def test_pair_checks_per_group() -> None:
    a = probe()
    b = probe(b=group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b", drbd_res="ffff"))
    f = D.check_pair(cluster(), "alpha", "beta", a, b, 0.0)
    assert per_group(f, "drbd-config") == [("a", "ok"), ("b", "error")]
    assert per_group(f, "device-identity") == [("a", "ok"), ("b", "ok")]
    assert per_group(f, "unison") == [("", "ok")]


def test_split_brain_of_one_group_names_it() -> None:
    sb = group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b",
                     status=base64.b64encode(b"r1 role:Primary\n  disk:UpToDate\n  beta connection:StandAlone\n").decode())
    f = D.check_pair(cluster(), "alpha", "beta", probe(b=sb), probe(b=sb), 0.0)
    [e] = [x for x in f if x.check == "drbd-split-brain"]
    assert e.group == "b" and "r1" in e.message


def test_the_group_is_in_the_json() -> None:
    f = D.check_node(cluster(), profile(), "alpha", probe())
    d = [x.to_dict() for x in f if x.check == "drbd-state"]
    assert json.loads(json.dumps(d))[0]["group"] == "a"


def test_doctor_prints_the_group_of_each_finding(monkeypatch, capsys) -> None:
    from hasync import cli

    down = group_lines("b", "r1", "/dev/vdc", 1, "havb", "/srv/b", status="")
    found = D.check_node(cluster(), profile(), "alpha", probe(b=down))
    monkeypatch.setattr(D, "run_doctor", lambda *a, **kw: found)
    assert cli.main(["-c", str(CFG), "doctor", "--node", "alpha", "--no-peer"]) == 1
    out = capsys.readouterr().out
    assert "alpha (group b): DRBD r1 is not up here" in out and "alpha: " in out  # node-wide ones: no group
    assert cli.main(["-c", str(CFG), "doctor", "--node", "alpha", "--no-peer", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)["findings"]
    assert {(r["check"], r["group"]) for r in rows if r["level"] == "error"} == {("drbd-state", "b")}
