"""The live engine puts a session's market events into the strategies' mailboxes at once (no
router task between them): in arrival order with the reports of our orders, and a strategy that
does not keep up still sees its tickers conflated and its trades kept, as the mailbox documents."""

from __future__ import annotations

from decimal import Decimal

from tests.support.helpers import ticker, trade
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import DataKind, MarketEvent, Strategy, Subscription
from tradingd.engine.model.events import OrderState, OrderUpdate, Side, Ticker, Trade
from tradingd.engine.runtime.live import LiveEngine

PERP = "BTC-PERPETUAL"


class _Idle(Strategy):
    def __init__(self) -> None:
        super().__init__("idle")

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", PERP, {DataKind.TICKER, DataKind.TRADES})]

    async def on_event(self, event: MarketEvent) -> None:
        return None


def _engine() -> LiveEngine:
    # Built, never run: nothing connects; `market` and `private` are called as a session would.
    return LiveEngine([_Idle()], {"deribit": DeribitSettings()}, mode="paper", environ={})


def _update(ts: int) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=PERP,
        ts_exchange=ts,
        ts_local=ts,
        order_id="V1",
        client_order_id="s-idle-1",
        status=OrderState.OPEN,
        side=Side.BUY,
        price=Decimal("50000"),
        size=Decimal("10"),
        filled_size=Decimal(0),
        strategy="idle",
    )


async def test_a_report_of_our_order_never_overtakes_a_market_event_that_came_first() -> None:
    engine = _engine()
    mailbox = engine.slots[0].mailbox
    await engine.market([ticker(PERP, 1, bid=100.0, ask=101.0)])
    engine._deliver_private(_update(2))
    got = mailbox.drain()
    assert [type(e) for e in got] == [Ticker, OrderUpdate]


async def test_a_strategy_behind_still_sees_tickers_conflated_and_every_trade() -> None:
    """Ten frames' worth of tickers and trades before the strategy runs: the newest ticker only
    (the others counted as conflated), every trade, in the order they came."""
    engine = _engine()
    mailbox = engine.slots[0].mailbox
    for i in range(10):
        await engine.market(
            [ticker(PERP, i, bid=100.0 + i, ask=101.0 + i), trade(100.0, 1.0, "buy", PERP, ts=i)]
        )
    got = mailbox.drain(100)
    trades = [e for e in got if isinstance(e, Trade)]
    tickers = [e for e in got if isinstance(e, Ticker)]
    assert [e.ts_exchange for e in trades] == list(range(10))
    assert [e.ts_exchange for e in tickers] == [9] and got[-2] is tickers[0]  # where the newest came
    assert mailbox.stats.conflated == 9 and mailbox.stats.dropped == 0
