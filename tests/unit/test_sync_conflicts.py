"""The conflict store (issue 12 item 8): a losing version is copied for real (bash + tar),
listed, and removed only by resolve or the retention setting; records written by an
older watcher into status.json are adopted."""

from __future__ import annotations

import json
import os

from hasync.effects.run import ProcRunner
from hasync.model import Sync
from hasync.sync import state
from hasync.sync.conflicts import ConflictStore, capture_argv
from hasync.sync.engine import Syncer


def keep(store: ConflictStore, path: str, at: float, **rec) -> dict:
    entry = store.new_entry(at)
    r = ProcRunner().run(capture_argv(path, os.path.join(entry, "data")), timeout=30)
    assert r.ok, r.stderr
    store.save(entry, dict(rec, path=path, at=at, kept_as=store.data_path(entry, path)))
    return next(x for x in store.entries() if x["id"] == os.path.basename(entry))


def test_capture_keeps_content_mode_links_and_trees(tmp_path):
    src = tmp_path / "etc"
    (src / "d").mkdir(parents=True)
    (src / "secret").write_text("loser\n")
    os.chmod(src / "secret", 0o600)
    os.symlink("/etc/passwd", src / "link")
    (src / "d" / "f").write_text("in a tree\n")
    store = ConflictStore(str(tmp_path / "backups"))
    a = keep(store, str(src / "secret"), 1000.0)
    assert open(a["kept_as"]).read() == "loser\n" and os.stat(a["kept_as"]).st_mode & 0o777 == 0o600
    b = keep(store, str(src / "link"), 1001.0)
    assert os.readlink(b["kept_as"]) == "/etc/passwd"
    c = keep(store, str(src / "d"), 1002.0)
    assert open(os.path.join(c["kept_as"], "f")).read() == "in a tree\n"
    # the original changes any number of times afterwards: the kept copy does not
    for i in range(8):
        (src / "secret").write_text(f"overwrite {i}\n")
    assert open(a["kept_as"]).read() == "loser\n"
    assert os.stat(store.root).st_mode & 0o777 == 0o700


def test_capture_of_a_vanished_file_fails(tmp_path):
    store = ConflictStore(str(tmp_path / "b"))
    entry = store.new_entry(1.0)
    r = ProcRunner().run(capture_argv(str(tmp_path / "gone"), os.path.join(entry, "data")), timeout=30)
    assert not r.ok  # the engine then leaves the conflict unsettled: nothing is overwritten


def test_two_conflicts_on_one_path_both_kept_until_resolved(tmp_path):
    f = tmp_path / "exports"
    store = ConflictStore(str(tmp_path / "backups"))
    f.write_text("first loser\n")
    first = keep(store, str(f), 100.0)
    f.write_text("second loser\n")
    second = keep(store, str(f), 200.0)
    assert [r["id"] for r in store.entries()] == [first["id"], second["id"]]
    assert open(first["kept_as"]).read() == "first loser\n"
    gone = store.resolve({str(f)})
    assert len(gone) == 2 and store.entries() == []
    assert not os.path.exists(first["kept_as"]) and not os.path.exists(second["kept_as"])


def test_retention_removes_only_what_is_older(tmp_path):
    f = tmp_path / "x"
    f.write_text("x\n")
    store = ConflictStore(str(tmp_path / "backups"))
    old, new = keep(store, str(f), 1000.0), keep(store, str(f), 5000.0)
    assert store.expire(0, now=10**9) == []  # 0: keep all
    assert [r["id"] for r in store.expire(3600, now=6000.0)] == [old["id"]]
    assert [r["id"] for r in store.entries()] == [new["id"]]


def test_an_older_watchers_status_conflicts_are_adopted(tmp_path):
    sync = Sync(paths=(str(tmp_path / "etc"),), state_dir=str(tmp_path / "state"), backup_dir=str(tmp_path / "b"))
    os.makedirs(sync.state_dir)
    st = state.load_status(sync.state_dir)
    st["conflicts"] = [{"path": "/etc/exports", "at": 50.0, "winner": "node2", "kept_on": "node1", "kept_as": "/var/lib/hasync/backups/etc/exports"}]
    state.save_status(sync.state_dir, st)
    syncer = Syncer(sync=sync, local_name="node1", peer_name="node2", link=None, runner=ProcRunner())
    [rec] = syncer.conflicts.entries()
    assert rec["path"] == "/etc/exports" and rec["legacy"] is True
    syncer.save_status()
    assert "conflicts" not in json.loads(open(os.path.join(sync.state_dir, state.STATUS)).read())
