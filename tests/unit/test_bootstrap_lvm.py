"""LVM's configuration as bootstrap writes it (issue 13 items 2 and 3): the filter hides
the DRBD backing disk and nothing else, activation lists never name a hidden VG, the
devices file, the LVM-activate access modes. The filter rule itself is checked against
real LVM in tests/lab/test_bootstrap_lab.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hasync.bootstrap import edit, lvmconf
from hasync.bootstrap import plan as P
from hasync.bootstrap.testing import DataFacts

from .test_bootstrap_golden import DATA as GOLDEN
from .test_bootstrap_golden import PROFILES, cluster_for
from .test_bootstrap_steps import CASES, DATA, resolve, run_case, wanted_for

LINKS = {"exit": 0, "stdout@": "captured/udevadm-info-vdb.txt"}
ROOT_AND_CLUSTER_PVS = {"exit": 0, "stdout@": "captured/pvs-havg-drbd0.json"}  # /dev/vda2 in "system", /dev/drbd0 in havg
BACKING = ["/dev/vdb", "/dev/disk/by-id/virtio-hasync-disk1", "/dev/disk/by-path/virtio-pci-0000:00:05.0",
           "/dev/disk/by-path/pci-0000:00:05.0"]


# --------------------------------------------------------------------------- the rule


def test_filter_rule_is_lvms() -> None:
    """lvm.conf(5): the first pattern a name matches decides it; one accepted name
    accepts the device; names no pattern matches do not count; nothing matched: accepted."""
    assert lvmconf.accepts(["a|loop|", "r|.*|"], ["/dev/loop0"])
    assert not lvmconf.accepts(["a|loop|", "r|.*|"], ["/dev/sda"])
    assert lvmconf.accepts(["r|^/dev/sdb$|"], ["/dev/sda"])  # no match: accepted
    assert not lvmconf.accepts(["r|^/dev/sdb$|"], ["/dev/sdb", "/dev/disk/by-id/x"])  # the link matches nothing
    assert lvmconf.accepts(["r|^/dev/sdb$|", "a|.*|"], ["/dev/sdb", "/dev/disk/by-id/x"])  # ... unless a catch-all accepts it
    assert not lvmconf.accepts(["a|loop|", "r|/dev/hdc|", "a|/dev/ide|", "r|.*|"], ["/dev/hdc"])
    assert lvmconf.visible([["a|.*|"], ["r|^/dev/sdb$|"]], ["/dev/sda"])
    assert not lvmconf.visible([["a|.*|"], ["r|^/dev/sdb$|"]], ["/dev/sdb"])
    assert lvmconf.accepts([lvmconf.literal("/dev/disk/by-path/pci-0000:00:05.0").join("a|")], ["/dev/disk/by-path/pci-0000:00:05.0"])
    assert not lvmconf.accepts(["a" + "|" + lvmconf.literal("/dev/x.y") + "|", "r|.*|"], ["/dev/xzy"])


def test_lists_round_trip() -> None:
    for items in ([], ["a|^/dev/drbd0$|", "r|.*|"], ['r|\\.x|', 'a|"|']):
        assert lvmconf.parse_list(lvmconf.render_list(items)) == items
    assert lvmconf.parse_list('"a|.*|"') == ["a|.*|"]  # one string where a list goes
    assert lvmconf.parse_list(None) == []


# --------------------------------------------------------------------------- the filter written


def lvm_config_changes(profile: str, conf: str | dict, **case) -> tuple[str, list[P.Change]]:
    c = {"step": "lvm-config", "profile": profile, "config": "example", "node": "node1", "first": True,
         "facts": {"file:/etc/lvm/lvm.conf": conf, "devlinks:/dev/vdb": LINKS, "pvs": ROOT_AND_CLUSTER_PVS}, **case}
    w, facts, changes = run_case(c)
    return str(w.o("lvm_filter_key", "global_filter")), changes


def written_filters(text: str) -> list[list[str]]:
    return [lvmconf.parse_list(edit.lvm_get(text, "devices", k)) for k in ("global_filter", "filter") if edit.lvm_get(text, "devices", k) is not None]


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "lab"])
@pytest.mark.parametrize("host", ["none", "root-only", "catch-all"])
def test_filter_hides_the_backing_disk_and_nothing_else(profile: str, host: str) -> None:
    """issue 13 item 2: bootstrap used to write accept-DRBD-reject-everything, replacing the
    host's filter: a root VG on LVM (the RHEL 9 default) disappeared. Now the root PV and
    the DRBD device stay visible and the backing disk is hidden by every stable name."""
    conf = {"none": {"@": "captured/debian12-lvm.conf"},
            "root-only": 'devices {\n\tfilter = [ "a|^/dev/vda2$|", "r|.*|" ]\n\tglobal_filter = [ "a|^/dev/vda2$|", "r|.*|" ]\n}\n',
            "catch-all": 'devices {\n\tglobal_filter = [ "a|.*|" ]\n}\n'}[host]
    _, changes = lvm_config_changes(profile, conf)
    [text] = [c.data for c in changes if c.action == "write" and c.path == "/etc/lvm/lvm.conf"]
    flts = written_filters(text or "")
    assert flts
    assert lvmconf.visible(flts, ["/dev/vda2"]), flts  # the root PV
    assert lvmconf.visible(flts, ["/dev/drbd0", "/dev/drbd/by-res/r0/0", "/dev/drbd/by-disk/vdb"]), flts
    assert not lvmconf.visible(flts, BACKING), flts
    # a name udev makes later from the replicated PV label does not bring the disk back
    assert not lvmconf.visible(flts, [*BACKING, "/dev/disk/by-id/lvm-pv-uuid-wFlL0M", "/dev/block/254:16"]), flts


def test_no_drbd_the_raw_disk_stays_visible() -> None:
    """use_drbd = false, use_lvm = true: the PV is the raw disk itself."""
    for conf in ('devices {\n\tglobal_filter = [ "a|^/dev/drbd|", "r|.*|" ]\n}\n',
                 'devices {\n\tglobal_filter = [ "a|^/dev/vda2$|", "r|.*|" ]\n}\n'):
        _, changes = lvm_config_changes("debian12", conf, storage={"use_drbd": False})
        [text] = [c.data for c in changes if c.action == "write"]
        flts = written_filters(text or "")
        assert lvmconf.visible(flts, ["/dev/vdb"]) and lvmconf.visible(flts, ["/dev/vda2"]), flts


def test_the_filter_does_not_depend_on_udevs_order_of_links() -> None:
    """Found in the VM tier (Debian 12 guest, systemd 252's udev): `udevadm info` lists a
    disk's links in a different order from one call to the next, and lvm-config wrote
    its reject patterns in that order -- so the re-plan after the write wanted the same
    filter in another order and bootstrap stopped with "step lvm-config: did not
    converge" on the very first run. The filter must be the same for every order."""
    text = (DATA / LINKS["stdout@"]).read_text()
    head, s_lines, tail = [], [], []
    for line in text.splitlines(keepends=True):
        (s_lines if line.startswith("S: ") else tail if s_lines else head).append(line)
    orders = [s_lines, s_lines[::-1], s_lines[1:] + s_lines[:1]]
    written = set()
    for order in orders:
        links = {"exit": 0, "stdout": "".join(head + order + tail), "stderr": ""}
        _, changes = lvm_config_changes("debian12", {"@": "captured/debian12-lvm.conf"},
                                        facts={"file:/etc/lvm/lvm.conf": {"@": "captured/debian12-lvm.conf"},
                                               "devlinks:/dev/vdb": links, "pvs": ROOT_AND_CLUSTER_PVS})
        [conf] = [c.data for c in changes if c.action == "write" and c.path == "/etc/lvm/lvm.conf"]
        written.add(conf)
        # and once written, another order of the same links plans nothing more
        for again in orders:
            links2 = {"exit": 0, "stdout": "".join(head + again + tail), "stderr": ""}
            _, changes2 = lvm_config_changes("debian12", conf or "", facts={"file:/etc/lvm/lvm.conf": conf,
                                                                          "devlinks:/dev/vdb": links2, "pvs": ROOT_AND_CLUSTER_PVS})
            assert [c for c in changes2 if c.action == "write"] == [], "lvm-config does not converge"
    assert len(written) == 1


def _written_lvm_conf(changes: list[dict] | list[P.Change], old: str | None) -> str | None:
    for c in changes:
        if isinstance(c, P.Change) and c.action == "write" and c.path.endswith("lvm.conf"):
            return c.data
    return None


def _activation_lists(text: str) -> list[str]:
    return [v for k in ("auto_activation_volume_list", "volume_list")
            for v in lvmconf.parse_list(edit.lvm_get(text, "activation", k))]


def _plans_with_pvs():
    """(name, written lvm.conf, pvs rows) of every step case and golden plan that lists VGs."""
    for path in CASES:
        case = json.loads(path.read_text())
        if case["step"] != "lvm-config":
            continue
        w, facts, changes = run_case(case)
        text = _written_lvm_conf(changes, None)
        if text and _activation_lists(text):
            yield path.stem, text, DataFacts({k: resolve(v) for k, v in case["facts"].items()}).get(["pvs"])["pvs"] or []
    for profile in PROFILES:
        facts_file = GOLDEN / f"{profile}.facts.json"
        raw = json.loads(facts_file.read_text()) if facts_file.exists() else {}
        for node in ("node1", "node2"):
            w = P.Wanted(cluster=cluster_for(profile), profile=wanted_for({"config": "example", "profile": profile, "node": node, "first": True}).profile,
                         node=node, first=node == "node1")
            f = DataFacts({k: resolve(v) for k, v in raw.items()}, w.profile.init)
            s = next(s for s in P.STEPS if s.name == "lvm-config")
            if not s.when(w):
                continue
            text = _written_lvm_conf(s.plan(w, f.get(s.needs(w))), None)
            if text and _activation_lists(text):
                yield f"golden {profile} {node}", text, f.get(["pvs"])["pvs"] or []


def test_activation_lists_never_name_a_vg_the_filter_hides() -> None:
    """issue 13 item 2: a case wrote auto_activation_volume_list = ["system"] next to a
    filter that hid "system". Every case and golden plan: each VG listed for activation
    has all its PVs visible through the filter written with it."""
    seen = 0
    for name, text, pvs in _plans_with_pvs():
        flts = written_filters(text)
        listed = _activation_lists(text)
        for row in pvs:
            if row["vg_name"] in listed:
                assert lvmconf.visible(flts, [row["pv_name"]]), (name, row, flts)
        seen += 1
    assert seen >= 2  # the sles15 case and the tagging case at least


def test_a_vg_on_the_backing_disk_is_not_listed() -> None:
    """A stale VG found on the backing disk is hidden by the filter: not listed."""
    pvs = {"exit": 0, "stdout": json.dumps({"report": [{"pv": [
        {"pv_name": "/dev/vda2", "vg_name": "system", "pv_size": "1"},
        {"pv_name": "/dev/vdb", "vg_name": "old", "pv_size": "1"}]}]}), "stderr": ""}
    vgs = {"exit": 0, "stdout": json.dumps({"report": [{"vg": [
        {"vg_name": "system", "vg_size": "1", "vg_autoactivation": "enabled"},
        {"vg_name": "old", "vg_size": "1", "vg_autoactivation": "enabled"}]}]}), "stderr": ""}
    _, changes = lvm_config_changes("sles15", {"@": "captured/debian12-lvm.conf"}, facts={
        "file:/etc/lvm/lvm.conf": {"@": "captured/debian12-lvm.conf"}, "devlinks:/dev/vdb": LINKS, "pvs": pvs, "vgs": vgs})
    [text] = [c.data for c in changes if c.action == "write"]
    assert lvmconf.parse_list(edit.lvm_get(text or "", "activation", "auto_activation_volume_list")) == ["system"]


@pytest.mark.skipif(shutil.which("lvmconfig") is None, reason="lvm2 not installed (lvmconfig validates the edit)")
def test_every_written_lvm_conf_is_valid_for_lvm(tmp_path: Path) -> None:
    """Each lvm.conf a step case or golden plan writes passes `lvmconfig --validate`."""
    texts = []
    for path in CASES:
        case = json.loads(path.read_text())
        if case["step"] == "lvm-config":
            text = _written_lvm_conf(run_case(case)[2], None)
            if text:
                texts.append((path.stem, text))
    assert len(texts) >= 8
    for name, text in texts:
        (tmp_path / "lvm.conf").write_text(text)
        env = {"LVM_SYSTEM_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        r = subprocess.run(["lvmconfig", "--validate"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
        got = subprocess.run(["lvmconfig", "devices/global_filter"], env=env, capture_output=True, text=True).stdout
        if "global_filter" in got:  # LVM reads back the list hasync meant
            assert lvmconf.parse_list(got.split("=", 1)[1]) == lvmconf.parse_list(edit.lvm_get(text, "devices", "global_filter")), name


# --------------------------------------------------------------------------- devices file and access modes


def test_devices_file_parsed() -> None:
    entries = lvmconf.parse_devices_file((DATA / "captured" / "rhel9-system.devices").read_text())
    assert [e["DEVNAME"] for e in entries or []] == ["/dev/vda2", "/dev/vdb"]
    assert lvmconf.parse_devices_file(None) is None
    assert lvmconf.listed(entries or [], ["/dev/vdb"]) and not lvmconf.listed(entries or [], ["/dev/drbd0"])


def test_access_mode_from_the_chain() -> None:
    c = cluster_for("debian12")
    mode, res = lvmconf.access(c)
    assert mode == "system_id" and res is not None and res.id == "vg"
    assert lvmconf.activation_tag(res) == "pacemaker"
    assert set(lvmconf.SERVED_ACCESS_MODES) == {"system_id", "tagging"}
