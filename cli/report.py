"""`tradingd report RUN_DIR`: draw a backtest's HTML and PNG report again from its JSON report
(RUN_DIR/report.json, or the JSON file named): `report.html` (self-contained) and the PNG charts
beside it, their paths printed one a line. Needs the 'report' extra (matplotlib): without it,
one line says so. On a terminal, a status line on stderr says what is being drawn (seconds)."""

from __future__ import annotations

import argparse
import os
import sys

from tradingd.engine.logs.setup import configure_logging

from . import render
from .progress import wanted

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace) -> int:
    if getattr(args, "own_process", False) and os.name == "posix":
        # Drawn by cli/render.py in place of this process: the command line's imports (structlog,
        # rich: 16 MiB) are not under matplotlib's; in-process calls draw here (issue 17).
        extra = ["--status"] if wanted() else []
        render.replace_process(
            [str(args.run), "--paths", *extra, *(["--traceback"] if args.traceback else [])]
        )
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    render.redraw(args.run, show=wanted())
    return 0
