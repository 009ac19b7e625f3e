"""The one place commands are run.

Commands are tuples of strings built by pure functions; a ``Runner`` executes them.
Production code uses ``ShRunner`` (through the ``sh`` package); tests of pure logic use
``RecordingRunner``, which answers from a table and records what was asked.
"""

from __future__ import annotations

import os
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
        import time

        import sh

        argv = tuple(str(a) for a in argv)
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
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


@dataclass
class RecordingRunner:
    """A test double: answers from ``responses`` (argv tuple -> Result or callable) and records calls.

    Unknown commands answer ``default`` (exit 0, empty output) unless ``strict`` is set.
    """

    responses: dict[Argv, Result | Callable[[Argv], Result]] = field(default_factory=dict)
    strict: bool = False
    calls: list[Argv] = field(default_factory=list)

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
