"""The namespace lab (see docs/lab.md): ``from hasync_lab.ns import Lab``."""

from __future__ import annotations

from hasync_lab.ns.lab import Lab, LabError

__all__ = ["Lab", "LabError"]
