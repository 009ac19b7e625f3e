"""doctor on a node where Pacemaker runs the chain (issue 16: "hasync doctor works on such
a node, it knows the chain is Pacemaker's"): which facts say so, what it leaves out (the
daemon's operator markers and heartbeat key, a heartbeat script Pacemaker replaced by its
OCF agent), what it still checks, and hasync's daemon running there too as an error."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hasync import model
from hasync.bootstrap import doctor as D
from hasync.bootstrap import doctor_drbd
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


def pacemaker_cluster() -> model.Cluster:
    c = cluster()
    return replace(c, cluster=replace(c.cluster, manager="pacemaker"))


def test_under_pacemaker_doctor_says_so_and_leaves_out_what_only_hasync_makes_true():
    c, pr = pacemaker_cluster(), profile()
    # the same node, with the stale marker of hasync's daemon and no heartbeat key
    under_hasync = D.check_node(cluster(), pr, "node1", node(**maintenance_marker(node()), **HASYNC))
    assert found(under_hasync, "maintenance", "warning") and found(under_hasync, "auth-key")
    under_pcmk = D.check_node(c, pr, "node1", node(**maintenance_marker(node()), **PACEMAKER))
    [info] = found(under_pcmk, "chain-manager", "info")
    assert info.message.startswith('the chain is run by Pacemaker (cluster.toml: [cluster] manager = "pacemaker", '
                                   "pacemaker.service active, pacemaker.service enabled")
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


# ------------------------------------------------------------------ what Pacemaker says (crm_mon)


def test_a_node_running_pacemaker_that_cluster_toml_does_not_name_is_a_warning():
    f = D.check_node(cluster(), profile(), "node1", node(**PACEMAKER))
    [w] = found(f, "chain-manager", "warning")
    assert "`hasync bootstrap` would install and enable hasync-failover again" in w.message
    assert w.fix == 'set [cluster] manager = "pacemaker" in cluster.toml'
    assert not found(D.check_node(pacemaker_cluster(), profile(), "node1", node(**PACEMAKER)), "chain-manager", "warning")


def crm_mon(env_cib: Path) -> str:
    """The real crm_mon's XML of a CIB file (CIB_file: no cluster needed)."""
    return subprocess.run(["crm_mon", "-1", "--output-as=xml"], capture_output=True, text=True, check=True, timeout=60,
                          env={**os.environ, "CIB_file": str(env_cib)}).stdout


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Path:
    """The example config's export, both nodes up in crm_simulate: the live CIB of a
    healthy Pacemaker cluster (DRBD Promoted on node1, the group Started there)."""
    from .test_export_validate import ROOT, both_up, export
    if shutil.which("crm_simulate") is None:
        pytest.skip("needs pacemaker-cli-utils (apt-packages.txt)")
    tmp = tmp_path_factory.mktemp("pcmk")
    export(ROOT / "profiles" / "cluster" / "example.toml", tmp)
    return both_up(tmp / "cib.xml", tmp, ["drbd"])


def pcmk_findings(xml: str) -> list:
    return D.check_node(pacemaker_cluster(), profile(), "node1", node(**PACEMAKER, **{"pcmk.mon": b64(xml)}))


def test_a_healthy_pacemaker_cluster_says_where_drbd_is_promoted_and_the_group_runs(running):
    f = pcmk_findings(crm_mon(running))
    assert [x for x in f if x.level in ("error", "warning")] == []
    assert [x.message for x in found(f, "pacemaker-drbd", "ok")] == ["drbd-clone Promoted on node1"]
    assert [x.message for x in found(f, "pacemaker-group", "ok")] == ["group nfs-ha started on node1"]


def test_a_failed_action_is_named_with_its_crm_resource_cleanup(running, tmp_path):
    failed = tmp_path / "failed.xml"
    subprocess.run(["crm_simulate", "-x", str(running), "-S", "-O", str(failed), "-i", "fs_monitor_20000@node1=7"],
                   capture_output=True, check=True, timeout=60)
    [w] = found(pcmk_findings(crm_mon(failed)), "pacemaker-failed-action", "warning")
    assert w.message.startswith("failed action fs_monitor_20000 on node1 (")
    assert w.fix.startswith("crm_resource --cleanup --resource fs --node node1")


def test_no_promoted_drbd_and_a_stopped_group_are_errors_in_pacemakers_words(running):
    xml = crm_mon(running)
    stopped = re.sub(r'role="(Promoted|Started)"', 'role="Stopped"', xml.replace('role="Unpromoted"', 'role="Stopped"'))
    f = pcmk_findings(stopped)
    [drbd] = found(f, "pacemaker-drbd")
    assert "Promoted nowhere" in drbd.message and drbd.fix.startswith("crm_resource --why --resource drbd-clone")
    [group] = found(f, "pacemaker-group")
    assert "not started: the service is down" in group.message and "crm_resource --cleanup --resource nfs-ha" in group.fix
    twice = xml.replace('role="Unpromoted"', 'role="Promoted"')
    [two] = found(pcmk_findings(twice), "pacemaker-drbd")
    assert two.message == "drbd-clone is Promoted on node1 and node2: two writers of one disk"


def test_the_stonith_history_failed_fence_is_an_error_a_done_one_an_info(running):
    # crm_mon's fence_history element (api fence-event-2.15.rng): only a running fencer
    # has a history, a CIB file none, so the events are put in as the schema writes them
    xml = crm_mon(running)
    events = ('<fence_history status="0">'
              '<fence_event status="failed" delegate="node2" action="reboot" target="node1" client="pacemaker-controld.1234" '
              'origin="node2" completed="2026-12-07 09:10:00Z" exit-reason="No route to host"/>'
              '<fence_event status="success" delegate="node1" action="off" target="node2" client="stonith_admin.99" '
              'origin="node1" completed="2026-12-07 08:00:00Z"/></fence_history>')
    f = pcmk_findings(xml.replace("</pacemaker-result>", events + "</pacemaker-result>"))
    [e] = found(f, "pacemaker-fencing")
    assert e.message == ("fencing (reboot) of node1 by node2 failed at 2026-12-07 09:10:00Z: No route to host: "
                         "while it fails nothing moves")
    assert e.fix.startswith("stonith_admin --history node1") and "stonith_admin --cleanup --history node1" in e.fix
    [i] = found(f, "pacemaker-fencing", "info")
    assert i.message == "node2 was fenced (off) by node1 at 2026-12-07 08:00:00Z"


def test_an_unclean_node_and_maintenance_mode(running):
    xml = crm_mon(running).replace('maintenance-mode="false"', 'maintenance-mode="true"')
    xml = re.sub(r'(<node name="node2" [^>]*?)unclean="false"', r'\1unclean="true"', xml)
    f = pcmk_findings(xml)
    [m] = found(f, "pacemaker-maintenance", "warning")
    assert "crm_attribute --name maintenance-mode --update false" in m.fix
    [u] = found(f, "pacemaker-node")
    assert u.message.startswith("node2 is UNCLEAN") and u.fix.startswith("stonith_admin --history node2")


def test_configured_for_pacemaker_but_it_does_not_run_here():
    """crm_mon of this machine (Pacemaker installed, not running): no status, an error."""
    out = subprocess.run(["sh", "-c", "exec 2>/dev/null\n" + "\n".join(M.probe_lines())], capture_output=True, text=True,
                         timeout=60).stdout
    p = D.parse_probe(out)
    if M.manager(p).name == "pacemaker" or "pcmk.mon" not in p:
        pytest.skip("Pacemaker runs here, or crm_mon is not installed")
    f = D.check_node(pacemaker_cluster(), profile(), "node1", node(**{**HASYNC, **{k: v for k, v in p.items() if k.startswith("pcmk.")}}))
    [e] = found(f, "pacemaker")
    assert "crm_mon gave no cluster status here" in e.message and e.fix.startswith("systemctl start corosync pacemaker")


def test_the_split_brain_runbook_under_pacemaker_uses_pacemakers_commands():
    from .test_drbd_state import DATA, drbd_cluster, probe
    c = drbd_cluster()
    a = probe((DATA / "drbd9-status-standalone-primary.txt").read_text(), **PACEMAKER)
    b = probe((DATA / "drbd9-status-connecting-secondary.txt").read_text(), **PACEMAKER)
    [f] = doctor_drbd.check_pair(replace(c, cluster=replace(c.cluster, manager="pacemaker")), "node1", "node2", a, b)
    assert f.fix.startswith("keep the data of node1 (it is Primary")
    assert "hasync " not in f.fix  # no daemon verb: under Pacemaker there is no hasync daemon to ask
    for cmd in ("crm_attribute --name maintenance-mode --update true", "drbdadm connect --discard-my-data r0",
                "crm_resource --cleanup", "stonith_admin --history", "crm_mon -1"):
        assert cmd in f.fix, cmd
    # the node's facts alone are enough (cluster.toml not updated yet): the same runbook
    [same] = doctor_drbd.check_pair(c, "node1", "node2", a, b)
    assert same.fix == f.fix
    # under hasync: its own verbs
    [h] = doctor_drbd.check_pair(c, "node1", "node2", probe((DATA / "drbd9-status-standalone-primary.txt").read_text()),
                                 probe((DATA / "drbd9-status-connecting-secondary.txt").read_text()))
    assert "hasync maintenance on" in h.fix
