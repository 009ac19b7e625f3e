"""The connection to the peer: one ssh master that also runs a unison socket server.

A unison run over a fresh ssh connection costs ~0.35 s, nearly all of it ssh set-up and
the remote unison starting. ``hasync watch`` therefore keeps, per peer:

- one ssh connection (the cluster's own key and known_hosts) in ControlMaster mode, so
  later ssh commands (echo notes, hooks, checksums) reuse it;
- on the peer, as that connection's command, ``unison -socket`` on a Unix socket in a
  0700 directory; the script kills it when the connection closes (stdin EOF);
- a local Unix socket forwarded to it (``ssh -L local.sock:remote.sock``).

Every run is then ``unison / socket://{local.sock}//``: ~10 ms instead of ~350 ms.
Argument building is pure; ``PeerLink`` is the effect.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass

from hasync.config.paths import HASYNC_RUN_ROOT
from hasync.sync.unison import socket_root, ssh_root

log = logging.getLogger("hasync.sync")

RUN_DIR = HASYNC_RUN_ROOT + "/sync"  # sockets; both nodes have their own /run


def ssh_options(key: str, known_hosts: str, *, exists=os.path.exists) -> tuple[str, ...]:
    """ssh -o options: batch mode, keep-alives, the cluster's own key and known_hosts
    (each only when the file exists; the system's ssh configuration otherwise)."""
    opts = [
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        "-o", "ServerAliveInterval=2",
        "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
    ]
    if key and exists(key):
        opts += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if known_hosts and exists(known_hosts):
        opts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    return tuple(opts)


def server_script(*, socket_path: str, archive_dir: str, incoming: str, unison: str = "unison") -> str:
    """The peer side: report the unison version, start the socket server, then copy
    stdin to the peer's *incoming* file (the echo notes: no ssh session per note) and
    kill the server when the ssh connection ends (stdin reaches EOF)."""
    d = os.path.dirname(socket_path)
    q = shlex.quote
    return (
        f"umask 077; mkdir -p {q(d)} {q(archive_dir)} && chmod 700 {q(d)} || exit 1; "
        f"echo \"VERSION $({q(unison)} -version 2>&1)\"; "
        # stale archive locks of a run the peer's crash interrupted (checks for live unison);
        # only when there is a lock: a Python start on every connection took the emulated
        # VM nodes past the start timeout (the watcher never connected to the busy node)
        f"if ls {q(archive_dir)}/lk* >/dev/null 2>&1 && command -v hasync >/dev/null 2>&1; then "
        f"hasync sync unlock --quiet >/dev/null 2>&1; fi; "
        # notes nobody consumed (no watcher runs there) must not grow without bound
        f"[ \"$(stat -c %s {q(incoming)} 2>/dev/null || echo 0)\" -gt 16777216 ] && : > {q(incoming)}; "
        f"rm -f {q(socket_path)}; "
        f"UNISON={q(archive_dir)} {q(unison)} -socket {q(socket_path)} </dev/null 2>&1 & p=$!; "
        f"trap 'kill $p 2>/dev/null' EXIT HUP TERM; "
        f"i=0; while [ ! -S {q(socket_path)} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
        # a full state dir must not end the connection: the notes are then dropped (the
        # peer's echoes cost a run each) until the next connection
        f"echo READY; cat >> {q(incoming)} || cat >/dev/null; kill $p 2>/dev/null; rm -f {q(socket_path)}"
    )


@dataclass(frozen=True)
class LinkPaths:
    control: str  # ssh ControlPath
    forward: str  # local end of the forwarded unison socket
    remote_socket: str  # the peer's unison socket


def link_paths(local_name: str, peer_name: str, run_dir: str = RUN_DIR, tag: str = "") -> LinkPaths:
    """Socket paths; *tag* keeps a one-off run (``sync --once``) apart from the watcher's."""
    return LinkPaths(
        control=f"{run_dir}/ssh-{peer_name}{tag}.ctl",
        forward=f"{run_dir}/unison-{peer_name}{tag}.sock",
        remote_socket=f"{run_dir}/server-for-{local_name}{tag}.sock",
    )


def master_argv(target: str, opts: tuple[str, ...], paths: LinkPaths, script: str) -> tuple[str, ...]:
    return (
        "ssh", *opts,
        "-M", "-S", paths.control,
        "-o", "ControlPersist=no",
        "-o", "ExitOnForwardFailure=yes",
        "-o", "StreamLocalBindUnlink=yes",
        "-L", f"{paths.forward}:{paths.remote_socket}",
        target, script,
    )


def mux_argv(target: str, opts: tuple[str, ...], control: str, command: str) -> tuple[str, ...]:
    """An ssh command that rides on the master connection (no new handshake)."""
    return ("ssh", *opts, "-S", control, "-o", "ControlMaster=no", target, command)


class LinkError(RuntimeError):
    pass


class IncompatiblePeer(LinkError):
    """The peer's unison cannot work with this node's (`hasync watch` stops: exit 1)."""


class PeerLink:
    """The ssh master + remote unison server (see the module docstring)."""

    def __init__(
        self,
        *,
        local_name: str,
        peer_name: str,
        address: str,
        ssh_key: str,
        known_hosts: str,
        state_dir: str,
        run_dir: str = RUN_DIR,
        user: str = "root",
        unison: str = "unison",
        tag: str = "",
    ):
        self.local_name, self.peer_name = local_name, peer_name
        self.target = f"{user}@{address}" if user else address
        self.address, self.user = address, user
        self.opts = ssh_options(ssh_key, known_hosts)
        self.paths = link_paths(local_name, peer_name, run_dir, tag)
        self.run_dir = run_dir
        self.archive_dir = os.path.join(state_dir, "unison")
        self.incoming = os.path.join(state_dir, "incoming.jsonl")
        self.unison = unison
        self.proc: subprocess.Popen | None = None
        self.peer_version = ""
        self._lines: list[str] = []

    # ---- pure-ish views
    @property
    def remote_root(self) -> str:
        return socket_root(self.paths.forward)

    @property
    def plain_root(self) -> str:
        """A root for one-off runs over a fresh ssh connection."""
        return ssh_root(self.address, self.user)

    def ssh(self, command: str) -> tuple[str, ...]:
        if self.alive():
            return mux_argv(self.target, self.opts, self.paths.control, command)
        return ("ssh", *self.opts, self.target, command)

    # ---- effects
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> str:
        """Connect and start the peer's server; returns the peer's ``unison -version``.
        *timeout* bounds the wait for its READY (ssh's ConnectTimeout bounds the connect):
        a loaded node takes seconds to start unison's server (15 s was too short on the
        VM lab's emulated nodes under a running chain)."""
        self.stop()
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self._remove_sockets()
        script = server_script(
            socket_path=self.paths.remote_socket,
            archive_dir=self.archive_dir,
            incoming=self.incoming,
            unison=self.unison,
        )
        argv = master_argv(self.target, self.opts, self.paths, script)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        version = ""
        ready = threading.Event()
        self._lines = []

        def reader(proc=self.proc):
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                self._lines.append(line)
                del self._lines[:-50]
                if line == "READY":
                    ready.set()
                elif not ready.is_set():
                    continue
                else:
                    log.debug("peer unison server: %s", line)
            ready.set()

        threading.Thread(target=reader, daemon=True, name=f"ssh-{self.peer_name}").start()
        ready.wait(max(0.0, deadline - time.monotonic()))
        for line in self._lines:
            if line.startswith("VERSION "):
                version = line[len("VERSION "):]
        if not self.alive() or "READY" not in self._lines:
            out = " | ".join(x for x in self._lines if x != "READY")[-800:]
            self.stop()
            raise LinkError(f"cannot reach {self.peer_name} ({self.target}) over ssh: {out or 'no answer'}")
        # the forward exists once the master is up; wait until it accepts
        while time.monotonic() < deadline:
            if os.path.exists(self.paths.forward):
                break
            time.sleep(0.01)
        self.peer_version = version
        return version

    def note(self, text: str) -> bool:
        """Append *text* to the peer's incoming file through the master's stdin."""
        if not text or not self.alive() or self.proc is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()  # the peer's script sees EOF and stops its server
        except OSError:
            pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """The forwarded socket and ssh's control socket, left by a previous connection."""
        for p in (self.paths.forward, self.paths.control):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
