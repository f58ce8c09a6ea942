"""Walk-forward: the train/test windows of a sweep (`plan`), and the out-of-sample equity curve
chained from the test windows' trials (`stitch`).

Each fold's train window is searched; the best feasible train trial's parameters run on the
test window right after it (the runner does both). Test windows follow each other without a gap
or an overlap, so the chained test curves are one out-of-sample curve: parameters chosen on the
past, traded on what came next. Windows are half-open, `[start_ns, end_ns)`, in integer ns.

    rolling   train [s + i*test, s + i*test + train)    the train window slides with the test
    anchored  train [s, s + train + i*test)            every train window starts at s and grows
    both      test  [s + train + i*test, s + train + (i+1)*test)

`s` is the data's first receive time, or the sweep's `[window] start` when that is later; the
folds must end by the data's last receive time (or the window's `end` when that is earlier).
What lies after the last test window is not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from .model import Fold, TrialResult, Window
from .spec import WalkForwardSpec
from .stats import ADDITIVE, curve_stats

__all__ = ["missing_folds", "out_of_sample_stats", "plan", "stitch"]

_NS = 1_000_000_000


def _ns(seconds: float) -> int:
    # The file's durations ("40m", "1.5h") are whole ns once scaled; round() keeps a float's
    # 0.1-style error from losing a ns.
    return round(seconds * _NS)


# The units a refusal says its durations in, largest first (a sweep file's d, h, m, s, and
# below a second for a train or test like "0.5s").
_UNITS = (("d", 86_400 * _NS), ("h", 3600 * _NS), ("min", 60 * _NS), ("s", _NS), ("ms", 1_000_000), ("ns", 1))


def _unit(*spans: int) -> tuple[str, int]:
    """The largest unit every one of `spans` (the sweep file's durations) is a whole number of."""
    return next((name, size) for name, size in _UNITS if all(ns % size == 0 for ns in spans))


def _in_unit(ns: int, unit: tuple[str, int]) -> str:
    """`ns` in `unit`: whole when it is, else to the hundredth, cut rather than rounded (a span
    just short of the one needed never reads as it)."""
    name, size = unit
    if ns % size == 0:
        return f"{ns // size:,} {name}"
    hundredths = ns * 100 // size
    if hundredths == 0:
        return f"under 0.01 {name}"
    return f"{hundredths // 100:,}.{hundredths % 100:02d}".rstrip("0").rstrip(".") + f" {name}"


def plan(span: tuple[int, int], spec: WalkForwardSpec, window: Window) -> tuple[Fold, ...]:
    """The folds of a walk-forward over data whose first and last receive times are `span`,
    within the sweep's `window` (module docstring). Raises ValueError, one line with the figures,
    when the folds do not fit ("walk-forward needs 100 min of data (40 min train + 3 x 20 min
    test); the data has 95 min") or the spec is not a walk-forward (no windows, a duration <= 0)."""
    if spec.windows < 1:
        raise ValueError(f"walk-forward needs at least 1 window, not {spec.windows}")
    train, test = _ns(spec.train_s), _ns(spec.test_s)
    if train <= 0 or test <= 0:
        raise ValueError(
            f"walk-forward windows need a length above 0 (train {spec.train_s:g} s, test {spec.test_s:g} s)"
        )
    first, last = span
    # The sweep's window narrows the data; a window reaching beyond the data adds none.
    start = first if window.start_ns is None else max(first, window.start_ns)
    end = last if window.end_ns is None else min(last, window.end_ns)
    needed = train + spec.windows * test
    have = max(0, end - start)
    if needed > have:
        where = "the data" if window == Window() else "the data in the sweep's window"
        unit = _unit(train, test)  # one unit for every figure: "140 min ... has 119.5 min"
        raise ValueError(
            f"walk-forward needs {_in_unit(needed, unit)} of data ({_in_unit(train, unit)} train + "
            f"{spec.windows} x {_in_unit(test, unit)} test); {where} has "
            + ("nothing" if have == 0 else _in_unit(have, unit))
        )
    folds = []
    for i in range(spec.windows):
        test_start = start + train + i * test
        train_start = start if spec.mode == "anchored" else start + i * test
        folds.append(Fold(i, Window(train_start, test_start), Window(test_start, test_start + test)))
    return tuple(folds)


def _usable(trial: TrialResult | None) -> bool:
    return trial is not None and trial.status == "ok" and bool(trial.equity)


def stitch(tests: Sequence[TrialResult | None]) -> tuple[tuple[int, float], ...]:
    """The out-of-sample equity curve: each test trial's equity (PnL from 0 at its window's
    start) raised by the value the chain had reached at the end of the previous one, in the order
    given (the folds'). A fold without a usable test result (None: no feasible train trial; a
    failed test; an empty curve) adds nothing: the chain carries its level over that window and
    has no points in it, so the curve's PnL is that of the folds that ran and its time gap shows
    where one is missing. It is never filled in (neither as flat trading nor as anything else):
    `missing_folds` names them, and the results say the out-of-sample covers only the others.

    A test's first point at 0 (its start, before it traded: the level carried over) is dropped
    after the first chained test: it repeats the previous test's last point a few ms later, and
    as a sample it would count as one more zero-change interval in the Sharpe and Sortino (which
    take the curve's points as `interval_s` apart). A first point off 0 is a change, and kept."""
    out: list[tuple[int, float]] = []
    level = 0.0
    for trial in tests:
        if trial is None or not _usable(trial):
            continue
        equity = trial.equity
        if out and equity[0][1] == 0:
            equity = equity[1:]
        out.extend((t, level + v) for t, v in equity)
        level = out[-1][1]
    return tuple(out)


def missing_folds(tests: Iterable[TrialResult | None]) -> tuple[int, ...]:
    """The positions (fold indexes, when the folds are given in order) of the tests `stitch`
    could not chain."""
    return tuple(i for i, trial in enumerate(tests) if not _usable(trial))


def out_of_sample_stats(
    tests: Sequence[TrialResult | None], curve: Sequence[tuple[int, float]], interval_s: float
) -> dict[str, Any]:
    """The out-of-sample statistics: the stitched `curve`'s (`stats.curve_stats`: drawdown,
    Sharpe, Sortino), the counts and money of the tests that ran summed (fills, fees, net PnL,
    ... of their `"total"`: the exact sum, where the curve's end is the sampled one), and how many
    folds they cover (`folds`; `folds_missing`: the indexes `stitch` could not chain)."""
    ran = [t for t in tests if t is not None and _usable(t)]
    out: dict[str, Any] = dict(curve_stats(curve, interval_s))
    for name in ADDITIVE:
        values = [v for t in ran if (v := t.stats.get("total", {}).get(name)) is not None]
        if not values:
            continue
        if all(isinstance(v, int) for v in values):
            out[name] = sum(values)
        else:  # money: summed exactly, as `stats.total_stats` sums the strategies'
            out[name] = float(sum((Decimal(str(v)) for v in values), Decimal(0)))
    out["folds"] = len(ran)
    out["folds_missing"] = list(missing_folds(tests))
    return out
