"""``ShRunner``: the Runner the namespace lab is built and broken with (the ``sh`` package).

Same interface as the product's ``hasync.effects.run.ProcRunner``; measured here at
~7 ms a command and ~100 ms when a timeout is given (sh joins a timer thread on exit),
so it is used only where that does not matter (building the lab). ``sh`` is a harness
dependency (the ``lab`` extra), imported on the first command: importing it costs ~57 ms
(it loads importlib.metadata, email, pty...), which every ``hasync lab`` command paid,
the lab fence run from inside a node during a failover among them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from hasync.effects.run import CommandError, Result, merged_env


class ShRunner:
    """Runs commands through ``sh``; never raises for a non-zero exit unless check=True."""

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
        import sh  # here, not at the top: see the module doc

        argv = tuple(str(a) for a in argv)
        full_env = merged_env(env) if env is not None else None
        kwargs: dict = {"_ok_code": list(range(256)), "_return_cmd": True}
        if input is not None:
            kwargs["_in"] = input
        if full_env is not None:
            kwargs["_env"] = full_env
        if timeout is not None:
            kwargs["_timeout"] = timeout
        if cwd is not None:
            kwargs["_cwd"] = cwd
        t0 = time.monotonic()
        try:
            cmd = sh.Command(argv[0])
            proc = cmd(*argv[1:], **kwargs)
            code = proc.exit_code
            out = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else str(proc.stdout)
            err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else str(proc.stderr)
        except sh.CommandNotFound:
            code, out, err = 127, "", f"{argv[0]}: command not found"
        except sh.TimeoutException:
            code, out, err = 124, "", f"timed out after {timeout}s"
        res = Result(argv, code, out, err, time.monotonic() - t0)
        if check and not res.ok:
            raise CommandError(res)
        return res
