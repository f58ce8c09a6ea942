"""`tradingd report RUN_DIR`: draw a backtest's HTML and PNG report again from its JSON report
(RUN_DIR/report.json, or the JSON file named): `report.html` (self-contained) and the PNG charts
beside it, their paths printed one a line. Needs the 'report' extra (matplotlib): without it,
one line says so. On a terminal, a status line on stderr says what is being drawn (seconds)."""

from __future__ import annotations

import argparse
import sys

from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.reports.html import render_run

from .progress import drawing_status, wanted

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    with drawing_status(wanted()) as step:
        written = render_run(args.run, progress=step)
    for path in written:
        print(path)
    return 0
