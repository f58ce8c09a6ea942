"""A live engine with one resting Deribit order ("s-1", venue id V1) and a fake venue whose
reconciliation reads (order status, open orders, trade history) wait for the test (`gate`): the
channel's reports arrive meanwhile through `LiveEngine.private`, as a venue session delivers them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import trio

from tests.support.helpers import PERP, request, ticker
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import Fill, FillReversal, Liquidity, OrderState, OrderUpdate, PrivateEvent, Side
from tradingd.engine.model import Order
from tradingd.engine.runtime.live import LiveEngine

S = 1_000_000_000
_CREDS = {"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s56-x"}  # never used: nothing connects


def _engine() -> LiveEngine:
    engine = LiveEngine([], {"deribit": DeribitSettings()}, mode="live", clock=lambda: 10 * S, environ=_CREDS)
    engine.registry.add(PERP)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    return engine


def _update(status: OrderState, *, filled: str = "0", ts: int = 2 * S) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=ts,
        order_id="V1",
        client_order_id="s-1",
        status=status,
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("10"),
        filled_size=Decimal(filled),
    )


def _fill(ts: int = 3 * S) -> Fill:
    return Fill(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=ts,
        order_id="V1",
        trade_id="T1",
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("4"),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )


def _resting(engine: LiveEngine) -> Order:
    """Our order "s-1" (venue id V1), resting."""
    order = engine.flow.accept(
        request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=1 * S
    )
    engine.flow.assign_order_id(order, "V1")
    engine.private([_update(OrderState.OPEN)])
    assert order.state is OrderState.OPEN
    return order


class _SlowVenue:
    """A venue's reconciliation reads, each answering what it was told to, once the test lets it
    go (`gate`); `asked` is set when a call is waiting."""

    venue = "deribit"
    # No optional capability (engine.venue.spi.VenueExecution): none is asked.
    positions: None = None
    delivery: None = None
    funding: None = None

    def __init__(
        self,
        *,
        status: list[PrivateEvent] | None = None,
        open_orders: list[OrderUpdate] | None = None,
        fills: list[Fill | FillReversal] | None = None,
    ) -> None:
        self.status = status or []
        self.listed = open_orders or []
        self.fills = fills or []
        self.asked = trio.Event()
        self.gate = trio.Event()
        self.status_asked = 0

    async def _wait(self) -> None:
        self.asked.set()
        await self.gate.wait()

    async def order_status(self, order: Order) -> list[PrivateEvent]:
        self.status_asked += 1
        await self._wait()
        return self.status

    async def open_orders(self) -> list[OrderUpdate]:
        await self._wait()
        return self.listed

    async def recent_fills(self, since_ns: int) -> list[Fill | FillReversal]:
        await self._wait()
        return self.fills

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        raise AssertionError("no foreign order here")

    # Trading: a reconciliation sends nothing (a whole VenueExecution all the same).
    def prepare(self, order: Order) -> None:
        return None

    async def place(self, order: Order) -> list[PrivateEvent]:
        raise AssertionError("a reconciliation places nothing")

    async def cancel(self, order: Order) -> list[PrivateEvent]:
        raise AssertionError("a reconciliation cancels nothing")

    async def edit(self, order: Order, *, price: Decimal | None, size: Decimal | None) -> list[PrivateEvent]:
        raise AssertionError("a reconciliation edits nothing")


async def _while_asked(venue: _SlowVenue, events: Sequence[PrivateEvent], engine: LiveEngine) -> None:
    """Once the venue has the question: the channel's reports arrive, then the answer."""
    await venue.asked.wait()
    engine.private(list(events))
    venue.gate.set()
