"""A lean Runner for commands inside lab nodes (plain subprocess).

Same interface and Result as hasync.effects.run.ShRunner, but about 2 ms instead of
~100 ms per command when a timeout is given (sh joins a timer thread on exit), which adds
up in tests that run hundreds of commands. Unlike ShRunner, *env* is the complete
environment (Lab.node_env builds one), not additions to this process's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from hasync.effects.run import CommandError, Result


class ProcRunner:
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
        data = input.encode() if isinstance(input, str) else input
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # a timeout kills the whole command
            )
        except FileNotFoundError:
            return Result(argv, 127, "", f"{argv[0]}: command not found")
        try:
            out, err = p.communicate(data, timeout=timeout)
            code = p.returncode if p.returncode >= 0 else 128 - p.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = p.communicate()
            code, err = 124, err + f"\ntimed out after {timeout}s".encode()
        res = Result(
            argv,
            code,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.monotonic() - t0,
        )
        if check and not res.ok:
            raise CommandError(res)
        return res
