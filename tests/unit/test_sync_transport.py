"""The ssh master + unison socket server command lines (pure)."""

from hasync.sync.transport import link_paths, master_argv, mux_argv, server_script, ssh_options


def test_ssh_options_use_the_cluster_key_only_when_present():
    opts = ssh_options("/etc/hasync/ssh/id_ed25519", "/etc/hasync/ssh/kh", exists=lambda p: True)
    s = " ".join(opts)
    assert "-i /etc/hasync/ssh/id_ed25519" in s and "IdentitiesOnly=yes" in s
    assert "UserKnownHostsFile=/etc/hasync/ssh/kh" in s and "StrictHostKeyChecking=yes" in s
    assert "BatchMode=yes" in s
    bare = " ".join(ssh_options("/nope", "/nope", exists=lambda p: False))
    assert "-i" not in bare.split() and "UserKnownHostsFile" not in bare


def test_link_paths_keep_one_off_runs_apart():
    w = link_paths("node1", "node2")
    o = link_paths("node1", "node2", tag="-once42")
    assert len({w.control, w.forward, w.remote_socket, o.control, o.forward, o.remote_socket}) == 6
    assert w.remote_socket.endswith("server-for-node1.sock")


def test_master_forwards_the_unison_socket_and_runs_the_server():
    p = link_paths("node1", "node2")
    script = server_script(socket_path=p.remote_socket, archive_dir="/var/lib/hasync/sync/unison",
                           incoming="/var/lib/hasync/sync/incoming.jsonl")
    argv = master_argv("root@node2", ("-o", "BatchMode=yes"), p, script)
    assert argv[0] == "ssh" and "-M" in argv
    assert argv[argv.index("-L") + 1] == f"{p.forward}:{p.remote_socket}"
    assert argv[argv.index("-S") + 1] == p.control
    assert argv[-2:] == ("root@node2", script)
    # the server gets its own archive dir, announces readiness, and dies with the connection
    assert "UNISON=/var/lib/hasync/sync/unison unison -socket" in script
    assert "echo READY" in script and "cat >> /var/lib/hasync/sync/incoming.jsonl" in script
    assert "kill $p" in script and "umask 077" in script


def test_the_server_starts_hasync_for_stale_locks_only_when_there_is_a_lock(tmp_path):
    """The VM field run under systemd: the peer's server script ran `hasync sync unlock` (a
    Python start) on every connection, and on a busy emulated node READY came after the
    start timeout, every time: node2's watcher never reached node1."""
    import os
    import subprocess
    import sys

    bindir, archive = tmp_path / "bin", tmp_path / "archive"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for name, body in (("hasync", f'echo "$@" >> {calls}'), ("unison", "[ \"$1\" = -socket ] && exec python3 -c 'import socket, sys, time; "
                                          "socket.socket(socket.AF_UNIX).bind(sys.argv[1]); time.sleep(30)' \"$2\"\n"
                                          "echo 'unison version 2.52.1'")):
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    script = server_script(socket_path=str(tmp_path / "run" / "s.sock"), archive_dir=str(archive), incoming=str(tmp_path / "in"))
    env = {"PATH": f"{bindir}:{os.path.dirname(sys.executable)}:/usr/bin:/bin"}  # python3: the socket's server

    def run() -> str:
        p = subprocess.run(["sh", "-c", script], input=b"", capture_output=True, env=env, timeout=30)
        return p.stdout.decode()

    assert "READY" in run() and not calls.exists()  # no lock: no Python start
    (archive / "lk0123abcd").write_text("")
    assert "READY" in run() and calls.read_text().split() == ["sync", "unlock", "--quiet"]


def test_mux_rides_on_the_master():
    argv = mux_argv("root@node2", (), "/run/hasync/sync/ssh-node2.ctl", "cat /run/hasync/role")
    assert argv == ("ssh", "-S", "/run/hasync/sync/ssh-node2.ctl", "-o", "ControlMaster=no",
                    "root@node2", "cat /run/hasync/role")
