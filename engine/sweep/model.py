"""The sweep's value types, shared by every part of it and sent to workers (picklable: attrs
classes of plain values), and the executor's protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import attrs
import cattrs

# A trial's parameters: strategy name -> {parameter: value}. Values are TOML scalars (int, float,
# str, bool); they replace the base config's `[strategies.params]` entries of the same names.
Params = Mapping[str, Mapping[str, Any]]

# Where a trial sits in the sweep: one search over a window ("search"); a walk-forward's search of
# one train window ("train"), and its best parameters run on the test window after it ("test").
Role = Literal["search", "train", "test"]
Status = Literal["ok", "failed"]


@attrs.frozen
class Window:
    """A market-time window, receive times in ns since the epoch (the kernel's `start_ns` /
    `end_ns`: strategies trade from `start_ns` to `end_ns`; frames before `start_ns` warm the books
    only). None: from the data's first frame / to its last."""

    start_ns: int | None = None
    end_ns: int | None = None


@attrs.frozen
class TrialSpec:
    """One trial: the parameters to run and where. `key` names it for the trial cache: a hash of
    everything its result depends on (the base config with the parameters applied, the window,
    the data files' contents, the code's version), so that a rerun finds it."""

    key: str
    number: int  # in the order the sweep made them, from 0 (for people; not part of the key)
    params: Params
    window: Window
    role: Role = "search"
    fold: int | None = None  # the walk-forward fold (0, 1, ...), None outside a walk-forward


@attrs.frozen
class TrialResult:
    """What a trial gave. `stats` holds each strategy's report statistics (the JSON report's
    `strategies.<name>` entry without its curves) and a `"total"` entry for the portfolio (their
    sums; ratios and drawdown from the summed equity curve: `stats.curve_stats`). `equity` is the
    portfolio's equity curve (ns, USD), sampled as the backtest samples it. `warnings` are the
    backtest report's (`report_dict(...)["warnings"]`): one line each for what made a strategy or
    a data file do nothing. A failed trial has `status` "failed", its error in one line, and no
    statistics."""

    key: str
    number: int
    params: Params
    window: Window
    role: Role
    fold: int | None
    status: Status
    error: str | None = None
    stats: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    equity: tuple[tuple[int, float], ...] = ()
    warnings: tuple[str, ...] = ()
    objective: float | None = None  # set by the objective (`objective.evaluate`), None if failed
    feasible: bool = False  # met every constraint
    duration_s: float = 0.0
    attempts: int = 1  # runs it took (a worker lost mid-trial retries it)
    cached: bool = False  # read from the trial cache, not run by this sweep


def result_for(trial: TrialSpec, status: Status, **fields: Any) -> TrialResult:
    """The result of `trial`: its key, number, params, window, role and fold, with `status` and
    the other fields given (`stats`, `equity`, `error`, ...)."""
    return TrialResult(
        key=trial.key,
        number=trial.number,
        params=trial.params,
        window=trial.window,
        role=trial.role,
        fold=trial.fold,
        status=status,
        **fields,
    )


# What runs a trial where the worker is: `tradingd.cli.trial.run_trial` (picklable by name).
TrialFn = Callable[["TrialContext", TrialSpec], TrialResult]


@attrs.frozen
class TrialContext:
    """What every trial of a sweep shares, sent to each worker once per task: the base config
    (its table, already read, and its path: relative data paths resolve against its folder),
    the event cache folder the trials share (None: no cache), and the data files a worker must be
    able to read (absolute paths or URLs), checked before a trial runs."""

    base_path: str
    base_table: Mapping[str, Any]
    cache_dir: str | None
    data_files: tuple[str, ...]
    code_version: str


class Executor(Protocol):
    """Runs trials somewhere: `local.ProcessExecutor` (processes on this machine),
    `ray.RayExecutor` (tasks on a Ray cluster). `submit` hands one over (returns at once while
    fewer than `capacity` are in flight); `next_result` blocks until one finishes and returns it:
    a trial that raised comes back failed with its error (the executor never raises for it), a
    trial whose worker died is run again (up to `max_attempts`, then failed, "worker lost").
    `close(cancel=True)` (Ctrl-C) drops what has not finished; `close(cancel=False)` waits."""

    capacity: int

    def submit(self, ctx: TrialContext, trial: TrialSpec) -> None: ...

    def next_result(self) -> TrialResult: ...

    def in_flight(self) -> int: ...

    def close(self, *, cancel: bool) -> None: ...


@attrs.frozen
class Fold:
    """One walk-forward step: search `train`, run its best parameters on `test` (after it)."""

    index: int
    train: Window
    test: Window


@attrs.frozen
class FoldOutcome:
    fold: Fold
    trials: tuple[TrialResult, ...]  # the train window's search
    best: TrialResult | None  # the best feasible train trial; None if none ran or was feasible
    test: TrialResult | None  # `best`'s parameters on the test window


@attrs.frozen
class SweepOutcome:
    """A whole sweep: every trial, and for a walk-forward each fold and the stitched
    out-of-sample curve with its statistics (`stats.curve_stats`)."""

    trials: tuple[TrialResult, ...]
    folds: tuple[FoldOutcome, ...] = ()
    oos_equity: tuple[tuple[int, float], ...] = ()
    oos_stats: Mapping[str, Any] = attrs.field(factory=dict)
    interrupted: bool = False


# cattrs structures JSON's lists into the tuples and mappings of the types.
_CONV = cattrs.Converter()


def result_to_dict(result: TrialResult) -> dict[str, Any]:
    """A trial's result as JSON values (the trial cache's file, `results.json`'s entries)."""
    out: dict[str, Any] = _CONV.unstructure(result)
    out["params"] = {name: dict(p) for name, p in result.params.items()}
    out["equity"] = [[t, v] for t, v in result.equity]
    out["warnings"] = list(result.warnings)
    return out


def result_from_dict(data: Mapping[str, Any]) -> TrialResult:
    """`result_to_dict`'s inverse (a value that does not fit raises ValueError or TypeError)."""
    try:
        result: TrialResult = _CONV.structure(dict(data), TrialResult)
    except Exception as exc:  # cattrs' ClassValidationError groups the fields' errors
        raise ValueError(f"not a trial result: {exc}") from None
    return result
