"""Positions and PnL per strategy, in USD.

Accounting rules (each cash flow converted to USD at the index price at the time it happens,
as if the strategy kept its money in USD):

- Linear instruments (options quoted in the coin, USD-quoted perps, prediction-market shares):
  the fill price is converted to USD at the fill (`price x usd_rate(quote)`); the average entry
  is kept in USD; closing realizes `closed x contract_size x (exit_usd - entry_usd)`; an open
  position is worth `qty x contract_size x (mark x usd_rate_now - entry_usd)`.
- Inverse contracts (Deribit BTC-PERPETUAL: size in USD, PnL in the coin): the entry is the
  harmonic mean of fill prices; closing realizes `closed x (1/entry - 1/exit)` coins, converted
  at the index of that moment; an open position is marked the same way at the mark price.
- Fees are converted at the fill too (a negative fee is a rebate).

Option expiry: `settle` closes a position at a delivery price like a fill with no fee.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs

from ._events import Fill, FillReversal
from ._instruments import Instrument
from ._market import MarketState

__all__ = ["Ledger", "Position", "PositionView"]

_ZERO = Decimal(0)

UsdRates = tuple[float | None, float | None, float | None]  # quote, settle, fee currency -> USD


class Position:
    """One instrument's position for one strategy."""

    __slots__ = ("avg", "fees_usd", "fills", "instrument", "qty", "realized_usd", "turnover_usd")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.qty = _ZERO
        # Average entry: USD price for linear instruments, coin-quoted price (harmonic) for inverse.
        self.avg = 0.0
        self.realized_usd = 0.0
        self.fees_usd = 0.0
        self.turnover_usd = 0.0
        self.fills = 0

    def apply(
        self, signed_size: Decimal, price: float, usd_rate_quote: float, usd_rate_settle: float
    ) -> float:
        """Apply one execution; returns the USD PnL it realized."""
        inst = self.instrument
        q0 = self.qty
        q1 = q0 + signed_size
        realized = 0.0
        if inst.inverse:
            if q0 == 0 or (q0 > 0) == (signed_size > 0):  # opening or adding
                a, b = float(q0), float(signed_size)
                self.avg = (a + b) / (a / self.avg + b / price) if q0 != 0 else price
            else:
                closed = min(abs(signed_size), abs(q0)) * (1 if q0 > 0 else -1)
                realized = float(closed) * (1.0 / self.avg - 1.0 / price) * usd_rate_settle
                if (q1 > 0) != (q0 > 0) and q1 != 0:  # flipped through zero
                    self.avg = price
            self.turnover_usd += abs(float(signed_size))
        else:
            cs = float(inst.contract_size)
            px_usd = price * usd_rate_quote
            if q0 == 0 or (q0 > 0) == (signed_size > 0):
                a, b = float(q0), float(signed_size)
                self.avg = (a * self.avg + b * px_usd) / (a + b)
            else:
                closed = min(abs(signed_size), abs(q0)) * (1 if q0 > 0 else -1)
                realized = float(closed) * cs * (px_usd - self.avg)
                if (q1 > 0) != (q0 > 0) and q1 != 0:
                    self.avg = px_usd
            self.turnover_usd += abs(float(signed_size)) * cs * px_usd
        if q1 == 0:
            self.avg = 0.0
        self.qty = q1
        self.realized_usd += realized
        return realized

    def unapply(self, signed_size: Decimal, price: float, usd_rate_quote: float) -> None:
        """Take back an execution of `signed_size` at `price` that added to (or opened) the
        current position, which must still hold at least that much on that side: the entry
        average and turnover are restored exactly, and nothing is realized."""
        q1 = self.qty
        if q1 == 0 or (q1 > 0) != (signed_size > 0) or abs(signed_size) > abs(q1):
            raise ValueError(f"cannot unapply {signed_size} from a position of {q1}")
        q0 = q1 - signed_size
        a, b = float(q1), float(signed_size)
        inst = self.instrument
        if inst.inverse:
            if q0 != 0:
                self.avg = (a - b) / (a / self.avg - b / price)
            self.turnover_usd -= abs(b)
        else:
            px_usd = price * usd_rate_quote
            if q0 != 0:
                self.avg = (a * self.avg - b * px_usd) / (a - b)
            self.turnover_usd -= abs(b) * float(inst.contract_size) * px_usd
        if q0 == 0:
            self.avg = 0.0
        self.turnover_usd = max(self.turnover_usd, 0.0)
        self.qty = q0

    def unrealized_usd(
        self, mark: float | None, usd_rate_quote: float | None, usd_rate_settle: float | None
    ) -> float:
        """Mark-to-market of the open quantity (0 when flat or when no price is known)."""
        if self.qty == 0 or mark is None or mark <= 0:
            return 0.0
        inst = self.instrument
        if inst.inverse:
            if usd_rate_settle is None:
                return 0.0
            return float(self.qty) * (1.0 / self.avg - 1.0 / mark) * usd_rate_settle
        if usd_rate_quote is None:
            return 0.0
        return float(self.qty) * float(inst.contract_size) * (mark * usd_rate_quote - self.avg)


@attrs.frozen
class PositionView:
    """A strategy's positions and PnL at one moment (what `ctx.positions()` returns)."""

    positions: dict[tuple[str, str], Decimal]
    realized_pnl: float
    unrealized_pnl: float
    fees: float

    @property
    def net_pnl(self) -> float:
        return self.realized_pnl + self.unrealized_pnl - self.fees


class Ledger:
    """Every position of one strategy, and its PnL in USD (rules in the module docstring)."""

    def __init__(self, strategy: str, market: MarketState) -> None:
        self.strategy = strategy
        self.market = market
        self.positions: dict[tuple[str, str], Position] = {}
        self.realized_usd = 0.0
        self.fees_usd = 0.0
        self.fills = 0
        self.unpriced_fills = 0  # fills seen before any index price: converted at rate 0

    def position(self, venue: str, instrument: str) -> Decimal:
        p = self.positions.get((venue, instrument))
        return _ZERO if p is None else p.qty

    def __iter__(self) -> Iterator[Position]:
        return iter(self.positions.values())

    def _rates(self, inst: Instrument) -> tuple[float | None, float | None]:
        m = self.market
        return m.usd_rate(inst.venue, inst.quote), m.usd_rate(inst.venue, inst.settle)

    def rates(self, inst: Instrument, fee_currency: str = "") -> UsdRates:
        """The USD rates an execution in `inst` is booked at now: (quote, settle, fee
        currency). The order journal keeps them, so positions rebuilt after a restart carry
        the same USD values as when they were booked."""
        m = self.market
        return (
            m.usd_rate(inst.venue, inst.quote),
            m.usd_rate(inst.venue, inst.settle),
            m.usd_rate(inst.venue, fee_currency or inst.settle),
        )

    def on_fill(self, fill: Fill, inst: Instrument, rates: UsdRates | None = None) -> float:
        """Apply a fill at the USD `rates` (those of the market now when None); returns the
        USD PnL it realized."""
        key = (inst.venue, inst.symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(inst)
        rq, rs, rf = rates if rates is not None else self.rates(inst, fill.fee_currency)
        if rq is None or rs is None:
            self.unpriced_fills += 1
        signed = fill.size if fill.side.sign > 0 else -fill.size
        realized = pos.apply(signed, float(fill.price), rq or 0.0, rs or 0.0)
        fee_rate = rf or 0.0
        fee_usd = float(fill.fee) * fee_rate
        pos.fees_usd += fee_usd
        pos.fills += 1
        self.realized_usd += realized
        self.fees_usd += fee_usd
        self.fills += 1
        return realized

    def reverse(self, reversal: FillReversal, inst: Instrument, rates: UsdRates | None = None) -> float:
        """Undo a fill the venue voided: its fee refunded, its count removed, and its quantity
        taken back. A fill that opened or added to the position (the usual case: the voided
        trade is the latest) is undone exactly: quantity, entry average and turnover as before
        it. One that closed part of a position since grown the other way is reversed by the
        opposite execution at its price (the PnL it realized stays; the reopened quantity is
        carried at that price). Returns the USD PnL the reversal realized."""
        pos = self.positions.get((inst.venue, inst.symbol))
        if pos is None:
            pos = self.positions[(inst.venue, inst.symbol)] = Position(inst)
        rq, rs, rf = rates if rates is not None else self.rates(inst, reversal.fee_currency)
        signed = reversal.size if reversal.side.sign > 0 else -reversal.size
        if pos.qty != 0 and (pos.qty > 0) == (signed > 0) and abs(signed) <= abs(pos.qty):
            pos.unapply(signed, float(reversal.price), rq or 0.0)
            realized = 0.0
        else:  # it closed (part of) a position: reopen at the voided price
            turnover = pos.turnover_usd
            realized = pos.apply(-signed, float(reversal.price), rq or 0.0, rs or 0.0)
            pos.turnover_usd = max(turnover - (pos.turnover_usd - turnover), 0.0)
        fee_rate = rf or 0.0
        fee_usd = float(reversal.fee) * fee_rate
        pos.fees_usd -= fee_usd
        pos.fills = max(pos.fills - 1, 0)
        self.realized_usd += realized
        self.fees_usd -= fee_usd
        self.fills = max(self.fills - 1, 0)
        return realized

    def settle(self, inst: Instrument, price: float, rates: UsdRates | None = None) -> float:
        """Close the position in `inst` at `price` (expiry delivery); returns realized USD."""
        pos = self.positions.get((inst.venue, inst.symbol))
        if pos is None or pos.qty == 0:
            return 0.0
        rq, rs, _ = rates if rates is not None else self.rates(inst)
        realized = pos.apply(-pos.qty, price, rq or 0.0, rs or 0.0)
        self.realized_usd += realized
        return realized

    def unrealized_usd(self) -> float:
        total = 0.0
        m = self.market
        for pos in self.positions.values():
            if pos.qty == 0:
                continue
            inst = pos.instrument
            rq, rs = self._rates(inst)
            total += pos.unrealized_usd(m.mark(inst.venue, inst.symbol), rq, rs)
        return total

    def equity_usd(self) -> float:
        """Realized + unrealized - fees: the strategy's PnL so far, marked to market."""
        return self.realized_usd + self.unrealized_usd() - self.fees_usd

    def view(self) -> PositionView:
        return PositionView(
            positions={k: p.qty for k, p in self.positions.items() if p.qty != 0},
            realized_pnl=self.realized_usd,
            unrealized_pnl=self.unrealized_usd(),
            fees=self.fees_usd,
        )

    def funding(self, inst: Instrument, amount: Decimal, currency: str, rate: float | None) -> Decimal:
        """A funding cash flow on `inst` (positive: received) of `amount` `currency`, booked into
        realized PnL at `rate` USD per unit of `currency`; returns the USD booked. The caller
        never books at an unknown rate (it waits for one)."""
        if rate is None:
            raise ValueError(f"funding on {inst.symbol}: no USD rate for {currency}")
        usd = amount * Decimal(repr(rate))
        pos = self.positions.get((inst.venue, inst.symbol))
        if pos is None:
            pos = self.positions[(inst.venue, inst.symbol)] = Position(inst)
        pos.realized_usd += float(usd)
        self.realized_usd += float(usd)
        return usd
