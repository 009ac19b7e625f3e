"""A lean command runner for the takeover path (the ``Runner`` protocol of hasync.effects).

``hasync.effects.run.ShRunner`` goes through the ``sh`` package, which spawns helper
threads per command; in the takeover path every millisecond counts, so resource agents,
fence and ping commands run here through one ``subprocess.Popen`` each, in their own
process group (a timeout kills the whole group: agents fork helpers). The daemon sets
SCHED_RESET_ON_FORK, so children never inherit its real-time priority or negative nice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from hasync.effects.run import CommandError, Result


class ProcRunner:
    """Runs argv tuples; never raises for a non-zero exit unless check=True."""

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
        full_env = dict(os.environ)
        full_env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        if env:
            full_env.update(env)
        t0 = time.monotonic()
        # Output goes to memory files, not pipes: an agent that leaves a helper running in
        # the background (IPaddr2's send_arp) keeps a pipe open for a second; we only wait
        # for the agent itself to exit.
        out_f = os.fdopen(os.memfd_create("hasync-out", os.MFD_CLOEXEC), "w+b")
        err_f = os.fdopen(os.memfd_create("hasync-err", os.MFD_CLOEXEC), "w+b")
        try:
            try:
                p = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                    stdout=out_f,
                    stderr=err_f,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except FileNotFoundError:
                return Result(argv, 127, "", f"{argv[0]}: command not found", time.monotonic() - t0)
            except PermissionError as e:
                return Result(argv, 126, "", f"{argv[0]}: {e.strerror}", time.monotonic() - t0)
            data = input.encode() if isinstance(input, str) else input
            timed_out = False
            try:
                if data is not None:
                    p.communicate(data, timeout=timeout)
                else:
                    p.wait(timeout=timeout)
                code = p.returncode
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    p.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                code = 124
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
            if timed_out:
                err += f"\ntimed out after {timeout:g}s".encode()
        finally:
            out_f.close()
            err_f.close()
        res = Result(argv, code, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)
        if check and not res.ok:
            raise CommandError(res)
        return res
