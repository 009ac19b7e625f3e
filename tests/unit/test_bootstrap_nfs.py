"""NFS v4 state follows the chain (issue 15): [nfs] grace_time/lease_time read from the
config, written to nfs.conf where nfs-utils reads them, the v4 client records kept on the
replicated disk, and the example chain pins the server scope and notifies after the VIP
and the exports."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hasync import config

from .test_bootstrap_steps import DATA, ROOT, run_case

EXAMPLE = ROOT / "profiles" / "cluster" / "example.toml"


def with_nfs(extra: str) -> tuple:
    text = EXAMPLE.read_text()
    return config.check_text(text.replace('grace_time = "20s"', "#").replace('lease_time = "20s"', "#").replace("[nfs]\n", "[nfs]\n" + extra + "\n"), "x.toml")


def test_grace_and_lease_from_the_config() -> None:
    c, rep = with_nfs("")
    assert c is not None and (c.nfs.grace_time, c.nfs.lease_time) == (20.0, 20.0)  # the defaults
    c, rep = with_nfs('grace_time = "45s"\nlease_time = "30s"')
    assert c is not None and (c.nfs.grace_time, c.nfs.lease_time) == (45.0, 30.0) and not [w for w in rep.warnings if "nfs." in w]
    c, rep = with_nfs('grace_time = "1m"\nlease_time = "90s"')
    assert c is not None
    [w] = [w for w in rep.warnings if "grace_time" in w]
    assert w.startswith("x.toml:") and "shorter than lease_time (90s)" in w
    for bad, words in (('grace_time = "5s"', "nfs.grace_time: expected whole seconds from 10s to 3600s"),
                       ('lease_time = "2h"', "nfs.lease_time: expected whole seconds from 10s to 3600s"),
                       ('lease_time = "12500ms"', "got 12500ms"),
                       ("grace_time = 30", 'like "30s"')):
        c, rep = with_nfs(bad)
        assert c is None and any(words in e for e in rep.errors), (bad, rep.errors)
        assert not [w for w in rep.warnings if "shorter than" in w]  # no cascade from a bad value


def _nfsconf() -> str | None:
    """nfs-utils' own nfs.conf reader: installed, else from the VM tier's cached Debian
    package (hasync lab's VM image cache), else None."""
    return shutil.which("nfsconf") or next(iter(glob.glob("/var/cache/hasync/vm/debs/nfs-common_*.deb")), None)


@pytest.mark.skipif(_nfsconf() is None or shutil.which("dpkg-deb") is None, reason="needs nfs-utils' nfsconf (nfs-common)")
def test_nfs_utils_reads_what_bootstrap_writes(tmp_path: Path) -> None:
    """nfsconf(8) -- the parser rpc.nfsd and nfsdcld use -- reads grace-time, lease-time
    and nfsdcld's storagedir from the nfs.conf the nfs-v4 step writes."""
    tool = _nfsconf() or ""
    if tool.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", tool, str(tmp_path / "pkg")], check=True)
        tool = str(tmp_path / "pkg" / "usr" / "sbin" / "nfsconf")
    for name in ("nfs-v4-configured-times", "nfs-v4-storagedir-off-the-disk"):
        _, _, [change] = run_case(json.loads((DATA / "steps" / f"{name}.json").read_text()))
        conf = tmp_path / f"{name}.conf"
        conf.write_text(change.data or "")

        def get(section: str, key: str, conf: Path = conf) -> str:
            return subprocess.run([tool, "--file", str(conf), "--get", section, key], capture_output=True, text=True).stdout.strip()

        want = {"nfs-v4-configured-times": ("45", "30"), "nfs-v4-storagedir-off-the-disk": ("20", "20")}[name]
        assert (get("nfsd", "grace-time"), get("nfsd", "lease-time")) == want
        if name == "nfs-v4-storagedir-off-the-disk":
            assert get("nfsdcld", "storagedir") == "/var/lib/nfs/nfsdcld"


def test_example_chain_pins_the_scope_and_notifies_after_the_vip_and_the_exports() -> None:
    """issue 15: the server scope is the same on both nodes (the nfsserver agent's
    nfs_server_scope) and `sm-notify -f -v VIP` runs after the exports and the VIP are up."""
    c = config.load(str(EXAMPLE))
    ids = [r.id for r in c.resources]
    by = {r.id: r for r in c.resources}
    vip = c.nfs.vip.split("/")[0]
    assert by["nfs"].params["nfs_server_scope"] == vip and by["nfs"].params["nfs_no_notify"] == "true"
    assert by["notify"].agent == "heartbeat:nfsnotify" and by["notify"].params["source_host"] == vip
    assert ids.index("notify") > max(ids.index("vip"), ids.index("exports"))


# --------------------------------------------------------------------------- statd's lists (issue 15)

NFSNOTIFY = Path("/usr/lib/ocf/resource.d/heartbeat/nfsnotify")


def _nfs_common(tmp_path: Path) -> Path:
    """Debian 12's nfs-common unpacked (files and maintainer scripts) under *tmp_path*."""
    deb = _nfsconf() or ""
    if not deb.endswith(".deb"):
        pytest.skip("needs Debian's nfs-common package (the VM tier's cache)")
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path / "pkg")], check=True)
    subprocess.run(["dpkg-deb", "-e", deb, str(tmp_path / "pkg" / "DEBIAN")], check=True)
    return tmp_path / "pkg"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_debian12_profile_says_where_debians_statd_keeps_its_lists(tmp_path: Path) -> None:
    """The debian12 profile's statd facts are the package's: nfs-common's postinst makes
    /var/lib/nfs/sm and sm.bak the statd user's, and nfs-utils' default state directory is
    /var/lib/nfs (statd(8)), which sm-notify takes from the same nfs.conf key (sm-notify(8))."""
    pkg = _nfs_common(tmp_path)
    prof = config.load_profile("debian12")
    assert prof.paths["statd_state"] == "/var/lib/nfs" and prof.options["statd_user"] == "statd"
    assert "chown statd: /var/lib/nfs/sm \\\n            /var/lib/nfs/sm.bak" in (pkg / "DEBIAN" / "postinst").read_text()

    def man(page: str) -> str:
        """The page's words without troff's font macros (.B word, .I word, .BR word ,)."""
        src = subprocess.run(["zcat", str(pkg / "usr/share/man/man8" / f"{page}.8.gz")], capture_output=True, text=True, check=True).stdout
        words = [line.split(" ", 1)[1].replace('"', "") if line.startswith((".B ", ".I ", ".BR ", ".IR ")) else line
                 for line in src.splitlines() if not line.startswith(".") or line.startswith((".B ", ".I ", ".BR ", ".IR "))]
        return " ".join(" ".join(words).split())

    assert "If this option is not specified, rpc.statd uses /var/lib/nfs by default" in man("statd")
    assert "The value recognized in the [statd] section is state-directory-path" in man("sm-notify")


@pytest.mark.skipif(not NFSNOTIFY.exists(), reason="needs resource-agents")
def test_the_nfsnotify_agent_reads_where_bootstrap_points_statd() -> None:
    """resource-agents' nfsnotify hard-codes the directory it copies and hands to
    `sm-notify -P`: bootstrap's nfs.conf value must be that one."""
    from hasync.bootstrap import nfsstate

    assert f'STATD_PATH="{nfsstate.AGENTS_STATD}"' in NFSNOTIFY.read_text()


@pytest.mark.skipif(_nfsconf() is None or shutil.which("dpkg-deb") is None, reason="needs nfs-utils' nfsconf (nfs-common)")
def test_nfs_utils_reads_the_statd_directory_bootstrap_writes(tmp_path: Path) -> None:
    """nfsconf(8) reads [statd] state-directory-path from the nfs.conf the nfs-statd step
    writes into Debian's own nfs.conf (where the key is shipped commented out)."""
    tool = _nfsconf() or ""
    if tool.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", tool, str(tmp_path / "pkg")], check=True)
        tool = str(tmp_path / "pkg" / "usr" / "sbin" / "nfsconf")
    _, _, changes = run_case(json.loads((DATA / "steps" / "nfs-statd-first-node.json").read_text()))
    [change] = [c for c in changes if c.action == "write"]
    conf = tmp_path / "nfs.conf"
    conf.write_text(change.data or "")
    got = subprocess.run([tool, "--file", str(conf), "--get", "statd", "state-directory-path"], capture_output=True, text=True)
    assert got.stdout.strip() == "/var/lib/nfs/statd", got
