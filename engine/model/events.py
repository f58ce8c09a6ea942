"""Typed events: what venues tell us, normalized, and what the engine tells strategies.

Market events (`Ticker`, `BookUpdate`, `Trade`, `Status`) come from venue decoders; private events
(`OrderUpdate`, `Fill`) from execution. All are frozen msgspec Structs: built by a C constructor
from positional arguments (about a tenth of the cost of an attrs frozen/slots class filled slot by
slot), safe to share between strategies, equal when of the same type with equal fields, picklable.
Change one with `msgspec.structs.replace(event, field=...)`. Their JSON form (`event_to_dict`) is
the contract of DESIGN.md: `type`, `venue`, `instrument`, `ts_exchange` (ns or None), `ts_local`
(ns), then the fields of the type; a value the venue did not send is None.

Market data numbers are floats (they come from JSON as floats and are only compared and averaged);
order and fill quantities are `Decimal`, because they are what money is counted in.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, cast

import attrs
import msgspec

__all__ = [
    "ALL_KINDS",
    "BookUpdate",
    "DataKind",
    "Event",
    "Fill",
    "FillReversal",
    "Greeks",
    "Level",
    "Liquidity",
    "MarketEvent",
    "OrderState",
    "OrderUpdate",
    "PrivateEvent",
    "Side",
    "Status",
    "StatusKind",
    "Subscription",
    "Ticker",
    "Trade",
    "event_to_dict",
    "positional_builder",
]

_T = TypeVar("_T")

Level = tuple[float, float]
"""One book level as the venue sent it: (price, size); size 0 removes the level."""


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy, -1 for sell: position change per unit filled."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class OrderState(enum.StrEnum):
    """Every state an order can be in. The first two and `pending_cancel` are ours (the venue has
    not answered yet); the rest are the venue's and the contract's `order.status` values."""

    PENDING_NEW = "pending_new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATES

    @property
    def is_live(self) -> bool:
        """True while the order can still trade (it rests, or may rest, at the venue)."""
        return not self.is_final


_FINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED})


class DataKind(enum.StrEnum):
    """What a subscription asks for on one instrument; each venue maps it to its channels."""

    TICKER = "ticker"
    BOOK = "book"
    TRADES = "trades"


ALL_KINDS: frozenset[DataKind] = frozenset(DataKind)


def _kinds(value: Iterable[str] | str | None) -> frozenset[DataKind]:
    if value is None:
        return ALL_KINDS
    if isinstance(value, str):
        value = [value]
    return frozenset(DataKind(v) for v in value)


@attrs.frozen
class Subscription:
    """A strategy's wish for market data: one instrument of one venue, some kinds of data.

    `Subscription("deribit", "BTC-PERPETUAL")` asks for everything (ticker, book, trades).
    """

    venue: str
    instrument: str
    kinds: frozenset[DataKind] = attrs.field(default=ALL_KINDS, converter=_kinds)

    def routing_keys(self) -> Iterable[tuple[str, str, DataKind]]:
        """The (venue, instrument, kind) triples the router counts and routes by."""
        return ((self.venue, self.instrument, k) for k in sorted(self.kinds))


# Which events the collector tracks. An event whose fields can only hold scalars (str, int, float,
# Decimal, enums, tuples of floats, `Greeks`) cannot be part of a reference cycle, so it is made
# with `gc=False`: never tracked, never walked by the collector (millions of them are alive in a
# backtest's chunk). A `Status` holds `data`, a dict anyone may fill with anything (even the event
# itself): it stays tracked, and it is rare. The bases keep the default so that a subclass made
# elsewhere (a connector's own private event) is tracked unless it says otherwise.
class Greeks(msgspec.Struct, frozen=True, gc=False):
    """Option sensitivities as the venue publishes them (Deribit: USD-denominated;
    delta per unit of underlying, vega per vol point, theta per day)."""

    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float | None = None


class MarketEvent(msgspec.Struct, frozen=True):
    """Fields every event carries. `ts_exchange` is the venue's timestamp in ns since the epoch
    (None when the venue sent none); `ts_local` is when we received it (or replay time)."""

    type: ClassVar[str] = "event"
    kind: ClassVar[DataKind | None] = None

    venue: str
    instrument: str
    ts_exchange: int | None
    ts_local: int


Event = MarketEvent
"""Every event a strategy can receive derives from this class."""


def _mid(bid: float | None, ask: float | None) -> float | None:
    """The middle of the best bid and ask; None without both."""
    if bid is None or ask is None:
        return None
    return (bid + ask) / 2


class Ticker(MarketEvent, frozen=True, gc=False):
    """Best prices and venue-computed marks. Implied vols are fractions (0.4543 for 45.43%)."""

    type: ClassVar[str] = "ticker"
    kind: ClassVar[DataKind | None] = DataKind.TICKER

    bid: float | None = None
    bid_size: float | None = None
    ask: float | None = None
    ask_size: float | None = None
    last: float | None = None
    mark: float | None = None
    index: float | None = None
    underlying: float | None = None
    open_interest: float | None = None
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    greeks: Greeks | None = None

    @property
    def mid(self) -> float | None:
        return _mid(self.bid, self.ask)


class BookUpdate(MarketEvent, frozen=True, gc=False):
    """A book message: the levels it set (size 0 removes) and the top of book after applying it.

    `snapshot` is True when the message replaced the whole book. `sequence` is the venue's change
    id / publish id / hash when it has one.
    """

    type: ClassVar[str] = "book"
    kind: ClassVar[DataKind | None] = DataKind.BOOK

    snapshot: bool = False
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    best_bid: float | None = None
    best_bid_size: float | None = None
    best_ask: float | None = None
    best_ask_size: float | None = None
    sequence: int | str | None = None

    @property
    def mid(self) -> float | None:
        return _mid(self.best_bid, self.best_ask)


class Trade(MarketEvent, frozen=True, gc=False):
    """A public trade. `side` is the aggressor's side."""

    type: ClassVar[str] = "trade"
    kind: ClassVar[DataKind | None] = DataKind.TRADES

    price: float = 0.0
    size: float = 0.0
    side: Side = Side.BUY
    trade_id: str = ""


class StatusKind(enum.StrEnum):
    """What a `Status` event reports."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    SUBSCRIBED = "subscribed"
    SUBSCRIPTION_REFUSED = "subscription_refused"
    BOOK_GAP = "book_gap"
    BOOK_RESYNC = "book_resync"
    FEED_STALE = "feed_stale"
    FEED_RESUMED = "feed_resumed"
    INSTRUMENT_STATE = "instrument_state"
    TICK_SIZE_CHANGE = "tick_size_change"
    MARKET_RESOLVED = "market_resolved"
    EXPIRED = "expired"
    # A perpetual's funding event passed (`data`: `funding_rate`, `funding_ts_ns`): replayed
    # data that carries funding times (Tardis' `derivative_ticker`).
    FUNDING = "funding"


class Status(MarketEvent, frozen=True):
    """A change of state of a venue connection or an instrument. `instrument` is "" for
    venue-wide states; `data` holds the fields that describe the change (flattened in JSON)."""

    type: ClassVar[str] = "status"

    status: StatusKind = StatusKind.CONNECTED
    message: str = ""
    data: Mapping[str, Any] = msgspec.field(default_factory=dict)


class PrivateEvent(MarketEvent, frozen=True):
    """An event about one of our own orders; routed to the strategy that owns it."""

    order_id: str | None = None
    client_order_id: str | None = None
    strategy: str | None = None


class OrderUpdate(PrivateEvent, frozen=True, gc=False):
    """The state of one of our orders after a change. Quantities are Decimal, in the venue's
    units for the instrument. `reason` says why an order was rejected or cancelled."""

    type: ClassVar[str] = "order"

    status: OrderState = OrderState.PENDING_NEW
    side: Side = Side.BUY
    price: Decimal | None = None
    size: Decimal = Decimal(0)
    filled_size: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    reason: str | None = None


class Fill(PrivateEvent, frozen=True, gc=False):
    """One execution of one of our orders. `fee` is in `fee_currency` (negative: a rebate).
    `index_price` is the underlying's USD index price at the execution where the venue reports
    it (Deribit's and Derive's trades do): the ledger converts the fill to USD at it."""

    type: ClassVar[str] = "fill"

    trade_id: str = ""
    side: Side = Side.BUY
    price: Decimal = Decimal(0)
    size: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    index_price: float | None = None


class FillReversal(PrivateEvent, frozen=True, gc=False):
    """A fill the venue has voided after reporting it (Polymarket: a matched trade whose
    settlement on chain ended FAILED, VENUES.md §2.2). Names the `Fill` by `trade_id` and repeats
    its terms; the engine takes it out of the order's fills and the strategy's position."""

    type: ClassVar[str] = "fill_reversal"

    trade_id: str = ""
    side: Side = Side.BUY
    price: Decimal = Decimal(0)
    size: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    reason: str = ""


def _value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, Greeks):
        return {"delta": v.delta, "gamma": v.gamma, "vega": v.vega, "theta": v.theta, "rho": v.rho}
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    return v


def event_to_dict(event: MarketEvent) -> dict[str, Any]:
    """The JSON contract form of an event (DESIGN.md, "normalized events as JSON")."""
    out: dict[str, Any] = {"type": event.type}
    for name in event.__struct_fields__:
        v = getattr(event, name)
        if name == "data" and isinstance(event, Status):
            for k, dv in v.items():
                out.setdefault(k, _value(dv))
            continue
        out[name] = _value(v)
    return out


def positional_builder(cls: type[_T]) -> Callable[..., _T]:
    """The fastest positional constructor of `cls`, for decoders that build millions of objects.

    For a msgspec Struct (every event) it is `cls` itself: its constructor already takes every
    field in order and is C code. For an attrs frozen/slots class (the catalog's records) it is a
    function that fills the slots directly: attrs' `__init__` of a frozen class sets each field
    through `object.__setattr__`, about 30% dearer (bench/bench_decode.py). That function takes
    every field, in order, and does nothing else, so it is only made when `__init__` would do
    nothing else either (no validators, converters, keyword-only or init=False fields, no init
    hooks); otherwise `cls` itself is returned, which takes the same arguments. The objects it
    makes equal, hash and freeze like those of `cls` (tests/model/test_events.py).
    """
    if issubclass(cls, msgspec.Struct):
        return cls
    fields = attrs.fields(cast(Any, cls))
    setters: list[Any] = []
    for f in fields:
        if f.validator is not None or f.converter is not None or f.kw_only or not f.init:
            return cls
        slot = next((k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__), None)
        if not isinstance(slot, types.MemberDescriptorType):
            return cls
        setters.append(slot.__set__)
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return cls
    args = ", ".join(f"a{i}" for i in range(len(fields)))
    body = "".join(f"    s{i}(o, a{i})\n" for i in range(len(fields)))
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    namespace.update((f"s{i}", s) for i, s in enumerate(setters))
    exec(f"def build({args}):\n    o = new(cls)\n{body}    return o\n", namespace)
    built: Callable[..., _T] = namespace["build"]
    return built
