"""hasync watch between two lab nodes: real inotify, unison and sshd.

Both nodes run `hasync watch` with the lab's [sync] (paths /etc/exports and
/etc/hasync/sync-test) plus an on_change hook. Files are written and checked through
/proc/<sshd pid>/root (each node's own /etc), so a check costs no nsenter. No timing
assertions: every wait is a generous wait-until.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

pytestmark = pytest.mark.lab

D = "/etc/hasync/sync-test"
CONF = "/etc/hasync/cluster-sync-test.toml"
HOOK = f"{D}/hooked.conf"
HOOK_MARK = "/run/hasync-hook-ran"
WAIT = 60


def wait_until(pred, timeout=WAIT, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(step)
    assert pred(), f"timed out after {timeout}s waiting for {what}"


class Cluster:
    def __init__(self, lab, tmp):
        self.lab, self.tmp = lab, tmp
        self.procs: dict[str, object] = {}

    def p(self, node, path):
        return f"/proc/{self.lab.sshd_pid(node)}/root{path}"

    def write(self, node, path, data, mode=None):
        full = self.p(node, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(data)
        if mode is not None:
            os.chmod(full, mode)

    def read(self, node, path):
        try:
            with open(self.p(node, path)) as f:
                return f.read()
        except OSError:
            return None

    def meta(self, node, path):
        try:
            st = os.lstat(self.p(node, path))
        except FileNotFoundError:
            return None
        kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
        extra = os.readlink(self.p(node, path)) if kind == "l" else self.read(node, path) if kind == "f" else ""
        return (kind, stat.S_IMODE(st.st_mode) if kind != "l" else 0, st.st_uid, st.st_gid, extra)

    def same(self, path):
        return self.meta("node1", path) is not None and self.meta("node1", path) == self.meta("node2", path)

    def log(self, node):
        try:
            with open(f"{self.tmp}/watch-{node}.log") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, node, conf=CONF):
        lg = f"{self.tmp}/watch-{node}.log"
        self.procs[node] = self.lab.spawn(node, ["hasync", "-c", conf, "watch", "-v"], log=lg)
        start_len = len(self.log(node))
        wait_until(lambda: "watch: ready" in self.log(node)[start_len:],
                   what=f"hasync watch on {node} to start")

    def stop(self, node):
        p = self.procs.pop(node, None)
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait(20)

    def status(self, node):
        r = self.lab.exec(node, ["hasync", "-c", CONF, "sync", "status", "--json"], check=True)
        return json.loads(r.stdout)


@pytest.fixture(scope="module")
def cl(lab, tmp_path_factory):
    lab.reset()
    tmp = str(tmp_path_factory.mktemp("sync"))
    base = lab.exec("node1", ["cat", "/etc/hasync/cluster.toml"], check=True).stdout
    conf = base + f'\n[[sync.on_change]]\npath = "{HOOK}"\ncommand = "cat {HOOK} > {HOOK_MARK}"\n'
    for n in ("node1", "node2"):
        lab.sh(n, f"rm -rf {D} /var/lib/hasync /etc/exports /run/hasync {HOOK_MARK}; mkdir -p {D}", check=True)
        lab.exec(n, ["sh", "-c", f"cat > {CONF}"], input=conf, check=True)
    c = Cluster(lab, tmp)
    c.start("node1")
    c.start("node2")
    yield c
    for n in list(c.procs):
        c.stop(n)
    lab.reset()


def test_create_modify_delete(cl):
    cl.write("node1", f"{D}/a.conf", "one\n")
    wait_until(lambda: cl.read("node2", f"{D}/a.conf") == "one\n", what="create")
    cl.write("node1", f"{D}/a.conf", "two\n")  # same size, same second: contents are compared
    wait_until(lambda: cl.read("node2", f"{D}/a.conf") == "two\n", what="modify")
    os.unlink(cl.p("node1", f"{D}/a.conf"))
    wait_until(lambda: cl.meta("node2", f"{D}/a.conf") is None, what="delete")


def test_both_directions_and_exports(cl):
    cl.write("node2", "/etc/exports", "/srv/ha/export 10.200.0.0/24(rw)\n")
    wait_until(lambda: cl.same("/etc/exports"), what="/etc/exports from node2")


def test_rename(cl):
    cl.write("node1", f"{D}/old.conf", "x\n")
    wait_until(lambda: cl.same(f"{D}/old.conf"))
    os.rename(cl.p("node1", f"{D}/old.conf"), cl.p("node1", f"{D}/new.conf"))
    wait_until(lambda: cl.same(f"{D}/new.conf") and cl.meta("node2", f"{D}/old.conf") is None, what="rename")


def test_chmod_keeps_secret_mode_and_chown_numeric(cl):
    cl.write("node1", f"{D}/secret.key", "s3cret\n", mode=0o600)
    wait_until(lambda: cl.same(f"{D}/secret.key"), what="secret")
    assert cl.meta("node2", f"{D}/secret.key")[1] == 0o600
    os.chmod(cl.p("node1", f"{D}/secret.key"), 0o640)
    wait_until(lambda: cl.meta("node2", f"{D}/secret.key")[1] == 0o640, what="chmod")
    os.chown(cl.p("node1", f"{D}/secret.key"), 4321, 4322)  # ids no user has: numeric
    wait_until(lambda: cl.meta("node2", f"{D}/secret.key")[2:4] == (4321, 4322), what="chown")


def test_symlink_is_copied_not_followed(cl):
    before = cl.read("node2", "/etc/passwd")
    os.symlink("/etc/passwd", cl.p("node1", f"{D}/link"))
    wait_until(lambda: cl.same(f"{D}/link"), what="symlink")
    assert cl.meta("node2", f"{D}/link")[0] == "l"
    assert cl.read("node2", "/etc/passwd") == before


def test_directory_tree(cl):
    for i in range(3):
        for j in range(3):
            cl.write("node1", f"{D}/tree/d{i}/e{j}/f.conf", f"{i}{j}\n")
    wait_until(lambda: all(cl.same(f"{D}/tree/d{i}/e{j}/f.conf") for i in range(3) for j in range(3)), what="tree")


def test_burst_of_1000_files(cl):
    cl.lab.sh("node1", f"mkdir -p {D}/burst && cd {D}/burst && for i in $(seq 1000); do echo $i > f$i; done", check=True)
    wait_until(lambda: os.path.isdir(cl.p("node2", f"{D}/burst")) and len(os.listdir(cl.p("node2", f"{D}/burst"))) == 1000,
               timeout=180, step=0.2, what="1000 files")
    assert all(cl.same(f"{D}/burst/f{i}") for i in range(1, 1001))
    assert "batch" in cl.log("node1")  # batches, not one run per file:
    assert cl.log("node1").count("sync: synced") < 200


def test_received_directory_is_one_event_on_the_peer(cl):
    """unison receives a new directory into a temporary directory and renames it at the
    end; node2's watcher does not watch the temporary one, so the arrival of 200 files
    is a single path there (the directory itself), suppressed as an echo -- not 200
    paths (nor ~2,000 inotify events) and no run of node2's own."""
    assert cl.status("node2")["watcher"].get("watch_pruned") is True
    before = cl.status("node2")["watcher"]["echo_suppressed"]
    runs_before = cl.log("node2").count("sync: synced")
    cl.lab.sh("node1", "mkdir -p /tmp/hasync-pruned-src && cd /tmp/hasync-pruned-src "
              "&& for i in $(seq 200); do echo $i > f$i; done", check=True)
    try:
        cl.lab.sh("node1", f"cp -r /tmp/hasync-pruned-src {D}/received", check=True)
    finally:
        cl.lab.sh("node1", "rm -rf /tmp/hasync-pruned-src")
    wait_until(lambda: os.path.isdir(cl.p("node2", f"{D}/received"))
               and len(os.listdir(cl.p("node2", f"{D}/received"))) == 200, what="200 files on node2")
    assert all(cl.same(f"{D}/received/f{i}") for i in range(1, 201))
    wait_until(lambda: cl.status("node2")["watcher"]["echo_suppressed"] > before, what="the echo on node2")
    time.sleep(1)  # anything else node2 saw would be due by now
    assert cl.status("node2")["watcher"]["echo_suppressed"] - before <= 2
    assert cl.log("node2").count("sync: synced") == runs_before


def test_deleted_directory_is_an_echo_on_the_peer(cl):
    """A directory deleted on node1 is deleted on node2; the deletions node2 then sees
    (one per entry) are echoes of it: node2 runs nothing of its own."""
    cl.lab.sh("node1", f"mkdir -p {D}/doomed && cd {D}/doomed && for i in $(seq 100); do echo $i > f$i; done", check=True)
    wait_until(lambda: cl.same(f"{D}/doomed/f100") and len(os.listdir(cl.p("node2", f"{D}/doomed"))) == 100,
               what="100 files on node2")
    time.sleep(1)
    before = cl.status("node2")["watcher"]["echo_suppressed"]
    runs_before = cl.log("node2").count("sync: synced")
    cl.lab.sh("node1", f"rm -rf {D}/doomed", check=True)
    wait_until(lambda: not os.path.lexists(cl.p("node2", f"{D}/doomed")), what="the deletion on node2")
    wait_until(lambda: cl.status("node2")["watcher"]["echo_suppressed"] > before, what="the echo on node2")
    time.sleep(1)
    assert cl.log("node2").count("sync: synced") == runs_before


def test_editor_style_save(cl):
    cl.write("node1", f"{D}/edit.conf", "v1\n")
    wait_until(lambda: cl.same(f"{D}/edit.conf"))
    cl.write("node1", f"{D}/.edit.conf.swp", "junk\n")  # ignored pattern
    cl.write("node1", f"{D}/edit.conf.tmp123", "v2\n")
    os.rename(cl.p("node1", f"{D}/edit.conf.tmp123"), cl.p("node1", f"{D}/edit.conf"))
    wait_until(lambda: cl.read("node2", f"{D}/edit.conf") == "v2\n", what="editor save")
    time.sleep(1)
    assert cl.meta("node2", f"{D}/edit.conf.tmp123") is None
    assert cl.meta("node2", f"{D}/.edit.conf.swp") is None


def test_file_outside_the_paths_is_left_alone(cl):
    cl.write("node1", "/etc/hasync/not-synced.conf", "local only\n")
    cl.write("node1", "/etc/exports.local", "local only\n")
    cl.write("node1", f"{D}/marker", "m\n")  # a synced change after them
    wait_until(lambda: cl.same(f"{D}/marker"))
    time.sleep(0.5)
    assert cl.meta("node2", "/etc/hasync/not-synced.conf") is None
    assert cl.meta("node2", "/etc/exports.local") is None


def test_on_change_hook_runs_on_the_receiving_node(cl):
    cl.write("node1", HOOK, "hooked v1\n")
    wait_until(lambda: cl.read("node2", HOOK_MARK) == "hooked v1\n", what="hook on node2")
    assert cl.read("node1", HOOK_MARK) is None
    wait_until(lambda: any(h["command"].startswith("cat ") for h in cl.status("node1")["hooks"]), what="hook result")


def test_echo_suppressed(cl):
    before = cl.log("node2").count("sync: synced")
    for i in range(5):
        cl.write("node1", f"{D}/echo.conf", f"e{i}\n")
        wait_until(lambda i=i: cl.read("node2", f"{D}/echo.conf") == f"e{i}\n")
        time.sleep(0.4)
    # node2 saw unison's writes but did not send them back as rounds of its own
    assert cl.log("node2").count("sync: synced") - before <= 1
    assert cl.status("node2")["watcher"]["echo_suppressed"] >= 4


def test_both_nodes_changing_at_once(cl):
    """Both watchers run at the same moment: their runs collide, retry, and converge."""
    for i in range(5):
        cl.write("node1", f"{D}/from1-{i}.conf", f"node1 {i}\n")
        cl.write("node2", f"{D}/from2-{i}.conf", f"node2 {i}\n")
        time.sleep(0.15)
    wait_until(lambda: all(cl.same(f"{D}/from1-{i}.conf") and cl.same(f"{D}/from2-{i}.conf") for i in range(5)),
               what="both directions")
    wait_until(lambda: cl.status("node1")["pending"] == [] and cl.status("node2")["pending"] == [],
               what="nothing pending")


def test_conflict_keeps_both_versions(cl):
    cl.write("node1", f"{D}/conflict.conf", "base\n")
    wait_until(lambda: cl.same(f"{D}/conflict.conf"))
    cl.stop("node1")
    cl.stop("node2")
    cl.write("node1", f"{D}/conflict.conf", "node1 version\n")
    cl.write("node2", f"{D}/conflict.conf", "node2 version, the active one\n")
    cl.lab.sh("node2", "mkdir -p /run/hasync && echo active > /run/hasync/role", check=True)
    try:
        cl.start("node1")
        wait_until(lambda: cl.read("node1", f"{D}/conflict.conf") == "node2 version, the active one\n", what="conflict settled")
        st = cl.status("node1")
        (c,) = [c for c in st["conflicts"] if c["path"] == f"{D}/conflict.conf"]
        assert c["winner"] == "node2" and c["kept_on"] == "node1"
        assert len(c["nodes"]["node1"]["sha256"]) == 64 and len(c["nodes"]["node2"]["sha256"]) == 64
        assert c["nodes"]["node1"]["sha256"] != c["nodes"]["node2"]["sha256"]
        assert cl.read("node1", c["kept_as"]) == "node1 version\n"  # the loser, outside the synced dir
        assert "CONFLICT" in cl.log("node1")
        # issue 12 item 8: unison keeps 5 backups of ordinary overwrites; the loser outlives
        # any number of them (here 7, each one overwriting node1's copy)
        cl.start("node2")
        for i in range(7):
            cl.write("node2", f"{D}/conflict.conf", f"later edit {i}\n")
            wait_until(lambda i=i: cl.read("node1", f"{D}/conflict.conf") == f"later edit {i}\n", what=f"edit {i}")
        assert cl.read("node1", c["kept_as"]) == "node1 version\n"
        assert c["loser"] == "node1"
        text = cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "status"], check=True).stdout
        assert "conflicts (1)" in text and f"{D}/conflict.conf" in text
        assert "node1's version: on node1 as " + c["kept_as"] in text
        r = cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "resolve", f"{D}/conflict.conf"], check=True)
        assert "resolved" in r.stdout
        assert cl.status("node1")["conflicts"] == []
        assert cl.meta("node1", c["kept_as"]) is None  # resolve released the kept version
    finally:
        cl.lab.sh("node2", "rm -f /run/hasync/role")
        if "node2" not in cl.procs:
            cl.start("node2")


def test_conflict_lost_on_the_peer_is_fetched_and_kept(cl):
    """The settling node holds the services and wins: the peer's losing version is copied
    here over the ssh connection (tar) before unison overwrites it there."""
    cl.write("node1", f"{D}/remote-loser.conf", "base\n")
    wait_until(lambda: cl.same(f"{D}/remote-loser.conf"))
    cl.stop("node1")
    cl.stop("node2")
    cl.write("node1", f"{D}/remote-loser.conf", "node1 version, the active one\n")
    cl.write("node2", f"{D}/remote-loser.conf", "node2 version\n", mode=0o640)
    cl.lab.sh("node1", "mkdir -p /run/hasync && echo active > /run/hasync/role", check=True)
    try:
        cl.start("node1")
        wait_until(lambda: cl.read("node2", f"{D}/remote-loser.conf") == "node1 version, the active one\n", what="conflict settled")
        (c,) = [c for c in cl.status("node1")["conflicts"] if c["path"] == f"{D}/remote-loser.conf"]
        assert (c["winner"], c["loser"], c["kept_on"]) == ("node1", "node2", "node1")
        assert cl.read("node1", c["kept_as"]) == "node2 version\n"
        assert cl.meta("node1", c["kept_as"])[1] == 0o640  # as it was on node2
        cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "resolve", "--all"], check=True)
    finally:
        cl.lab.sh("node1", "rm -f /run/hasync/role")
        cl.start("node2")


def test_dry_run_shows_diffs(cl):
    cl.stop("node1")
    try:
        cl.write("node1", f"{D}/dry.conf", "line one\nline two\n")
        cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "--once", "-p", f"{D}/dry.conf"], check=True)
        cl.write("node1", f"{D}/dry.conf", "line one\nline 2\n")
        r = cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "--once", "--dry-run"], check=True)
        assert f"{D}/dry.conf" in r.stdout
        assert "-line two" in r.stdout and "+line 2" in r.stdout
        assert cl.read("node2", f"{D}/dry.conf") == "line one\nline two\n"  # nothing moved
    finally:
        cl.start("node1")
    wait_until(lambda: cl.same(f"{D}/dry.conf"), what="the reconciliation at start")


def test_peer_down_journal_restart_and_return(cl):
    """Peer crashes mid-sync; changes are journaled, survive a watcher restart, and
    arrive when the peer is back."""
    cl.lab.sh("node1", f"mkdir -p {D}/crash && cd {D}/crash && for i in $(seq 300); do echo $i > f$i; done", check=True)
    time.sleep(0.3)
    cl.procs.pop("node2", None)
    cl.lab.crash("node2")
    cl.write("node1", f"{D}/while-down.conf", "written while node2 was down\n")
    wait_until(lambda: f"{D}/while-down.conf" in cl.status("node1")["pending"], what="pending path")
    # restart the watcher while the change is still pending: the journal survives
    cl.stop("node1")
    journal = json.loads(cl.read("node1", "/var/lib/hasync/sync/journal.json"))
    assert f"{D}/while-down.conf" in journal["pending"]
    cl.procs["node1"] = cl.lab.spawn("node1", ["hasync", "-c", CONF, "watch", "-v"], log=f"{cl.tmp}/watch-node1.log")
    time.sleep(2)
    cl.lab.heal("node2")
    wait_until(lambda: cl.same(f"{D}/while-down.conf"), timeout=120, step=0.2, what="sync after the peer returned")
    wait_until(lambda: all(cl.same(f"{D}/crash/f{i}") for i in range(1, 301)), timeout=120, step=0.2)
    wait_until(lambda: cl.status("node1")["pending"] == [], what="journal emptied")
    cl.start("node2")


def test_full_state_dir_keeps_the_watcher_running(cl):
    """issue 12 item 12: the state dir is a tmpfs filled up (every write: ENOSPC, for real).
    The watcher starts anyway (no crash loop), keeps running, says so in `sync status` and
    its log, and once there is room again the change made meanwhile arrives."""
    s = "/var/lib/hasync/sync"
    keep = f"/tmp/hasync-state-{os.getpid()}"  # /tmp is the host's: outside the tmpfs
    cl.stop("node1")
    cl.lab.sh("node1", f"rm -rf {keep} && cp -a {s} {keep} && mount -t tmpfs -o size=16m,mode=0700 tmpfs {s} "
              f"&& cp -a {keep}/. {s}/ && rm -rf {keep} && {{ dd if=/dev/zero of={s}/filler bs=64k 2>/dev/null; true; }}",
              check=True)
    try:
        assert cl.lab.sh("node1", f"echo x > {s}/probe").exit_code != 0  # full
        log_from = len(cl.log("node1"))
        cl.start("node1")  # a restart while full: it comes up
        cl.write("node1", f"{D}/while-full.conf", "written while the state dir was full\n")
        wait_until(lambda: "No space left" in cl.status("node1")["watcher"].get("state_error", ""),
                   what="the state problem in sync status")
        time.sleep(2)  # a few retries
        assert cl.procs["node1"].poll() is None, cl.log("node1")[log_from:]
        st = cl.status("node1")
        assert st["watcher"]["running"]
        text = cl.lab.exec("node1", ["hasync", "-c", CONF, "sync", "status"], check=True).stdout
        assert "state problem" in text and "(degraded)" in text
        assert "cannot write to the state directory" in cl.log("node1")[log_from:]
        cl.lab.sh("node1", f"rm -f {s}/filler", check=True)
        wait_until(lambda: cl.same(f"{D}/while-full.conf"), what="the change made while full")
        wait_until(lambda: "state_error" not in cl.status("node1")["watcher"], what="the problem cleared")
        assert "takes writes again" in cl.log("node1")[log_from:]
        assert cl.procs["node1"].poll() is None
    finally:
        cl.stop("node1")
        cl.lab.sh("node1", f"rm -f {s}/filler; cp -a {s} {keep} && umount {s} && rm -rf {s} && cp -a {keep} {s}; rm -rf {keep}")
        cl.start("node1")


def test_node_local_files_stay_when_etc_hasync_is_synced(cl):
    """issue 13 item 1: both nodes sync the whole of /etc/hasync. Each keeps its own
    /etc/hasync/ssh (here: its own sshd host key; hasync's key and known_hosts), and
    hasync's ssh works both ways afterwards."""
    conf = "/etc/hasync/cluster-etc-hasync.toml"
    text = cl.read("node1", CONF).replace(
        'paths = ["/etc/exports", "/etc/hasync/sync-test"]', 'paths = ["/etc/hasync"]').replace(
        "ignore = [", 'ignore = ["lab.json", ')  # the lab's own per-node file (harness, not hasync)
    assert 'paths = ["/etc/hasync"]' in text
    listing = "cd /etc/hasync/ssh && for f in *; do echo \"$f $(sha256sum < $f | cut -c1-16)\"; done"
    before = {n: cl.lab.sh(n, listing, check=True).stdout for n in ("node1", "node2")}
    assert before["node1"] != before["node2"]  # the host keys differ
    cl.stop("node1")
    cl.stop("node2")
    for n in ("node1", "node2"):
        cl.write(n, conf, text)
    try:
        cl.start("node1", conf)
        cl.start("node2", conf)
        cl.write("node1", "/etc/hasync/shared.conf", "shared\n")
        wait_until(lambda: cl.read("node2", "/etc/hasync/shared.conf") == "shared\n", what="/etc/hasync/shared.conf")
        cl.write("node2", "/etc/hasync/shared.conf", "shared, edited on node2\n")
        wait_until(lambda: cl.read("node1", "/etc/hasync/shared.conf") == "shared, edited on node2\n", what="the edit back")
        for n in ("node1", "node2"):
            assert cl.lab.sh(n, listing, check=True).stdout == before[n], n
        for a, b in (("node1", "node2"), ("node2", "node1")):
            ssh = cl.lab.exec(a, ["ssh", "-i", "/etc/hasync/ssh/id_ed25519", "-o", "UserKnownHostsFile=/etc/hasync/ssh/known_hosts",
                                  "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{b}", "uname", "-n"])
            assert ssh.stdout.strip() == b, ssh.stderr
        assert "never synced, each node keeps its own: /etc/hasync/ssh" in cl.log("node1")
    finally:
        cl.stop("node1")
        cl.stop("node2")
        for n in ("node1", "node2"):
            cl.lab.sh(n, f"rm -f {conf} /etc/hasync/shared.conf")
        cl.start("node1")
        cl.start("node2")


def test_systemd_notify_ready_and_watchdog(cl, tmp_path):
    """Type=notify: READY=1 after the first reconciliation, then WATCHDOG=1 keep-alives."""
    import socket

    sock_path = str(tmp_path / "notify.sock")  # /tmp is shared between host and nodes
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(30)
    cl.stop("node1")
    p = cl.lab.spawn("node1", ["hasync", "-c", CONF, "watch"], log=f"{cl.tmp}/watch-notify.log",
                     env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "1000000"})
    try:
        got = []
        while "WATCHDOG=1" not in got:
            got.append(srv.recv(200).decode())
        assert "READY=1" in got and got.index("READY=1") < got.index("WATCHDOG=1")
    finally:
        srv.close()
        p.terminate()
        p.wait(20)
        cl.start("node1")
