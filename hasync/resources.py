"""Locate the data the code lays down or runs (profiles/, bootstrap/, failover/).

In an installed wheel they live in ``hasync/_data/<name>``; in a source checkout
(including the editable install `make setup` makes) they are the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder of shipped data called *name* ("profiles", "bootstrap", "failover")."""
    if name not in ("profiles", "bootstrap", "failover"):
        raise ValueError(f"unknown data folder {name!r}")
    installed = _PKG / "_data" / name
    if installed.is_dir():
        return installed
    source = _PKG.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"hasync data folder {name!r} not found (looked in {installed} and {source})")


def data_file(name: str, *parts: str) -> Path:
    return data_dir(name).joinpath(*parts)
