"""The exported CIB checked by Pacemaker's own tools, offline (Debian's pacemaker-cli-utils,
crmsh, pcs): crm_verify accepts it, crm_simulate shows the fence, the promotion and the
moves a node failure should cause, and the crmsh and pcs forms build the same CIB."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hasync import cli, config

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "export"
EXAMPLES = sorted((ROOT / "profiles" / "cluster").glob("*.toml"))

pytestmark = pytest.mark.skipif(shutil.which("crm_simulate") is None, reason="needs pacemaker-cli-utils (apt-packages.txt)")


def run(argv, *, env=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def export(config_path: Path, out: Path, fmt: str = "cib") -> Path:
    assert cli.main(["-c", str(config_path), "export", "pacemaker", "--format", fmt, "--out", str(out)]) == 0
    return out


def imported_field_notes(tmp_path: Path, haresources: str = "field-notes.haresources") -> Path:
    """The field notes' setup through `hasync haresources import`, node addresses filled
    in where the import leaves `check:` placeholders."""
    p = run([sys.executable, "-m", "hasync", "haresources", "import", str(DATA / haresources),
             "--ha-cf", str(DATA / "field-notes.ha.cf")])
    text = p.stdout.replace('address = "0.0.0.0"', 'address = "10.0.0.1"', 1).replace('address = "0.0.0.0"', 'address = "10.0.0.2"', 1)
    f = tmp_path / "imported.toml"
    f.write_text(text)
    return f


# two [[group]] tables, each with its own DRBD (a promotable clone), VG, filesystem and
# address, one preferred on each node (the bootstrap's two-group config, [group.storage])
TWO_GROUPS_TOML = Path(__file__).parent / "data" / "bootstrap" / "groups" / "cluster.toml"
CONFIGS = [pytest.param(p, id=p.name) for p in EXAMPLES] + [pytest.param("field-notes", id="field-notes-haresources"),
                                                              pytest.param("two-groups", id="two-groups-haresources"),
                                                              pytest.param(TWO_GROUPS_TOML, id="two-groups-toml")]


def config_file(which, tmp_path: Path) -> Path:
    if which == "two-groups":  # heartbeat v1 active/active: a group per node (issue 17)
        return imported_field_notes(tmp_path, "two-groups.haresources")
    return imported_field_notes(tmp_path) if which == "field-notes" else which


# ------------------------------------------------------------------ crm_verify


@pytest.mark.parametrize("which", CONFIGS)
def test_crm_verify_accepts_the_exported_cib(which, tmp_path):
    cib = export(config_file(which, tmp_path), tmp_path / "out") / "cib.xml"
    p = run(["crm_verify", "-V", "--xml-file", str(cib)], check=False)
    assert p.returncode == 0, p.stderr  # warnings would be 78
    assert "<status" not in cib.read_text()


def test_crm_verify_fails_a_broken_cib_so_the_check_above_can_fail(tmp_path):
    cib = export(EXAMPLES[0], tmp_path / "out") / "cib.xml"
    broken = tmp_path / "broken.xml"
    broken.write_text(cib.read_text().replace('with-rsc="drbd-clone"', 'with-rsc="no-such-clone"'))
    assert run(["crm_verify", "--xml-file", str(broken)], check=False).returncode != 0


def test_the_field_notes_line_as_printed_names_the_missing_address_and_writes_nothing(tmp_path, capsys):
    f = imported_field_notes(tmp_path, "field-notes-as-printed.haresources")
    rc = cli.main(["-c", str(f), "export", "pacemaker", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "resource 'ipaddr' (heartbeat IPaddr): no Pacemaker equivalent" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ crm_simulate


@dataclass
class Step:
    transition: list[tuple[str, ...]]  # ("fence", target, op) / (op, resource, node), in order
    status: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # resource -> [(role, node)]

    def index(self, *item: str) -> int:
        return self.transition.index(item)

    def where(self, rid: str, role: str = "Started") -> list[str]:
        return sorted(n for r, n in self.status.get(rid, []) if r == role)


class Sim:
    """crm_simulate on a copy of the exported CIB, one step after the other (-O feeds the
    next step). The DRBD agent's promotion score is what `crm_master -l reboot -v 10000`
    writes when the disk is UpToDate; the simulation runs no agent, so it is set here."""

    def __init__(self, cib: Path, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.current = tmp / "sim0.xml"
        self.current.write_text(cib.read_text().replace("</configuration>", "</configuration>\n  <status/>"))

    def step(self, *args: str) -> Step:
        self.n += 1
        nxt = self.tmp / f"sim{self.n}.xml"
        p = run(["crm_simulate", "-x", str(self.current), "-S", "-O", str(nxt), "--output-as=xml", *args])
        self.current = nxt
        return parse_simulation(p.stdout)

    def rebooted(self, node: str) -> None:
        """The node crashed and booted again: it runs nothing. Fencing clears its history in
        the simulation; without fencing crm_simulate keeps the resources it ran when it
        failed, which the real cluster erases when the rebooted node joins."""
        run(["cibadmin", "--delete", "--scope", "status", "--xpath", f"//node_state[@uname='{node}']/lrm"],
            env={"CIB_file": str(self.current)}, check=False)

    def uptodate(self, drbd_ids: list[str], *nodes: str) -> None:
        for rid in drbd_ids:
            for node in nodes:
                run(["crm_attribute", "--node", node, "--name", f"master-{rid}", "--update", "10000", "--lifetime", "reboot"],
                    env={"CIB_file": str(self.current)})


def both_up(cib: Path, tmp: Path, drbd_ids: list[str]) -> Path:
    """The live CIB (a file) of *cib*'s cluster with both nodes up and settled: DRBD
    promoted where the group prefers, the group started there."""
    sim = Sim(cib, tmp)
    sim.step("--quorum", "1", "--node-up", "node1", "--node-up", "node2")
    sim.uptodate(drbd_ids, "node1", "node2")
    sim.step()
    return sim.current


def parse_simulation(xml: str) -> Step:
    root = ET.fromstring(xml)
    transition: list[tuple[str, ...]] = []
    for a in root.find("transition") or []:
        if a.tag == "fencing_action":
            transition.append(("fence", a.get("target", ""), a.get("op", "")))
        elif a.tag == "rsc_action":
            transition.append((a.get("op", ""), a.get("resource", ""), a.get("node", "")))
    status: dict[str, list[tuple[str, str]]] = {}
    for r in root.iterfind("revised_cluster_status/resources//resource"):
        for n in r.iterfind("node"):
            status.setdefault(r.get("id", ""), []).append((r.get("role", ""), n.get("name", "")))
    return Step(transition, status)


@dataclass
class CibGroup:
    """One exported resource group: its members in order, its DRBD clones' primitives and
    the node its location constraint prefers."""

    members: list[str]
    drbd: list[str]
    home: str


def cib_groups(root: ET.Element, default_home: str) -> list[CibGroup]:
    clone_prim = {c.get("id", ""): c.find("primitive").get("id", "") for c in root.iterfind(".//clone")}  # type: ignore[union-attr]
    out = []
    for g in root.iterfind(".//resources/group"):
        gid = g.get("id", "")
        clones = [c.get("with-rsc", "") for c in root.iterfind(".//rsc_colocation") if c.get("rsc") == gid]
        home = next((x.get("node", "") for x in root.iterfind(".//rsc_location") if x.get("rsc") == gid), default_home)
        out.append(CibGroup([p.get("id", "") for p in g.iterfind("primitive")], [clone_prim[c] for c in clones if c in clone_prim], home))
    return out


def scenario(cfg: config.model.Cluster, cib: Path, tmp: Path, *, expect_failback: bool, victim: str = ""):
    """Both nodes up -> each group on its preferred node; the preferred node of the first
    group (or *victim*) fails -> fenced, DRBD promoted on the survivor, each of its groups
    started there in order while the survivor's own groups never stop; it returns ->
    failback or not."""
    names = [n.name for n in cfg.nodes]
    active = victim or cfg.cluster.preferred_node or names[0]
    survivor = next(n for n in names if n != active)
    root = ET.parse(cib).getroot()
    groups = cib_groups(root, active)
    drbd = [p.get("id", "") for p in root.iterfind(".//clone/primitive")]
    fencing = root.find(".//nvpair[@name='stonith-enabled']").get("value") == "true"
    action = next((x.get("value") for x in root.iterfind(".//nvpair[@name='stonith-action']")), "reboot")
    moving = [g for g in groups if g.home == active]
    staying = [g for g in groups if g.home != active]
    assert moving

    sim = Sim(cib, tmp)
    sim.step("--quorum", "1", "--node-up", names[0], "--node-up", names[1])
    sim.uptodate(drbd, *names)
    up = sim.step()
    for g in groups:
        for rid in g.drbd:
            assert up.where(rid, "Promoted") == [g.home]
            assert ("promote", rid, g.home) in up.transition
        for rid in g.members:
            assert up.where(rid) == [g.home], rid

    failed = sim.step("--node-fail", active)
    fences = [t for t in failed.transition if t[0] == "fence"]
    assert fences == ([("fence", active, action)] if fencing else [])
    for g in moving:
        starts = [failed.index("start", rid, survivor) for rid in g.members]
        assert starts == sorted(starts)  # the chain's order
        for rid in g.drbd:
            promote = failed.index("promote", rid, survivor)
            assert all(promote < s for s in starts)  # the group waits for the promotion
            if fencing:
                assert failed.index("fence", active, action) < promote  # nothing before the fence
            assert failed.where(rid, "Promoted") == [survivor]
        for rid in g.members:
            assert failed.where(rid) == [survivor]
    for g in staying:  # the survivor's own group keeps running: nothing of it moves
        for rid in g.members + g.drbd:
            assert not [t for t in failed.transition if t[1] == rid and t[0] in ("stop", "start", "demote", "promote")], rid
            assert failed.where(rid, "Promoted" if rid in g.drbd else "Started") == [survivor]

    sim.rebooted(active)
    sim.step("--node-up", active)
    sim.uptodate(drbd, active)
    back = sim.step()
    home = active if expect_failback else survivor
    for g in moving:
        for rid in g.members:
            assert back.where(rid) == [home], rid
        for rid in g.drbd:
            assert back.where(rid, "Promoted") == [home]
    moved = [t for t in back.transition if t[0] in ("start", "stop", "promote", "demote")]
    assert bool(moved) == expect_failback
    for g in staying:
        for rid in g.members:
            assert back.where(rid) == [survivor], rid


@pytest.mark.parametrize("which", CONFIGS)
def test_crm_simulate_node_failure_fences_promotes_and_moves_the_group(which, tmp_path):
    path = config_file(which, tmp_path)
    cfg = config.load(path)
    cib = export(path, tmp_path / "out") / "cib.xml"
    scenario(cfg, cib, tmp_path, expect_failback=cfg.heartbeat.auto_failback)


@pytest.mark.parametrize("victim", ["alpha", "beta"])
def test_crm_simulate_two_groups_either_node_fails_its_group_moves_the_other_stays(victim, tmp_path):
    """Each group is its own group, promotable clone and constraints: whichever node fails,
    only its own group (and that group's DRBD clone) moves; the survivor's never stops."""
    cfg = config.load(TWO_GROUPS_TOML)
    cib = export(TWO_GROUPS_TOML, tmp_path / "out") / "cib.xml"
    root = ET.parse(cib).getroot()
    groups = cib_groups(root, "")
    assert [(g.members, g.drbd, g.home) for g in groups] == [(["a-vg", "a-fs", "a-ip"], ["a-drbd"], "alpha"),
                                                            (["b-vg", "b-fs", "b-ip"], ["b-drbd"], "beta")]
    scenario(cfg, cib, tmp_path, expect_failback=True, victim=victim)


@pytest.mark.parametrize("failback", [True, False])
def test_crm_simulate_auto_failback_and_the_preferred_node(failback, tmp_path):
    text = EXAMPLES[0].read_text()
    text = re.sub(r'preferred_node = "node1"', 'preferred_node = "node2"', text)
    text = re.sub(r"auto_failback = \w+", f"auto_failback = {str(failback).lower()}", text)
    f = tmp_path / "cluster.toml"
    f.write_text(text)
    cfg = config.load(f)
    assert cfg.cluster.preferred_node == "node2"  # not the first instance: the preference decides
    scenario(cfg, export(f, tmp_path / "out") / "cib.xml", tmp_path, expect_failback=failback)


# ------------------------------------------------------------------ crmsh and pcs build the same CIB


def normalize(cib_text: str) -> dict:
    """What a CIB says, without the ids tools make up for attribute sets and rules."""
    root = ET.fromstring(cib_text[cib_text.index("<cib"):])
    conf = root.find("configuration")

    def nv(el, tag):
        s = el.find(tag)
        return {} if s is None else {p.get("name"): p.get("value") for p in s.iterfind("nvpair")}

    def prim(p):
        ops = sorted((o.get("name"), o.get("interval"), o.get("timeout"), o.get("role"), o.get("on-fail")) for o in p.iterfind("operations/op"))
        return (p.get("id"), p.get("class"), p.get("provider"), p.get("type"), nv(p, "instance_attributes"), nv(p, "meta_attributes"), ops)

    res = conf.find("resources")
    locations = []
    for loc in conf.iterfind("constraints/rsc_location"):
        rule = loc.find("rule")
        if rule is None:
            locations.append((loc.get("id"), loc.get("rsc"), loc.get("node"), loc.get("score"), loc.get("role")))
        else:
            expr = rule.find("expression")
            assert (expr.get("attribute"), expr.get("operation")) == ("#uname", "eq")
            locations.append((loc.get("id"), loc.get("rsc"), expr.get("value"), rule.get("score"), rule.get("role") or loc.get("role")))
    return {
        "properties": nv(conf.find("crm_config"), "cluster_property_set"),
        "primitives": sorted(prim(p) for p in res.iter("primitive")),
        "clones": sorted((c.get("id"), c.find("primitive").get("id"), nv(c, "meta_attributes")) for c in res.iterfind("clone")),
        "groups": sorted((g.get("id"), [p.get("id") for p in g.iterfind("primitive")], nv(g, "meta_attributes")) for g in res.iterfind("group")),
        "locations": sorted(locations, key=str),
        "orders": sorted((o.get("id"), o.get("first"), o.get("first-action"), o.get("then"), o.get("then-action"), o.get("kind")) for o in conf.iterfind("constraints/rsc_order")),
        "colocations": sorted((c.get("id"), c.get("rsc"), c.get("rsc-role") or "Started", c.get("with-rsc"), c.get("with-rsc-role") or "Started", c.get("score")) for c in conf.iterfind("constraints/rsc_colocation")),
        "nodes": sorted((n.get("id"), n.get("uname")) for n in conf.iterfind("nodes/node")),
    }


def verify_without_status(path: Path) -> None:
    text = re.sub(r"<status\s*/>|<status>.*?</status>", "", path.read_text(), flags=re.S)
    path.write_text(text)
    p = run(["crm_verify", "-V", "--xml-file", str(path)], check=False)
    assert p.returncode == 0, p.stderr


@pytest.mark.skipif(shutil.which("crm") is None, reason="needs crmsh (apt-packages.txt)")
@pytest.mark.parametrize("which", CONFIGS)
def test_crmsh_configure_load_builds_the_same_cib(which, tmp_path):
    path = config_file(which, tmp_path)
    want = normalize((export(path, tmp_path / "x") / "cib.xml").read_text())
    crm = export(path, tmp_path / "c", "crm") / "cib.crm"
    live = tmp_path / "crm-cib.xml"
    live.write_text(run(["cibadmin", "--empty"]).stdout)
    run(["crm", "configure", "load", "update", str(crm)], env={"CIB_file": str(live)})
    assert normalize(live.read_text()) == want
    verify_without_status(live)


def pcs_commands(script: str, cib: Path) -> list[list[str]]:
    """The script's `pcs -f` lines, run on *cib* (its first and last lines need a running
    cluster: `pcs cluster cib` and `pcs cluster cib-push`)."""
    lines = [x for x in script.splitlines() if x and not x.startswith("#")]
    assert lines[:3] == ["set -e", 'CIB="${CIB:-hasync-cib.xml}"', 'pcs cluster cib "$CIB"']
    assert lines[-1] == 'pcs cluster cib-push "$CIB" --config'
    body = lines[3:-1]
    assert all(x.startswith('pcs -f "$CIB" ') for x in body)
    return [shlex.split(x.replace('"$CIB"', shlex.quote(str(cib)))) for x in body]


@pytest.mark.skipif(shutil.which("pcs") is None, reason="needs pcs (apt-packages.txt)")
def test_pcs_script_builds_the_same_cib(tmp_path):
    # the example only: pcs takes ~1 s a command
    want = normalize((export(EXAMPLES[0], tmp_path / "x") / "cib.xml").read_text())
    script = (export(EXAMPLES[0], tmp_path / "p", "pcs") / "cib-pcs.sh").read_text()
    assert run(["sh", "-n", "-c", script], check=False).returncode == 0
    live = tmp_path / "pcs-cib.xml"
    live.write_text(run(["cibadmin", "--empty"]).stdout)
    for argv in pcs_commands(script, live):
        run(argv)
    got = normalize(live.read_text())
    assert got["nodes"] == []  # pcs leaves the nodes to the running cluster
    assert {**got, "nodes": want["nodes"]} == want
    verify_without_status(live)
