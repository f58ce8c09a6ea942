"""Deribit wire frames -> engine market events (VENUES.md §1.2, §1.5, §1.6, §1.8).

`DeribitDecoder` is the one place Deribit's JSON-RPC frames become typed events, live and in
backtests alike. It owns the connection's order books (snapshot + incremental changes, chained by
`change_id`/`prev_change_id`), tracks each instrument's trading state, and teaches the instrument
registry from `public/get_instruments` answers found in the stream (that is how a backtest learns
tick sizes from a recording).

The error contract: a frame that cannot be decoded raises `MalformedFrame` and changes nothing;
nothing else escapes `decode`. A frame that parses but says what Deribit cannot send is malformed
too: a magnitude past 2**53 (or infinite), a negative size, amount, open interest, index or IV, a
ticker whose bid is above its ask, an order filled above its amount (prices may be negative: a
combo trades below zero). A book that a message leaves crossed is a broken book, not a malformed
frame: the decoder reports it (a BOOK_GAP status with `data["reason"] == "crossed"`, the
convention of every venue) and waits for a fresh snapshot. An empty ticker side, which Deribit
writes `0`/`0`, is no quote (None).

This is the hot path of every backtest, so it is built for speed and measured
(`bench/bench_decode.py`): msgspec decodes each message straight into typed structs, validating
every field in C (types, signs and magnitudes, known level actions) before any state is touched;
one dict lookup routes a channel to its handler; events are built by positional builders that fill
their slots directly. No cattrs, no logging, no Decimal here.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Raw, Struct

from tradingd.engine.venue import (
    BookUpdate,
    Envelope,
    Fill,
    Greeks,
    Handler,
    Instrument,
    InstrumentRegistry,
    JsonRpcDecoder,
    Liquidity,
    MalformedFrame,
    MarketEvent,
    NotificationParams,
    OrderBook,
    OrderState,
    OrderUpdate,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
    guard_decode,
    invalid_frame,
    loads_untyped,
    malformed_frame,
    positional_builder,
    to_decimal,
)

from .instruments import VENUE, instrument_from_json

__all__ = [
    "DeribitDecoder",
    "OrderData",
    "TradeData",
    "decode_order_result",
    "fill_from",
    "order_update_from",
]

_ticker: Final = positional_builder(Ticker)
_greeks: Final = positional_builder(Greeks)
_book_update: Final = positional_builder(BookUpdate)
_trade: Final = positional_builder(Trade)
_status: Final = positional_builder(Status)

_MS: Final = 1_000_000  # Deribit timestamps are ms; events carry ns
# Deribit's funding rate is an 8-hour rate ("Funding Specifications"); replayed continuous
# funding is reported at least this often (`DeribitDecoder._funding_accrued`).
_FUNDING_PERIOD_NS: Final = 8 * 3600 * 1_000_000_000
FUNDING_ACCRUAL_NS: Final = 60 * 1_000_000_000
_FALLBACK_QUANTUM: Final = 1e-8  # price quantum of a book whose instrument is not (yet) known
_SIDES: Final = {"buy": Side.BUY, "sell": Side.SELL}
# The finest tick a book is kept on: prices (< 2**53) times 1/tick stay far inside a float, so the
# tick arithmetic cannot overflow. Deribit's finest tick is 1e-8 or so; a finer one is refused.
_MIN_TICK: Final = Decimal("1e-12")
_INSTRUMENT_KEYS: Final = ("instrument_name", "kind", "tick_size", "min_trade_amount")

# -- the wire, as typed structs (unknown fields are ignored, as the venue adds them freely) -----

# Numbers are checked at the edge, in C, before any state is touched (VENUES.md §1.6). No Deribit
# number comes near 2**53 (the largest, a perpetual's open interest in USD, is about 1e9), and
# beyond it a float is not even exact to the unit: a bigger magnitude (or one that overflowed to
# infinity, as `1e400` does) is a malformed frame, never a price, and never reaches the book's
# tick arithmetic (where `1e308` overflowed).
_LIMIT: Final = 2.0**53
# A price may be negative: a combo (a spread of two legs) trades and is quoted below zero.
Price = Annotated[float, Meta(gt=-_LIMIT, lt=_LIMIT)]
# Sizes, amounts, open interest, index prices and volatilities are never negative.
Amount = Annotated[float, Meta(ge=0, lt=_LIMIT)]
# Deribit timestamps are ms since the epoch; events carry ns in an int64.
Millis = Annotated[int, Meta(ge=0, le=(2**63 - 1) // 1_000_000)]
Action = Literal["new", "change", "delete"]


class _Params(NotificationParams):
    type: str | None = None  # heartbeat params: {"type": "heartbeat" | "test_request"}


# §1.2: a notification (`method`, `params`), or a response (`id` with `result`/`error`).
_Envelope = Envelope[_Params]


class _Greeks(Struct):
    delta: Price
    gamma: Price
    vega: Price
    theta: Price
    rho: Price | None = None


class _TickerData(Struct):
    """§1.6 ticker: every field but the name and timestamp may be null (or, tolerated, absent)."""

    instrument_name: str
    timestamp: Millis
    state: str | None = None
    best_bid_price: Price | None = None
    best_bid_amount: Amount | None = None
    best_ask_price: Price | None = None
    best_ask_amount: Amount | None = None
    # An option that never traded had `"last_price": "undefined"` in 2022 (roq-deribit's capture,
    # tests/fixtures/deribit/README.md): no price, like null. Any other string is malformed.
    last_price: Price | Literal["undefined"] | None = None
    mark_price: Price | None = None
    index_price: Amount | None = None
    underlying_price: Amount | None = None
    open_interest: Amount | None = None
    mark_iv: Amount | None = None
    bid_iv: Amount | None = None
    ask_iv: Amount | None = None
    greeks: _Greeks | None = None
    # Perpetuals (§1.6): the current funding rate. `funding_timestamp` (ms) is not Deribit's: a
    # Tardis replay carries its time of the next funding event there (connectors/deribit/tardis.py).
    current_funding: float | None = None
    funding_timestamp: Millis | None = None
    # Tardis' own too: set on a replayed perpetual's ticker that names no funding event (Tardis'
    # Deribit data never does): its funding accrues continuously (`_funding_accrued`).
    funding_accrues: bool = False


class _BookData(Struct):
    """§1.6 `book.X.interval`: levels are [action, price, amount]."""

    type: Literal["snapshot", "change"]
    instrument_name: str
    timestamp: Millis
    change_id: int
    bids: list[tuple[Action, Price, Amount]]
    asks: list[tuple[Action, Price, Amount]]
    prev_change_id: int | None = None  # absent on a snapshot (null in NT's capture)


class _GroupedBookData(Struct):
    """§1.6 `book.X.group.depth.interval`: always a whole top-N book of [price, amount]."""

    instrument_name: str
    timestamp: Millis
    bids: list[tuple[Price, Amount]]
    asks: list[tuple[Price, Amount]]
    change_id: int | None = None


class _TradeData(Struct):
    instrument_name: str
    timestamp: Millis
    price: Price  # a combo trades below zero (tests/fixtures/deribit/README.md)
    amount: Amount
    direction: Literal["buy", "sell"]
    trade_id: str | int  # §1.6 says a string; an integer id is unambiguous and accepted


class _QuoteData(Struct):
    instrument_name: str
    timestamp: Millis
    best_bid_price: Price | None = None
    best_bid_amount: Amount | None = None
    best_ask_price: Price | None = None
    best_ask_amount: Amount | None = None


class _IndexData(Struct):
    index_name: str
    price: Amount
    timestamp: Millis


_decode_envelope: Final = msgspec.json.Decoder(_Envelope).decode
_decode_ticker: Final = msgspec.json.Decoder(_TickerData).decode
_decode_book: Final = msgspec.json.Decoder(_BookData).decode
_decode_grouped: Final = msgspec.json.Decoder(_GroupedBookData).decode
_decode_trades: Final = msgspec.json.Decoder(list[_TradeData]).decode
_decode_quote: Final = msgspec.json.Decoder(_QuoteData).decode
_decode_index: Final = msgspec.json.Decoder(_IndexData).decode

# -- one pass from the wire (`DeribitDecoder.decode`'s fast path) -----------------------------
# A notification read whole, its `data` typed, instead of the envelope first (data kept raw) and
# the data in a second parse. The members and their types are the envelope's (`_Envelope`), with
# `method`, `params`, `channel` and `data` required: a frame this parse takes, the two-pass
# reference takes too, to the same values (tests/connectors/deribit/test_deribit_fast_path.py);
# any frame it refuses goes to the reference, which says why.
_D = TypeVar("_D")


class _FastParams(Struct, Generic[_D]):
    channel: str
    data: _D
    type: str | None = None


class _FastFrame(Struct, Generic[_D]):
    method: str
    params: _FastParams[_D]
    id: int | str | None = None
    result: Raw = Raw(b"")
    error: Raw = Raw(b"")


# A parse that fails: not JSON, not the types (DecodeError), a str that is not UTF-8, too deep.
_UNREADABLE: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
# How every notification the venue (and the recorder) writes starts, up to the channel's name.
_NOTIFICATION: Final = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
_NOTIFICATION_BYTES: Final = _NOTIFICATION.encode()
_AT: Final = len(_NOTIFICATION)
_MAX_FAST: Final = 65_536  # the fast routes are a memo, like the reference's routes
_UNSEEN: Final[Any] = object()  # a memo's miss

# -- private channels and order responses (§1.6 "Private channels", §1.7) ---------------------


class OrderData(Struct):
    """A Deribit order object (`user.orders.*`, `private/buy` results, open orders)."""

    order_id: str
    instrument_name: str
    direction: Literal["buy", "sell"]
    order_state: str
    amount: Amount
    price: Price | str | None = None  # "market_price" for trigger-market orders (§1.7)
    filled_amount: Amount | None = None
    average_price: Price | None = None
    label: str | None = None
    order_type: str | None = None
    cancel_reason: str | None = None
    last_update_timestamp: Millis | None = None
    creation_timestamp: Millis | None = None


class TradeData(Struct):
    """One of our executions (`user.trades.*`, the `trades` of an order response)."""

    trade_id: str | int
    order_id: str
    instrument_name: str
    direction: Literal["buy", "sell"]
    price: Price
    amount: Amount
    timestamp: Millis
    fee: Price = 0.0  # negative for a maker rebate
    fee_currency: str = ""
    liquidity: str | None = None  # "M" maker, "T" taker
    label: str | None = None
    # USD, at the trade (VENUES.md, user trade sample). Any: an odd value only loses the rate
    # (the ledger then waits for the market's), never the fill.
    index_price: Any = None


class OrderResult(Struct):
    """The result of `private/buy`, `private/sell`, `private/edit`: the order and its trades."""

    order: OrderData
    trades: list[TradeData] = []


_decode_orders: Final = msgspec.json.Decoder(OrderData | list[OrderData]).decode
_decode_user_trades: Final = msgspec.json.Decoder(list[TradeData]).decode
_decode_order_result: Final = msgspec.json.Decoder(OrderResult).decode

_STATES: Final = {
    "open": OrderState.OPEN,
    "untriggered": OrderState.OPEN,
    "triggered": OrderState.OPEN,
    "filled": OrderState.FILLED,
    "cancelled": OrderState.CANCELLED,
    "rejected": OrderState.REJECTED,
    "archive": OrderState.CANCELLED,
}


def order_update_from(o: OrderData, ts_local: int) -> OrderUpdate:
    """The engine's view of a Deribit order object. The client order id is the order's label."""
    state = _STATES.get(o.order_state)
    if state is None:
        raise _malformed(f"unknown order_state {o.order_state!r}", o.instrument_name)
    if o.filled_amount is not None and o.filled_amount > o.amount:
        raise _malformed(
            f"order {o.order_id}: filled_amount {o.filled_amount!r} is above amount {o.amount!r}",
            o.instrument_name,
        )
    if not o.amount > 0:
        # An order's amount is positive (§1.7: the venue refuses a zero one): an order of nothing
        # would read as one filled in full.
        raise _malformed(f"order {o.order_id}: amount {o.amount!r} is not positive", o.instrument_name)
    if state is OrderState.FILLED and not o.filled_amount:
        # "filled" with nothing said executed contradicts itself: which half is the venue's word
        # is not ours to guess (CANCELLED with 0 could make a strategy send it again), so the
        # report is refused (counted, logged) and the order's fate waits for the next report.
        raise _malformed(
            f"order {o.order_id}: order_state 'filled' with filled_amount {o.filled_amount!r}",
            o.instrument_name,
        )
    size = to_decimal(o.amount)
    filled = to_decimal(o.filled_amount) if o.filled_amount else Decimal(0)
    reason = o.cancel_reason
    if state is OrderState.OPEN and filled > 0:
        state = OrderState.PARTIALLY_FILLED
    elif state is OrderState.FILLED and filled < size:
        # "filled" short of its amount: the rest will never trade, and FILLED would tell the
        # strategy all of it did (as Derive's codec reads the same, connectors/derive/codec.py).
        state = OrderState.CANCELLED
        reason = reason or f"venue state 'filled' with {filled} of {size} executed; the rest will not trade"
    ts = o.last_update_timestamp or o.creation_timestamp
    return OrderUpdate(
        venue=VENUE,
        instrument=o.instrument_name,
        ts_exchange=None if ts is None else ts * _MS,
        ts_local=ts_local,
        order_id=o.order_id,
        client_order_id=o.label or None,
        strategy=None,
        status=state,
        side=_SIDES[o.direction],
        price=to_decimal(o.price) if isinstance(o.price, float | int) else None,
        size=size,
        filled_size=filled,
        avg_fill_price=to_decimal(o.average_price) if o.average_price else None,
        reason=reason,
    )


def fill_from(t: TradeData, ts_local: int) -> Fill:
    """The engine's view of one of our Deribit trades. One without a trade id is malformed: the
    id is what books a fill once (the engine's, the journal's), and the venue reports a trade
    twice (the order's answer and `user.trades`, then a reconnect's catch-up): without one, each
    report would be booked again."""
    trade_id = str(t.trade_id)
    if not trade_id:
        raise _malformed(f"trade of order {t.order_id}: no trade_id", t.instrument_name)
    return Fill(
        venue=VENUE,
        instrument=t.instrument_name,
        ts_exchange=t.timestamp * _MS,
        ts_local=ts_local,
        order_id=t.order_id,
        client_order_id=t.label or None,
        strategy=None,
        trade_id=trade_id,
        side=_SIDES[t.direction],
        price=to_decimal(t.price),
        size=to_decimal(t.amount),
        fee=to_decimal(t.fee),
        fee_currency=t.fee_currency,
        liquidity=Liquidity.MAKER if t.liquidity == "M" else Liquidity.TAKER,
        index_price=_index(t.index_price),
    )


def _index(x: Any) -> float | None:
    """A trade's index price, None unless a positive finite number (no rate to book at). An
    integer beyond any double (msgspec reads one as a Python int, exactly) is no index price
    Deribit sends: the trade is malformed (`_LIMIT`), never an OverflowError out of `float`."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    if isinstance(x, int) and not -_LIMIT < x < _LIMIT:
        raise _malformed(f"index_price {x} is beyond any price", None)
    return float(x) if 0 < x < math.inf else None


def decode_order_result(raw: Any, ts_local: int) -> list[OrderUpdate | Fill]:
    """The events of an order method's result: its fills first, then the order's state. Raises
    `MalformedFrame` for a result that is not an order with trades."""
    try:
        result = _decode_order_result(raw)
    except msgspec.DecodeError as exc:
        raise _invalid("order result", exc) from None
    events: list[OrderUpdate | Fill] = [fill_from(t, ts_local) for t in result.trades]
    events.append(order_update_from(result.order, ts_local))
    return events


_malformed: Final = functools.partial(malformed_frame, VENUE)
_invalid: Final = functools.partial(invalid_frame, VENUE)


def _is_instrument(item: Any) -> bool:
    """True for an object shaped like an item of `public/get_instruments` (VENUES.md §1.8)."""
    return isinstance(item, dict) and all(k in item for k in _INSTRUMENT_KEYS)


def _positive_finite(d: Decimal) -> bool:
    return d.is_finite() and d > 0


def _iv(x: float | None) -> float | None:
    """§1.6: IVs are percent on the wire, fractions in the event. `x / 100` alone is off by an
    ulp for most values (76.95 / 100 is 0.7695000000000001: 76.95 is not exact in binary), which
    `decode` and the logs then print. Deribit sends 2 decimals: the whole hundredths over 10,000
    is the float nearest the decimal sent (0.7695), at a quarter of the cost of `round(x, 12)`
    (3 IVs a ticker); a value with more decimals is rounded to 12 (exact up to 10 decimals)."""
    if x is None:
        return None
    hundredths = x * 100.0
    whole = round(hundredths)
    if abs(hundredths - whole) < 1e-6:
        return whole / 10_000
    return round(x / 100.0, 12)


# `_iv` of the IVs seen: a ticker carries three, and a market's IVs are a few thousand distinct
# values (two decimals), so a lookup replaces the arithmetic (tests: test_deribit_fast_path.py).
_IVS: Final[dict[float | None, float | None]] = {None: None}
_MAX_IVS: Final = 1 << 16


def _iv_learn(x: float | None) -> float | None:
    """`_iv(x)`, remembered in `_IVS` (emptied, but for None, when full)."""
    if len(_IVS) >= _MAX_IVS:
        _IVS.clear()
        _IVS[None] = None
    v = _IVS[x] = _iv(x)
    return v


def _top(
    inst: str,
    bid: float | None,
    bid_size: float | None,
    ask: float | None,
    ask_size: float | None,
) -> tuple[float | None, float | None, float | None, float | None]:
    """A ticker's (or quote's) best bid and ask as the event carries them. Deribit writes an
    empty side as `price 0, amount 0` (not null, whatever §1.6 says: real captures in
    tests/fixtures/deribit/README.md): a side with a zero amount is no quote, and both its
    fields become None. A bid above the ask is no market at all: the frame is malformed."""
    if bid_size == 0:
        bid = bid_size = None
    if ask_size == 0:
        ask = ask_size = None
    if bid is not None and ask is not None and bid > ask:
        raise _malformed(f"ticker {inst}: best bid {bid!r} is above best ask {ask!r}", inst)
    return bid, bid_size, ask, ask_size


def _apply(
    book: OrderBook,
    bid_levels: Sequence[tuple[str, float, float]],
    ask_levels: Sequence[tuple[str, float, float]],
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    """Apply validated `[action, price, amount]` levels (§1.6) to `book` in one pass per side,
    and return them as the event's (price, size) pairs. A `delete` (or a zero amount) removes the
    level whatever amount it carries. This is the innermost loop of a backtest: it writes the
    book's level dicts directly and tracks the best levels as it goes (a removed best level is
    recomputed once per side, not once per level)."""
    inv = book.inverse_quantum
    levels = book.bids
    best = book.best_bid_ticks
    stale = False
    bids: list[tuple[float, float]] = []
    for action, price, size in bid_levels:
        t = round(price * inv)
        if size > 0 and action != "delete":
            levels[t] = size
            if best is None or t > best:
                best = t
        else:
            size = 0.0
            if levels.pop(t, None) is not None and t == best:
                stale = True
        bids.append((price, size))
    best_bid = (max(levels) if levels else None) if stale else best
    levels = book.asks
    best = book.best_ask_ticks
    stale = False
    asks: list[tuple[float, float]] = []
    for action, price, size in ask_levels:
        t = round(price * inv)
        if size > 0 and action != "delete":
            levels[t] = size
            if best is None or t < best:
                best = t
        else:
            size = 0.0
            if levels.pop(t, None) is not None and t == best:
                stale = True
        asks.append((price, size))
    book.set_best(best_bid, (min(levels) if levels else None) if stale else best)
    return tuple(bids), tuple(asks)


# The compiled book path (`_fast.c`: `_apply` and the common case of `_book_events` in C, the
# same objects and operations; issue 17). Built by `pip install -e .` with gcc and Python's
# header; without it (or with `compiled=False`) the Python code here runs, and it stays the
# reference: tests/connectors/deribit/test_deribit_compiled.py compares the two on every frame.
_fast: types.ModuleType | None
try:
    from . import _fast
except ImportError:  # not built: the Python path (slower, the same results)
    _fast = None


class DeribitDecoder(JsonRpcDecoder):
    """Decodes one Deribit connection's frames into `Ticker`, `BookUpdate`, `Trade` and `Status`
    events (the engine's `Decoder` protocol).

    Channels (VENUES.md §1.6): `ticker.{instrument}.{interval}`, `book.{instrument}.{interval}`
    (snapshot + changes), `book.{instrument}.{group}.{depth}.{interval}` (full top-N books),
    `trades.{instrument}.{interval}` and `trades.{kind}.{currency}.{interval}`,
    `quote.{instrument}`, `deribit_price_index.{index}`. Other channels are counted in
    `stats.unknown_channel` and named in `last_unknown_channel`; heartbeats and JSON-RPC responses
    are counted in `stats.control`, and `get_instruments` answers teach the registry.

    A subclass, or the decoder itself, may have its own handler of a market channel (`_on_book`)
    or its own body of one (`_book_events`, which the handler calls with the parsed data),
    compiled or not. Set them before the decoder meets the channel: a channel's route is found at
    its first frame and kept, the handler and, on the fast route (`_fast_route`), the body
    (finding them per frame would cost every frame a lookup). So a body set later is not run for
    the frames the fast route takes, those spelt as the venue writes them (almost all); a frame
    it leaves to the handler (another spelling) runs the body in place then, as the handler
    looks it up at each call (tests/connectors/deribit/test_deribit_fast_path.py).
    """

    venue = VENUE
    # A promise to the decoded-event cache (engine.store.evcache.exact_books_violation, checked
    # on every kind of data by tests/store/test_evcache.py): the books change as the returned
    # `BookUpdate`s say (snapshots aside), but on a frame that raises or counts a gap or an
    # ignored change. The cache's writer then keeps no shadow books (the cost of writing).
    exact_books = True

    def __init__(self, registry: InstrumentRegistry, *, compiled: bool = True) -> None:
        """`compiled=False`: the Python book path even where `_fast` is built (the reference)."""
        super().__init__(registry, _decode_envelope)
        # The book path: compiled (`_fast`) when it is built and wanted, else the Python one.
        self.compiled = compiled and _fast is not None
        self._bodies = _COMPILED_BODIES if self.compiled else {}
        # Incremental books (`book.X.interval`) and grouped ones (`book.X.g.d.interval`) are kept
        # apart: their change ids are different chains, and mixing them would fake gaps.
        self._books: dict[str, OrderBook] = {}
        self._grouped: dict[str, OrderBook] = {}
        self._states: dict[str, str] = {}
        # Per perpetual, the next funding event's time (ms) and rate, from replayed data that
        # names it (`_funding_passed`).
        self._funding: dict[str, tuple[int, float | None]] = {}
        # Per perpetual whose funding accrues continuously (replayed Deribit data): the last
        # ticker's time (ns) and rate, the start of the span not reported yet, and the 8h-rate
        # fraction accrued over it (`_funding_accrued`).
        self._accrual: dict[str, tuple[int, float, int, float]] = {}
        # The fast path's routes by the channel's text as the frame spells it (`decode`): the
        # whole-frame parse, the handler's body, the channel and the compiled whole-frame
        # function (`_WHOLE_FRAME`, or None), or None for a channel the reference decodes
        # (private, unknown, or spelled with escapes).
        self._fast: dict[bytes | str, _FastRoute | None] = {}
        # A compiled decoder decodes through `_fast.decode` (`_ENTRY`): `decode`'s sniff and
        # route in C, this class's `decode` for every frame it does not take (the class's
        # `decode` is `_fast.method`'s, which chooses at each call).

    # ------------------------------------------------------------------------------ decoding

    @guard_decode  # any exception from one frame is that frame's: the Decoder contract holds
    def decode(self, frame: bytes | bytearray | memoryview | str, ts_local: int) -> list[MarketEvent]:
        """The events in one raw WebSocket frame (the `Decoder` contract, `JsonRpcDecoder.decode`).

        The hot path of every backtest: a notification of a market channel that starts as the
        venue writes them is parsed once, whole, its data typed (`_FastFrame`), instead of an
        envelope parse and then a second parse of its data (a fifth of the decoding time). Any
        other frame, and any frame that parse refuses, is decoded by the reference path
        (`JsonRpcDecoder.decode`), which gives the same events from every frame the fast parse
        takes, and its own reason for every frame it refuses."""
        # The memo's key is the frame up to the end of the channel's name: one slice and one
        # lookup (no separate check of the start, which a key found includes).
        key: bytes | str
        if isinstance(frame, bytes):
            key = frame[: frame.find(b'"', _AT)]
        elif isinstance(frame, str):
            key = frame[: frame.find('"', _AT)]
        else:
            return _reference_decode(self, frame, ts_local)
        fast: _FastRoute | None = self._fast.get(key, _UNSEEN)
        if fast is _UNSEEN:
            fast = self._fast_route(key, frame)
        if fast is None:
            return _reference_decode(self, frame, ts_local)
        parse, body, channel, whole = fast
        if whole is not None:  # compiled, and the frame is bytes (`_fast_route`)
            try:
                events = whole(self, frame, ts_local)  # type: ignore[arg-type]  # bytes (`_fast_route`)
            except MalformedFrame:
                self.stats.frames += 1  # counted as the body's raise below counts it
                self.stats.malformed += 1
                raise
            except Exception:
                self.stats.frames += 1
                raise
            if events is not None:
                stats = self.stats
                stats.frames += 1
                stats.events += len(events)
                return events
        try:
            msg = parse(frame)
        except _UNREADABLE:
            return _reference_decode(self, frame, ts_local)  # it says why
        params = msg.params
        # The channel read, not the one sniffed (a member may come twice: the last one counts).
        if msg.method != "subscription" or params.channel != channel:
            return _reference_decode(self, frame, ts_local)
        stats = self.stats
        stats.frames += 1
        try:
            events = body(self, params.data, ts_local)
        except MalformedFrame:
            stats.malformed += 1
            raise
        stats.events += len(events)
        return events

    def _fast_route(self, key: bytes | str, frame: bytes | str) -> _FastRoute | None:
        """The fast route of the frames that start with `key` (`decode`), remembered when `key`
        is a notification's start and its channel's name: None for a channel whose handler has
        no whole-frame parse, or spelled with an escape (its text is not its name). A frame
        that starts otherwise is no notification to sniff (nor remembered: no key of it).

        The route skips the handler (`_on_book`) and calls its body (`_book_events`) on the
        data it parsed, or has a compiled function (`_WHOLE_FRAME`, `_COMPILED_BODIES`) do the
        body's work: so it takes the body the handler would call, looked up as the handler
        looks it up, once here (not per frame: one set later is not taken, as the class's
        docstring says). This class's own: its compiled forms stand in for it. A subclass's
        function (or another method set on the decoder): that function, after the same parse,
        and no compiled form (none runs a body it does not know). Anything else there: no fast
        route, the handler runs (the reference route)."""
        start = _NOTIFICATION if isinstance(key, str) else _NOTIFICATION_BYTES
        if not key.startswith(start) or len(key) == len(frame) - 1:  # type: ignore[arg-type]
            return None  # another start, or no `"` after the name (`find` gave -1)
        name = key[_AT:]
        fast: _FastRoute | None = None
        if "\\" not in name if isinstance(name, str) else b"\\" not in name:
            try:
                channel = name if isinstance(name, str) else name.decode("ascii")
            except UnicodeDecodeError:
                channel = None
            if channel is not None:
                handler = self._route(channel)[0]
                func = getattr(handler, "__func__", None)
                known = _FAST_ROUTES.get(func)
                if known is not None:
                    parse, body = known
                    own = getattr(self, body.__name__, None)  # what `self._book_events` is now
                    if isinstance(own, types.MethodType) and own.__self__ is self:
                        if own.__func__ is body:
                            compiled = self.compiled and isinstance(key, bytes)
                            whole = _WHOLE_FRAME.get(func) if compiled else None
                            fast = (parse, self._bodies.get(func, body), channel, whole)
                        elif isinstance(own.__func__, types.FunctionType):
                            fast = (parse, own.__func__, channel, None)
        if len(self._fast) >= _MAX_FAST:
            self._fast.clear()
        self._fast[key] = fast
        return fast

    # ----------------------------------------------------------------------------------- API

    def learn_instruments(self, result: Any) -> int:
        """Teach the registry the instruments of a `public/get_instruments` result (raw JSON or
        already parsed); returns how many it now knows from it."""
        raw_json = isinstance(result, Raw | bytes | bytearray | memoryview | str)
        items = loads_untyped(result, VENUE, "get_instruments") if raw_json else result
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise _malformed("get_instruments: expected a list of instruments")
        before = len(self.registry)
        self._learn(items)
        return len(self.registry) - before

    def invalidate_books(self) -> None:
        """The connection was lost: no book can be trusted until its next snapshot (which is
        then announced by a BOOK_RESYNC status)."""
        for book in self._books.values():
            book.valid = False
        self._grouped.clear()

    def book(self, instrument: str) -> OrderBook | None:
        """The book kept for `instrument`: the incremental one (`book.X.interval`) when there is
        one, else the grouped one; None when no book message has been seen for it."""
        book = self._books.get(instrument)
        return self._grouped.get(instrument) if book is None else book

    def book_instruments(self) -> list[str]:
        return list(dict.fromkeys([*self._books, *self._grouped]))

    # ------------------------------------------------------------------------------- routing

    def _route(self, channel: str) -> tuple[Handler, str]:
        """The handler of a channel not seen before (remembered for the next frames)."""
        parts = channel.split(".")
        head, n = parts[0], len(parts)
        route: tuple[Handler, str]
        if head == "ticker" and n == 3:
            route = (self._on_ticker, parts[1])
        elif head == "book" and n == 3:
            route = (self._on_book, parts[1])
        elif head == "book" and n == 5:
            route = (self._on_grouped_book, parts[1])
        elif head == "trades" and n in (3, 4):
            route = (self._on_trades, parts[1])
        elif head == "quote" and n == 2:
            route = (self._on_quote, parts[1])
        elif head == "deribit_price_index" and n == 2:
            route = (self._on_price_index, parts[1])
        elif head == "user" and n in (4, 5) and parts[1] == "orders":
            route = (self._on_user_orders, channel)
        elif head == "user" and n in (4, 5) and parts[1] == "trades":
            route = (self._on_user_trades, channel)
        else:
            # Volatility index, chart, user.* (private: decoded by the execution side), ...
            route = (self._on_unknown, channel)
        return route

    def _on_user_orders(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`user.orders.*` (§1.6): one order (raw interval) or a list of them (100ms, agg2)."""
        data = _decode_orders(raw)
        orders = data if isinstance(data, list) else [data]
        return [order_update_from(o, ts_local) for o in orders]

    def _on_user_trades(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`user.trades.*` (§1.6): a list of our executions."""
        return [fill_from(t, ts_local) for t in _decode_user_trades(raw)]

    def _response(self, env: _Envelope, ts_local: int) -> list[MarketEvent]:
        """Heartbeats (§1.5) and JSON-RPC responses (§1.2): no market data, but a
        `get_instruments`/`get_instrument` answer (§1.8) teaches the registry."""
        if env.method == "heartbeat":
            self.stats.control += 1
            return []
        if env.id is not None and (env.result or env.error):
            if env.result:
                result = loads_untyped(env.result, VENUE, "result")  # schemaless: nesting bounded first
                if isinstance(result, list):
                    if any(_is_instrument(item) for item in result):
                        self._learn(result)
                elif _is_instrument(result):
                    self._learn([result])
            self.stats.control += 1
            return []
        raise _malformed("neither a subscription notification, a heartbeat nor a JSON-RPC response")

    def _learn(self, items: list[Any]) -> None:
        """Add the instruments of a `get_instruments` answer to the registry; items that do not
        parse (or have a non-positive or absurdly fine tick, or a non-positive minimum size)
        are skipped and counted."""
        parsed: list[Instrument] = []
        for item in items:
            if not _is_instrument(item) or not isinstance(item["instrument_name"], str):
                self.stats.skipped_instruments += 1
                continue
            try:
                inst = instrument_from_json(item)
            except (KeyError, TypeError, ValueError, ArithmeticError):
                self.stats.skipped_instruments += 1
                continue
            if not (
                _positive_finite(inst.tick_size)
                and inst.tick_size >= _MIN_TICK
                and _positive_finite(inst.min_size)
            ):
                self.stats.skipped_instruments += 1
                continue
            parsed.append(inst)
        for inst in parsed:
            self.registry.add(inst)

    # ------------------------------------------------------------------------------- tickers

    def _on_ticker(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`ticker.{instrument}.{interval}` (§1.6): best prices, marks, IVs (percent on the wire,
        fractions in the event), greeks; a change of `state` is reported first, as a `Status`."""
        return self._ticker_events(_decode_ticker(raw), ts_local)

    def _ticker_events(self, d: _TickerData, ts_local: int) -> list[MarketEvent]:
        inst = d.instrument_name
        bid, bid_size, ask, ask_size = _top(
            inst, d.best_bid_price, d.best_bid_amount, d.best_ask_price, d.best_ask_amount
        )
        g = d.greeks
        greeks = None if g is None else _greeks(g.delta, g.gamma, g.vega, g.theta, g.rho)
        ivs = _IVS
        mark_iv = ivs.get(d.mark_iv, _UNSEEN)
        if mark_iv is _UNSEEN:
            mark_iv = _iv_learn(d.mark_iv)
        bid_iv = ivs.get(d.bid_iv, _UNSEEN)
        if bid_iv is _UNSEEN:
            bid_iv = _iv_learn(d.bid_iv)
        ask_iv = ivs.get(d.ask_iv, _UNSEEN)
        if ask_iv is _UNSEEN:
            ask_iv = _iv_learn(d.ask_iv)
        last = d.last_price
        ts = d.timestamp * _MS
        ticker = _ticker(
            VENUE,
            inst,
            ts,
            ts_local,
            bid,
            bid_size,
            ask,
            ask_size,
            None if last.__class__ is str else last,
            d.mark_price,
            d.index_price,
            d.underlying_price,
            d.open_interest,
            mark_iv,
            bid_iv,
            ask_iv,
            greeks,
        )
        if d.funding_timestamp is not None:  # replayed data only (Tardis): never live
            funding = self._funding_passed(inst, d.funding_timestamp, d.current_funding, ts, ts_local)
            if funding is not None:
                return [funding, ticker]
        elif d.funding_accrues and d.current_funding is not None:  # replayed Deribit data only
            funding = self._funding_accrued(inst, d.current_funding, ts, ts_local)
            if funding is not None:
                return [funding, ticker]
        state = d.state
        if state is not None:
            previous = self._states.get(inst)
            if state != previous:
                self._states[inst] = state
                if previous is not None or state != "open":
                    message = f"{inst} is {state}" + (f" (was {previous})" if previous else "")
                    status = _status(
                        VENUE,
                        inst,
                        ts,
                        ts_local,
                        StatusKind.INSTRUMENT_STATE,
                        message,
                        {"state": state, "previous": previous},
                    )
                    return [status, ticker]
        return [ticker]

    def _funding_passed(
        self, inst: str, next_ms: int, rate: float | None, ts: int, ts_local: int
    ) -> MarketEvent | None:
        """A `Status` (`FUNDING`) when the funding event the previous ticker named has passed:
        its time is behind this ticker's and the next one is named, at the rate the previous
        ticker gave for it (Tardis: `funding_rate` is the rate of the event at
        `funding_timestamp`). None otherwise, and for the first ticker of an instrument."""
        previous = self._funding.get(inst)
        self._funding[inst] = (next_ms, rate)
        if previous is None:
            return None
        due_ms, due_rate = previous
        if next_ms <= due_ms or ts < due_ms * _MS or due_rate is None:
            return None
        return _status(
            VENUE,
            inst,
            due_ms * _MS,
            ts_local,
            StatusKind.FUNDING,
            f"{inst} funding at {due_rate}",
            {"funding_rate": due_rate, "funding_ts_ns": due_ms * _MS},
        )

    def _funding_accrued(self, inst: str, rate: float, ts: int, ts_local: int) -> MarketEvent | None:
        """Deribit's funding accrues continuously ("Funding Specifications": the funding rate
        is an 8-hour rate; a position pays `rate x position size x time fraction`, the time
        fraction being the span over 8 hours, every millisecond, into the session's realized
        PnL). Its ticker's `current_funding` is that 8-hour rate now (Tardis' `funding_rate`:
        tardis-node's Deribit mapper takes it from `current_funding` and names no funding
        time; `funding_8h` is the rate realized over the last 8 hours, not the rate now).

        Each ticker's rate holds until the next ticker; the spans accrue, and at least every
        `FUNDING_ACCRUAL_NS` (a minute) of replayed time one `Status` (`FUNDING`) reports what
        accrued since the last: `funding_rate` is the accrued fraction (sum of rate x span /
        8 h), which the backtest books like a funding event's rate (`engine.funding_amount`).
        A position held part of a minute is paid as held at its end: a minute's error, at
        most, of a minute's funding."""
        acc = self._accrual.get(inst)
        if acc is None:
            self._accrual[inst] = (ts, rate, ts, 0.0)
            return None
        last_ts, last_rate, start, accrued = acc
        if ts <= last_ts:  # out of order or the same instant: no time passed
            self._accrual[inst] = (last_ts, rate, start, accrued)
            return None
        accrued += last_rate * (ts - last_ts) / _FUNDING_PERIOD_NS
        if ts - start < FUNDING_ACCRUAL_NS:
            self._accrual[inst] = (ts, rate, start, accrued)
            return None
        self._accrual[inst] = (ts, rate, ts, 0.0)
        if accrued == 0.0:
            return None
        return _status(
            VENUE,
            inst,
            ts,
            ts_local,
            StatusKind.FUNDING,
            f"{inst} funding accrued {accrued}",
            {"funding_rate": accrued, "funding_ts_ns": ts, "accrued_from_ns": start, "rate_8h": rate},
        )

    def _on_quote(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`quote.{instrument}`: best bid/ask only; the other ticker fields are None."""
        return self._quote_events(_decode_quote(raw), ts_local)

    def _quote_events(self, d: _QuoteData, ts_local: int) -> list[MarketEvent]:
        inst = d.instrument_name
        bid, bid_size, ask, ask_size = _top(
            inst, d.best_bid_price, d.best_bid_amount, d.best_ask_price, d.best_ask_amount
        )
        return [
            _ticker(
                VENUE,
                inst,
                d.timestamp * _MS,
                ts_local,
                bid,
                bid_size,
                ask,
                ask_size,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            )
        ]

    def _on_price_index(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`deribit_price_index.{index}`: a ticker of the index (instrument `btc_usd`...)."""
        return self._price_index_events(_decode_index(raw), ts_local)

    def _price_index_events(self, d: _IndexData, ts_local: int) -> list[MarketEvent]:
        return [
            _ticker(
                VENUE,
                d.index_name,
                d.timestamp * _MS,
                ts_local,
                None,
                None,
                None,
                None,
                None,
                None,
                d.price,
                None,
                None,
                None,
                None,
                None,
                None,
            )
        ]

    # -------------------------------------------------------------------------------- trades

    def _on_trades(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`trades.*` (§1.6): one `Trade` per item, each with its own instrument (a `trades.kind.
        currency` channel mixes them); the side is the aggressor's; combo legs are not repeated."""
        return self._trades_events(_decode_trades(raw), ts_local)

    def _trades_events(self, items: list[_TradeData], ts_local: int) -> list[MarketEvent]:
        sides = _SIDES
        return [
            _trade(
                VENUE,
                t.instrument_name,
                t.timestamp * _MS,
                ts_local,
                t.price,
                t.amount,
                sides[t.direction],
                t.trade_id if t.trade_id.__class__ is str else str(t.trade_id),
            )
            for t in items
        ]

    # --------------------------------------------------------------------------------- books

    def _new_book(self, instrument: str) -> OrderBook:
        """A book whose price quantum is the instrument's (finest) tick when it is known."""
        inst = self.registry.get(VENUE, instrument)
        quantum = _FALLBACK_QUANTUM
        if inst is not None:
            q = float(inst.tick_size)
            if q > 0 and math.isfinite(q):
                quantum = q
        return OrderBook(quantum)

    def _on_book(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`book.{instrument}.{interval}` (§1.6): a snapshot, then changes chained by
        `prev_change_id` == the previous `change_id`. A broken chain invalidates the book (one
        BOOK_GAP status) until the next snapshot, which is announced by a BOOK_RESYNC status.
        A new listing's first message can be a change with `prev_change_id` 0 (nothing before
        it): it starts the book from empty, as a snapshot would. A book left crossed (best bid
        >= best ask) by a message is broken, never data: BOOK_GAP with reason "crossed".
        The message is fully validated (by its decoder) before the book changes."""
        return self._book_events(_decode_book(raw), ts_local)

    def _book_events(self, d: _BookData, ts_local: int) -> list[MarketEvent]:
        inst = d.instrument_name
        book = self._books.get(inst)
        ts = d.timestamp * _MS
        if d.type == "change":
            prev = d.prev_change_id
            if prev is None:
                raise _malformed(f"book {inst}: a change needs an integer prev_change_id", inst)
            if book is not None and book.valid:
                expected = book.sequence
                if prev != expected:
                    self.stats.gaps += 1
                    self.gapped_books.add(inst)
                    book.valid = False
                    message = (
                        f"book {inst}: prev_change_id {prev} does not follow change_id {expected};"
                        " the book is invalid until a new snapshot"
                    )
                    data = {
                        "reason": "sequence_gap",
                        "expected": expected,
                        "received": prev,
                        "change_id": d.change_id,
                    }
                    return [_status(VENUE, inst, ts, ts_local, StatusKind.BOOK_GAP, message, data)]
                bids, asks = _apply(book, d.bids, d.asks)
                book.sequence = d.change_id
                bb, ba = book.best_bid_ticks, book.best_ask_ticks
                if bb is not None and ba is not None and bb >= ba:
                    return [self._crossed(book, inst, ts, ts_local, d.change_id)]
                return [
                    _book_update(
                        VENUE,
                        inst,
                        ts,
                        ts_local,
                        False,
                        bids,
                        asks,
                        None if bb is None else book.price_of(bb),
                        None if bb is None else book.bids[bb],
                        None if ba is None else book.price_of(ba),
                        None if ba is None else book.asks[ba],
                        d.change_id,
                    )
                ]
            if prev != 0:
                # Nothing to patch: no snapshot yet, or waiting for the one after a gap.
                self.stats.ignored_changes += 1
                return []
        events: list[MarketEvent] = []
        if book is None:
            book = self._books[inst] = self._new_book(inst)
        elif not book.valid:
            message = f"book {inst}: resynchronised from a snapshot at change_id {d.change_id}"
            events.append(
                _status(
                    VENUE, inst, ts, ts_local, StatusKind.BOOK_RESYNC, message, {"change_id": d.change_id}
                )
            )
        book.clear()
        bids, asks = _apply(book, d.bids, d.asks)
        book.valid = True
        book.sequence = d.change_id
        bb, ba = book.best_bid_ticks, book.best_ask_ticks
        if bb is not None and ba is not None and bb >= ba:
            return [self._crossed(book, inst, ts, ts_local, d.change_id)]
        bid, bid_size, ask, ask_size = book.top()
        events.append(
            _book_update(
                VENUE, inst, ts, ts_local, True, bids, asks, bid, bid_size, ask, ask_size, d.change_id
            )
        )
        return events

    def _crossed(self, book: OrderBook, inst: str, ts: int, ts_local: int, change_id: int | None) -> Status:
        """The book is crossed: a broken book, not a market. It is emptied and invalid until the
        next snapshot (which a live session asks for: it resubscribes a book that reports
        BOOK_GAP). The same convention (BOOK_GAP, `data.reason` "crossed") as every venue's."""
        bid, _, ask, _ = book.top()
        self.stats.gaps += 1
        self.gapped_books.add(inst)
        book.clear()
        book.valid = False
        message = (
            f"book {inst}: crossed (best bid {bid} >= best ask {ask}) at change_id {change_id};"
            " the book is invalid until a new snapshot"
        )
        data = {"reason": "crossed", "best_bid": bid, "best_ask": ask, "change_id": change_id}
        return _status(VENUE, inst, ts, ts_local, StatusKind.BOOK_GAP, message, data)

    def _on_grouped_book(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`book.{instrument}.{group}.{depth}.{interval}` (§1.6): every message is a whole top-N
        book of `[price, amount]` levels, with no chain to check. A crossed one is reported as
        a broken book (BOOK_GAP, reason "crossed"); the next message replaces it anyway."""
        return self._grouped_book_events(_decode_grouped(raw), ts_local)

    def _grouped_book_events(self, d: _GroupedBookData, ts_local: int) -> list[MarketEvent]:
        inst = d.instrument_name
        book = self._grouped.get(inst)
        if book is None:
            book = self._grouped[inst] = self._new_book(inst)
        bids = tuple(d.bids)
        asks = tuple(d.asks)
        book.clear()
        book.update(bids, asks)
        book.sequence = d.change_id
        ts = d.timestamp * _MS
        bb, ba = book.best_bid_ticks, book.best_ask_ticks
        if bb is not None and ba is not None and bb >= ba:
            return [self._crossed(book, inst, ts, ts_local, d.change_id)]
        book.valid = True
        bb_price, bbs, ba_price, bas = book.top()
        return [
            _book_update(
                VENUE, inst, ts, ts_local, True, bids, asks, bb_price, bbs, ba_price, bas, d.change_id
            )
        ]


# The class's `decode`, guarded: what a compiled decoder's C entry (`_ENTRY`) falls back on, and
# the reference (the class's `decode` where `_fast` is built runs `_ENTRY` on a compiled decoder).
_DECODE: Final = DeribitDecoder.decode


@guard_decode
def _whole_raised(self: DeribitDecoder, frame: bytes, exc: Any) -> list[MarketEvent]:
    """The outcome of a whole-frame function's raise `exc` met by the C entry (`_fast.decode`),
    made the guarded `decode`'s: the guard's depth check first (a function raises while reading
    only before any change, so a frame too deep is refused as the guard refuses it; one it read
    whole is far from too deep), then `decode`'s counts for that raise, then the guard's
    (`DecoderFault` from a non-`MalformedFrame`, its cause `exc`; a `BaseException` that is no
    `Exception` goes through uncounted). The guard's `malformed` count is read after the
    function ran: the whole-frame functions count no stats (`_WHOLE_FRAME`). Never returns."""
    stats = self.stats
    try:
        raise exc
    except MalformedFrame:
        stats.frames += 1  # as `decode` counts it
        stats.malformed += 1
        raise
    except Exception:
        stats.frames += 1
        raise


@guard_decode
def _whole_returned(self: DeribitDecoder, frame: bytes, events: Any) -> list[MarketEvent]:
    """`decode`'s counting of a whole-frame function's result, for the C entry where it cannot
    count in C: a result that is not a list (no real function returns one: a test's), or a
    `stats` whose counters are not plain ints in their own slots. The counts, and a failure (no
    length, a counter that does not add) the guard's fault, as in `decode`."""
    stats = self.stats
    stats.frames += 1
    stats.events += len(events)
    result: list[MarketEvent] = events
    return result


# The reference path, without its guard: `decode`'s own guard already holds for the frame.
_reference_decode: Final[Callable[[DeribitDecoder, Any, int], list[MarketEvent]]] = (
    JsonRpcDecoder.decode.__wrapped__  # type: ignore[attr-defined]  # set by functools.wraps
)
# A compiled whole-frame function (`_WHOLE_FRAME`): the events of a raw frame in the canonical
# shape, or None (nothing changed) for any other frame, which then takes the route below.
_Whole = Callable[[DeribitDecoder, bytes, int], "list[MarketEvent] | None"]
# A fast route: the whole-frame parse, the handler's body (given the parsed data), the channel,
# and the compiled whole-frame function of the channel's frames (None: none, or not compiled).
_FastRoute = tuple[
    Callable[[Any], Any],
    Callable[[DeribitDecoder, Any, int], list[MarketEvent]],
    str,
    "_Whole | None",
]
# The handlers that have a body taking parsed data, and the whole-frame parse of their frames.
_FAST_ROUTES: Final[
    dict[Any, tuple[Callable[[Any], Any], Callable[[DeribitDecoder, Any, int], list[MarketEvent]]]]
] = {
    DeribitDecoder._on_ticker: (
        msgspec.json.Decoder(_FastFrame[_TickerData]).decode,
        DeribitDecoder._ticker_events,
    ),
    DeribitDecoder._on_book: (
        msgspec.json.Decoder(_FastFrame[_BookData]).decode,
        DeribitDecoder._book_events,
    ),
    DeribitDecoder._on_grouped_book: (
        msgspec.json.Decoder(_FastFrame[_GroupedBookData]).decode,
        DeribitDecoder._grouped_book_events,
    ),
    DeribitDecoder._on_trades: (
        msgspec.json.Decoder(_FastFrame[list[_TradeData]]).decode,
        DeribitDecoder._trades_events,
    ),
    DeribitDecoder._on_quote: (
        msgspec.json.Decoder(_FastFrame[_QuoteData]).decode,
        DeribitDecoder._quote_events,
    ),
    DeribitDecoder._on_price_index: (
        msgspec.json.Decoder(_FastFrame[_IndexData]).decode,
        DeribitDecoder._price_index_events,
    ),
}

# The compiled whole-frame functions by handler (issue 17): `whole(decoder, frame, ts_local)`
# takes a raw `bytes` frame in the canonical shape the venue and the recorder write
# (`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"<name>","data":{...}}}`, no
# whitespace, no escape, number forms it parses exactly as msgspec does) and returns its events
# with the decoder's state changed as the reference changes it; for any other frame (or a state
# it leaves to Python: a first snapshot, a gap, a crossed book...) it returns None having changed
# nothing, and `decode` takes the msgspec route. It counts no stats (`decode` does). It raises only
# where the body would raise the same way after the same changes. Used only when `compiled`.
_WHOLE_FRAME: Final[dict[Any, _Whole]] = {}

# The handlers' bodies compiled (`_fast`), used by a decoder built with `compiled=True`.
_COMPILED_BODIES: Final[dict[Any, Callable[[DeribitDecoder, Any, int], list[MarketEvent]]]] = {}
if _fast is not None:
    # The Python functions it falls back on, and this module's namespace: a test that injects a
    # fault through `codec._apply` (monkeypatch) reaches the compiled path too.
    _fast.setup(
        globals(),
        _apply,
        DeribitDecoder._book_events,
        _book_update,
        VENUE,
        _MS,
        OrderBook,
        _BookData,
        _ticker,
    )
    _COMPILED_BODIES[DeribitDecoder._on_book] = _fast.book_events
    _WHOLE_FRAME[DeribitDecoder._on_book] = _fast.book_frame
    _WHOLE_FRAME[DeribitDecoder._on_quote] = _fast.quote_frame
    _fast.setup_decode(_DECODE, _whole_raised, _whole_returned)
# `decode` with its sniff and route compiled (what a compiled decoder's `decode` runs); None
# where `_fast` is not built.
_ENTRY: Final[Callable[[DeribitDecoder, Any, int], list[MarketEvent]] | None] = (
    _fast.decode if _fast is not None else None
)
if _fast is not None:
    # `DeribitDecoder.decode` where `_fast` is built: a method of the class written in C
    # (`_fast.method`, a method descriptor as a C type's methods are) that runs the C entry
    # (`_ENTRY`) on a compiled decoder and the guarded Python `decode` (`_DECODE`) on any other,
    # chosen from `compiled` at each call. A call written `decoder.decode(frame, ts_local)` makes
    # no bound method (the interpreter calls the method with the decoder first) and costs what a
    # bound `decode` looked up once costs, so no caller hoists it; nothing is stored on the
    # instance (a bound method in the decoder's `__dict__` made a cycle, decoder -> method ->
    # decoder, that only the cyclic collector freed). On the class it is that method (so
    # `DeribitDecoder.decode(d, frame, ts)` runs the C entry on a compiled `d`, and takes only a
    # DeribitDecoder as `d`); the reference, the guarded Python `decode` whatever `compiled` says,
    # is `_DECODE`. A subclass's or a test's `decode` replaces it (the attribute lookup finds
    # theirs first).
    # tests/venue/test_decode_lookup.py.
    setattr(DeribitDecoder, "decode", _fast.method(DeribitDecoder))  # noqa: B010  # mypy: a method is not assigned

# The whole-frame decoding of ticker and trades notifications (`_frames.c`, issue 17): a
# canonical frame's events built in C from its bytes; None (nothing changed) for any other frame
# and for a ticker that changes decoder state (an instrument's state, funding), which the Python
# body then decodes. Built like `_fast`; tests/connectors/deribit/test_deribit_frames_compiled.py
# compares it with the reference.
_frames: types.ModuleType | None
try:
    from . import _frames
except ImportError:  # not built: the msgspec route (slower, the same results)
    _frames = None
if _frames is not None:
    # This module's namespace too: a frame whose Python path would meet a patched `_top`,
    # `_ticker`, `_greeks`, `_iv_learn`, `_IVS`, `_trade` or `_SIDES` (a test injecting a
    # fault) is left to it.
    _frames.setup(globals(), _ticker, _greeks, _trade, VENUE, _SIDES["buy"], _SIDES["sell"], _IVS, _iv_learn)
    _WHOLE_FRAME[DeribitDecoder._on_ticker] = _frames.ticker_frame
    _WHOLE_FRAME[DeribitDecoder._on_trades] = _frames.trades_frame
