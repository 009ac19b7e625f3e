"""hasync_lab.bench.failover_settings: the failover bench's settings, peer configs and figures."""

from __future__ import annotations

import pytest

from hasync_lab.bench import failover_settings as bs


def test_candidates_are_fastest_first_and_distinct():
    for tool in bs.TOOLS:
        c = bs.candidates(tool)
        assert len(c) >= 3
        assert [s.detect_s for s in c] == sorted(s.detect_s for s in c)
        assert len({s.label for s in c}) == len(c)
        assert all(s.tool == tool and not s.default for s in c)
    with pytest.raises(ValueError):
        bs.candidates("pacemaker")


def test_heartbeat_times_are_spelled_the_way_heartbeat_reads_them():
    assert bs.hb_time(30) == "30"
    assert bs.hb_time(0.2) == "200ms"
    assert bs.hb_time(1.5) == "1500ms"


def test_heartbeat_ha_cf_fast_and_default():
    media = [("eth1", ["10.201.0.11", "10.201.0.12"]), ("eth0", ["10.200.0.11", "10.200.0.12"])]
    fast = bs.heartbeat_ha_cf(bs.timing_setting("heartbeat", 0.05, 0.2), nodes=("node1", "node2"), media=media)
    lines = fast.splitlines()
    assert "keepalive 50ms" in lines and "deadtime 200ms" in lines
    # heartbeat refuses initdead < deadtime and deadtime <= 2*keepalive
    init = [x for x in lines if x.startswith("initdead")][0].split()[1]
    assert init == "2"
    assert lines.count("ucast eth1 10.201.0.12") == 1 and "ucast eth0 10.200.0.11" in lines
    assert "udpport" not in fast  # given through /etc/services, see the docstring
    assert lines[-2:] == ["node node1", "node node2"]
    default = bs.heartbeat_ha_cf(bs.default_setting("heartbeat"), nodes=("node1", "node2"), media=media)
    assert "keepalive" not in default and "deadtime" not in default


def test_haresources_and_authkeys():
    assert bs.heartbeat_haresources("node1", "10.200.0.100", 24, "eth0") == "node1 IPaddr2::10.200.0.100/24/eth0\n"
    assert bs.heartbeat_authkeys("s3cret").splitlines() == ["auth 1", "1 sha1 s3cret"]


def test_keepalived_conf_versions():
    fast = bs.keepalived_conf(bs.keepalived_setting(0.03), node="node1", priority=200, iface="eth0",
                              src="10.200.0.11", peers=["10.200.0.12"], vrid=11, vip="10.200.0.101", prefix=24, auth="x")
    assert "vrrp_version 3" in fast and "advert_int 0.03" in fast
    assert "unicast_peer {\n    10.200.0.12\n  }" in fast
    assert "10.200.0.101/24 dev eth0" in fast and "virtual_router_id 11" in fast
    assert "authentication" not in fast  # VRRPv3 has no auth
    assert fast.count("{") == fast.count("}")
    default = bs.keepalived_conf(bs.default_setting("keepalived"), node="node2", priority=100, iface="eth0",
                                 src="10.200.0.12", peers=["10.200.0.11"], vrid=10, vip="10.200.0.100", prefix=24, auth="x")
    assert "vrrp_version 2" in default and "advert_int" not in default and "auth_pass x" in default


def test_master_down_interval():
    assert bs.master_down_s(1.0, 100) == pytest.approx(3.609, abs=1e-3)
    assert bs.keepalived_setting(0.1).detect_s == pytest.approx(0.3609, abs=1e-3)


def test_summarize_and_json_row():
    f = bs.Figures(bs.timing_setting("hasync", 0.05, 0.2), (0.3, 0.1, 0.2), 0, role="fastest safe")
    row = f.as_json()
    assert (row["median_s"], row["min_s"], row["max_s"], row["trials"]) == (0.2, 0.1, 0.3, 3)
    assert row["setting"] == "keepalive 50ms, deadtime 200ms" and row["false_failovers"] == 0
    assert bs.summarize([]) == {"median_s": None, "min_s": None, "max_s": None}
    assert bs.summarize([1, 2, 3, 4])["median_s"] == 2.5


def test_fastest_safe_and_trial_plan():
    c = list(bs.candidates("keepalived"))
    d = bs.default_setting("keepalived")
    soaked = {d.key: 0, c[0].key: 3, c[1].key: 0, c[2].key: 0, c[3].key: 0}
    assert bs.fastest_safe(soaked, c) == c[1]
    plan = bs.trial_plan(d, c, soaked)
    assert plan == [(d, "default"), (c[0], "unsafe"), (c[1], "fastest safe")]
    none_safe = {s.key: 1 for s in c}
    assert bs.fastest_safe(none_safe, c) is None
    assert [r for _, r in bs.trial_plan(d, c, none_safe)] == ["default"] + ["unsafe"] * len(c)


def test_report_shape():
    rows = {"hasync": [bs.Figures(bs.timing_setting("hasync", 0.05, 0.2), (0.2,), 0, role="fastest safe")]}
    doc = bs.report(rows, {"idle_cpu_pct": 0.4, "rss_mb": 30.0, "ignored": 1})
    assert set(doc) == {"hasync", "heartbeat", "keepalived", "daemon"}
    assert doc["heartbeat"] == [] and doc["daemon"] == {"idle_cpu_pct": 0.4, "rss_mb": 30.0}
    assert {"setting", "median_s", "min_s", "max_s", "trials", "false_failovers"} <= set(doc["hasync"][0])


def test_proc_parsers():
    stat = "1234 (python3 -m x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 3 0 99 1000 200"
    assert bs.parse_stat_ticks(stat) == 320
    assert bs.parse_rss_kb("Name:\tx\nVmRSS:\t  30720 kB\n") == 30720
    with pytest.raises(ValueError):
        bs.parse_rss_kb("Name: x\n")
    assert bs.cpu_pct(100, 150, 10.0, hz=100) == pytest.approx(5.0)


def test_report_daemon_extras_and_idle_rows():
    d = {"idle_cpu_pct": 1.5, "rss_mb": 32.8, "setting": "keepalive 10ms, deadtime 50ms", "floor_python_pct": 0.9,
         "floor_c_pct": None, "defaults_idle_cpu_pct": 0.03, "noise": 1}
    idle = [{"tool": "keepalived", "setting": "advert_int 0.01s", "role": "fastest safe", "node1": {"idle_cpu_pct": 0.4}}]
    doc = bs.report({}, d, None, idle)
    assert doc["daemon"] == {"idle_cpu_pct": 1.5, "rss_mb": 32.8, "setting": "keepalive 10ms, deadtime 50ms",
                             "floor_python_pct": 0.9, "defaults_idle_cpu_pct": 0.03}
    assert doc["idle"] == idle
    assert "idle" not in bs.report({}, d)
    with pytest.raises(ValueError):
        bs.cpu_pct(0, 1, 0)


def test_count_vip_adds_from_ip_monitor():
    lines = [
        "3: eth0    inet 10.200.0.101/24 scope global secondary eth0\\       valid_lft forever",
        "Deleted 3: eth0    inet 10.200.0.101/24 scope global secondary eth0",
        "3: eth0    inet 10.200.0.102/24 scope global secondary eth0",
        "3: eth0    inet 10.200.0.101/24 scope global secondary eth0",
    ]
    assert bs.count_vip_adds(lines, "10.200.0.101") == 2
    assert bs.count_vip_adds(lines, "10.200.0.102") == 1
    assert bs.count_vip_adds(lines, "10.200.0.10") == 0


def test_loss_rules():
    r = bs.loss_rules("t", "eth0", 0.01)
    assert 'iifname "eth0" numgen random mod 10000 < 100 drop' in r
    assert 'oifname "eth0" numgen random mod 10000 < 100 drop' in r
    assert r.startswith("table inet t {")
    with pytest.raises(ValueError):
        bs.loss_rules("t", "eth0", 1.5)


def test_bench_parser_defaults():
    from hasync_lab.bench import failover as bench

    a = bench.build_parser().parse_args([])
    assert (a.soak, a.trials, a.json, a.quick) == (120.0, 10, False, False)
    a = bench.build_parser().parse_args(["--json", "--soak", "30", "--trials", "12", "--tools", "keepalived"])
    assert (a.soak, a.trials, a.json, a.tools) == (30.0, 12, True, "keepalived")


def test_markdown_table_from_a_saved_run(tmp_path, capsys):
    from hasync_lab.bench import failover as bench

    rows = {"keepalived": [bs.Figures(bs.keepalived_setting(0.1), (0.3, 0.2), 0, failed_trials=1, role="fastest safe")]}
    doc = bs.report(rows, {"idle_cpu_pct": 0.5, "rss_mb": 31.0})
    p = tmp_path / "run.json"
    p.write_text(__import__("json").dumps(doc))
    assert bench.main(["--markdown", str(p)]) == 0
    out = capsys.readouterr().out
    assert "| keepalived | advert_int 0.1s (VRRPv3) | fastest safe | 0.250 | 0.200 | 0.300 | 2 (+1 failed) | 0 |" in out
    assert "0.5 % of one core, 31.0 MB RSS" in out


def test_late_gaps_from_a_daemon_log():
    log = "\n".join([
        "03:01:02 WARN late heartbeat from node1: 612 ms after the previous one (warntime 600 ms)",
        "03:01:05 WARN heartbeat from node1 is late: 1830 ms (warntime 600 ms) (2 more late heartbeats since the previous warning, not logged)",
        "03:01:09 INFO scheduler stall: the main loop woke 40 ms late (threshold 300 ms)",
    ])
    assert bs.late_gaps(log) == (2, 1830.0)
    assert bs.late_gaps("03:00:00 INFO node2: standby\n") == (0, None)


def test_daemon_stalls_from_a_status_document():
    st = {"daemon": {"worst_late_wake_ms": 4.2, "scheduler_stalls": 0, "stall_threshold_ms": 1000.0,
                     "late_heartbeats": 3, "ticks": 99}}
    assert bs.daemon_stalls(st) == {"worst_late_wake_ms": 4.2, "scheduler_stalls": 0, "stall_threshold_ms": 1000.0,
                                    "late_heartbeats": 3}


def test_defaults_only_is_alone():
    from hasync_lab.bench import failover as bench

    a = bench.build_parser().parse_args(["--defaults-only", "--tools", "hasync"])
    assert a.defaults_only and not a.no_defaults
    a = bench.build_parser().parse_args(["--defaults-only", "--no-defaults"])
    a.argv = []
    with pytest.raises(SystemExit, match="defaults alone"):
        bench.run(a, None)


def test_at_rest_line_of_a_defaults_only_run():
    from hasync_lab.bench import failover as bench

    assert bench.at_rest_line({"defaults_idle_cpu_pct": 0.1, "defaults_setting": "defaults (keepalive 500ms, deadtime 5s)"}) == (
        "hasync daemon at rest: 0.1 % of one core (defaults (keepalive 500ms, deadtime 5s)).")
    assert bench.at_rest_line({"idle_cpu_pct": 0.5, "rss_mb": 31.0}) == "hasync daemon at rest: 0.5 % of one core, 31.0 MB RSS."


def test_soak_lines_name_each_daemons_figures():
    from hasync_lab.bench import failover as bench

    meta = {"soak_daemons": {"hasync:defaults (keepalive 500ms, deadtime 5s)": {
        "node1": {"worst_late_wake_ms": 1.4, "scheduler_stalls": 0, "stall_threshold_ms": 1000.0, "late_heartbeats": 0,
                  "worst_late_gap_ms": None}}}}
    lines = bench.soak_lines(meta)
    assert lines[-1] == "| defaults (keepalive 500ms, deadtime 5s) | node1 | 1.4 | 0 (1000.0) | 0 | – |"
    assert bench.soak_lines({}) == []
