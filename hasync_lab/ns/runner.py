"""``ShRunner``: the Runner the namespace lab is built and broken with (the ``sh`` package).

Same interface as the product's ``hasync.effects.run.ProcRunner``; measured here at
~7 ms a command and ~100 ms when a timeout is given (sh joins a timer thread on exit),
so it is used only where that does not matter (building the lab). ``sh`` is a harness
dependency (the ``lab`` extra), imported on the first command: importing it costs ~57 ms
(it loads importlib.metadata, email, pty...), which every ``hasync lab`` command paid,
the lab fence run from inside a node during a failover among them.
"""

from __future__ import annotations

from collections.abc import Mapping

from hasync.effects.run import Argv, CommandRunner, merged_env


class ShRunner(CommandRunner):
    """Runs commands through ``sh``; never raises for a non-zero exit unless check=True."""

    def _execute(self, argv: Argv, input: str | bytes | None, env: Mapping[str, str] | None,
                 timeout: float | None, cwd: str | None) -> tuple[int, str, str]:
        import sh  # here, not at the top: see the module doc

        kwargs: dict = {"_ok_code": list(range(256)), "_return_cmd": True}
        if input is not None:
            kwargs["_in"] = input
        if env is not None:
            kwargs["_env"] = merged_env(env)
        if timeout is not None:
            kwargs["_timeout"] = timeout
        if cwd is not None:
            kwargs["_cwd"] = cwd
        try:
            proc = sh.Command(argv[0])(*argv[1:], **kwargs)
        except sh.CommandNotFound:
            return 127, "", f"{argv[0]}: command not found"
        except sh.TimeoutException:
            return 124, "", f"timed out after {timeout}s"
        out = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else str(proc.stdout)
        err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else str(proc.stderr)
        return proc.exit_code, out, err
