"""Issue 13, reconciliation: an answer from the venue is only as new as the question. A report on
the channel that arrives while a reconciliation's question (one order's status, the open orders,
the trade history) is on its way is newer than the answer; the answer must not undo it.

The fake venue's calls wait for the test (`gate`), which delivers the channel's report through
`LiveEngine.private` meanwhile, as a venue session does."""

from __future__ import annotations

from decimal import Decimal

import structlog
import trio

from tests.support.helpers import PERP, request, ticker
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import Fill, FillReversal, Liquidity, OrderState, OrderUpdate, PrivateEvent, Side
from tradingd.engine.model import Order
from tradingd.engine.runtime.live import LiveEngine

S = 1_000_000_000
_CREDS = {"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "secret"}  # never used: nothing connects


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


async def _while_asked(venue: _SlowVenue, events: list[PrivateEvent], engine: LiveEngine) -> None:
    """Once the venue has the question: the channel's reports arrive, then the answer."""
    await venue.asked.wait()
    engine.private(events)
    venue.gate.set()


async def test_a_status_answer_does_not_undo_a_cancel_reported_while_it_was_asked() -> None:
    """Reconciliation asks the status of a working order; the venue answers "open" as it was
    when asked, but the cancel comes on the channel before the answer. Before, the answer
    (taken as verified) forced the cancelled order back to open: a phantom working order,
    counted in open orders and working size until the next reconnect."""
    engine = _engine()
    order = _resting(engine)
    venue = _SlowVenue(status=[_update(OrderState.OPEN, ts=4 * S)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [_update(OrderState.CANCELLED, ts=3 * S)], engine)
        await engine._ask_about("deribit", venue, order)
    assert order.state is OrderState.CANCELLED
    assert engine.flow.tracker.open_orders() == []
    assert engine.flow.tracker.stats.venue_overrides == 0


async def test_a_status_answer_with_nothing_newer_still_wins() -> None:
    """The other side: an order we hold cancelled that the venue, asked with nothing arriving
    meanwhile, says is open, is open (the venue's word wins, alerted)."""
    engine = _engine()
    order = _resting(engine)
    engine.private([_update(OrderState.CANCELLED, ts=3 * S)])
    venue = _SlowVenue(status=[_update(OrderState.OPEN, ts=4 * S)])
    venue.gate.set()
    await engine._ask_about("deribit", venue, order)
    assert order.state is OrderState.OPEN
    assert engine.flow.tracker.open_orders() == [order]
    assert engine.flow.tracker.stats.venue_overrides == 1


async def test_an_order_unknown_to_the_venue_that_reported_meanwhile_is_no_alert() -> None:
    """An order the venue had not heard of when asked (sent just then), whose acceptance comes
    on the channel before the (empty) answer: the channel is newer, the order is open, and
    there is nothing to alert. Before, "unknown at the venue" was logged at error level for an
    order the venue had just reported."""
    engine = _engine()
    order = engine.flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=S)
    venue = _SlowVenue(status=[])
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_while_asked, venue, [_update(OrderState.OPEN, ts=3 * S)], engine)
            await engine._ask_about("deribit", venue, order)
    assert order.state is OrderState.OPEN
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []


async def test_an_open_orders_listing_older_than_a_cancel_does_not_bring_it_back() -> None:
    """The open orders are read while the order's cancel arrives on the channel: the listing
    (the order working) is older than the cancel. The order stays cancelled, and is not asked
    about again (a status read costs rate-limit credits). Before, it was asked again, and an
    answer as old as the listing brought it back to open."""
    engine = _engine()
    order = _resting(engine)
    venue = _SlowVenue(open_orders=[_update(OrderState.OPEN, ts=4 * S)], status=[_update(OrderState.OPEN)])
    engine.venues["deribit"].execution = lambda: venue  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [_update(OrderState.CANCELLED, ts=3 * S)], engine)
        assert await engine._reconcile_once("deribit")
    assert order.state is OrderState.CANCELLED
    assert engine.flow.tracker.open_orders() == []
    assert venue.status_asked == 0


async def test_a_trade_history_older_than_a_reversal_does_not_book_the_voided_fill_again() -> None:
    """The trade history is read while the channel reports that one of our fills was voided
    (Polymarket: the trade FAILED on chain, VENUES.md §2.2): the history, read before, still
    lists the fill. It must not be booked again. Before, the reversal had taken the trade id out
    of the order, so the listing's fill looked new and was booked: a position in a trade that
    never happened."""
    engine = _engine()
    order = _resting(engine)
    engine.private([_fill()])
    assert engine.flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    reversal = FillReversal(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=5 * S,
        order_id="V1",
        trade_id="T1",
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("4"),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        reason="failed",
    )
    venue = _SlowVenue(fills=[_fill()])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [reversal], engine)
        await engine._catch_up_fills("deribit", venue)
    assert engine.flow.position("s", "deribit", PERP.symbol) == 0
    assert order.fills_size == 0 and order.filled_size == 0
    assert engine.flow.tracker.stats.voided_fills == 1
