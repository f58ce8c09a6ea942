"""When the simulated venue's answers reach a strategy: an order (or a cancel) reaches the venue
`latency_ms` after it is sent and its answer comes back `response_latency_ms` after that. The
kernel pushes these timers inline (`_park`, `_arrive_order`, `_arrive_cancel`: `_at`'s body,
copied); with the two latencies distinct, a copy that adds the wrong one fails here."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio

from tests.support import deribit_frames as F
from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import Fill, MarketEvent, OrderState, Strategy, Subscription, Ticker
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource

MS = 1_000_000
LAT, RESP = 20, 1  # ms: one way out, one way back


class Timed(Strategy):
    """On the option's first quote: a bid below the book (rests), its cancel, then a buy at the
    offer (fills on arrival); each step records when it was sent and when its answer came."""

    def __init__(self) -> None:
        super().__init__("timed")
        self.steps: list[tuple[str, int, int, OrderState]] = []  # (step, sent, answered, state)
        self.fills: list[tuple[int, int]] = []  # (fill's ts_local, clock when the strategy saw it)
        self.done = False

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", F.OPTION, {"ticker"})]

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Fill):
            self.fills.append((event.ts_local, self.ctx.now_ns()))
            return
        if not isinstance(event, Ticker) or self.done:
            return
        self.done = True
        ctx = self.ctx
        sent = ctx.now_ns()
        rest = await ctx.buy("deribit", F.OPTION, "1", price="0.04")
        self.steps.append(("rest", sent, ctx.now_ns(), rest.status))
        sent = ctx.now_ns()
        assert rest.client_order_id is not None
        gone = await ctx.cancel_order(rest.client_order_id)
        self.steps.append(("cancel", sent, ctx.now_ns(), gone.status))
        sent = ctx.now_ns()
        took = await ctx.buy("deribit", F.OPTION, "1", price=str(Decimal("0.05")), time_in_force="ioc")
        self.steps.append(("take", sent, ctx.now_ns(), took.status))


def test_an_answer_comes_the_latency_out_plus_the_latency_back_after_the_request(tmp_path: Path) -> None:
    frames = [
        (0, F.instruments()),
        (1, F.ticker(F.PERP, 1, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
        (1_000, F.snapshot(F.OPTION, 1_000, 10, [(0.049, 5.0)], [(0.05, 5.0)])),
        (1_001, F.ticker(F.OPTION, 1_001, bid=0.049, ask=0.05, mark=0.0495, index=90000.0)),
        (5_000, F.ticker(F.PERP, 5_000, bid=89999.5, ask=90000.0, mark=90000.0, index=90000.0)),
    ]
    strategy = Timed()
    kernel = BacktestKernel(
        {"deribit": PLUGIN},
        [DataSource("deribit", F.write(tmp_path / "t.rec", frames))],
        [strategy],
        BacktestSettings(latency_ms=LAT, response_latency_ms=RESP),
    )
    trio.run(kernel.run)
    assert [(step, state) for step, _, _, state in strategy.steps] == [
        ("rest", OrderState.OPEN),
        ("cancel", OrderState.CANCELLED),
        ("take", OrderState.FILLED),
    ]
    first = strategy.steps[0][1]
    assert [(sent - first, answered - sent) for _, sent, answered, _ in strategy.steps] == [
        (0, (LAT + RESP) * MS),
        ((LAT + RESP) * MS, (LAT + RESP) * MS),
        (2 * (LAT + RESP) * MS, (LAT + RESP) * MS),
    ]
    # The fill happened at the venue when the order arrived; the strategy hears of it with the
    # order's answer.
    take_sent = strategy.steps[2][1]
    assert [(ts - take_sent, seen - take_sent) for ts, seen in strategy.fills] == [
        (LAT * MS, (LAT + RESP) * MS)
    ]
