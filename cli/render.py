"""The last step of `tradingd backtest --report`: draw the HTML page and PNG charts of the JSON
report just written, and say so on stderr. `draw` is that step; run as a module
(`python -m tradingd.cli.render REPORT --since T [--status] [--traceback]`) it is the process the
backtest replaces itself with (`os.execv`, cli/backtest.py) once the JSON is on disk; with
`--paths` instead of `--since`, `tradingd report RUN_DIR`'s (`redraw`: the files on stdout).

Why a process of its own (issue 17, peak RSS with --report): the replay's process holds the
engine's imports and a heap glibc does not give back whole; matplotlib with numpy and Pillow
loaded and drawing on top of them made the run's peak their sum. This module imports only the
renderer (engine/reports/html.py: orjson and the model's error and words modules) before
matplotlib, so the command's peak is the larger of the two phases. `exec` keeps the process id,
its stdout and stderr, and the parent's wait: to the shell it is the same command, and its exit
status is this module's. The lines, errors and exit statuses are the command's own
(cli/main.py): `report written to ... in X s` (X counted from before the JSON was written:
`--since`, a `time.monotonic()` reading, which is one clock for every process of the machine
on Linux), an error as one line with exit status 1, an interrupt as `tradingd: interrupted`
and 130."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from tradingd.engine.model.errors import DataError, TradingError
from tradingd.engine.reports.html import render_run

from .exits import EXIT_FAILURE

__all__ = ["draw", "main", "redraw", "replace_process"]

EXIT_INTERRUPTED = 130


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _status(show: bool) -> AbstractContextManager[Callable[[str], None]]:
    """The spinner line of `progress.drawing_status` on a terminal. Its module (rich: about 5 MiB
    resident under matplotlib) is loaded only then, by name as `main._dispatch` loads a command."""
    if not show:
        silent: Callable[[str], None] = lambda _: None  # noqa: E731
        return nullcontext(silent)
    status: AbstractContextManager[Callable[[str], None]] = importlib.import_module(
        f"{__package__}.progress"
    ).drawing_status(True)
    return status


def draw(report: Path, *, since: float, show: bool) -> list[Path]:
    """Draw `report`'s HTML and PNGs beside it and print the two lines saying where; an OSError
    (a full disk) is the one-line DataError naming the folder. `since`: `time.monotonic()` when
    the report's writing began."""
    with _status(show) as step:
        try:
            written: list[Path] = render_run(report, progress=step)
        except OSError as exc:
            raise DataError(f"cannot write the report in {report.parent}: {exc.strerror or exc}") from None
    _err(f"report written to {report} in {time.monotonic() - since:.1f} s")
    _err(f"  and beside it: {', '.join(p.name for p in written)}")
    return written


def redraw(run: str, *, show: bool) -> list[Path]:
    """`tradingd report RUN`: draw a saved report again and print the files, one a line."""
    with _status(show) as step:
        written: list[Path] = render_run(run, progress=step)
    for path in written:
        print(path)
    return written


def replace_process(args: Sequence[str]) -> None:
    """Replace this process with `python -m tradingd.cli.render ARGS` (returns only if the exec
    failed: the caller then draws in place). What is buffered goes out first: exec drops Python's
    buffers and skips its exit handlers (the log file is written unbuffered)."""
    # -P: the current directory is not put on the module path (a stray `orjson.py` there must not
    # shadow the real one), as it is not for the console script.
    argv = [sys.executable, "-P", "-m", __name__, *args]
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing to keep
            stream.flush()
    with contextlib.suppress(OSError):
        os.execv(sys.executable, argv)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tradingd backtest --report", add_help=False)
    ap.add_argument("report")
    ap.add_argument("--since", type=float, help="backtest --report: monotonic time the JSON was begun")
    ap.add_argument("--paths", action="store_true", help="tradingd report: print the files drawn")
    ap.add_argument("--status", action="store_true")
    ap.add_argument("--traceback", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.paths:
            redraw(args.report, show=args.status)
        else:
            draw(Path(args.report), since=args.since, show=args.status)
    except KeyboardInterrupt:
        _err("tradingd: interrupted")
        return EXIT_INTERRUPTED
    except TradingError as exc:  # DataError: no matplotlib, a report that cannot be written
        if args.traceback:
            raise
        _err(f"tradingd: error: {exc}")
        return EXIT_FAILURE
    except Exception as exc:  # as cli/main.py: never a raw traceback without --traceback
        if args.traceback:
            raise
        _err(f"tradingd: internal error: {exc!r} (run with --traceback for details)")
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
