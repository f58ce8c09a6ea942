"""The objective: what a trial is worth (one statistic of one strategy or of the "total"), whether
it met the constraints, and the order trials rank in.

A trial's value is None when its statistic is undefined (a Sharpe ratio of a flat curve, a win
rate without round trips) or when it failed: such a trial is infeasible and ranks after every
trial with a value; a value is never NaN. Ranking is total and deterministic: ok and feasible
trials first, best objective first; then ok but infeasible ones, by objective too; then failed
ones; ties broken by the trial's number."""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .model import TrialResult
from .spec import Constraint, ObjectiveSpec
from .stats import ADDITIVE

__all__ = [
    "STATISTICS",
    "TOTAL",
    "TOTAL_STATISTICS",
    "best",
    "evaluate",
    "met",
    "parse_constraint",
    "rank_key",
    "scored",
    "statistic",
    "unknown_statistic",
    "violations",
]

# A strategy's numeric statistics in the backtest report (`backtest.report_dict`'s
# `strategies.<name>` entry): what an objective or a constraint may name. Not there: the
# non-numeric entries (positions, max_drawdown_at, ratios_from) and those the report writes only
# when non-zero (funding, waiting_fills), which would be missing from most trials.
STATISTICS: frozenset[str] = frozenset(
    {
        "net_pnl",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "sharpe",
        "sortino",
        "max_drawdown",
        "win_rate",
        "avg_holding_s",
        "fill_ratio",
        "turnover",
        "orders",
        "fills",
        "filled_orders",
        "rejected",
        "errors",
        "round_trips",
        "conflated",
        "merged",
        "dropped",
    }
)

# The "total" entry's (`stats.total_stats`): the additive ones summed over the strategies, and
# the summed equity curve's ratios and drawdown. A per-trade ratio (win_rate, fill_ratio,
# avg_holding_s) or a mailbox count (conflated, merged, dropped) has no portfolio sum.
TOTAL_STATISTICS: frozenset[str] = frozenset({*ADDITIVE, "max_drawdown", "sharpe", "sortino"})

TOTAL = "total"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# `[strategy.]statistic op number`: "max_drawdown < 500", "momentum_eth.fills >= 2".
_CONSTRAINT = re.compile(
    r"^\s*(?:(?P<strategy>[A-Za-z0-9_-]+)\.)?(?P<statistic>[a-z_]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>\S+)\s*$"
)


def unknown_statistic(name: str, strategy: str) -> str | None:
    """Why `name` cannot be asked of `strategy` ("total" or a strategy's name), or None."""
    if strategy == TOTAL:
        if name in TOTAL_STATISTICS:
            return None
        if name in STATISTICS:
            return (
                f"{name!r} is a strategy's statistic, not the total's (the total has: "
                f"{', '.join(sorted(TOTAL_STATISTICS))}): name a strategy"
            )
    elif name in STATISTICS:
        return None
    # The closest of those `strategy` has (a typo: "sharp", "net_pl"), else every name.
    close = difflib.get_close_matches(
        name, sorted(TOTAL_STATISTICS if strategy == TOTAL else STATISTICS), n=1
    )
    if close:
        return f"unknown statistic {name!r}; did you mean {close[0]!r}?"
    return f"unknown statistic {name!r} (known: {', '.join(sorted(STATISTICS))})"


def parse_constraint(text: str, *, strategy: str = TOTAL) -> Constraint:
    """A constraint as written in a sweep file: `statistic op number` ("max_drawdown < 500"),
    `op` one of < <= > >=, of `strategy` unless prefixed with another's name and a dot
    ("momentum_eth.fills >= 2"). ValueError with a message for people when it does not parse
    or names a statistic its strategy does not have."""
    found = _CONSTRAINT.match(text)
    if found is None:
        raise ValueError(
            f"constraint {text!r} is not `statistic op number` (op: <, <=, >, >=), e.g. 'max_drawdown < 500'"
        )
    try:
        value = float(found["value"].replace("_", ""))
    except ValueError:
        raise ValueError(f"constraint {text!r}: {found['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"constraint {text!r}: expected a finite number, got {found['value']!r}")
    who = found["strategy"] or strategy
    why = unknown_statistic(found["statistic"], who)
    if why is not None:
        raise ValueError(f"constraint {text!r}: {why}")
    return Constraint(
        statistic=found["statistic"],
        op=found["op"],  # type: ignore[arg-type]  # the pattern allows only the four
        value=value,
        strategy=who,
        text=text.strip(),
    )


def statistic(stats: Mapping[str, Mapping[str, Any]], strategy: str, name: str) -> float | None:
    """One statistic of a trial's `stats` as a float: None when missing, undefined (None) or
    not a finite number."""
    entry = stats.get(strategy)
    value = None if entry is None else entry.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def met(constraint: Constraint, stats: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether `stats` meets `constraint` (an undefined statistic meets none)."""
    value = statistic(stats, constraint.strategy, constraint.statistic)
    return value is not None and _OPS[constraint.op](value, constraint.value)


def evaluate(spec: ObjectiveSpec, stats: Mapping[str, Mapping[str, Any]]) -> tuple[float | None, bool]:
    """(the objective's value, feasible) of a trial's statistics: the value None when the
    statistic is undefined; feasible when it has a value and every constraint is met."""
    value = statistic(stats, spec.strategy, spec.statistic)
    feasible = value is not None and all(met(c, stats) for c in spec.constraints)
    return value, feasible


def scored(spec: ObjectiveSpec, result: TrialResult) -> TrialResult:
    """`result` with its `objective` and `feasible` set (a failed trial: None, infeasible)."""
    if result.status != "ok":
        return attrs.evolve(result, objective=None, feasible=False)
    value, feasible = evaluate(spec, result.stats)
    return attrs.evolve(result, objective=value, feasible=feasible)


def rank_key(spec: ObjectiveSpec, result: TrialResult) -> tuple[Any, ...]:
    """`sorted(results, key=...)` puts the best first: ok and feasible by objective (the
    spec's direction), then ok and infeasible by objective (those without a value last), then
    failed; ties by trial number. Reads `result.objective`/`feasible` (see `scored`)."""
    if result.status != "ok":
        group = 2
    else:
        group = 0 if result.feasible and result.objective is not None else 1
    value = result.objective
    if value is None or not math.isfinite(value):
        return (group, 1, 0.0, result.number)
    return (group, 0, -value if spec.direction == "maximize" else value, result.number)


def best(spec: ObjectiveSpec, results: Iterable[TrialResult]) -> TrialResult | None:
    """The best ok and feasible trial of `results` (`rank_key`), or None if there is none."""
    ok = [r for r in results if r.status == "ok" and r.feasible and r.objective is not None]
    return min(ok, key=lambda r: rank_key(spec, r)) if ok else None


def violations(spec: ObjectiveSpec, stats: Mapping[str, Mapping[str, Any]]) -> tuple[float, ...]:
    """Each constraint's violation, Optuna's way: <= 0 met, > 0 broken by that much (an
    undefined statistic: 1.0). What a TPE search tells its sampler."""
    out: list[float] = []
    for c in spec.constraints:
        value = statistic(stats, c.strategy, c.statistic)
        if value is None:
            out.append(1.0)
        elif _OPS[c.op](value, c.value):
            out.append(0.0)
        else:
            # At the bound a strict constraint is broken by nothing: count it as a little.
            out.append(max(abs(value - c.value), 1e-9))
    return tuple(out)
