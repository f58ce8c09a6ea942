"""Deribit execution: orders over the session's WebSocket (VENUES.md §1.7).

`DeribitExecution` is the `ExecutionClient` the engine's gateway drives: `private/buy` and
`private/sell` (limit, market, post-only, reduce-only, time in force, `label` = our client order
id), `private/edit`, `private/cancel` (or `private/cancel_by_label` while the venue has not named
the order yet), `private/cancel_all_by_instrument`; for reconciliation, open orders, one order's
state (by id, or by label when the venue had not named it), and our trades since a time. Answers become the
engine's events (the order's state, and the fills its answer carries); venue errors become typed
exceptions with the venue's code and message. Orders are checked against the instrument (tick and
contract size, from `public/get_instruments`) before they are sent.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
import msgspec
import structlog

from tradingd.engine.venue import (
    ORDER_LEFT_OUT,
    READ_ERRORS,
    RECORD_ERRORS,
    TRADE_LEFT_OUT,
    BadNumber,
    Fill,
    FundingPayment,
    InstrumentRegistry,
    MalformedFrame,
    Order,
    OrderRejected,
    OrderType,
    OrderUpdate,
    PrivateEvent,
    SaidOnce,
    TimeInForce,
    VenueError,
    VenueExecution,
    check_delivery_price,
    check_funding,
    check_text,
    log_refused_record,
    read_records,
)

from .codec import Millis, OrderData, TradeData, decode_order_result, fill_from, order_update_from
from .instruments import VENUE

if TYPE_CHECKING:
    from .stream import DeribitSession

__all__ = ["DeribitExecution"]

# §1.7 time_in_force values; GTD has no Deribit equivalent (good_til_day ends at 08:00 UTC).
_TIF = {
    TimeInForce.GTC: "good_til_cancelled",
    TimeInForce.IOC: "immediate_or_cancel",
    TimeInForce.FOK: "fill_or_kill",
}
_decode_order: Any = msgspec.json.Decoder(OrderData).decode
_decode_orders: Any = msgspec.json.Decoder(list[OrderData]).decode
# `private/get_open_orders_by_currency`: the list read, each order on its own (`open_orders`).
_decode_order_records: Any = msgspec.json.Decoder(list[msgspec.Raw]).decode


class _TradePage(msgspec.Struct):
    """A page of `private/get_user_trades_by_currency_and_time`: the envelope read, each trade
    on its own (`recent_fills`)."""

    trades: list[msgspec.Raw]
    has_more: bool = False


class _Stamp(msgspec.Struct):
    """What pages the history on: a trade's time, read even from a record that is otherwise bad."""

    timestamp: Millis


_decode_trade_page: Any = msgspec.json.Decoder(_TradePage).decode
_decode_trade: Any = msgspec.json.Decoder(TradeData).decode
_decode_stamp: Any = msgspec.json.Decoder(_Stamp).decode


class _TradeKey(msgspec.Struct):
    """What tells two trade records apart (a trade between two orders of ours is listed once per
    order, under one trade id), read even from a record that is otherwise bad."""

    trade_id: str | None = None
    order_id: str | None = None


_decode_trade_key: Any = msgspec.json.Decoder(_TradeKey).decode
# Our trades younger than this are asked without `historical`, older ones with it. Deribit keeps
# the recent trades 24 hours, and indexes every trade for `historical: true` "after a short
# delay" (docs.deribit.com/articles/accessing-historical-trades-orders): the hour of margin
# covers our clock against the venue's.
_RECENT_MS: Final = 23 * 3_600_000


def _trade_key(raw: msgspec.Raw) -> tuple[str, str] | bytes:
    """A trade record's (trade id, order id), or its bytes when they cannot be read."""
    try:
        key: _TradeKey = _decode_trade_key(raw)
    except _UNREADABLE:
        return bytes(raw)
    if key.trade_id is None:
        return bytes(raw)
    return key.trade_id, key.order_id or ""


def _unproven(first: Sequence[msgspec.Raw], tail: _TradePage) -> str | None:
    """Why a millisecond's first page, oldest first (full, more to come), and the same
    millisecond asked again newest first (`tail`) do not prove every trade of it read; None when
    they do: the newest first page holds all of it (no more to come) and every trade of the
    first page, or the two pages meet (share a trade) without being the same page. The re-ask
    leans on `sorting` and on `end_timestamp` being inclusive, which Deribit's docs do not
    promise for this method: a venue ignoring `sorting` answers the first page again, one whose
    end is exclusive answers nothing; either would lose the trades between, so neither is
    taken on trust."""
    asc = {_trade_key(r) for r in first}
    desc = {_trade_key(r) for r in tail.trades}
    if not tail.has_more:
        if asc <= desc:
            return None
        return (
            f"asked again newest first, the millisecond was {len(desc)} trades without the "
            f"{len(asc - desc)} of its first page (an end not included?): the rest unread"
        )
    if asc == desc:
        return (
            f"asked again newest first, the millisecond's first {len(asc)} trades came again "
            "(the order asked for not honoured?): the rest unread"
        )
    if not asc & desc:
        return (
            f"at least {len(asc) + len(desc)} trades in one millisecond: the first and the last "
            "read, any between them skipped"
        )
    return None


class _Settlement(msgspec.Struct):
    """One item of `settlements` in `public/get_last_settlements_by_instrument` and
    `private/get_settlement_history_by_currency` (Deribit API v2 reference: `type` settlement,
    delivery or bankruptcy; `mark_price` the instrument's price at the event, in its quote
    currency; `position` the account's; `funding` on a perpetual's settlement only, in the base
    currency; `timestamp` ms). Bankruptcies carry no instrument."""

    type: str
    timestamp: int
    instrument_name: str | None = None
    mark_price: float | None = None
    index_price: float | None = None
    position: float | None = None
    funding: float | None = None


class _SettlementPage(msgspec.Struct):
    """`public/get_last_settlements_by_instrument`, read whole (`delivery_price`)."""

    settlements: list[_Settlement]
    continuation: str | None = None


class _SettlementRecords(msgspec.Struct):
    """A page of `private/get_settlement_history_by_currency`: the envelope read, each record
    on its own (`funding_payments`)."""

    settlements: list[msgspec.Raw]
    continuation: str | None = None


class _SettlementIds(msgspec.Struct):
    """What names a settlement record that cannot be read, as far as it can be (a log line)."""

    instrument_name: str | None = None
    timestamp: int | None = None


_decode_settlements: Any = msgspec.json.Decoder(_SettlementPage).decode
_decode_settlement_records: Any = msgspec.json.Decoder(_SettlementRecords).decode
_decode_settlement: Any = msgspec.json.Decoder(_Settlement).decode
_decode_settlement_ids: Any = msgspec.json.Decoder(_SettlementIds).decode
# Bad settlement records remembered as counted and logged (`funding_payments`): each is said
# once, not at every poll while the look-back still holds it; the oldest forgotten beyond this.
_REFUSED_KEPT: Final = 1024


def _settlement_ids(raw: msgspec.Raw) -> _SettlementIds:
    """The instrument and time of a settlement record, as far as they can be read."""
    try:
        ids: _SettlementIds = _decode_settlement_ids(raw)
    except READ_ERRORS:
        return _SettlementIds()
    return ids


class _Position(msgspec.Struct):
    """One item of `private/get_positions` (Deribit API v2 reference): `size` signed (negative
    for a short), in USD for an inverse future, in the coin for options and linear instruments:
    the units our fills are booked in; `direction` buy, sell or zero."""

    instrument_name: str
    size: float
    direction: str = ""


_decode_positions: Any = msgspec.json.Decoder(list[_Position]).decode
# A magnitude Deribit cannot send (README: from 2**53 up, a frame is malformed).
_MAX_SIZE: Final = Decimal(2**53)


def _held(p: _Position) -> Decimal:
    """A position's signed size, refused (`MalformedFrame`) when it is no size the venue sends:
    not finite, too large, or its sign against its `direction`."""
    if not math.isfinite(p.size):
        raise MalformedFrame(f"{p.instrument_name}: position size {p.size!r}", venue=VENUE)
    size = Decimal(repr(p.size))
    wrong_side = (p.direction == "buy" and size < 0) or (p.direction == "sell" and size > 0)
    if abs(size) >= _MAX_SIZE or wrong_side or (p.direction == "zero" and size != 0):
        raise MalformedFrame(
            f"{p.instrument_name}: position size {p.size!r} {p.direction or '(no direction)'}", venue=VENUE
        )
    return size


# What reading an answer, and one record of a list, may raise: engine/venue/records.py.
_UNREADABLE: Final = READ_ERRORS


_log = structlog.get_logger("tradingd.deribit")
# Pages of settlement history read in one call at most: a day back is one page of 1000 for any
# account; a venue that pages on (or repeats its continuation token) is cut off, loudly.
_MAX_SETTLEMENT_PAGES: Final = 20
# Deribit's settlement session: daily at 08:00 UTC ("Deribit Perpetual": funding payments are
# "calculated every millisecond" into the realized PnL, moved to the cash balance at the daily
# settlement), so a settlement's `funding` accrued over the 24 hours before it.
_SESSION_NS: Final = 86_400 * 1_000_000_000


def _unreadable(what: str, exc: Exception) -> VenueError:
    return VenueError(f"{what}: unreadable answer ({exc})", venue=VENUE, code="malformed")


def _order_record(record: msgspec.Raw, now: int) -> OrderUpdate:
    """One record of an open-orders answer, read (raises what `read_records` counts)."""
    return order_update_from(_decode_order(record), now)


def _stamp(raw: msgspec.Raw) -> int | None:
    """A trade record's time (ms), None when even that cannot be read."""
    try:
        stamp: _Stamp = _decode_stamp(raw)
    except _UNREADABLE:
        return None
    return stamp.timestamp


def _num(d: Decimal) -> float | int:
    """A Decimal as a JSON number, exactly as written: 0.1 stays 0.1, 10 stays 10."""
    return int(d) if d == d.to_integral_value() else float(d)


@attrs.define
class _TradeHistory:
    """One currency's trade history being read (`recent_fills`): the window asked, the trades
    taken (each (trade id, order id) once), the records already refused, the fills."""

    currency: str
    window: tuple[int, int]
    seen: set[tuple[str, str]]
    refused: set[bytes]
    out: list[Fill]


class DeribitExecution(VenueExecution):
    """Sends orders through a `DeribitSession` and reads its answers (module docstring)."""

    venue = VENUE
    page_size = 1000  # trades a page of the history (the venue's maximum)
    max_pages = 1000  # pages of the history read at most per currency (then an error in the log)
    trades_refused = 0  # trade history records that could not be read (logged)
    # Trade or settlement histories read short (`fills.history_truncated`,
    # `funding.history_truncated`: trades or payments possibly not caught up, for a person).
    history_truncated = 0
    funding_refused = 0  # settlement history records that could not be read or are no money (each once)
    # Bad settlement records counted and logged so far (`_REFUSED_KEPT` at most, oldest forgotten).
    _funding_said: SaidOnce | None = None
    orders_refused = 0  # open orders records that could not be read (each read, logged)

    def __init__(
        self,
        session: DeribitSession,
        registry: InstrumentRegistry,
        *,
        currencies: Sequence[str] = ("BTC", "ETH"),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.session = session
        self.registry = registry
        self.currencies = list(currencies)
        self.clock = clock

    def _result(self, raw: Any, what: str) -> list[PrivateEvent]:
        try:
            return list(decode_order_result(raw, self.clock()))
        except _UNREADABLE as exc:
            # The order was sent and answered, but the answer is unreadable: outcome unknown.
            raise VenueError(f"{what}: unreadable answer ({exc})", venue=VENUE, code="malformed") from None

    def order_params(self, order: Order) -> dict[str, Any]:
        """The `private/buy`/`private/sell` params of an order (validated first)."""
        req = order.request
        inst = self.registry.require(VENUE, req.instrument, client_order_id=req.client_order_id)
        inst.check_order(req.price, req.size, client_order_id=req.client_order_id)
        tif = _TIF.get(req.time_in_force)
        if tif is None:
            raise OrderRejected(
                f"time in force {req.time_in_force.value} is not offered by Deribit",
                venue=VENUE,
                instrument=req.instrument,
                client_order_id=req.client_order_id,
            )
        params: dict[str, Any] = {
            "instrument_name": req.instrument,
            "amount": _num(req.size),
            "type": req.type.value,
            "label": req.client_order_id,
            "time_in_force": tif,
        }
        if req.type is OrderType.LIMIT:
            assert req.price is not None
            params["price"] = _num(req.price)
            if req.post_only:
                params["post_only"] = True
                params["reject_post_only"] = True  # refuse rather than reprice (§1.7)
        if req.reduce_only:
            params["reduce_only"] = True
        return params

    # -- the venue SPI's capabilities (engine.venue.spi.VenueExecution) --------------------------
    # Orders go through `JsonRpcSession.request`, which says when their bytes have left
    # (engine.venue.sent): the gateway logs `order.sent` then, off the tick-to-order path.
    signals_sent: Final = True

    def prepare(self, order: Order) -> None:
        """No id before sending: the venue assigns it on receiving the order."""
        return

    @property
    def positions(self) -> DeribitExecution:
        """The account's positions (`private/get_positions`): a reconciliation compares them
        with ours (`venue_positions`)."""
        return self

    async def venue_positions(self, tokens: Sequence[str]) -> dict[str, Decimal]:
        """The account's position in each instrument asked (0 where it holds none), and in any
        other it holds (the answer lists the account: the engine warns of one it has no record
        of), from one `private/get_positions` for every currency (`any`)."""
        raw = await self.session.call_retrying("private/get_positions", {"currency": "any"})
        try:
            held = {p.instrument_name: _held(p) for p in _decode_positions(raw)}
        except _UNREADABLE as exc:
            raise _unreadable("positions", exc) from None
        return {token: held.get(token, Decimal(0)) for token in tokens} | {
            name: size for name, size in held.items() if size != 0
        }

    @property
    def delivery(self) -> DeribitExecution:
        """Expired options and futures settle at the delivery price the venue publishes."""
        return self

    @property
    def funding(self) -> DeribitExecution:
        """Perpetuals pay funding, listed in the account's history."""
        return self

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        method = "private/buy" if order.request.side.value == "buy" else "private/sell"
        raw = await self.session.call(method, self.order_params(order), bucket="matching", cost=1)
        return self._result(raw, method)

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        """`private/edit`: a new price and/or size for a resting order (§1.7)."""
        if order.order_id is None:
            raise OrderRejected(
                "the venue has not named this order yet", venue=VENUE, client_order_id=order.client_order_id
            )
        inst = self.registry.require(VENUE, order.request.instrument, client_order_id=order.client_order_id)
        new_price = price if price is not None else order.price
        new_size = size if size is not None else order.size
        inst.check_order(new_price, new_size, client_order_id=order.client_order_id)
        params: dict[str, Any] = {"order_id": order.order_id, "amount": _num(new_size)}
        if new_price is not None:
            params["price"] = _num(new_price)
        raw = await self.session.call("private/edit", params, bucket="matching", cost=1)
        return self._result(raw, "private/edit")

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        if order.order_id is not None:
            raw = await self.session.call(
                "private/cancel", {"order_id": order.order_id}, bucket="matching", cost=1
            )
            try:
                return [order_update_from(_decode_order(raw), self.clock())]
            except _UNREADABLE as exc:
                raise VenueError(f"private/cancel: unreadable answer ({exc})", venue=VENUE) from None
        # Not named yet (its placement's answer was lost): labels are unique, so cancel by label;
        # the order's state then arrives through user.orders.
        await self.session.call(
            "private/cancel_by_label", {"label": order.client_order_id}, bucket="matching", cost=1
        )
        return []

    async def cancel_all(self, instrument: str) -> int:
        """Cancel every open order on `instrument`; returns how many the venue cancelled."""
        raw = await self.session.call(
            "private/cancel_all_by_instrument", {"instrument_name": instrument}, bucket="matching", cost=1
        )
        try:
            # Typed: the answer is a count (VENUES.md §1.7, cancel), and a typed parse never recurses.
            count: int = msgspec.json.decode(raw, type=int)
        except _UNREADABLE as exc:
            raise _unreadable("cancel all", exc) from None
        return count

    async def open_orders(self) -> list[OrderUpdate]:
        """Every open order of the account, per currency (`private/get_open_orders_by_currency`).
        An answer that is not a list is unreadable (`VenueError`); one order in it that cannot be
        read (or makes no sense: an unknown `order_state`, `filled_amount` above `amount`) is
        left out, counted (`orders_refused`) and logged (`orders.record_refused`): the engine
        then asks about each of ours the list did not show (`order_status`, by its id), whose
        unreadable answer concludes nothing, so a record left out never reads as an order gone."""
        out: list[OrderUpdate] = []
        for currency in self.currencies:
            raw = await self.session.call_retrying(
                "private/get_open_orders_by_currency", {"currency": currency}
            )
            now = self.clock()
            try:
                check_text(raw, VENUE, "open orders")  # the records' strings are read one by one
                records = _decode_order_records(raw)
            except _UNREADABLE as exc:
                raise _unreadable("open orders", exc) from None
            read, _ = read_records(
                records,
                functools.partial(_order_record, now=now),
                log=_log,
                event="orders.record_refused",
                venue=VENUE,
                action=ORDER_LEFT_OUT,
                on_refused=self._order_refused,
            )
            out += read
        return out

    def _order_refused(self) -> None:
        self.orders_refused += 1  # as it is refused: a bug ending the loop later leaves it counted

    # -- reconciliation (after a reconnect or a restart) ----------------------------------------
    async def order_status(self, order: Order) -> list[PrivateEvent]:
        """The venue's current report of one of our orders (`private/get_order_state`, or
        `private/get_order_state_by_label` while the venue had not named it to us); empty when
        the venue has no such order (it never arrived)."""
        now = self.clock()
        if order.order_id is not None:
            try:
                raw = await self.session.call_retrying(
                    "private/get_order_state", {"order_id": order.order_id}
                )
            except OrderRejected as exc:
                if exc.code == 10004:  # order_not_found
                    return []
                raise
            try:
                return [order_update_from(_decode_order(raw), now)]
            except _UNREADABLE as exc:
                raise _unreadable("order state", exc) from None
        inst = self.registry.get(VENUE, order.request.instrument)
        currency = inst.base if inst is not None else order.request.instrument.split("-")[0]
        raw = await self.session.call_retrying(
            "private/get_order_state_by_label", {"currency": currency, "label": order.client_order_id}
        )
        try:
            return [order_update_from(o, now) for o in _decode_orders(raw)]
        except _UNREADABLE as exc:
            raise _unreadable("order state by label", exc) from None

    async def recent_fills(self, since_ns: int) -> list[Fill]:
        """Our fills since `since_ns`, every currency, oldest first
        (`private/get_user_trades_by_currency_and_time`, `sorting` asc, `page_size` a page).

        Deribit answers this method from two stores (docs.deribit.com/articles/accessing-
        historical-trades-orders): without `historical`, the recent trades, kept 24 hours; with
        `historical: true`, every trade, but only after a short delay for indexing. So the part
        of the window older than `_RECENT_MS` (23 h) is read with `historical: true`, the rest
        without, each trade taken once by its id and order (a trade between two orders of ours
        is listed once per order, under one id: a fill of each). Before, a window reaching
        further back than 24 hours (a long downtime, an old open order) silently missed the
        older fills.

        A page is followed by the next from its last trade's millisecond, that millisecond
        included (a page may end among several trades of one millisecond: the next page would
        skip the others from one past it). A page all in the one millisecond it starts from
        cannot move on so: that millisecond is asked again newest first (`sorting` desc), and
        the trades of it count as all read only when the two answers prove it (`_unproven`);
        otherwise the trades between them are lost, loudly (`fills.history_truncated`). Paging
        goes on from the next millisecond, never past the part's end: a start after the end is
        no history (an empty page from the simulator, a refusal from a venue that checks the
        range, failing the whole catch-up).

        A page that is not a page of trades is an unreadable answer (`VenueError`); one trade
        in it that cannot be read (a field missing or of the wrong type, a number out of range,
        no trade id) is that record's problem: left out, counted (`trades_refused`) and logged
        (`fills.record_refused`, with its ids when they can be read), the others booked. Its
        time, when readable and within the window asked, still pages the history; a record
        stamped outside that window (before the time asked from, after the end asked to) is
        refused and pages nothing: one stamped in the future ended the paging, silently, and
        every later trade was lost. A page with more to come that cannot
        move it on (its records all hide their time, or all lie before the time asked from) stops
        that part of the history, loudly (`fills.history_truncated`), as do `max_pages` pages:
        never the same page asked again and again."""
        out: list[Fill] = []
        now_ms = self.clock() // 1_000_000
        end_ms = now_ms + 1_000
        cut = now_ms - _RECENT_MS
        from_ms = since_ns // 1_000_000
        for currency in self.currencies:
            seen: set[tuple[str, str]] = set()  # (trade id, order id): a page's first trades repeat
            refused: set[bytes] = set()  # records already counted, met again on the next page
            history = _TradeHistory(currency, (from_ms, end_ms), seen, refused, out)
            if from_ms < cut:
                await self._read_trades(history, from_ms, cut, historical=True)
            await self._read_trades(history, max(from_ms, cut), end_ms, historical=False)
        return out

    async def _read_trades(
        self, history: _TradeHistory, start_ms: int, end_ms: int, *, historical: bool
    ) -> None:
        """Our trades in `history.currency` within [start_ms, end_ms], from the store `historical`
        says, into `history` (`recent_fills`)."""
        currency = history.currency
        pages = 0
        while True:
            page, now = await self._trade_page(currency, start_ms, end_ms, "asc", historical)
            last: int | None = None
            for record in page.trades:
                stamp = _stamp(record)
                if stamp is not None and start_ms <= stamp <= end_ms:
                    last = stamp if last is None else max(last, stamp)
            self._take(page.trades, now, history.refused, history.window, history.seen, history.out)
            if not page.has_more:
                return
            pages += 1
            # Every break while the venue says there is more is said: never a silent end.
            if last is None or pages >= self.max_pages:
                stop = (
                    "a page with more to come and no trade in it"
                    if not page.trades
                    else "a page with more to come, no trade in it with a readable time within "
                    f"the history asked for ({start_ms} to {end_ms})"
                    if last is None
                    else f"more than {self.max_pages} pages"
                )
                self._truncated(currency, start_ms, historical, stop)
                return
            if last == start_ms:
                # A whole page in one millisecond: its newest trades, newest first (taken in the
                # venue's order, oldest first, after the first page's).
                pages += 1
                tail, now = await self._trade_page(currency, last, last, "desc", historical)
                self._take(tail.trades[::-1], now, history.refused, history.window, history.seen, history.out)
                why = _unproven(page.trades, tail)
                if why is not None:
                    self._truncated(currency, start_ms, historical, why)
                if last == end_ms:
                    return  # the part's last millisecond read: nothing after it to ask for
                last += 1
            start_ms = last

    def _take(
        self,
        records: Sequence[msgspec.Raw],
        now: int,
        refused: set[bytes],
        window: tuple[int, int],
        seen: set[tuple[str, str]],
        out: list[Fill],
    ) -> None:
        """The fills of a page's records (`_trade_record`) into `out`, each (trade, order) once."""
        for record in records:
            fill = self._trade_record(record, now, refused, window)
            if fill is None:
                continue
            key = (fill.trade_id, fill.order_id or "")
            if key not in seen:
                seen.add(key)
                out.append(fill)

    async def _trade_page(
        self, currency: str, start_ms: int, end_ms: int, sorting: str, historical: bool
    ) -> tuple[_TradePage, int]:
        """One page of our trades in `currency` within [start_ms, end_ms] (`start_ms <= end_ms`)
        from the recent or the historical store, its envelope read (each record is read on its
        own), and the local time it came at."""
        raw = await self.session.call_retrying(
            "private/get_user_trades_by_currency_and_time",
            {
                "currency": currency,
                "start_timestamp": start_ms,
                "end_timestamp": end_ms,
                "count": self.page_size,
                "sorting": sorting,
                "historical": historical,
            },
        )
        now = self.clock()
        try:
            check_text(raw, VENUE, "user trades")  # the records' strings are read one by one
            page: _TradePage = _decode_trade_page(raw)
        except _UNREADABLE as exc:
            raise _unreadable("user trades", exc) from None
        return page, now

    def _trade_record(
        self, record: msgspec.Raw, now: int, refused: set[bytes], window: tuple[int, int]
    ) -> Fill | None:
        """One record of the trade history as our fill; None for one that cannot be read or is
        stamped outside `window` (ms, both ends included: the history asked for), counted in
        `trades_refused` and logged, once per record within one `recent_fills`."""
        try:
            t: TradeData = _decode_trade(record)
            if not str(t.trade_id):
                # The trade id is what books a fill once: without one, every catch-up would
                # book it again.
                raise MalformedFrame(f"trade of order {t.order_id}: no trade_id", venue=VENUE)
            if not window[0] <= t.timestamp <= window[1]:
                raise MalformedFrame(
                    f"trade {t.trade_id}: stamped {t.timestamp}, outside the history asked for "
                    f"({window[0]} to {window[1]})",
                    venue=VENUE,
                )
            return fill_from(t, now)
        except RECORD_ERRORS as exc:
            key = bytes(record)
            if key not in refused:
                refused.add(key)
                self.trades_refused += 1
                log_refused_record(
                    _log, "fills.record_refused", venue=VENUE, raw=record, exc=exc, action=TRADE_LEFT_OUT
                )
            return None

    # -- expiries and funding ---------------------------------------------------------------------
    async def delivery_price(self, instrument: str) -> Decimal | None:
        """The price an expired instrument was delivered at, in its quote currency (USD for a
        future, the coin for a coin option), from the venue's delivery record
        (`public/get_last_settlements_by_instrument`, `type = delivery`: public, so a paper
        position settles at the same price). None while the venue has not delivered it.

        Read whole, not record by record: a delivery record left out would read as "not
        delivered yet", a false fact; an answer with one that cannot be read is unreadable
        (`VenueError`), asked again later."""
        raw = await self.session.call_retrying(
            "public/get_last_settlements_by_instrument",
            {"instrument_name": instrument, "type": "delivery", "count": 1},
        )
        try:
            page = _decode_settlements(raw)
        except _UNREADABLE as exc:
            raise _unreadable("delivery", exc) from None
        inst = self.registry.get(VENUE, instrument)
        option = inst is None or inst.is_option
        for item in page.settlements:
            if item.type == "delivery" and item.instrument_name == instrument and item.mark_price is not None:
                try:
                    # A future's delivery price divides its PnL (inverse): above 0; an option's
                    # is its value, 0 when it expired out of the money.
                    return check_delivery_price(item.mark_price, option=option, what=f"{instrument} delivery")
                except BadNumber as exc:
                    _log.error("settlement.delivery_refused", instrument=instrument, error=str(exc))
                    raise _unreadable("delivery", exc) from None
        return None

    async def funding_payments(self, since_ns: int) -> list[FundingPayment]:
        """The account's perpetual funding since `since_ns`: Deribit pays funding continuously
        into the session's realized PnL and books it at each settlement (daily, 08:00 UTC),
        where the settlement's `funding` is what the account's perpetual position received
        (negative: paid), in the base currency (Deribit API v2,
        `private/get_settlement_history_by_currency`, `type = settlement`; newest first, paged
        by `continuation`). The event id is the instrument and the settlement's time. Each
        spans the session before it (`span_ns`, 24 h): `OrderFlow.funding` splits it by the
        positions held over the session.

        A page that is not a page of records is an unreadable answer (`VenueError`); one
        record in it that cannot be read (a field missing or of the wrong type, a number that
        is none) or whose funding is no money is that record's problem: left out, counted
        (`funding_refused`) and logged (`funding.record_refused`, with its instrument and time
        when they can be read) once however many reads meet it again, the others booked (each
        once: the engine books a payment by its event id, which is the record's own). Before,
        one such record lost its whole page."""
        out: list[FundingPayment] = []
        since_ms = since_ns // 1_000_000
        for currency in self.currencies:
            params: dict[str, Any] = {"currency": currency, "type": "settlement", "count": 1000}
            tokens: set[str] = set()
            while True:
                raw = await self.session.call_retrying("private/get_settlement_history_by_currency", params)
                try:
                    check_text(raw, VENUE, "settlement history")  # the records' strings are read one by one
                    page = _decode_settlement_records(raw)
                except _UNREADABLE as exc:
                    raise _unreadable("settlement history", exc) from None
                stamps: list[int] = []
                for record in page.settlements:
                    try:
                        item: _Settlement = _decode_settlement(record)
                        stamps.append(item.timestamp)
                        name = item.instrument_name
                        if item.timestamp < since_ms or name is None or item.funding is None:
                            continue
                        amount = check_funding(item.funding, f"{name} funding")
                        position = None if item.position is None else check_funding(item.position, "position")
                    except RECORD_ERRORS as exc:  # BadNumber is a ValueError
                        self._refuse_settlement(record, exc)
                        continue
                    inst = self.registry.get(VENUE, name)
                    out.append(
                        FundingPayment(
                            venue=VENUE,
                            instrument=name,
                            event_id=f"{name}:{item.timestamp}",
                            ts_ns=item.timestamp * 1_000_000,
                            amount=amount,
                            currency=inst.settle if inst is not None else currency,
                            position=position,
                            # The whole session's funding, accrued every millisecond on the
                            # position held then: split over the session, not at its instant.
                            span_ns=_SESSION_NS,
                        )
                    )
                # Newest first: a page reaching back before `since_ms` is the last needed. One
                # whose records all hide their time says nothing of that: the next page is read
                # (the page cap bounds it); an empty one ends the history.
                oldest = min(stamps, default=since_ms if page.settlements else since_ms - 1)
                token = page.continuation
                if oldest < since_ms or not token or token == "none":
                    break
                if token in tokens or len(tokens) + 1 >= _MAX_SETTLEMENT_PAGES:
                    self.history_truncated += 1
                    _log.error(
                        "funding.history_truncated",
                        currency=currency,
                        pages=len(tokens) + 1,
                        repeated_token=token in tokens,
                    )
                    break
                tokens.add(token)
                params = {**params, "continuation": token}
        return out

    def _truncated(self, currency: str, from_ms: int, historical: bool, reason: str) -> None:
        """A trade history read short (trades maybe not caught up): counted, said at error level."""
        self.history_truncated += 1
        _log.error(
            "fills.history_truncated",
            venue=VENUE,
            currency=currency,
            from_ms=from_ms,
            historical=historical,
            reason=reason,
        )

    def _refuse_settlement(self, record: msgspec.Raw, exc: BaseException) -> None:
        """A settlement history record left out: counted, one error line naming it and why, the
        first time it is met; silent when a later read meets it again (the look-back reads it
        at every poll)."""
        said = self._funding_said
        if said is None:
            said = self._funding_said = SaidOnce(_REFUSED_KEPT)
        if not said.first(bytes(record)):
            return
        self.funding_refused += 1
        ids = _settlement_ids(record)
        _log.error(
            "funding.record_refused",
            venue=VENUE,
            instrument=ids.instrument_name,
            ts_ms=ids.timestamp,
            reason=str(exc),
            action="left out; the history's other records are booked",
        )

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        """Cancel an order that is not ours (the `foreign_orders = "cancel"` policy)."""
        await self.session.call("private/cancel", {"order_id": order_id}, bucket="matching", cost=1)
