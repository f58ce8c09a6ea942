"""Trial functions for the executors' tests, importable by name in a worker process (a Ray worker
imports this module by its name, `tests.support.ray_trials`: `tests/sweep/test_ray.py` puts the
repository's root on the PYTHONPATH its Ray instance's workers start with).

Each returns a result as `tradingd.cli.trial.run_trial` does, computed from the trial's params
only (deterministic: the same on any worker), or fails as a test needs. The params a function
reads: `{"t": {"x": number, ...}}`."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tradingd.engine.sweep.model import TrialContext, TrialResult, TrialSpec, result_for
from tradingd.engine.sweep.ray import import_ray


def _ok(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    x = trial.params["t"]["x"]
    return result_for(
        trial,
        "ok",
        stats={"total": {"net_pnl": x * 3 - 1, "base": ctx.base_path}},
        equity=((0, 0.0), (60, float(x))),
    )


def computed(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """OK: statistics computed from `x` and the context."""
    return _ok(ctx, trial)


def raises_on_odd(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Raises ValueError (a two-line message) for an odd `x`; OK otherwise."""
    x = trial.params["t"]["x"]
    if x % 2:
        raise ValueError(f"odd x: {x}\nsecond line")
    return _ok(ctx, trial)


def dies_first(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Kills its own worker process on its first run (no marker file yet at `marker`, made then);
    OK when run again."""
    marker = Path(trial.params["t"]["marker"])
    if not marker.exists():
        marker.write_text("ran")
        os._exit(1)  # the worker dies mid-trial: no exception, no result
    return _ok(ctx, trial)


def always_dies(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Kills its worker on every run, counting the runs in the file at `runs`."""
    runs = Path(trial.params["t"]["runs"])
    with runs.open("a") as f:
        f.write("run\n")
    os._exit(1)


def blocks(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Writes its worker's pid into the folder `pids` and then runs for ten minutes (until cancelled)."""
    (Path(trial.params["t"]["pids"]) / f"{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return _ok(ctx, trial)


class Gate:
    """A Ray actor (async: its methods wait together) that `gated` trials wait at until `open`."""

    def __init__(self) -> None:
        self._open = asyncio.Event()

    async def passed(self) -> None:
        await self._open.wait()

    async def open(self) -> None:
        self._open.set()


def gated(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Writes its worker's pid into the folder `pids` (a file named by the trial's number), then
    waits in `ray.get` until the `Gate` actor named `gate` is opened (Ray gives up the task's CPU
    meanwhile); OK then."""
    ray = import_ray()
    (Path(trial.params["t"]["pids"]) / f"{trial.number}.pid").write_text(str(os.getpid()))
    ray.get(ray.get_actor(trial.params["t"]["gate"]).passed.remote())
    return _ok(ctx, trial)
