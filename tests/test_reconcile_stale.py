"""Issue 13, reconciliation: a venue's listing is only as new as the question, and a voided
trade stays voided across a restart.

- An edit acknowledged on the channel while the open orders were being read is newer than the
  listing: the listing must not put the old price and size back.
- A fill the venue voided (its reversal journaled) is never booked again after a restart, nor
  after the order is let go from memory and recalled from the journal: a trade history read
  before the reversal still lists it."""

from __future__ import annotations

from decimal import Decimal

import attrs
import trio

from engine import OrderState
from tests.test_reconcile_races import _engine, _fill, _resting, _SlowVenue, _update, _while_asked

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
    edited = attrs.evolve(_update(OrderState.OPEN, ts=3 * S), price=Decimal("90100"), size=Decimal("6"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_while_asked, venue, [edited], engine)
        assert await engine._reconcile_once("deribit")
    assert (order.state, order.price, order.size) == (OrderState.OPEN, Decimal("90100"), Decimal("6"))
    assert venue.status_asked == 0  # listed: nothing to ask
    engine.private([attrs.evolve(_fill(ts=5 * S), size=Decimal("6"), price=Decimal("90100"))])
    assert order.state is OrderState.FILLED
    assert engine.flow.tracker.open_orders() == []


async def test_an_open_orders_listing_with_nothing_newer_still_wins() -> None:
    """The other side: with no report arriving while it is read, the listing is the venue's
    word and is taken (an edit made elsewhere, say)."""
    engine = _engine()
    order = _resting(engine)
    listed = attrs.evolve(_update(OrderState.OPEN, ts=4 * S), price=Decimal("90200"), size=Decimal("8"))
    venue = _SlowVenue(open_orders=[listed])
    venue.gate.set()
    engine.venues["deribit"].execution = lambda: venue  # type: ignore[method-assign]
    assert await engine._reconcile_once("deribit")
    assert (order.state, order.price, order.size) == (OrderState.OPEN, Decimal("90200"), Decimal("8"))
