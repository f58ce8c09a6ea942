"""`tradingd report RUN_DIR`: draw a backtest's HTML and PNG report again from its JSON report
(RUN_DIR/report.json, or the JSON file named): `report.html` (self-contained) and the PNG charts
beside it, their paths printed one a line. Needs the 'report' extra (matplotlib): without it,
one line says so. On a terminal, a status line on stderr says what is being drawn (seconds)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console

from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.reports.html import render_run

__all__ = ["cmd_report", "drawing_status"]


@contextlib.contextmanager
def drawing_status(show: bool) -> Iterator[Callable[[str], None]]:
    """A spinner line on stderr saying what the report is drawing, told by the callable this
    yields (nothing at all when `show` is false: not a terminal, or --no-progress)."""
    if not show:
        yield lambda _: None
        return
    with Console(stderr=True).status("writing the report") as status:
        yield lambda what: status.update(f"writing the report: {what}")


def cmd_report(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    with drawing_status(sys.stderr.isatty()) as step:
        written = render_run(args.run, progress=step)
    for path in written:
        print(path)
    return 0
