"""Honest profiles (issue 13 item 6): each profile says what it supports; bootstrap and
doctor refuse on a host it does not serve; sles9 is import-only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hasync import config, resources
from hasync.bootstrap import facts as F
from hasync.bootstrap import host

from .test_bootstrap_golden import full_plan
from .test_bootstrap_steps import ROOT

CAP = Path(__file__).parent / "data" / "bootstrap" / "captured"
DEBIAN12 = host.parse_os_release((CAP / "os-release-debian12").read_text())
ROCKY9 = host.parse_os_release((CAP / "os-release-rocky9").read_text())
SLES15 = host.parse_os_release((CAP / "os-release-sles15sp5").read_text())
GOOD = {"wipefs_json": True, "lvm": "2.03.16", "drbdadm": {"utils": "9.22.0", "kernel": "8.4.11"}}


def ok(name: str) -> dict:
    return {"exit": 0, "stdout": (CAP / name).read_text(), "stderr": ""}


def problems(profile: str, osr, **tools) -> list[str]:
    return host.problems(config.load_profile(profile), osr, {**GOOD, **tools}, use_drbd=True, use_lvm=True)


def test_every_profile_says_what_it_supports() -> None:
    for name in config.available_profiles():
        sup = config.load_profile(name).supported
        assert sup, f"{name} has no [supported] table"
        assert sup["tested"] in host.TESTED
        if not sup["import_only"] and name != "lab":
            assert sup["os"] and sup["drbd_kernel"] and {"python", "lvm2", "drbd_utils"} <= set(sup["minimum"]), name
    assert [n for n in config.available_profiles() if config.load_profile(n).supported["tested"] == "vm"] == ["debian12"]
    assert config.load_profile("sles9").supported["import_only"] is True


def test_docs_say_which_profiles_no_real_host_runs() -> None:
    doc = (ROOT / "docs" / "bootstrap.md").read_text()
    for name in config.available_profiles():
        if config.load_profile(name).supported["tested"] == "none":
            assert f"`{name}`" in doc.split("## Tested for real")[1].split("\n## ")[0], name


def test_the_host_the_profile_is_for_passes() -> None:
    assert problems("debian12", DEBIAN12) == []
    assert problems("rhel9", ROCKY9, drbdadm={"utils": "9.27.0", "kernel": "9.2.7"}) == []
    assert problems("sles15", SLES15, drbdadm={"utils": "9.27.0", "kernel": "9.2.7"}) == []
    assert problems("debian12", DEBIAN12, drbdadm={"utils": "9.22.0", "kernel": "0"}) == []  # module not loaded yet
    assert problems("lab", DEBIAN12) == [] and problems("lab", ROCKY9) == []


def test_a_host_the_profile_is_not_for_is_refused_with_why() -> None:
    [p] = problems("rhel9", DEBIAN12, drbdadm={"utils": "9.22.0", "kernel": "9.2.7"})
    assert "this host runs Debian GNU/Linux 12 (bookworm); profile rhel9 is for rhel 9" in p
    debian11 = dict(DEBIAN12, VERSION_ID="11", PRETTY_NAME="Debian GNU/Linux 11 (bullseye)")
    assert any("Debian GNU/Linux 11" in p for p in problems("debian12", debian11))
    assert any("lvm2 2.03.11 is older than 2.03.12" in p for p in problems("debian12", DEBIAN12, lvm="2.03.11"))
    assert any("lvm2 is not installed" in p for p in problems("debian12", DEBIAN12, lvm=None))
    assert any("wipefs has no --json" in p for p in problems("debian12", DEBIAN12, wipefs_json=False))
    assert any("DRBD kernel module here is 9.2.7; profile debian12 writes resource files for DRBD 8.4" in p
               for p in problems("debian12", DEBIAN12, drbdadm={"utils": "9.22.0", "kernel": "9.2.7"}))
    assert any("drbd-utils 8.4.4 is older than 9.0" in p for p in problems("debian12", DEBIAN12, drbdadm={"utils": "8.4.4", "kernel": "8.4.11"}))
    assert any("no /etc/os-release" in p for p in problems("debian12", None))
    leap = {"ID": "opensuse-leap", "ID_LIKE": "suse opensuse", "VERSION_ID": "15.5"}
    assert any("profile sles15 is for sles 15" in p for p in problems("sles15", leap))
    # no DRBD, no LVM in the config: their tools are not asked for
    prof = config.load_profile("debian12")
    assert host.problems(prof, DEBIAN12, {"wipefs_json": True}, use_drbd=False, use_lvm=False) == []


def test_sles9_is_import_only() -> None:
    """The sles9 profile claimed a host hasync cannot run on (Python 2.3, no JSON tools,
    DRBD 0.7 reading /etc/drbd.conf): now bootstrap refuses it on any host, saying why;
    check and export still read a SLES 9-era configuration with it."""
    [p] = problems("sles9", DEBIAN12)
    assert p.startswith("profile sles9 is import-only") and "Python >= 3.11" in p and "/etc/drbd.conf" in p
    plan = full_plan("sles9", "node1")
    assert plan[0]["step"] == "host" and plan[0]["action"] == "refuse"
    text = (ROOT / "profiles" / "cluster" / "example.toml").read_text().replace('profile = "debian12"', 'profile = "sles9"')
    cluster, report = config.check_text(text, "x.toml")
    assert cluster is not None and not report.errors


def test_host_step_refuses_before_anything_else() -> None:
    for profile in ("debian12", "rhel9", "sles15", "lab"):
        assert all(c["step"] != "host" for c in full_plan(profile, "node1")), profile  # their golden hosts pass
    assert json.loads(json.dumps(full_plan("sles9", "node2")))[0]["why"].endswith("docs/bootstrap.md)")


def test_tool_facts_parse_captured_output() -> None:
    assert F.parse_version(ok("lvm-version-2.03.16.txt"), "lvm") == "2.03.16"
    assert F.parse_version(ok("drbdadm-version-9.22-kernel-8.4.txt"), "drbdadm") == {"utils": "9.22.0", "kernel": "8.4.11"}
    assert F.parse_version({"exit": 127, "stdout": "", "stderr": "lvm: not found"}, "lvm") is None
    assert F.parse_wipefs_json(ok("wipefs-help-2.38.txt")) is True
    assert F.parse_wipefs_json({"exit": 0, "stdout": "Usage:\n wipefs [options] <device>\n -a, --all\n", "stderr": ""}) is False
    assert F.parse_wipefs_json({"exit": 127, "stdout": "", "stderr": ""}) is None
    assert ROCKY9 and ROCKY9["ID_LIKE"] == "rhel centos fedora" and host.os_matches(["rhel 9"], ROCKY9)
    assert host.version_tuple("2.03.21(2)-RHEL9") == (2, 3, 21)


def test_supported_table_errors_name_the_profile_file(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "profiles", pkg / "_data" / "profiles")
    bad = pkg / "_data" / "profiles" / "distro" / "debian12.toml"
    bad.write_text(bad.read_text().replace('tested = "vm"', 'tested = "yes"').replace('drbd_utils = "9.0"', 'drbd = "9.0"'))
    monkeypatch.setattr(resources, "_PKG", pkg)
    with pytest.raises(config.ConfigError) as e:
        config.load_profile("debian12")
    assert any(f"{bad}:" in i and "supported.tested: expected one of vm, lab, none, got 'yes'" in i for i in e.value.issues), e.value.issues
    assert any("supported.minimum.drbd: unknown tool" in i for i in e.value.issues), e.value.issues
