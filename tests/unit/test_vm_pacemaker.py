"""The VM tier's Pacemaker trial, its pure parts (issue 16): the trial's cluster.toml and
its export for the lab's addresses, the token, the lab's fence agent speaking the
fence-agents protocol, and the reading of crm_mon's answers. The trial itself is
tests/vm/test_pacemaker.py."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hasync.config import loads
from hasync.effects.run import ProcRunner
from hasync.export import fence
from hasync.export.bundle import make_bundle
from hasync.export.output import metadata_lookup
from hasync_lab.vm import pacemaker as P
from hasync_lab.vm.image_build import GUEST_DIR, PACKAGES
from hasync_lab.vm.seed import PUBLIC_NET, REPL_NET, SEED_SCRIPTS, cluster_toml

AGENT_PATH = GUEST_DIR / "fence_hasynclab"


def load_agent():
    loader = importlib.machinery.SourceFileLoader("fence_hasynclab", str(AGENT_PATH))
    spec = importlib.util.spec_from_loader("fence_hasynclab", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


A = load_agent()


def agent(*argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["python3", str(AGENT_PATH), *argv], input=stdin, capture_output=True, text=True, timeout=30)


# ------------------------------------------------------------------ the trial's config and its export


def trial_cluster():
    return loads(P.trial_toml(P.guests()), path="vm-lab/cluster.toml")


def test_the_trial_config_is_the_labs_with_the_chain_pacemakers():
    c = trial_cluster()
    assert c.cluster.manager == "pacemaker"
    assert c.fencing.command == P.PCMK_FENCE_COMMAND and c.fencing.mode == "required"
    lab = loads(cluster_toml(P.guests()), path="vm-lab/cluster.toml")  # the busybox lab's chain
    assert [r.id for r in c.resources] == [r.id for r in lab.resources]
    assert {(r.start_timeout, r.stop_timeout, r.monitor_timeout) for r in c.resources} == {(120.0, 120.0, 60.0)}
    assert c.fencing.timeout == 60.0
    assert all(g.mem_mib == P.NODE_MEM_MIB for g in P.guests() if g.role == "node")


def test_the_image_and_the_seed_carry_the_stack_and_the_agent():
    assert {"corosync", "pacemaker", "pacemaker-cli-utils"} <= set(PACKAGES)
    assert SEED_SCRIPTS["fence_hasynclab"] == 0o755
    assert "ln -sf \"$S/vm/fence_hasynclab\" /usr/sbin/fence_hasynclab" in (GUEST_DIR / "rc").read_text()


def lookup_with_the_lab_agent():
    """The host's agents' metadata (crm_resource), and the lab's agent's own answer to
    `-o metadata` (it is installed in the guests only)."""
    host = metadata_lookup(ProcRunner())
    if host is None:
        pytest.skip("needs pacemaker-cli-utils (apt-packages.txt)")
    mine = agent("-o", "metadata").stdout

    def lookup(name: str) -> str | None:
        return mine if name == "stonith:fence_hasynclab" else host(name)
    return lookup


def test_the_export_of_the_trial_config_fences_with_the_lab_agent_and_passes_its_metadata(tmp_path):
    b = make_bundle(trial_cluster(), profile=trial_cluster().profile, fmt="cib", lookup=lookup_with_the_lab_agent())
    assert "stonith:fence_hasynclab" in b.checked
    cib = ET.fromstring(b.documents["cib.xml"])
    for node in ("node1", "node2"):
        dev = cib.find(f".//primitive[@id='fence-{node}']")
        assert dev is not None and dev.get("type") == "fence_hasynclab"
        params = {nv.get("name"): nv.get("value") for nv in dev.iterfind("instance_attributes/nvpair")}
        assert params == {"plug": node, "pcmk_host_list": node}
    action = cib.find(".//nvpair[@name='stonith-action']")
    assert action is not None and action.get("value") == "off"
    assert cib.find(".//clone/primitive[@type='drbd']") is not None
    if shutil.which("crm_verify"):
        (tmp_path / "cib.xml").write_text(b.documents["cib.xml"])
        assert subprocess.run(["crm_verify", "--xml-file", str(tmp_path / "cib.xml")], capture_output=True).returncode == 0


def test_corosync_conf_for_the_labs_addresses_and_the_tokens():
    b = make_bundle(trial_cluster(), profile=None, fmt="corosync", lookup=None)
    conf = b.documents["corosync.conf"]
    for i, n in ((1, "node1"), (2, "node2")):
        block = re.search(rf"name: {n}\n\s+nodeid: {i}\n\s+ring0_addr: (\S+)\n\s+ring1_addr: (\S+)", conf)
        assert block is not None, conf
        assert block.groups() == (f"{REPL_NET}.{i}", f"{PUBLIC_NET}.{10 + i}")  # knet link 0: replication, 1: public
    assert "two_node: 1" in conf
    assert re.findall(r"^\s*token: (\d+)$", conf, re.M) == ["2700"]  # the lab's deadtime 6 s / 2.2
    for ms in P.TOKENS_MS:
        assert re.findall(r"^\s*token: (\d+)$", P.with_token(conf, ms), re.M) == [str(ms)]
        assert P.with_token(conf, ms).replace(f"token: {ms}", "token: 2700").count("\n") == conf.count("\n") + 1
    with pytest.raises(ValueError, match="one totem token line"):
        P.with_token("totem {\n}\n", 1000)


# ------------------------------------------------------------------ the lab's fence agent


def test_the_agents_metadata_is_what_the_export_and_pacemaker_read():
    p = agent(stdin="action=metadata\n")  # as Pacemaker asks
    assert p.returncode == 0
    root = ET.fromstring(p.stdout)
    assert root.get("name") == "fence_hasynclab"
    assert {a.get("name") for a in root.iterfind("actions/action")} >= {"on", "off", "reboot", "status", "monitor", "list", "metadata"}
    opts = fence.options_from_metadata(p.stdout)  # the export's reading of it
    assert (opts["-o"].param, opts["--plug"].param, opts["-n"].param) == ("action", "plug", "plug")
    assert agent("-o", "metadata").stdout == p.stdout  # as `hasync export` asks


@pytest.mark.parametrize("argv, stdin, want", [
    ((), "action=off\nplug=node1\n", {"action": "off", "plug": "node1"}),
    ((), "# Pacemaker\noption=reboot\nport=node2\nnodename=node2\nunknown_thing=1\n\n",
     {"action": "reboot", "plug": "node2", "nodename": "node2", "unknown_thing": "1"}),
    (("--action", "off", "--plug", "node1"), "", {"action": "off", "plug": "node1"}),
    (("-o", "status", "-nnode2", "-v"), "", {"action": "status", "plug": "node2", "verbose": "1"}),
    (("--action=reboot", "--plug=node1"), "ignored=1\n", {"action": "reboot", "plug": "node1"}),
])
def test_options_from_stdin_or_the_command_line(argv, stdin, want):
    assert A.options(list(argv), stdin) == want


@pytest.mark.parametrize("argv", [("--ip", "x"), ("--plug",), ("node1",)])
def test_a_bad_command_line_is_refused(argv):
    with pytest.raises(A.Usage):
        A.options(list(argv), "")
    assert agent(*argv).returncode == 1


class Switch:
    def __init__(self, answers: dict[str, tuple[int, str]]):
        self.answers, self.calls = answers, []

    def __call__(self, action: str, node: str) -> tuple[int, str]:
        self.calls.append((action, node))
        return self.answers.get(action, (1, "no such switch"))


def test_off_and_reboot_power_the_node_off_through_the_switch():
    s = Switch({"off": (0, "node1: off")})
    assert A.act({"action": "off", "plug": "node1"}, s)[:2] == (0, "Success: Powered OFF\n")
    rc, _, note = A.act({"action": "reboot", "plug": "node1"}, s)
    assert rc == 0 and "reboot = off" in note  # off done; the lab cannot power on (fencing.py: still a success)
    assert s.calls == [("off", "node1"), ("off", "node1")]
    assert A.act({"action": "off", "plug": "node1"}, Switch({"off": (1, "still answers")}))[0] == 1
    assert A.act({"action": "off", "nodename": "node2"}, s)[0] == 0 and s.calls[-1] == ("off", "node2")


def test_status_on_and_monitor_speak_the_fence_agents_exit_codes():
    assert A.act({"action": "status", "plug": "node1"}, Switch({"status": (0, "node1: on")}))[0] == 0
    assert A.act({"action": "status", "plug": "node1"}, Switch({"status": (0, "node1: off (no answer)")}))[0] == 2
    assert A.act({"action": "status", "plug": "node1"}, Switch({}))[0] == 1
    rc, _, err = A.act({"action": "on", "plug": "node1"}, Switch({}))
    assert rc == 1 and "hasync lab heal" in err
    assert A.act({"action": "monitor"}, Switch({"wire": (0, "")}))[0] == 0
    assert A.act({"action": "monitor"}, Switch({"wire": (1, "No such file")}))[0] == 1
    assert A.act({"action": "list"}, Switch({}))[0] == 0
    assert A.act({"action": "off"}, Switch({}))[0] == 1  # no node named
    assert A.act({"action": "explode", "plug": "node1"}, Switch({}))[0] == 1


def test_run_as_pacemaker_runs_it_without_the_labs_wire():
    """On the host (no ttyS2 wire, no switch): monitor and off fail, cleanly."""
    p = agent(stdin="action=monitor\n")
    assert p.returncode == 1 and "BMC wire" in p.stderr and "Traceback" not in p.stderr
    if not Path(A.SWITCH).exists():
        p = agent(stdin="action=off\nplug=node9\n")
        assert p.returncode != 0 and "Traceback" not in p.stderr or "No such file" in p.stderr


# ------------------------------------------------------------------ crm_mon's answers


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Path:
    from .test_export_validate import both_up
    if shutil.which("crm_simulate") is None:
        pytest.skip("needs pacemaker-cli-utils (apt-packages.txt)")
    tmp = tmp_path_factory.mktemp("trial")
    b = make_bundle(trial_cluster(), profile=trial_cluster().profile, fmt="cib", lookup=None)
    (tmp / "cib.xml").write_text(b.documents["cib.xml"])
    return both_up(tmp / "cib.xml", tmp, ["drbd"])


def crm_mon(cib: Path) -> str:
    return subprocess.run(["crm_mon", "-1", "--output-as=xml", "--fence-history=3", "--include=operations"],
                          capture_output=True, text=True, check=True, env={**os.environ, "CIB_file": str(cib)}).stdout


def test_the_view_of_the_trials_cluster_and_of_the_failover(running, tmp_path):
    v = P.view(crm_mon(running))
    assert v is not None
    assert (v.online, v.promoted, v.group_on, v.fenced, v.down) == (("node1", "node2"), ("node1",), ("node1",), (), ())
    failed = tmp_path / "failed.xml"
    subprocess.run(["crm_simulate", "-x", str(running), "-S", "-O", str(failed), "--node-fail", "node1"],
                   capture_output=True, check=True)
    after = crm_mon(failed)
    v2 = P.view(after)
    assert v2 is not None and v2.promoted == ("node2",) and v2.group_on == ("node2",)
    # the device aimed at node2 ran on node1 and cannot run on its own target: the rejoin
    # waits for it to start again before the next trial
    assert v2.down == ("fence-node2",), v2.down
    # the history's times: promote and every start after the crash, none before
    t = ET.fromstring(after).find(".//operation_history[@task='promote']")
    assert t is not None
    crash = P.epoch(t.get("last-rc-change", "")) or 0.0
    ph = P.phases(after, crash - 1)
    assert ph["promote_drbd_done_s"] == 1.0 and "start_vip_done_s" in ph
    assert P.phases(after, crash + 100) == {}
    assert P.view("not xml") is None and P.view("<pacemaker-result/>") is None


def test_a_fence_event_completes_the_breakdown():
    xml = ('<pacemaker-result><summary/><fence_history>'
           '<fence_event status="success" action="off" target="node1" delegate="node2" completed="2026-12-07 09:10:04Z"/>'
           '<fence_event status="failed" action="off" target="node1" delegate="node2" completed="2026-12-07 09:10:02Z"/>'
           '</fence_history></pacemaker-result>')
    crash = P.epoch("2026-12-07 09:10:00Z") or 0.0
    assert P.phases(xml, crash) == {"fence_done_s": 4.0}
    v = P.view(xml)
    assert v is not None and v.fenced == ("node1",)


# ------------------------------------------------------------------ the bench's peers


def test_a_peers_entry_has_the_issues_keys_and_the_median_of_its_runs():
    from hasync_lab.bench.vm_pacemaker import summary
    runs = [{"resumed_s": s, "lost_writes": 0, "stale_handles": 0, "phases": {"fence_done_s": f}}
            for s, f in ((14.2, 9.0), (12.0, 8.0), (19.5, 10.0))]
    e = summary(runs, "token 3000 ms", 3000)
    assert {"tool", "setting", "median_s", "min_s", "max_s", "trials", "lost_writes"} <= set(e)
    assert (e["tool"], e["setting"], e["median_s"], e["min_s"], e["max_s"], e["trials"]) == ("pacemaker", "token 3000 ms", 14.2, 12.0, 19.5, 3)
    assert e["breakdown"] == {"fence_done_s": 9.0}
    assert summary([], "token 1000 ms", 1000)["median_s"] is None


@pytest.mark.parametrize("argv, rc", [
    (["--peers", "pacemaker", "--tokens", "3000,x"], 2),
    (["--peers", "pacemaker", "--tokens", "50"], 2),
    (["--peers", "pacemaker", "--keep"], 2),
    (["--trials", "0"], 2),
])
def test_the_benchs_peer_options_refuse_bad_input(argv, rc, capsys):
    from hasync_lab.bench import vm_failover
    assert vm_failover.main(argv) == rc
    assert capsys.readouterr().err.strip()
    assert vm_failover.tokens("3000, 1000") == [3000, 1000]
