"""`hasync lab bench failover --quick`: every tool really fails over, the JSON has its shape.

Slow for a lab test (~1.5 min: heartbeat's first acquisition alone takes 10-12 s per
trial), so it runs the smallest bench there is: one setting per tool, 2 trials, 5 s soak.
No timing is asserted (speed lives in docs/benchmarks.md), only that each figure is a
real crash-to-answer time: a trial counts only when client1 got an answer from node2 on
the VIP after node1 was crashed, so a tool that never failed over yields no samples.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from hasync_lab.bench import failover as bench
from hasync_lab.bench.failover_peers import HEARTBEAT_BIN

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        not (os.path.exists(HEARTBEAT_BIN) and shutil.which("keepalived") and shutil.which("nft")),
        reason="the failover bench needs heartbeat, keepalived and nftables (apt-packages.txt)",
    ),
]

KEYS = {"setting", "median_s", "min_s", "max_s", "trials", "false_failovers"}


def test_quick_bench_json(clean_lab, capsys, tmp_path):
    rc = bench.main(["--quick", "--json", "--lab", clean_lab.name, "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert set(doc) >= {"hasync", "heartbeat", "keepalived", "daemon"}
    assert "errors" not in doc.get("meta", {}), doc["meta"].get("errors")
    for tool in ("hasync", "heartbeat", "keepalived"):
        rows = doc[tool]
        assert len(rows) == 1, (tool, rows)
        row = rows[0]
        assert KEYS <= set(row), (tool, row)
        assert isinstance(row["setting"], str) and row["setting"]
        assert row["trials"] == 2 and row["failed_trials"] == 0, (tool, row)
        assert len(row["samples_s"]) == 2
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"], (tool, row)
        assert all(0 < s for s in row["samples_s"])
        assert isinstance(row["false_failovers"], int) and row["false_failovers"] >= 0
    # each hasync daemon's own figures, read through its control socket at the end of the soak
    [per_node] = doc["meta"]["soak_daemons"].values()
    assert set(per_node) == set(clean_lab.nodes), per_node
    for fig in per_node.values():
        assert "error" not in fig, fig
        assert isinstance(fig["worst_late_wake_ms"], float) and fig["worst_late_wake_ms"] >= 0, fig
        assert isinstance(fig["scheduler_stalls"], int) and isinstance(fig["late_warnings_logged"], int), fig
    d = doc["daemon"]
    assert isinstance(d["idle_cpu_pct"], float) and d["idle_cpu_pct"] >= 0
    assert isinstance(d["rss_mb"], float) and d["rss_mb"] > 1
    # nothing of the bench is left running in the lab
    st = clean_lab.status()
    for node in clean_lab.nodes:
        assert st["nodes"][node]["state"] == "up"
    assert st["vip_on"] == []
