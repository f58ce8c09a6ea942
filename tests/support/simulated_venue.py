"""The simulated venue over one option book (bids 0.048 x 1.5, 0.047 x 4; asks 0.050 x 2, 0.051 x 3)
at Deribit's fees (`make`), and orders for it (`order`)."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import OPTION, registry, request
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import OrderBook
from tradingd.engine.model import Order, SimulatedVenue


def make(queue_ahead: bool = False) -> tuple[SimulatedVenue, OrderBook]:
    b = OrderBook(float(OPTION.tick_size))
    for p, s in ((0.048, 1.5), (0.047, 4.0)):
        b.set_bid(b.to_ticks(p), s)
    for p, s in ((0.050, 2.0), (0.051, 3.0)):
        b.set_ask(b.to_ticks(p), s)
    books = {OPTION.symbol: b}
    sim = SimulatedVenue(
        "deribit", registry(), DeribitFees(), books.get, index=lambda _: 100_000.0, queue_ahead=queue_ahead
    )
    return sim, b


def order(cid: str = "s-bt-1", **kw: Any) -> Order:
    """An order as `helpers.request` makes it (`kw`: its fields), new at time 0."""
    return Order(request(cid=cid, **kw), now_ns=0)
