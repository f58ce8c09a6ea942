"""Trial functions for the local executor's fault tests (picklable by name: workers import this
module), beside `sweep_trials`: a trial that takes its worker down while another trial runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tradingd.engine.sweep.model import TrialContext, TrialResult, TrialSpec


def neighbours(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """`running` (a path), for both trials. The innocent one (`sleep_s`) makes the file as it
    starts, then sleeps; the culprit (`culprit`) waits until the file exists, removes it and
    SIGKILLs its own process: each of its runs takes its worker down while the innocent one is
    mid-trial in the other worker (the file is removed, so the next run waits for a new one)."""
    t = trial.params["t"]
    running = Path(str(t["running"]))
    if t.get("culprit"):
        deadline = time.monotonic() + 60
        while not running.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the innocent trial never started")
            time.sleep(0.01)
        running.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    running.touch()
    time.sleep(float(str(t.get("sleep_s", 0))))
    return TrialResult(
        key=trial.key,
        number=trial.number,
        params=trial.params,
        window=trial.window,
        role=trial.role,
        fold=trial.fold,
        status="ok",
        stats={"total": {"net_pnl": 1.0}},
    )
