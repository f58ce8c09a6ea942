"""Events: msgspec Structs (frozen, untracked by the collector where no cycle can form,
picklable), the positional builders decoders use, the JSON contract; the book's bulk update."""

from __future__ import annotations

import copy
import gc
import pickle
import weakref
from decimal import Decimal
from typing import Any

import attrs
import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradingd.engine import (
    BookUpdate,
    DataKind,
    Fill,
    FillReversal,
    Greeks,
    Liquidity,
    MarketEvent,
    OrderBook,
    OrderState,
    OrderUpdate,
    PrivateEvent,
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
    with pytest.raises(AttributeError):
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


def test_builder_still_fills_an_attrs_classes_slots() -> None:
    # The catalog's records are attrs classes built this way (connectors/polymarket/catalog.py).
    @attrs.frozen
    class Plain:
        a: int
        b: str | None = None

    build = positional_builder(Plain)
    assert build is not Plain
    made = build(1, "x")
    assert type(made) is Plain and made == Plain(1, "x") and hash(made) == hash(Plain(1, "x"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.a = 2  # type: ignore[misc]


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


# -- events as Structs ----------------------------------------------------------------------------
_GREEKS = Greeks(0.5, 0.001, 12.5, -3.25, None)
_D = Decimal

# One event of every type, with every field set (greeks, levels, Decimals, enums, data).
EVERY_EVENT: list[MarketEvent] = [
    Ticker(
        "deribit", "BTC-27DEC26-100000-C", 1_700_000_000_000_000_000, 1_700_000_000_000_001_000,
        0.0105, 12.0, 0.011, 3.5, 0.0107, 0.0108, 98_000.5, 98_100.25, 1234.0, 0.4543, 0.44, 0.47, _GREEKS,
    ),
    BookUpdate("deribit", "BTC-PERPETUAL", 5, 6, False, ((98_000.5, 10.0), (97_999.0, 0.0)),
               ((98_001.0, 2.5),), 98_000.5, 10.0, 98_001.0, 2.5, 81_234_567),
    Trade("derive", "ETH-PERP", None, 7, 3_100.25, 0.5, Side.SELL, "t-77"),
    Status("polymarket", "123456", 8, 9, StatusKind.TICK_SIZE_CHANGE, "tick size now 0.001",
           {"old_tick_size": 0.01, "new_tick_size": 0.001}),
    OrderUpdate("deribit", "BTC-PERPETUAL", 10, 11, "V1", "s-1", "s", OrderState.PARTIALLY_FILLED, Side.BUY,
                _D("98000.5"), _D("20"), _D("10"), _D("98000.5"), None),
    Fill("deribit", "BTC-PERPETUAL", 12, 13, "V1", "s-1", "s", "T1", Side.BUY, _D("98000.5"), _D("10"),
         _D("-0.0000001"), "BTC", Liquidity.MAKER, 98_010.0),
    FillReversal("polymarket", "123456", 14, 15, "P1", "s-2", "s", "T2", Side.SELL, _D("0.42"), _D("5"),
                 _D("0"), "USDC", "settlement failed"),
]  # fmt: skip

# What DESIGN.md's "normalized events as JSON" says each one is, written out by hand from the
# contract (every event: type, venue, instrument, ts_exchange, ts_local, then its type's fields;
# numbers as JSON numbers; Decimals too; a status's data flattened), in this order.
EXPECTED_JSON: list[bytes] = [
    b'{"type":"ticker","venue":"deribit","instrument":"BTC-27DEC26-100000-C",'
    b'"ts_exchange":1700000000000000000,"ts_local":1700000000000001000,'
    b'"bid":0.0105,"bid_size":12.0,"ask":0.011,"ask_size":3.5,"last":0.0107,"mark":0.0108,'
    b'"index":98000.5,"underlying":98100.25,"open_interest":1234.0,"mark_iv":0.4543,"bid_iv":0.44,'
    b'"ask_iv":0.47,"greeks":{"delta":0.5,"gamma":0.001,"vega":12.5,"theta":-3.25,"rho":null}}',
    b'{"type":"book","venue":"deribit","instrument":"BTC-PERPETUAL","ts_exchange":5,"ts_local":6,'
    b'"snapshot":false,"bids":[[98000.5,10.0],[97999.0,0.0]],"asks":[[98001.0,2.5]],'
    b'"best_bid":98000.5,"best_bid_size":10.0,"best_ask":98001.0,"best_ask_size":2.5,"sequence":81234567}',
    b'{"type":"trade","venue":"derive","instrument":"ETH-PERP","ts_exchange":null,"ts_local":7,'
    b'"price":3100.25,"size":0.5,"side":"sell","trade_id":"t-77"}',
    b'{"type":"status","venue":"polymarket","instrument":"123456","ts_exchange":8,"ts_local":9,'
    b'"status":"tick_size_change","message":"tick size now 0.001",'
    b'"old_tick_size":0.01,"new_tick_size":0.001}',
    b'{"type":"order","venue":"deribit","instrument":"BTC-PERPETUAL","ts_exchange":10,"ts_local":11,'
    b'"order_id":"V1","client_order_id":"s-1","strategy":"s","status":"partially_filled","side":"buy",'
    b'"price":98000.5,"size":20.0,"filled_size":10.0,"avg_fill_price":98000.5,"reason":null}',
    b'{"type":"fill","venue":"deribit","instrument":"BTC-PERPETUAL","ts_exchange":12,"ts_local":13,'
    b'"order_id":"V1","client_order_id":"s-1","strategy":"s","trade_id":"T1","side":"buy",'
    b'"price":98000.5,"size":10.0,"fee":-1e-7,"fee_currency":"BTC","liquidity":"maker","index_price":98010.0}',
    b'{"type":"fill_reversal","venue":"polymarket","instrument":"123456","ts_exchange":14,"ts_local":15,'
    b'"order_id":"P1","client_order_id":"s-2","strategy":"s","trade_id":"T2","side":"sell",'
    b'"price":0.42,"size":5.0,"fee":0.0,"fee_currency":"USDC","reason":"settlement failed"}',
]


@pytest.mark.parametrize(("event", "expected"), list(zip(EVERY_EVENT, EXPECTED_JSON, strict=True)))
def test_event_to_dict_is_the_contract_on_every_type(event: MarketEvent, expected: bytes) -> None:
    # As `tradingd decode` writes it: orjson, nothing else (an enum is its str value).
    assert orjson.dumps(event_to_dict(event)) == expected


def test_every_event_class_is_a_frozen_struct_built_by_its_own_constructor() -> None:
    classes = [
        Greeks,
        MarketEvent,
        Ticker,
        BookUpdate,
        Trade,
        Status,
        PrivateEvent,
        OrderUpdate,
        Fill,
        FillReversal,
    ]
    for cls in classes:
        assert issubclass(cls, msgspec.Struct), cls
        assert cls.__struct_config__.frozen, cls
        assert not cls.__struct_config__.order, cls  # attrs.frozen did not order events either
        # Nothing to gain from a builder of our own: the C constructor takes the fields in order.
        assert positional_builder(cls) is cls
    # Field names and order are the JSON contract's, base fields first.
    assert MarketEvent.__struct_fields__ == ("venue", "instrument", "ts_exchange", "ts_local")
    assert PrivateEvent.__struct_fields__[4:] == ("order_id", "client_order_id", "strategy")
    assert (Ticker.type, Ticker.kind, Status.type, Status.kind) == ("ticker", DataKind.TICKER, "status", None)


def test_only_a_status_is_tracked_by_the_collector() -> None:
    # Scalars, levels and greeks cannot make a cycle: those events are never tracked (cheaper to
    # make, and a backtest's chunk of them is never walked by the collector).
    for event in EVERY_EVENT:
        if not isinstance(event, Status):
            assert not gc.is_tracked(event), type(event)
    assert not gc.is_tracked(_GREEKS)
    # A Status's data is a dict anyone may fill with anything, the event itself included: such a
    # cycle must still be collected.
    status = EVERY_EVENT[3]
    assert isinstance(status, Status) and gc.is_tracked(status)
    assert (
        Status.__struct_config__.gc and MarketEvent.__struct_config__.gc and PrivateEvent.__struct_config__.gc
    )

    class Witness:
        pass

    witness = Witness()
    gone = weakref.ref(witness)
    data: dict[str, Any] = {"witness": witness}
    looped = Status("deribit", "", None, 1, StatusKind.CONNECTED, "", data)
    data["self"] = looped
    del witness, data, looped
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_events_pickle_copy_compare_and_hash_like_values(event: MarketEvent) -> None:
    for again in (pickle.loads(pickle.dumps(event, protocol=5)), copy.copy(event), copy.deepcopy(event)):
        assert type(again) is type(event) and again == event
        assert orjson.dumps(event_to_dict(again)) == orjson.dumps(event_to_dict(event))
    fields = [getattr(event, n) for n in event.__struct_fields__]
    assert type(event)(*fields) == event
    if not isinstance(event, Status):  # a Status holds a dict: unhashable
        assert hash(type(event)(*fields)) == hash(event)
        assert len({event, type(event)(*fields)}) == 1
    changed = msgspec.structs.replace(event, ts_local=event.ts_local + 1)
    assert changed != event and changed.ts_local == event.ts_local + 1 and type(changed) is type(event)
    with pytest.raises(AttributeError):
        event.ts_local = 0  # type: ignore[misc]


def test_events_of_different_types_with_the_same_fields_differ() -> None:
    base = ("deribit", "X", 1, 2)
    assert PrivateEvent(*base) != MarketEvent(*base)
    events: list[MarketEvent] = [Ticker(*base), BookUpdate(*base), OrderUpdate(*base), Fill(*base)]
    assert events[0] != events[1] and events[2] != events[3]


def test_ticker_and_book_mid() -> None:
    t = EVERY_EVENT[0]
    b = EVERY_EVENT[1]
    assert isinstance(t, Ticker) and isinstance(b, BookUpdate)
    assert t.mid == pytest.approx((0.0105 + 0.011) / 2)
    assert b.mid == (98_000.5 + 98_001.0) / 2
    assert Ticker("deribit", "X", None, 1, bid=1.0).mid is None
