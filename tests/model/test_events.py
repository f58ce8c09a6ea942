"""Events: the positional builders decoders use, the JSON contract; the book's bulk update."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine import (
    BookUpdate,
    Greeks,
    OrderBook,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
    event_to_dict,
)
from tradingd.engine.model.events import positional_builder


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (
            Ticker,
            (
                "deribit",
                "X",
                1,
                2,
                1.0,
                2.0,
                3.0,
                4.0,
                5.0,
                6.0,
                7.0,
                8.0,
                9.0,
                0.1,
                0.2,
                0.3,
                Greeks(1, 2, 3, 4),
            ),
        ),
        (Greeks, (0.5, 0.1, 2.0, -1.0, None)),
        (BookUpdate, ("deribit", "X", 1, 2, True, ((1.0, 2.0),), (), 1.0, 2.0, None, None, 7)),
        (Trade, ("deribit", "X", 1, 2, 1.0, 2.0, Side.SELL, "9")),
        (Status, ("deribit", "X", 1, 2, StatusKind.BOOK_GAP, "m", {"a": 1})),
    ],
)
def test_builders_make_the_same_frozen_events(cls: type[Any], args: tuple[Any, ...]) -> None:
    built = positional_builder(cls)(*args)
    assert type(built) is cls
    assert built == cls(*args)
    if cls is not Status:  # a Status holds a dict: unhashable either way
        assert hash(built) == hash(cls(*args))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.venue = "other"


def test_builder_falls_back_to_the_class_when_init_does_more() -> None:
    @attrs.frozen
    class Checked:
        x: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class Converted:
        x: float = attrs.field(converter=float)

    assert positional_builder(Checked) is Checked
    assert positional_builder(Converted) is Converted


@given(
    st.floats(min_value=-1e9, max_value=1e9),
    st.sampled_from([1e-8, 0.0001, 0.0005, 0.01, 0.05, 0.5, 2.5, 25.0]),
)
def test_price_of_inverts_to_ticks_and_prints_like_the_venue(price: float, quantum: float) -> None:
    book = OrderBook(quantum)
    ticks = book.to_ticks(price)
    back = book.price_of(ticks)
    assert book.to_ticks(back) == ticks
    # The price a venue prints for a level (a short decimal) comes back as that same float.
    decimal_price = float(Decimal(ticks) * Decimal(repr(quantum)))
    assert book.price_of(book.to_ticks(decimal_price)) == decimal_price


@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.sampled_from([0.0, 0.5, 1.0, 3.0])), max_size=60)
)
def test_bulk_update_equals_level_by_level(ops: list[tuple[bool, int, float]]) -> None:
    one = OrderBook(0.5)
    bulk = OrderBook(0.5)
    for is_bid, t, size in ops:
        (one.set_bid if is_bid else one.set_ask)(t, size)
    bulk.update([(t * 0.5, s) for b, t, s in ops if b], [(t * 0.5, s) for b, t, s in ops if not b])
    assert one.bids == bulk.bids and one.asks == bulk.asks
    assert one.top() == bulk.top()
    assert bulk.best_bid_ticks == (max(bulk.bids) if bulk.bids else None)
    assert bulk.best_ask_ticks == (min(bulk.asks) if bulk.asks else None)


def test_an_empty_book_is_still_truthy_and_bad_quanta_are_refused() -> None:
    assert OrderBook(0.5)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            OrderBook(bad)


def test_event_json_contract() -> None:
    t = Ticker("deribit", "BTC-X", 1_000_000, 2, mark_iv=0.4543, greeks=Greeks(0.5, 0.1, 3.0, -1.0, None))
    d = event_to_dict(t)
    assert list(d)[:5] == ["type", "venue", "instrument", "ts_exchange", "ts_local"]
    assert d["type"] == "ticker" and d["mark_iv"] == 0.4543 and d["bid"] is None
    assert d["greeks"] == {"delta": 0.5, "gamma": 0.1, "vega": 3.0, "theta": -1.0, "rho": None}
    s = Status("deribit", "BTC-X", None, 2, StatusKind.BOOK_GAP, "gap", {"expected": 1, "received": 3})
    d = event_to_dict(s)
    assert d["status"] == "book_gap" and d["expected"] == 1 and "data" not in d
    b = BookUpdate("deribit", "X", 1, 2, True, ((1.0, 2.0),), (), 1.0, 2.0, None, None, 7)
    assert event_to_dict(b)["bids"] == [[1.0, 2.0]]
    assert event_to_dict(Trade("deribit", "X", 1, 2, 1.0, 2.0, Side.SELL, "9"))["side"] == "sell"
