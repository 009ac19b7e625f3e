"""The one place commands are run.

Commands are tuples of strings built by pure functions; a ``Runner`` executes them.

- ``ProcRunner`` (plain subprocess): the default everywhere time matters — the takeover
  path, the sync watcher, bootstrap probes, lab exec. About 1-3 ms a command.
- ``RecordingRunner``: the test double for pure logic; answers from a table, records calls.

Both real runners (``ProcRunner`` here, the harness's ``sh``-based one that builds the
namespace labs) are ``CommandRunner``s: the frame around a command is written once.

``spawn`` (``BackgroundRunner``) starts a command that is not waited for (IPaddr2's
send_arp keeps announcing a VIP after its start returns): its own session, no output.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Argv = tuple[str, ...]


@dataclass(frozen=True)
class Result:
    argv: Argv
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandError(RuntimeError):
    """A command failed; the message names the command, its status and its output."""

    def __init__(self, result: Result, what: str = ""):
        self.result = result
        cmd = " ".join(result.argv)
        out = (result.stderr.strip() or result.stdout.strip())[-2000:]
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}`{cmd}` exited {result.exit_code}" + (f": {out}" if out else ""))


class Runner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
        cwd: str | None = None,
    ) -> Result: ...


class BackgroundRunner(Runner, Protocol):
    """A Runner that can also start a command in the background (not waited for)."""

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> bool: ...


def merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment plus *env* (with a PATH that has the sbin dirs, and a
    HOME: a systemd service has none unless it sets User=, and unison will not start
    without one -- hasync-watch.service crash-looped on Debian 12 under systemd)."""
    merged = dict(os.environ)
    merged.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if not merged.get("HOME"):
        merged["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
    if env:
        merged.update(env)
    return merged


def kill_group(p: subprocess.Popen, wait_s: float | None) -> None:
    """SIGKILL the whole process group of *p* (resource agents fork helpers; gone already
    is fine) and reap it, waiting at most *wait_s* seconds (None: until it is gone)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        p.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pass


class CommandRunner:
    """What every real runner does around a command: the argv as strings, the run timed,
    a failed one raised as ``CommandError`` when check=True. A subclass says how a
    command is executed (``_execute``: its exit status, stdout and stderr)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
        cwd: str | None = None,
    ) -> Result:
        argv = tuple(str(a) for a in argv)
        t0 = time.monotonic()
        code, out, err = self._execute(argv, input, env, timeout, cwd)
        res = Result(argv, code, out, err, time.monotonic() - t0)
        if check and not res.ok:
            raise CommandError(res)
        return res

    def _execute(self, argv: Argv, input: str | bytes | None, env: Mapping[str, str] | None,
                 timeout: float | None, cwd: str | None) -> tuple[int, str, str]:
        raise NotImplementedError


def _exit_status(returncode: int) -> int:
    """A shell's exit status: 128 + the signal number for a command killed by a signal."""
    return returncode if returncode >= 0 else 128 - returncode


class ProcRunner(CommandRunner):
    """Runs argv tuples with subprocess; never raises for a non-zero exit unless check=True.

    Each command runs in its own process group, and a timeout kills the whole group
    (resource agents fork helpers). Output goes to memory files, not pipes: a command that
    leaves a helper running in the background (IPaddr2's send_arp) would otherwise hold a
    pipe open; only the command itself is waited for. A command killed by a signal
    reports 128 + the signal number, as a shell does.

    ``inherit_env``: *env* adds to this process's environment (default) or, when False,
    is the complete environment (the lab builds one per node).
    """

    def __init__(self, *, inherit_env: bool = True):
        self.inherit_env = inherit_env

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str] | None:
        return merged_env(env) if self.inherit_env else (dict(env) if env is not None else None)

    def _execute(self, argv: Argv, input: str | bytes | None, env: Mapping[str, str] | None,
                 timeout: float | None, cwd: str | None) -> tuple[int, str, str]:
        data = input.encode() if isinstance(input, str) else input
        out_f = os.fdopen(os.memfd_create("hasync-out", os.MFD_CLOEXEC), "w+b")
        err_f = os.fdopen(os.memfd_create("hasync-err", os.MFD_CLOEXEC), "w+b")
        try:
            try:
                p = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                    stdout=out_f,
                    stderr=err_f,
                    env=self._env(env),
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except FileNotFoundError:
                return 127, "", f"{argv[0]}: command not found"
            except PermissionError as e:
                return 126, "", f"{argv[0]}: {e.strerror}"
            timed_out = False
            try:
                if data is not None:
                    p.communicate(data, timeout=timeout)
                else:
                    p.wait(timeout=timeout)
                code = _exit_status(p.returncode)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(p, 2)
                code = 124
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
            if timed_out:
                err += f"\ntimed out after {timeout:g}s".encode()
        finally:
            out_f.close()
            err_f.close()
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def run_attached(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> int:
        """Run *argv* with this process's stdout and stderr (the operator watches it live:
        `hasync resource ... --foreground`); its exit status, 124 on a timeout (its process
        group killed), 127 when it cannot be found."""
        argv = tuple(str(a) for a in argv)
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=self._env(env), start_new_session=True, close_fds=True)
        except FileNotFoundError:
            return 127
        except PermissionError:
            return 126
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(p, None)
            return 124
        return _exit_status(p.returncode)

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> bool:
        """Start *argv* in its own session with no input or output and do not wait for
        it (the child is reaped by subprocess's bookkeeping). False if it cannot start."""
        argv = tuple(str(a) for a in argv)
        try:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=self._env(env), start_new_session=True, close_fds=True)
            return True
        except OSError:
            return False


@dataclass
class RecordingRunner:
    """A test double: answers from ``responses`` (argv tuple -> Result or callable) and records calls.

    Unknown commands answer ``default`` (exit 0, empty output) unless ``strict`` is set.
    """

    responses: dict[Argv, Result | Callable[[Argv], Result]] = field(default_factory=dict)
    strict: bool = False
    calls: list[Argv] = field(default_factory=list)
    spawned: list[Argv] = field(default_factory=list)  # spawn(): also in calls, in order

    def run(self, argv, *, input=None, env=None, timeout=None, check=False, cwd=None) -> Result:
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        answer = self.responses.get(argv)
        if answer is None:
            if self.strict:
                raise AssertionError(f"unexpected command {argv}")
            res = Result(argv, 0, "", "")
        elif callable(answer):
            res = answer(argv)
        else:
            res = answer
        if check and not res.ok:
            raise CommandError(res)
        return res

    def spawn(self, argv, *, env=None) -> bool:
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        self.spawned.append(argv)
        if self.strict and argv not in self.responses:
            raise AssertionError(f"unexpected command {argv}")
        return True
