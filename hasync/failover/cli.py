"""Subcommands of the failover area (being built)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this area's subcommands to the top-level parser."""
