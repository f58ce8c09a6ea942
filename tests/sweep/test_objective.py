"""The objective: which statistics it may name (the report's; fewer for the "total"), a trial's
value and feasibility (an undefined statistic is no crash and no NaN), constraints as written,
and the ranking (feasible best first, then infeasible, then failed; ties by number)."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.support.backtests import bundled_config_on
from tradingd.cli.backtest import build_kernel
from tradingd.config import load_config
from tradingd.engine.backtest import report_dict
from tradingd.engine.sweep.model import TrialResult, Window
from tradingd.engine.sweep.objective import (
    STATISTICS,
    TOTAL_STATISTICS,
    best,
    evaluate,
    parse_constraint,
    rank_key,
    scored,
    unknown_statistic,
)
from tradingd.engine.sweep.spec import Constraint, ObjectiveSpec
from tradingd.engine.sweep.stats import total_stats


def _result(number: int, stats: dict[str, Any] | None = None, *, status: str = "ok") -> TrialResult:
    return TrialResult(
        key=f"k{number}",
        number=number,
        params={},
        window=Window(),
        role="search",
        fold=None,
        status=status,  # type: ignore[arg-type]
        error=None if status == "ok" else "boom",
        stats=stats or {},
    )


# Written only when not zero (most trials would miss them): never an objective's.
_SOMETIMES = {"funding", "waiting_fills"}


def _numeric(entry: dict[str, Any]) -> set[str]:
    numbers = {
        k for k, v in entry.items() if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }
    return numbers - _SOMETIMES


def test_statistics_are_the_reports_numeric_ones(tmp_path: Path) -> None:
    # The README's two strategies on a quarter hour of the generated sample.
    loaded = load_config(bundled_config_on(tmp_path, hours=0.25, seed=7))
    result = trio.run(build_kernel(loaded, event_cache=None).run)
    entries = report_dict(result, include_curves=False)["strategies"]
    assert set(entries) == {"gamma_btc", "momentum_eth"}
    for name, entry in entries.items():
        # Every numeric statistic the report always writes may be named, and nothing else.
        assert _numeric(entry) == STATISTICS, name
    assert set(total_stats(entries, (), 60.0)) == TOTAL_STATISTICS


def test_the_total_has_fewer_statistics_and_says_which() -> None:
    assert TOTAL_STATISTICS < STATISTICS
    assert {
        "win_rate",
        "avg_holding_s",
        "fill_ratio",
        "conflated",
        "merged",
        "dropped",
    } == STATISTICS - TOTAL_STATISTICS
    why = unknown_statistic("win_rate", "total")
    assert why is not None and why.startswith("'win_rate' is a strategy's statistic, not the total's")
    assert unknown_statistic("win_rate", "momentum_eth") is None
    assert unknown_statistic("sharpe", "total") is None
    assert unknown_statistic("profit", "total") == (
        f"unknown statistic 'profit' (known: {', '.join(sorted(STATISTICS))})"
    )


@pytest.mark.parametrize(
    ("name", "strategy", "meant"),
    [
        ("sharp", "total", "sharpe"),
        ("Sharpe", "momentum_eth", "sharpe"),
        ("pnl", "total", "net_pnl"),
        ("net_pl", "total", "net_pnl"),
        ("fill", "total", "fills"),
        ("win_rat", "momentum_eth", "win_rate"),
    ],
)
def test_a_misspelt_statistic_names_the_one_meant(name: str, strategy: str, meant: str) -> None:
    assert unknown_statistic(name, strategy) == f"unknown statistic {name!r}; did you mean {meant!r}?"


def test_evaluate_reads_the_statistic_and_the_constraints() -> None:
    spec = ObjectiveSpec(
        statistic="net_pnl",
        strategy="total",
        constraints=(parse_constraint("max_drawdown < 500"), parse_constraint("m.fills >= 2")),
    )
    stats: dict[str, dict[str, Any]] = {"total": {"net_pnl": 12.5, "max_drawdown": 400.0}, "m": {"fills": 2}}
    assert evaluate(spec, stats) == (12.5, True)
    assert evaluate(spec, {**stats, "m": {"fills": 1}}) == (12.5, False)
    assert evaluate(spec, {**stats, "total": {"net_pnl": 12.5, "max_drawdown": 500.0}}) == (12.5, False)


@pytest.mark.parametrize("undefined", [None, math.nan, math.inf])
def test_an_undefined_statistic_is_no_value_and_infeasible(undefined: float | None) -> None:
    spec = ObjectiveSpec(statistic="sharpe", strategy="s")
    value, feasible = evaluate(spec, {"s": {"sharpe": undefined}})
    assert value is None and feasible is False
    # A constraint on an undefined statistic is not met either.
    spec = ObjectiveSpec(
        statistic="net_pnl", strategy="s", constraints=(parse_constraint("sharpe > 0", strategy="s"),)
    )
    assert evaluate(spec, {"s": {"net_pnl": 1.0, "sharpe": undefined}}) == (1.0, False)


def test_scored_sets_objective_and_feasible_and_a_failed_trial_has_none() -> None:
    spec = ObjectiveSpec(statistic="fills", strategy="s")
    ok = scored(spec, _result(0, {"s": {"fills": 3}}))
    assert (ok.objective, ok.feasible) == (3.0, True)
    failed = scored(spec, _result(1, {"s": {"fills": 3}}, status="failed"))
    assert (failed.objective, failed.feasible) == (None, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_drawdown < 500", Constraint("max_drawdown", "<", 500.0, "total", "max_drawdown < 500")),
        ("fills>=2", Constraint("fills", ">=", 2.0, "total", "fills>=2")),
        ("  sharpe > -1.5 ", Constraint("sharpe", ">", -1.5, "total", "sharpe > -1.5")),
        ("m_eth.win_rate <= 0.5", Constraint("win_rate", "<=", 0.5, "m_eth", "m_eth.win_rate <= 0.5")),
        ("fees < 1_000", Constraint("fees", "<", 1000.0, "total", "fees < 1_000")),
        ("fees < 1e3", Constraint("fees", "<", 1000.0, "total", "fees < 1e3")),
    ],
)
def test_constraints_parse_as_written(text: str, expected: Constraint) -> None:
    assert parse_constraint(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "max_drawdown = 500",
            "constraint 'max_drawdown = 500' is not `statistic op number` (op: <, <=, >, >=), "
            "e.g. 'max_drawdown < 500'",
        ),
        ("max_drawdown < lots", "constraint 'max_drawdown < lots': 'lots' is not a number"),
        ("max_drawdown < nan", "constraint 'max_drawdown < nan': expected a finite number, got 'nan'"),
        (
            "win_rate > 0.5",
            "constraint 'win_rate > 0.5': 'win_rate' is a strategy's statistic, not the total's",
        ),
        ("pnl > 0", "constraint 'pnl > 0': unknown statistic 'pnl'; did you mean 'net_pnl'?"),
        ("profit > 0", "constraint 'profit > 0': unknown statistic 'profit' (known: "),
    ],
)
def test_a_wrong_constraint_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + _escaped(message)):
        parse_constraint(text)


def _escaped(text: str) -> str:
    return re.escape(text)


_ops = st.sampled_from(["<", "<=", ">", ">="])
_stat = st.sampled_from(sorted(TOTAL_STATISTICS))
_limit = st.floats(-1e9, 1e9, allow_nan=False) | st.integers(-(10**9), 10**9).map(float)


@given(stat=_stat, op=_ops, limit=_limit, spaces=st.text(" ", max_size=3), value=_limit)
def test_a_parsed_constraint_judges_as_its_operator(
    stat: str, op: str, limit: float, spaces: str, value: float
) -> None:
    text = f"{spaces}{stat}{spaces}{op}{spaces}{limit!r}{spaces}"
    c = parse_constraint(text)
    assert (c.statistic, c.op, c.value, c.strategy) == (stat, op, limit, "total")
    spec = ObjectiveSpec(statistic=stat, constraints=(c,))
    expected = {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[op]
    assert evaluate(spec, {"total": {stat: value}}) == (value, expected)


def test_rank_key_orders_feasible_then_infeasible_then_failed_ties_by_number() -> None:
    spec = ObjectiveSpec(
        statistic="net_pnl", strategy="s", constraints=(parse_constraint("fills >= 1", strategy="s"),)
    )
    trials = [
        _result(0, {"s": {"net_pnl": 5.0, "fills": 0}}),  # infeasible, higher value
        _result(1, {"s": {"net_pnl": 1.0, "fills": 1}}),
        _result(2, {}, status="failed"),
        _result(3, {"s": {"net_pnl": 3.0, "fills": 1}}),
        _result(4, {"s": {"net_pnl": None, "fills": 1}}),  # no value: infeasible, after valued ones
        _result(5, {"s": {"net_pnl": 3.0, "fills": 2}}),  # a tie with 3: the lower number first
        _result(6, {"s": {"net_pnl": -1.0, "fills": 0}}),
    ]
    done = [scored(spec, t) for t in trials]
    order = [t.number for t in sorted(done, key=lambda t: rank_key(spec, t))]
    assert order == [3, 5, 1, 0, 6, 4, 2]
    minimize = ObjectiveSpec(
        statistic="net_pnl", strategy="s", direction="minimize", constraints=spec.constraints
    )
    order = [t.number for t in sorted(done, key=lambda t: rank_key(minimize, t))]
    assert order == [1, 3, 5, 6, 0, 4, 2]
    chosen = best(spec, done)
    assert chosen is not None and chosen.number == 3
    chosen = best(minimize, done)
    assert chosen is not None and chosen.number == 1


def test_best_is_none_when_nothing_is_feasible() -> None:
    spec = ObjectiveSpec(statistic="sharpe", strategy="s")
    assert best(spec, []) is None
    assert (
        best(spec, [scored(spec, _result(0, {"s": {"sharpe": None}})), _result(1, status="failed")]) is None
    )


@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), max_size=12),
    seed=st.integers(0, 1000),
)
def test_the_ranking_does_not_depend_on_the_input_order(values: list[float | None], seed: int) -> None:
    spec = ObjectiveSpec(statistic="net_pnl", strategy="s")
    done = [scored(spec, _result(i, {"s": {"net_pnl": v}})) for i, v in enumerate(values)]
    shuffled = list(done)
    random.Random(seed).shuffle(shuffled)
    first = [t.number for t in sorted(done, key=lambda t: rank_key(spec, t))]
    assert first == [t.number for t in sorted(shuffled, key=lambda t: rank_key(spec, t))]
    valued = [t for t in done if t.objective is not None]
    if valued:
        top = best(spec, shuffled)
        assert top is not None and top.objective == max(
            t.objective for t in valued if t.objective is not None
        )
