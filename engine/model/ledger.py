"""Positions and PnL per strategy, in USD, exact (Decimal).

Accounting rules (each cash flow converted to USD at the index price at the time it happens,
as if the strategy kept its money in USD):

- Linear instruments (options quoted in the coin, USD-quoted perps, prediction-market shares):
  the fill price is converted to USD at the fill (`price x usd_rate(quote)`); the position keeps
  its cost basis in USD (the sum of `size x price_usd` over what is open, so a full close is
  exact, not an average times a size); closing realizes `contract_size x (closed x exit_usd -
  cost of the closed part)`; an open position is worth `contract_size x (qty x mark x
  usd_rate_now - cost)`.
- Inverse contracts (Deribit BTC-PERPETUAL: size in USD, PnL in the coin): the cost basis is the
  coins the open size cost (the sum of `size / price`; the entry price is the harmonic mean);
  closing realizes `cost of the closed part - closed / exit` coins, converted at the index of
  that moment; an open position is marked the same way at the mark price.
- Fees are converted at the fill too (a negative fee is a rebate). A fee whose currency is the
  instrument itself (`fee_currency == symbol`: Polymarket's taker buy under CLOB V1, which paid
  its fee in shares; under V2 the fee is pUSD on both sides, connectors/polymarket/fees.py)
  changes the position: a buy of `size` receives `size - fee`; the fee's USD value is
  `fee x contract_size x price x usd_rate(quote)`.
- Funding (a perpetual's periodic payment) is a cash flow in a currency, booked into realized
  PnL at its rate and counted apart as well (`funding_usd`).

Money is Decimal, computed in this module's own decimal context (`CONTEXT`: 34 digits), never
the ambient one a strategy may have changed; market data (marks, index prices) is float and
enters money through `engine.model.money.from_float`.

Never at an unknown rate: a fill whose USD rates are not known yet (no index price seen for its
currency, and none in the fill itself) counts in the position's quantity at once (risk checks
see it) but waits, in coin, for its USD conversion: it is booked at the first rate learned for
its currency (a ticker's index, or the index price another fill carried:
`MarketState.booking_rate`), and so is everything booked to the same position after it, in
order: an entry is never booked at a later rate than one queued behind it. `on_late_booking`
hears of each such late booking (the order flow records its rates in the journal).

A voided fill (`reverse`) is taken back at the rates the fill was booked at, not today's.

Option expiry: `settle` closes a position at a delivery price like a fill, with the venue's
delivery fee where one is given (a backtest's `delivery_fee`; the live daemon gives none yet).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_EVEN, Context, Decimal, getcontext, localcontext, setcontext
from math import isfinite
from typing import Literal

import attrs

from .events import Fill, FillReversal, Side
from .instruments import Instrument
from .market import MarketState, index_currency
from .money import ZERO, from_float

__all__ = ["CONTEXT", "Booking", "Ledger", "Position", "PositionView", "UsdRates"]

# The ledger's arithmetic: 34 significant digits (IEEE decimal128), whatever context the thread
# has (a strategy may set `decimal.getcontext().prec`; the engine runs in its thread).
CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN)
_NONE3: tuple[None, None, None] = (None, None, None)
_BUY = Side.BUY
# `CONTEXT`'s twin for the hot paths: arithmetic through its methods (`_ARITH.add(a, b)` is
# `a + b` computed in `CONTEXT`), or made the current context for a fill (`on_fill`) without
# the copy `localcontext` makes; the flags those set never reach `CONTEXT` itself.
_ARITH = CONTEXT.copy()

UsdRates = tuple[float | None, float | None, float | None]  # quote, settle, fee currency -> USD


def _rate(x: float | None) -> Decimal:
    assert x is not None
    return from_float(x, "USD rate")


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _usable(x: float | None) -> float | None:
    """A rate money can be booked at, else None (0, NaN or inf is no rate: never journaled)."""
    return x if x is not None and math.isfinite(x) and x > 0 else None


def _fill_key(ev: Fill | FillReversal) -> tuple[str, str, str] | None:
    """What names one fill of ours (its trade and our order in it); None without a trade id."""
    return (ev.venue, ev.trade_id, ev.client_order_id or "") if ev.trade_id else None


@attrs.define(slots=True)
class Booking:
    """One booking of a position (a fill, a voided fill, a settlement or a funding payment) and
    the USD rates it is (or will be) booked at. A waiting entry has None where a rate it needs
    is not known yet."""

    kind: Literal["fill", "reversal", "settle", "funding"]
    instrument: Instrument
    rates: UsdRates
    event: Fill | FillReversal | None = None
    price: Decimal = ZERO  # a settlement's delivery price
    fee: Decimal = ZERO  # a settlement's delivery fee, in the rates' fee currency
    amount: Decimal = ZERO  # a funding payment (positive: received), in `currency`
    currency: str = ""

    def needs(self) -> tuple[bool, bool, bool]:
        """Which rates (quote, settle, fee currency) booking it takes."""
        inst = self.instrument
        if self.kind == "funding":
            return (False, False, True)
        ev = self.event
        in_kind = ev is not None and ev.fee_currency == inst.symbol
        fee = (ev.fee != 0 and not in_kind) if ev is not None else self.fee != 0
        return (not inst.inverse or in_kind, inst.inverse, fee)

    def missing(self) -> bool:
        rq, rs, rf = self.rates
        nq, ns, nf = self.needs()
        return (nq and not _known(rq)) or (ns and not _known(rs)) or (nf and not _known(rf))


def no_cost_basis(inst: Instrument, price: Decimal) -> bool:
    """True for an execution on an inverse contract at a price below its tick size (so at 0 or
    below always): its cost basis is size / price, which has none at 0 or below, and below the
    finest tick the venue cannot have traded (a fill at 1e-300 on BTC-PERPETUAL booked 1e301
    coins of cost, an equity of 9e305 USD). A linear one books any price (a Deribit combo trades
    at 0 and below). The live flow refuses such a fill before anything is applied
    (`OrderFlow.on_fill`); the ledger refuses it too (`_priced`), for the other ways in: a
    journal written before that refusal, restored at a start; a reversal."""
    return inst.inverse and price.is_finite() and price < inst.tick_size


def _priced(price: Decimal, inst: Instrument) -> None:
    """Refuse (`ValueError`, before anything changes) an execution `no_cost_basis` names."""
    if no_cost_basis(inst, price):
        raise ValueError(
            f"{inst.venue} {inst.symbol}: an execution at {price} on an inverse contract"
            f" (below its tick size {inst.tick_size})"
        )


class Position:
    """One instrument's position for one strategy.

    `qty` counts every fill at once; `booked` is the part whose USD value is booked (the same
    unless fills wait for a rate, in `waiting`, in order). `cost` is the booked open position's
    cost basis (module docstring): USD for linear instruments, coins for inverse ones."""

    __slots__ = (
        "booked",
        "cost",
        "fees_usd",
        "fills",
        "funding_usd",
        "instrument",
        "qty",
        "realized_usd",
        "tried",
        "tried_at",
        "turnover_usd",
        "waiting",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.qty = ZERO
        self.booked = ZERO
        self.cost = ZERO
        self.realized_usd = ZERO
        self.fees_usd = ZERO
        self.funding_usd = ZERO
        self.turnover_usd = ZERO
        self.fills = 0
        self.waiting: deque[Booking] = deque()
        # The waiting head last tried and found still missing a rate, and the market's
        # `rates_learned` then: until a rate is learned it cannot be booked (`Ledger._drain`).
        self.tried: Booking | None = None
        self.tried_at = -1

    @property
    def avg(self) -> Decimal:
        """The average entry: USD price for linear instruments, coin-quoted (harmonic) price for
        inverse ones; 0 when flat."""
        if self.booked == 0:
            return ZERO
        with localcontext(CONTEXT):
            return self.booked / self.cost if self.instrument.inverse else self.cost / self.booked

    def apply(
        self, signed_size: Decimal, price: Decimal, usd_rate_quote: Decimal, usd_rate_settle: Decimal
    ) -> Decimal:
        """Apply one execution to the booked position; returns the USD PnL it realized. A size
        of zero changes nothing (and realizes nothing)."""
        if signed_size == 0:
            return ZERO
        inst = self.instrument
        q0 = self.booked
        q1 = q0 + signed_size
        # The execution's cost basis: coins for inverse contracts, USD (per contract) for linear.
        if inst.inverse:
            unit = signed_size / price
            self.turnover_usd += abs(signed_size)
        else:
            px_usd = price * usd_rate_quote
            unit = signed_size * px_usd
            self.turnover_usd += abs(signed_size) * inst.contract_size * px_usd
        realized = ZERO
        if q0 == 0 or (q0 > 0) == (signed_size > 0):  # opening or adding
            self.cost += unit
        else:
            closes_all = abs(signed_size) >= abs(q0)
            closed = q0 if closes_all else -signed_size
            # The closed part's cost basis: all of it on a full close (exact), else pro rata.
            part = self.cost if closes_all else self.cost * closed / q0
            if inst.inverse:
                realized = (part - closed / price) * usd_rate_settle
            else:
                realized = inst.contract_size * (closed * px_usd - part)
            self.cost -= part
            if closes_all and q1 != 0:  # flipped through zero: the rest opened at this price
                self.cost = q1 / price if inst.inverse else q1 * px_usd
        if q1 == 0:
            self.cost = ZERO
        self.booked = q1
        self.realized_usd += realized
        return realized

    def unapply(self, signed_size: Decimal, price: Decimal, usd_rate_quote: Decimal) -> None:
        """Take back an execution of `signed_size` at `price` that added to (or opened) the
        booked position, which must still hold at least that much on that side: the cost basis
        and turnover are restored, and nothing is realized."""
        if signed_size == 0:
            return
        q1 = self.booked
        if q1 == 0 or (q1 > 0) != (signed_size > 0) or abs(signed_size) > abs(q1):
            raise ValueError(f"cannot unapply {signed_size} from a position of {q1}")
        q0 = q1 - signed_size
        inst = self.instrument
        if inst.inverse:
            self.cost -= signed_size / price
            self.turnover_usd -= abs(signed_size)
        else:
            px_usd = price * usd_rate_quote
            self.cost -= signed_size * px_usd
            self.turnover_usd -= abs(signed_size) * inst.contract_size * px_usd
        if q0 == 0:
            self.cost = ZERO
        self.turnover_usd = max(self.turnover_usd, ZERO)
        self.booked = q0

    def unrealized_usd(
        self, mark: float | None, usd_rate_quote: float | None, usd_rate_settle: float | None
    ) -> Decimal:
        """Mark-to-market of the booked open quantity (0 when flat or when no price is known),
        in the caller's decimal context (`Ledger.unrealized_usd` sets `CONTEXT`)."""
        q = self.booked
        if q == 0 or mark is None or not (math.isfinite(mark) and mark > 0):
            return ZERO
        inst = self.instrument
        if inst.inverse:
            if not _known(usd_rate_settle):
                return ZERO
            return (self.cost - q / from_float(mark, "mark")) * _rate(usd_rate_settle)
        if not _known(usd_rate_quote):
            return ZERO
        return inst.contract_size * (q * from_float(mark, "mark") * _rate(usd_rate_quote) - self.cost)


@attrs.frozen
class PositionView:
    """A strategy's positions and PnL at one moment (what `ctx.positions()` returns), in USD.
    Money fields are `Decimal` (exact; floats before: a change of the strategy API).
    `waiting_fills` counts fills whose USD value waits for a first index price (their
    quantities are in `positions` already)."""

    positions: dict[tuple[str, str], Decimal]
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    funding: Decimal = ZERO
    waiting_fills: int = 0

    @property
    def net_pnl(self) -> Decimal:
        with localcontext(CONTEXT):
            return self.realized_pnl + self.unrealized_pnl - self.fees


class Ledger:
    """Every position of one strategy, and its PnL in USD (rules in the module docstring)."""

    def __init__(self, strategy: str, market: MarketState) -> None:
        self.strategy = strategy
        self.market = market
        self.positions: dict[tuple[str, str], Position] = {}
        self.realized_usd = ZERO
        self.fees_usd = ZERO
        self.funding_usd = ZERO  # part of realized_usd, counted apart for reports
        self.fills = 0
        self.waiting = 0  # entries (fills, mostly) waiting for a USD rate
        # The rates each fill was booked at, by (venue, trade id, our order): a voided fill is
        # taken back at them (`reverse`).
        self.booked_rates: dict[tuple[str, str, str], UsdRates] = {}
        # Told of each entry booked after it waited, with the rates it was booked at.
        self.on_late_booking: Callable[[Booking], None] | None = None
        market.on_first_rate.append(self.rate_known)
        # (realized, fees, equity) of the last `equity_usd` with nothing open.
        self._flat_equity: tuple[Decimal, Decimal, Decimal] | None = None

    def position(self, venue: str, instrument: str) -> Decimal:
        p = self.positions.get((venue, instrument))
        return ZERO if p is None else p.qty

    def __iter__(self) -> Iterator[Position]:
        return iter(self.positions.values())

    def _position(self, inst: Instrument) -> Position:
        key = (inst.venue, inst.symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(inst)
        return pos

    def rates(self, inst: Instrument, fee_currency: str = "", index: float | None = None) -> UsdRates:
        """The USD rates an execution in `inst` is booked at now: (quote, settle, fee
        currency), None where no usable rate is known (never 0). `index` is the underlying's
        index price the venue reported with the execution (Deribit's and Derive's trades carry
        it): it prices the instrument's base currency where it is a USD rate
        (`engine.model.market.index_currency`), before the market's latest index. The order journal
        keeps these rates, so positions rebuilt after a restart carry the same USD values."""
        booking_rate = self.market.booking_rate
        venue = inst.venue
        base = inst.base if index is not None and _known(index) and index_currency(inst) is not None else None
        # Each currency's rate is the index (its base) or the market's booking rate, a function
        # of the currency alone: one looked up once serves the others that name it too.
        # (`_usable` inline: a rate, or None.)
        quote, settle = inst.quote, inst.settle
        fee = fee_currency or settle
        if quote == base:
            rq = index
        else:
            r = booking_rate(venue, quote)
            rq = r if r is not None and isfinite(r) and r > 0 else None
        if settle == quote:
            rs = rq
        elif settle == base:
            rs = index
        else:
            r = booking_rate(venue, settle)
            rs = r if r is not None and isfinite(r) and r > 0 else None
        if fee == settle:
            rf = rs
        elif fee == quote:
            rf = rq
        else:
            rf = index if fee == base else _usable(booking_rate(venue, fee))
        return (rq, rs, rf)

    def reversal_rates(self, reversal: FillReversal, inst: Instrument) -> UsdRates:
        """The rates a voided fill is taken back at: those its fill was booked at; none yet
        while that fill still waits for a rate (the reversal waits behind it); today's for a
        fill this ledger never booked (no trade id, or from before its journal)."""
        key = _fill_key(reversal)
        if key is not None:
            known = self.booked_rates.get(key)
            if known is not None:
                return known
            pos = self.positions.get((inst.venue, inst.symbol))
            if pos is not None and any(
                e.kind == "fill" and e.event is not None and _fill_key(e.event) == key for e in pos.waiting
            ):
                return _NONE3
        return self.rates(inst, reversal.fee_currency)

    def waits(self, fill: Fill | FillReversal) -> bool:
        """Whether `fill` (just given to `on_fill` or `reverse`) waits for a USD rate. An entry
        is queued behind everything waiting (`_enter`), and nothing is queued without a waiting
        queue: one just given waits exactly when it is the queue's newest entry (a look at that
        one, not a walk of a queue that holds every fill of a run without a rate)."""
        pos = self.positions.get((fill.venue, fill.instrument))
        if pos is None:
            return False
        waiting = pos.waiting
        return bool(waiting) and waiting[-1].event is fill

    # -- booking ------------------------------------------------------------------------------
    def on_fill(self, fill: Fill, inst: Instrument, rates: UsdRates | None = None) -> Decimal:
        """Apply a fill at the USD `rates` (those of the market now, or of the fill's own index
        price, when None). Its quantity counts at once; its USD value waits where a rate it
        needs is unknown (module docstring). Returns the USD PnL it realized (0 while waiting).
        The fill's index price is learned as a USD rate first (`MarketState.learn_index`): what
        waited for it is booked at it, before this fill."""
        # In `CONTEXT`'s twin `_ARITH` made current (as `localcontext(CONTEXT)` would make a
        # fresh copy current, ~1 us a fill): the same precision, rounding and traps.
        _priced(fill.price, inst)
        previous = getcontext()
        setcontext(_ARITH)
        try:
            if fill.index_price is not None:
                self.market.learn_index(inst, fill.index_price)
            key = (inst.venue, inst.symbol)  # `_position`, inline
            pos = self.positions.get(key)
            if pos is None:
                pos = self.positions[key] = Position(inst)
            if rates is None:
                rates = self.rates(inst, fill.fee_currency, fill.index_price)
            signed = fill.size if fill.side is _BUY else -fill.size  # (`side.sign > 0`)
            if fill.fee_currency == inst.symbol:  # the fee is taken in the instrument itself
                signed -= fill.fee
            pos.qty += signed
            pos.fills += 1
            self.fills += 1
            return self._enter(pos, Booking("fill", inst, rates, event=fill))
        finally:
            setcontext(previous)

    def reverse(self, reversal: FillReversal, inst: Instrument, rates: UsdRates | None = None) -> Decimal:
        """Undo a fill the venue voided, at the rates that fill was booked at
        (`reversal_rates`; `rates` is used only for a fill this ledger did not book): its fee
        refunded, its count removed, and its quantity taken back. A fill that opened or added
        to the position (the usual case: the voided trade is the latest) is undone exactly:
        quantity, cost basis and turnover as before it. One that closed part of a position
        since grown the other way is reversed by the opposite execution at its price (the PnL
        it realized stays; the reopened quantity is carried at that price). Returns the USD PnL
        the reversal realized."""
        _priced(reversal.price, inst)
        with localcontext(CONTEXT):
            pos = self._position(inst)
            key = _fill_key(reversal)
            known = None if key is None else self.booked_rates.get(key)
            if known is not None:
                rates = known
            elif rates is None:
                rates = self.reversal_rates(reversal, inst)
            signed = reversal.size if reversal.side.sign > 0 else -reversal.size
            if reversal.fee_currency == inst.symbol:
                signed -= reversal.fee
            pos.qty -= signed
            pos.fills = max(pos.fills - 1, 0)
            self.fills = max(self.fills - 1, 0)
            return self._enter(pos, Booking("reversal", inst, rates, event=reversal))

    def settle(
        self,
        inst: Instrument,
        price: float | Decimal,
        rates: UsdRates | None = None,
        *,
        fee: Decimal = ZERO,
        fee_currency: str | None = None,
    ) -> Decimal:
        """Close the position in `inst` at `price` (expiry delivery: the venue's Decimal, or a
        float of ours); returns realized USD. `fee`: what the venue charges for the delivery
        (a backtest's `delivery_fee` of the venue's fee model), in `fee_currency` (the
        instrument's settlement currency when None), counted in the fees as a fill's is."""
        pos = self.positions.get((inst.venue, inst.symbol))
        if pos is None or pos.qty == 0:
            return ZERO
        px = price if isinstance(price, Decimal) else from_float(price, "settlement price")
        with localcontext(CONTEXT):
            pos.qty = ZERO
            if rates is None:
                rates = self.rates(inst, fee_currency or "")
            return self._enter(pos, Booking("settle", inst, rates, price=px, fee=fee))

    def funding(self, inst: Instrument, amount: Decimal, currency: str, rate: float | None = None) -> Decimal:
        """A funding payment on the position in `inst` (a perpetual's periodic cash flow):
        `amount` of `currency`, positive when received. Booked into realized PnL at `rate`
        (USD per unit of `currency`; the market's now when None; it waits where none is known),
        and counted in `funding_usd`. Returns its USD value (0 while it waits)."""
        with localcontext(CONTEXT):
            pos = self._position(inst)
            if rate is None:
                rate = self.market.booking_rate(inst.venue, currency)
            return self._enter(
                pos, Booking("funding", inst, (None, None, _usable(rate)), amount=amount, currency=currency)
            )

    def _enter(self, pos: Position, entry: Booking) -> Decimal:
        """Book `entry` now, or queue it behind the position's waiting entries."""
        if pos.waiting:
            self._drain(pos)
        if pos.waiting or entry.missing():
            pos.waiting.append(entry)
            self.waiting += 1
            return ZERO
        return self._book(pos, entry)

    def _book(self, pos: Position, entry: Booking) -> Decimal:
        """Book one entry whose needed rates are known; returns the USD PnL it realized."""
        rq, rs, rf = entry.rates
        nq, ns, nf = entry.needs()
        q = _rate(rq) if nq else ZERO
        s = _rate(rs) if ns else ZERO
        kind = entry.kind
        if kind == "funding":
            value = entry.amount * _rate(rf)
            pos.realized_usd += value
            pos.funding_usd += value
            self.realized_usd += value
            self.funding_usd += value
            return value
        if kind == "settle":
            realized = pos.apply(-pos.booked, entry.price, q, s)
            self.realized_usd += realized
            if entry.fee != 0:  # the delivery fee (`settle`), at the rate of its currency
                fee_usd = entry.fee * _rate(rf)
                pos.fees_usd += fee_usd
                self.fees_usd += fee_usd
            return realized
        ev = entry.event
        assert ev is not None
        signed = ev.size if ev.side.sign > 0 else -ev.size
        inst = pos.instrument
        in_kind = ev.fee_currency == inst.symbol
        if in_kind:  # shares (contracts) taken as the fee, valued at the fill's price
            fee_usd = ev.fee * inst.contract_size * ev.price * q
        else:
            fee_usd = ev.fee * _rate(rf) if nf else ZERO
        if kind == "fill":
            realized = pos.apply(signed, ev.price, q, s)
            if in_kind:  # the fee's shares leave the position at the fill's price
                turnover = pos.turnover_usd
                realized += pos.apply(-ev.fee, ev.price, q, s)
                pos.turnover_usd = turnover
            pos.fees_usd += fee_usd
            self.fees_usd += fee_usd
            key = _fill_key(ev)
            if key is not None:
                self.booked_rates[key] = entry.rates
        else:  # a reversal
            realized = ZERO
            if in_kind:  # the fee's shares come back first
                turnover = pos.turnover_usd
                realized += pos.apply(ev.fee, ev.price, q, s)
                pos.turnover_usd = turnover
            b = pos.booked
            if b != 0 and (b > 0) == (signed > 0) and abs(signed) <= abs(b):
                pos.unapply(signed, ev.price, q)
            else:  # it closed (part of) a position: reopen at the voided price
                turnover = pos.turnover_usd
                realized += pos.apply(-signed, ev.price, q, s)
                pos.turnover_usd = max(turnover - (pos.turnover_usd - turnover), ZERO)
            pos.fees_usd -= fee_usd
            self.fees_usd -= fee_usd
        self.realized_usd += realized
        return realized

    # -- rates learned late ---------------------------------------------------------------------
    def rate_known(self, venue: str, currency: str) -> None:
        """The market learned its first USD rate for `currency` at `venue`: book what waited
        for it (MarketState calls this)."""
        if not self.waiting:
            return
        with localcontext(CONTEXT):
            for pos in self.positions.values():
                if pos.waiting and pos.instrument.venue == venue:
                    self._drain(pos)

    def _drain(self, pos: Position) -> None:
        """Book the position's waiting entries, in order, while their rates are known (those
        unknown when they came are taken from what is known now: the first rate learned).

        A head tried and found missing a rate is not tried again until the market has learned
        a rate since (`MarketState.rates_learned`): every rate an entry can wait for becomes
        usable only through `MarketState._first_rate`, which counts it, so the try would find
        the same (`_drain_general` tries every time: tests/model/test_ledger_skip.py)."""
        learned = self.market.rates_learned
        if pos.tried_at == learned and pos.waiting and pos.tried is pos.waiting[0]:
            return
        self._drain_general(pos, learned)

    def _drain_general(self, pos: Position, learned: int) -> None:
        while pos.waiting:
            entry = pos.waiting[0]
            # `entry.missing()` twice at most, with its needs (a function of the entry alone)
            # found once.
            nq, ns, nf = entry.needs()
            rq, rs, rf = entry.rates
            if (nq and not _known(rq)) or (ns and not _known(rs)) or (nf and not _known(rf)):
                entry.rates = rates = self._fill_in(entry)
                rq, rs, rf = rates
                if (nq and not _known(rq)) or (ns and not _known(rs)) or (nf and not _known(rf)):
                    pos.tried, pos.tried_at = entry, learned
                    return
            pos.waiting.popleft()
            self.waiting -= 1
            self._book(pos, entry)
            if self.on_late_booking is not None:
                self.on_late_booking(entry)

    def _fill_in(self, entry: Booking) -> UsdRates:
        inst = entry.instrument
        now: UsdRates
        if entry.kind == "funding":
            now = (None, None, _usable(self.market.booking_rate(inst.venue, entry.currency)))
        elif entry.kind == "reversal" and entry.event is not None:
            # At the voided fill's rates (booked by now: it was queued before this).
            key = _fill_key(entry.event)
            known = None if key is None else self.booked_rates.get(key)
            if known is not None:
                return known
            now = self.rates(inst, entry.event.fee_currency)
        else:
            ev = entry.event
            now = self.rates(inst, "" if ev is None else ev.fee_currency)
        return (
            entry.rates[0] if _known(entry.rates[0]) else now[0],
            entry.rates[1] if _known(entry.rates[1]) else now[1],
            entry.rates[2] if _known(entry.rates[2]) else now[2],
        )

    # -- reading ------------------------------------------------------------------------------
    def unrealized_usd(self) -> Decimal:
        with localcontext(CONTEXT):
            return self._unrealized()

    def _unrealized(self) -> Decimal:
        """`unrealized_usd`, in the caller's context (`CONTEXT`)."""
        total = ZERO
        m = self.market
        for pos in self.positions.values():
            if pos.booked == 0:
                continue
            inst = pos.instrument
            total += pos.unrealized_usd(
                m.mark(inst.venue, inst.symbol),
                m.usd_rate(inst.venue, inst.quote),
                m.usd_rate(inst.venue, inst.settle),
            )
        return total

    def equity_usd(self) -> Decimal:
        """Realized + unrealized - fees: the strategy's PnL so far, marked to market. This runs
        on every fill and chart sample of a backtest: with nothing booked open (unrealized 0),
        the two sums go through `_ARITH`'s methods, the same arithmetic as in `CONTEXT` without
        entering it (`localcontext` copies a context, ~1 us)."""
        for pos in self.positions.values():
            if pos.booked != ZERO:  # (a Decimal zero: the int's conversion spared)
                with localcontext(CONTEXT):
                    return self.realized_usd + self._unrealized() - self.fees_usd
        # Nothing open: a function of the two sums alone, kept for the same two (a Decimal never
        # changes: the same objects, the same result).
        realized, fees = self.realized_usd, self.fees_usd
        last = self._flat_equity
        if last is not None and last[0] is realized and last[1] is fees:
            return last[2]
        equity = _ARITH.subtract(_ARITH.add(realized, ZERO), fees)
        self._flat_equity = (realized, fees, equity)
        return equity

    def view(self) -> PositionView:
        return PositionView(
            positions={k: p.qty for k, p in self.positions.items() if p.qty != 0},
            realized_pnl=self.realized_usd,
            unrealized_pnl=self.unrealized_usd(),
            fees=self.fees_usd,
            funding=self.funding_usd,
            waiting_fills=self.waiting,
        )
