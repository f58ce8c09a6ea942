"""Every venue error and every refusal carries the context a log line needs, as the error tree
promises (`engine/model/errors.py`): venue, instrument, client order id, the venue's code and
text; None where not given."""

from __future__ import annotations

import pytest

from tradingd.engine.model.errors import (
    MalformedFrame,
    OrderDenied,
    OrderOutcomeUnknown,
    OrderRejected,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)

KINDS = [VenueError, VenueUnavailable, MalformedFrame, OrderOutcomeUnknown, OrderDenied, VenueRejected]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_each_error_keeps_its_context(kind: type[VenueError] | type[OrderRejected]) -> None:
    exc = kind("boom", venue="deribit", instrument="BTC-PERPETUAL", client_order_id="c-1", code=10009)
    assert str(exc) == "boom"
    assert (exc.venue, exc.instrument, exc.client_order_id, exc.code) == (
        "deribit",
        "BTC-PERPETUAL",
        "c-1",
        10009,
    )
    assert exc.venue_message is None
    bare = kind("bare")
    assert (bare.venue, bare.instrument, bare.client_order_id, bare.code, bare.venue_message) == (None,) * 5


def test_a_venue_refusal_is_both_a_refusal_and_a_venue_error() -> None:
    exc = VenueRejected("too small", venue="derive", code=11013, venue_message="amount too small")
    assert isinstance(exc, OrderRejected) and isinstance(exc, VenueError)
    assert exc.reason == "too small" and exc.args == ("too small",)
    assert not isinstance(OrderDenied("limit"), VenueError)
    assert isinstance(MalformedFrame("x"), ValueError)
