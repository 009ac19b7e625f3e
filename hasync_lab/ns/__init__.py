"""The namespace lab (see docs/lab.md): ``from hasync.lab import Lab``."""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("Lab", "LabError"):
        from hasync.lab import ns

        return getattr(ns, name)
    raise AttributeError(name)


__all__ = ["Lab", "LabError"]
