"""Issue 13, reconciliation: an answer from the venue is only as new as the question. A report on
the channel that arrives while a reconciliation's question (one order's status, the open orders,
the trade history) is on its way is newer than the answer; the answer must not undo it.

The fake venue's calls wait for the test (`gate`), which delivers the channel's report through
`LiveEngine.private` meanwhile, as a venue session does."""

from __future__ import annotations

from decimal import Decimal

import structlog
import trio

from tests.support.helpers import PERP, request
from tests.support.reconciliation import _engine, _fill, _resting, _SlowVenue, _update, _while_asked
from tradingd.engine import FillReversal, OrderState, Side

S = 1_000_000_000
_CREDS = {"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s55-x"}  # never used: nothing connects


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
