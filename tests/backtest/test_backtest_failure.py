"""A failing strategy in a backtest (issue 12, section 3): it is stopped and reported failed in
the result, its open orders follow its `on_failure` policy, and the other strategies' results
are all there (today a `SystemExit` from one strategy ends the whole run, every result lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.support import deribit_frames as F
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import MarketEvent, OrderState, Strategy, Subscription, Ticker
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict

TICKERS = 6


def frames() -> list[tuple[int, bytes]]:
    out = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (2, F.snapshot(F.OPTION, 2, 10, [(0.049, 3.0), (0.048, 5.0)], [(0.05, 2.0), (0.051, 4.0)])),
    ]
    out += [
        (
            1000 + i * 1000,
            F.ticker(F.OPTION, 1000 + i * 1000, bid=0.049, ask=0.05, mark=0.0495, index=90000.0),
        )
        for i in range(TICKERS)
    ]
    return out


class Probe(Strategy):
    """Counts the option tickers it receives and records its hooks; `fail` picks the fault."""

    def __init__(self, name: str, fail: str = "") -> None:
        super().__init__(name)
        self.fail = fail
        self.tickers = 0
        self.stopped = 0
        self.order: str | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.OPTION, {"ticker"})]

    async def on_start(self) -> None:
        if self.fail == "start":
            raise RuntimeError("cannot start")

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, Ticker):
            return
        self.tickers += 1
        if self.fail == "exit" and self.tickers == 1:
            update = await self.ctx.buy("deribit", F.OPTION, "1", price="0.0485")  # rests
            self.order = update.client_order_id
        elif self.fail == "exit" and self.tickers == 2:
            raise SystemExit(3)
        elif self.fail == "interrupt" and self.tickers == 3:
            raise KeyboardInterrupt

    async def on_stop(self) -> None:
        self.stopped += 1
        if self.fail == "stop":
            raise KeyboardInterrupt


def test_failing_strategies_are_stopped_and_reported_and_the_others_results_kept(tmp_path: Path) -> None:
    path = F.write(tmp_path / "fail.rec", frames())
    start, exits, interrupted, bad_stop, healthy = (
        Probe("start", "start"),
        Probe("exits", "exit"),
        Probe("interrupted", "interrupt"),
        Probe("bad_stop", "stop"),
        Probe("healthy"),
    )
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [start, exits, interrupted, bad_stop, healthy],
        BacktestSettings(),
    )
    result = trio.run(kernel.run)

    assert set(result.strategies) == {"start", "exits", "interrupted", "bad_stop", "healthy"}
    failures: dict[str, Any] = {
        name: (r.failure.phase, r.failure.error) if r.failure else None
        for name, r in result.strategies.items()
    }
    assert failures == {
        "start": ("on_start", "RuntimeError"),
        "exits": ("on_event", "SystemExit"),
        "interrupted": ("on_event", "KeyboardInterrupt"),
        "bad_stop": ("on_stop", "KeyboardInterrupt"),
        "healthy": None,
    }
    # Stopped: no event after the failure (none at all for the one that failed to start), and
    # on_stop called exactly once each.
    assert (start.tickers, exits.tickers, interrupted.tickers) == (0, 2, 3)
    assert [p.stopped for p in (start, exits, interrupted, bad_stop, healthy)] == [1, 1, 1, 1, 1]
    assert healthy.tickers == bad_stop.tickers == TICKERS
    # The failed strategy's resting order was cancelled (the default policy).
    assert exits.order is not None
    order = kernel.flow.tracker.get(exits.order)
    assert order is not None and order.state is OrderState.CANCELLED
    assert result.strategies["exits"].orders == 1
    report = report_dict(result, include_curves=False)["strategies"]
    assert report["exits"]["failure"]["error"] == "SystemExit" and "failure" not in report["healthy"]


def test_the_leave_policy_leaves_a_failed_strategys_orders_working(tmp_path: Path) -> None:
    path = F.write(tmp_path / "leave.rec", frames())
    exits = Probe("exits", "exit")
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", path)],
        [exits],
        BacktestSettings(),
        on_failure={"exits": "leave"},
    )
    result = trio.run(kernel.run)
    assert result.strategies["exits"].failure is not None
    order = kernel.flow.tracker.get(exits.order or "")
    assert order is not None and order.state is OrderState.OPEN
