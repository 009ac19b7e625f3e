"""`make deb`: the Debian package is built with dpkg-deb, holds the product (never the lab
harness) with its units, man page and completion, unpacks with dpkg into a throwaway
root, runs from there, and its dependencies resolve in Debian's archive (apt-get's
simulation: nothing is installed on this host)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hasync import __version__
from hasync.cli import manpage, reference

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb (Debian's dpkg) is not installed")


def _build_module():
    spec = importlib.util.spec_from_file_location("hasync_build_deb", REPO / "packaging/deb/build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return _build_module().build(tmp_path_factory.mktemp("dist"))


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def fields(deb: Path) -> dict[str, str]:
    text = run("dpkg-deb", "-f", str(deb)).stdout
    return dict(re.findall(r"^(\S+): (.*)$", text, re.M))


def contents(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode, owner) from `dpkg-deb -c`."""
    out = {}
    for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines():
        mode, owner, *_, path = line.split(None, 5)
        out[path.split(" -> ")[0].removeprefix(".")] = (mode, owner)
    return out


def test_control_fields(deb):
    f = fields(deb)
    assert deb.name == f"hasync_{__version__}_all.deb"
    assert (f["Package"], f["Version"], f["Architecture"]) == ("hasync", __version__, "all")
    depends = [d.split()[0] for d in f["Depends"].split(", ")]
    assert {"python3", "python3-rich", "python3-watchdog", "unison", "openssh-client"} <= set(depends)
    # python 3.11's tomllib stands in for tomli; sh is the harness's
    assert not {"python3-tomli", "python3-sh"} & set(depends)
    assert "drbd-utils" in f["Recommends"] and "resource-agents" in f["Recommends"]
    info = run("dpkg-deb", "-I", str(deb)).stdout
    assert all(script in info for script in ("postinst", "prerm", "postrm", "md5sums"))


def test_contents(deb):
    files = contents(deb)
    py = "/usr/lib/python3/dist-packages"
    expected = ["/usr/bin/hasync", "/lib/systemd/system/hasync-failover.service",
                "/lib/systemd/system/hasync-watch.service", "/usr/share/man/man8/hasync.8.gz",
                "/usr/share/bash-completion/completions/hasync", "/usr/share/doc/hasync/copyright",
                "/usr/share/doc/hasync/examples/example.toml", f"{py}/hasync/cli/__init__.py",
                f"{py}/hasync/_data/profiles/distro/debian12.toml", f"{py}/hasync/_data/bootstrap/drbd-fence-peer",
                f"{py}/hasync-{__version__}.dist-info/METADATA"]
    assert not [p for p in expected if p not in files]
    assert files["/usr/bin/hasync"] == ("-rwxr-xr-x", "root/root")
    assert files[f"{py}/hasync/_data/bootstrap/drbd-fence-peer"][0] == "-rwxr-xr-x"
    assert all(owner == "root/root" for _, owner in files.values())
    assert not [p for p in files if "hasync_lab" in p or "__pycache__" in p or p.endswith(".pyc")]
    # every module of the product is in it
    modules = {str(p.relative_to(REPO)) for p in (REPO / "hasync").rglob("*.py") if "__pycache__" not in p.parts}
    assert not [m for m in modules if f"{py}/{m}" not in files]


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory) -> Path:
    """The package unpacked by dpkg into a root of its own (its own dpkg database):
    nothing is installed on this host. Falls back to dpkg-deb -x without root."""
    root = tmp_path_factory.mktemp("root")
    if os.geteuid() == 0:
        admin = root / "var/lib/dpkg"
        for d in ("info", "updates", "triggers"):
            (admin / d).mkdir(parents=True)
        (admin / "status").touch()
        r = run("dpkg", f"--root={root}", "--force-depends", "--unpack", str(deb))
        assert r.returncode == 0, r.stderr
        listed = run("dpkg", f"--root={root}", "-L", "hasync").stdout.split()
        assert "/usr/bin/hasync" in listed
    else:
        run("dpkg-deb", "-x", str(deb), str(root))
    return root


def in_package(unpacked: Path, *argv: str) -> subprocess.CompletedProcess:
    """The package's /usr/bin/hasync, importing hasync from the package only."""
    env = {**os.environ, "PYTHONPATH": str(unpacked / "usr/lib/python3/dist-packages"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HASYNC_CONFIG", None)
    return run(sys.executable, str(unpacked / "usr/bin/hasync"), *argv, env=env, cwd=unpacked)


def test_the_package_runs_from_its_own_files(unpacked):
    env = {**os.environ, "PYTHONPATH": str(unpacked / "usr/lib/python3/dist-packages")}
    where = run(sys.executable, "-c", "import hasync, hasync.resources as r; print(hasync.__file__); "
                "print(r.data_dir('profiles'))", env=env, cwd=unpacked).stdout.split()
    assert all(w.startswith(str(unpacked)) for w in where), where
    assert in_package(unpacked, "--version").stdout.strip() == f"hasync {__version__}"
    example = unpacked / "usr/share/doc/hasync/examples/example.toml"
    r = in_package(unpacked, "check", "-q", str(example))
    assert r.returncode == 0, r.stderr
    r = in_package(unpacked, "completion", "bash")
    assert r.returncode == 0 and "complete -F _hasync hasync" in r.stdout


def test_the_man_page_lists_every_command_and_option(unpacked):
    page = gzip.decompress((unpacked / "usr/share/man/man8/hasync.8.gz").read_bytes()).decode()
    for c in reference.product_commands()[1:]:
        assert f'.SS "{" ".join(c.words)}"' in page
        for flag in c.flags - {"-h", "--help"}:
            assert manpage.escape(flag) in page, (c.words, flag)
    if shutil.which("groff"):
        r = run("groff", "-man", "-ww", "-z", "-Tutf8", input=page)
        assert r.returncode == 0 and not r.stderr, r.stderr


def test_its_dependencies_resolve_in_debians_archive(deb):
    """`apt-get -s install ./hasync.deb`: apt's simulation, which installs nothing."""
    if not shutil.which("apt-get") or "Candidate: (none)" in run("apt-cache", "policy", "python3-rich").stdout \
            or not run("apt-cache", "policy", "python3-rich").stdout:
        pytest.skip("no Debian archive index here (apt-get update)")
    r = run("apt-get", "-s", "-q", "install", str(deb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^Inst hasync ", r.stdout, re.M)
    assert re.search(r"^Inst python3-watchdog ", r.stdout, re.M) or "python3-watchdog is already" in r.stdout


def test_lintian_if_installed(deb):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed")
    r = run("lintian", "--no-tag-display-limit", str(deb))
    assert not [line for line in r.stdout.splitlines() if line.startswith("E:")], r.stdout


def test_the_units_it_ships_are_the_ones_bootstrap_would_write(deb, tmp_path):
    """Bootstrap enables a unit the package installed only when its text is the very text
    it would write (hasync.bootstrap.steps_files._shipped); else it writes a copy to
    /etc/systemd/system, which shadows the package's."""
    from hasync.bootstrap.steps_files import PACKAGED_UNIT_DIRS
    from hasync.bootstrap.wanted import load_units

    run("dpkg-deb", "-x", str(deb), str(tmp_path))
    assert "/lib/systemd/system" in PACKAGED_UNIT_DIRS
    for name, text in load_units("systemd").items():
        assert (tmp_path / "lib/systemd/system" / name).read_text() == text, name


def test_the_vm_field_run_reads_the_version_and_depends_as_dpkg_has_them(deb):
    """hasync_lab.vm.package (the field run's install, the image's package list check)."""
    from hasync_lab.vm import package

    assert package.deb_field(deb, "Version") == __version__
    names = package.depends_names(package.deb_field(deb, "Depends"))
    assert names == [("python3",), ("python3-rich",), ("python3-watchdog",), ("unison",), ("openssh-client",),
                     ("iproute2",)]
    assert package.build_deb(deb.parent / "again").name == deb.name  # `make deb`'s script, as the field run calls it


# Debian 12's versions of what the package depends on with a version (the image has them)
BOOKWORM = {"python3": "3.11.2-1+b1", "python3-rich": "13.3.1-1", "python3-watchdog": "2.2.1-1"}


@pytest.mark.parametrize("gone", ["", "python3-watchdog", "nfs-kernel-server"])
def test_apt_installs_it_offline_from_the_vm_images_packages_only(deb, tmp_path, gone):
    """The VM field run's install (hasync_lab.vm.package.apt_install_argv) simulated by
    apt against a dpkg database of the image's package list (stand-ins at Debian 12's
    versions) and no package lists, as in the guests: it installs hasync alone, skipping
    the Recommends it cannot find (fence-agents); a package the image lacks fails it."""
    from hasync_lab.vm import image_build, package

    if not shutil.which("apt-get"):
        pytest.skip("apt-get is not installed")
    status = tmp_path / "status"
    status.write_text("\n".join(
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\nMaintainer: x <x@x>\n"
        f"Architecture: all\nVersion: {BOOKWORM.get(name, '1.0-1')}\nDescription: stand-in\n"
        for name in image_build.PACKAGES if name != gone))
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    apt, sub, *rest = package.apt_install_argv(deb.name)
    r = run(apt, "-s", "-o", f"Dir::State::status={status}", "-o", f"Dir::State::Lists={tmp_path / 'lists'}",
            "-o", f"Dir::State::extended_states={tmp_path / 'extended_states'}",
            "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",  # no cache of this database
            sub, *rest, cwd=deb.parent)
    if gone:
        assert r.returncode != 0 and gone in r.stdout + r.stderr, r.stdout + r.stderr
        return
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.findall(r"^Inst (\S+)", r.stdout, re.M) == ["hasync"]
    assert "fence-agents" in r.stdout  # listed as recommended, not installed
