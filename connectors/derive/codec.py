"""Derive wire frames -> engine events (VENUES.md §3.1, §3.3, §3.4, §3.6).

`DeriveDecoder` is the one place Derive's JSON-RPC frames become typed events, live and in
backtests alike. Channels (§3.4):

- `ticker_slim.{instrument}.{100|1000}` -> `Ticker`. Single-letter keys (§3.3 "Slim key map":
  lower case = price, upper case = amount), every number a string; IVs are already fractions,
  Greeks come from `option_pricing` (null on perpetuals and spot). A zero price means an empty
  side (the venue sends `"a":"0","A":"0"`), reported as None.
- `orderbook.{instrument}.{group}.{depth}` -> `BookUpdate`. Snapshot-only: every message is the
  whole top-N book, so the book is replaced each time (`snapshot` True). `publish_id` is checked
  per channel: a skip (ids missed) is reported by a BOOK_GAP status before the book (which is
  whole again, so valid); a repeat is ignored (counted in `stats.ignored_changes`); a step back
  means the venue restarted its sequence and is reported by a BOOK_RESYNC status, the book
  replaced all the same (on one connection frames arrive in order, so it is the newest).
- `trades.{instrument}`, `trades.{type}.{currency}[.{tx_status}]` -> `Trade`, aggressor side: a
  record written from the maker's side (`liquidity_role: maker`) has its direction flipped; a
  trade id seen moments ago (the maker's and the taker's record of one match) is dropped.
- `ticker.{instrument}.{interval}` (deprecated, §3.3) -> `Ticker` from the full ticker fields;
  counted in `deprecated_tickers`, since a feed still on it is about to break.
- `{subaccount}.orders` -> `OrderUpdate`; `{subaccount}.trades[.{tx_status}]` -> `Fill` (our own
  orders, for the order tracker; §3.4 "Private channels"), once per trade and order whichever path
  (these channels, or a `private/order` answer through `order_result`) brings it first. What a
  trade is follows its `tx_status` (`tx_outcome`): one whose transaction was reverted is not a
  fill: after its fill was reported it is a `FillReversal`; never reported, an INSTRUMENT_STATE
  status naming trade and order. One whose status says neither that it settled nor that it
  reverted (`timed_out`, `ignored`) is never booked nor taken back: a status and an alert.
- Responses (`{"id":…,"result":…}`): a `subscribe` answer yields one SUBSCRIPTION_REFUSED status
  per channel whose status is not "ok" (its text is the venue's reason) and keeps
  `current_subscriptions`; a `get_instruments` / `get_instrument` answer teaches the engine
  registry and the `DeriveInstruments` side table (`details`), which is how a backtest learns tick
  sizes and assets from a recording. Errors are counted, kept in `last_error`, and a refused
  subscription (error 13000, or the deprecated-`ticker` refusal) is reported as
  SUBSCRIPTION_REFUSED.

The error contract: a frame that cannot be decoded raises `MalformedFrame` (counted in
`stats.malformed`) and changes nothing; nothing else escapes `decode`.

This is the hot path of every Derive backtest: msgspec decodes straight into typed structs in
lax mode (decimal strings become floats in C, with finiteness and sign checked by constraints),
one dict lookup routes a channel, events are built by positional builders. No Decimal here except
for our own orders and fills, which are money.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec
import orjson
import structlog
from msgspec import Meta, Raw, Struct

from tradingd.engine.venue import (
    BookUpdate,
    Envelope,
    Fill,
    FillReversal,
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
    check_nesting,
    invalid_frame,
    loads_untyped,
    malformed_frame,
    positional_builder,
)

from .instruments import (
    FIXED_POINT_MAX,
    QUOTE,
    VENUE,
    DeriveInstrumentInfo,
    DeriveInstruments,
    fixed_point,
    is_instrument_item,
    parse_instrument,
)

__all__ = [
    "DeriveDecoder",
    "OrderData",
    "TradeData",
    "decode_order_result",
    "fill_from",
    "order_update_from",
    "reversal_from",
    "subscription_refusals",
    "tx_outcome",
    "tx_status_unknown",
    "unsettled",
]

_ticker: Final = positional_builder(Ticker)
_greeks: Final = positional_builder(Greeks)
_book_update: Final = positional_builder(BookUpdate)
_trade: Final = positional_builder(Trade)
_status: Final = positional_builder(Status)
_log = structlog.get_logger("tradingd.derive")

_MS: Final = 1_000_000  # Derive timestamps are ms; events carry ns
_FALLBACK_QUANTUM: Final = 1e-8  # price quantum of a book whose instrument is not (yet) known
_RECENT_TRADES: Final = 4096  # trade ids remembered to drop the second record of one match
_OUR_TRADES: Final = 65_536  # our own trade ids remembered (fills reported, fills reversed)
_SIDES: Final = {"buy": Side.BUY, "sell": Side.SELL}
_FLIP: Final = {"buy": Side.SELL, "sell": Side.BUY}
_SUBSCRIPTION_ERRORS: Final = frozenset({13000})  # §3.7 "Invalid channels"
# The public trades channels' parts (§3.4): `trades.{instrument_type}.{currency}[.{tx_status}]`.
# Checked, like the legacy ticker's interval in ms (`100`, `1000`), so that another venue's
# channels of the same names (Deribit's `trades.BTC-PERPETUAL.100ms`, `trades.option.BTC.raw`,
# `ticker.BTC-PERPETUAL.100ms`) are unknown channels here, not data decoded as Derive's.
_TRADE_TYPES: Final = frozenset({"option", "perp", "erc20"})
_TX_STATUSES: Final = frozenset({"requested", "pending", "settled", "reverted", "ignored", "timed_out"})

# -- the wire, as typed structs ------------------------------------------------------------------

# What Derive can send (VENUES.md §3.6 "Action signing"; `fixed_point` in instruments.py): every
# price and amount lives on chain as an int256 with 18 decimals, so no venue number reaches
# 2**255 / 1e18 (about 5.79e58), and a price or amount other than zero is at least 1e-18. The
# constraints refuse the rest at the edge, "nan" and "inf" included (lax mode would parse them):
# with ticks of at least 1e-18 (instruments.py), price / tick stays a finite float, and tick
# conversion cannot overflow.
_MAX: Final = float(FIXED_POINT_MAX)
Num = Annotated[float, Meta(gt=-_MAX, lt=_MAX)]
Price = Annotated[float, Meta(ge=0.0, lt=_MAX)]
LevelPrice = Annotated[float, Meta(ge=1e-18, lt=_MAX)]
Amount = Annotated[float, Meta(ge=0.0, lt=_MAX)]
TradeAmount = Annotated[float, Meta(ge=1e-18, lt=_MAX)]  # a trade of nothing is no trade
# Derive times are ms (§3.3); events carry them as int64 ns, which ends in 2262.
Millis = Annotated[int, Meta(ge=0, lt=(2**63 - 1) // 1_000_000)]

# Nesting: one bound for every venue (engine/venue/plugins.py). `decode` is a `guard_decode`, which
# refuses a large frame nested too deep before any parse; a small one cannot nest deep enough to
# hurt the typed parse (a RecursionError on the way is a malformed frame as any). Every generic
# parse (a response's `result` and `error`, a raw instruments answer) is `loads_untyped`. A Derive
# message nests at most 6 deep (a ticker's `option_pricing` inside its envelope).

# §3.1: a notification (`method: subscription`, `params`), or a response (`id` with
# `result`/`error`); `jsonrpc` is optional on Derive and ignored.
_Envelope = Envelope[NotificationParams]


class _SlimPricing(Struct):
    """§3.3 `option_pricing` of ticker_slim: d delta, g gamma, t theta, v vega, r rho, i/bi/ai
    mark/bid/ask IV (fractions), m mark, f forward, df discount factor."""

    d: Num
    g: Num
    t: Num
    v: Num
    r: Num | None = None
    i: Price | None = None
    bi: Price | None = None
    ai: Price | None = None
    f: Price | None = None


class _SlimStats(Struct):
    oi: Amount | None = None


class _Slim(Struct):
    """§3.3 slim keys: b/B best bid price/amount, a/A best ask, I index, M mark, t ms."""

    t: Millis | None = None
    b: Price | None = None
    B: Amount | None = None
    a: Price | None = None
    A: Amount | None = None
    I: Price | None = None  # noqa: E741 - the venue's key
    M: Price | None = None
    option_pricing: _SlimPricing | None = None
    stats: _SlimStats | None = None


class _SlimData(Struct):
    instrument_ticker: _Slim
    timestamp: Millis | None = None


class _FullPricing(Struct):
    """`option_pricing` of the full (deprecated `ticker` / `get_ticker`) shape (§3.3)."""

    delta: Num
    gamma: Num
    theta: Num
    vega: Num
    rho: Num | None = None
    iv: Price | None = None
    bid_iv: Price | None = None
    ask_iv: Price | None = None
    forward_price: Price | None = None


class _FullStats(Struct):
    open_interest: Amount | None = None


class _FullTicker(Struct):
    instrument_name: str | None = None
    timestamp: Millis | None = None
    best_bid_price: Price | None = None
    best_bid_amount: Amount | None = None
    best_ask_price: Price | None = None
    best_ask_amount: Amount | None = None
    mark_price: Price | None = None
    index_price: Price | None = None
    option_pricing: _FullPricing | None = None
    stats: _FullStats | None = None


class _LegacyTickerData(_FullTicker):
    """The deprecated channel's data: `{timestamp, instrument_ticker: {full fields}}` (§3.3), or
    the full fields themselves (the shape of the captured perps/ws_ticker_eth.json)."""

    instrument_ticker: _FullTicker | None = None


class _BookData(Struct):
    """§3.4 orderbook (v2): levels are [price, amount] string pairs; `publish_id` increases."""

    instrument_name: str
    timestamp: Millis
    bids: list[tuple[LevelPrice, Amount]]
    asks: list[tuple[LevelPrice, Amount]]
    publish_id: int | None = None


class _TradeData(Struct):
    """§3.4 trades: one public trade (the `.{tx_status}` variants add account fields)."""

    instrument_name: str
    timestamp: Millis
    trade_price: LevelPrice
    trade_amount: TradeAmount
    direction: Literal["buy", "sell"]
    trade_id: str | int
    liquidity_role: Literal["maker", "taker"] | None = None


class _Error(Struct):
    """§3.1 `RPCErrorFormatSchema`."""

    code: int
    message: str
    data: Any = None


class _SubscribeResult(Struct):
    status: dict[str, str]
    current_subscriptions: list[str] = []


_decode_envelope: Final = msgspec.json.Decoder(_Envelope).decode
_decode_slim: Final = msgspec.json.Decoder(_SlimData, strict=False).decode
_decode_legacy: Final = msgspec.json.Decoder(_LegacyTickerData, strict=False).decode
_decode_book: Final = msgspec.json.Decoder(_BookData, strict=False).decode
_decode_trades: Final = msgspec.json.Decoder(list[_TradeData], strict=False).decode
_decode_error: Final = msgspec.json.Decoder(_Error).decode

# -- private channels and order responses (§3.4 "Private channels", §3.6) -----------------------


class OrderData(Struct):
    """A Derive order object (`{subaccount}.orders`, `private/order` results, open orders)."""

    order_id: str
    instrument_name: str
    direction: Literal["buy", "sell"]
    order_status: str
    amount: Decimal
    filled_amount: Decimal = Decimal(0)
    limit_price: Decimal | None = None
    average_price: Decimal | None = None
    label: str | None = None
    cancel_reason: str | None = None
    order_type: str | None = None
    time_in_force: str | None = None
    creation_timestamp: Millis | None = None
    last_update_timestamp: Millis | None = None
    nonce: int | None = None
    subaccount_id: int | None = None


class TradeData(Struct):
    """One of our executions (`{subaccount}.trades`, the `trades` of an order response)."""

    trade_id: str | int
    order_id: str
    instrument_name: str
    direction: Literal["buy", "sell"]
    trade_price: Decimal
    trade_amount: Decimal
    timestamp: Millis
    trade_fee: Decimal = Decimal(0)
    liquidity_role: Literal["maker", "taker"] | None = None
    label: str | None = None
    tx_status: str | None = None
    # USD, at the trade (VENUES.md §3.4, a decimal string). Any: an odd value only loses the
    # rate (the ledger then waits for the market's), never the fill.
    index_price: Any = None


class OrderResult(Struct):
    """The result of `private/order` / `private/replace`: the order and its trades (§3.6)."""

    order: OrderData
    trades: list[TradeData] = []


_decode_orders: Final = msgspec.json.Decoder(list[OrderData], strict=False).decode
_decode_user_trades: Final = msgspec.json.Decoder(list[TradeData], strict=False).decode
_decode_order_result: Final = msgspec.json.Decoder(OrderResult, strict=False).decode

# §3.6 `order_status`. `untriggered` (a trigger order waiting) and `algo_active` (a TWAP slicing)
# are live orders, hence open.
_STATES: Final = {
    "open": OrderState.OPEN,
    "untriggered": OrderState.OPEN,
    "algo_active": OrderState.OPEN,
    "filled": OrderState.FILLED,
    "cancelled": OrderState.CANCELLED,
    "rejected": OrderState.REJECTED,
    "expired": OrderState.EXPIRED,
}
# What one of our trades' `tx_status` says of it. Derive documents the values, not their meaning:
# its OpenAPI spec (as generated in 8ball030/derive_client `specs/openapi-spec.json`,
# `derive_client/data_types/generated_models.py` `TxStatus`) lists `requested`, `pending`,
# `settled`, `reverted`, `ignored`, `timed_out` for `TradeResponseSchema.tx_status` ("Blockchain
# transaction status"), and only `settled`, `reverted`, `timed_out` as the outcomes the trade
# history and the `{subaccount_id}.trades.{tx_status}` channel ("the user's trade settlement") are
# filtered by; `private/liquidate` speaks of a trade "settled or ... reverted on chain". No capture
# (../shared/fixtures, tests/fixtures) shows any but `settled`. Read so, and no further:
# - `requested`, `pending`: the matching engine matched the trade (the order's `filled_amount`
#   counts it) and its settlement is under way: a fill, as Polymarket's MATCHED is; a later
#   `reverted` takes it back.
# - `settled`: the settlement transaction executed on chain: a fill.
# - `reverted`: it reverted on chain: the trade did not happen (a reversal of a fill reported).
# - `timed_out`, `ignored`, anything else (or none): the venue says neither that the trade settled
#   nor that it reverted. Never guessed: not booked, nothing taken back, an alert
#   (`unknown_tx_status`, `fill.tx_status_unknown`) for a person to check the account; a later
#   report that says (`settled`, `reverted`) is applied then.
_TX_FILL: Final = frozenset({"requested", "pending", "settled"})
_TX_REVERTED: Final = frozenset({"reverted"})


def _json_bytes(raw: Any) -> Any:
    """JSON text as msgspec takes it: raw bytes, text or a `Raw` as is, parsed JSON re-encoded."""
    if isinstance(raw, bytes | bytearray | memoryview | str | Raw):
        return raw
    return orjson.dumps(raw)


_malformed: Final = functools.partial(malformed_frame, VENUE)
_invalid: Final = functools.partial(invalid_frame, VENUE)


def _unreadable(where: str, exc: UnicodeDecodeError | RecursionError) -> MalformedFrame:
    # msgspec raises these itself, not as a DecodeError: for a string that is not UTF-8, and for
    # a nesting that reaches the interpreter's recursion limit (the bound of typed parsing).
    return _malformed(f"{where}: not JSON we can read ({type(exc).__name__}: {exc})")


def _crossed_ticker(instrument: str, bid: float, ask: float) -> MalformedFrame:
    # The best bid and ask of one matching engine at one instant: a bid above the ask would have
    # traded. (Equal ones, a locked quote, are let through: a ticker is a view, not a book.)
    return _malformed(f"ticker bid {bid} is above its ask {ask}", instrument)


def _finite(value: Decimal, what: str, instrument: str) -> Decimal:
    """`value` when Derive can send it: finite and within the 18-decimal int256 of its contracts
    (the `_MAX` note above); "1E+999999999" would overflow the first sum made with it."""
    if not value.is_finite():
        raise _malformed(f"{what} is not a finite number: {value}", instrument)
    if not fixed_point(value):
        raise _malformed(
            f"{what} {value} is beyond the 18-decimal fixed point of Derive's contracts", instrument
        )
    return value


def _opt_finite(value: Decimal | None, what: str, instrument: str) -> Decimal | None:
    return None if value is None else _finite(value, what, instrument)


def order_update_from(o: OrderData, ts_local: int) -> OrderUpdate:
    """The engine's view of a Derive order object. The client order id is the order's `label`.

    A `filled` order whose `filled_amount` is short of its `amount` (an IOC or market order that
    matched in part, §3.6 cancel reason `ioc_or_market_partial_fill`) is reported as CANCELLED
    with its filled size: the rest will never trade, and FILLED would claim a full fill.
    """
    inst = o.instrument_name
    state = _STATES.get(o.order_status)
    if state is None:
        raise _malformed(f"unknown order_status {o.order_status!r}", inst)
    size = _finite(o.amount, "amount", inst)
    filled = _finite(o.filled_amount, "filled_amount", inst)
    # §3.6: an order's amount is positive (a zero one is refused with 11012), and the venue
    # never fills more than it.
    if size <= 0 or filled < 0:
        raise _malformed(
            f"order {o.order_id}: amount {size} must be positive, filled_amount {filled} not negative", inst
        )
    if filled > size:
        raise _malformed(f"order {o.order_id}: filled_amount {filled} is above its amount {size}", inst)
    reason = o.cancel_reason or None
    if state is OrderState.OPEN and filled > 0:
        state = OrderState.PARTIALLY_FILLED
    elif state is OrderState.FILLED and filled < size:
        state = OrderState.CANCELLED
        reason = reason or f"venue status 'filled' with {filled} of {size} executed; the rest will not trade"
    average = _opt_finite(o.average_price, "average_price", inst)
    ts = o.last_update_timestamp or o.creation_timestamp
    return OrderUpdate(
        venue=VENUE,
        instrument=inst,
        ts_exchange=None if ts is None else ts * _MS,
        ts_local=ts_local,
        order_id=o.order_id,
        client_order_id=o.label or None,
        strategy=None,
        status=state,
        side=_SIDES[o.direction],
        price=_opt_finite(o.limit_price, "limit_price", inst),
        size=size,
        filled_size=filled,
        avg_fill_price=average if filled > 0 and average else None,
        reason=reason,
    )


def fill_from(t: TradeData, ts_local: int) -> Fill:
    """The engine's view of one of our Derive trades; fees are in USDC (§3.4)."""
    inst = t.instrument_name
    price = _finite(t.trade_price, "trade_price", inst)
    size = _finite(t.trade_amount, "trade_amount", inst)
    fee = _finite(t.trade_fee, "trade_fee", inst)
    if price <= 0 or size <= 0:
        raise _malformed(f"trade {t.trade_id}: price and amount must be positive", inst)
    trade_id = str(t.trade_id)
    if not trade_id:
        # The trade id is what books a fill once (the engine's, the journal's, this decoder's
        # memory): without one, every reconciliation's catch-up would book it again.
        raise _malformed(f"trade of order {t.order_id}: no trade_id", inst)
    return Fill(
        venue=VENUE,
        instrument=inst,
        ts_exchange=t.timestamp * _MS,
        ts_local=ts_local,
        order_id=t.order_id,
        client_order_id=t.label or None,
        strategy=None,
        trade_id=trade_id,
        side=_SIDES[t.direction],
        price=price,
        size=size,
        fee=fee,
        fee_currency=QUOTE,
        liquidity=Liquidity.MAKER if t.liquidity_role == "maker" else Liquidity.TAKER,
        index_price=_index(t.index_price),
    )


def _index(x: Any) -> float | None:
    """A trade's index price, None unless a positive finite number (the simulator and the
    venue send "0" when they have none)."""
    if isinstance(x, bool) or not isinstance(x, str | int | float):
        return None
    try:
        f = float(x)
    except ValueError:
        return None
    except OverflowError:
        # An integer beyond any double (msgspec reads one as a Python int, exactly): no index
        # price Derive sends; the trade is malformed, never an OverflowError out of its reading.
        raise _malformed(f"index_price {x} is beyond any price") from None
    return f if 0 < f < math.inf else None


def _reverted(t: TradeData, ts_local: int) -> Status:
    message = (
        f"trade {t.trade_id} of order {t.order_id} has tx_status {t.tx_status}: "
        "it did not execute and is not a fill"
    )
    data = {"tx_status": t.tx_status, "trade_id": str(t.trade_id), "order_id": t.order_id}
    return _status(
        VENUE, t.instrument_name, t.timestamp * _MS, ts_local, StatusKind.INSTRUMENT_STATE, message, data
    )


def tx_outcome(t: TradeData) -> Literal["fill", "reverted", "unknown"]:
    """What one of our trades' `tx_status` says (`_TX_FILL` above, with its sources): a fill, a
    trade the chain reverted, or neither said."""
    status = t.tx_status
    if status in _TX_FILL:
        return "fill"
    return "reverted" if status in _TX_REVERTED else "unknown"


def unsettled(t: TradeData, ts_local: int) -> Status:
    """The status of one of our trades whose `tx_status` says neither that it settled nor that
    it reverted (`timed_out`, ...): nothing is booked or taken back on it."""
    message = (
        f"trade {t.trade_id} of order {t.order_id} has tx_status {t.tx_status}: Derive says neither "
        "that it settled nor that it reverted; not booked, nothing taken back: check the account"
    )
    data = {"tx_status": t.tx_status, "trade_id": str(t.trade_id), "order_id": t.order_id}
    return _status(
        VENUE, t.instrument_name, t.timestamp * _MS, ts_local, StatusKind.INSTRUMENT_STATE, message, data
    )


def tx_status_unknown(t: TradeData, *, reported: bool | None) -> None:
    """The alert for one of our trades whose `tx_status` says neither that it settled nor that it
    reverted (`tx_outcome`): one line naming the trade, its order and the status; `reported`:
    True when its fill was reported before, None when not known (not by this process: an
    earlier one's journal may hold it)."""
    _log.critical(
        "fill.tx_status_unknown",
        venue=VENUE,
        instrument=t.instrument_name,
        trade_id=str(t.trade_id),
        order_id=t.order_id,
        client_order_id=t.label or None,
        tx_status=t.tx_status,
        fill_reported=reported,
        action="not booked, nothing taken back: check the account (a later settled or reverted is applied)",
    )


def reversal_from(t: TradeData, ts_local: int) -> FillReversal:
    """The engine's view of one of our fills that the chain did not settle (a trade whose
    `tx_status` is `reverted` after it was reported): it undoes that fill."""
    fill = fill_from(t, ts_local)
    return FillReversal(
        venue=VENUE,
        instrument=fill.instrument,
        ts_exchange=fill.ts_exchange,
        ts_local=ts_local,
        order_id=fill.order_id,
        client_order_id=fill.client_order_id,
        strategy=None,
        trade_id=fill.trade_id,
        side=fill.side,
        price=fill.price,
        size=fill.size,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        reason=f"tx_status {t.tx_status}: the trade did not settle on chain",
    )


def _our_trade_events(trades: list[TradeData], ts_local: int) -> list[MarketEvent]:
    events: list[MarketEvent] = []
    for t in trades:
        outcome = tx_outcome(t)
        if outcome == "fill":
            events.append(fill_from(t, ts_local))
        else:
            events.append(_reverted(t, ts_local) if outcome == "reverted" else unsettled(t, ts_local))
    return events


def decode_order_result(raw: Any, ts_local: int) -> list[MarketEvent]:
    """The events of a `private/order` result: its fills first, then the order's state. Raises
    `MalformedFrame` for a result that is not an order with trades."""
    try:
        result = _decode_order_result(_json_bytes(raw))
    except msgspec.DecodeError as exc:
        raise _invalid("order result", exc) from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise _unreadable("order result", exc) from None
    events = _our_trade_events(result.trades, ts_local)
    events.append(order_update_from(result.order, ts_local))
    return events


def subscription_refusals(result: Any) -> list[tuple[str, str]]:
    """(channel, reason) for each channel a `subscribe` result did not accept (§3.4: its status is
    a text other than "ok"). Raises `MalformedFrame` when `result` is not a subscribe result."""
    try:
        sub = msgspec.convert(result, _SubscribeResult)
    except msgspec.ValidationError as exc:
        raise _malformed(f"subscribe result: {str(exc).replace('`', chr(39))}") from None
    return [(ch, status) for ch, status in sub.status.items() if status != "ok"]


def _channel_instrument(channel: str) -> str:
    """The instrument a channel names, or "" (a `trades.{type}.{currency}` channel names none)."""
    parts = channel.split(".")
    if (len(parts) >= 2 and parts[0] in ("ticker_slim", "ticker", "orderbook")) or (
        len(parts) == 2 and parts[0] == "trades"
    ):
        return parts[1]
    return ""


class _BookState:
    """One orderbook channel's book and its last `publish_id`."""

    __slots__ = ("book", "depth", "group", "instrument")

    def __init__(self, book: OrderBook, instrument: str, group: int, depth: int) -> None:
        self.book = book
        self.instrument = instrument
        self.group = group
        self.depth = depth


class DeriveDecoder(JsonRpcDecoder):
    """Decodes one Derive connection's frames into events (the engine's `Decoder` protocol;
    module docstring for the channels). `details` is the side table of Derive-only instrument
    facts learned alongside the registry; `current_subscriptions` the channel list of the last
    subscribe answer; `check_skips=False` stops reporting skipped publish ids as gaps (should a
    deployment find that the venue's ids are not consecutive per channel; VENUES.md says only
    "monotonically increasing").
    """

    venue = VENUE

    def __init__(
        self,
        registry: InstrumentRegistry,
        *,
        details: DeriveInstruments | None = None,
        check_skips: bool = True,
    ) -> None:
        super().__init__(registry, _decode_envelope)
        self.details = details if details is not None else DeriveInstruments()
        self.check_skips = check_skips
        self.last_error: tuple[int | str | None, int, str, Any] | None = None  # (id, code, message, data)
        self.errors = 0
        self.deprecated_tickers = 0
        self.duplicate_trades = 0
        self.crossed_books = 0  # orderbook snapshots refused as crossed
        self.current_subscriptions: list[str] = []
        self._books: dict[str, _BookState] = {}  # by channel
        self._primary: dict[str, _BookState] = {}  # by instrument: the finest book seen
        self._recent_trades: dict[str, None] = {}  # insertion-ordered, bounded
        # Our own trades (private channels, order answers), by (trade id, order id): one trade
        # may fill two orders of ours (each has its record under the trade's id). Kept across
        # reconnections, since a fill stays booked whatever happens to the connection.
        self._our_fills: dict[tuple[str, str], None] = {}
        self._our_reversals: dict[tuple[str, str], None] = {}
        self.repeated_fills = 0
        self.unknown_tx_status = 0  # our trades whose tx_status said neither fill nor revert (alerts)
        # Those alerted already, by (trade id, order id, tx_status, fill reported): a catch-up
        # reads the same trades again at every reconnect; a trade is alerted once per status it
        # is seen in, whichever path sees it first, and once more if its fill was reported since.
        self._unknown_alerted: dict[tuple[str, str, str | None, bool], None] = {}

    # ----------------------------------------------------------------------------------- API

    def learn_instruments(self, result: Any) -> int:
        """Teach the registry and `details` the instruments of a `get_instruments` result (raw
        JSON or parsed); returns how many of its items were learned."""
        if isinstance(result, bytes | bytearray | memoryview | str):
            items = loads_untyped(result, VENUE, "get_instruments")
        else:
            items = result
        if isinstance(items, dict):
            items = items.get("instruments", [items])
        if not isinstance(items, list):
            raise _malformed("get_instruments: expected a list of instruments")
        return self._learn(items)

    def invalidate_books(self) -> None:
        """The connection was lost: forget every book and publish id (a new connection's ids
        start their own sequence; its first snapshot is the truth)."""
        self._books.clear()
        self._primary.clear()
        self._recent_trades.clear()

    def book(self, instrument: str) -> OrderBook | None:
        """The book of `instrument`: of its finest-grouped (then deepest) orderbook channel;
        None when no orderbook message has been seen for it."""
        state = self._primary.get(instrument)
        return None if state is None else state.book

    def book_instruments(self) -> list[str]:
        return list(self._primary)

    # ------------------------------------------------------------------------------- routing

    def _route(self, channel: str) -> tuple[Handler, str]:
        """The handler of a channel not seen before (remembered for the next frames)."""
        parts = channel.split(".")
        head, n = parts[0], len(parts)
        route: tuple[Handler, str]
        if head == "ticker_slim" and n == 3:
            route = (self._on_slim, parts[1])
        elif head == "orderbook" and n == 4 and parts[2].isdigit() and parts[3].isdigit():
            route = (self._on_book, channel)
        elif head == "trades" and (
            n == 2 or (n >= 3 and parts[1] in _TRADE_TYPES and (n == 3 or parts[3] in _TX_STATUSES))
        ):
            route = (self._on_trades, channel)
        elif head == "ticker" and n == 3 and parts[2].isdigit():
            route = (self._on_legacy_ticker, parts[1])
        elif head.isdigit() and n == 2 and parts[1] == "orders":
            route = (self._on_our_orders, channel)
        elif head.isdigit() and n in (2, 3) and parts[1] == "trades":
            route = (self._on_our_trades, channel)
        else:
            # balances, quotes, rfqs, spot_feed, margin.watch, auctions.watch, ...
            route = (self._on_unknown, channel)
        return route

    # ------------------------------------------------------------------------------- tickers

    def _on_slim(self, raw: Any, ts_local: int, instrument: str) -> list[MarketEvent]:
        """`ticker_slim.{instrument}.{interval}` (§3.3)."""
        d = _decode_slim(raw)
        s = d.instrument_ticker
        ms = s.t if s.t is not None else d.timestamp
        bid, ask = s.b, s.a
        if bid and ask and bid > ask:
            raise _crossed_ticker(instrument, bid, ask)
        p = s.option_pricing
        if p is None:
            greeks = None
            mark_iv = bid_iv = ask_iv = underlying = None
        else:
            greeks = _greeks(p.d, p.g, p.v, p.t, p.r)
            mark_iv, bid_iv, ask_iv, underlying = p.i, p.bi, p.ai, p.f
        st = s.stats
        return [
            _ticker(
                VENUE,
                instrument,
                None if ms is None else ms * _MS,
                ts_local,
                bid or None,  # "0": no bid
                s.B if bid else None,
                ask or None,
                s.A if ask else None,
                None,  # the slim ticker has no last trade price
                s.M,
                s.I,
                underlying,
                None if st is None else st.oi,
                mark_iv,
                bid_iv,
                ask_iv,
                greeks,
            )
        ]

    def _on_legacy_ticker(self, raw: Any, ts_local: int, instrument: str) -> list[MarketEvent]:
        """`ticker.{instrument}.{interval}`: deprecated (§3.3), still decoded, and counted."""
        d = _decode_legacy(raw)
        full: _FullTicker = d.instrument_ticker if d.instrument_ticker is not None else d
        ms = full.timestamp if full.timestamp is not None else d.timestamp
        p = full.option_pricing
        greeks = None if p is None else _greeks(p.delta, p.gamma, p.vega, p.theta, p.rho)
        bid, ask = full.best_bid_price, full.best_ask_price
        if bid and ask and bid > ask:
            raise _crossed_ticker(full.instrument_name or instrument, bid, ask)
        self.deprecated_tickers += 1
        return [
            _ticker(
                VENUE,
                full.instrument_name or instrument,
                None if ms is None else ms * _MS,
                ts_local,
                bid or None,
                full.best_bid_amount if bid else None,
                ask or None,
                full.best_ask_amount if ask else None,
                None,
                full.mark_price,
                full.index_price,
                None if p is None else p.forward_price,
                None if full.stats is None else full.stats.open_interest,
                None if p is None else p.iv,
                None if p is None else p.bid_iv,
                None if p is None else p.ask_iv,
                greeks,
            )
        ]

    # -------------------------------------------------------------------------------- trades

    def _on_trades(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`trades.*` (§3.4): one `Trade` per new trade id, each with its own instrument, the side
        the aggressor's."""
        trades = _decode_trades(raw)
        recent = self._recent_trades
        out: list[MarketEvent] = []
        for t in trades:
            tid = t.trade_id if t.trade_id.__class__ is str else str(t.trade_id)
            if tid in recent:
                self.duplicate_trades += 1
                continue
            side = _FLIP[t.direction] if t.liquidity_role == "maker" else _SIDES[t.direction]
            out.append(
                _trade(
                    VENUE,
                    t.instrument_name,
                    t.timestamp * _MS,
                    ts_local,
                    t.trade_price,
                    t.trade_amount,
                    side,
                    tid,
                )
            )
            recent[tid] = None
            if len(recent) > _RECENT_TRADES:
                del recent[next(iter(recent))]
        return out

    # --------------------------------------------------------------------------------- books

    def _new_book(self, instrument: str) -> OrderBook:
        """A book whose price quantum is the instrument's tick when it is known."""
        inst = self.registry.get(VENUE, instrument)
        quantum = _FALLBACK_QUANTUM
        if inst is not None:
            q = float(inst.tick_size)
            if q > 0 and math.isfinite(q):
                quantum = q
        return OrderBook(quantum)

    def _on_book(self, raw: Any, ts_local: int, channel: str) -> list[MarketEvent]:
        """`orderbook.{instrument}.{group}.{depth}` (§3.4): a whole top-N book every time."""
        d = _decode_book(raw)
        inst = d.instrument_name
        ts = d.timestamp * _MS
        pid = d.publish_id
        state = self._books.get(channel)
        events: list[MarketEvent] = []
        if state is not None and pid is not None:
            last = state.book.sequence
            if isinstance(last, int):
                if pid == last:
                    self.stats.ignored_changes += 1
                    return []
                if pid < last:
                    message = (
                        f"book {inst}: publish_id went back from {last} to {pid} (the venue restarted "
                        "its sequence); book replaced by this snapshot"
                    )
                    data = {"channel": channel, "previous": last, "publish_id": pid}
                    events.append(_status(VENUE, inst, ts, ts_local, StatusKind.BOOK_RESYNC, message, data))
                elif pid > last + 1 and self.check_skips:
                    self.stats.gaps += 1
                    self.gapped_books.add(inst)
                    message = (
                        f"book {inst}: publish_id {pid} follows {last}; {pid - last - 1} snapshot(s) "
                        "missed (this one is whole, so the book is valid again)"
                    )
                    data = {"channel": channel, "expected": last + 1, "received": pid}
                    events.append(_status(VENUE, inst, ts, ts_local, StatusKind.BOOK_GAP, message, data))
        if state is None:
            _, _, group, depth = channel.split(".")
            state = _BookState(self._new_book(inst), inst, int(group), int(depth))
            self._books[channel] = state
            primary = self._primary.get(inst)
            if primary is None or (state.group, -state.depth) < (primary.group, -primary.depth):
                self._primary[inst] = state
        book = state.book
        bids = tuple(d.bids)
        asks = tuple(d.asks)
        was_valid = book.valid
        book.clear()
        book.update(bids, asks)
        book.sequence = pid
        bb_ticks, ba_ticks = book.best_bid_ticks, book.best_ask_ticks
        if bb_ticks is not None and ba_ticks is not None and bb_ticks >= ba_ticks:
            return self._crossed(state, channel, ts, ts_local, events, was_valid)
        book.valid = True
        bb, bbs, ba, bas = book.top()
        events.append(_book_update(VENUE, inst, ts, ts_local, True, bids, asks, bb, bbs, ba, bas, pid))
        return events

    def _crossed(
        self,
        state: _BookState,
        channel: str,
        ts: int,
        ts_local: int,
        events: list[MarketEvent],
        was_valid: bool,
    ) -> list[MarketEvent]:
        """A snapshot whose best bid is at or above its best ask: one matching engine's book
        cannot be crossed (the orders would have traded), so the book is broken, never data. It
        is emptied and marked invalid, and a BOOK_GAP status with reason "crossed" (the
        convention of every venue's decoder) asks the session for a fresh book; further crossed
        snapshots are ignored (counted) until one that is not makes the book valid again."""
        book = state.book
        bb, ba = book.price_of(book.best_bid_ticks or 0), book.price_of(book.best_ask_ticks or 0)
        book.clear()
        book.valid = False
        self.crossed_books += 1
        if not was_valid:
            self.stats.ignored_changes += 1
            return events
        inst = state.instrument
        message = (
            f"book {inst}: crossed (best bid {bb} >= best ask {ba}); ignored until a snapshot that is not"
        )
        data = {
            "channel": channel,
            "reason": "crossed",
            "publish_id": book.sequence,
            "best_bid": bb,
            "best_ask": ba,
        }
        events.append(_status(VENUE, inst, ts, ts_local, StatusKind.BOOK_GAP, message, data))
        return events

    # ------------------------------------------------------------------------------ private

    def _on_our_orders(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`{subaccount}.orders` (§3.4): a list of our orders, each after its change."""
        return [order_update_from(o, ts_local) for o in _decode_orders(raw)]

    def _on_our_trades(self, raw: Any, ts_local: int, _: str) -> list[MarketEvent]:
        """`{subaccount}.trades[.{tx_status}]` (§3.4): a list of our executions."""
        return self._our_trades(_decode_user_trades(raw), ts_local)

    def _our_trades(self, trades: list[TradeData], ts_local: int) -> list[MarketEvent]:
        """Our executions, each reported once whichever path (this channel, the `.reverted`
        variant, an order's answer) brings it first: a `Fill` for a (trade, order) not seen
        before, a `FillReversal` for a reverted trade we reported as a fill, a status for a
        reverted trade we never counted; a repeat is dropped (`repeated_fills`). A trade whose
        `tx_status` says neither (`timed_out`, `tx_outcome`) is a status and an alert
        (`unknown_tx_status`, `fill.tx_status_unknown`), never a fill nor a reversal. Memory and
        counters change only once the whole list has decoded."""
        fills, reversed_ = self._our_fills, self._our_reversals
        out: list[MarketEvent] = []
        new_fills: dict[tuple[str, str], None] = {}
        new_reversals: dict[tuple[str, str], None] = {}
        repeats = 0
        unknown: list[TradeData] = []
        for t in trades:
            key = (t.trade_id if t.trade_id.__class__ is str else str(t.trade_id), t.order_id)
            known = key in fills or key in new_fills
            outcome = tx_outcome(t)
            if outcome == "unknown":
                out.append(unsettled(t, ts_local))
                unknown.append(t)
            elif outcome == "reverted":
                if key in reversed_ or key in new_reversals:
                    repeats += 1
                elif known:
                    out.append(reversal_from(t, ts_local))
                    new_reversals[key] = None
                else:
                    out.append(_reverted(t, ts_local))
            elif known:
                repeats += 1  # the same trade again (another path, or a later tx_status)
            else:
                out.append(fill_from(t, ts_local))
                new_fills[key] = None
        self.repeated_fills += repeats
        for t in unknown:
            key = (str(t.trade_id), t.order_id)
            self.alert_unknown_tx_status(t, reported=key in fills or key in new_fills)
        for memory, new in ((fills, new_fills), (reversed_, new_reversals)):
            memory.update(new)
            while len(memory) > _OUR_TRADES:
                del memory[next(iter(memory))]
        return out

    def alert_unknown_tx_status(self, t: TradeData, *, reported: bool) -> None:
        """One of our trades whose `tx_status` says neither fill nor revert (`tx_outcome`),
        from the channel or a catch-up alike: counted (`unknown_tx_status`) and alerted
        (`fill.tx_status_unknown`) the first time it is seen in that status, not again at every
        reconnect's catch-up of the same history nor when the other path brings it in the same
        status. `reported`: whether this process reported its fill (the alert says True, or None:
        not known here, an earlier process's journal may hold it; both paths know the same, so
        they say the same). A trade alerted before its fill was reported is alerted again once
        it has been (a later `requested`, then the unknown status again): that alert, its fill
        booked, is the one a person acts on (README: checks the account, reverses it)."""
        key = (str(t.trade_id), t.order_id, t.tx_status, reported)
        alerted = self._unknown_alerted
        if key in alerted:
            return
        alerted[key] = None
        while len(alerted) > _OUR_TRADES:
            del alerted[next(iter(alerted))]
        self.unknown_tx_status += 1
        tx_status_unknown(t, reported=True if reported else None)

    def order_result(self, raw: Any, ts_local: int) -> list[MarketEvent]:
        """The events of a `private/order` answer (its fills first, then the order's state), its
        fills sharing the private channel's memory so each is reported once. Raises
        `MalformedFrame` (and changes nothing) for a result that is not an order with trades."""
        try:
            result = _decode_order_result(_json_bytes(raw))
        except msgspec.DecodeError as exc:
            raise _invalid("order result", exc) from None
        except (UnicodeDecodeError, RecursionError) as exc:
            raise _unreadable("order result", exc) from None
        order = order_update_from(result.order, ts_local)  # validated before the memory changes
        events = self._our_trades(result.trades, ts_local)
        events.append(order)
        return events

    # ---------------------------------------------------------------------------- responses

    def _response(self, env: _Envelope, ts_local: int) -> list[MarketEvent]:
        """A JSON-RPC response (§3.1): no market data, but a subscribe answer reports refusals and
        an instruments answer teaches the registry."""
        if env.id is None or not (env.result or env.error):
            raise _malformed("neither a subscription notification nor a JSON-RPC response")
        if env.error:
            check_nesting(env.error, VENUE, where="error")  # its `data` is parsed generically
            events = self._on_error(env, ts_local)
            self.stats.control += 1
            return events
        result = loads_untyped(env.result, VENUE, "result")
        if isinstance(result, dict) and "status" in result and "current_subscriptions" in result:
            refusals = subscription_refusals(result)  # validates the whole answer first
            self.current_subscriptions = list(result["current_subscriptions"])
            self.stats.control += 1
            return [self._refused(ch, reason, ts_local) for ch, reason in refusals]
        if isinstance(result, dict) and isinstance(result.get("instruments"), list):
            result = result["instruments"]  # v3 `get_all_instruments` shape (§3.2)
        if isinstance(result, list):
            if any(is_instrument_item(item) for item in result):
                self._learn(result)
        elif is_instrument_item(result):
            self._learn([result])
        self.stats.control += 1
        return []

    def _on_error(self, env: _Envelope, ts_local: int) -> list[MarketEvent]:
        err = _decode_error(env.error)
        self.errors += 1
        self.last_error = (env.id, err.code, err.message, err.data)
        text = f"{err.message}: {err.data}" if err.data else err.message
        if err.code in _SUBSCRIPTION_ERRORS or (err.code == -32602 and "deprecated" in text):
            return [self._refused("", f"error {err.code}: {text}", ts_local)]
        return []

    def _refused(self, channel: str, reason: str, ts_local: int) -> Status:
        what = f"channel {channel}" if channel else "subscription"
        return _status(
            VENUE,
            _channel_instrument(channel),
            None,
            ts_local,
            StatusKind.SUBSCRIPTION_REFUSED,
            f"{what} refused by the venue: {reason}",
            {"channel": channel, "reason": reason},
        )

    def _learn(self, items: list[Any]) -> int:
        """Add the instruments of a `get_instruments` answer to the registry and `details`;
        items that do not parse are skipped and counted (`stats.skipped_instruments`)."""
        parsed: list[tuple[Instrument, DeriveInstrumentInfo]] = []
        for item in items:
            if not is_instrument_item(item):
                self.stats.skipped_instruments += 1
                continue
            try:
                parsed.append(parse_instrument(item))
            except (ValueError, TypeError, ArithmeticError):
                self.stats.skipped_instruments += 1
        for inst, info in parsed:
            self.registry.add(inst)
            self.details.add(info)
        return len(parsed)
