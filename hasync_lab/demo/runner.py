"""The demo's step runner, shared by the namespace and the VM story: one titled step at a
time, each timed, a failed step reported and counted (later steps that need it are
skipped), the command output passed through as the command laid it out."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)


class Demo:
    def __init__(self, lab):
        self.lab = lab
        self.failed: list[str] = []
        self.env = {"COLUMNS": str(max(100, console.width))}
        if console.is_terminal:
            self.env["FORCE_COLOR"] = "1"
        else:
            self.env["NO_COLOR"] = "1"
            self.env["TERM"] = "dumb"

    # -- helpers -------------------------------------------------------------------

    def step(self, title: str, fn: Callable[[], object], *, needs: tuple[str, ...] = ()) -> bool:
        console.print(Rule(f"[bold]{title}"))
        missing = [n for n in needs if n in self.failed]
        if missing:
            console.print(f"[yellow]skipped[/]: needs {', '.join(missing)}")
            self.failed.append(title)
            return False
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # the demo goes on; the failure is reported and counted
            console.print(f"[bold red]✗ {title} failed[/]: {e}")
            self.failed.append(title)
            return False
        console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")
        return True

    def show(self, node: str, argv: list[str], *, ok_codes=(0,), timeout: float = 120) -> str:
        console.print(f"[dim]{node}#[/] [bold]{' '.join(argv)}[/]")
        r = self.lab.exec(node, argv, timeout=timeout, env=self.env)
        out = (r.stdout + r.stderr).rstrip()
        if out:  # already laid out by the command itself: pass it through untouched
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
        if r.exit_code not in ok_codes:
            raise RuntimeError(f"`{' '.join(argv)}` on {node} exited {r.exit_code}")
        return r.stdout

    def wait(self, what: str, cond: Callable[[], bool], timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def holds_vip(self, node: str) -> bool:
        r = self.lab.exec(node, ["ip", "-o", "-4", "addr", "show"], timeout=10)
        return f" {self.lab.vip}/" in r.stdout

    def lab_down(self, removed: str) -> None:
        console.print(Rule("[bold]lab down"))
        try:
            self.lab.down()
            console.print(f"[green]✓[/] {removed}")
        except Exception as e:  # noqa: BLE001 -- reported and counted
            console.print(f"[bold red]✗ lab down failed[/]: {e}")
            self.failed.append("lab down")

    def verdict(self, what: str) -> int:
        if self.failed:
            console.print(f"[bold red]{what} finished with failures:[/] {', '.join(self.failed)}")
            return 1
        console.print(f"[bold green]{what} finished: every step worked[/]")
        return 0
