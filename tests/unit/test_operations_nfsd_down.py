"""The NFS server resource's stop leaves no kernel nfsd running (hasync.operations.NFSD_DOWN).

Found by the VM scenario (make test) with issue 15's per-kind trial: the busybox lab's
chain (the example's: ocf:heartbeat:nfsserver, which without systemd stops through
Debian's nfs-kernel-server init script) migrated to node2 and back, then node1 crashed.
The init script's `start-stop-daemon --stop --name nfsd` had not reached the kernel's
nfsd threads on node2 (`ps` there: [nfsd] threads started at the migrate), so the
takeover's start began no grace period (node2's kernel log has no NFSD line after the
migrate's) and the clients' reclaims were refused: client1's kernel logged "lockd:
spurious grace period reject?!" and "lost 2 locks" -- both kinds lost both locks.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from hasync import model, operations

NFS_KINDS = [
    model.Resource("nfs", 'ocf', "heartbeat:nfsserver", params={"nfs_server_scope": "192.0.2.10"}),
    model.Resource("nfs", 'lsb', "nfs-kernel-server"),
    model.Resource("nfs", 'heartbeat', "nfs-kernel-server"),
    model.Resource("nfs", 'systemd', "nfs-server.service"),
    model.Resource("nfs", 'service', "nfsserver"),
]


@pytest.mark.parametrize("res", NFS_KINDS, ids=lambda r: f"{r.type}:{r.agent}")
def test_the_nfs_servers_stop_ends_with_the_nfsd_check_and_only_its_stop(res):
    stop = operations.commands(res, "stop", exists=lambda p: False)
    assert stop[-1].argv[:2] == ("/bin/sh", "-c") and stop[-1].argv[-1] == "nfsd-down"
    assert len(stop) >= 2  # the resource's own stop first
    for op in ("start", "status"):
        assert all(c.argv[-1] != "nfsd-down" for c in operations.commands(res, op, exists=lambda p: False))


@pytest.mark.parametrize("res", [
    model.Resource("exports", 'ocf', "heartbeat:exportfs", params={"directory": "/srv", "fsid": "1"}),
    model.Resource("notify", 'ocf', "heartbeat:nfsnotify"),
    model.Resource("web", 'systemd', "nginx.service"),
    model.Resource("lock", 'lsb', "nfs-common"),
], ids=lambda r: r.agent)
def test_other_resources_stop_as_before(res):
    assert all(c.argv[-1] != "nfsd-down" for c in operations.commands(res, "stop", exists=lambda p: False))


def _run(tmp_path, threads: str | None, statd_running: bool = False):
    """Run the check with fakes on PATH: rpc.nfsd records its call and sets the thread
    count to its argument, as the kernel does; pgrep says whether statd runs; rpc.statd
    and pkill record their calls. Every call goes to one log, in order."""
    t = tmp_path / "threads"
    if threads is not None:
        t.write_text(threads + "\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "calls"
    fakes = {
        "rpc.nfsd": f'echo "rpc.nfsd $*" >> {calls}\necho "$1" > {t}\n',
        "rpc.statd": f'echo "rpc.statd $*" >> {calls}\n',
        "pkill": f'echo "pkill $*" >> {calls}\n',
        "pgrep": f"exit {0 if statd_running else 1}\n",
    }
    for name, body in fakes.items():
        (bin_ / name).write_text("#!/bin/sh\n" + body)
        (bin_ / name).chmod(0o755)
    (cmd,) = [c for c in operations.commands(NFS_KINDS[0], "stop") if c.argv[-1] == "nfsd-down"]
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "NFSD_THREADS": str(t)}
    r = subprocess.run(cmd.argv, env=env, capture_output=True, text=True, timeout=30)
    done = calls.read_text().splitlines() if calls.exists() else []
    return r, done, (t.read_text().strip() if t.exists() else None)


def test_nfsd_left_running_by_the_stop_is_brought_down(tmp_path):
    r, calls, left = _run(tmp_path, "8", statd_running=True)
    assert r.returncode == 0, r.stderr
    assert calls == ["rpc.nfsd 0"] and left == "0"
    assert "still ran 8 threads" in r.stderr


def test_with_statd_gone_a_statd_runs_while_nfsd_goes_down(tmp_path):
    """The VM migrate: the agent had stopped statd, lockd's goodbye to it (SM_UNMON) hung
    until its RPC timed out and the NFS server's stop took 64 s (2.7 s before)."""
    r, calls, left = _run(tmp_path, "8", statd_running=False)
    assert r.returncode == 0, r.stderr
    assert calls == ["rpc.statd --no-notify", "rpc.nfsd 0", "pkill -x rpc.statd"] and left == "0"


@pytest.mark.parametrize("threads", ["0", None], ids=["stopped", "no-nfsd-here"])
def test_nothing_is_done_when_nfsd_is_down_or_absent(tmp_path, threads):
    r, calls, _ = _run(tmp_path, threads)
    assert r.returncode == 0 and calls == [] and r.stderr == ""
