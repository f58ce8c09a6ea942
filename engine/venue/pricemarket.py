"""Crypto price markets: a catalog market read as "the underlying settles above / below / between
strikes at an instant", whatever the venue.

A venue's catalog reads its own market texts (`MarketCatalog.price_markets`; Polymarket's reader is
`connectors/polymarket/pricemarkets.py`) and hands back `PriceMarket`s, which a strategy prices
against an options surface:

    markets, unread = catalog.price_markets("BTC")
    surface = ctx.surface("BTC")
    for m in markets:
        fair = m.probability(surface)          # P(YES) at m.resolves_at_ns, from the options

What a reader cannot read is an `Unrecognized` with a one-line reason, never a guess.

The surface is taken as anything with the three probability queries (`ProbabilitySurface`):
`tradingd.engine.surface.VolSurface` is one. The venue room does not import the surface room
(tests/house/test_layout.py orders the rooms), and a test can hand in a small fake.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

import attrs

from .catalog import CatalogMarket, iso_utc

__all__ = [
    "PriceCondition",
    "PriceMarket",
    "ProbabilitySurface",
    "Recognizer",
    "Unrecognized",
    "sort_price_markets",
]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class PriceCondition(enum.StrEnum):
    """What the YES outcome of a price market pays on: the settling price strictly above `low`,
    below `high`, or between the two (the boundaries' strictness does not change a probability
    of a continuous price, so it is not modelled)."""

    ABOVE = "above"
    BELOW = "below"
    BETWEEN = "between"


class ProbabilitySurface(Protocol):
    """The queries `PriceMarket.probability` asks of a volatility surface (`VolSurface`'s)."""

    def prob_above(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float: ...

    def prob_below(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float: ...

    def prob_between(
        self, low: float, high: float, expiry_ns: int, *, now_ns: int | None = None
    ) -> float: ...


def _strike(value: Decimal | None) -> None:
    if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value <= 0):
        raise ValueError(f"a strike must be a positive finite Decimal, got {value!r}")


@attrs.frozen
class PriceMarket:
    """A market whose YES outcome pays when `underlying` settles per `condition` at `resolves_at_ns`.

    `low` is the strike of an ABOVE market and the lower bound of a BETWEEN one; `high` the strike
    of a BELOW market and the upper bound of a BETWEEN one (the other is None). `resolves_at_ns`
    is the instant the settling price is taken (UTC ns); `source` says where that price comes from
    and how the instant was read (e.g. "binance BTC/USDT 1m close 12:00 ET"; "end_date; rule not
    stated" when the market states no rule and its end date was taken). `yes_token`/`no_token`
    are the instruments that trade the two outcomes. Built with keywords; refuses a condition
    whose bounds do not fit it.
    """

    market: CatalogMarket
    underlying: str
    condition: PriceCondition
    low: Decimal | None
    high: Decimal | None
    resolves_at_ns: int
    source: str
    yes_token: str
    no_token: str

    def __attrs_post_init__(self) -> None:
        _strike(self.low)
        _strike(self.high)
        wanted = {
            PriceCondition.ABOVE: (True, False),
            PriceCondition.BELOW: (False, True),
            PriceCondition.BETWEEN: (True, True),
        }[PriceCondition(self.condition)]
        if (self.low is not None, self.high is not None) != wanted:
            raise ValueError(
                f"a {self.condition} market needs {'low' if wanted[0] else 'no low'} and "
                f"{'high' if wanted[1] else 'no high'}, got low={self.low} high={self.high}"
            )
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"a between market needs low < high, got {self.low} and {self.high}")
        if not self.underlying or self.yes_token == self.no_token:
            raise ValueError("a price market needs an underlying and two distinct tokens")

    @property
    def strikes(self) -> tuple[Decimal, ...]:
        """The strikes the condition names, low to high."""
        return tuple(s for s in (self.low, self.high) if s is not None)

    def describe(self) -> str:
        """`BTC > 102000`, `BTC < 56000`, `BTC in (66000, 68000)`: the condition in one short line."""
        if self.condition is PriceCondition.ABOVE:
            return f"{self.underlying} > {self.low}"
        if self.condition is PriceCondition.BELOW:
            return f"{self.underlying} < {self.high}"
        return f"{self.underlying} in ({self.low}, {self.high})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`tradingd catalog price-markets --json`): the market's slug, question and
        condition id, then what was read; strikes as strings, `resolves_at` ISO-8601 UTC."""
        return {
            "slug": self.market.slug,
            "question": self.market.question,
            "condition_id": self.market.condition_id,
            "underlying": self.underlying,
            "condition": str(self.condition),
            "low": None if self.low is None else str(self.low),
            "high": None if self.high is None else str(self.high),
            "resolves_at": iso_utc(_EPOCH + dt.timedelta(microseconds=self.resolves_at_ns // 1000)),
            "resolves_at_ns": self.resolves_at_ns,
            "source": self.source,
            "yes_token": self.yes_token,
            "no_token": self.no_token,
        }

    def probability(self, surface: ProbabilitySurface, *, now_ns: int | None = None) -> float:
        """P(YES) from `surface` (the options-implied probability of the condition at
        `resolves_at_ns`; `now_ns` None: the surface's own time). Raises what the surface raises
        for a query it cannot answer (`OutsideSurface`: a resolution after its last expiry)."""
        if self.condition is PriceCondition.ABOVE:
            assert self.low is not None
            return surface.prob_above(float(self.low), self.resolves_at_ns, now_ns=now_ns)
        if self.condition is PriceCondition.BELOW:
            assert self.high is not None
            return surface.prob_below(float(self.high), self.resolves_at_ns, now_ns=now_ns)
        assert self.low is not None
        assert self.high is not None
        return surface.prob_between(float(self.low), float(self.high), self.resolves_at_ns, now_ns=now_ns)


@attrs.frozen
class Unrecognized:
    """A market that looks like a crypto price market but could not be read: `reason` says why,
    in one line. `underlying` is the asset its text names, when it names one (for filtering)."""

    market: CatalogMarket
    reason: str
    underlying: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the market's slug, question and condition id, the asset it names, why."""
        return {
            "slug": self.market.slug,
            "question": self.market.question,
            "condition_id": self.market.condition_id,
            "underlying": self.underlying,
            "reason": self.reason,
        }


Recognizer = Callable[[CatalogMarket], PriceMarket | Unrecognized | None]
"""A venue's reader of its market texts: a `PriceMarket`, an `Unrecognized` (it looks like a crypto
price market but cannot be read), or None (it does not look like one: not reported)."""


def sort_price_markets(
    markets: Iterable[CatalogMarket], recognize: Recognizer, underlying: str | None = None
) -> tuple[list[PriceMarket], list[Unrecognized]]:
    """`MarketCatalog.price_markets` over `markets`: each tradable one through `recognize`, kept
    when it is (or names) `underlying` (None: every underlying; compared ignoring case). Both lists
    in the order of `markets`. A market `recognize` raises on is reported (`Unrecognized`, the
    error as its reason, whatever `underlying`), and the others are still read."""
    wanted = None if underlying is None else underlying.strip().upper()
    read: list[PriceMarket] = []
    unread: list[Unrecognized] = []
    for market in markets:
        if not market.tradable:
            continue
        try:
            found = recognize(market)
        except Exception as exc:  # one hostile market must not stop the others
            said = " ".join(str(exc).split())[:120]
            # Which asset it names is unknown: reported whatever `underlying` asked for.
            unread.append(Unrecognized(market, f"could not be read ({type(exc).__name__}: {said})"))
            continue
        if isinstance(found, PriceMarket):
            if wanted is None or found.underlying == wanted:
                read.append(found)
        elif found is not None and (wanted is None or found.underlying == wanted):
            unread.append(found)
    return read, unread
