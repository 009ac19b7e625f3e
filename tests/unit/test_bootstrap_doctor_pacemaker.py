"""doctor on a node where Pacemaker runs the chain (issue 16: "hasync doctor works on such
a node, it knows the chain is Pacemaker's"): which facts say so, what it leaves out (the
daemon's operator markers and heartbeat key, a heartbeat script Pacemaker replaced by its
OCF agent), what it still checks, and hasync's daemon running there too as an error."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from hasync import model
from hasync.bootstrap import doctor as D
from hasync.bootstrap import doctor_manager as M

from .test_bootstrap_doctor import cluster, profile
from .test_bootstrap_doctor_field import found, node

PACEMAKER = {"unit.pacemaker.active": "active", "unit.pacemaker.enabled": "enabled", "unit.corosync.active": "active",
             "unit.corosync.enabled": "enabled", "pcmk.cib_file": "1", "pcmk.cib_answers": "1",
             "unit.hasync-failover.active": "inactive", "unit.hasync-failover.enabled": "disabled", "hasync.socket": "0"}
HASYNC = {"unit.pacemaker.active": "", "unit.pacemaker.enabled": "", "unit.corosync.active": "", "unit.corosync.enabled": "",
          "pcmk.cib_file": "0", "pcmk.cib_answers": "0", "unit.hasync-failover.active": "active",
          "unit.hasync-failover.enabled": "enabled", "hasync.socket": "1"}


@pytest.mark.parametrize("facts, who", [
    (PACEMAKER, "pacemaker"),
    (HASYNC, "hasync"),
    ({}, "hasync"),  # an old probe, or no systemd: nothing says Pacemaker
    # a configured cluster after a reboot, its units enabled, not started yet
    ({**HASYNC, "unit.pacemaker.enabled": "enabled", "pcmk.cib_file": "1"}, "pacemaker"),
    # Debian enables both units when the packages are installed: never configured, no CIB
    ({**HASYNC, "unit.pacemaker.enabled": "enabled", "unit.corosync.enabled": "enabled"}, "hasync"),
    ({**HASYNC, "unit.pacemaker.active": "active"}, "pacemaker"),
    ({**HASYNC, "pcmk.cib_answers": "1"}, "pacemaker"),  # no systemd, but the CIB answers
    ({**HASYNC, "unit.corosync.active": "active", "pcmk.cib_file": "1"}, "pacemaker"),
    ({**HASYNC, "unit.corosync.active": "active"}, "hasync"),  # corosync alone runs no resources
    ({**HASYNC, "pcmk.cib_file": "1"}, "hasync"),  # a CIB left by an old install, Pacemaker off
    ({**HASYNC, "unit.pacemaker.active": "inactive", "unit.pacemaker.enabled": "disabled"}, "hasync"),
    ({**HASYNC, "unit.pacemaker.enabled": "masked"}, "hasync"),
])
def test_who_runs_the_chain(facts, who):
    assert M.manager(facts).name == who


def maintenance_marker(p: dict[str, str]) -> dict[str, str]:
    now = float(p["clock"])
    return {**p, "oncall.maintenance": f"since {now - 6 * 3600:.0f} 2026-12-07T01:00:00Z", "authkey_mode": ""}


def test_under_pacemaker_doctor_says_so_and_leaves_out_what_only_hasync_makes_true():
    c, pr = cluster(), profile()
    # the same node, with the stale marker of hasync's daemon and no heartbeat key
    under_hasync = D.check_node(c, pr, "node1", node(**maintenance_marker(node()), **HASYNC))
    assert found(under_hasync, "maintenance", "warning") and found(under_hasync, "auth-key")
    under_pcmk = D.check_node(c, pr, "node1", node(**maintenance_marker(node()), **PACEMAKER))
    [info] = found(under_pcmk, "chain-manager", "info")
    assert info.message.startswith("the chain is run by Pacemaker (pacemaker.service active, pacemaker.service enabled")
    assert not [f for f in under_pcmk if f.check in ("maintenance", "stopped", "auth-key")]
    assert [f for f in under_pcmk if f.level in ("error", "warning")] == []
    # what holds under any manager is still checked: storage, NFS state, LVM filter, NFS at boot
    for check in ("lvm-filter", "nfs-state-link", "nfs-grace", "nfs-at-boot", "disk", "drbd-state", "chain-programs"):
        assert [f for f in under_pcmk if f.check == check] == [f for f in under_hasync if f.check == check], check


def test_under_pacemaker_the_checks_that_hold_still_find_their_pitfalls():
    p = node(**PACEMAKER, **{"nfs_link": "", "nfs_kind": "dir", "enabled.nfs-server": "enabled",
                             "lvm.global_filter": '["a|.*|"]'})
    f = D.check_node(cluster(), profile(), "node2", p)
    for check in ("nfs-state-link", "nfs-at-boot", "lvm-filter"):
        assert found(f, check), check


def test_hasyncs_daemon_running_next_to_pacemaker_is_an_error():
    for sign in ({"hasync.socket": "1"}, {"unit.hasync-failover.active": "active"}, {"unit.hasync-failover.enabled": "enabled"}):
        f = D.check_node(cluster(), profile(), "node1", node(**{**PACEMAKER, **sign}))
        [e] = found(f, "chain-manager")
        assert "two cluster managers would each start the chain" in e.message
        assert e.fix == "systemctl disable --now hasync-failover"
    assert not found(D.check_node(cluster(), profile(), "node1", node(**HASYNC)), "chain-manager", "info")


def test_a_heartbeat_script_pacemaker_replaced_is_no_error_there_an_ocf_agent_still_is():
    c = replace(cluster(), resources=(model.Resource("ip", "heartbeat", "IPaddr", args=("192.0.2.10",)),
                                      model.Resource("fs", "ocf", "heartbeat:Filesystem",
                                                     params={"device": "/dev/drbd0", "directory": "/srv/ha", "fstype": "ext4"})))
    p = {"prog.0.0": "", "prog.1.0": ""}
    under_hasync = D.check_node(c, profile(), "node1", node(**p, **HASYNC))
    assert {f.message.split()[1] for f in found(under_hasync, "chain-programs")} == {"'ip'", "'fs'"}
    under_pcmk = D.check_node(c, profile(), "node1", node(**p, **PACEMAKER))
    [fs] = found(under_pcmk, "chain-programs")
    assert fs.message.startswith("resource 'fs' ")
    [ip] = found(under_pcmk, "chain-programs", "info")
    assert ip.message.startswith("resource 'ip' ") and "Pacemaker runs its OCF equivalent" in ip.message


def test_the_probe_lines_run_in_sh_here():
    """On this machine (no Pacemaker running, pacemaker-cli-utils maybe installed): the
    probe answers every key and says hasync."""
    out = subprocess.run(["sh", "-c", "exec 2>/dev/null\n" + "\n".join(M.probe_lines())], capture_output=True, text=True,
                         timeout=60).stdout
    p = D.parse_probe(out)
    assert {"pcmk.cib_file", "pcmk.cib_answers", "hasync.socket", "unit.pacemaker.active"} <= set(p)
    # this machine has pacemaker and corosync installed (enabled, never configured): hasync
    assert M.manager(p).name == ("pacemaker" if p["pcmk.cib_answers"] == "1" or p["pcmk.cib_file"] == "1" else "hasync")
