"""The CLI layer: `hasync bootstrap --dry-run` prints the plan with diffs and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from hasync.cli import main

from .test_bootstrap_steps import ROOT


def lab_config(tmp_path: Path) -> Path:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 65536)
    text = (ROOT / "tests" / "unit" / "data" / "bootstrap" / "golden" / "lab-cluster.toml").read_text()
    text = text.replace('"/dev/vdb"', json.dumps(str(disk)))
    cfg = tmp_path / "cluster.toml"
    cfg.write_text(text)
    return cfg


def test_dry_run_prints_plan_and_diffs_and_changes_nothing(tmp_path: Path, capsys) -> None:
    cfg = lab_config(tmp_path)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nfs.conf").write_text("[statd]\n# name=\n")
    before = sorted(p.name for p in root.rglob("*"))
    rc = main(["-c", str(cfg), "bootstrap", "--dry-run", "--node", "node1", "--root", str(root)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mkfs.ext4 -q -L ha-lab-hl" in out
    assert "+name=10.200.0.100" in out and "--- /etc/nfs.conf" in out
    assert "changes (dry run)" in out
    assert sorted(p.name for p in root.rglob("*")) == before


def test_unknown_node_is_bad_input(tmp_path: Path, capsys) -> None:
    cfg = lab_config(tmp_path)
    rc = None
    try:
        rc = main(["-c", str(cfg), "bootstrap", "--dry-run", "--node", "nodeX", "--root", str(tmp_path)])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert "nodeX" in capsys.readouterr().err


def test_not_a_terminal_needs_yes(tmp_path: Path, capsys, monkeypatch) -> None:
    import io

    cfg = lab_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    rc = main(["-c", str(cfg), "bootstrap", "--node", "node1", "--root", str(tmp_path / "r")])
    assert rc == 2
    assert "--yes" in capsys.readouterr().err
    assert not (tmp_path / "r" / "var").exists()


def test_rollback_without_runs(tmp_path: Path, capsys) -> None:
    rc = main(["bootstrap", "--rollback", "--root", str(tmp_path)])
    assert rc == 1 and "no bootstrap run" in capsys.readouterr().out


def test_capture_facts_writes_raw_observations_without_the_key(tmp_path: Path, capsys) -> None:
    cfg = lab_config(tmp_path)
    root = tmp_path / "root"
    (root / "etc" / "hasync").mkdir(parents=True)
    (root / "etc" / "hasync" / "authkey").write_text("s3cret\n")
    cap = tmp_path / "facts.json"
    main(["-c", str(cfg), "bootstrap", "--dry-run", "--node", "node1", "--root", str(root), "--capture-facts", str(cap)])
    raw = json.loads(cap.read_text())
    assert "s3cret" not in cap.read_text()
    assert raw["file:/etc/hasync/authkey"] == "<secret: not captured>"
    assert raw["path:/etc/hasync/authkey"]["kind"] == "file"
    sig = next(k for k in raw if k.startswith("signatures:"))
    assert raw[sig]["exit"] == 0  # wipefs on the config's disk image


def test_join_waits_for_a_slow_first_node() -> None:
    """Found in the VM tier: the join's first ssh (`cat` of the cluster config) took over
    30 s on a loaded TCG guest and the join failed with the peer fine. A peer that answers
    after 45 s is waited for."""
    from hasync.bootstrap import join
    from hasync.effects.run import Result

    class SlowPeer:
        def run(self, argv, timeout=None, **kw):
            if timeout is not None and timeout < 45:
                return Result(tuple(argv), 124, "", f"timed out after {timeout:g}s", timeout)
            return Result(tuple(argv), 0, "[cluster]\n", "", 45.0)

    assert join.fetch(SlowPeer(), "node1", "/etc/hasync/cluster.toml") == "[cluster]\n"


def test_dry_run_under_pacemaker_says_so_and_plans_no_failover_daemon(tmp_path: Path, capsys) -> None:
    cfg = lab_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[cluster]\n", '[cluster]\nmanager = "pacemaker"\n', 1))
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    rc = main(["-c", str(cfg), "bootstrap", "--dry-run", "--node", "node1", "--root", str(root)])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 0, out
    assert 'the chain is Pacemaker\'s ([cluster] manager = "pacemaker")' in out
    assert "mkfs.ext4 -q -L ha-lab-hl" in out  # the storage is laid down as for hasync
    assert "enable hasync-failover" not in out and "hasync-failover.service" not in out
    assert "systemctl enable hasync-watch.service" in out
