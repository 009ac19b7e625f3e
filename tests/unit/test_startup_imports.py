"""What a command loads at start: every `hasync` run pays for the modules it imports
(issue 11's before/after, docs/benchmarks.md: CLI start-up)."""

from __future__ import annotations

import subprocess
import sys

IMPORT_ONLY = {"hasync.config.importer", "hasync.config.stonith", "hasync.config.toml_writer"}


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.splitlines()[-1].split())


def test_loading_the_config_does_not_load_the_heartbeat_importer():
    """`hasync haresources import` alone needs the importer (and its [fencing] and TOML
    writers): the config package does not re-export it, so the daemon, `status` and
    `check` do not load it."""
    assert not IMPORT_ONLY & _modules_after("import sys, hasync.config")
    daemon = _modules_after("import sys, hasync.cli.daemon, hasync.failover.daemon")
    assert "hasync.config" in daemon and not IMPORT_ONLY & daemon
    assert not IMPORT_ONLY & _modules_after("import sys, hasync.cli.check")  # `haresources import` loads it itself


def test_the_config_does_not_load_the_failover_area():
    """config sits below the areas: the packet sizes it checks come from hasync.packet_layout."""
    mods = _modules_after("import sys, hasync.config")
    assert not any(m == "hasync.failover" or m.startswith("hasync.failover.") for m in mods)
