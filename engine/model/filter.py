"""Instrument filters: which instruments a strategy trades, said once in the config.

A strategy that says "ETH calls expiring in 7-30 days within 10% of spot" writes

    [strategies.params.instruments]
    currencies = ["ETH"]
    kinds = ["option"]
    right = "call"
    min_expiry_days = 7
    max_expiry_days = 30
    strike_within = 0.10

and its `Params` class holds an `instruments: InstrumentFilter` field; the config loader structures
the table with cattrs like any other, and `select(registry, now_ns=..., spot=...)` gives the live
set. The filter knows no venue: it reads the engine's `Instrument` fields only, so the same table
works on Deribit, Derive or Polymarket instruments.

Rules, so a reader of a config knows exactly what it selects:

- Every constraint left out (empty list, None) selects everything; the constraints combine with AND.
- `currencies` matches the base currency (`ETH` in `ETH-PERP`, `BTC-27NOV26-90000-C`), any case.
- `min_expiry_days` / `max_expiry_days` bound the time from `now_ns` to expiry, inclusive. Strike
  constraints (`min_strike`, `max_strike`, `strike_within`) and `right` read the option fields.
  An instrument that lacks the field a constraint reads (a perpetual has no expiry, strike or
  right) is kept only when its kind is named in `kinds`: `kinds = ["option", "perpetual"]` with an
  expiry window gives the options in the window plus the perpetuals, while `kinds = []` with an
  expiry window gives only instruments that expire in it.
- `strike_within = f` keeps strikes with |strike - spot| <= f x spot, computed in decimal (a strike
  exactly 10% away is in). It needs the spot price of each currency it meets: `select` raises
  `ValueError` naming the currency rather than guess.
- `active_only` (default true) drops instruments the venue marks inactive and those already
  expired at `now_ns`.

`select` returns a new list in a fixed order whatever the input order: venue, currency, kind
(spot, perpetual, future, option, outcome), expiry, strike, call before put, symbol.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, get_args

import attrs

from .events import ALL_KINDS, DataKind, Subscription
from .instruments import Instrument, InstrumentKind, OptionRight
from .money import from_float, optional, positive

__all__ = ["InstrumentFilter", "KindName", "LiveSelection", "RightName"]

KindName = Literal["spot", "perpetual", "future", "option", "outcome"]
RightName = Literal["call", "put"]

# InstrumentKind's values, typed for the config (tests pin that the two agree).
_KINDS: dict[str, KindName] = {k: k for k in get_args(KindName)}
_DAY_NS = 86_400 * 1_000_000_000
_KIND_ORDER = {k: i for i, k in enumerate(InstrumentKind)}
_NO_EXPIRY = 1 << 126  # sorts instruments without expiry after every dated one


def _names(field: str, value: Iterable[str], *, upper: bool) -> list[str]:
    if isinstance(value, str):
        raise ValueError(f"{field}: expected a list of names, got the string {value!r}")
    out: list[str] = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{field}: expected non-empty names, got {v!r}")
        name = v.strip().upper() if upper else v.strip()
        if name not in out:
            out.append(name)
    return out


def _venues(value: Iterable[str]) -> list[str]:
    return _names("venues", value, upper=False)


def _currencies(value: Iterable[str]) -> list[str]:
    return _names("currencies", value, upper=True)


def _quotes(value: Iterable[str]) -> list[str]:
    return _names("quotes", value, upper=True)


def _kinds(value: Iterable[str]) -> list[KindName]:
    if isinstance(value, str):
        raise ValueError(f"kinds: expected a list of kinds, got the string {value!r}")
    out: list[KindName] = []
    for v in value:
        kind = _KINDS.get(v) if isinstance(v, str) else None
        if kind is None:
            raise ValueError(f"kinds: expected kinds among {', '.join(_KINDS)}, got {v!r}")
        if kind not in out:
            out.append(kind)
    return out


def _right(value: str | None) -> RightName | None:
    if value is None:
        return None
    if value not in ("call", "put"):
        raise ValueError(f"right: expected 'call' or 'put', got {value!r}")
    return OptionRight(value).value


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: float | Decimal | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{attribute.name}: expected a number, got {value!r}")
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    if not finite or value < 0:
        raise ValueError(f"{attribute.name}: expected a finite number >= 0, got {value}")


def _strike(value: object) -> Decimal | None:
    return optional(value, "strike")


@attrs.frozen
class InstrumentFilter:
    """Which instruments to trade (see the module docstring for the exact rules).

    Structured from a TOML table by the config loader; every field is optional. Holds lists (as
    TOML gives them), so it is immutable but not hashable.
    """

    venues: list[str] = attrs.field(factory=list, converter=_venues)
    currencies: list[str] = attrs.field(factory=list, converter=_currencies)
    quotes: list[str] = attrs.field(factory=list, converter=_quotes)
    kinds: list[KindName] = attrs.field(factory=list, converter=_kinds)
    right: RightName | None = attrs.field(default=None, converter=_right)
    min_expiry_days: float | None = attrs.field(default=None, validator=_non_negative)
    max_expiry_days: float | None = attrs.field(default=None, validator=_non_negative)
    min_strike: Decimal | None = attrs.field(default=None, converter=_strike, validator=_non_negative)
    max_strike: Decimal | None = attrs.field(default=None, converter=_strike, validator=_non_negative)
    strike_within: float | None = attrs.field(default=None, validator=_non_negative)
    active_only: bool = True

    def __attrs_post_init__(self) -> None:
        lo, hi = self.min_expiry_days, self.max_expiry_days
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f"max_expiry_days: expected at least min_expiry_days ({lo}), got {hi}")
        klo, khi = self.min_strike, self.max_strike
        if klo is not None and khi is not None and khi < klo:
            raise ValueError(f"max_strike: expected at least min_strike ({klo}), got {khi}")

    # ------------------------------------------------------------------------------ queries

    @property
    def needs_spot(self) -> bool:
        """True when `select` needs spot prices (a `strike_within` constraint)."""
        return self.strike_within is not None

    def select(
        self,
        instruments: Iterable[Instrument],
        *,
        now_ns: int,
        spot: float | Decimal | Mapping[str, float | Decimal] | None = None,
    ) -> list[Instrument]:
        """The instruments that pass, in the module docstring's order.

        `now_ns` is the time the expiry window counts from (the strategy's clock: wall time live,
        simulated time in backtests). `spot` is the underlying price for `strike_within`: one
        number when the filter names a single currency, else a mapping currency -> price. Raises
        `ValueError` when `strike_within` meets a currency whose spot price is not given.
        """
        spots = self._spots(spot)
        chosen = [inst for inst in instruments if self._passes(inst, now_ns, spots)]
        chosen.sort(key=_order)
        return chosen

    def matches(
        self,
        instrument: Instrument,
        *,
        now_ns: int,
        spot: float | Decimal | Mapping[str, float | Decimal] | None = None,
    ) -> bool:
        """True when `instrument` passes the filter (same arguments as `select`)."""
        return self._passes(instrument, now_ns, self._spots(spot))

    # ---------------------------------------------------------------------------- internals

    def _spots(
        self, spot: float | Decimal | Mapping[str, float | Decimal] | None
    ) -> Mapping[str, Decimal] | Decimal | None:
        if spot is None or not self.needs_spot:
            return None
        if isinstance(spot, Mapping):
            return {str(k).upper(): positive(v, f"spot price {k!r}") for k, v in spot.items()}
        if len(self.currencies) != 1:
            raise ValueError(
                "a single spot price needs a filter on exactly one currency; "
                "pass a mapping currency -> price instead"
            )
        return positive(spot, "spot price")

    def _passes(self, inst: Instrument, now_ns: int, spots: Mapping[str, Decimal] | Decimal | None) -> bool:
        if self.venues and inst.venue not in self.venues:
            return False
        if self.currencies and inst.base.upper() not in self.currencies:
            return False
        if self.quotes and inst.quote.upper() not in self.quotes:
            return False
        kind = inst.kind.value
        if self.kinds and kind not in self.kinds:
            return False
        named = kind in self.kinds  # an instrument lacking a constrained field passes only if named
        expiry = inst.expiry_ns
        if self.active_only and (not inst.active or (expiry is not None and expiry <= now_ns)):
            return False
        if self.min_expiry_days is not None or self.max_expiry_days is not None:
            if expiry is None:
                if not named:
                    return False
            else:
                if self.min_expiry_days is not None and expiry < now_ns + _days_ns(self.min_expiry_days):
                    return False
                if self.max_expiry_days is not None and expiry > now_ns + _days_ns(self.max_expiry_days):
                    return False
        if self.right is not None:
            if inst.right is None:
                if not named:
                    return False
            elif inst.right.value != self.right:
                return False
        if self.min_strike is not None or self.max_strike is not None or self.strike_within is not None:
            strike = inst.strike
            if strike is None:
                return named
            if self.min_strike is not None and strike < self.min_strike:
                return False
            if self.max_strike is not None and strike > self.max_strike:
                return False
            if self.strike_within is not None:
                s = self._spot_of(inst.base.upper(), spots)
                if abs(strike - s) > from_float(self.strike_within, "strike_within") * s:
                    return False
        return True

    def _spot_of(self, currency: str, spots: Mapping[str, Decimal] | Decimal | None) -> Decimal:
        if isinstance(spots, Decimal):
            return spots
        found = None if spots is None else spots.get(currency)
        if found is None:
            raise ValueError(f"strike_within needs the spot price of {currency}; none was given")
        return found


def _days_ns(days: float) -> int:
    return round(days * _DAY_NS)


def _order(inst: Instrument) -> tuple[Any, ...]:
    return (
        inst.venue,
        inst.base.upper(),
        _KIND_ORDER[inst.kind],
        _NO_EXPIRY if inst.expiry_ns is None else inst.expiry_ns,
        Decimal(0) if inst.strike is None else inst.strike,
        0 if inst.right is not OptionRight.PUT else 1,
        inst.symbol,
    )


class LiveSelection:
    """A filter's live set, with the strategy's subscriptions following it.

    `refresh(ctx)` selects again (new listings and expiries, strikes drifting in or out of a
    `strike_within` band as spot moves), subscribes what entered and unsubscribes what left,
    except instruments in `keep` (those the strategy still holds or has orders in: it must go on
    seeing them to get out). Call it from `on_start`, on an `instrument_state` status, and when the
    index has moved; `due(now_ns, spot)` says when: every `every_s` seconds, or once spot has
    moved `move` (a fraction) since the last selection. Returns (entered, left), sorted.
    """

    def __init__(
        self,
        instruments: InstrumentFilter,
        *,
        venue: str | None = None,
        kinds: Iterable[str] | None = None,
        every_s: float = 300.0,
        move: float = 0.01,
    ) -> None:
        self.filter = instruments
        self.venue = venue
        self.kinds = frozenset(DataKind(k) for k in kinds) if kinds is not None else ALL_KINDS
        self.every_ns = int(every_s * 1e9)
        self.move = move
        self.current: dict[str, Instrument] = {}  # symbol -> instrument
        self.selected_ns: int | None = None
        self.selected_spot: float | None = None

    def due(self, now_ns: int, spot: float | None = None) -> bool:
        if self.selected_ns is None or now_ns - self.selected_ns >= self.every_ns:
            return True
        if spot is not None and self.selected_spot:
            return abs(spot / self.selected_spot - 1.0) >= self.move
        return False

    def refresh(
        self, ctx: Any, *, keep: Iterable[str] = (), spot: float | None = None
    ) -> tuple[list[str], list[str]]:
        chosen = {i.symbol: i for i in ctx.select(self.filter, venue=self.venue)}
        kept = set(keep)
        entered = sorted(set(chosen) - set(self.current))
        left = sorted(s for s in set(self.current) - set(chosen) if s not in kept)
        for symbol in set(self.current) - set(chosen):
            if symbol in kept:
                chosen[symbol] = self.current[symbol]
        if entered:
            ctx.subscribe([Subscription(chosen[s].venue, s, self.kinds) for s in entered])
        if left:
            ctx.unsubscribe([Subscription(self.current[s].venue, s, self.kinds) for s in left])
        self.current = chosen
        self.selected_ns = ctx.now_ns()
        if spot is not None:
            self.selected_spot = spot
        return entered, left
