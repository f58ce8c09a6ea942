"""What a sweep file says (`tradingd.config.load_sweep` reads SWEEP.toml into these): the
parameter space, the search, the objective, the windows. Plain values, checked where they are
read; the search (`search`), the objective (`objective`) and the walk-forward (`walkforward`)
act on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .model import Window


@attrs.frozen
class ParamSpace:
    """One parameter's values. `kind`:
    - "values": exactly `values` (a list in the file), in order;
    - "choices": the same, but a random or TPE search treats them as unordered categories;
    - "range": `low`..`high` inclusive; a grid steps by `step` (ints when `integer`), a random or
      TPE search draws uniformly (on the `step` grid when one is given);
    - "log_range": `low`..`high` (both > 0) on a log scale; a grid takes `num` points, a random or
      TPE search draws log-uniformly."""

    kind: Literal["values", "choices", "range", "log_range"]
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    num: int | None = None
    integer: bool = False


@attrs.frozen
class SearchSpec:
    """`[search]`: grid (every combination), random (`trials` draws, `seed`), tpe (Optuna's TPE,
    `trials`, `seed`, `parallel`; its study is stored beside the results so a rerun resumes it).

    `parallel` (TPE only): how many trials run at once at most, whatever the workers: trial n is
    proposed from the results of trials 0..n-parallel, so the proposals depend on the file alone,
    not on the machine. More is faster but each proposal knows fewer results (with 64, TPE would
    draw at random for its first ~74 trials); 4 keeps a few workers busy while every proposal
    misses only the last three results."""

    method: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = None
    seed: int = 0
    max_trials: int = 10_000  # a grid larger than this is refused (a typo's 10^9 combinations)
    parallel: int = 4


@attrs.frozen
class Constraint:
    """`"max_drawdown < 500"`: a trial breaking one is infeasible (ranked after every feasible
    one, never chosen as a walk-forward's best). `strategy` as in `ObjectiveSpec`."""

    statistic: str
    op: Literal["<", "<=", ">", ">="]
    value: float
    strategy: str = "total"
    text: str = ""  # as written in the file, for messages


@attrs.frozen
class ObjectiveSpec:
    """`[objective]`: the statistic a trial is ranked by, of one strategy or of the "total" (every
    strategy together: `stats.total_stats`), and which way is better."""

    statistic: str = "net_pnl"
    strategy: str = "total"
    direction: Literal["maximize", "minimize"] = "maximize"
    constraints: tuple[Constraint, ...] = ()


@attrs.frozen
class WalkForwardSpec:
    """`[walk_forward]`: `windows` test windows of `test_s` seconds, each after a train window of
    `train_s` seconds ("rolling": the train window slides with it; "anchored": every train window
    starts at the data's start and grows). Windows are laid from the data's start (or the sweep's
    `[window] start`)."""

    windows: int
    train_s: float
    test_s: float
    mode: Literal["rolling", "anchored"] = "rolling"


@attrs.frozen
class SweepSpec:
    """A whole sweep file. Paths are absolute (resolved against the file's folder)."""

    path: str  # the sweep file
    base: str  # the backtest config the trials change
    out: str  # where results go (`--out` overrides)
    params: Mapping[str, Mapping[str, ParamSpace]]  # strategy -> parameter -> its space
    search: SearchSpec = attrs.field(factory=SearchSpec)
    objective: ObjectiveSpec = attrs.field(factory=ObjectiveSpec)
    window: Window = attrs.field(factory=Window)  # the data window the whole sweep uses
    walk_forward: WalkForwardSpec | None = None
    workers: int | None = None  # None: this machine's CPUs
    cluster: str | None = None  # a Ray address ("auto", "ray://host:10001"); None: local processes
    max_attempts: int = 3  # runs of a trial whose worker is lost, before it is failed
