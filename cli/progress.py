"""The progress bar of the long commands (`backtest`, `generate`, `data inspect`, the first
run's sample): one look for all of them, drawn on stderr, and only when stderr is a terminal
(a pipe or a log file gets nothing extra, and stdout stays the command's output) and the
command was not given `--no-progress`.

`progress(description, enabled)` gives a callback `(done, total)` in any unit (bytes, seconds
of market time), which does nothing when no bar is drawn; `drawing_status(show)` a spinner line
for steps of unknown length (the report's charts)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["ProgressCallback", "drawing_status", "new_bar", "progress", "wanted"]

ProgressCallback = Callable[[float, float], None]


def wanted(no_progress: bool = False) -> bool:
    """Whether to draw a bar: stderr is a terminal and `--no-progress` was not given."""
    return not no_progress and sys.stderr.isatty()


def new_bar() -> Progress:
    """The bar's columns: what, the bar, percent, time spent, time left. On stderr (where
    `wanted` looked), gone when done (`transient`): the command's own lines follow it."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _nothing(done: float, total: float) -> None:
    """No bar: the callback of a command whose stderr is not a terminal."""


@contextlib.contextmanager
def progress(description: str, *, enabled: bool) -> Iterator[ProgressCallback]:
    """A `(done, total)` callback drawing a bar named `description` while the block runs, or
    doing nothing when not `enabled` (see `wanted`)."""
    if not enabled:
        yield _nothing
        return
    with new_bar() as bar:
        task = bar.add_task(description, total=None)

        def update(done: float, total: float) -> None:
            bar.update(task, completed=done, total=max(total, 1))

        yield update


@contextlib.contextmanager
def drawing_status(show: bool) -> Iterator[Callable[[str], None]]:
    """A spinner line on stderr saying what the report is drawing, told by the callable this
    yields (nothing at all when `show` is false: not a terminal, or --no-progress)."""
    if not show:
        yield lambda _: None
        return
    with Console(stderr=True).status("writing the report") as status:
        yield lambda what: status.update(f"writing the report: {what}")
