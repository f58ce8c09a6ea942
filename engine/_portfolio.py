"""Positions and PnL per strategy, in USD, exact (Decimal).

Accounting rules (each cash flow converted to USD at the index price at the time it happens,
as if the strategy kept its money in USD):

- Linear instruments (options quoted in the coin, USD-quoted perps, prediction-market shares):
  the fill price is converted to USD at the fill (`price x usd_rate(quote)`); the average entry
  is kept in USD; closing realizes `closed x contract_size x (exit_usd - entry_usd)`; an open
  position is worth `qty x contract_size x (mark x usd_rate_now - entry_usd)`.
- Inverse contracts (Deribit BTC-PERPETUAL: size in USD, PnL in the coin): the entry is the
  harmonic mean of fill prices; closing realizes `closed x (1/entry - 1/exit)` coins, converted
  at the index of that moment; an open position is marked the same way at the mark price.
- Fees are converted at the fill too (a negative fee is a rebate). A fee whose currency is the
  instrument itself (`fee_currency == symbol`: a Polymarket taker buy pays its fee in shares,
  connectors/polymarket/fees.py) changes the position: a buy of `size` receives `size - fee`;
  the fee's USD value is `fee x price x usd_rate(quote)`.
- Funding (a perpetual's periodic payment) is a cash flow in a currency, booked into realized
  PnL at its rate and counted apart as well (`funding_usd`).

Money is Decimal; market data (marks, index prices) is float and enters money through
`engine._money.from_float`.

Never at an unknown rate: a fill whose USD rates are not known yet (no index price seen for its
currency, and none in the fill itself) counts in the position's quantity at once (risk checks
see it) but waits, in coin, for its USD conversion: it is booked at the first rate the market
learns for its currency (`MarketState`'s index update), and so is everything booked to the same
position after it, in order. `on_late_booking` hears of each such late booking (the order flow
records its rates in the journal).

Option expiry: `settle` closes a position at a delivery price like a fill with no fee.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Literal

import attrs

from ._events import Fill, FillReversal
from ._instruments import Instrument
from ._market import MarketState
from ._money import ZERO, from_float

__all__ = ["Booking", "Ledger", "Position", "PositionView", "UsdRates"]

_ONE = Decimal(1)

UsdRates = tuple[float | None, float | None, float | None]  # quote, settle, fee currency -> USD


def _rate(x: float | None) -> Decimal:
    assert x is not None
    return from_float(x, "USD rate")


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


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
    amount: Decimal = ZERO  # a funding payment (positive: received), in `currency`
    currency: str = ""

    def needs(self) -> tuple[bool, bool, bool]:
        """Which rates (quote, settle, fee currency) booking it takes."""
        inst = self.instrument
        if self.kind == "funding":
            return (False, False, True)
        ev = self.event
        in_kind = ev is not None and ev.fee_currency == inst.symbol
        fee = ev is not None and ev.fee != 0 and not in_kind
        return (not inst.inverse or in_kind, inst.inverse, fee)

    def missing(self) -> bool:
        rq, rs, rf = self.rates
        nq, ns, nf = self.needs()
        return (nq and not _known(rq)) or (ns and not _known(rs)) or (nf and not _known(rf))


class Position:
    """One instrument's position for one strategy.

    `qty` counts every fill at once; `booked` is the part whose USD value is booked (the same
    unless fills wait for a rate, in `waiting`, in order)."""

    __slots__ = (
        "avg",
        "booked",
        "fees_usd",
        "fills",
        "funding_usd",
        "instrument",
        "qty",
        "realized_usd",
        "turnover_usd",
        "waiting",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.qty = ZERO
        self.booked = ZERO
        # Average entry: USD price for linear instruments, coin-quoted price (harmonic) for inverse.
        self.avg = ZERO
        self.realized_usd = ZERO
        self.fees_usd = ZERO
        self.funding_usd = ZERO
        self.turnover_usd = ZERO
        self.fills = 0
        self.waiting: deque[Booking] = deque()

    def apply(
        self, signed_size: Decimal, price: Decimal, usd_rate_quote: Decimal, usd_rate_settle: Decimal
    ) -> Decimal:
        """Apply one execution to the booked position; returns the USD PnL it realized."""
        inst = self.instrument
        q0 = self.booked
        q1 = q0 + signed_size
        realized = ZERO
        if inst.inverse:
            if q0 == 0 or (q0 > 0) == (signed_size > 0):  # opening or adding
                self.avg = q1 / (q0 / self.avg + signed_size / price) if q0 != 0 else price
            else:
                closed = min(abs(signed_size), abs(q0)) * (1 if q0 > 0 else -1)
                realized = closed * (_ONE / self.avg - _ONE / price) * usd_rate_settle
                if (q1 > 0) != (q0 > 0) and q1 != 0:  # flipped through zero
                    self.avg = price
            self.turnover_usd += abs(signed_size)
        else:
            px_usd = price * usd_rate_quote
            if q0 == 0 or (q0 > 0) == (signed_size > 0):
                self.avg = (q0 * self.avg + signed_size * px_usd) / q1
            else:
                closed = min(abs(signed_size), abs(q0)) * (1 if q0 > 0 else -1)
                realized = closed * inst.contract_size * (px_usd - self.avg)
                if (q1 > 0) != (q0 > 0) and q1 != 0:
                    self.avg = px_usd
            self.turnover_usd += abs(signed_size) * inst.contract_size * px_usd
        if q1 == 0:
            self.avg = ZERO
        self.booked = q1
        self.realized_usd += realized
        return realized

    def unapply(self, signed_size: Decimal, price: Decimal, usd_rate_quote: Decimal) -> None:
        """Take back an execution of `signed_size` at `price` that added to (or opened) the
        booked position, which must still hold at least that much on that side: the entry
        average and turnover are restored, and nothing is realized."""
        q1 = self.booked
        if q1 == 0 or (q1 > 0) != (signed_size > 0) or abs(signed_size) > abs(q1):
            raise ValueError(f"cannot unapply {signed_size} from a position of {q1}")
        q0 = q1 - signed_size
        inst = self.instrument
        if inst.inverse:
            if q0 != 0:
                self.avg = q0 / (q1 / self.avg - signed_size / price)
            self.turnover_usd -= abs(signed_size)
        else:
            px_usd = price * usd_rate_quote
            if q0 != 0:
                self.avg = (q1 * self.avg - signed_size * px_usd) / q0
            self.turnover_usd -= abs(signed_size) * inst.contract_size * px_usd
        if q0 == 0:
            self.avg = ZERO
        self.turnover_usd = max(self.turnover_usd, ZERO)
        self.booked = q0

    def unrealized_usd(
        self, mark: float | None, usd_rate_quote: float | None, usd_rate_settle: float | None
    ) -> Decimal:
        """Mark-to-market of the booked open quantity (0 when flat or when no price is known)."""
        q = self.booked
        if q == 0 or mark is None or not (math.isfinite(mark) and mark > 0):
            return ZERO
        inst = self.instrument
        if inst.inverse:
            if not _known(usd_rate_settle):
                return ZERO
            return q * (_ONE / self.avg - _ONE / from_float(mark, "mark")) * _rate(usd_rate_settle)
        if not _known(usd_rate_quote):
            return ZERO
        return q * inst.contract_size * (from_float(mark, "mark") * _rate(usd_rate_quote) - self.avg)


@attrs.frozen
class PositionView:
    """A strategy's positions and PnL at one moment (what `ctx.positions()` returns), in USD.
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
        # Told of each entry booked after it waited, with the rates it was booked at.
        self.on_late_booking: Callable[[Booking], None] | None = None
        market.on_first_rate.append(self.rate_known)

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
        currency), None where no rate is known. `index` is the underlying's index price the
        venue reported with the execution (Deribit's and Derive's trades carry it): it prices
        the instrument's base currency, before the market's latest index. The order journal
        keeps these rates, so positions rebuilt after a restart carry the same USD values."""
        m = self.market
        if index is not None and _known(index):
            base = inst.base

            def rate(currency: str) -> float | None:
                return index if currency == base else m.usd_rate(inst.venue, currency)

        else:

            def rate(currency: str) -> float | None:
                return m.usd_rate(inst.venue, currency)

        return (rate(inst.quote), rate(inst.settle), rate(fee_currency or inst.settle))

    # -- booking ------------------------------------------------------------------------------
    def on_fill(self, fill: Fill, inst: Instrument, rates: UsdRates | None = None) -> Decimal:
        """Apply a fill at the USD `rates` (those of the market now, or of the fill's own index
        price, when None). Its quantity counts at once; its USD value waits where a rate it
        needs is unknown (module docstring). Returns the USD PnL it realized (0 while waiting)."""
        pos = self._position(inst)
        if rates is None:
            rates = self.rates(inst, fill.fee_currency, fill.index_price)
        signed = fill.size if fill.side.sign > 0 else -fill.size
        if fill.fee_currency == inst.symbol:  # the fee is taken in the instrument itself
            signed -= fill.fee
        pos.qty += signed
        pos.fills += 1
        self.fills += 1
        return self._enter(pos, Booking("fill", inst, rates, event=fill))

    def reverse(self, reversal: FillReversal, inst: Instrument, rates: UsdRates | None = None) -> Decimal:
        """Undo a fill the venue voided: its fee refunded, its count removed, and its quantity
        taken back. A fill that opened or added to the position (the usual case: the voided
        trade is the latest) is undone exactly: quantity, entry average and turnover as before
        it. One that closed part of a position since grown the other way is reversed by the
        opposite execution at its price (the PnL it realized stays; the reopened quantity is
        carried at that price). Returns the USD PnL the reversal realized."""
        pos = self._position(inst)
        if rates is None:
            rates = self.rates(inst, reversal.fee_currency)
        signed = reversal.size if reversal.side.sign > 0 else -reversal.size
        if reversal.fee_currency == inst.symbol:
            signed -= reversal.fee
        pos.qty -= signed
        pos.fills = max(pos.fills - 1, 0)
        self.fills = max(self.fills - 1, 0)
        return self._enter(pos, Booking("reversal", inst, rates, event=reversal))

    def settle(self, inst: Instrument, price: float | Decimal, rates: UsdRates | None = None) -> Decimal:
        """Close the position in `inst` at `price` (expiry delivery); returns realized USD."""
        pos = self.positions.get((inst.venue, inst.symbol))
        if pos is None or pos.qty == 0:
            return ZERO
        px = price if isinstance(price, Decimal) else from_float(price, "settlement price")
        pos.qty = ZERO
        return self._enter(pos, Booking("settle", inst, rates or self.rates(inst), price=px))

    def funding(self, inst: Instrument, amount: Decimal, currency: str, rate: float | None = None) -> Decimal:
        """A funding payment on the position in `inst` (a perpetual's periodic cash flow):
        `amount` of `currency`, positive when received. Booked into realized PnL at `rate`
        (USD per unit of `currency`; the market's now when None; it waits where none is known),
        and counted in `funding_usd`. Returns its USD value (0 while it waits)."""
        pos = self._position(inst)
        if rate is None:
            rate = self.market.usd_rate(inst.venue, currency)
        return self._enter(
            pos, Booking("funding", inst, (None, None, rate), amount=amount, currency=currency)
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
            return realized
        ev = entry.event
        assert ev is not None
        signed = ev.size if ev.side.sign > 0 else -ev.size
        in_kind = ev.fee_currency == pos.instrument.symbol
        fee_usd = ev.fee * ev.price * q if in_kind else (ev.fee * _rate(rf) if nf else ZERO)
        if kind == "fill":
            realized = pos.apply(signed, ev.price, q, s)
            if in_kind:  # the fee's shares leave the position at the fill's price
                turnover = pos.turnover_usd
                realized += pos.apply(-ev.fee, ev.price, q, s)
                pos.turnover_usd = turnover
            pos.fees_usd += fee_usd
            self.fees_usd += fee_usd
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
        for pos in self.positions.values():
            if pos.waiting and pos.instrument.venue == venue:
                self._drain(pos)

    def _drain(self, pos: Position) -> None:
        """Book the position's waiting entries, in order, while their rates are known (those
        unknown when they came are taken from the market now)."""
        while pos.waiting:
            entry = pos.waiting[0]
            if entry.missing():
                entry.rates = self._fill_in(entry)
                if entry.missing():
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
            now = (None, None, self.market.usd_rate(inst.venue, entry.currency))
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
        """Realized + unrealized - fees: the strategy's PnL so far, marked to market."""
        return self.realized_usd + self.unrealized_usd() - self.fees_usd

    def view(self) -> PositionView:
        return PositionView(
            positions={k: p.qty for k, p in self.positions.items() if p.qty != 0},
            realized_pnl=self.realized_usd,
            unrealized_pnl=self.unrealized_usd(),
            fees=self.fees_usd,
            funding=self.funding_usd,
            waiting_fills=self.waiting,
        )
