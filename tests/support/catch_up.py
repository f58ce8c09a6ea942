"""A live engine (never run) that tracks given orders of one venue, to book what a venue's
`recent_fills` finds as a reconciliation's catch-up does (`LiveEngine._catch_up_fills`): each fill
once, by trade id."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from tradingd.engine import OrderRequest, Side
from tradingd.engine.model import Instrument, Order
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.venue import Reconciler


@attrs.frozen
class Tracked:
    """One of our orders at the venue: our client order id, the venue's id, side, size, price."""

    cid: str
    order_id: str
    side: str
    size: str
    price: str


def tracking(
    settings: Any,
    instrument: Instrument,
    orders: Sequence[Tracked],
    *,
    environ: Mapping[str, str],
    now_ns: int,
    clock: Callable[[], int] | None = None,
) -> tuple[LiveEngine, dict[str, Order]]:
    """A live engine for `instrument`'s venue (its `settings`), tracking `orders` as accepted at
    `now_ns` (named by the venue, no fill booked): by client order id."""
    venue = instrument.venue
    engine = LiveEngine(
        [], {venue: settings}, mode="live", environ=dict(environ), clock=clock or time.time_ns
    )
    engine.registry.add(instrument)
    tracked: dict[str, Order] = {}
    for o in orders:
        request = OrderRequest(
            venue=venue,
            instrument=instrument.symbol,
            side=Side(o.side),
            size=Decimal(o.size),
            price=Decimal(o.price),
            client_order_id=o.cid,
            strategy="s",
        )
        order = engine.flow.accept(request, now_ns=now_ns)
        engine.flow.assign_order_id(order, o.order_id)
        tracked[o.cid] = order
    return engine, tracked


async def catch_up(engine: LiveEngine, client: Reconciler) -> None:
    """One reconciliation's catch-up of fills on the client's venue."""
    venue: str = getattr(client, "venue")  # noqa: B009  # every venue's client names it
    await engine._catch_up_fills(venue, client)


def booked(orders: Mapping[str, Order]) -> dict[str, Decimal]:
    """What each order's booked fills add up to, by client order id."""
    return {cid: o.fills_size for cid, o in orders.items()}
