"""`make demo`: bring the lab up, show the cluster working, tear it down (being built)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("demo: not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
