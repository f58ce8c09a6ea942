"""Issue 13, reconciliation: a venue's listing is only as new as the question, and a voided
trade stays voided across a restart.

- An edit acknowledged on the channel while the open orders were being read is newer than the
  listing: the listing must not put the old price and size back.
- A fill the venue voided (its reversal journaled) is never booked again after a restart, nor
  after the order is let go from memory and recalled from the journal: a trade history read
  before the reversal still lists it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import trio

from tests.support.flows import fill, make_flow, update
from tests.support.helpers import PERP, request
from tests.support.reconciliation import _engine, _fill, _resting, _SlowVenue, _update, _while_asked
from tradingd.engine import FillReversal, OrderState, Side
from tradingd.engine.model import OrderTracker
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000


async def test_an_open_orders_listing_older_than_an_edit_does_not_undo_it() -> None:
    """The open orders are read while the channel acknowledges our edit of the order to
    90100 x 6: the listing (90000 x 10, as the order was when it was read) is older. The order
    keeps the edit, and a fill of 6 fills it. Before, the listing put 90000 x 10 back (a
    report of the same state, which `apply_update` cannot tell from news), and the fill of 6
    left the order partially filled, 4 more counted as working at a price it no longer has."""
    engine = _engine()
    order = _resting(engine)
    venue = _SlowVenue(open_orders=[_update(OrderState.OPEN, ts=4 * S)])
    engine.venues["deribit"].execution = lambda: venue  # type: ignore[method-assign]
    edited = msgspec.structs.replace(
        _update(OrderState.OPEN, ts=3 * S), price=Decimal("90100"), size=Decimal("6")
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [edited], engine)
        assert await engine._reconcile_once("deribit")
    assert (order.state, order.price, order.size) == (OrderState.OPEN, Decimal("90100"), Decimal("6"))
    assert venue.status_asked == 0  # listed: nothing to ask
    engine.private([msgspec.structs.replace(_fill(ts=5 * S), size=Decimal("6"), price=Decimal("90100"))])
    assert order.state is OrderState.FILLED
    assert engine.flow.tracker.open_orders() == []


async def test_an_open_orders_listing_with_nothing_newer_still_wins() -> None:
    """The other side: with no report arriving while it is read, the listing is the venue's
    word and is taken (an edit made elsewhere, say)."""
    engine = _engine()
    order = _resting(engine)
    listed = msgspec.structs.replace(
        _update(OrderState.OPEN, ts=4 * S), price=Decimal("90200"), size=Decimal("8")
    )
    venue = _SlowVenue(open_orders=[listed])
    venue.gate.set()
    engine.venues["deribit"].execution = lambda: venue  # type: ignore[method-assign]
    assert await engine._reconcile_once("deribit")
    assert (order.state, order.price, order.size) == (OrderState.OPEN, Decimal("90200"), Decimal("8"))


async def test_a_status_answer_older_than_an_edit_does_not_undo_it() -> None:
    """The same race on a reconciliation's read of one order: the channel acknowledges our edit
    to 90100 x 6 while the status question is on its way, and the answer says 90000 x 10 (as
    the order was). The order keeps the edit. Before, the answer (taken as a channel report, as
    its state is no step back) put 90000 x 10 back."""
    engine = _engine()
    order = _resting(engine)
    venue = _SlowVenue(status=[_update(OrderState.OPEN, ts=4 * S)])
    edited = msgspec.structs.replace(
        _update(OrderState.OPEN, ts=3 * S), price=Decimal("90100"), size=Decimal("6")
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [edited], engine)
        await engine._ask_about("deribit", venue, order)
    assert (order.state, order.price, order.size) == (OrderState.OPEN, Decimal("90100"), Decimal("6"))


def test_an_answer_older_than_a_change_takes_forward_moves_but_not_price_and_size() -> None:
    """The tracker's rule (`apply_update`'s `asked`): an answer to a question asked before the
    order's last change takes what only goes forward (a final state), never the price and size
    it had when asked; with no change since, the answer is the venue's word, price and size
    too."""
    tracker = OrderTracker()
    order = tracker.add(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=S)
    tracker.set_order_id(order, "V1")
    tracker.apply_update(_update(OrderState.OPEN))
    mark = tracker.mark()
    tracker.apply_update(
        msgspec.structs.replace(_update(OrderState.OPEN, ts=3 * S), price=Decimal("90100"), size=Decimal("6"))
    )
    assert tracker.apply_update(_update(OrderState.OPEN, ts=4 * S), asked=mark) == []
    assert (order.price, order.size) == (Decimal("90100"), Decimal("6"))
    tracker.apply_update(_update(OrderState.CANCELLED, ts=5 * S), asked=mark)
    assert (order.state, order.price, order.size) == (OrderState.CANCELLED, Decimal("90100"), Decimal("6"))

    other = tracker.add(request(size="10", price="90000", instrument=PERP.symbol, cid="s-2"), now_ns=S)
    tracker.set_order_id(other, "V2")
    mark = tracker.mark()
    listed = msgspec.structs.replace(
        _update(OrderState.OPEN), order_id="V2", client_order_id="s-2", price=Decimal("90200")
    )
    tracker.apply_update(listed, asked=mark)
    assert (other.state, other.price, other.size) == (OrderState.OPEN, Decimal("90200"), Decimal("10"))


def _reversal(trade_id: str, size: str, price: str) -> FillReversal:
    return FillReversal(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=6 * S,
        order_id="V1",
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal(price),
        size=Decimal(size),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        reason="failed",
    )


def _voided_then_restarted(tmp_path: Path) -> Path:
    """A journal where order s-1 (30 at 90000, V1) filled 10 (T1) and 10 (T2), and T2 was
    voided by the venue."""
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    order = flow.accept(request(size="30", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(order, "V1")
    flow.on_update(update("V1", "s-1", OrderState.OPEN))
    flow.on_fill(fill("T1", "10", "90000", oid="V1"))
    flow.on_fill(fill("T2", "10", "90100", oid="V1"))
    assert flow.on_reversal(_reversal("T2", "10", "90100")) is not None
    assert (order.fills_size, order.filled_size) == (Decimal(10), Decimal(10))
    journal.close()
    return path


def test_a_voided_fill_listed_again_after_a_restart_is_not_taken(tmp_path: Path) -> None:
    """After a restart, the catch-up of fills reads a trade history older than the reversal
    (VENUES.md §2.2: Polymarket's FAILED is terminal; §3.4 Derive's reverted trade never
    happened) that still lists T2. Nothing moves: not the position, not the order's filled size
    or state. Before, the restored order had forgotten that T2 was voided: the fill was taken
    into the order (20 filled of 30) and only the journal's unique key kept it out of the
    ledger."""
    path = _voided_then_restarted(tmp_path)
    restored = make_flow(None)
    restored.restore(OrderJournal(path), now_ns=10 * S)
    order = restored.tracker.get("s-1")
    assert order is not None
    assert restored.position("s", "deribit", PERP.symbol) == Decimal(10)
    assert restored.on_fill(fill("T2", "10", "90100", oid="V1")) is None
    assert (order.state, order.fills_size, order.filled_size) == (
        OrderState.PARTIALLY_FILLED,
        Decimal(10),
        Decimal(10),
    )
    assert restored.tracker.stats.voided_fills == 1
    assert restored.position("s", "deribit", PERP.symbol) == Decimal(10)


def test_a_voided_fill_is_refused_by_the_tracker_itself_after_a_recall(tmp_path: Path) -> None:
    """The tracker's own guard, without a journal to catch the repeat on insert: an order let
    go from memory and recalled from the archive (the journal) for a late report keeps the
    voided trade voided. Before, the recalled order took T2 as a new fill: its fill delivered
    (a booking for any caller that has no journal's unique key behind it) and 20 counted
    filled."""
    path = _voided_then_restarted(tmp_path)
    tracker = OrderTracker(archive=OrderJournal(path))
    events = tracker.apply_fill(fill("T2", "10", "90100", oid="V1"))
    assert events == []
    assert tracker.recalled == 1 and tracker.stats.voided_fills == 1
    order = tracker.get("s-1")
    assert order is not None and (order.fills_size, order.filled_size) == (Decimal(10), Decimal(10))
    # Its booked fill is still a duplicate, and a new trade is still a fill.
    assert tracker.apply_fill(fill("T1", "10", "90000", oid="V1")) == []
    assert tracker.apply_fill(fill("T3", "5", "90000", oid="V1")) != []
