"""Issue 13's field run under systemd: the guests boot Debian's own init (systemd as
PID 1) and the cluster is deployed the way the README tells an admin, with the example's
chain (hasync_lab/vm/seed.py: profiles/cluster/example.toml's resources, nfsdcld pulled
in by nfs-server.service as on a real node):

1. `hasync check`, `hasync bootstrap` on node1, `--join node1` on node2 on guests where
   Debian started nfs-server at boot; bootstrap leaves drbd, hasync-failover and
   hasync-watch enabled and the NFS server disabled;
2. `systemctl start hasync-watch hasync-failover` (the units bootstrap installed): the
   chain comes up on node1, NFSv4 served with the scope, grace and nfsdcld records;
3. an NFS client on Debian 12's default mount options (v4.2) and one on v3 write
   checksummed records;
4. the watcher syncs /etc/exports from node1 and a file under /etc/hasync from node2;
   each node keeps its own ssh key, and hasync's ssh works both ways afterwards;
5. the active node's daemon killed (SIGKILL, the daemon alone): systemd starts it again
   (Restart=on-failure) and the chain stays, untouched (KillMode=process): the new
   daemon adopts it, the standby does not take over, the clients see no error;
6. node1 powered off: node2 fences it and takes over, both clients resume, nothing they
   were told was written is lost; node1 powers on and its enabled units (drbd,
   hasync-failover, hasync-watch) bring it back as the standby with nothing run by hand;
   `hasync status` and `hasync doctor` clean on both nodes.

Runs in a lab of its own, before the busybox-init one (module order): one lab at a time.
"""

from __future__ import annotations

import time

import pytest

from hasync_lab.vm import field_checks as fc
from hasync_lab.vm import manual
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import VIP, default_guests

from .checks import assert_healthy, assert_nfs_v4_served, check_no_acked_write_lost
from .conftest import TIMINGS, booted_lab

pytestmark = pytest.mark.vm

SSH = "ssh -i /etc/hasync/ssh/id_ed25519 -o UserKnownHostsFile=/etc/hasync/ssh/known_hosts -o BatchMode=yes -o ConnectTimeout=30"


@pytest.fixture(scope="module")
def sd_lab(request):
    with booted_lab(request, "vs", init="systemd") as lab:
        yield lab


def units(lab, node: str, *names: str) -> list[str]:
    return lab.exec(node, ("systemctl", "is-enabled", *names), timeout=60).stdout.split()


def wait_active(lab, node: str, *names: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while (states := lab.exec(node, ("systemctl", "is-active", *names), timeout=60).stdout.split()) != ["active"] * len(names):
        assert time.monotonic() < deadline, (node, names, states)
        time.sleep(1)


def test_field_run_under_systemd(sd_lab):  # noqa: PLR0915 -- one story
    lab = sd_lab
    t0 = time.monotonic()
    addr = {g.name: g.public for g in default_guests(0)}
    for vm in lab.vms:
        assert lab.sh(vm, "cat /proc/1/comm").strip() == "systemd", vm

    lab.report("step 1: the README's path")
    # 1. the README's path: check, bootstrap, join (nfs-server was started at boot)
    r = lab.exec("node1", ("hasync", "check", "-q"), timeout=120)
    assert r.ok, r.stdout + r.stderr
    TIMINGS.update({f"systemd_{k}": v for k, v in sc.bootstrap_pair(lab).items()})
    for n in lab.nodes:
        assert units(lab, n, "drbd", "hasync-failover", "hasync-watch", "nfs-server") == \
            ["enabled", "enabled", "enabled", "disabled"], n

    lab.report("step 2: the units")
    # 2. the units, started as an admin does: the chain comes up on node1
    sc.start_cluster(lab)
    TIMINGS["systemd_chain_up_s"] = round(time.monotonic() - t0, 2)
    for n in lab.nodes:  # the watcher is ready once its first full reconciliation is done
        wait_active(lab, n, sc.FAILOVER_UNIT, sc.WATCH_UNIT)
    assert manual.drbd_state(lab, "node1")["ro"] == "Primary/Secondary"
    assert_nfs_v4_served(lab, "node1", "node2")

    lab.report("step 3: two clients on client1")
    # 3. two clients on client1: Debian 12's default mount (NFS v4.2) and v3, hard
    lab.sh("client1", f"mkdir -p /mnt/ha /mnt/ha3\nmount -t nfs {VIP}:{sc.EXPORT} /mnt/ha", timeout=180)
    assert "vers=4.2" in lab.sh("client1", "grep ' /mnt/ha ' /proc/mounts")
    sc.mount_client(lab, mnt="/mnt/ha3")
    w4 = manual.start_writer(lab, "client1", "/mnt/ha/field-v4", "field4")
    w3 = manual.start_writer(lab, "client1", "/mnt/ha3/field-v3", "field3")
    for w in (w4, w3):
        manual.wait_acked(lab, "client1", w, 20, timeout=120)

    lab.report("step 4: the config watcher")
    # 4. the config watcher, both ways; node-local files stay each node's own
    t_sync = time.monotonic()
    lab.sh("node1", "echo '# field run: edited on node1' >> /etc/exports")
    lab.sh("node2", "echo 'edited on node2' > /etc/hasync/field-note")
    fc.wait_text(lab, "node2", "/etc/exports", "# field run: edited on node1")
    fc.wait_text(lab, "node1", "/etc/hasync/field-note", "edited on node2")
    TIMINGS["systemd_watch_both_ways_s"] = round(time.monotonic() - t_sync, 2)
    keys = {n: lab.sh(n, "sha256sum /etc/hasync/ssh/id_ed25519 | cut -c1-16") for n in lab.nodes}
    assert keys["node1"] != keys["node2"], "the nodes' own ssh keys were synced"
    for a, b in (("node1", "node2"), ("node2", "node1")):
        assert lab.sh(a, f"{SSH} {addr[b]} hostname", timeout=90).strip() == b

    lab.report("step 5: the active node's daemon dies, systemd restarts it")
    # 5. the active node's daemon dies (SIGKILL to it alone, as a crash of the daemon):
    # systemd starts it again (Restart=on-failure), KillMode=process left the chain
    # running, the new daemon adopts it: every piece as it was (same DRBD role, mount,
    # VIP, exports, daemon pids), the standby never takes over, the clients see no error.
    # (`systemctl restart` is a clean stop: it hands the chain to the peer, docs/failover.md.)
    before = fc.chain_pieces(lab, "node1")
    pid = lab.sh("node1", f"systemctl show -p MainPID --value {sc.FAILOVER_UNIT}").strip()
    acked = {w["ack"]: manual.acked(lab, "client1", w) for w in (w4, w3)}
    t_restart = time.monotonic()
    lab.sh("node1", f"systemctl kill --kill-whom=main -s KILL {sc.FAILOVER_UNIT}", timeout=120)
    deadline = time.monotonic() + 300
    while lab.sh("node1", f"systemctl show -p MainPID --value {sc.FAILOVER_UNIT}").strip() in (pid, "0"):
        assert time.monotonic() < deadline, "systemd did not start hasync-failover again"
        time.sleep(0.5)
    sc.wait_role(lab, "node1", "active", timeout=300)
    for w in (w4, w3):
        manual.wait_acked(lab, "client1", w, acked[w["ack"]] + 20, timeout=120)
    TIMINGS["systemd_daemon_restart_s"] = round(time.monotonic() - t_restart, 2)
    assert int(lab.sh("node1", f"systemctl show -p NRestarts --value {sc.FAILOVER_UNIT}")) >= 1
    after = fc.chain_pieces(lab, "node1")
    assert after == before, (before, after)
    assert before["drbd"] == "ro:Primary/Secondary" and before["vip"] == "1" and before["mountd"], before
    assert sc.role(lab, "node2") == "standby"
    assert fc.chain_pieces(lab, "node2")["vip"] == "0"
    assert "declared dead" not in sc.daemon_log(lab, "node2"), sc.daemon_log(lab, "node2", 40)
    for w in (w4, w3):
        errors = lab.exec("client1", ("cat", w["log"])).stdout
        assert errors.strip() == "", errors[-2000:]

    lab.report("step 6: node1 powered off with both clients writing")
    # 6. node1 powered off with both clients writing: node2 fences it and takes over
    crash = sc.crash_and_wait(lab, "node1", "node2", w4)
    TIMINGS["systemd_crash_to_active_s"] = crash.active_s
    TIMINGS["systemd_crash_to_client_resumed_s"] = crash.resumed_s
    events = " | ".join(e.get("message", "") for e in crash.record.get("events", []))
    assert "fenced node1" in events, events
    manual.wait_acked(lab, "client1", w3, manual.acked(lab, "client1", w3) + 5, timeout=300)
    for w in (w4, w3):
        log = manual.stop_writer(lab, "client1", w)
        assert "Stale" not in log, log
        check_no_acked_write_lost(lab, w, "node2")
    # node1 powers on: drbd.service, hasync-failover and hasync-watch start at boot
    TIMINGS.update({f"systemd_rejoin_{k}": v for k, v in sc.rejoin(lab, "node1", "node2").items()})
    wait_active(lab, "node1", sc.WATCH_UNIT)
    assert_healthy(lab, active="node2", standby="node1")
    TIMINGS["systemd_field_run_s"] = round(time.monotonic() - t0, 2)
