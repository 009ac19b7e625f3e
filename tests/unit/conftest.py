"""Unit-tier fixtures: nothing here touches the host's /run."""

from __future__ import annotations

import pytest

from hasync.operations import ocf


@pytest.fixture(autouse=True)
def _rsctmp_in_tmp(tmp_path, monkeypatch):
    """The daemon's worker and `hasync resource` make resource-agents' HA_RSCTMP before
    running agents (ocf.RSCTMP, /run/resource-agents): in the unit tier, a temporary one."""
    monkeypatch.setattr(ocf, "RSCTMP", str(tmp_path / "resource-agents"))
