"""Instruments: what can be traded, with the numbers orders are validated against."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from decimal import Decimal

import attrs

from .errors import OrderDenied
from .money import to_decimal

__all__ = ["Instrument", "InstrumentKind", "InstrumentRegistry", "OptionRight"]


class InstrumentKind(enum.StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"
    OUTCOME = "outcome"  # a prediction-market outcome token (Polymarket)


class OptionRight(enum.StrEnum):
    CALL = "call"
    PUT = "put"


def _dec(v: object) -> Decimal:
    return v if isinstance(v, Decimal) else to_decimal(v, "instrument field")


def _steps(v: Iterable[tuple[object, object]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple(sorted((_dec(a), _dec(t)) for a, t in v))


def _positive(_: object, attribute: attrs.Attribute[Decimal], value: Decimal | None) -> None:
    if value is not None and not (value.is_finite() and value > 0):
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class Instrument:
    """One tradable instrument of one venue.

    Units, so that money is counted once and right:
    - `size` of an order is in the venue's amount unit for the instrument: base coin for Deribit
      options and linear (USDC) perpetuals/futures, USD for Deribit inverse perpetuals/futures
      (`inverse=True`), shares for Polymarket outcomes.
    - `contract_size` of a linear instrument is the underlying per unit of `size` (notional =
      size x contract_size x price): 1 where the venue counts amounts in the coin, whatever lot
      it calls its contract size. Inverse instruments are sized in USD and keep the venue's.
    - `price` is in `quote`: BTC per contract for BTC options, USD for BTC-PERPETUAL.
    - `settle` is the currency PnL and fees are paid in.
    - `tick_size_steps`: (above_price, tick) pairs; above each price the coarser tick applies
      (Deribit options: 0.0001 below 0.005 BTC, 0.0005 above).
    - Sizes: at least `min_size`, in steps of `size_step` (when None, of `min_size` itself, as on
      Deribit; Polymarket: at least 5 shares, in steps of 0.01).
    """

    venue: str
    symbol: str
    kind: InstrumentKind
    base: str
    quote: str
    settle: str
    tick_size: Decimal = attrs.field(converter=_dec, validator=_positive)
    min_size: Decimal = attrs.field(converter=_dec, validator=_positive)
    contract_size: Decimal = attrs.field(default=Decimal(1), converter=_dec, validator=_positive)
    inverse: bool = False
    expiry_ns: int | None = None
    strike: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_dec))
    right: OptionRight | None = None
    tick_size_steps: tuple[tuple[Decimal, Decimal], ...] = attrs.field(default=(), converter=_steps)
    maker_fee: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_dec))
    taker_fee: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_dec))
    active: bool = True
    size_step: Decimal | None = attrs.field(
        default=None, converter=attrs.converters.optional(_dec), validator=_positive
    )

    @property
    def lot(self) -> Decimal:
        """The size increment: `size_step`, else `min_size`."""
        return self.size_step if self.size_step is not None else self.min_size

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.symbol)

    @property
    def is_option(self) -> bool:
        return self.kind is InstrumentKind.OPTION

    def tick_for(self, price: Decimal) -> Decimal:
        """The tick that applies at `price` (the finest tick below the first step)."""
        tick = self.tick_size
        for above, step_tick in self.tick_size_steps:
            if price > above:
                tick = step_tick
        return tick

    def round_price(self, price: Decimal | float, *, up: bool = False) -> Decimal:
        """`price` rounded to a valid tick (down for bids by default, `up=True` for asks)."""
        p = _dec(price)
        tick = self.tick_for(p)
        q = (p / tick).to_integral_value(rounding="ROUND_CEILING" if up else "ROUND_FLOOR")
        return q * tick

    def round_size(self, size: Decimal | float) -> Decimal:
        """`size` rounded down to the size grid (a multiple of `lot`); it may then be below
        `min_size`, which the caller checks."""
        s = _dec(size)
        lot = self.lot
        return (s / lot).to_integral_value(rounding="ROUND_FLOOR") * lot

    def check_order(
        self, price: Decimal | None, size: Decimal, *, client_order_id: str | None = None
    ) -> None:
        """Raise `OrderDenied` unless `price` sits on the tick grid and `size` is a positive
        multiple of the minimum size. `price` None is a market order (no price to check).
        An order that passes every check returns at once (no refusal built); any other runs the
        checks one by one (`_check_order`), the same expressions in the same order, so it is
        refused by the same first failing check, with the same reason."""
        lot = self.size_step if self.size_step is not None else self.min_size
        if self.active and size.is_finite() and size >= self.min_size and size % lot == 0:
            if price is None:
                return
            if price.is_finite() and price > 0:
                tick = self.tick_for(price) if self.tick_size_steps else self.tick_size
                if price % tick == 0:
                    return
        self._check_order(price, size, client_order_id)

    def _check_order(self, price: Decimal | None, size: Decimal, client_order_id: str | None) -> None:
        """`check_order`'s checks in order, each with its reason (its fast path above)."""

        def reject(reason: str) -> OrderDenied:
            return OrderDenied(
                reason, venue=self.venue, instrument=self.symbol, client_order_id=client_order_id
            )

        if not self.active:
            raise reject(f"instrument {self.symbol} is not active")
        if not size.is_finite() or size <= 0:
            raise reject(f"size {size} must be positive")
        if size < self.min_size:
            raise reject(f"size {size} is below the minimum size {self.min_size}")
        if size % self.lot != 0:
            what = "size step" if self.size_step is not None else "minimum size"
            raise reject(f"size {size} is not a multiple of the {what} {self.lot}")
        if price is not None:
            if not price.is_finite() or price <= 0:
                raise reject(f"price {price} must be positive")
            tick = self.tick_for(price)
            if price % tick != 0:
                raise reject(f"price {price} is not a multiple of the tick size {tick}")


class InstrumentRegistry:
    """The instruments known to the engine, by (venue, symbol). Venue connectors fill it (from
    `get_instruments` responses, live or recorded); orders are checked against it."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_key: dict[tuple[str, str], Instrument] = {}
        for inst in instruments:
            self.add(inst)

    def add(self, instrument: Instrument) -> None:
        self._by_key[instrument.key] = instrument

    def get(self, venue: str, symbol: str) -> Instrument | None:
        return self._by_key.get((venue, symbol))

    def require(self, venue: str, symbol: str, *, client_order_id: str | None = None) -> Instrument:
        """The instrument, or `OrderDenied` naming it as unknown."""
        inst = self._by_key.get((venue, symbol))
        if inst is None:
            raise OrderDenied(
                f"unknown instrument {venue}:{symbol}",
                venue=venue,
                instrument=symbol,
                client_order_id=client_order_id,
            )
        return inst

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)
