"""A bug inside a venue's reconciliation method is a failure of the reconciliation, never "the
venue cannot say": logged with its traceback, counted (`reconcile_failures`), the
reconciliation not done (asked again at the connection's next `subscribed` status), the daemon
alive, and no order's fate guessed. Before, an `AttributeError` raised inside `open_orders`
(a typo in the connector, a field missing from an answer) was caught with the `VenueError`s as
"open orders unavailable": a warning without traceback, never counted."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
import structlog.testing

from tests.support.helpers import PERP, request, ticker
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import Fill, FillReversal, OrderState, OrderUpdate, PrivateEvent, Side
from tradingd.engine.model import Order
from tradingd.engine.runtime.live import LiveEngine

if TYPE_CHECKING:  # the double is checked against the SPI (a structural type: no import needed to run)
    from tradingd.engine.venue.spi import VenueExecution

S = 1_000_000_000
_CREDS = {"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s54-x"}  # never used: nothing connects


class _BuggyVenue:
    """A venue's execution client whose reconciliation reads raise `bugs[method]` (a bug of
    the connector, not a `VenueError`); the others answer: the order "s-1" open, no fills."""

    venue = "deribit"
    positions: None = None
    delivery: None = None
    funding: None = None

    def __init__(self, bugs: dict[str, Exception]) -> None:
        self.bugs = bugs
        self.asked: list[str] = []

    def _ask(self, method: str) -> None:
        self.asked.append(method)
        bug = self.bugs.get(method)
        if bug is not None:
            raise bug

    def prepare(self, order: Order) -> str | None:
        return None

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        raise AssertionError("a reconciliation places nothing")

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        raise AssertionError("a reconciliation cancels none of ours")

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        raise AssertionError("a reconciliation edits nothing")

    async def open_orders(self) -> Sequence[OrderUpdate]:
        self._ask("open_orders")
        return [_open_update()]

    async def order_status(self, order: Order) -> Sequence[PrivateEvent]:
        self._ask("order_status")
        return [_open_update()]

    async def recent_fills(self, since_ns: int) -> Sequence[Fill | FillReversal]:
        self._ask("recent_fills")
        return []

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        self._ask("cancel_by_order_id")


def _open_update() -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=2 * S,
        order_id="V1",
        client_order_id="s-1",
        status=OrderState.OPEN,
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("10"),
    )


def _engine_with(client: _BuggyVenue) -> tuple[LiveEngine, Order]:
    """A live engine whose Deribit client is `client`, holding our order "s-1" open."""
    engine = LiveEngine([], {"deribit": DeribitSettings()}, mode="live", clock=lambda: 10 * S, environ=_CREDS)
    engine.registry.add(PERP)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    checked: VenueExecution = client  # mypy: the double is a whole VenueExecution
    engine.venues["deribit"].execution = lambda: checked  # type: ignore[method-assign]
    order = engine.flow.accept(
        request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=1 * S
    )
    engine.flow.assign_order_id(order, "V1")
    engine.private([_open_update()])
    return engine, order


def _failed_steps(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["step"], bool(e.get("exc_info"))) for e in logs if e["event"] == "reconcile.step_failed"]


async def test_an_attribute_error_inside_open_orders_is_a_failed_reconciliation_not_unsupported() -> None:
    client = _BuggyVenue({"open_orders": AttributeError("'dict' object has no attribute 'orders'")})
    engine, order = _engine_with(client)
    key = ("deribit", "")
    engine._reconciled_connection[key] = 1  # as `_on_subscribed` marks a new connection
    with structlog.testing.capture_logs() as logs:
        await engine._reconcile_connection("deribit", key, 1)  # never raises: the daemon goes on
    assert _failed_steps(logs) == [("open_orders", True)]  # with its traceback
    assert engine.reconcile_failures == 1
    assert not [e for e in logs if e["event"] == "orders.open_unavailable"]  # not "the venue cannot say"
    assert key not in engine._reconciled_connection  # not done: due again at the next `subscribed`
    assert engine.reconciliations == 0
    assert order.state is OrderState.OPEN  # nothing guessed about our order


async def test_a_key_error_inside_recent_fills_is_counted_and_the_reconciliation_retried() -> None:
    client = _BuggyVenue({"recent_fills": KeyError("trades")})
    engine, order = _engine_with(client)
    with structlog.testing.capture_logs() as logs:
        assert not await engine._reconcile("deribit")
    assert _failed_steps(logs) == [("fills", True)]
    assert engine.reconcile_failures == 1
    assert client.asked == ["open_orders", "recent_fills"]  # the other steps still ran (none due)
    assert order.state is OrderState.OPEN and engine.flow.tracker.open_orders() == [order]


async def test_a_venue_without_bugs_reconciles_clean() -> None:
    """The double above answers the same when nothing is broken: the failures are the bugs'."""
    engine, order = _engine_with(_BuggyVenue({}))
    assert await engine._reconcile("deribit")
    assert (engine.reconcile_failures, engine.reconciliations) == (0, 1)
    assert order.state is OrderState.OPEN
