"""Shared fixtures. Lab fixtures live in tests/lab/conftest.py, VM ones in tests/vm/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def say(pytestconfig):
    """Print a line into the test log even when the test passes (a campaign's fresh seed:
    the log must name it whatever the outcome); also into the captured output."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")

    def out(msg: str) -> None:
        print(msg)
        if capman is not None:
            with capman.global_and_fixture_disabled():
                print(f"\n{msg}", flush=True)

    return out
