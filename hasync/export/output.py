"""The export's effects: the agents' metadata through crm_resource (when installed here),
and the files, each written atomically once everything has been checked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hasync.effects.files import atomic_write
from hasync.effects.run import Runner
from hasync.export.bundle import FENCER, Bundle, MetadataLookup

FENCER_PATHS = ("/usr/lib/pacemaker/pacemaker-fenced", "/usr/libexec/pacemaker/pacemaker-fenced")


def metadata_lookup(runner: Runner) -> MetadataLookup | None:
    """Agent metadata through crm_resource, which runs the agent's meta-data action; None
    when pacemaker-cli-utils is not installed on this machine."""
    if shutil.which("crm_resource") is None:
        return None

    def lookup(agent: str) -> str | None:
        argvs: list[tuple[str, ...]]
        if agent == FENCER:
            argvs = [(path, "metadata") for path in FENCER_PATHS if os.path.exists(path)]
        else:
            argvs = [("crm_resource", "--show-metadata", agent)]
        for argv in argvs:
            r = runner.run(argv, timeout=30)
            if r.ok and r.stdout.lstrip().startswith("<"):
                return r.stdout
        return None

    return lookup


def write_bundle(bundle: Bundle, out: Path) -> list[str]:
    """Each file atomically; the CIB forms may carry a fence password, so they are 0600."""
    written = []
    for name, text in bundle.documents.items():
        path = out / name
        mode = 0o644 if name == "corosync.conf" else (0o700 if name.endswith(".sh") else 0o600)
        atomic_write(path, text, mode=mode)
        written.append(str(path))
    return written
