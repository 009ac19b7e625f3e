"""The in-place text edits: change only what must change, idempotent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hasync.bootstrap import edit as E
from hasync.bootstrap import lvmconf

DRBD_ONLY = lvmconf.render_list(["a|^/dev/drbd0$|", "r|^/dev/vdb$|"])

CAP = Path(__file__).parent / "data" / "bootstrap" / "captured"


def test_lvm_set_in_real_debian_conf_is_idempotent_and_local() -> None:
    text = (CAP / "debian12-lvm.conf").read_text()
    new = E.lvm_set(text, "devices", "global_filter", DRBD_ONLY, "why")
    assert E.lvm_get(new, "devices", "global_filter") == '[ "a|^/dev/drbd0$|", "r|^/dev/vdb$|" ]'
    assert E.lvm_set(new, "devices", "global_filter", DRBD_ONLY) == new
    # only two lines added (comment + value); every original line still there in order
    assert len(new.splitlines()) == len(text.splitlines()) + 2
    # the commented example in the file is not mistaken for a setting
    assert E.lvm_get(text, "devices", "global_filter") is None


def test_lvm_set_replaces_multiline_value() -> None:
    text = 'devices {\n\tfilter = [\n\t\t"a|.*|",\n\t]\n\tscan = [ "/dev" ]\n}\n'
    new = E.lvm_set(text, "devices", "filter", '[ "r|.*|" ]')
    assert new == 'devices {\n\tfilter = [ "r|.*|" ]\n\tscan = [ "/dev" ]\n}\n'


def test_lvm_set_adds_missing_section() -> None:
    new = E.lvm_set("global {\n}\n", "activation", "auto_activation_volume_list", lvmconf.render_list(["vg0"]))
    assert new.endswith('activation {\n\tauto_activation_volume_list = [ "vg0" ]\n}\n')


@pytest.mark.skipif(shutil.which("lvmconfig") is None, reason="lvm2 not installed (lvmconfig validates the edit)")
def test_lvm_edit_is_valid_for_lvm(tmp_path: Path) -> None:
    text = (CAP / "debian12-lvm.conf").read_text()
    text = E.lvm_set(text, "devices", "global_filter", DRBD_ONLY, "why")
    text = E.lvm_set(text, "devices", "write_cache_state", "0")
    (tmp_path / "lvm.conf").write_text(text)
    r = subprocess.run(["lvmconfig", "--validate"], env={"LVM_SYSTEM_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["lvmconfig", "devices/global_filter"], env={"LVM_SYSTEM_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, capture_output=True, text=True)
    assert 'a|^/dev/drbd0$|' in r.stdout


def test_ini_set_uses_existing_section_and_ignores_comments() -> None:
    text = (CAP / "debian12-nfs.conf").read_text()
    assert E.ini_get(text, "statd", "name") is None  # only "# name=" there
    new = E.ini_set(text, "statd", "name", "10.0.0.1")
    assert E.ini_get(new, "statd", "name") == "10.0.0.1"
    assert new.count("[statd]") == 1
    assert E.ini_set(new, "statd", "name", "10.0.0.1") == new
    assert E.ini_set(new, "statd", "name", "10.0.0.2").count("name=") == 1 + text.count("name=")


def test_shell_set() -> None:
    text = (CAP / "sles9-sysconfig-lvm").read_text()
    new = E.shell_set(text, "LVM_VGS_ACTIVATED_ON_BOOT", "hasync-none")
    assert E.shell_get(new, "LVM_VGS_ACTIVATED_ON_BOOT") == "hasync-none"
    assert new.count("LVM_VGS_ACTIVATED_ON_BOOT=") == 1
    assert E.shell_set("", "X", "1") == 'X="1"\n'


def test_managed_block_keeps_other_lines() -> None:
    text = "/home  *(ro)\n"
    a = E.managed_block(text, ["/srv/ha/x\t*(rw,fsid=1,mountpoint=/srv/ha)"])
    assert a.startswith("/home  *(ro)\n" + E.BEGIN)
    b = E.managed_block(a, ["/srv/ha/y\t*(rw,fsid=2,mountpoint=/srv/ha)"])
    assert "/srv/ha/x" not in b and "/srv/ha/y" in b and b.count(E.BEGIN) == 1
    assert E.managed_body(b) == ["/srv/ha/y\t*(rw,fsid=2,mountpoint=/srv/ha)"]
    assert E.export_paths_outside_block(b) == ["/home"]


def test_export_line_adds_fsid_and_mountpoint_once() -> None:
    assert E.export_line("/srv/ha/e", "10.0.0.0/24", "rw,sync,fsid=9,mountpoint", 1, "/srv/ha") == "/srv/ha/e\t10.0.0.0/24(rw,sync,fsid=1,mountpoint=/srv/ha)"


def test_fstab_without() -> None:
    text = (CAP / "debian12-fstab-with-cluster-fs").read_text()
    new = E.fstab_without(text, ("/dev/havg/data",), "/srv/ha")
    assert "\n/dev/havg/data" not in new and "# hasync: mounted by the cluster" in new
    assert E.fstab_without(new, ("/dev/havg/data",), "/srv/ha") == new
    clean = (CAP / "debian12-fstab").read_text()
    assert E.fstab_without(clean, ("/dev/havg/data",), "/srv/ha") is clean


def test_nfslock_swap_matches_the_field_notes() -> None:
    text = (CAP / "sles9-nfslock").read_text()
    new = E.nfslock_stop_fixed(text)
    lines = [ln.strip() for ln in new.splitlines()]
    i = lines.index("killproc -n -KILL lockd")
    assert lines[i + 1].startswith('echo -n "Shutting down NFS file locking daemon')
    assert lines[i + 2] == "rc_status -v"
    assert E.nfslock_stop_fixed(new) == new and E.nfslock_stop_is_fixed(new)
    assert not E.nfslock_stop_is_fixed(text)
    # the start action is untouched
    assert new.split("stop)")[0] == text.split("stop)")[0]


def test_with_line() -> None:
    assert E.with_line("", "k") == "k\n"
    assert E.with_line("a\nk\n", "k") == "a\nk\n"
    assert E.with_line("a", "k") == "a\nk\n"
