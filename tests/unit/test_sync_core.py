"""Conflict policy, echo suppression, scope, journal/status, and one batch
through the engine with a recording runner (no unison, no ssh)."""

import errno
import os
import subprocess

import pytest

from hasync.effects.run import RecordingRunner, Result
from hasync.model import OnChange, Sync
from hasync.sync import state
from hasync.sync.echo import EchoTable, fingerprint, note_lines
from hasync.sync.engine import Syncer
from hasync.sync.policy import Side, decide
from hasync.sync.scope import Scope, symlink_problems
from hasync.sync.sides import inspect_command, parse_inspect
from hasync.sync.unison import Outcome

A, B = Side("file", "aa", mtime=100.0), Side("file", "bb", mtime=200.0)


def test_policy_services_holder_wins_even_when_older():
    assert decide("active", "standby", A, B).winner == "local"
    assert decide("standby", "active", B, A).winner == "remote"
    assert decide(None, "primary", B, A).winner == "remote"


def test_policy_newer_when_nobody_or_both_hold_services():
    assert decide(None, None, A, B).winner == "remote"
    assert decide("active", "active", B, A).winner == "local"
    assert "newer" in decide(None, None, B, A).reason


def test_policy_existing_file_beats_deletion_on_a_tie_of_roles():
    gone = Side("absent")
    assert decide(None, None, gone, A).winner == "remote"
    assert decide(None, None, A, gone).winner == "local"
    # ...but the services holder wins even with a deletion (the file is in its backups)
    assert decide("active", None, gone, A).winner == "local"


def test_echo_table(tmp_path):
    f = tmp_path / "exports"
    f.write_text("/srv 10.0.0.0/8(rw)\n")
    fp = fingerprint(str(f))
    t = EchoTable(ttl=10)
    assert t.absorb(note_lines({str(f): fp}, 0.0) + "garbage\n", now=5.0) == 1
    assert t.is_echo(str(f), fingerprint(str(f)), now=6.0)
    assert t.is_echo(str(f), fingerprint(str(f)), now=7.0)  # a second event of the same write
    f.write_text("/srv 10.0.0.0/8(ro)\n")  # a real change afterwards is not an echo
    assert not t.is_echo(str(f), fingerprint(str(f)), now=8.0)
    assert not t.is_echo(str(f), fp, now=16.0)  # expired
    t.expire(16.0)
    assert len(t) == 0


def test_fingerprint_sees_mode_and_links(tmp_path):
    f = tmp_path / "key"
    f.write_text("s")
    os.chmod(f, 0o600)
    a = fingerprint(str(f))
    os.chmod(f, 0o644)
    assert fingerprint(str(f)) != a
    os.symlink("/etc/passwd", tmp_path / "l")
    assert fingerprint(str(tmp_path / "l")) == "l:/etc/passwd"
    assert fingerprint(str(tmp_path / "nope")) == "-"


def test_scope():
    s = Scope(("/etc/hasync", "/etc/exports"), ("*.swp", "*~"))
    assert s.contains("/etc/exports")
    assert s.contains("/etc/hasync/sub/x.conf")
    assert not s.contains("/etc/exports.tmp")
    assert not s.contains("/etc/hostname")
    assert not s.contains("/etc/hasync/.x.swp")
    assert not s.contains("/etc/hasync/sub~/x")  # an ignored directory hides its contents
    assert not s.contains("/etc/hasync/.unison.x.conf.123.unison.tmp")
    watches = s.watches(lambda p: p == "/etc/hasync")
    assert watches == [("/etc", False), ("/etc/hasync", True)]
    assert Scope(("/etc/d", "/etc/d/x")).watches(lambda p: True) == [("/etc/d", True)]


def test_symlink_problems(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "via")
    (real / "f").write_text("")
    assert symlink_problems([str(real / "f")]) == []
    assert "symlink" in symlink_problems([str(tmp_path / "via" / "f")])[0]


def test_journal_survives_reload(tmp_path):
    j = state.Journal.load(str(tmp_path))
    j.add(["/etc/a", "/etc/b"], wall=1.0)
    j.attempts, j.last_error = 2, "peer down"
    j.save()
    assert os.stat(j.path).st_mode & 0o777 == 0o600
    k = state.Journal.load(str(tmp_path))
    assert k.pending == {"/etc/a": 1.0, "/etc/b": 1.0} and k.attempts == 2
    k.done(["/etc/a"])
    assert list(k.pending) == ["/etc/b"]
    (tmp_path / state.JOURNAL).write_text("{broken")
    assert state.Journal.load(str(tmp_path)).pending == {}


def test_backoff():
    assert [state.backoff(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_conflicts_of_an_older_status_file_resolved():
    st = {"conflicts": [{"path": "/etc/b"}, {"path": "/etc/a", "n": 2}]}
    assert state.resolve_conflicts(st, {"/etc/a"})[0]["n"] == 2
    assert [c["path"] for c in st["conflicts"]] == ["/etc/b"]


def test_inspect_roundtrip():
    cmd = inspect_command(["/etc/a b"], "/run/hasync/role")
    assert "'/etc/a b'" in cmd
    sides, role = parse_inspect("file 200 3 " + "c" * 64 + "\nROLE active\n", ["/etc/a b"])
    assert sides["/etc/a b"].sha256 == "c" * 64 and sides["/etc/a b"].mtime == 200.0
    assert role == "active"
    sides, role = parse_inspect("absent 0 0 -\nROLE \n", ["/x"])
    assert not sides["/x"].exists and role is None


class FakeLink:
    remote_root = "socket://{/run/fwd.sock}//"
    plain_root = "ssh://root@node2//"
    opts = ()

    def __init__(self):
        self.notes = []

    def note(self, text):
        self.notes.append(text)
        return True

    def ssh(self, command):
        return ("ssh", "node2", command)


def _sync(tmp_path, **kw):
    return Sync(
        paths=(str(tmp_path / "etc"),),
        state_dir=str(tmp_path / "state"),
        backup_dir=str(tmp_path / "backups"),
        **kw,
    )


def conflict_then(tmp_path, settle: Result) -> tuple[str, list, RecordingRunner]:
    """/etc/exports changed on both sides: unison's first run reports the conflict, the
    settling run answers *settle*; the peer's inspect says its version and role."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "exports").write_text("mine\n")
    p = str(etc / "exports")
    r = p.lstrip("/")
    first = Result((), 1, f"changed  <-?-> changed    {r}  \n", f"[CONFLICT] Skipping {r}\n  skipped: {r} (contents changed on both sides)\n")
    unison_calls: list = []

    def answer(argv):
        if argv[0] == "unison":
            unison_calls.append(argv)
            return first if len(unison_calls) == 1 else settle
        if "ROLEFILE" in argv[-1]:
            return Result(argv, 0, "file 50 6 " + "b" * 64 + "\nROLE standby\n", "")
        return Result(argv, 0, "", "")

    runner = RecordingRunner()
    runner.run = lambda argv, **kw: (runner.calls.append(tuple(argv)), answer(tuple(argv)))[1]
    return p, unison_calls, runner


def test_engine_settles_a_conflict_and_runs_hooks(tmp_path):
    etc = tmp_path / "etc"
    p = str(etc / "exports")
    r = p.lstrip("/")
    p, unison_calls, runner = conflict_then(tmp_path, Result((), 0, "", f"[BGN] Updating file {r} from / to //node2//\n"))
    syncer = Syncer(
        sync=_sync(tmp_path, on_change=(OnChange(str(etc / "exports"), "exportfs -ra"),)),
        local_name="node1",
        peer_name="node2",
        link=FakeLink(),
        runner=runner,
        role_source=lambda: "active",
        wall=lambda: 1234.0,
    )
    res = syncer.run_batch([p])
    assert res.outcome is Outcome.OK and res.ok
    assert len(unison_calls) == 2
    assert "-prefer" not in unison_calls[0]
    assert unison_calls[1][unison_calls[1].index("-prefer") + 1] == "/"  # we hold the services
    (c,) = syncer.conflicts.entries()
    assert c["winner"] == "node1" and c["loser"] == "node2" and c["kept_on"] == "node1"
    # the peer's losing version is copied here before the run that overwrites it
    capture = next(i for i, a in enumerate(runner.calls) if a[0] == "bash" and "tar" in a[-1])
    settle = [i for i, a in enumerate(runner.calls) if a[0] == "unison"][1]
    assert capture < settle and "ssh node2 'tar -C / --numeric-owner -cf - -- " in runner.calls[capture][-1]
    assert c["kept_as"].startswith(str(tmp_path / "backups" / ".hasync-conflicts")) and c["kept_as"].endswith(p)
    assert c["nodes"]["node2"]["sha256"] == "b" * 64
    assert len(c["nodes"]["node1"]["sha256"]) == 64
    ssh_cmds = [a[-1] for a in runner.calls if a[0] == "ssh"]
    assert p in "".join(syncer.link.notes)  # echo note for the peer
    assert any("exportfs -ra" in cmd for cmd in ssh_cmds)  # hook on the receiving node
    assert res.hooks[0]["node"] == "node2" and res.hooks[0]["exit"] == 0


def test_engine_fatal_keeps_batch_for_retry(tmp_path):
    runner = RecordingRunner()
    runner.run = lambda argv, **kw: Result(tuple(argv), 3, "", "Fatal error: Lost connection with the server\n")
    syncer = Syncer(sync=_sync(tmp_path), local_name="node1", peer_name="node2", link=FakeLink(), runner=runner)
    res = syncer.run_batch([str(tmp_path / "etc" / "x")])
    assert not res.ok and res.outcome is Outcome.FATAL
    assert "Lost connection" in res.error
    assert syncer.status["last_sync"]["ok"] is False


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 64 KiB tmpfs, filled up: every write there fails with ENOSPC (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "state"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        with open(d / "filler", "wb", buffering=0) as f:
            with pytest.raises(OSError) as e:
                while True:
                    f.write(b"\0" * 4096)
        assert e.value.errno == errno.ENOSPC
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_state_writer_survives_enospc_and_recovers(full_tmpfs, tmp_path, caplog):
    """issue 12 item 12: a full state dir (for real: a full tmpfs) never raises out of the
    writer; it says so (log, runtime status with state_error) and writes again, with
    backoff, once there is room."""
    fallback = str(tmp_path / "run" / state.RUNTIME_STATUS)
    w = state.StateWriter(str(full_tmpfs), fallback)
    j = state.Journal(str(full_tmpfs))
    j.add(["/etc/exports"], wall=1.0)
    status = {"watcher": {"pid": os.getpid(), "updated": 100.0}, "pending": ["/etc/exports"]}
    assert w.save_journal(j, now=10.0) is False
    assert w.save_status(status, now=10.0) is False
    assert "No space left on device" in w.error and w.retry_at > 10.0
    assert "state_error" not in status["watcher"]  # the caller's status stays clean
    assert sum("cannot write to the state directory" in r.getMessage() for r in caplog.records) == 1
    shown = state.load_status(str(full_tmpfs), fallback)
    assert "No space left" in shown["watcher"]["state_error"] and shown["pending"] == ["/etc/exports"]
    first_retry = w.retry_at
    assert w.save_status(status, now=first_retry) is False
    assert w.retry_at - first_retry > first_retry - 10.0  # backoff grows
    os.unlink(full_tmpfs / "filler")
    assert w.save_journal(j, now=w.retry_at) is True
    assert w.save_status(dict(status, watcher={"updated": 200.0}), now=w.retry_at or 0) is True
    assert w.error == "" and not os.path.exists(fallback)
    assert state.Journal.load(str(full_tmpfs)).pending == {"/etc/exports": 1.0}
    assert "state_error" not in state.load_status(str(full_tmpfs), fallback)["watcher"]


def test_a_locked_archive_while_settling_is_a_retry_not_a_traceback(tmp_path, caplog):
    """Found by the ns campaign (sync-both-edit): the settling run met the peer's unison
    holding the archive lock; the batch was retried, but the watcher's log had a traceback,
    which the campaign's log audit rightly counts as a defect."""
    locked = Result((), 3, "", "Warning: the archives are locked. If no other instance of unison is running, the locks should be removed.\n")
    p, _calls, runner = conflict_then(tmp_path, locked)
    syncer = Syncer(sync=_sync(tmp_path), local_name="node1", peer_name="node2", link=FakeLink(), runner=runner,
                    role_source=lambda: "active", wall=lambda: 1234.0)
    with caplog.at_level("DEBUG", logger="hasync.sync"):
        res = syncer.run_batch([p])
    assert not res.ok and res.outcome is Outcome.FAILED
    assert "archives are locked" in res.error  # the watcher's is_locked retry path sees it
    assert not any(rec.exc_info for rec in caplog.records), "a traceback in the log"
    assert any("kept for the retry" in rec.getMessage() for rec in caplog.records)
