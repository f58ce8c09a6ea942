"""The `tradingd` console script's entry point (pyproject.toml `[project.scripts]`).

A Ctrl-C in the first half second of a command arrives while Python imports the command line
(`main` and what it needs take about 0.5 s): raised outside any `try`, it printed a
KeyboardInterrupt traceback. So the script starts here, in a module that imports nothing beyond
what the interpreter has already loaded, and `main` is imported by name inside the `try`: from
the first statement of tradingd's own code on, an interrupt is one line and exit status 130
(128 + SIGINT, as a shell reports it)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["EXIT_INTERRUPTED", "main"]

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run = importlib.import_module(f"{__package__}.main").main
        code: int = run(argv)
        return code
    except KeyboardInterrupt:
        # `main` reports an interrupt of a command itself; this is one during the imports.
        print("tradingd: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
