"""Foreign orders (an order at the venue nobody of ours placed) had no count anywhere in the
status, only a log line and a journal note: the engine counts each sighting by venue
(`LiveEngine.foreign_orders_found`), the status shows it (`foreign_orders`), and the watcher
alerts when it grows."""

from __future__ import annotations

import msgspec

from tests.support.reconciliation import _engine, _SlowVenue, _update
from tradingd.engine import OrderState
from tradingd.engine.alerts import AlertOptions, AlertWatcher, WebhookOptions

S = 1_000_000_000


async def test_each_reconciliation_that_lists_a_foreign_order_counts_it() -> None:
    engine = _engine()
    foreign = msgspec.structs.replace(_update(OrderState.OPEN), order_id="X7", client_order_id="someone-else")
    venue = _SlowVenue(open_orders=[foreign])
    venue.gate.set()
    engine.venues["deribit"].execution = lambda: venue  # type: ignore[method-assign]
    watcher = AlertWatcher(AlertOptions(webhooks=(WebhookOptions(format="json", url_env="J"),)))
    assert engine.foreign_orders_found == {}
    watcher.observe({"foreign_orders": dict(engine.foreign_orders_found)}, 1 * S)

    assert await engine._reconcile_once("deribit")
    assert engine.foreign_orders_found == {"deribit": 1}
    found = watcher.observe({"foreign_orders": dict(engine.foreign_orders_found)}, 2 * S)
    assert [(a.kind, a.subject) for a in found] == [("foreign_order", "deribit")]

    assert await engine._reconcile_once("deribit")  # after a reconnect: still there, seen again
    assert engine.foreign_orders_found == {"deribit": 2}
    assert engine.flow.tracker.open_orders() == []  # never taken for ours
