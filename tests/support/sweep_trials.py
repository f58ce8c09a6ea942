"""Trial functions for the executors' tests (picklable by name: workers import this module):
no backtest, just what a trial can do to its worker. Each takes its behaviour from its params'
`"t"` entry."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tradingd.engine.sweep.model import TrialContext, TrialResult, TrialSpec, Window, result_for


def context() -> TrialContext:
    return TrialContext(
        base_path="/nonexistent/base.toml", base_table={}, cache_dir=None, data_files=(), code_version="t"
    )


def spec(number: int, **t: object) -> TrialSpec:
    return TrialSpec(key=f"k{number}", number=number, params={"t": dict(t)}, window=Window())


def behave(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """`x`: the statistic returned (x squared); `fail`: raise ValueError; `kill_marker`: SIGKILL
    this process unless the file exists (made first; `kill_always`: every time); `sleep_s` (and
    `sleep_per_x` seconds per unit of x); `pid_dir`: this process's pid written there first."""
    t = trial.params["t"]
    if t.get("pid_dir"):
        Path(str(t["pid_dir"]), f"{trial.number}.pid").write_text(str(os.getpid()))
    if t.get("fail"):
        raise ValueError(f"trial {trial.number} fails\nand says more on a second line")
    marker = t.get("kill_marker")
    if marker and (t.get("kill_always") or not Path(str(marker)).exists()):
        Path(str(marker)).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    x = float(str(t.get("x", 0)))
    sleep = float(str(t.get("sleep_s", 0))) + x * float(str(t.get("sleep_per_x", 0)))
    if sleep:
        time.sleep(sleep)
    return result_for(trial, "ok", stats={"total": {"net_pnl": x * x}})
