"""Real failover daemons on the namespace lab's nodes.

Chain: Filesystem (ext4 on the node's loop disk) -> IPaddr2 (the VIP on the public
bridge) -> hasync-demo (a tiny TCP service, failover/resource.d). A watcher thread reads
both nodes' mount tables and local addresses straight from /proc every few ms and
records any moment where the VIP or the mount is on BOTH nodes: every test asserts there
was none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

DEMO = Path(__file__).resolve().parents[2] / "failover" / "resource.d" / "hasync-demo"
NODES = ("node1", "node2")


# ------------------------------------------------------------------ helpers


def lab_config(lab, *, fencing: str = "required", on_stop_failure: str = "fence-self", self_fence: bool = True,
               demo_monitor: str = "", broadcast: bool = False, ping: tuple[str, ...] = ()) -> str:
    from hasync_lab.ns.config_gen import cluster_toml

    text = cluster_toml(lab.spec)
    head = text.split("[fencing]")[0]
    if ping:
        assert "ping = []" in head
        head = head.replace("ping = []", "ping = [" + ", ".join(f'"{a}"' for a in ping) + "]")
    if broadcast:  # the heartbeat link as udp-broadcast instead of unicast
        lines = head.splitlines()
        i = lines.index('name = "heartbeat"')
        assert lines[i + 1] == 'kind = "udp-unicast"' and lines[i + 4].startswith("addresses")
        lines[i + 1] = 'kind = "udp-broadcast"'
        del lines[i + 4]
        head = "\n".join(lines) + "\n"
    head += "\n".join(
        [
            "[[resource]]",
            'id = "demo"',
            'type = "heartbeat"',
            'agent = "hasync-demo"',
            'args = ["8080"]',
            'start_timeout = "5s"',
            'stop_timeout = "5s"',
            f'monitor_interval = "{demo_monitor}"' if demo_monitor else "",
            "max_restarts = 1",
            "",
            "[fencing]",
            f'mode = "{fencing}"',
            'command = ["hasync", "lab", "fence", "{node}"]' if fencing != "off" else "command = []",
            'timeout = "20s"',
            f'on_stop_failure = "{on_stop_failure}"',
            'self_command = ["hasync", "lab", "fence", "{node}"]' if self_fence else "",
            "",
        ]
    )
    return head


def install(lab, text: str) -> None:
    for n in NODES:
        lab.exec(n, ["sh", "-c", "cat > /etc/hasync/cluster.toml"], input=text, check=True)
        lab.exec(n, ["install", "-D", "-m", "755", str(DEMO), "/etc/ha.d/resource.d/hasync-demo"], check=True)
        lab.exec(n, ["sh", "-c", "rm -rf /etc/hasync/demo-fail-start /etc/hasync/demo-fail-stop /var/lib/hasync/failover /run/hasync-demo.*.pid"], check=True)
        lab.exec(n, ["hasync", "check"], check=True)


def node_root(lab, node: str) -> Path | None:
    try:
        pid = lab.sshd_pid(node)
    except Exception:
        return None
    return Path(f"/proc/{pid}") if pid else None


def role(lab, node: str) -> str:
    root = node_root(lab, node)
    if root is None:
        return "down"
    try:
        return (root / "root/run/hasync/role").read_text().strip()
    except OSError:
        return "none"


def has_vip(root: Path, vip: str) -> bool:
    try:
        lines = (root / "net/fib_trie").read_text().splitlines()
    except OSError:
        return False
    for i, line in enumerate(lines[:-1]):
        if line.strip() == f"|-- {vip}" and "/32 host LOCAL" in lines[i + 1]:
            return True
    return False


def has_mount(root: Path, mp: str) -> bool:
    try:
        return any(line.split()[1] == mp for line in (root / "mounts").read_text().splitlines())
    except OSError:
        return False


class Watcher(threading.Thread):
    """Checks both namespaces every few ms: VIP or mount on both nodes at once is a violation."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab = lab
        self.stop_ev = threading.Event()
        self.violations: list[str] = []
        self.samples = 0
        self.roots: dict[str, Path | None] = {}

    def _root(self, node: str) -> Path | None:
        r = self.roots.get(node)
        if r is None or not r.exists():
            r = self.roots[node] = node_root(self.lab, node)
        return r

    def run(self) -> None:
        while not self.stop_ev.is_set():
            vips, mounts = [], []
            for n in NODES:
                r = self._root(n)
                if r is None:
                    continue
                if has_vip(r, self.lab.vip):
                    vips.append(n)
                if has_mount(r, self.lab.mount_point):
                    mounts.append(n)
            self.samples += 1
            if len(vips) > 1:
                self.violations.append(f"{time.monotonic():.3f}: VIP on {vips}")
            if len(mounts) > 1:
                self.violations.append(f"{time.monotonic():.3f}: mount on {mounts}")
            time.sleep(0.005)

    def finish(self) -> None:
        self.stop_ev.set()
        self.join(5)
        assert self.samples > 10
        assert not self.violations, self.violations[:5]


def wait_for(what: str, fn, timeout: float = 20.0, every: float = 0.05):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def start_daemons(lab, tmp_path, nodes=NODES) -> None:
    for n in nodes:
        lab.spawn(n, ["hasync", "failover", "run"], log=tmp_path / f"{n}.log")


def logs(tmp_path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))


@contextlib.contextmanager
def logs_on_failure(tmp_path) -> Iterator[None]:
    """A check that fails in the block prints the daemons' logs first (they say why)."""
    try:
        yield
    except AssertionError:
        print(logs(tmp_path))
        raise


def status(lab, node: str) -> dict:
    r = lab.exec(node, ["hasync", "status", "--json"], timeout=30)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def client_sees(lab) -> str:
    r = lab.exec("client1", ["sh", "-c", f"socat -T1 - TCP:{lab.vip}:8080,connect-timeout=1 </dev/null"], timeout=10)
    return r.stdout.strip()


def timeline(lab, node: str) -> list[dict]:
    r = lab.exec(node, ["cat", "/var/lib/hasync/failover/timeline.jsonl"])
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def running_cluster(lab, tmp_path, *, text: str = "", start: bool = True, **config) -> Iterator[Watcher]:
    """The one way a test brings a lab cluster up and always down: the config *text* or
    lab_config's with *config* installed, the invariant watcher running and, with *start*,
    both daemons up (node1 active, the service answering). When the block ends well the
    watcher is checked (no VIP or mount on both nodes); on a failure the daemons' logs
    are printed; always the watcher stops and the lab is reset (daemons killed, VIP
    dropped, unmounted)."""
    install(lab, text or lab_config(lab, **config))
    watcher = Watcher(lab)
    watcher.start()
    try:
        with logs_on_failure(tmp_path):
            if start:
                start_daemons(lab, tmp_path)
                node1_active(lab)
            yield watcher
            watcher.finish()
    finally:
        watcher.stop_ev.set()
        watcher.join(5)
        lab.reset()


@pytest.fixture
def cluster(clean_lab, tmp_path):
    """running_cluster without starting the daemons (the test does: up_and_running)."""
    with running_cluster(clean_lab, tmp_path, start=False) as watcher:
        yield clean_lab, watcher


def node1_active(lab) -> None:
    wait_for("node1 active, node2 standby", lambda: role(lab, "node1") == "active" and role(lab, "node2") == "standby", 30)
    wait_for("the demo service on the VIP answering from node1", lambda: "node1" in client_sees(lab), 15)


def up_and_running(lab, tmp_path) -> None:
    start_daemons(lab, tmp_path)
    with logs_on_failure(tmp_path):
        node1_active(lab)


# ------------------------------------------------------------------ tests


def test_crash_of_the_active_node_moves_the_vip_to_node2(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    st = status(lab, "node1")
    assert st["role"] == "active" and st["owned"] == ["fs", "vip", "demo"]
    assert {lk["name"]: lk["state"] for lk in st["links"]} == {"heartbeat": "up", "public": "up", "serial": "up"}
    lab.crash("node1")
    with logs_on_failure(tmp_path):
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
        wait_for("the VIP answering from node2", lambda: "node2" in client_sees(lab), 15)
    kinds = [e["kind"] for e in timeline(lab, "node2")]
    assert "detect" in kinds and "fence" in kinds
    starts = [e for e in timeline(lab, "node2") if e["kind"] == "resource" and e.get("data", {}).get("op") == "start"]
    assert [e["data"]["resource"] for e in starts] == ["fs", "vip", "demo"]
    assert all(e["data"]["duration_ms"] > 0 for e in starts)
    st2 = status(lab, "node2")
    assert st2["peer"]["state"] == "dead" and st2["last_failover"]["result"] == "active"
    # DRBD's fence-peer handler runs `hasync fence node1` now: the daemon fenced it already
    r = lab.exec("node2", ["hasync", "fence", "node1"], timeout=60)
    assert r.exit_code == 0 and "fenced by the failover daemon" in r.stdout, r.stdout + r.stderr
    watcher.finish()


def test_cutting_only_the_heartbeat_link_does_not_fail_over(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    lab.cut("node1", "heartbeat")
    wait_for("node2 reports the heartbeat link dead", lambda: {lk["name"]: lk["state"] for lk in status(lab, "node2")["links"]}["heartbeat"] == "dead", 20, 0.3)
    time.sleep(1.5)  # three deadtimes
    assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
    st = status(lab, "node2")
    assert st["peer"]["state"] == "up"
    assert any("heartbeat" in w for w in st["warnings"])
    wait_for("the service still answering from node1", lambda: "node1" in client_sees(lab), 10)
    watcher.finish()


def test_all_links_cut_survivor_fences_then_takes_over(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    for link in ("heartbeat", "public", "serial"):
        lab.cut("node1", link)
    with logs_on_failure(tmp_path):
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
    assert lab.is_down("node1")  # fenced before node2 started anything
    tl = timeline(lab, "node2")
    kinds = [e["kind"] for e in tl]
    fenced = [i for i, e in enumerate(tl) if e["kind"] == "fence" and e.get("data", {}).get("outcome") == "ok"]
    first_start = next(i for i, e in enumerate(tl) if e["kind"] == "resource" and e["data"].get("op") == "start")
    assert fenced and fenced[0] < first_start, kinds
    watcher.finish()


def test_start_failure_rolls_back_and_hands_over(cluster, tmp_path):
    lab, watcher = cluster
    lab.exec("node1", ["touch", "/etc/hasync/demo-fail-start"], check=True)
    start_daemons(lab, tmp_path)
    with logs_on_failure(tmp_path):
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
        wait_for("the service answering from node2", lambda: "node2" in client_sees(lab), 15)
    assert role(lab, "node1") == "standby"
    tl = timeline(lab, "node1")
    ops = [(e["data"]["resource"], e["data"]["op"], e["data"]["outcome"]) for e in tl if e["kind"] == "resource"]
    i = ops.index(("demo", "start", "failed"))
    assert [o[:2] for o in ops[i + 1 :] if o[1] == "stop"][:3] == [("demo", "stop"), ("vip", "stop"), ("fs", "stop")]
    st = status(lab, "node1")
    assert "failed" in st["flags"]
    watcher.finish()


def test_stop_failure_blocks_and_the_peer_never_starts(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path, on_stop_failure="block"):
        lab.exec("node1", ["touch", "/etc/hasync/demo-fail-stop"], check=True)
        r = lab.exec("node1", ["hasync", "standby", "--wait", "20"], timeout=60)
        assert r.exit_code == 1, r.stdout + r.stderr
        wait_for("node1 stop-failed", lambda: role(lab, "node1") == "stop-failed", 20)
        time.sleep(1.5)
        assert role(lab, "node2") == "standby"
        st = status(lab, "node2")
        assert st["peer"]["role"] == "stop-failed" and st["health"]["level"] == "bad"


def test_stop_failure_escalates_to_self_fence_then_peer_takes_over(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    lab.exec("node1", ["touch", "/etc/hasync/demo-fail-stop"], check=True)
    # node1 dies during this command (it fences itself): run it in the background
    lab.spawn("node1", ["hasync", "standby", "--wait", "30"], log=tmp_path / "standby.out")
    with logs_on_failure(tmp_path):
        wait_for("node1 fenced itself", lambda: lab.is_down("node1"), 30, 0.2)
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
    kinds = [e["kind"] for e in timeline(lab, "node2")]
    assert "fence" in kinds  # node1 was stop-failed: node2 fences before starting
    watcher.finish()


def test_standby_takeover_migrate(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    r = lab.exec("node1", ["hasync", "standby"], timeout=60)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "stop" in r.stdout  # live progress lines
    assert role(lab, "node1") == "standby" and role(lab, "node2") == "active"
    wait_for("the service answering from node2", lambda: "node2" in client_sees(lab), 10)
    r = lab.exec("node1", ["hasync", "takeover"], timeout=60)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
    wait_for("the service answering from node1", lambda: "node1" in client_sees(lab), 10)
    r = lab.exec("node1", ["hasync", "migrate", "--to", "node2", "--dry-run"], timeout=60)
    assert r.exit_code == 0 and "dry run" in r.stdout
    assert role(lab, "node1") == "active"
    r = lab.exec("node2", ["hasync", "migrate", "--to", "node2"], timeout=60)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert role(lab, "node2") == "active" and role(lab, "node1") == "standby"
    wait_for("the service answering from node2", lambda: "node2" in client_sees(lab), 10)
    watcher.finish()


def test_clean_daemon_stop_hands_over_without_fencing(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    # the daemon is a python process: find it by its cmdline among node1's processes
    for pid in lab.pids("node1"):
        try:
            if b"failover\0run" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 15)
        except (FileNotFoundError, ProcessLookupError):
            pass
    wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
    kinds = [e["kind"] for e in timeline(lab, "node2")]
    assert "fence" not in kinds
    watcher.finish()


def test_monitor_restarts_locally_then_fails_over_over_a_broadcast_link(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path, demo_monitor="500ms", broadcast=True):
        st = status(lab, "node2")
        assert {lk["name"]: lk["state"] for lk in st["links"]}["heartbeat"] == "up"  # broadcast works

        def kill_demo():
            lab.exec("node1", ["sh", "-c", "kill $(cat /run/hasync-demo.8080.pid)"], check=True)

        kill_demo()  # first failure: restarted here (max_restarts = 1)
        wait_for("a local restart on node1", lambda: any(e["kind"] == "monitor" for e in timeline(lab, "node1")), 20, 0.3)
        wait_for("node1 active again", lambda: role(lab, "node1") == "active", 20)
        wait_for("the service answering from node1 again", lambda: "node1" in client_sees(lab), 15)
        kill_demo()  # second failure: more than max_restarts -> the chain fails over
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
        wait_for("the service answering from node2", lambda: "node2" in client_sees(lab), 15)
        assert role(lab, "node1") == "standby"
        assert "failed" in status(lab, "node1")["flags"]


def test_isolated_node_fails_the_ping_tiebreak_and_fences_nobody(clean_lab, tmp_path):
    lab = clean_lab
    with running_cluster(lab, tmp_path, ping=(lab.public_addr("client1"),)):
        for link in ("heartbeat", "public", "serial"):
            lab.cut("node2", link)  # node2 is the isolated one: it can't reach the ping node
        wait_for("node2 blocked by the ping tiebreak", lambda: any("ping" in w for w in status(lab, "node2")["warnings"]), 20, 0.3)
        time.sleep(1.0)
        assert not lab.is_down("node1")  # never fenced
        assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
        kinds = [e["kind"] for e in timeline(lab, "node2")]
        assert "ping" in kinds and "fence" not in kinds
        wait_for("the service still answering from node1", lambda: "node1" in client_sees(lab), 10)
        lab.heal("node2")
        wait_for("node2 sees node1 again", lambda: status(lab, "node2")["peer"]["state"] == "up", 20, 0.3)
        assert role(lab, "node1") == "active"


def test_serial_link_alone_keeps_the_peer_alive(cluster, tmp_path):
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    lab.cut("node1", "heartbeat")
    lab.cut("node1", "public")  # the client can't reach node1 now, but node1 is alive
    wait_for("both UDP links dead on node2", lambda: {lk["name"]: lk["state"] for lk in status(lab, "node2")["links"]} == {"heartbeat": "dead", "public": "dead", "serial": "up"}, 20, 0.3)
    time.sleep(1.5)
    assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
    assert status(lab, "node2")["peer"]["state"] == "up"
    watcher.finish()


def test_a_stopped_daemon_reports_a_scheduler_stall_not_a_dead_peer(cluster, tmp_path):
    """SIGSTOP node2's daemon for longer than the stall threshold (warntime/2) but less than
    deadtime: it must count and log the late wake-up; the heartbeats that node1 sent
    meanwhile were queued with their kernel receive times, so nobody fails over."""
    lab, watcher = cluster
    up_and_running(lab, tmp_path)
    st = status(lab, "node2")
    pid = st["daemon"]["pid"]
    assert b"failover" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert st["daemon"]["scheduler_stalls"] == 0
    threshold_s = st["daemon"]["stall_threshold_ms"] / 1000
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(max(0.3, 2 * threshold_s))
    finally:
        os.kill(pid, signal.SIGCONT)
    st = wait_for("node2 counts the stall", lambda: (s := status(lab, "node2"))["daemon"]["scheduler_stalls"] >= 1 and s, 10, 0.2)
    assert st["daemon"]["worst_late_wake_ms"] > st["daemon"]["stall_threshold_ms"]
    stalls = [e for e in timeline(lab, "node2") if e["kind"] == "stall"]
    assert stalls and "scheduler stall" in stalls[0]["message"], logs(tmp_path)
    assert "scheduler stall: the main loop woke" in (tmp_path / "node2.log").read_text()
    assert role(lab, "node1") == "active" and role(lab, "node2") == "standby"
    watcher.finish()
