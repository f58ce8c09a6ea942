"""Polymarket CLOB WebSocket frames -> engine events (VENUES.md §2.2, §2.3).

`PolymarketDecoder` is the one place Polymarket's frames become typed events, live and in
backtests alike. It decodes both WebSocket channels and the REST answers a connection feeds it:

- market channel: `book` (a snapshot; best levels are **last** in the venue's arrays, and nothing
  here depends on the order), `price_change` (`price_changes[]`: the level's new total size, "0"
  removes it, and the venue's best bid/ask after the change; the legacy `changes[]` schema of
  before 2025-09-15 is decoded too and counted in `legacy_price_changes`), `tick_size_change`,
  `last_trade_price`, and the custom-feature events `best_bid_ask`, `new_market` and
  `market_resolved`. A frame is one event or a JSON array of them; the text frame `PONG` answers
  our `PING` (§2.2 "Keepalive") and is counted as control.
- user channel: `order` and `trade` events, as `OrderUpdate`, `Fill` and `TradeSettlement`
  private events (see "Our trades" below).
- REST answers, recorded as lines of the same recording so that a replay knows what the live run
  knew: a `GET /book` summary is a snapshot (its hash is checked, §2.3, and its tick size, minimum
  size and neg_risk teach the registry); CLOB market objects (`GET /markets/{id}`, pages of
  `GET /markets`) and Gamma market objects (one, or the array `GET /markets` returns) teach the
  registry and the `Outcomes` table (`instruments.py`) and produce no event.

Books and their cross-check: every token has a `LocalOrderBook`. After the changes a
`price_change` makes to a token, the book's best bid and ask must be the ones the venue sent with
the last of them. When they are not, the local book has missed something: it is marked invalid,
a `Status` `BOOK_GAP` (with both tops in `data`) is returned instead of the `BookUpdate`, later
changes to that token are ignored (`stats.ignored_changes`), and the next snapshot (`book` event or
`GET /book` answer, which the connection fetches on seeing the gap) revalidates it with a
`BOOK_RESYNC`. BOOK_GAP is the kind the engine already answers with a resnapshot for every venue.
Its `data["reason"]` says why: "best_bid_ask_mismatch"; "crossed" (a snapshot, or the book after
changes the venue's top agrees with, whose best bid is not below its best ask: no CLOB book can be,
so it is a broken book, never data; a crossed snapshot's levels are dropped); "no_book" (changes
for a token that never had a snapshot, reported once, then counted in `bookless_changes`; its first
snapshot comes with a `BOOK_RESYNC`).

Numbers are checked before anything is applied (the error contract below): level and trade prices
strictly inside (0, 1) (§2.6), sizes never negative, timestamps whose ns fit an int64; our orders'
and trades' exact numbers likewise (`_dec`, `_price`), a fee rate at most 10,000 bps, an order's
matched size never above its size; a `best_bid_ask` whose bid is not below its ask is refused, and
so is a `market_resolved` whose winner is not one of its tokens (every token would settle at 0).

Our trades (user channel): a trade is reported `MATCHED`, then `MINED`, then `CONFIRMED`; it may
go through `RETRYING` and end `FAILED` instead (§2.2). The `Fill` is returned the first time a
trade is seen in any state but FAILED (normally MATCHED): that is when the venue counts our order
as matched (`size_matched`) and reserves the funds, and a strategy that waited for the chain
(seconds to minutes) would trade blind and could double its exposure. Every report of a trade,
the first included, is also a `TradeSettlement` event carrying the status; a `FAILED` one after a
reported fill has `fill_reported=True`, and is preceded by the engine's `FillReversal` of that
fill (once, however many FAILED reports follow; `failed_fills` counts them): the fill did not
happen, and the engine takes it out of the order and the position. A trade first seen FAILED
never had a fill, so it has no reversal either. Polymarket has no client order ids: the order id
is the signed order's EIP-712 digest (`signing.py`), known before the order is sent.

Order ids are read in lower case, wherever they are read (the user channel's orders and trades,
`/data/orders`, `/data/order/{id}`, `/data/trades`, and `POST /order`'s answer in `execution.py`):
a hex hash means the same order whatever the case of its digits, `signing.py` prepares it in lower
case, and the engine finds an order by the exact text of its id. A fill naming `0xABC...` for the
order prepared as `0xabc...` (fills carry no client id) would otherwise be `fill.unknown_order`,
never booked, and a resting order so listed a foreign one. Asset ids are decimal (no case).

For reconciliation: `decode_open_orders` reads a `GET /data/orders` page (our resting orders),
`decode_order` a `GET /data/order/{id}` answer, and `PolymarketDecoder.trade_fills` the fills in a
`GET /data/trades` page.

The error contract: a frame that cannot be decoded raises `MalformedFrame` and changes nothing,
even a JSON array whose last event is the bad one (every event of a frame is decoded and checked
before any is applied); nothing else escapes `decode`. An event type this decoder does not know
is counted in `stats.unknown_channel` and named in `last_unknown_channel`.

The hot path (market events) is msgspec typed structs decoded in lax mode (the venue's numbers are
strings, §2.2), one tagged union for every event type, positional event builders; a frame that
does not fit it (REST answers, untyped captures, unknown types, `.48`-style numbers) takes a slower
path that classifies it first. No cattrs, no logging, no Decimal on the market path.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Final, Literal, TypedDict

import attrs
import msgspec
from msgspec import Meta, Struct

from tradingd.engine.venue import (
    RECORD_ERRORS,
    BookGaps,
    BookUpdate,
    DecoderStats,
    Fill,
    FillReversal,
    Instrument,
    InstrumentKind,
    InstrumentRegistry,
    Liquidity,
    MalformedFrame,
    MarketEvent,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
    check_text,
    decode_parsed,
    guard_decode,
    invalid_frame,
    loads_untyped,
    malformed_frame,
    positional_builder,
    to_decimal,
)

from .book import HASH_FIELDS, TICKS_PER_UNIT, LocalOrderBook, summary_hash
from .fees import taker_fee
from .instruments import (
    COLLATERAL,
    DEFAULT_MIN_SIZE,
    TICK_SIZES,
    VENUE,
    Definition,
    Outcome,
    Outcomes,
    instruments_from_clob_market,
    instruments_from_gamma_event,
    instruments_from_gamma_market,
    learn,
    outcome_definitions,
    parse_tick_size,
    with_tick_size,
)

__all__ = [
    "OpenOrdersPage",
    "PolymarketDecoder",
    "RefusedRecord",
    "TradeSettlement",
    "TradeStatus",
    "TradesPage",
    "decode_open_orders",
    "decode_order",
]

_ticker: Final = positional_builder(Ticker)
_book_update: Final = positional_builder(BookUpdate)
_trade: Final = positional_builder(Trade)
_status: Final = positional_builder(Status)

_MS: Final = 1_000_000
_S: Final = 1_000_000_000
# A timestamp below this is in seconds, from it on in ms: the last second whose ns an int64 holds
# (2262-04-11). Real ones are ~1.7e9 (s) and ~1.7e12 (ms); every accepted value (`Timestamp`) gives
# an int64 of ns either way, which the journal and the events need.
_SECONDS_BEFORE: Final = 9_223_372_036
_MAX_TS_MS: Final = 9_223_372_036_854  # the last ms whose ns an int64 holds
_MAX_NS: Final = 9_223_372_036_854_775_807
# Bounds of the numbers of our own orders and trades (exact, as Decimal), checked at the edge:
# a size is never negative and never more than the market path accepts (`Size`); a fee rate is in
# basis points, at most 100% (VENUES.md §2.2: `fee_rate_bps`); a price is strictly inside (0, 1)
# (§2.6: 0 and 1 are no valid price). Beyond them Decimal arithmetic (the fee's `quantize`) would
# raise instead of the frame being refused.
_MAX_SIZE: Final = Decimal("1e15")
_MAX_BPS: Final = Decimal(10_000)
_GRID: Final = 1e-6  # quanta a price may miss the 0.0001 grid by (float noise), no more
_SIDES: Final = {"BUY": Side.BUY, "SELL": Side.SELL}
_MAX_UNKNOWN_FEES: Final = 1000  # fills with an unknown fee kept for the alert (all are counted)
_MAX_TRADES: Final = 100_000  # trade ids remembered (to report each fill once); oldest forgotten first
_CONTROL_TEXT: Final = frozenset({b"PONG", b"PING"})
# What the decoder remembers of each (trade, order of ours): no fill reported (first seen FAILED),
# a fill reported, or a fill reported then reversed (the trade FAILED after it).
_NONE: Final = 0
_REPORTED: Final = 1
_REVERSED: Final = 2


class TradeStatus(enum.StrEnum):
    """Where one of our trades is on its way to the chain (VENUES.md §2.2)."""

    MATCHED = "matched"  # matched off-chain; sent to the chain
    MINED = "mined"  # in a block
    CONFIRMED = "confirmed"  # final (terminal)
    RETRYING = "retrying"  # the transaction failed and is being retried
    FAILED = "failed"  # the trade did not happen (terminal)


class TradeSettlement(PrivateEvent, frozen=True, gc=False):
    """A report of one of our trades (one per order of ours in it): its settlement `status`.

    `fill_reported` says whether a `Fill` was returned for this trade and order (at the first
    report that was not FAILED): with status FAILED, that fill is void and its position must be
    reversed. `size`, `price`, `side` and `liquidity` are those of that fill."""

    type: ClassVar[str] = "settlement"

    trade_id: str = ""
    status: TradeStatus = TradeStatus.MATCHED
    side: Side = Side.BUY
    price: Decimal = Decimal(0)
    size: Decimal = Decimal(0)
    liquidity: Liquidity = Liquidity.TAKER
    transaction_hash: str | None = None
    fill_reported: bool = False


class _Leg(TypedDict):
    """What the `Fill` and the `TradeSettlement` of one order's part in a trade both say."""

    venue: str
    instrument: str
    ts_exchange: int | None
    ts_local: int
    order_id: str | None
    client_order_id: str | None
    strategy: str | None
    trade_id: str
    side: Side
    price: Decimal
    size: Decimal
    liquidity: Liquidity


# -- the wire, as typed structs (unknown fields are ignored: the venue adds them freely) ---------

Price = Annotated[float, Meta(ge=0.0, le=1.0)]  # best bid/ask: "0" (no bids) and "1" (no asks) too
LevelPrice = Annotated[float, Meta(gt=0.0, lt=1.0)]  # a level's or a trade's: 0 and 1 are none (§2.6)
Size = Annotated[float, Meta(ge=0.0, le=1e15)]  # never negative
Timestamp = Annotated[int, Meta(ge=0, le=_MAX_TS_MS)]  # s or ms (`_ns`); 0: none
TickSize = Annotated[float, Meta(gt=0.0, le=1.0)]
Number = str | float | int  # private events: kept exact, turned into Decimal
BookSide = Literal["BUY", "SELL"]


class _Level(Struct):
    price: LevelPrice
    size: Size


class _Event(Struct, tag_field="event_type"):
    pass


class _Book(_Event, tag="book"):
    asset_id: str
    market: str = ""
    bids: list[_Level] | None = None
    asks: list[_Level] | None = None
    buys: list[_Level] | None = None  # older name of `bids` [U]: accepted when `bids` is absent
    sells: list[_Level] | None = None
    timestamp: Timestamp = 0
    hash: str | None = None
    # `GET /book` answers (§2.3) add these; a snapshot that has them teaches the registry.
    tick_size: TickSize | None = None
    min_order_size: Size | None = None
    neg_risk: bool | None = None
    last_trade_price: Price | None = None


class _Change(Struct):
    asset_id: str
    price: LevelPrice
    size: Size
    side: BookSide
    hash: str | None = None
    best_bid: Price | None = None
    best_ask: Price | None = None


class _LegacyChange(Struct):
    price: LevelPrice
    size: Size
    side: BookSide


class _PriceChange(_Event, tag="price_change"):
    market: str = ""
    price_changes: list[_Change] | None = None
    timestamp: Timestamp = 0
    # The legacy schema (removed 2025-09): one asset, `changes`, one hash for the message.
    asset_id: str | None = None
    changes: list[_LegacyChange] | None = None
    hash: str | None = None


class _TickSizeChange(_Event, tag="tick_size_change"):
    asset_id: str
    new_tick_size: TickSize
    old_tick_size: TickSize | None = None
    market: str = ""
    timestamp: Timestamp = 0


class _LastTrade(_Event, tag="last_trade_price"):
    asset_id: str
    price: LevelPrice
    size: Size
    side: BookSide
    market: str = ""
    timestamp: Timestamp = 0
    transaction_hash: str | None = None


class _BestBidAsk(_Event, tag="best_bid_ask"):
    asset_id: str
    best_bid: Price | None = None
    best_ask: Price | None = None
    market: str = ""
    timestamp: Timestamp = 0


class _NewMarket(_Event, tag="new_market"):
    market: str
    assets_ids: list[str]
    outcomes: list[str] = []
    id: str = ""
    question: str = ""
    slug: str = ""
    timestamp: Timestamp = 0
    order_price_min_tick_size: TickSize | None = None
    neg_risk: bool | None = None
    active: bool = True


class _Resolved(_Event, tag="market_resolved"):
    market: str
    assets_ids: list[str]
    winning_asset_id: str
    winning_outcome: str = ""
    id: str = ""
    question: str = ""
    slug: str = ""
    timestamp: Timestamp = 0


class _UserOrder(_Event, tag="order"):
    id: str
    asset_id: str
    side: BookSide
    price: Number
    original_size: Number
    size_matched: Number = "0"
    type: str = ""  # PLACEMENT | UPDATE | CANCELLATION
    status: str = ""  # LIVE, MATCHED, CANCELED, CANCELED_<reason>, INVALID...
    market: str = ""
    timestamp: Timestamp = 0
    order_type: str = ""


class _MakerOrder(Struct):
    order_id: str
    matched_amount: Number
    price: Number
    asset_id: str = ""
    owner: str = ""
    maker_address: str = ""  # the order's funder (hex, checksummed or not)
    side: BookSide | None = None


class _UserTrade(_Event, tag="trade"):
    id: str
    asset_id: str
    side: BookSide
    price: Number
    size: Number
    status: str
    taker_order_id: str = ""
    trader_side: Literal["TAKER", "MAKER"] | None = None
    maker_orders: list[_MakerOrder] = []
    owner: str = ""
    market: str = ""
    timestamp: Timestamp = 0
    match_time: str = ""
    fee_rate_bps: Number | None = None
    transaction_hash: str | None = None


_AnyEvent = (
    _Book
    | _PriceChange
    | _TickSizeChange
    | _LastTrade
    | _BestBidAsk
    | _NewMarket
    | _Resolved
    | _UserOrder
    | _UserTrade
)
# Lax mode: the venue's numbers are strings ("0.48", "1703875200000"), converted in C.
_decode_frame: Final = msgspec.json.Decoder(_AnyEvent | list[_AnyEvent], strict=False).decode
_decode_event: Final = msgspec.json.Decoder(_AnyEvent, strict=False).decode
# JSON of no known shape (REST answers, untyped captures, a frame the typed decoders refused) is
# parsed by `loads_untyped`, the one bound on nesting for every venue (engine/venue/plugins.py). The
# typed decoders never go deeper than their types (a RecursionError there sends the frame to the
# slow path, which refuses it).
_EVENT_TYPES: Final = frozenset(
    {
        "book",
        "price_change",
        "tick_size_change",
        "last_trade_price",
        "best_bid_ask",
        "new_market",
        "market_resolved",
        "order",
        "trade",
    }
)


# -- what the slow path finds besides events ---------------------------------------------------


@attrs.define
class _Definitions:
    """Instrument definitions found in a REST answer, parsed; `skipped` items did not parse."""

    items: list[Definition]
    skipped: int


@attrs.frozen
class _Unknown:
    name: str


@attrs.frozen
class _TradeReport:
    """A user-channel trade, checked and turned into events (one (fill, settlement) per order of
    ours in it); the decoder decides at apply time which fills are new."""

    trade_id: str
    status: TradeStatus
    parts: list[tuple[Fill, TradeSettlement]]
    unknown_fee: frozenset[str] = frozenset()  # order ids of fills whose market's fee is unknown


# A message class's applier: the decoder's method, unbound (called with the decoder, the message
# and the receive time), so that the table holds no reference to its decoder.
_Applier = Callable[[Any, Any, int], list[MarketEvent]]


# -- helpers -------------------------------------------------------------------------------------


_malformed: Final = functools.partial(malformed_frame, VENUE)
_invalid: Final = functools.partial(invalid_frame, VENUE)


def _ns(ts: int) -> int | None:
    """A venue timestamp in ns: ms on the wire, seconds in some user-channel samples (§2.2 [U]).
    `ts` is a `Timestamp` (at most `_MAX_TS_MS`): the result fits an int64."""
    if ts <= 0:
        return None
    return ts * _S if ts < _SECONDS_BEFORE else ts * _MS


def _checked_ns(ts: int, what: str, instrument: str) -> int | None:
    """`_ns` of a timestamp that did not come through a typed `Timestamp` field."""
    if ts > _MAX_TS_MS:
        raise _malformed(f"{what}: timestamp {ts} is out of range", instrument)
    return _ns(ts)


def _ticks(price: float, where: str, instrument: str) -> int:
    """`price` in 0.0001 quanta; MalformedFrame when it is not on that grid (no venue tick is
    finer, §2.6, and rounding it would merge levels)."""
    x = price * TICKS_PER_UNIT
    t = round(x)
    if abs(x - t) > _GRID:
        raise _malformed(f"{where}: price {price!r} is not a multiple of 0.0001", instrument)
    return t


def _level_ticks(levels: list[_Level], instrument: str) -> list[int]:
    """The levels' prices in 0.0001 quanta (the check of `_ticks`, inlined: snapshots are big)."""
    out = []
    for lv in levels:
        x = lv.price * 10_000.0
        t = round(x)
        if x - t > _GRID or t - x > _GRID:
            _ticks(lv.price, "book", instrument)  # raises, naming the price
        out.append(t)
    return out


def _dec(v: Number, what: str, instrument: str, upper: Decimal = _MAX_SIZE) -> Decimal:
    """An exact, finite Decimal in [0, `upper`] from a wire number ("" is 0: the venue sends
    `size_matched: ""` on a killed FOK order); MalformedFrame for anything else, so that no
    Decimal operation downstream can raise on it."""
    if isinstance(v, str) and not v.strip():
        return Decimal(0)
    try:
        d = to_decimal(v, what)
    except ValueError:  # BadNumber; or an int too long for str()
        raise _malformed(f"{what}: not a number: {str(v)[:40]!r}", instrument) from None
    if d < 0 or d > upper:
        raise _malformed(f"{what}: expected a number in [0, {upper}], got {v!r}", instrument)
    return d


def _price(v: Number, what: str, instrument: str) -> Decimal:
    """An exact price of one of our orders or trades: strictly inside (0, 1) (§2.6)."""
    d = _dec(v, what, instrument)
    if d <= 0 or d >= 1:
        raise _malformed(f"{what}: expected a price in (0, 1), got {v!r}", instrument)
    return d


def _fill_size(v: Number, what: str, instrument: str) -> Decimal:
    """The size of one of our fills: above 0. A fill of nothing is no fill: booked, it would
    move no position, and its order's average price would divide by zero."""
    d = _dec(v, what, instrument)
    if d <= 0:
        raise _malformed(f"{what}: a fill's size must be above 0, got {v!r}", instrument)
    return d


def _order_sizes(original: Number, matched: Number, instrument: str) -> tuple[Decimal, Decimal]:
    """An order's size and matched size: matched never above the order's size."""
    size = _dec(original, "order original_size", instrument)
    done = _dec(matched, "order size_matched", instrument)
    if done > size:
        raise _malformed(f"order: size_matched {matched!r} is above original_size {original!r}", instrument)
    return size, done


# The deepest a string the typed decoders read lies in a message (a book's bids > level > price:
# 3); `_normalize` goes no deeper. Not a bound on what a venue may send (`loads_untyped` is that):
# below it is what no typed field reads, and `_normalize` need not recurse through it.
_TYPED_DEPTH: Final = 8
_LEADING_DOT: Final = re.compile(r"[+-]?\.\d")
# Optional numbers the venue may send as "" (meaning: none).
_OPTIONAL_NUMBERS: Final = frozenset(
    {"best_bid", "best_ask", "spread", "last_trade_price", "tick_size", "min_order_size", "old_tick_size"}
)


def _normalize(v: Any, key: str = "", depth: int = 0) -> Any:
    """A parsed message made fit for the typed decoders: `.48` -> `0.48` (the PM-DOCS sample's
    form, which msgspec does not parse), "" -> null for an optional number. Values below
    `_TYPED_DEPTH` are kept as they are: no typed field reads them, and recursing through them
    (two frames a level) could reach the interpreter's default recursion limit."""
    if depth >= _TYPED_DEPTH:
        return v
    if isinstance(v, dict):
        return {k: _normalize(x, k, depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_normalize(x, "", depth + 1) for x in v]
    if isinstance(v, str):
        if v == "" and key in _OPTIONAL_NUMBERS:
            return None
        if _LEADING_DOT.match(v):
            return v.replace(".", "0.", 1)
    return v


_REST_GAMMA: Final = "gamma market"
_REST_GAMMA_EVENT: Final = "gamma event"
_REST_CLOB: Final = "clob market"
_REST_KINDS: Final = frozenset({_REST_GAMMA, _REST_GAMMA_EVENT, _REST_CLOB})


def _classify(item: dict[str, Any]) -> str | None:
    """The event type of an object without `event_type` (REST answers; captures that dropped
    it), or None when it is nothing known."""
    if "price_changes" in item or ("changes" in item and "asset_id" in item):
        return "price_change"
    if "new_tick_size" in item:
        return "tick_size_change"
    kind = item.get("type")
    if kind in ("PLACEMENT", "UPDATE", "CANCELLATION"):
        return "order"
    if kind == "TRADE":
        return "trade"
    if "taker_order_id" in item or "maker_orders" in item:
        return "trade"  # one of our trades as `GET /data/trades` lists it
    if "original_size" in item and "size_matched" in item:
        return "order"  # one of our orders as `GET /data/orders` lists it
    if "asset_id" in item and "bids" in item and "asks" in item:
        return "book"
    if "winning_asset_id" in item:
        return "market_resolved"
    if "asset_id" in item and "best_bid" in item and "best_ask" in item:
        return "best_bid_ask"
    if "asset_id" in item and "price" in item and "size" in item and "side" in item:
        return "last_trade_price"
    if "clobTokenIds" in item:
        return _REST_GAMMA
    if isinstance(item.get("markets"), list) and "ticker" in item:
        return _REST_GAMMA_EVENT
    if "condition_id" in item and "tokens" in item:
        return _REST_CLOB
    return None


def _definitions(kind: str, item: dict[str, Any]) -> _Definitions:
    """The instruments of one REST object of kind `kind` (one of `_REST_KINDS`)."""
    try:
        if kind == _REST_GAMMA_EVENT:
            items, skipped = instruments_from_gamma_event(item)
            return _Definitions(items, skipped)
        parse = instruments_from_gamma_market if kind == _REST_GAMMA else instruments_from_clob_market
        return _Definitions(parse(item), 0)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return _Definitions([], 1)


def _page_items(obj: Any) -> list[Any]:
    """The objects of a frame: itself, the items of an array, or the `data` of a cursor page
    (`{"data": [...], "next_cursor": ...}`: `GET /markets`, `/data/orders`, `/data/trades`)."""
    if isinstance(obj, dict) and isinstance(obj.get("data"), list) and "next_cursor" in obj:
        return list(obj["data"])
    return obj if isinstance(obj, list) else [obj]


def _check_hash(item: dict[str, Any]) -> None:
    """A `GET /book` answer carrying every hash input must carry their hash (§2.3)."""
    if not all(k in item for k in HASH_FIELDS):
        return
    sent = item["hash"]
    try:
        computed = summary_hash(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(f"book: cannot hash the summary: {exc}", str(item.get("asset_id"))) from None
    if not isinstance(sent, str) or sent.lower().removeprefix("0x") != computed:
        raise _malformed(
            f"book {item.get('asset_id')}: hash {sent!r} does not match its content ({computed})",
            str(item.get("asset_id")),
        )


def _match_time_ns(value: str, instrument: str) -> int | None:
    """`match_time`: unix seconds/ms as a string, or ISO-8601 in some captures. MalformedFrame for
    a time whose ns an int64 cannot hold (after 2262)."""
    if not value:
        return None
    if value.isascii() and value.isdigit():
        if len(value) > 19:  # longer than any int64 (and than `int` parses without a limit)
            raise _malformed(f"trade: match_time {value[:40]!r} is out of range", instrument)
        return _checked_ns(int(value), "trade match_time", instrument)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    ns = int(when.timestamp()) * _S + when.microsecond * 1000
    if ns > _MAX_NS:
        raise _malformed(f"trade: match_time {value!r} is out of range", instrument)
    return ns if ns > 0 else None


_TRADE_STATUSES: Final = {s.name: s for s in TradeStatus}
# What reading one record of a REST page may raise (the codec's checks, a typed parse, a string
# that is not UTF-8 or cannot be encoded, too deep a nesting, any arithmetic or value a record's
# numbers break, an integer beyond any double): that record's problem, never the whole page's.
_UNREADABLE_RECORD: Final = (*RECORD_ERRORS, msgspec.EncodeError, UnicodeError)


# -- the decoder ---------------------------------------------------------------------------------


@attrs.frozen
class RefusedRecord:
    """A record of a page (a trade, an order) that could not be read: its id and the order ids
    it names, as far as they can be read (`order_ids` None: not known which), and why."""

    id: str | None
    reason: str
    order_ids: tuple[str, ...] | None = None

    def may_be_of(self, order_id: str) -> bool:
        """Whether the record may concern the order `order_id` (ids compared without case)."""
        return self.order_ids is None or order_id.lower() in (i.lower() for i in self.order_ids)


def _refused_trade(item: Any, reason: str) -> RefusedRecord:
    """A trade item of a page that could not be read, named as far as it can be: its `id`, and
    the orders it names (`taker_order_id`, each maker order's `order_id`), all or nothing (every
    trade names both, §2.3: one that does not may concern any order)."""
    if not isinstance(item, dict):
        return RefusedRecord(None, reason)
    trade_id = item.get("id")
    taker = item.get("taker_order_id")
    makers = item.get("maker_orders")
    ids: tuple[str, ...] | None = None
    if isinstance(taker, str) and isinstance(makers, list):
        named = [m.get("order_id") if isinstance(m, dict) else None for m in makers]
        if all(isinstance(i, str) for i in named):
            ids = tuple(i.lower() for i in (taker, *named) if isinstance(i, str) and i)
    return RefusedRecord(trade_id if isinstance(trade_id, str) else None, reason, ids)


@attrs.define
class TradesPage:
    """What `PolymarketDecoder.trade_fills` found in one page of our trades; `refused`: the
    trades in it that could not be read (left out)."""

    fills: list[Fill] = attrs.field(factory=list)
    reversals: list[FillReversal] = attrs.field(factory=list)
    next_cursor: str = "LTE="  # §2.3: base64 "-1", after the last page
    refused: list[RefusedRecord] = attrs.field(factory=list)


class PolymarketDecoder:
    """Decodes one Polymarket connection's frames (market or user channel, and the REST answers
    fed to it) into engine events (the engine's `Decoder` protocol); see the module docstring.

    `outcomes` is the table of what signing needs per token (shared with the execution side);
    `api_key` and `addresses` are ours, to tell our maker orders in a trade from others': a maker
    order is ours when its `owner` is our API key (without one, the trade's `owner`, the key of the
    user the message is for) or its `maker_address` is one of `addresses` (our funder and signer,
    compared without case: the venue sends them checksummed). The key alone is not enough: real
    trades carry our maker orders under another key of the same account (NautilusTrader's captured
    `user_trade3.json`, `tests/fixtures/polymarket/README.md`). `verify_hashes=False` accepts
    `GET /book` answers whose hash does not match their content.
    """

    venue = VENUE

    def __init__(
        self,
        registry: InstrumentRegistry,
        outcomes: Outcomes | None = None,
        *,
        api_key: str | None = None,
        addresses: Iterable[str] = (),
        verify_hashes: bool = True,
    ) -> None:
        self.registry = registry
        self.outcomes = Outcomes() if outcomes is None else outcomes
        self.stats = DecoderStats()
        self.last_unknown_channel: str | None = None
        self.legacy_price_changes = 0
        self.failed_fills = 0
        # Fills booked with no fee because their market's fee schedule was unknown (`_fee`):
        # counted, and kept until the session alerts them (`take_unknown_fees`).
        self.unknown_fee_fills = 0
        self._unknown_fees: list[Fill] = []
        self.api_key = api_key
        self.addresses = frozenset(a.lower() for a in addresses if a)
        self.verify_hashes = verify_hashes
        self._books: dict[str, LocalOrderBook] = {}
        # Tokens a price_change came for before any snapshot of theirs (reported once, by a
        # BOOK_GAP "no_book"; their next snapshot is announced by a BOOK_RESYNC), and how many
        # runs of changes were dropped for each.
        self._bookless: dict[str, int] = {}
        # Per token, its book's gaps (`stats.gaps` by book, bounded): a backtest's warning names them.
        self.gapped_books = BookGaps()
        self.bookless_changes = 0
        # (trade id, order id) -> whether a Fill was returned for it (and reversed since).
        self._trades: dict[tuple[str, str], int] = {}
        # The class's functions, not bound methods: a bound one would hold the decoder, a cycle
        # only the cyclic collector frees (a dropped decoder is freed at once; a subclass's
        # override is the one found).
        cls = type(self)
        self._appliers: dict[type[Any], _Applier] = {
            _PriceChange: cls._apply_price_change,
            _TickSizeChange: cls._apply_tick_size,
            _LastTrade: cls._apply_last_trade,
            _BestBidAsk: cls._apply_best_bid_ask,
            _NewMarket: cls._apply_new_market,
            _Resolved: cls._apply_resolved,
            _Definitions: cls._apply_definitions,
            _Unknown: cls._apply_unknown,
        }

    # ----------------------------------------------------------------------------------- API

    @guard_decode  # any exception from one frame is that frame's: the Decoder contract holds
    def decode(self, frame: bytes | bytearray | memoryview | str, ts_local: int) -> list[MarketEvent]:
        """The events in one raw frame (possibly none).

        Raises `MalformedFrame` (counted in `stats.malformed`) for a frame that is not decodable;
        the decoder's books, trade memory, registry and outcome table are then as they were.
        """
        stats = self.stats
        stats.frames += 1
        try:
            if len(frame) <= 6 and _is_control_text(frame):
                stats.control += 1
                return []
            try:
                msg = _decode_frame(frame)
            except (msgspec.DecodeError, UnicodeError, RecursionError):
                # UnicodeError: msgspec's for non-UTF-8 bytes in a string, or a str frame with lone
                # surrogates; RecursionError: msgspec skipping an unknown field nested deeper than
                # the recursion limit. The slow path refuses such a frame as malformed.
                msgs = self._slow(frame)
            else:
                if msg.__class__ is not list:
                    # The common case, one event: check it, then apply it.
                    prepared = self._check(msg)
                    events = (
                        self._appliers[msg.__class__](self, msg, ts_local)
                        if prepared is None
                        else prepared(ts_local)
                    )
                    stats.events += len(events)
                    return events
                msgs = msg
            # Check every message before applying any: a bad one changes nothing.
            checked = [(m, self._check(m)) for m in msgs]
        except MalformedFrame:
            stats.malformed += 1
            raise
        if not checked:
            stats.control += 1  # `[]`: nothing to say (sent on a subscription without books)
            return []
        appliers = self._appliers
        events = []
        for m, prepared in checked:
            events += appliers[m.__class__](self, m, ts_local) if prepared is None else prepared(ts_local)
        stats.events += len(events)
        return events

    def decode_message(self, msg: Any, ts_local: int) -> list[MarketEvent]:
        """The events in an already-parsed message (same contract as `decode`)."""
        return decode_parsed(self, msg, ts_local, VENUE)

    def learn_markets(self, answer: Any) -> int:
        """Teach the registry and the outcome table from a REST answer (raw JSON or parsed): a
        Gamma market, event, or list of them, a CLOB market or `GET /markets` page. Returns how
        many tokens were added; items that do not parse are skipped and counted. Raises
        `MalformedFrame` for raw JSON that does not parse."""
        if isinstance(answer, bytes | bytearray | memoryview | str):
            answer = loads_untyped(answer, VENUE, "markets answer")
        n = 0
        for item in _page_items(answer):
            kind = _classify(item) if isinstance(item, dict) else None
            if kind not in _REST_KINDS or not isinstance(item, dict):
                self.stats.skipped_instruments += 1
                continue
            defs = _definitions(kind, item)
            self.stats.skipped_instruments += defs.skipped
            n += learn(self.registry, self.outcomes, defs.items)
        return n

    def invalidate_books(self) -> None:
        """The connection was lost: no book can be trusted until its next snapshot (announced
        by a BOOK_RESYNC status)."""
        for book in self._books.values():
            book.valid = False

    def book(self, instrument: str) -> LocalOrderBook | None:
        """The book of token `instrument`, None before its first snapshot."""
        return self._books.get(instrument)

    def books(self) -> dict[str, LocalOrderBook]:
        """Every book kept, by token id (a copy of the mapping; the books themselves are live)."""
        return dict(self._books)

    def book_instruments(self) -> list[str]:
        return list(self._books)

    def trade_fills(self, raw: bytes | str, ts_local: int) -> TradesPage:
        """Our trades in a page of `GET /data/trades` (§2.3), for reconciliation (a reconnection,
        a restart): a `Fill` per order of ours in each trade that is not FAILED, whether or not the
        user channel reported it already (the engine knows a fill by its trade id), and a
        `FillReversal` for each FAILED one unless it is known here as never filled or already
        reversed. After a restart the decoder cannot know whether a fill of that trade was booked
        before: the engine takes back only a fill it booked (and counts the others as unknown
        reversals). Fills and reversals are remembered like the user channel's, so that none is
        reported twice by the decoder and a later FAILED report reverses a fill found here.
        Raises `MalformedFrame` for an answer that is not such a page (remembering nothing); a
        trade in it that cannot be read (not an object, a field missing or of the wrong type, a
        number that is none, no id) is that trade's problem: left out, in `refused`."""
        page = loads_untyped(raw, VENUE, "trades page")
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise _malformed('trades page: expected {"data": [...], "next_cursor": ...}')
        reports: list[_TradeReport] = []
        out = TradesPage()
        for item in page["data"]:
            try:
                reports.append(self._page_trade(item))
            except _UNREADABLE_RECORD as exc:
                out.refused.append(_refused_trade(item, str(exc)))
        trades = self._trades
        for r in reports:
            failed = r.status is TradeStatus.FAILED
            for fill, settlement in r.parts:
                key = (r.trade_id, fill.order_id or "")
                known = trades.get(key)
                if known is None and len(trades) >= _MAX_TRADES:
                    del trades[next(iter(trades))]
                if failed:
                    if known is None or known == _REPORTED:
                        trades[key] = _REVERSED
                        self.failed_fills += 1
                        out.reversals.append(_reversal(fill, settlement, ts_local))
                elif known is None or known == _REPORTED:
                    trades[key] = _REPORTED
                    out.fills.append(msgspec.structs.replace(fill, ts_local=ts_local))
                    if known is None:
                        self._flag_unknown_fee(r, fill)
                # else: the user channel said FAILED (terminal): this page is older
        cursor = page.get("next_cursor")
        out.next_cursor = cursor if isinstance(cursor, str) and cursor else "LTE="
        return out

    def _page_trade(self, item: Any) -> _TradeReport:
        """One item of a `GET /data/trades` page as the user channel's trade (MalformedFrame, or
        another of `_UNREADABLE_RECORD`, for one that is not)."""
        if not isinstance(item, dict):
            raise _malformed(f"trades page: expected a trade object, got {type(item).__name__}")
        typed = {**_normalize(item), "event_type": "trade"}
        try:
            trade = _decode_event(msgspec.json.encode(typed))
        except msgspec.DecodeError as exc:
            raise _invalid("trade", exc) from None
        assert isinstance(trade, _UserTrade)  # the tag was set just above
        return self._trade_report(trade)

    # ---------------------------------------------------------------------- decoding, checking

    def _slow(self, frame: bytes | bytearray | memoryview | str) -> list[Any]:
        """A frame the typed fast path refused: classify each object, then decode it typed (or
        keep what it is: definitions, unknown). Raises MalformedFrame for what is neither."""
        obj = loads_untyped(frame, VENUE, "frame")  # nor a control text (above)
        out: list[Any] = []
        defs: _Definitions | None = None
        items = _page_items(obj)
        for item in items:
            if not isinstance(item, dict):
                got = type(item).__name__
                raise _malformed(f"frame: expected a JSON object (or an array of them), got {got}")
            kind = item.get("event_type")
            if kind is None:
                kind = _classify(item)
                if kind is None:
                    out.append(_Unknown("an object without event_type"))
                    continue
            elif not isinstance(kind, str):
                raise _malformed(f"event_type must be a string, got {kind!r}")
            elif kind not in _EVENT_TYPES:
                out.append(_Unknown(kind))
                continue
            if kind in _REST_KINDS:
                # One REST answer is one control frame, however many markets it lists.
                found = _definitions(kind, item)
                if defs is None:
                    defs = found
                    out.append(found)
                else:
                    defs.items.extend(found.items)
                    defs.skipped += found.skipped
                continue
            if kind == "book" and self.verify_hashes:
                _check_hash(item)
            typed = {**_normalize(item), "event_type": kind}
            try:
                out.append(_decode_event(msgspec.json.encode(typed)))
            except msgspec.DecodeError as exc:
                raise _invalid(kind, exc) from None
        return out

    def _check(self, m: Any) -> Callable[[int], list[MarketEvent]] | None:
        """Validate one decoded message without touching any state. Returns None when the
        message is applied as it is, or the applier of what was prepared from it (private
        events, whose numbers are parsed here)."""
        cls = m.__class__
        if cls is _PriceChange:
            changes = m.price_changes
            if changes is not None:
                for c in changes:
                    x = c.price * TICKS_PER_UNIT
                    if abs(x - round(x)) > _GRID:
                        _ticks(c.price, "price_change", c.asset_id)  # raises, naming the price
            elif m.asset_id is not None and m.changes is not None:
                for lc in m.changes:
                    _ticks(lc.price, "price_change", m.asset_id)
            else:
                raise _malformed("price_change: needs price_changes (or the legacy asset_id and changes)")
        elif cls is _Book:
            bids = m.bids if m.bids is not None else m.buys
            asks = m.asks if m.asks is not None else m.sells
            if bids is None or asks is None:
                raise _malformed(f"book {m.asset_id}: needs bids and asks", m.asset_id)
            if m.tick_size is not None:
                _tick_size(m.tick_size, "book", m.asset_id)
            bid_ticks = _level_ticks(bids, m.asset_id)
            ask_ticks = _level_ticks(asks, m.asset_id)
            return lambda ts_local: self._apply_book(m, bids, asks, bid_ticks, ask_ticks, ts_local)
        elif cls is _TickSizeChange:
            _tick_size(m.new_tick_size, "tick_size_change", m.asset_id)
        elif cls is _BestBidAsk:
            bid, ask = m.best_bid, m.best_ask
            # "0" is no bid and "1" no ask; two real sides cannot cross or touch: the CLOB
            # matches at equal prices.
            if bid is not None and ask is not None and bid > 0.0 and ask < 1.0 and bid >= ask:
                raise _malformed(f"best_bid_ask: best bid {bid} is not below best ask {ask}", m.asset_id)
        elif cls is _NewMarket:
            if m.order_price_min_tick_size is not None:
                _tick_size(m.order_price_min_tick_size, "new_market", m.market)
        elif cls is _Resolved:
            # Each token settles at the payout this names (1 for the winner, 0 for the others):
            # a winner that is not one of the market's tokens ("", a typo, another market's)
            # would close every position of ours in it at 0. No payout is known: refused.
            if m.winning_asset_id not in m.assets_ids:
                raise _malformed(
                    f"market_resolved {m.market}: winning_asset_id {m.winning_asset_id[:80]!r} is not "
                    "one of its assets_ids",
                    m.market,
                )
        elif cls is _UserOrder:
            update = self._order_update(m)
            return lambda ts_local: [msgspec.structs.replace(update, ts_local=ts_local)]
        elif cls is _UserTrade:
            report = self._trade_report(m)
            return lambda ts_local: self._apply_trade(report, ts_local)
        return None

    # -------------------------------------------------------------------------- market events

    def _apply_book(
        self,
        m: _Book,
        bids: list[_Level],
        asks: list[_Level],
        bid_ticks: list[int],
        ask_ticks: list[int],
        ts_local: int,
    ) -> list[MarketEvent]:
        """A snapshot (`book` event or `GET /book` answer): replaces the token's book. The
        levels' ticks were computed (and checked) by `_check`."""
        asset = m.asset_id
        ts = _ns(m.timestamp)
        events: list[MarketEvent] = []
        book = self._books.get(asset)
        if book is None:
            book = self._books[asset] = LocalOrderBook(asset, m.market)
            # A token whose changes came before its first snapshot was reported (a BOOK_GAP).
            resync = bool(self._bookless) and self._bookless.pop(asset, None) is not None
        else:
            resync = not book.valid
        book.snapshot_ticks(
            zip(bid_ticks, [lv.size for lv in bids], strict=True),
            zip(ask_ticks, [lv.size for lv in asks], strict=True),
            hash=m.hash,
            timestamp_ms=m.timestamp,
        )
        if m.market:
            book.market = m.market
        bb_t = book.best_bid_ticks
        ba_t = book.best_ask_ticks
        if bb_t is not None and ba_t is not None and bb_t >= ba_t:
            return [self._crossed_snapshot(book, m, ts, ts_local)]
        if resync:
            message = f"book {asset}: resynchronised from a snapshot"
            events.append(
                _status(VENUE, asset, ts, ts_local, StatusKind.BOOK_RESYNC, message, {"hash": m.hash})
            )
        bid_levels = tuple([(lv.price, lv.size) for lv in bids])
        ask_levels = tuple([(lv.price, lv.size) for lv in asks])
        if m.tick_size is not None:
            self._learn_from_summary(m)
        bb, bbs, ba, bas = book.top()
        events.append(
            _book_update(VENUE, asset, ts, ts_local, True, bid_levels, ask_levels, bb, bbs, ba, bas, m.hash)
        )
        return events

    def _apply_price_change(self, m: _PriceChange, ts_local: int) -> list[MarketEvent]:
        """Level changes (§2.2), applied per token in runs of consecutive changes to the same
        token; each run is cross-checked against the venue's top sent with its last change.

        The innermost loop of a backtest: it writes the book's level dicts directly and tracks
        the best levels as it goes (a removed best level is recomputed once, not per level)."""
        ts = _ns(m.timestamp)
        changes = m.price_changes
        if changes is None:
            # Legacy schema: one token; no best bid/ask to check against.
            self.legacy_price_changes += 1
            assert m.asset_id is not None, "_check made sure"
            assert m.changes is not None, "_check made sure"
            changes = [_Change(m.asset_id, c.price, c.size, c.side, m.hash) for c in m.changes]
        books = self._books
        events: list[MarketEvent] = []
        n = len(changes)
        i = 0
        while i < n:
            first = changes[i]
            asset = first.asset_id
            book = books.get(asset)
            if book is None or not book.valid:
                # Nothing to patch: no snapshot yet, or waiting for the one after a gap.
                self.stats.ignored_changes += 1
                i += 1
                while i < n and changes[i].asset_id == asset:
                    i += 1
                if book is None:
                    gap = self._no_book(asset, m.market, ts, ts_local)
                    if gap is not None:
                        events.append(gap)
                continue
            bid_levels = book.bids
            ask_levels = book.asks
            bb = book.best_bid_ticks
            ba = book.best_ask_ticks
            stale_bid = stale_ask = False
            bids: list[tuple[float, float]] = []
            asks: list[tuple[float, float]] = []
            last = first
            while True:
                price = last.price
                size = last.size
                t = round(price * 10_000.0)
                if last.side == "BUY":
                    if size > 0.0:
                        bid_levels[t] = size
                        if bb is None or t > bb:
                            bb = t
                    elif bid_levels.pop(t, None) is not None and t == bb:
                        stale_bid = True
                    bids.append((price, size))
                else:
                    if size > 0.0:
                        ask_levels[t] = size
                        if ba is None or t < ba:
                            ba = t
                    elif ask_levels.pop(t, None) is not None and t == ba:
                        stale_ask = True
                    asks.append((price, size))
                i += 1
                if i == n or changes[i].asset_id != asset:
                    break
                last = changes[i]
            # A removed best level is recomputed once per run (what the run added is in it).
            if stale_bid:
                bb = max(bid_levels) if bid_levels else None
            if stale_ask:
                ba = min(ask_levels) if ask_levels else None
            book.set_best(bb, ba)
            book.timestamp_ms = m.timestamp
            # The cross-check (§2.2): the venue's top after the run's last change. A best bid of
            # "0" means no bids, a best ask of "1" no asks.
            venue_bid = last.best_bid
            venue_ask = last.best_ask
            if (
                venue_bid is not None and (round(venue_bid * 10_000.0) if venue_bid > 0.0 else None) != bb
            ) or (venue_ask is not None and (round(venue_ask * 10_000.0) if venue_ask < 1.0 else None) != ba):
                events.append(self._gap(book, "best_bid_ask_mismatch", last, ts, ts_local))
                continue
            # The venue's top agrees (or was not sent) yet the book is crossed or locked: broken.
            if bb is not None and ba is not None and bb >= ba:
                events.append(self._gap(book, "crossed", last, ts, ts_local))
                continue
            seq = last.hash
            if seq is not None:
                book.sequence = seq
            events.append(
                _book_update(
                    VENUE,
                    asset,
                    ts,
                    ts_local,
                    False,
                    tuple(bids),
                    tuple(asks),
                    None if bb is None else bb / 10_000,
                    None if bb is None else bid_levels[bb],
                    None if ba is None else ba / 10_000,
                    None if ba is None else ask_levels[ba],
                    seq,
                )
            )
        return events

    def _gap(self, book: LocalOrderBook, reason: str, last: _Change, ts: int | None, ts_local: int) -> Status:
        """The book after a run of changes is broken: it disagrees with the venue's top
        ("best_bid_ask_mismatch"), or its best bid is not below its best ask ("crossed", which
        no CLOB book can be). Invalid until the next snapshot."""
        self.stats.gaps += 1
        self.gapped_books.add(book.asset_id)
        book.valid = False
        bb, _, ba, _ = book.top()
        if reason == "crossed":
            what = f"the local best bid {bb} is not below the best ask {ba}"
        else:
            what = f"the venue's best bid/ask {last.best_bid}/{last.best_ask} are not the local {bb}/{ba}"
        message = f"book {book.asset_id}: {what}; the book is invalid until a new snapshot"
        data = {
            "reason": reason,
            "venue_best_bid": last.best_bid,
            "venue_best_ask": last.best_ask,
            "local_best_bid": bb,
            "local_best_ask": ba,
            "hash": last.hash,
        }
        return _status(VENUE, book.asset_id, ts, ts_local, StatusKind.BOOK_GAP, message, data)

    def _crossed_snapshot(self, book: LocalOrderBook, m: _Book, ts: int | None, ts_local: int) -> Status:
        """A snapshot whose best bid is not below its best ask: a broken book, never data. Its
        levels are dropped and the book is invalid until the next snapshot (the live session
        fetches one, as after any BOOK_GAP)."""
        self.stats.gaps += 1
        self.gapped_books.add(book.asset_id)
        bb = book.best_bid_ticks
        ba = book.best_ask_ticks
        book.bids.clear()
        book.asks.clear()
        book.set_best(None, None)
        book.sequence = None
        book.valid = False
        best_bid = None if bb is None else bb / TICKS_PER_UNIT
        best_ask = None if ba is None else ba / TICKS_PER_UNIT
        message = (
            f"book {book.asset_id}: snapshot crossed (best bid {best_bid} is not below best ask "
            f"{best_ask}); the book is invalid until a new snapshot"
        )
        data = {"reason": "crossed", "best_bid": best_bid, "best_ask": best_ask, "hash": m.hash}
        return _status(VENUE, book.asset_id, ts, ts_local, StatusKind.BOOK_GAP, message, data)

    def _no_book(self, asset: str, market: str, ts: int | None, ts_local: int) -> Status | None:
        """Changes to a token without a snapshot: a BOOK_GAP "no_book" the first time (the live
        session fetches its book when it is subscribed), then counted only."""
        self.bookless_changes += 1
        bookless = self._bookless
        seen = bookless.get(asset)
        if seen is not None:
            bookless[asset] = seen + 1
            return None
        if len(bookless) >= _MAX_TRADES:
            bookless.clear()  # reporting a token twice is harmless; growing without bound is not
        bookless[asset] = 1
        self.stats.gaps += 1
        self.gapped_books.add(asset)
        message = f"book {asset}: price_change before any snapshot of this token; ignored until one"
        return _status(
            VENUE, asset, ts, ts_local, StatusKind.BOOK_GAP, message, {"reason": "no_book", "market": market}
        )

    def _apply_tick_size(self, m: _TickSizeChange, ts_local: int) -> list[MarketEvent]:
        """§2.2: the token's tick changes (near 0 and 1); the registry follows. The book needs
        nothing: its quantum represents every tick."""
        asset = m.asset_id
        tick = parse_tick_size(m.new_tick_size)
        inst = self.registry.get(VENUE, asset)
        if inst is not None and inst.tick_size != tick:
            self.registry.add(with_tick_size(inst, tick))
        message = f"{asset}: tick size {m.old_tick_size} -> {m.new_tick_size}"
        data = {"market": m.market, "old_tick_size": m.old_tick_size, "new_tick_size": m.new_tick_size}
        return [_status(VENUE, asset, _ns(m.timestamp), ts_local, StatusKind.TICK_SIZE_CHANGE, message, data)]

    def _apply_last_trade(self, m: _LastTrade, ts_local: int) -> list[MarketEvent]:
        """§2.2 `last_trade_price`: a public trade; `side` is the taker's."""
        trade_id = m.transaction_hash or ""
        return [
            _trade(VENUE, m.asset_id, _ns(m.timestamp), ts_local, m.price, m.size, _SIDES[m.side], trade_id)
        ]

    def _apply_best_bid_ask(self, m: _BestBidAsk, ts_local: int) -> list[MarketEvent]:
        """§2.2 custom feature `best_bid_ask`: a ticker with the best prices (no sizes: the
        venue sends none). An empty side is "0" (bid) or "1" (ask) on the wire, None here."""
        bid = m.best_bid if m.best_bid is not None and m.best_bid > 0.0 else None
        ask = m.best_ask if m.best_ask is not None and m.best_ask < 1.0 else None
        return [
            _ticker(
                VENUE,
                m.asset_id,
                _ns(m.timestamp),
                ts_local,
                bid,
                None,
                ask,
                None,
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

    def _apply_new_market(self, m: _NewMarket, ts_local: int) -> list[MarketEvent]:
        """§2.2 custom feature `new_market`: a venue-wide status; its tokens are learned when the
        tick is given and they are not known yet (the minimum size is then the usual 5 shares and
        neg_risk unknown: richer sources are not overwritten)."""
        learned = 0
        if m.order_price_min_tick_size is not None and m.assets_ids:
            ids = m.assets_ids
            definitions = outcome_definitions(
                token_ids=ids,
                labels=[m.outcomes[i] if i < len(m.outcomes) else "" for i in range(len(ids))],
                condition_id=m.market,
                tick=parse_tick_size(m.order_price_min_tick_size),
                min_size=DEFAULT_MIN_SIZE,
                active=m.active,
                neg_risk=m.neg_risk,
                neg_risk_market_id="",
                question=m.question,
                slug=m.slug,
                fees=None,
            )
            for inst, outcome in definitions:
                if self.registry.get(VENUE, inst.symbol) is None:
                    learned += learn(self.registry, self.outcomes, [(inst, outcome)])
        message = f"new market {m.slug or m.market}: {m.question}".rstrip(": ")
        data = {
            "event": "new_market",
            "market": m.market,
            "assets_ids": list(m.assets_ids),
            "outcomes": list(m.outcomes),
            "question": m.question,
            "slug": m.slug,
            "tick_size": m.order_price_min_tick_size,
            "learned": learned,
        }
        return [_status(VENUE, "", _ns(m.timestamp), ts_local, StatusKind.INSTRUMENT_STATE, message, data)]

    def _apply_resolved(self, m: _Resolved, ts_local: int) -> list[MarketEvent]:
        """§2.2 custom feature `market_resolved`: one status per token (payout 1 for the winner,
        0 for the others); the tokens become inactive in the registry."""
        ts = _ns(m.timestamp)
        events: list[MarketEvent] = []
        for token in m.assets_ids:
            inst = self.registry.get(VENUE, token)
            if inst is not None and inst.active:
                self.registry.add(attrs.evolve(inst, active=False))
            won = token == m.winning_asset_id
            message = f"market {m.market} resolved: {m.winning_outcome or m.winning_asset_id} won"
            data = {
                "market": m.market,
                "winning_asset_id": m.winning_asset_id,
                "winning_outcome": m.winning_outcome,
                "payout": 1.0 if won else 0.0,
            }
            events.append(_status(VENUE, token, ts, ts_local, StatusKind.MARKET_RESOLVED, message, data))
        return events

    def _apply_definitions(self, d: _Definitions, ts_local: int) -> list[MarketEvent]:
        self.stats.skipped_instruments += d.skipped
        learn(self.registry, self.outcomes, d.items)
        self.stats.control += 1
        return []

    def _apply_unknown(self, u: _Unknown, ts_local: int) -> list[MarketEvent]:
        self.stats.unknown_channel += 1
        self.last_unknown_channel = u.name
        return []

    def _learn_from_summary(self, m: _Book) -> None:
        """A `GET /book` answer's tick size, minimum size and neg_risk (§2.3) for its token."""
        assert m.tick_size is not None
        tick = parse_tick_size(m.tick_size)
        inst = self.registry.get(VENUE, m.asset_id)
        if inst is not None:
            changed = attrs.evolve(
                inst,
                tick_size=tick,
                min_size=inst.min_size if m.min_order_size is None else _min_size(m.min_order_size),
            )
            if changed != inst:
                self.registry.add(changed)
            known = self.outcomes.get(m.asset_id)
            if known is not None and m.neg_risk is not None and known.neg_risk != m.neg_risk:
                self.outcomes.add(attrs.evolve(known, neg_risk=m.neg_risk))
            return
        if m.min_order_size is None or not m.market:
            return
        inst = Instrument(
            venue=VENUE,
            symbol=m.asset_id,
            kind=InstrumentKind.OUTCOME,
            base=m.market,
            quote=COLLATERAL,
            settle=COLLATERAL,
            tick_size=tick,
            min_size=_min_size(m.min_order_size),
        )
        learn(self.registry, self.outcomes, [(inst, Outcome(m.asset_id, m.market, neg_risk=m.neg_risk))])

    # ------------------------------------------------------------------------- private events

    def _order_update(self, o: _UserOrder) -> OrderUpdate:
        """§2.2 user `order` event -> the order's state (ts_local is set when applied)."""
        asset = o.asset_id
        size, matched = _order_sizes(o.original_size, o.size_matched, asset)
        price = _price(o.price, "order price", asset)
        status = o.status.upper()
        reason: str | None = None
        if o.type == "CANCELLATION" or status.startswith("CANCELED") or status == "INVALID":
            state = OrderState.CANCELLED
            if status.startswith("CANCELED_"):
                reason = o.status[len("CANCELED_") :].strip() or None
            elif status == "INVALID":
                reason = "cancelled by the venue: INVALID"
            else:
                reason = "cancelled"
        elif size > 0 and matched >= size:
            state = OrderState.FILLED
        elif matched > 0:
            state = OrderState.PARTIALLY_FILLED
        else:
            state = OrderState.OPEN
            if status and status not in ("LIVE", "MATCHED"):
                reason = status.lower()  # "delayed", "unmatched": accepted, with a remark
        return OrderUpdate(
            venue=VENUE,
            instrument=asset,
            ts_exchange=_ns(o.timestamp),
            ts_local=0,
            order_id=o.id.lower(),  # in lower case (module docstring)
            client_order_id=None,
            strategy=None,
            status=state,
            side=_SIDES[o.side],
            price=price,
            size=size,
            filled_size=matched,
            avg_fill_price=None,
            reason=reason,
        )

    def _fee(self, token: str, size: Decimal, price: Decimal, liquidity: Liquidity) -> Decimal | None:
        """The pUSD fee of one of our fills (`fees.py`: under CLOB V2 the venue charges it in
        pUSD on either side, so the fill's size is the shares moved), from the market's
        schedule; None when it is not known. A trade's `fee_rate_bps` is no rate and is never
        used: a V2 taker fill charged its schedule's fee while its trade record read 0
        (py-clob-client-v2 #107), and `GET /fee-rate` answers 1000 for every fee-bearing market
        (#107, #110). The session learns the schedule before decoding a trade of a market it
        does not know (`stream.py`), so None means the venue could not say."""
        outcome = self.outcomes.get(token)
        schedule = None if outcome is None else outcome.fees
        if schedule is not None:
            if liquidity is Liquidity.MAKER and schedule.taker_only:
                return Decimal(0)
            return taker_fee(size, price, schedule.rate, schedule.exponent)
        inst = self.registry.get(VENUE, token)
        if inst is None:
            return None
        rate = inst.taker_fee if liquidity is Liquidity.TAKER else inst.maker_fee
        if rate is None or rate == 0:
            return rate  # unknown, or no fee whatever the exponent
        # The instrument carries the rate but not the curve's exponent (`fees.py`): the market's
        # schedule says it (both tokens share one); without it the fee is unknown, not guessed.
        for sibling in self.outcomes.of_market(inst.base) if inst.base else ():
            if sibling.fees is not None:
                return taker_fee(size, price, rate, sibling.fees.exponent)
        return None

    def _flag_unknown_fee(self, report: _TradeReport, fill: Fill) -> None:
        if (fill.order_id or "") in report.unknown_fee:
            self.unknown_fee_fills += 1
            if len(self._unknown_fees) < _MAX_UNKNOWN_FEES:
                self._unknown_fees.append(fill)

    def take_unknown_fees(self) -> list[Fill]:
        """The fills reported since the last call with no fee because their market's fee
        schedule was unknown (the venue did not say): the session alerts each."""
        taken, self._unknown_fees = self._unknown_fees, []
        return taken

    def _ours(self, mo: _MakerOrder, key: str) -> bool:
        """Whether a maker order of a trade is one of ours (see the class docstring)."""
        if key and mo.owner == key:
            return True
        return bool(mo.maker_address) and mo.maker_address.lower() in self.addresses

    def _trade_report(self, t: _UserTrade) -> _TradeReport:
        """§2.2 user `trade` event -> our fills in it (taker: the taker order; maker: our maker
        orders, told apart by owner) and their settlement reports."""
        if not t.id:
            # The trade id is what books a fill once (the engine's, the journal's, this
            # decoder's memory): without one, every reconciliation would book it again.
            raise _malformed("trade: no id", t.asset_id)
        status = _TRADE_STATUSES.get(t.status.upper())
        if status is None:
            known = ", ".join(_TRADE_STATUSES)
            raise _malformed(f"trade {t.id}: unknown status {t.status!r} (known: {known})", t.asset_id)
        ts = _ns(t.timestamp) or _match_time_ns(t.match_time, t.asset_id)
        if t.fee_rate_bps is not None:  # checked like every number, though not the rate (`_fee`)
            _dec(t.fee_rate_bps, "trade fee_rate_bps", t.asset_id, _MAX_BPS)
        key = self.api_key or t.owner
        mine = [mo for mo in t.maker_orders if self._ours(mo, key)]
        side_of_trade = t.trader_side or ("MAKER" if mine else "TAKER")
        legs: list[tuple[str, str, Side, Decimal, Decimal, Liquidity]] = []
        if side_of_trade == "TAKER":
            if not t.taker_order_id:
                raise _malformed(f"trade {t.id}: a taker trade needs taker_order_id", t.asset_id)
            legs.append(
                (
                    t.taker_order_id.lower(),  # in lower case (module docstring)
                    t.asset_id,
                    _SIDES[t.side],
                    _price(t.price, "trade price", t.asset_id),
                    _fill_size(t.size, "trade size", t.asset_id),
                    Liquidity.TAKER,
                )
            )
        else:
            if not mine:
                raise _malformed(
                    f"trade {t.id}: we are a maker but none of its maker orders has our owner key or address",
                    t.asset_id,
                )
            taker_side = _SIDES[t.side]
            for mo in mine:
                token = mo.asset_id or t.asset_id
                if mo.side is not None:
                    side = _SIDES[mo.side]
                else:
                    # Same token: the maker took the other side. The complementary token (a YES
                    # buy matched with a NO buy, minted together): the same side.
                    side = taker_side.opposite if token == t.asset_id else taker_side
                price = _price(mo.price, "maker order price", token)
                size = _fill_size(mo.matched_amount, "maker order matched_amount", token)
                legs.append((mo.order_id.lower(), token, side, price, size, Liquidity.MAKER))
        tx = t.transaction_hash or None
        parts: list[tuple[Fill, TradeSettlement]] = []
        unknown_fee: set[str] = set()
        for order_id, token, side, price, size, liquidity in legs:
            fee = self._fee(token, size, price, liquidity)
            if fee is None:
                # Booked, for the position is exact whatever the fee; flagged, not guessed.
                unknown_fee.add(order_id)
                fee = Decimal(0)
            leg = _Leg(
                venue=VENUE,
                instrument=token,
                ts_exchange=ts,
                ts_local=0,
                order_id=order_id,
                client_order_id=None,
                strategy=None,
                trade_id=t.id,
                side=side,
                price=price,
                size=size,
                liquidity=liquidity,
            )
            fill = Fill(**leg, fee=fee, fee_currency=COLLATERAL)
            settlement = TradeSettlement(**leg, status=status, transaction_hash=tx)
            parts.append((fill, settlement))
        return _TradeReport(t.id, status, parts, frozenset(unknown_fee))

    def _apply_trade(self, r: _TradeReport, ts_local: int) -> list[MarketEvent]:
        """The fill at the first report that is not FAILED, a settlement at every report, and a
        `FillReversal` (before the settlement) the first time a reported fill's trade FAILED."""
        trades = self._trades
        events: list[MarketEvent] = []
        for fill, settlement in r.parts:
            key = (r.trade_id, fill.order_id or "")
            reported = trades.get(key)
            if reported is None:
                if len(trades) >= _MAX_TRADES:
                    del trades[next(iter(trades))]
                reported = trades[key] = _NONE if r.status is TradeStatus.FAILED else _REPORTED
                if reported == _REPORTED:
                    events.append(msgspec.structs.replace(fill, ts_local=ts_local))
                    self._flag_unknown_fee(r, fill)
            elif r.status is TradeStatus.FAILED and reported == _REPORTED:
                # The fill we reported did not happen: take it back (once, however many
                # FAILED reports follow).
                self.failed_fills += 1
                reported = trades[key] = _REVERSED
                events.append(_reversal(fill, settlement, ts_local))
            events.append(
                msgspec.structs.replace(settlement, ts_local=ts_local, fill_reported=reported != _NONE)
            )
        return events


def _reversal(fill: Fill, settlement: TradeSettlement, ts_local: int) -> FillReversal:
    """The engine's undoing of `fill`, whose trade ended FAILED on chain (§2.2)."""
    tx = settlement.transaction_hash
    return FillReversal(
        venue=VENUE,
        instrument=fill.instrument,
        ts_exchange=settlement.ts_exchange,
        ts_local=ts_local,
        order_id=fill.order_id,
        client_order_id=None,
        strategy=None,
        trade_id=fill.trade_id,
        side=fill.side,
        price=fill.price,
        size=fill.size,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        reason="trade failed on chain" + (f" (transaction {tx})" if tx else ""),
    )


class _OpenOrder(Struct):
    """One of our resting orders as `GET /data/orders` lists it (§2.3)."""

    id: str
    asset_id: str
    side: BookSide
    price: Number
    original_size: Number
    size_matched: Number = "0"
    status: str = "LIVE"
    market: str = ""
    order_type: str = ""
    created_at: int | str | None = None


class _OrdersPage(Struct):
    """A page of `GET /data/orders`: the envelope read, each order on its own."""

    data: list[msgspec.Raw]
    next_cursor: str = "LTE="


class _OrderIds(Struct):
    """What names an order record that could not be read, when that much can be."""

    id: str | None = None


_decode_orders_page: Final = msgspec.json.Decoder(_OrdersPage, strict=False).decode
_decode_open_order: Final = msgspec.json.Decoder(_OpenOrder, strict=False).decode
_decode_order_ids: Final = msgspec.json.Decoder(_OrderIds, strict=False).decode
_decode_one_order: Final = msgspec.json.Decoder(_OpenOrder | None, strict=False).decode


@attrs.define
class OpenOrdersPage:
    """A page of `GET /data/orders` (`decode_open_orders`): the orders' states, the next cursor
    ("LTE=" after the last page), and the orders in it that could not be read (left out)."""

    updates: list[OrderUpdate] = attrs.field(factory=list)
    next_cursor: str = "LTE="
    refused: list[RefusedRecord] = attrs.field(factory=list)


def _refused_order(record: msgspec.Raw, reason: str) -> RefusedRecord:
    try:
        order_id = _decode_order_ids(record).id
        order_id = None if order_id is None else order_id.lower()  # in lower case (module docstring)
    except _UNREADABLE_RECORD:
        order_id = None
    return RefusedRecord(order_id, reason, None if order_id is None else (order_id,))


def _open_order_update(o: _OpenOrder, ts_local: int) -> OrderUpdate:
    """One order object of `GET /data/orders` or `GET /data/order/{id}` as its state."""
    created = o.created_at
    if isinstance(created, str) and created.isascii() and created.isdigit() and len(created) <= 19:
        created = int(created)
    ts = _checked_ns(created, "order created_at", o.asset_id) if isinstance(created, int) else None
    asset = o.asset_id
    size, matched = _order_sizes(o.original_size, o.size_matched, asset)
    status = o.status.upper()
    reason: str | None = None
    if status.startswith("CANCELED") or status == "INVALID":
        state = OrderState.CANCELLED
        if status.startswith("CANCELED_"):
            reason = o.status[len("CANCELED_") :].strip() or "cancelled"
        else:
            reason = "cancelled by the venue: INVALID" if status == "INVALID" else "cancelled"
    elif size > 0 and matched >= size:
        state = OrderState.FILLED
    elif status == "MATCHED":
        # No longer LIVE, yet not all matched: an immediate order whose remainder was killed (a
        # resting order partly matched stays LIVE).
        state = OrderState.CANCELLED
        reason = "unmatched remainder cancelled"
    elif matched > 0:
        state = OrderState.PARTIALLY_FILLED
    else:
        state = OrderState.OPEN
        if status and status != "LIVE":
            reason = status.lower()  # "delayed", "unmatched": accepted, with a remark
    return OrderUpdate(
        venue=VENUE,
        instrument=asset,
        ts_exchange=ts,
        ts_local=ts_local,
        order_id=o.id.lower(),  # in lower case (module docstring)
        client_order_id=None,
        strategy=None,
        status=state,
        side=_SIDES[o.side],
        price=_price(o.price, "order price", asset),
        size=size,
        filled_size=matched,
        avg_fill_price=None,
        reason=reason,
    )


def decode_open_orders(raw: bytes | str, ts_local: int) -> OpenOrdersPage:
    """A page of `GET /data/orders` (§2.3) as the orders' states, and the next cursor. Raises
    `MalformedFrame` for an answer that is not such a page (text that is not JSON, not UTF-8
    included); an order in it that cannot be read (a field missing or of the wrong type, a
    number that is none, matched above its size) is that order's problem: left out, in
    `refused`."""
    check_text(raw, VENUE, "open orders")  # msgspec leaves a record's strings unread (`Raw`)
    try:
        page = _decode_orders_page(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise _invalid("open orders", exc) from None
    out = OpenOrdersPage(next_cursor=page.next_cursor)
    for record in page.data:
        try:
            out.updates.append(_open_order_update(_decode_open_order(record), ts_local))
        except _UNREADABLE_RECORD as exc:
            out.refused.append(_refused_order(record, str(exc)))
    return out


def decode_order(raw: bytes | str, ts_local: int) -> OrderUpdate | None:
    """A `GET /data/order/{id}` answer (§2.3) as the order's state; None when the venue answered
    nothing (an empty body or `null`: it answers so for an order it no longer holds, e.g. one that
    matched in full, py-clob-client issue #217 [T]). Raises `MalformedFrame` otherwise."""
    if not raw or not raw.strip() or raw.strip() in (b"{}", "{}", b'""', '""'):
        return None
    try:
        order = _decode_one_order(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise _invalid("order", exc) from None
    return None if order is None else _open_order_update(order, ts_local)


def _is_control_text(frame: bytes | bytearray | memoryview | str) -> bool:
    raw = frame.encode(errors="replace") if isinstance(frame, str) else bytes(frame)
    return raw.strip() in _CONTROL_TEXT


def _tick_size(value: float, where: str, instrument: str) -> None:
    """MalformedFrame unless `value` is a tick the venue uses (§2.6)."""
    try:
        parse_tick_size(value)
    except ValueError:
        known = ", ".join(sorted(map(str, TICK_SIZES)))
        raise _malformed(f"{where}: unknown tick size {value!r} (known: {known})", instrument) from None


def _min_size(value: float) -> Decimal:
    d = Decimal(repr(value))
    return d.normalize() if d == d.to_integral_value() else d
