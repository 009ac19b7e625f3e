"""A lean Runner (the hasync.effects.run.Runner protocol) on subprocess.

The watcher runs unison many times a second in a burst; ``sh``'s pty set-up costs more
than the run itself, so the sync area uses plain pipes.
"""

from __future__ import annotations

import os
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
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        data = input.encode() if isinstance(input, str) else input
        t0 = time.monotonic()
        try:
            p = subprocess.run(
                argv,
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                env=full_env,
                timeout=timeout,
                cwd=cwd,
            )
            res = Result(
                argv,
                p.returncode,
                p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"),
                time.monotonic() - t0,
            )
        except FileNotFoundError:
            res = Result(argv, 127, "", f"{argv[0]}: command not found", time.monotonic() - t0)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else ""
            res = Result(argv, 124, out, f"timed out after {timeout}s", time.monotonic() - t0)
        if check and not res.ok:
            raise CommandError(res)
        return res
