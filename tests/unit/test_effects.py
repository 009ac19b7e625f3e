"""The effects seam: atomic writes with backups, the runners, the key file, sd_notify,
the clocks, the process tuning."""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from hasync.effects import process
from hasync.effects.clock import FakeClock, MonotonicClock
from hasync.effects.files import atomic_write
from hasync.effects.keyfile import KeyFileError, load_key
from hasync.effects.run import CommandError, ProcRunner, RecordingRunner, Result, merged_env
from hasync.effects.systemd import Notifier
from hasync_lab.ns.runner import ShRunner  # the harness's runner keeps the product's contract


def test_atomic_write_creates_keeps_mode_and_backs_up(tmp_path):
    f = tmp_path / "etc" / "exports"
    assert atomic_write(f, "one\n", mode=0o600, backup_dir=tmp_path / "bk", now=0) is None
    assert f.read_text() == "one\n" and stat.S_IMODE(f.stat().st_mode) == 0o600
    backup = atomic_write(f, "two\n", backup_dir=tmp_path / "bk", now=0)
    assert backup is not None and backup.read_text() == "one\n"
    assert str(backup).startswith(str(tmp_path / "bk")) and backup.name.endswith(".19700101T000000")
    assert f.read_text() == "two\n" and stat.S_IMODE(f.stat().st_mode) == 0o600  # mode kept
    # same content: no new backup
    assert atomic_write(f, "two\n", backup_dir=tmp_path / "bk") is None
    assert [p.name for p in f.parent.iterdir()] == ["exports"]  # no temp files left


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    f = tmp_path / "x"
    f.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(f, "new")
    assert f.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


@pytest.mark.parametrize("runner", [ProcRunner(), ShRunner()], ids=["proc", "sh"])
def test_runners_agree(runner):
    assert runner.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="hi").stdout == "hi"
    r = runner.run(["sh", "-c", "echo err >&2; exit 3"])
    assert (r.exit_code, r.stderr) == (3, "err\n") and not r.ok
    assert runner.run(["no-such-command-here"]).exit_code == 127
    assert runner.run(["sh", "-c", "echo $HASYNC_T"], env={"HASYNC_T": "v"}).stdout == "v\n"
    with pytest.raises(CommandError, match="exited 3"):
        runner.run(["sh", "-c", "exit 3"], check=True)
    with pytest.raises(CommandError, match="exited 127"):  # a command that cannot start fails a check too
        runner.run(["no-such-command-here"], check=True)


def test_proc_runner_timeout_kills_the_group_and_does_not_wait_for_daemons():
    r = ProcRunner().run(["sh", "-c", "sleep 5 & sleep 5"], timeout=0.2)
    assert r.exit_code == 124 and "timed out" in r.stderr
    # a background child holding stdout does not keep us waiting
    r = ProcRunner().run(["sh", "-c", "(sleep 3 &) ; echo done"], timeout=2)
    assert r.ok and r.stdout == "done\n"  # not killed by the 2 s timeout: only sh was waited for


def test_recording_runner():
    rr = RecordingRunner({("blkid", "/dev/vdb"): Result(("blkid", "/dev/vdb"), 2, "", "")})
    assert rr.run(["blkid", "/dev/vdb"]).exit_code == 2
    assert rr.run(["true"]).ok
    assert rr.calls == [("blkid", "/dev/vdb"), ("true",)]
    with pytest.raises(AssertionError):
        RecordingRunner(strict=True).run(["x"])


def test_proc_runner_spawn_does_not_wait(tmp_path):
    flag = tmp_path / "flag"
    t0 = time.monotonic()
    assert ProcRunner().spawn(["sh", "-c", f"sleep 0.3; touch {flag}"])
    assert time.monotonic() - t0 < 0.25 and not flag.exists()  # not waited for
    end = time.monotonic() + 5
    while not flag.exists() and time.monotonic() < end:
        time.sleep(0.02)
    assert flag.exists()
    assert not ProcRunner().spawn(["no-such-command-here"])


def test_recording_runner_fakes_spawn():
    rr = RecordingRunner()
    assert rr.run(["ip", "addr", "add"]).ok and rr.spawn(["send_arp", "eth0"])
    assert rr.calls == [("ip", "addr", "add"), ("send_arp", "eth0")] and rr.spawned == [("send_arp", "eth0")]
    with pytest.raises(AssertionError):
        RecordingRunner(strict=True).spawn(["x"])


def test_key_file_must_be_0600(tmp_path):
    k = tmp_path / "authkey"
    k.write_text("a-very-secret-key-with-some-length\n")
    os.chmod(k, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(str(k))
    os.chmod(k, 0o600)
    assert load_key(str(k)) == b"a-very-secret-key-with-some-length"
    with pytest.raises(KeyFileError):
        load_key(str(tmp_path / "missing"))
    with pytest.raises(KeyFileError, match="regular file"):
        load_key(str(tmp_path))
    k.write_text("short")
    with pytest.raises(KeyFileError, match="too short"):
        load_key(str(k))


def test_notify_to_a_path_socket(tmp_path):
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.ready("node1: standby")
        assert srv.recv(100) == b"READY=1\nSTATUS=node1: standby"
        assert n.watchdog() and srv.recv(100) == b"WATCHDOG=1"
        assert n.status("watching /etc") and srv.recv(100) == b"STATUS=watching /etc"
    finally:
        srv.close()


def test_watchdog_pings_at_half_of_watchdog_sec():
    """systemd.service(5): the service should ping at about half the interval (one
    late ping is then not yet a missed deadline). Both daemons use this rule."""
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_interval == 5.0
    assert Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 5.0
    assert Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}).watchdog_interval is None  # meant for another process
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None


def test_abstract_socket_and_no_socket():
    name = f"hasync-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.stopping() and srv.recv(100) == b"STOPPING=1"
    finally:
        srv.close()
    assert not Notifier({}).ready()
    assert not Notifier({"NOTIFY_SOCKET": "/nonexistent/x"}).ready()


def test_clocks():
    c = FakeClock()
    c.sleep(1.5)
    c.advance(0.5)
    assert c.now() == 1002.0 and c.wall() == c.epoch + 1002.0
    m = MonotonicClock()
    assert m.now() <= time.monotonic() and abs(m.wall() - time.time()) < 5


def test_process_stats():
    st = process.proc_stats()
    assert st["rss_mb"] > 0 and st["cpu_s"] >= 0
    assert process.raise_priority("none") == "unchanged"


def test_a_command_gets_home_when_this_process_has_none(monkeypatch):
    """A systemd service has no HOME (only with User=): unison refuses to start without one
    ('Environment variable HOME not found'), so hasync-watch.service crash-looped on the VM
    tier's systemd guests. Commands get the user's home directory then."""
    import pwd

    monkeypatch.delenv("HOME", raising=False)
    home = pwd.getpwuid(os.getuid()).pw_dir
    assert merged_env(None)["HOME"] == home
    assert ProcRunner().run(("sh", "-c", 'echo "$HOME"')).stdout.strip() == home
    monkeypatch.setenv("HOME", "/somewhere")
    assert merged_env(None)["HOME"] == "/somewhere"  # one that is set is kept
