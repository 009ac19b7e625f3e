"""The effects seam: atomic writes with backups, the runners."""

from __future__ import annotations

import os
import stat

import pytest

from hasync.effects.files import atomic_write
from hasync.effects.run import CommandError, ProcRunner, RecordingRunner, Result
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
