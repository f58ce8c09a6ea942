"""Sweep outcomes built by hand (no backtest): a grid search and a walk-forward, with a failed
and an infeasible trial, for the results and HTML tests."""

from __future__ import annotations

from typing import Any, Literal

from tradingd.engine.sweep.model import FoldOutcome, Role, SweepOutcome, TrialResult, Window
from tradingd.engine.sweep.spec import Constraint, ObjectiveSpec, ParamSpace, WalkForwardSpec
from tradingd.engine.sweep.walkforward import out_of_sample_stats, plan, stitch

MIN = 60 * 1_000_000_000
T0 = 1_795_000_020 * 1_000_000_000  # 2026-11-18T11:07:00Z

OBJECTIVE = ObjectiveSpec(
    statistic="net_pnl",
    constraints=(Constraint("max_drawdown", "<", 5.0, text="max_drawdown < 5"),),
)

PARAMS = {
    "momentum_eth": {
        "threshold": ParamSpace("values", values=(0.02, 0.04)),
        "lookback_s": ParamSpace("range", low=120, high=360, step=240, integer=True),
    },
    "gamma_btc": {"delta_band": ParamSpace("log_range", low=0.02, high=0.2, num=2)},
}


def trial(
    number: int,
    threshold: float,
    lookback_s: int,
    delta_band: float,
    net: float,
    *,
    drawdown: float = 1.0,
    status: Literal["ok", "failed"] = "ok",
    role: Role = "search",
    fold: int | None = None,
    window: Window | None = None,
    cached: bool = False,
    duration_s: float = 1.5,
    objective: ObjectiveSpec = OBJECTIVE,
) -> TrialResult:
    """A trial whose total net PnL is `net` (its equity climbs to it over four minutes from the
    window's start), scored against `objective`'s net_pnl and max_drawdown < 5 constraint."""
    window = window or Window()
    start = window.start_ns if window.start_ns is not None else T0
    params = {
        "momentum_eth": {"threshold": threshold, "lookback_s": lookback_s},
        "gamma_btc": {"delta_band": delta_band, "min_hedge_interval_s": 30},
    }
    if status == "failed":
        return TrialResult(
            key=f"key{number}",
            number=number,
            params=params,
            window=window,
            role=role,
            fold=fold,
            status="failed",
            error="RuntimeError: strategy blew up",
            duration_s=duration_s,
            cached=cached,
        )
    equity = tuple((start + i * MIN, net * i / 4) for i in range(5))
    per: dict[str, Any] = {"net_pnl": net / 2, "fees": 0.25, "fills": 3, "max_drawdown": drawdown}
    total: dict[str, Any] = {
        "net_pnl": net,
        "fees": 0.5,
        "fills": 6,
        "orders": 8,
        "max_drawdown": drawdown,
        "sharpe": None,
        "sortino": None,
    }
    return TrialResult(
        key=f"key{number}",
        number=number,
        params=params,
        window=window,
        role=role,
        fold=fold,
        status="ok",
        stats={"momentum_eth": per, "gamma_btc": dict(per), "total": total},
        equity=equity,
        objective=net,
        feasible=drawdown < 5.0,
        duration_s=duration_s,
        cached=cached,
    )


def search_outcome(*, cached: bool = False, duration_s: float = 1.5) -> SweepOutcome:
    """A 2 x 2 x 2 grid: trial 5 failed, trial 2 the best net PnL but infeasible (drawdown 9)."""
    nets = [1.0, 4.0, 12.0, -2.0, 3.5, 0.0, 7.25, 2.0]
    out = []
    n = 0
    for threshold in (0.02, 0.04):
        for lookback in (120, 360):
            for band in (0.02, 0.2):
                out.append(
                    trial(
                        n,
                        threshold,
                        lookback,
                        band,
                        nets[n],
                        drawdown=9.0 if n == 2 else 1.0,
                        status="failed" if n == 5 else "ok",
                        cached=cached,
                        duration_s=duration_s + n,
                    )
                )
                n += 1
    return SweepOutcome(trials=tuple(out))


def walk_forward_outcome(*, missing: int | None = None) -> SweepOutcome:
    """Three rolling folds (40 min train, 20 min test) of four train trials each; fold
    `missing`, when given, has no feasible train trial (so no test)."""
    folds = plan((T0, T0 + 120 * MIN), WalkForwardSpec(windows=3, train_s=2400, test_s=1200), Window())
    trials: list[TrialResult] = []
    outcomes = []
    n = 0
    for f in folds:
        train = []
        for threshold, lookback, net in (
            (0.02, 120, 2.0),
            (0.02, 360, 5.0 + f.index),
            (0.04, 120, 1.0),
            (0.04, 360, -1.0),
        ):
            infeasible = f.index == missing
            train.append(
                trial(
                    n,
                    threshold,
                    lookback,
                    0.2,
                    net,
                    drawdown=9.0 if infeasible else 1.0,
                    role="train",
                    fold=f.index,
                    window=f.train,
                )
            )
            n += 1
        best = None if f.index == missing else train[1]
        test = None
        if best is not None:
            test = trial(n, 0.02, 360, 0.2, 1.5 - f.index, role="test", fold=f.index, window=f.test)
            n += 1
        trials.extend(train)
        if test is not None:
            trials.append(test)
        outcomes.append(FoldOutcome(fold=f, trials=tuple(train), best=best, test=test))
    tests = [fo.test for fo in outcomes]
    curve = stitch(tests)
    return SweepOutcome(
        trials=tuple(trials),
        folds=tuple(outcomes),
        oos_equity=curve,
        oos_stats=out_of_sample_stats(tests, curve, 60.0),
    )


__all__ = ["MIN", "OBJECTIVE", "PARAMS", "T0", "search_outcome", "trial", "walk_forward_outcome"]
