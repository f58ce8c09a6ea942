"""An order's `order.sent` line, when it waits for the order's bytes to leave
(`OrderFlow.accept(log_sent=False)`, the live gateway with a client that signals its write), is
logged before anything a reconciliation says about the order, once."""

from __future__ import annotations

import structlog

from tests.support.helpers import PERP, request
from tests.support.reconciliation import _engine, _SlowVenue
from tradingd.engine import OrderState

S = 1_000_000_000


async def test_a_reconciliation_question_logs_a_waiting_order_sent_line_before_its_own() -> None:
    """A question about an order just written (its line still waiting) that the venue does not
    know yet, while the order's outcome is followed up: `order.unknown_at_venue_yet` comes
    after the order's `order.sent`, not before it."""
    engine = _engine()
    order = engine.flow.accept(
        request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=S, log_sent=False
    )
    engine._following[order.client_order_id] = engine.flow.tracker.mark()
    venue = _SlowVenue(status=[])
    venue.gate.set()
    with structlog.testing.capture_logs() as logs:
        await engine._ask_about("deribit", venue, order)
        engine.flow.flush_sent(order.client_order_id)  # the sender, once its write returns
    story = [e["event"] for e in logs if e.get("client_order_id") == "s-1"]
    assert story == ["order.sent", "order.unknown_at_venue_yet"]
    assert order.state is OrderState.PENDING_NEW
