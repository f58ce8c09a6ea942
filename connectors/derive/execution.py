"""Derive execution: signed orders over the session's WebSocket (VENUES.md §3.6).

`DeriveExecution` is the `ExecutionClient` the engine's gateway drives:

- `place`: the order is checked against the instrument (tick, amount step, minimum: from
  `public/get_instruments`), its action signed (`signing.OrderSigner`: EIP-712 over the trade
  module data, a fresh nonce, a signature expiry `signature_ttl_s` ahead, or the order's own
  time for a GTD order, since Derive expires every order at its signature's expiry), and sent as
  `private/order` with `label` = our client order id. Derive names the order (a UUID) in its
  answer, so there is no `prepare`: the private channels are matched by label, as on Deribit.
  The signed `max_fee` (USDC per unit) is the fee schedule's estimate for the order times
  `max_fee_margin`, at the last index price the tickers gave (an option's cap at its last mark:
  `fees.py`). A market order carries a signed worst price too (§3.6): the top of the book (or
  the mark) `market_slippage` beyond.
- `cancel`: `private/cancel` by order id, or `private/cancel_by_label` while the venue has not
  named the order yet (its placement's answer was lost).
- `edit`: refused. Derive has no amend: `private/replace` cancels the order and places a new
  one under a new order id, which is a cancel and a new order, and is better done as such.
- `cancel_all`, `open_orders` (the engine reconciles with it after every (re)subscription).
- Reconciliation, after a reconnect or a restart (`engine.runtime.live.LiveEngine._reconcile`):
  `order_status` (`private/get_order` by order id, 11006 "order does not exist" meaning the venue
  has no such order; `private/get_orders` by label while the venue had not named it to us),
  `recent_fills` (`private/get_trade_history` from a time, every page: the fills we missed while
  away, the engine books each once by trade id; a fill we had booked whose trade the chain
  reverted meanwhile is taken back with a `FillReversal`; a trade whose `tx_status` says neither,
  `timed_out`, is alerted, never booked; a record that cannot be read is left out, counted and
  logged, the others booked), `cancel_by_order_id` (an order that is not ours, for
  `foreign_orders = "cancel"`).

Answers become the engine's events (the order's state, and the fills its answer carries, each
fill reported once whichever path brings it first: `DeriveDecoder.order_result`); venue errors
become typed exceptions with the venue's code and message (`stream.map_error`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
import structlog

from tradingd.engine.venue import (
    MAX_PRICE,
    ORDER_LEFT_OUT,
    READ_ERRORS,
    RECORD_ERRORS,
    TRADE_LEFT_OUT,
    BadNumber,
    Fill,
    FillReversal,
    FundingPayment,
    FundingPayments,
    HeldFunding,
    Instrument,
    Order,
    OrderRejected,
    OrderType,
    OrderUpdate,
    PrivateEvent,
    SaidOnce,
    Side,
    TimeInForce,
    VenueError,
    VenueExecution,
    VenueRejected,
    VenueUnavailable,
    check_delivery_price,
    check_funding,
    check_text,
    log_refused_record,
    positive,
    read_records,
)

from .codec import (
    OrderData,
    TradeData,
    fill_from,
    order_update_from,
    reversal_from,
    tx_outcome,
)
from .fees import DeriveFees
from .instruments import VENUE
from .signing import DOMAINS, MIN_SIGNATURE_TTL_S, Credentials, NonceSource, OrderSigner, SignedOrder

if TYPE_CHECKING:
    from .stream import DeriveSession

__all__ = ["DeriveExecution"]

_ORDER_NOT_FOUND: Final = 11006  # §3.7 "order does not exist"
_HISTORY_SLACK_MS: Final = 60_000  # a history window ends this far past our clock (clock skew)
_T = TypeVar("_T")
# What reading an answer, and one record of a list, may raise: engine/venue/records.py.
_UNREADABLE: Final = READ_ERRORS
_decode_order: Any = msgspec.json.Decoder(OrderData, strict=False).decode
_log = structlog.get_logger("tradingd.derive")


class _Pagination(msgspec.Struct):
    """`pagination` of the history methods: items across all pages, and pages."""

    count: int = 0
    num_pages: int = 0


class _Orders(msgspec.Struct):
    """`private/get_orders` (paged): the orders of one label, read whole (a lookup of one
    order: a record it cannot read must not read as "no such order")."""

    orders: list[OrderData]
    subaccount_id: int | None = None
    pagination: _Pagination | None = None


class _OpenOrders(msgspec.Struct):
    """`private/get_open_orders` (no pagination): its envelope, each order read on its own."""

    orders: list[msgspec.Raw]
    subaccount_id: int | None = None


class _Trades(msgspec.Struct):
    """`private/get_trade_history`: a page of our trades, the envelope read, each trade on its
    own (`recent_fills`: a record it cannot read is that record's problem)."""

    trades: list[msgspec.Raw]
    subaccount_id: int | None = None
    pagination: _Pagination | None = None


class _Cancelled(msgspec.Struct):
    cancelled_orders: int


class _FundingEvent(msgspec.Struct):
    """An item of `events` in `private/get_funding_history`: Derive's `FundingPaymentSchema`
    (`funding`, `instrument_name`, `pnl`, `timestamp` ms; its OpenAPI spec, as generated in
    8ball030/derive_client `derive_client/data_types/generated_models.py`)."""

    funding: str
    instrument_name: str
    timestamp: int
    pnl: str | None = None


class _Funding(msgspec.Struct):
    """`private/get_funding_history`: a page of funding payments, the envelope read, each
    payment on its own (`funding_payments`)."""

    events: list[msgspec.Raw]
    pagination: _Pagination | None = None


class _FundingInstrument(msgspec.Struct):
    """The instrument of a funding record that cannot be read, when that much can be."""

    instrument_name: str | None = None


class _FundingTime(msgspec.Struct):
    """The time of a funding record that cannot be read, when that much can be."""

    timestamp: int | None = None


class _OptionDetails(msgspec.Struct):
    """`option_details` of `public/get_instrument` (VENUES.md §3: strike a string,
    `option_type` "C"|"P", `settlement_price` null until the option has settled)."""

    strike: str
    option_type: str
    settlement_price: str | None = None


class _InstrumentDetails(msgspec.Struct):
    instrument_name: str
    option_details: _OptionDetails | None = None


class _Position(msgspec.Struct):
    """One item of `private/get_positions` (§3.6; perps/http_positions_result_eth.json): `amount`
    signed, in the instrument's units (the units our fills are booked in)."""

    instrument_name: str
    amount: Decimal


class _Positions(msgspec.Struct):
    positions: list[_Position]
    # Whose positions these are: an answer for another subaccount (or one that does not say)
    # is no word on ours, and is refused (`venue_positions`).
    subaccount_id: int | None = None


_decode_positions: Any = msgspec.json.Decoder(_Positions, strict=False).decode
# Derive's contracts hold amounts as 18-decimal int256 (VENUES.md §3.6): beyond it, no amount.
_MAX_AMOUNT: Final = Decimal(2**255) / Decimal(10**18)
_decode_funding_page: Any = msgspec.json.Decoder(_Funding, strict=False).decode
_decode_funding_event: Any = msgspec.json.Decoder(_FundingEvent, strict=False).decode
_decode_funding_instrument: Any = msgspec.json.Decoder(_FundingInstrument, strict=False).decode
_decode_funding_time: Any = msgspec.json.Decoder(_FundingTime, strict=False).decode
# Bad funding records remembered as counted and logged (`funding_payments`): each is said once,
# not at every poll while the look-back still holds it; the oldest forgotten beyond this many.
_REFUSED_KEPT: Final = 1024


def _decode_funding(raw: Any) -> _Funding:
    """A page of the funding history, its records left to be read one by one."""
    check_text(raw, VENUE, "private/get_funding_history")  # their strings are read one by one
    page: _Funding = _decode_funding_page(raw)
    return page


def _funding_ids(raw: msgspec.Raw) -> tuple[str | None, int | None]:
    """The instrument and time of a funding record, each as far as it can be read on its own
    (a time of the wrong type leaves the instrument known, and the other way round)."""
    try:
        instrument = _decode_funding_instrument(raw).instrument_name
    except READ_ERRORS:
        instrument = None
    try:
        ts_ms = _decode_funding_time(raw).timestamp
    except READ_ERRORS:
        ts_ms = None
    return instrument, ts_ms


def _hold(holds: Sequence[tuple[str | None, int | None]]) -> Callable[[str, int], bool]:
    """Whether a payment (instrument, ms) is held back by bad records of these ids: its own
    (instrument, ms), every ms of an instrument whose record hides its time, every instrument of
    a ms whose record hides its instrument, everything for a record that hides both."""
    pairs = {h for h in holds if h[0] is not None and h[1] is not None}
    instruments = {i for i, t in holds if t is None}
    times = {t for i, t in holds if i is None}
    if None in instruments:
        return lambda instrument, ts_ms: True
    return lambda instrument, ts_ms: (
        (instrument, ts_ms) in pairs or instrument in instruments or ts_ms in times
    )


def _held_scope(instrument: str | None, ts_ms: int | None) -> str:
    """What a bad funding record with these ids holds back (its log line)."""
    if instrument is None and ts_ms is None:
        return "every record of the history"
    if ts_ms is None:
        return f"every record of {instrument}"
    if instrument is None:
        return f"every record at {ts_ms}"
    return f"the records of {instrument} at {ts_ms}"


_decode_instrument: Any = msgspec.json.Decoder(_InstrumentDetails, strict=False).decode
_decode_orders: Any = msgspec.json.Decoder(_Orders, strict=False).decode
_decode_open_orders: Any = msgspec.json.Decoder(_OpenOrders, strict=False).decode
_decode_trades_page: Any = msgspec.json.Decoder(_Trades, strict=False).decode
_decode_trade: Any = msgspec.json.Decoder(TradeData, strict=False).decode


def _decode_trades(raw: Any) -> _Trades:
    """A page of the trade history, its records left to be read one by one."""
    check_text(raw, VENUE, "private/get_trade_history")  # their strings are read one by one
    page: _Trades = _decode_trades_page(raw)
    return page


_decode_cancelled: Any = msgspec.json.Decoder(_Cancelled).decode


def _oldest_first(trades: list[TradeData]) -> list[TradeData]:
    """A trade history (each trade once), oldest first and, within a millisecond, in the venue's
    matching order: the order a ledger that averages its cost must book them in (long 1 @90, then
    in one millisecond buy 1 @100 and sell 1 @101: 6 realized in that order, 11 the other way).
    Derive's timestamps are milliseconds, which several trades share under load, and its trade
    ids are random UUIDs (no order), so the matching order is the one the history lists them in.
    Derive documents no order for `private/get_trade_history`; the direction is read from the
    timestamps: never rising with a fall, newest first (the simulator's order: reversed here);
    never falling with a rise, oldest first (kept). All in one millisecond (or none or one
    trade), no evidence either way: taken as newest first, the simulator's order. Then a stable
    sort on the timestamp alone. A listing that goes both ways has no order to keep: it falls
    back to the trade id within a millisecond (the same order on every read, not the matching
    one). The records of one trade that filled two of our orders are matched at once: they come
    together, by order id, whatever order the venue lists them in."""
    rises = falls = False
    for earlier, later in itertools.pairwise(trades):
        rises = rises or later.timestamp > earlier.timestamp
        falls = falls or later.timestamp < earlier.timestamp
    if rises and falls:  # mixed: no direction to read the matching order from
        return sorted(trades, key=lambda t: (t.timestamp, str(t.trade_id), t.order_id))
    listed = trades if rises else trades[::-1]  # oldest first; newest first without evidence
    first_seen: dict[str, int] = {}
    for i, t in enumerate(listed):
        first_seen.setdefault(str(t.trade_id), i)
    # The timestamp, then the listed (matching) order: a stable sort on the time alone, except
    # that one trade's records sit together, by order id.
    return sorted(listed, key=lambda t: (t.timestamp, first_seen[str(t.trade_id)], t.order_id))


class DeriveExecution(VenueExecution):
    """Signs and sends orders through a `DeriveSession` and reads its answers (module
    docstring). `signer` and `fees` are injectable (tests); by default they come from the
    session's credentials and settings. History reads ask for `page_size` items a page (the
    venue's maximum, 1000) and read at most `max_pages` pages."""

    venue = VENUE
    page_size = 1000
    max_pages = 200
    funding_refused = 0  # funding records that could not be read or are no money (each once, logged)
    funding_held = 0  # good funding records held back with a bad one at the last read (see there)
    # Bad funding records counted and logged so far (`_REFUSED_KEPT` at most, oldest forgotten).
    _funding_said: SaidOnce | None = None
    trades_refused = 0  # trade history records that could not be read (each read, logged)
    orders_refused = 0  # open orders records that could not be read (each read, logged)

    def __init__(
        self,
        session: DeriveSession,
        *,
        signer: OrderSigner | None = None,
        fees: DeriveFees | None = None,
    ) -> None:
        self.session = session
        self.registry = session.registry
        self.details = session.details
        self.settings = settings = session.settings
        self.clock = session.now_ns
        self._signer = signer
        if signer is None and session.credentials is not None:
            self._signer = self._make_signer(session.credentials)
        base = fees if fees is not None else DeriveFees.from_config(settings.fees)
        self.fees = base.with_details(self.details.get)

    def _make_signer(self, credentials: Credentials) -> OrderSigner:
        clock = self.clock
        return OrderSigner(
            credentials,
            DOMAINS[self.settings.environment],
            nonces=NonceSource(clock_ms=lambda: clock() // 1_000_000),
            clock_s=lambda: clock() / 1e9,
            signature_ttl_s=self.settings.signature_ttl_s,
        )

    @property
    def signer(self) -> OrderSigner:
        if self._signer is None:
            # A VenueError too: a reconciliation that needs the subaccount logs it and goes on.
            raise VenueRejected(
                "no Derive credentials: set DERIVE_WALLET, DERIVE_SESSION_KEY and DERIVE_SUBACCOUNT_ID",
                venue=VENUE,
                code="no_credentials",
            )
        return self._signer

    @property
    def subaccount_id(self) -> int:
        return self.signer.credentials.subaccount_id

    # -- signing ----------------------------------------------------------------------------
    def sign(self, order: Order) -> SignedOrder:
        """The signed `private/order` of an engine order (validated first). Raises
        `OrderRejected` naming the problem; nothing is sent."""
        req = order.request
        cid = req.client_order_id
        name = req.instrument

        def reject(reason: str) -> OrderRejected:
            return OrderRejected(reason, venue=VENUE, instrument=name, client_order_id=cid)

        inst = self.registry.require(VENUE, name, client_order_id=cid)
        info = self.details.require(name, client_order_id=cid)
        inst.check_order(req.price, req.size, client_order_id=cid)
        if req.size > info.maximum_amount:
            raise reject(f"size {req.size} is above the instrument's maximum amount {info.maximum_amount}")
        buy = req.side is Side.BUY
        expiry: int | None = None
        if req.type is OrderType.MARKET:
            price = self._worst_price(inst, buy, cid)
            order_type = "market"
            tif = "fok" if req.time_in_force is TimeInForce.FOK else "ioc"
        else:
            assert req.price is not None
            price = req.price
            order_type = "limit"
            tif = {TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}.get(
                req.time_in_force, "gtc"
            )
            if req.time_in_force is TimeInForce.GTD:
                assert req.expire_at_ns is not None
                expiry = req.expire_at_ns // 1_000_000_000
                if expiry - self.clock() // 1_000_000_000 < MIN_SIGNATURE_TTL_S:
                    raise reject(
                        f"a GTD order on Derive lives until its signature expires, which must be at least "
                        f"{MIN_SIGNATURE_TTL_S} s ahead (§3.6)"
                    )
            if req.post_only:
                if tif != "gtc":
                    raise reject(f"post-only cannot be combined with {req.time_in_force.value}")
                tif = "post_only"
        index = self.session.index_prices.get(inst.base)
        max_fee = self.fees.max_fee(
            inst,
            price=price,
            size=req.size,
            index=index,
            margin=self.settings.max_fee_margin,
            mark=self.session.mark_prices.get(inst.symbol),  # an option's fee cap is on its mark
        )
        return self.signer.sign_order(
            info,
            direction="buy" if buy else "sell",
            amount=req.size,
            limit_price=price,
            max_fee=max_fee,
            order_type=order_type,  # type: ignore[arg-type]
            time_in_force=tif,  # type: ignore[arg-type]
            label=cid,
            reduce_only=req.reduce_only,
            signature_expiry_sec=expiry,
        )

    def _worst_price(self, inst: Instrument, buy: bool, cid: str) -> Decimal:
        """A market order's signed limit: the far side's top (else the mark) `market_slippage`
        beyond, on the tick grid, at least one tick."""
        reference: float | None = None
        book = self.session.decoder.book(inst.symbol)
        if book is not None and book.valid:
            _, _, ask, _ = book.top()
            reference = ask if buy else book.top()[0]
        if reference is None:
            reference = self.session.mark_prices.get(inst.symbol)
        if reference is None or reference <= 0:
            raise OrderRejected(
                f"a market order on {inst.symbol} needs a reference price to sign its worst price "
                "(§3.6): subscribe to its book or ticker, or send a limit order",
                venue=VENUE,
                instrument=inst.symbol,
                client_order_id=cid,
            )
        slip = self.settings.market_slippage
        raw = Decimal(repr(reference)) * (1 + slip if buy else 1 - slip)
        price = inst.round_price(raw, up=buy)
        return price if price > 0 else inst.tick_size

    # -- requests ---------------------------------------------------------------------------
    def _result(self, raw: Any, what: str) -> list[PrivateEvent]:
        try:
            events = self.session.decoder.order_result(raw, self.clock())
        except _UNREADABLE as exc:
            # The order was sent and answered, but the answer is unreadable: outcome unknown.
            raise VenueError(f"{what}: unreadable answer ({exc})", venue=VENUE, code="malformed") from None
        return [e for e in events if isinstance(e, PrivateEvent)]

    def _require_login(self, what: str) -> None:
        # Orders wait for the login (§3.5): sent before it, the venue would only refuse them.
        if not self.session.trading:
            raise VenueUnavailable(f"{what}: not logged in to Derive (yet)", venue=VENUE)

    # -- the venue SPI's capabilities (engine.venue.spi.VenueExecution) --------------------------
    def prepare(self, order: Order) -> None:
        """No id before sending: the venue assigns it on receiving the order."""
        return

    @property
    def positions(self) -> DeriveExecution:
        """The subaccount's positions (`private/get_positions`): a reconciliation compares them
        with ours (`venue_positions`)."""
        return self

    async def venue_positions(self, tokens: Sequence[str]) -> dict[str, Decimal]:
        """The subaccount's position in each instrument asked (0 where it holds none), and in
        any other it holds (the answer lists the subaccount: the engine warns of one it has no
        record of)."""
        raw = await self.session.call_retrying("private/get_positions", {"subaccount_id": self.subaccount_id})
        try:
            answer = _decode_positions(raw)
        except _UNREADABLE as exc:
            raise VenueError(f"positions: unreadable answer ({exc})", venue=VENUE, code="malformed") from None
        if answer.subaccount_id != self.subaccount_id:
            raise VenueError(
                f"positions: answer for subaccount {answer.subaccount_id}, not ours ({self.subaccount_id})",
                venue=VENUE,
                code="malformed",
            )
        items = answer.positions
        held: dict[str, Decimal] = {}
        for p in items:
            if not p.amount.is_finite() or abs(p.amount) >= _MAX_AMOUNT:
                raise VenueError(
                    f"positions: unreadable answer ({p.instrument_name}: amount {p.amount})",
                    venue=VENUE,
                    code="malformed",
                )
            held[p.instrument_name] = p.amount
        return {token: held.get(token, Decimal(0)) for token in tokens} | {
            name: amount for name, amount in held.items() if amount != 0
        }

    @property
    def delivery(self) -> DeriveExecution:
        """Expired options and futures settle at the delivery price the venue publishes."""
        return self

    @property
    def funding(self) -> DeriveExecution:
        """Perpetuals pay funding, listed in the account's history."""
        return self

    async def place(self, order: Order) -> Sequence[PrivateEvent]:
        signed = self.sign(order)
        self._require_login("private/order")
        raw = await self.session.call("private/order", signed.params(), instrument=signed.instrument_name)
        return self._result(raw, "private/order")

    async def edit(
        self, order: Order, *, price: Decimal | None, size: Decimal | None
    ) -> Sequence[PrivateEvent]:
        raise OrderRejected(
            "Derive has no amend: private/replace cancels the order and places a new one under a new "
            "order id; cancel this order and place a new one",
            venue=VENUE,
            instrument=order.request.instrument,
            client_order_id=order.client_order_id,
        )

    async def cancel(self, order: Order) -> Sequence[PrivateEvent]:
        name = order.request.instrument
        self._require_login("cancel")
        if order.order_id is not None:
            raw = await self.session.call(
                "private/cancel",
                {"subaccount_id": self.subaccount_id, "instrument_name": name, "order_id": order.order_id},
                instrument=name,
            )
            try:
                return [order_update_from(_decode_order(raw), self.clock())]
            except _UNREADABLE as exc:
                raise VenueError(f"private/cancel: unreadable answer ({exc})", venue=VENUE) from None
        # Not named yet (its placement's answer was lost): our labels are unique, so cancel by
        # label; the order's state then arrives through {subaccount}.orders.
        await self.session.call(
            "private/cancel_by_label",
            {"subaccount_id": self.subaccount_id, "label": order.client_order_id, "instrument_name": name},
            instrument=name,
        )
        return []

    async def cancel_all(self, instrument: str | None = None) -> int | None:
        """Cancel every open order (on `instrument`, when given). Returns how many the venue
        cancelled; None for all instruments (`private/cancel_all` answers only "ok")."""
        if instrument is None:
            await self.session.call("private/cancel_all", {"subaccount_id": self.subaccount_id})
            return None
        raw = await self.session.call(
            "private/cancel_by_instrument",
            {"subaccount_id": self.subaccount_id, "instrument_name": instrument},
            instrument=instrument,
        )
        try:
            count: int = _decode_cancelled(raw).cancelled_orders
        except _UNREADABLE as exc:
            raise VenueError(
                f"private/cancel_by_instrument: unreadable answer ({exc})", venue=VENUE
            ) from None
        return count

    async def open_orders(self) -> list[OrderUpdate]:
        """Every open order of the subaccount (`private/get_open_orders`). An answer that is not
        a list of orders is unreadable (`VenueError`); one order in it that cannot be read is
        left out, counted (`orders_refused`) and logged (`orders.record_refused`): the engine
        then asks about each of ours the list did not show (`order_status`, by its id), whose
        unreadable answer concludes nothing, so a record left out never reads as an order gone."""
        raw = await self.session.call_retrying(
            "private/get_open_orders", {"subaccount_id": self.subaccount_id}
        )
        try:
            check_text(raw, VENUE, "open orders")  # the records' strings are read one by one
            records = _decode_open_orders(raw).orders
        except _UNREADABLE as exc:
            raise VenueError(f"open orders: unreadable answer ({exc})", venue=VENUE) from None
        now = self.clock()
        out, _ = read_records(
            records,
            lambda record: order_update_from(_decode_order(record), now),
            log=_log,
            event="orders.record_refused",
            venue=VENUE,
            action=ORDER_LEFT_OUT,
            strict=False,
            on_refused=self._order_refused,
        )
        return out

    def _order_refused(self) -> None:
        self.orders_refused += 1  # as it is refused: a bug ending the loop later leaves it counted

    # -- reconciliation (after a reconnect or a restart) ----------------------------------------
    async def _pages(
        self,
        method: str,
        params: dict[str, Any],
        decode: Callable[[Any], Any],
        items: Callable[[Any], list[_T]],
    ) -> list[_T]:
        """Every item of a paged history method (§3.6 `page`, `page_size`, `pagination`), in the
        venue's order. Derive answers the LAST page for a page beyond `num_pages`, so the pages
        are counted, never read until one comes back empty. More than `max_pages` pages: what
        was read, and an error in the log."""
        out: list[_T] = []
        page = 1
        while True:
            raw = await self.session.call_retrying(
                method, {**params, "page": page, "page_size": self.page_size}
            )
            try:
                result = decode(raw)
            except _UNREADABLE as exc:
                raise VenueError(f"{method}: unreadable answer ({exc})", venue=VENUE) from None
            batch = items(result)
            out.extend(batch)
            pagination: _Pagination | None = result.pagination
            if pagination is None:
                if len(batch) < self.page_size:
                    return out
            elif page >= pagination.num_pages:
                return out
            if page >= self.max_pages:
                self.session.log.error(
                    "history.truncated", method=method, pages=page, items=len(out), page_size=self.page_size
                )
                return out
            page += 1

    async def order_status(self, order: Order) -> list[PrivateEvent]:
        """The venue's current report of one of our orders that is not among the open ones
        (filled, cancelled or expired while we were away): `private/get_order` by its order id,
        or `private/get_orders` by its label (our client order id) while the venue had not named
        it to us. Empty when the venue has no such order (it never arrived)."""
        self._require_login("order status")
        now = self.clock()
        cid = order.client_order_id
        if order.order_id is not None:
            try:
                raw = await self.session.call_retrying(
                    "private/get_order", {"subaccount_id": self.subaccount_id, "order_id": order.order_id}
                )
            except OrderRejected as exc:
                if exc.code == _ORDER_NOT_FOUND:
                    return []
                raise
            try:
                return [order_update_from(_decode_order(raw), now)]
            except _UNREADABLE as exc:
                raise VenueError(f"private/get_order: unreadable answer ({exc})", venue=VENUE) from None
        found = await self._pages(
            "private/get_orders",
            {"subaccount_id": self.subaccount_id, "label": cid, "instrument_name": order.request.instrument},
            _decode_orders,
            lambda r: r.orders,
        )
        mine = [o for o in found if o.label == cid]
        if len(mine) > 1:
            # Our labels are unique: another client of the subaccount reused one. The newest
            # is the one this order can be (its placement was the last thing we sent).
            self.session.log.warning("order.label_reused", client_order_id=cid, orders=len(mine))
            mine = [max(mine, key=lambda o: o.creation_timestamp or 0)]
        try:
            return [order_update_from(o, now) for o in mine]
        except _UNREADABLE as exc:
            raise VenueError(f"private/get_orders: unreadable answer ({exc})", venue=VENUE) from None

    async def recent_fills(self, since_ns: int) -> list[Fill | FillReversal]:
        """Our fills since `since_ns`, oldest first, a millisecond's in the venue's matching order
        (`private/get_trade_history` from that time, every page; each trade once). Derive
        documents no order for the history: its direction is read from the timestamps (newest
        first, as the simulator lists, or oldest first); a history all in one millisecond shows
        none and is taken as newest first (the simulator's order), and one that goes both ways
        falls back to the trade id within a millisecond. A trade whose transaction was reverted
        (`codec.tx_outcome`) is not a fill: it is listed as its `FillReversal`, which the engine
        applies only to an order holding that fill (one reported before the reversal, in this
        process or in the journal of an earlier one). A trade whose `tx_status` says neither
        (`timed_out`) is left out and alerted (`fill.tx_status_unknown`).

        A page that is not a page of trades is an unreadable answer (`VenueError`); one trade
        in it that cannot be read (not an object, a field missing or of the wrong type, a number
        that is none) is that record's problem: left out, counted (`trades_refused`) and logged
        (`fills.record_refused`, with its ids when they can be read), the others booked. The
        pages are counted by the envelope's `pagination`, whatever their records hold."""
        self._require_login("trade history")
        now = self.clock()
        records = await self._pages(
            "private/get_trade_history",
            {
                "subaccount_id": self.subaccount_id,
                "from_timestamp": max(0, since_ns // 1_000_000),
                # A fixed end: pages stay put while new trades print (those come on the channel).
                "to_timestamp": now // 1_000_000 + _HISTORY_SLACK_MS,
            },
            _decode_trades,
            lambda r: r.trades,
        )
        unique: dict[tuple[str, str], TradeData] = {}
        unknown: list[TradeData] = []
        for record in records:
            t = self._trade_record(record, now)
            if t is None:
                continue
            key = (str(t.trade_id), t.order_id)
            if key in unique:
                continue  # a page shifted by a new trade repeats one; one trade may fill two orders
            unique[key] = t
            if tx_outcome(t) == "unknown":
                unknown.append(t)
        decoder = self.session.decoder
        for t in unknown:
            key = (str(t.trade_id), t.order_id)
            # Reported as a fill in this process, or not known here (the journal may hold it):
            # what the channel knows of it too (`alert_unknown_tx_status`).
            decoder.alert_unknown_tx_status(t, reported=key in decoder._our_fills)
        # Oldest first, a millisecond's in the venue's matching order (read from the listing's
        # direction: `_oldest_first`), the order the ledger must book them in.
        ordered = _oldest_first([t for t in unique.values() if tx_outcome(t) != "unknown"])
        out: list[Fill | FillReversal] = [
            fill_from(t, now) if tx_outcome(t) == "fill" else reversal_from(t, now) for t in ordered
        ]
        # Into the decoder's memory of our trades, so that the channel bringing one of these
        # again is a repeat, not a second fill or a second reversal.
        decoder._our_trades(ordered, now)
        reverted = [e.trade_id for e in out if isinstance(e, FillReversal)]
        if reverted:
            self.session.log.info("fills.reverted_trades_listed", trades=reverted)
        return out

    def _trade_record(self, record: msgspec.Raw, now: int) -> TradeData | None:
        """One record of the trade history, read and checked as what it becomes (a fill, a
        reversal); None for one that cannot be (counted in `trades_refused`, logged)."""
        try:
            t: TradeData = _decode_trade(record)
            outcome = tx_outcome(t)
            if outcome == "fill":
                fill_from(t, now)
            elif outcome == "reverted":
                reversal_from(t, now)
            return t
        except RECORD_ERRORS as exc:
            self.trades_refused += 1
            log_refused_record(
                _log,
                "fills.record_refused",
                venue=VENUE,
                raw=record,
                exc=exc,
                action=TRADE_LEFT_OUT,
                strict=False,
            )
            return None

    # -- expiries and funding ---------------------------------------------------------------------
    async def delivery_price(self, instrument: str) -> Decimal | None:
        """What an expired option is worth per contract at its settlement, in USDC: Derive's
        options are cash-settled European options whose `option_details.settlement_price`
        (`public/get_instrument`, VENUES.md §3: null until settled) is the index's settlement
        price S; a call pays `max(0, S - K)`, a put `max(0, K - S)`. None while the venue has
        not published S."""
        raw = await self.session.call_retrying("public/get_instrument", {"instrument_name": instrument})
        try:
            details = _decode_instrument(raw).option_details
            if details is None or details.settlement_price is None:
                return None
            # Money, so checked as money (engine.model.money): "NaN", "Infinity", a price of 0 or
            # below, or beyond any plausible one, is the venue's error, never a delivery.
            settled = positive(details.settlement_price, f"{instrument} settlement_price")
            strike = positive(details.strike, f"{instrument} strike")
            if settled > MAX_PRICE or strike > MAX_PRICE:
                raise BadNumber(f"{instrument}: settlement price or strike beyond {MAX_PRICE}")
            intrinsic = settled - strike if details.option_type == "C" else strike - settled
            return check_delivery_price(
                max(intrinsic, Decimal(0)), option=True, what=f"{instrument} delivery"
            )
        except BadNumber as exc:
            _log.error("settlement.delivery_refused", instrument=instrument, error=str(exc))
            raise VenueError(
                f"public/get_instrument: refused delivery ({exc})", venue=VENUE, code="malformed"
            ) from None
        except (*_UNREADABLE, ArithmeticError) as exc:
            raise VenueError(f"public/get_instrument: unreadable answer ({exc})", venue=VENUE) from None

    async def funding_payments(self, since_ns: int) -> FundingPayments:
        """The subaccount's perpetual funding since `since_ns` (`private/get_funding_history`,
        every page): each payment's `funding` is what the subaccount received (negative: paid),
        in USDC. Derive gives no payment id nor the position it was paid on: the event id is the
        instrument and the payment's time (numbered when several share it). Derive (Lyra v2's
        `PerpAsset`) accrues funding per account and realizes it whenever the account's perpetual
        position changes and at each settlement, so a record is the funding on the position held
        just before its time: `OrderFlow.funding` splits it so (`span_ns` None).

        A page that is not a page of payments is an unreadable answer (`VenueError`); one record
        in it that cannot be read (a field missing or of the wrong type) or whose funding is no
        money is that record's problem: left out, counted (`funding_refused`) and logged
        (`funding.record_refused`, with its instrument and time when they can be read, and what
        it holds back), once however many reads meet it again; the others booked. Held back with
        it (not booked, counted in `funding_held` for the read): the payments whose ids it may
        number. The payments of one instrument in one millisecond are numbered in the order of
        their amounts, so one left out shifts its neighbours' numbers (booked under a number
        that is another's, a payment would be booked twice, another never, once it reads
        again). A bad record whose time cannot be read may be of any millisecond of its
        instrument: every payment of that instrument waits; one whose instrument cannot be read,
        every payment of its millisecond; one that says neither, the whole history. They are
        booked once every record that may number them reads.

        The answer says the time of the oldest payment not booked (`held_since_ns`, None when
        all are): a held one's, a bad record's own (the window's start when its time cannot be
        read, or is before the window the venue listed it in), and what was read of each held
        payment and bad record (`held`). The engine keeps its window's start there until it
        reads, `funding_max_lookback_s` back at most: a payment held past that is given up
        loudly from what `held` says (`OrderFlow.give_up_funding`), for a person to book."""
        self._require_login("funding history")
        now = self.clock()
        records = await self._pages(
            "private/get_funding_history",
            {
                "subaccount_id": self.subaccount_id,
                "start_timestamp": max(0, since_ns // 1_000_000),
                "end_timestamp": now // 1_000_000 + _HISTORY_SLACK_MS,
            },
            _decode_funding,
            lambda r: r.events,
        )
        # Each record read, and its funding checked as money, on its own: one that cannot be is
        # left out, and holds back the payments whose ids it may number (`_hold`).
        read: list[tuple[_FundingEvent, Decimal]] = []
        bad: list[tuple[msgspec.Raw, str | None, int | None, str]] = []
        for record in records:
            try:
                e: _FundingEvent = _decode_funding_event(record)
            except RECORD_ERRORS as exc:
                bad.append((record, *_funding_ids(record), str(exc)))
                continue
            try:
                read.append((e, check_funding(e.funding, f"{e.instrument_name} funding")))
            except BadNumber as exc:
                bad.append((record, e.instrument_name, e.timestamp, str(exc)))
        held = _hold([(instrument, ts_ms) for _, instrument, ts_ms, _ in bad])
        kept = [(e, amount) for e, amount in read if not held(e.instrument_name, e.timestamp)]
        self.funding_held = len(read) - len(kept)
        # The venue listed every record for the window [since_ns, now]: a time before it is no time.
        waiting = [e.timestamp for e, _ in read if held(e.instrument_name, e.timestamp)]
        waiting += [ts_ms if ts_ms is not None else 0 for _, _, ts_ms, _ in bad]
        held_since = None if not bad else max(since_ns, min(waiting) * 1_000_000)
        for record, instrument, ts_ms, reason in bad:
            self._refuse_funding(record, instrument, ts_ms, reason)
        # What the engine gives up, loudly, should one stay held past its cap: all that was read.
        holding = [
            HeldFunding(
                venue=VENUE,
                instrument=e.instrument_name,
                ts_ns=e.timestamp * 1_000_000,
                amount=amount,
                currency=self._funding_currency(e.instrument_name),
                reason="held back with an unreadable funding record that may number its id",
            )
            for e, amount in read
            if held(e.instrument_name, e.timestamp)
        ]
        holding += [
            HeldFunding(
                venue=VENUE,
                instrument=instrument,
                ts_ns=None if ts_ms is None else ts_ms * 1_000_000,
                amount=None,
                currency=None if instrument is None else self._funding_currency(instrument),
                reason=f"its record cannot be read: {reason}",
            )
            for _, instrument, ts_ms, reason in bad
        ]
        out: list[FundingPayment] = []
        # Records of one instrument in one millisecond are each a payment (Derive realizes funding
        # at every change of the position and at each settlement: two may share a timestamp):
        # the first keeps `<instrument>:<ms>`, the others `<instrument>:<ms>:<n>`, numbered in
        # the order of their amounts (the checked Decimals: "0.5" and "0.50", or "-1" and
        # "-2", whose text sorts the other way, are numbered by what they are worth) so the ids
        # are the same however the venue lists or writes them. Until r12 they were numbered in
        # the order of the amounts' text: after the upgrade the ids of a millisecond whose two
        # orders differ are the same ids in another order; the journal books a payment by its
        # id alone (`OrderJournal.funding_known`), so a millisecond booked before is not booked
        # again (its amounts keep the ids they were booked under).
        seen: dict[str, int] = {}
        for e, amount in sorted(kept, key=lambda r: (r[0].instrument_name, r[0].timestamp, r[1])):
            key = f"{e.instrument_name}:{e.timestamp}"
            n = seen[key] = seen.get(key, -1) + 1
            event_id = key if n == 0 else f"{key}:{n}"
            out.append(
                FundingPayment(
                    venue=VENUE,
                    instrument=e.instrument_name,
                    event_id=event_id,
                    ts_ns=e.timestamp * 1_000_000,
                    amount=amount,
                    currency=self._funding_currency(e.instrument_name),
                )
            )
        return FundingPayments(sorted(out, key=lambda p: p.ts_ns), held_since_ns=held_since, held=holding)

    def _funding_currency(self, instrument: str) -> str:
        """The currency a perpetual's funding is paid in: its settlement currency (USDC)."""
        inst = self.registry.get(VENUE, instrument)
        return inst.settle if inst is not None else "USDC"

    def _refuse_funding(
        self, record: msgspec.Raw, instrument: str | None, ts_ms: int | None, reason: str
    ) -> None:
        """A funding record left out: counted and logged (one error line naming it, why, and
        what it holds back) the first time it is met; silent when a later read meets it again
        (the look-back reads it at every poll)."""
        said = self._funding_said
        if said is None:
            said = self._funding_said = SaidOnce(_REFUSED_KEPT)
        if not said.first(bytes(record)):
            return
        self.funding_refused += 1
        _log.error(
            "funding.record_refused",
            venue=VENUE,
            instrument=instrument,
            ts_ms=ts_ms,
            reason=reason,
            held=_held_scope(instrument, ts_ms),
            action="left out, and the payments it holds back, until it reads; the others booked",
        )

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        """Cancel an order that is not ours (the `foreign_orders = "cancel"` policy):
        `private/cancel` by order id. Raises `OrderRejected` when the venue refuses (11006 no such
        order, 11003 already cancelled, 11004 already filled)."""
        self._require_login("cancel")
        await self.session.call(
            "private/cancel",
            {"subaccount_id": self.subaccount_id, "instrument_name": instrument, "order_id": order_id},
            instrument=instrument,
        )
