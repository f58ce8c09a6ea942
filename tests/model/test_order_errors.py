"""The refusal and unknown-outcome types as strategies meet them: one `except` for every
refusal (`OrderRejected`), one for "may have happened" (`OrderOutcomeUnknown`); a local refusal
is not a `VenueError`, and the example strategies survive an unknown outcome."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import structlog

from tests.support.helpers import PERP, registry, request
from tradingd.engine import (
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    TradingError,
    VenueError,
    VenueRejected,
)
from tradingd.engine.model import MarketState
from tradingd.engine.runtime import OrderFlow
from tradingd.strategies.momentum import Momentum


def test_the_three_answers_to_an_order_request_are_distinct() -> None:
    denied = OrderDenied("max_position (engine): ...", venue="deribit", client_order_id="s-1")
    refused = VenueRejected("not_enough_funds", venue="deribit", code=10009, venue_message="not_enough_funds")
    unknown = OrderOutcomeUnknown("place s-1: outcome unknown", venue="deribit", client_order_id="s-1")
    assert isinstance(denied, OrderRejected) and not isinstance(denied, VenueError)
    assert isinstance(refused, OrderRejected) and isinstance(refused, VenueError)
    assert isinstance(unknown, VenueError) and not isinstance(unknown, OrderRejected)
    assert all(isinstance(e, TradingError) for e in (denied, refused, unknown))
    # The venue's refusal keeps every field under both of its parents' names.
    assert (refused.reason, refused.code, refused.venue_message, refused.venue) == (
        "not_enough_funds",
        10009,
        "not_enough_funds",
        "deribit",
    )
    assert str(refused) == "not_enough_funds" and refused.client_order_id is None


class _Ctx:
    """What `Momentum._trade` uses of its context; every order's outcome is unknown."""

    def __init__(self) -> None:
        self.log = structlog.get_logger("test")
        self.sent = 0

    async def buy(self, *args: Any, **kw: Any) -> Any:
        self.sent += 1
        raise OrderOutcomeUnknown("place m-1: outcome unknown (no answer)", venue="deribit", code="timeout")

    sell = buy

    def position(self, venue: str, instrument: str) -> Decimal:
        return Decimal(0)


async def test_momentum_survives_an_order_whose_outcome_is_unknown() -> None:
    strategy = Momentum("m")
    ctx = _Ctx()
    strategy.attach(ctx)  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        await strategy._trade(PERP, "buy", Decimal(10), 90_000.0, 1, "test")
    assert ctx.sent == 1
    assert [e["event"] for e in logs] == ["momentum.outcome_unknown"]
    assert PERP.symbol not in strategy.entry  # nothing assumed filled


class _FullDisk:
    """A journal whose writes fail (a full disk)."""

    def request(self, *args: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")


def test_a_journal_failure_is_a_local_refusal_not_a_venue_error() -> None:
    reg = registry()
    flow = OrderFlow(reg, MarketState(reg), lambda _: None)
    flow.journal = _FullDisk()  # type: ignore[assignment]
    try:
        flow.accept(request(cid="s-1"), now_ns=1)
    except OrderRejected as exc:
        refused: OrderRejected = exc
    else:
        raise AssertionError("an order the journal could not record was accepted")
    assert isinstance(refused, OrderDenied) and not isinstance(refused, VenueError)
    assert "the order journal could not record it" in refused.reason
