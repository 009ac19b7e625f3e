"""A Runner (hasync.effects.run protocol) on plain subprocess.

Bootstrap and doctor run many short probes (systemctl is-enabled, wipefs, cat ...).
``ShRunner`` spends ~100 ms per command waiting for the ``sh`` package's I/O threads to
exit; this one takes a few ms, which keeps a no-change `hasync bootstrap` under 1 s.
Same ``Result`` and the same never-raise-unless-check behaviour.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence

from hasync.effects.run import CommandError, Result


class SubprocessRunner:
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
            code = p.returncode
            out = p.stdout.decode(errors="replace")
            err = p.stderr.decode(errors="replace")
        except FileNotFoundError:
            code, out, err = 127, "", f"{argv[0]}: command not found"
        except subprocess.TimeoutExpired:
            code, out, err = 124, "", f"timed out after {timeout}s"
        res = Result(argv, code, out, err, time.monotonic() - t0)
        if check and not res.ok:
            raise CommandError(res)
        return res
