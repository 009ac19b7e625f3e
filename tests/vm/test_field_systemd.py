"""Issue 13's field run under systemd, carrying issue 6's scenario: the guests boot Debian's
own init (systemd as PID 1) and the cluster is deployed the way the README tells an admin,
with the example's chain (hasync_lab/vm/seed.py: profiles/cluster/example.toml's
resources, nfsdcld pulled in by nfs-server.service as on a real node). Its own lab, booted
before the session's busybox-init lab (conftest orders it first). Not in `make test`:
HASYNC_VM_FIELD=1 (`make test-field`) runs it. Whole, on a quiet 2-core machine, it took
24.6 min (2026-12-07, run 11); beside the busybox lab's scenario and the Pacemaker trial
CI would take ~47 min, over its 40 (docs/vm.md "In make test").

0. hasync installed as the README's step 2 does: `make deb`'s package (built once on the
   host by packaging/deb/build.py, carried by the nodes' seeds) installed with
   `apt-get install ./hasync_VERSION_all.deb` on both nodes, offline (the image holds every
   package it depends on); `hasync` is then the package's /usr/bin/hasync with its
   version, man finds hasync(8), and the units are the package's, Documentation= naming
   the page; every later step runs that install (bootstrap enables the package's units
   and writes no copy to /etc/systemd/system);
1. `hasync check`, `hasync bootstrap` on node1 (which has a VG of its own the LVM filter
   must leave visible), `--join node1` on node2, on guests where Debian started
   nfs-server at boot; bootstrap leaves drbd, hasync-failover and hasync-watch enabled
   and the NFS server disabled; LVM as bootstrap left it;
2. `systemctl start hasync-watch hasync-failover` (the units bootstrap installed): the
   chain comes up on node1, NFSv4 served with the scope, grace and nfsdcld records;
3. an NFS client on Debian 12's default mount options (v4.2) and one on v3 write
   checksummed records; the v3 one holds a lock (statd records it on the replicated disk);
4. the watcher syncs /etc/exports from node1 and a file under /etc/hasync from node2;
   each node keeps its own ssh key, and hasync's ssh works both ways afterwards;
5. `systemctl restart hasync-failover` on the active node: the chain stays, untouched
   (same DRBD role, mount, VIP, exports, process ids), the standby stays standby;
6. the standby's daemon hangs (SIGSTOP): the systemd watchdog kills it and systemd starts
   it again; it settles standby, the chain on node1 untouched;
7. `hasync migrate --to node2` and back with both clients writing: no client error,
   NFSv4 on node2 with the same scope, sm-notify reaches the locking client from the VIP
   only;
8. node1 powered off: node2 fences it and takes over, both clients resume, nothing they
   were told was written is lost; node1 boots with drbd.service held back, `hasync
   bootstrap` re-run there refuses to force DRBD Primary and changes nothing; DRBD up,
   resync, node1 standby; `hasync status` and `hasync doctor` clean on both nodes;
9. split-brain guard: every cable of the active node2 cut: no sample with two primaries
   or two VIPs, node1 fences node2 before it takes over, nothing lost; node2 boots and
   its units bring it back standby; then the standby is cut off: it reaches no ping node
   and does not take over, node1's DRBD fence-peer handler powers it off, node1 serves on.
"""

from __future__ import annotations

import time

import pytest

from hasync.bootstrap.steps_files import PACKAGED_UNIT_DIRS
from hasync_lab.vm import field_checks as fc
from hasync_lab.vm import manual, package
from hasync_lab.vm import scenario as sc
from hasync_lab.vm.seed import VIP, default_guests

from .checks import (
    assert_bootstrap_again_refused,
    assert_crash_taken_over,
    assert_guard_holds,
    assert_healthy,
    assert_migrate_there_and_back,
    assert_nfs_v4_served,
    bootstrap_and_read_back,
    check_no_acked_write_lost,
)
from .conftest import TIMINGS, booted_lab

pytestmark = pytest.mark.vm

SSH = "ssh -i /etc/hasync/ssh/id_ed25519 -o UserKnownHostsFile=/etc/hasync/ssh/known_hosts -o BatchMode=yes -o ConnectTimeout=30"


@pytest.fixture(scope="module")
def field_deb(tmp_path_factory):
    """`make deb`'s package, built once on the host (packaging/deb/build.py)."""
    return package.build_deb(tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="module")
def sd_lab(request, field_deb):
    with booted_lab(request, "vs", init="systemd", deb=field_deb) as lab:
        yield lab


def assert_packaged_units(got: dict[str, str]) -> None:
    """Each hasync unit systemd loads is the package's file (no copy in /etc shadows it),
    its Documentation= names the man page."""
    for u in package.UNITS:
        assert got[f"{u}.fragment"] in [f"{d}/{u}" for d in PACKAGED_UNIT_DIRS], got
        # systemctl show quotes an entry with parentheses: "man:hasync(8)" https://...
        assert "man:hasync(8)" in [d.strip('"') for d in got[f"{u}.doc"].split()], got


def units(lab, node: str, *names: str) -> list[str]:
    return lab.exec(node, ("systemctl", "is-enabled", *names), timeout=60).stdout.split()


def wait_active(lab, node: str, *names: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while (states := lab.exec(node, ("systemctl", "is-active", *names), timeout=60).stdout.split()) != ["active"] * len(names):
        assert time.monotonic() < deadline, (node, names, states)
        time.sleep(1)


def main_pid(lab, node: str) -> str:
    return lab.sh(node, f"systemctl show -p MainPID --value {sc.FAILOVER_UNIT}").strip()


def restarts(lab, node: str) -> int:
    return int(lab.sh(node, f"systemctl show -p NRestarts --value {sc.FAILOVER_UNIT}"))


def no_client_errors(lab, *writers: dict) -> None:
    for w in writers:
        errors = lab.exec("client1", ("cat", w["log"])).stdout
        assert errors.strip() == "", errors[-2000:]


def test_field_run_under_systemd(sd_lab, field_deb):  # noqa: PLR0915 -- one story
    lab = sd_lab
    t0 = time.monotonic()
    addr = {g.name: g.public for g in default_guests(0)}
    for vm in lab.vms:
        assert lab.sh(vm, "cat /proc/1/comm").strip() == "systemd", vm

    lab.report(f"step 0: {field_deb.name} installed with apt on the nodes")
    # 0. the README's install: apt, offline, takes the package's dependencies from the image
    version = package.deb_field(field_deb, "Version")
    for n in lab.nodes:
        r = package.install(lab, n, field_deb.name)
        assert r.ok, r.stdout[-3000:] + r.stderr[-3000:]
        got = package.installed_view(lab, n)
        assert got["which"] == package.PACKAGED_BIN, got
        assert (got["version"], got["dpkg"]) == (f"hasync {version}", version), got
        assert got["man"] == package.MAN_PAGE and got["completion"] == "yes", got
        assert_packaged_units(got)
    TIMINGS["systemd_deb_installed_s"] = round(time.monotonic() - t0, 2)

    lab.report("step 1: the README's path")
    # 1. the README's path: check, bootstrap, join (nfs-server was started at boot);
    # node1 has a VG of its own, which the LVM filter bootstrap writes must leave visible
    r = lab.exec("node1", ("hasync", "check", "-q"), timeout=120)
    assert r.ok, r.stdout + r.stderr
    TIMINGS.update({f"systemd_{k}": v for k, v in bootstrap_and_read_back(lab).items()})
    for n in lab.nodes:
        assert units(lab, n, "drbd", "hasync-failover", "hasync-watch", "nfs-server") == \
            ["enabled", "enabled", "enabled", "disabled"], n
        assert_packaged_units(package.installed_view(lab, n))  # enabled, not copied to /etc

    lab.report("step 2: the units")
    # 2. the units, started as an admin does: the chain comes up on node1
    sc.start_cluster(lab)
    TIMINGS["systemd_chain_up_s"] = round(time.monotonic() - t0, 2)
    for n in lab.nodes:  # the watcher is ready once its first full reconciliation is done
        wait_active(lab, n, sc.FAILOVER_UNIT, sc.WATCH_UNIT)
    assert manual.drbd_state(lab, "node1")["ro"] == "Primary/Secondary"
    assert_nfs_v4_served(lab, "node1", "node2")
    for n in lab.nodes:  # the daemons are the package's hasync
        cmd = lab.sh(n, f"tr '\\0' ' ' < /proc/{main_pid(lab, n)}/cmdline")
        assert package.PACKAGED_BIN in cmd.split(), (n, cmd)

    lab.report("step 3: two clients on client1")
    # 3. two clients on client1: Debian 12's default mount (NFS v4.2) and v3, hard; the v3
    # one holds a lock: node1's statd records client1 on the replicated disk, and the node
    # that starts the chain next notifies it (nfsnotify: sm-notify -f -v VIP)
    # the admin gives the export to the user the clients' root is squashed to (nobody): the
    # 1777 bootstrap_pair sets for the busybox lab gave EACCES on the v4.2 mount here (the
    # clients run systemd, whose sysctl defaults set fs.protected_regular: an O_CREAT open
    # in a sticky world-writable directory of a file owned by nobody, neither the opener
    # nor the directory's owner, is refused; v4's atomic open meets that check)
    lab.sh("node1", f"chown 65534:65534 {sc.EXPORT} && chmod 0755 {sc.EXPORT}")
    lab.report(f"client1: fs.protected_regular={lab.sh('client1', 'sysctl -n fs.protected_regular').strip()}")
    lab.sh("client1", f"mkdir -p /mnt/ha /mnt/ha3\nmount -t nfs {VIP}:{sc.EXPORT} /mnt/ha", timeout=180)
    assert "vers=4.2" in lab.sh("client1", "grep ' /mnt/ha ' /proc/mounts")
    sc.mount_client(lab, mnt="/mnt/ha3")
    w4 = manual.start_writer(lab, "client1", "/mnt/ha/field-v4", "field4")
    w3 = manual.start_writer(lab, "client1", "/mnt/ha3/field-v3", "field3")
    for w in (w4, w3):
        manual.wait_acked(lab, "client1", w, 20, timeout=120)
    fc.hold_lock(lab, "client1", "/mnt/ha3/lockfile")
    assert fc.statd_records(lab, "node1"), "node1's statd keeps no record of the locking client"
    notified = fc.count_udp_from(lab, "client1", (VIP, *addr.values()))

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

    lab.report("step 5: systemctl restart hasync-failover on the active node")
    # 5. `systemctl restart hasync-failover` on the active node: the old daemon asks
    # systemd, sees a restart and exits without stopping anything; the new one adopts the
    # chain (KillMode=process left the services running): every piece as it was
    before = fc.chain_pieces(lab, "node1")
    pid = main_pid(lab, "node1")
    acked = {w["ack"]: manual.acked(lab, "client1", w) for w in (w4, w3)}
    t_restart = time.monotonic()
    lab.sh("node1", f"systemctl restart {sc.FAILOVER_UNIT}", timeout=300)  # returns at READY=1
    assert main_pid(lab, "node1") not in (pid, "0")
    sc.wait_role(lab, "node1", "active", timeout=300)
    for w in (w4, w3):
        manual.wait_acked(lab, "client1", w, acked[w["ack"]] + 20, timeout=120)
    TIMINGS["systemd_daemon_restart_s"] = round(time.monotonic() - t_restart, 2)
    assert fc.chain_pieces(lab, "node1") == before, (before, fc.chain_pieces(lab, "node1"))
    assert before["drbd"] == "ro:Primary/Secondary" and before["vip"] == "1" and before["mountd"], before
    assert "restarts: exiting without stopping anything" in sc.daemon_log(lab, "node1", 200)
    assert sc.role(lab, "node2") == "standby" and fc.chain_pieces(lab, "node2")["vip"] == "0"
    assert "declared dead" not in sc.daemon_log(lab, "node2"), sc.daemon_log(lab, "node2", 40)
    no_client_errors(lab, w4, w3)

    lab.report("step 6: the standby's daemon hangs (SIGSTOP), the watchdog restarts it")
    # 6. the standby's daemon hangs: no WATCHDOG=1 within WatchdogSec, systemd kills it
    # (SIGABRT, then SIGKILL) and Restart=on-failure starts it again; it settles standby
    pid2, n2 = main_pid(lab, "node2"), restarts(lab, "node2")
    t_hang = time.monotonic()
    lab.sh("node2", f"kill -STOP {pid2}")
    deadline = time.monotonic() + 180
    while main_pid(lab, "node2") in (pid2, "0"):
        assert time.monotonic() < deadline, "the watchdog did not restart the hung daemon"
        time.sleep(1)
    sc.wait_role(lab, "node2", "standby", timeout=300)
    TIMINGS["systemd_watchdog_restart_s"] = round(time.monotonic() - t_hang, 2)
    assert restarts(lab, "node2") > n2
    assert "watchdog" in lab.sh("node2", f"journalctl -u {sc.FAILOVER_UNIT} --no-pager | tail -n 60").lower()
    assert fc.chain_pieces(lab, "node1") == before, (before, fc.chain_pieces(lab, "node1"))
    assert sc.role(lab, "node1") == "active"

    lab.report("step 7: hasync migrate to node2 and back")
    lab.report(fc.statd_view(lab, "node1"))  # statd's lists before the move (read when sm-notify fails)
    # 7. graceful `hasync migrate` to node2 and back while both clients write: no error
    TIMINGS.update({f"systemd_{k}": v for k, v in assert_migrate_there_and_back(lab, (w4, w3), notified).items()})

    lab.report("step 8: node1 powered off with both clients writing")
    # 8. node1 powered off with both clients writing: node2 fences it and takes over
    crash = sc.crash_and_wait(lab, "node1", "node2", w4)
    TIMINGS["systemd_crash_to_active_s"] = crash.active_s
    TIMINGS["systemd_crash_to_client_resumed_s"] = crash.resumed_s
    assert_crash_taken_over(lab, crash)
    manual.wait_acked(lab, "client1", w3, manual.acked(lab, "client1", w3) + 5, timeout=300)
    for w in (w4, w3):
        log = manual.stop_writer(lab, "client1", w)
        assert "Stale" not in log, log
        check_no_acked_write_lost(lab, w, "node2")
    # node1 boots with drbd.service held back; bootstrap re-run there reads the metadata's
    # generation identifiers (not new: it held replicated data) and refuses to force it
    # Primary, changing nothing; then DRBD up, resync, and its daemon (started at boot by
    # its unit) settles standby
    again: list = []
    TIMINGS.update({f"systemd_rejoin_{k}": v for k, v in
                    sc.rejoin(lab, "node1", "node2", before_up=lambda: again.append(fc.bootstrap_again(lab, "node1"))).items()})
    assert_bootstrap_again_refused(again[0])
    wait_active(lab, "node1", sc.FAILOVER_UNIT, sc.WATCH_UNIT)
    assert_healthy(lab, active="node2", standby="node1")

    lab.report("step 9: split-brain guard")
    # 9. every cable of the active node2 cut, fencing required: node1 fences it before it
    # promotes; then node2 (back by its units) is the standby and is cut off: it does not
    # take over, node1's DRBD fence-peer handler powers it off
    TIMINGS.update({f"systemd_{k}": v for k, v in assert_guard_holds(lab).items()})
    TIMINGS["systemd_field_run_s"] = round(time.monotonic() - t0, 2)
