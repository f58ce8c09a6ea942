"""Trial functions for the local executor's fault tests (picklable by name: workers import this
module), beside `sweep_trials`: a trial that takes its worker down while another trial runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tradingd.engine.sweep.model import TrialContext, TrialResult, TrialSpec


def neighbours(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """`running` (a path), for both trials; `culprit_runs`: the culprit's runs in all. The
    culprit (`culprit`) waits until `running` exists, removes it, counts its run (a file beside
    it) and SIGKILLs its own process. The innocent one makes `running` as it starts; it returns at
    once when the culprit has had all its runs, else it sleeps (a minute at most): each of the
    culprit's deaths finds it mid-trial in the other worker."""
    t = trial.params["t"]
    running = Path(str(t["running"]))
    runs = running.parent / "culprit-runs"
    if t.get("culprit"):
        deadline = time.monotonic() + 60
        while not running.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the innocent trial never started")
            time.sleep(0.01)
        running.unlink()
        with runs.open("a") as f:
            f.write("run\n")
        os.kill(os.getpid(), signal.SIGKILL)
    done = runs.exists() and len(runs.read_text().splitlines()) >= int(str(t["culprit_runs"]))
    running.touch()
    if not done:
        time.sleep(60)
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
