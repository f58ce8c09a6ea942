"""Bitcoin price markets for the synthetic Polymarket recording (`generate = {crypto = "deribit"}`):
the two ladders Polymarket lists for a day, priced from the BTC path of the synthetic Deribit
sample of the same seed and start, so that a backtest over both recordings sees one market.

- "Bitcoin above ___ on <date>?": seven legs "Will the price of Bitcoin be above $K on <date>?",
  strikes 2,000 apart around the starting spot;
- "Bitcoin price on <date>?": a neg-risk range ladder on the same edges, "less than $K", then
  "between $K and $K + 2,000" legs, then "greater than $K".

<date> is the date of the Deribit sample's near expiry (08:00 UTC that Friday); the markets
resolve at noon New York time that day (the Binance BTC/USDT 1 minute candle of 12:00 ET), 16:00
or 17:00 UTC, after the expiry and before the far one: inside the options' surface. The texts
follow real Gamma markets (question, description, slugs, endDate; citations in
/work/wt/notes/issue20-research.md §2); the range legs' descriptions, which no public source
quotes verbatim, are the "above" description with the condition changed.

The price of a leg's YES token is the probability the synthetic market's own model gives now
(`SynthMarket.model_prob_above`: its skewed Black-Scholes vols, interpolated in total variance
between its listed expiries, at the resolution instant), plus a mispricing (`Mispricing`): a
mean-reverting process in logit space with occasional kicks, so gaps wider than the crypto taker
fee and half a tick open now and then and close again. Range legs are differences of the same
probabilities, each with its own mispricing, normalised so that the ladder sums to 1.

A leg's mispricing starts at 0, so the first gap wider than the fee opens when the walk decides
(a kick: one every 80 s or so of market time across the 15 legs). `PolymarketFeed(mispriced=d)`
(`generate = {mispriced = d}`, `tradingd simulate polymarket --mispriced d`) starts one leg's
mispricing at the value that puts its YES price `d` away from the model's probability
(`Mispricing.starting`: d < 0, YES cheap), so a gap is open from the first quote, then closes as
a kick's does (time constant `_TAU_S`). The leg is `mispriced_leg`, an index into the legs in
`bitcoin_legs` order, by default `ATM_LEG`: the "above" leg at the strike nearest the starting
spot. The default, d = 0, draws nothing more and changes nothing: the same bytes as before the
option.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import math
import random
from typing import Final, Literal

import attrs

from ..synth import SynthMarket

__all__ = [
    "ABOVE_DESCRIPTION",
    "ATM_LEG",
    "BtcPath",
    "Mispricing",
    "PriceLeg",
    "bitcoin_legs",
    "noon_et_ms",
]

_MS: Final = 1_000_000
# Strikes and range edges: this far apart, this many either side of the one nearest the spot.
STRIKE_STEP: Final = 2000
STRIKES_EACH_SIDE: Final = 3
# In `bitcoin_legs` order (the "above" legs first, low to high), the "above" leg at the strike
# nearest the starting spot: the leg `mispriced` applies to unless told another.
ATM_LEG: Final = STRIKES_EACH_SIDE

_SOURCE: Final = (
    '\n\nThe resolution source for this market is Binance, specifically the BTC/USDT "Close" prices '
    'currently available at https://www.binance.com/en/trade/BTC_USDT with "1m" and "Candles" selected '
    "on the top bar.\n\nPlease note that this market is about the price according to Binance BTC/USDT, "
    "not according to other exchanges or trading pairs.\n\nPrice precision is determined by the number "
    "of decimal places in the source."
)


def _rule(condition: str) -> str:
    return (
        'This market will resolve to "Yes" if the Binance 1 minute candle for BTC/USDT 12:00 in the ET '
        f'timezone (noon) on the date specified in the title has a final "Close" price {condition}. '
        'Otherwise, this market will resolve to "No".' + _SOURCE
    )


# Verbatim from real "Bitcoin above ___" markets (research notes §2).
ABOVE_DESCRIPTION: Final = _rule("higher than the price specified in the title")
_BELOW_DESCRIPTION: Final = _rule("lower than the price specified in the title")
_BETWEEN_DESCRIPTION: Final = _rule("within the range specified in the title")


def noon_et_ms(day: dt.date) -> int:
    """12:00 in New York on `day`, as UTC ms: 16:00 UTC under daylight saving time, 17:00 UTC
    otherwise. Daylight saving time by the US rules: since 2007 from the second Sunday of March
    to the first Sunday of November, from 1987 to 2006 from the first Sunday of April to the
    last Sunday of October (ValueError before 1987)."""
    if day.year < 1987:
        raise ValueError(f"no daylight saving rule here for {day.year} (before 1987)")

    def sunday_from(first: dt.date) -> dt.date:  # the first Sunday on or after `first`
        return first + dt.timedelta(days=(6 - first.weekday()) % 7)

    if day.year >= 2007:
        dst_start = sunday_from(dt.date(day.year, 3, 8))
        dst_end = sunday_from(dt.date(day.year, 11, 1))
    else:
        dst_start = sunday_from(dt.date(day.year, 4, 1))
        dst_end = sunday_from(dt.date(day.year, 10, 25))
    hour = 16 if dst_start <= day < dst_end else 17
    return calendar.timegm((day.year, day.month, day.day, hour, 0, 0)) * 1000


Condition = Literal["above", "below", "between"]


@attrs.frozen
class PriceLeg:
    """What makes a market a price leg: YES pays if the price at `resolves_ms` is above `low`
    ("above"), below `high` ("below"), or between them; the event it belongs to and its place
    in that event's ladder (`order`, Gamma's groupItemThreshold)."""

    condition: Condition
    low: int | None
    high: int | None
    resolves_ms: int
    event_slug: str
    event_title: str
    description: str
    event_description: str
    title: str  # groupItemTitle: "92,000", "<86,000", "86,000-88,000", ">98,000"
    order: int

    def probability(self, above: dict[int, float]) -> float:
        """YES's probability from P(price > K) for each edge K."""
        if self.condition == "above":
            assert self.low is not None
            return above[self.low]
        if self.condition == "below":
            assert self.high is not None
            return 1.0 - above[self.high]
        assert self.low is not None
        assert self.high is not None
        return above[self.low] - above[self.high]


def bitcoin_legs(spot: float, near_expiry_ms: int) -> list[tuple[str, str, PriceLeg]]:
    """(slug, question, leg) of both ladders for a market starting at `spot` whose Deribit near
    expiry is `near_expiry_ms`: the "above" legs first, then the range legs, low to high."""
    day = dt.datetime.fromtimestamp(near_expiry_ms / 1000, dt.UTC).date()
    resolves = noon_et_ms(day)
    on = f"{day.strftime('%B')} {day.day}"  # "November 27", as the titles write it
    tail = f"{day.strftime('%B').lower()}-{day.day}"
    year = f"-{day.year}"
    centre = round(spot / STRIKE_STEP) * STRIKE_STEP
    edges = [centre + STRIKE_STEP * j for j in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1)]
    above_event, range_event = f"bitcoin-above-on-{tail}{year}", f"bitcoin-price-on-{tail}{year}"
    above_title, range_title = f"Bitcoin above ___ on {on}?", f"Bitcoin price on {on}?"
    legs: list[tuple[str, str, PriceLeg]] = []
    for order, k in enumerate(edges):
        legs.append(
            (
                f"bitcoin-above-{k // 1000}k-on-{tail}",
                f"Will the price of Bitcoin be above ${k:,} on {on}?",
                PriceLeg(
                    "above",
                    k,
                    None,
                    resolves,
                    above_event,
                    above_title,
                    ABOVE_DESCRIPTION,
                    ABOVE_DESCRIPTION,
                    f"{k:,}",
                    order,
                ),
            )
        )
    lowest, highest = edges[0], edges[-1]
    legs.append(
        (
            f"will-the-price-of-bitcoin-be-less-than-{lowest}-on-{tail}{year}",
            f"Will the price of Bitcoin be less than ${lowest:,} on {on}?",
            PriceLeg(
                "below",
                None,
                lowest,
                resolves,
                range_event,
                range_title,
                _BELOW_DESCRIPTION,
                _BETWEEN_DESCRIPTION,
                f"<{lowest:,}",
                0,
            ),
        )
    )
    for order, (lo, hi) in enumerate(itertools.pairwise(edges), start=1):
        legs.append(
            (
                f"will-the-price-of-bitcoin-be-between-{lo}-{hi}-on-{tail}{year}",
                f"Will the price of Bitcoin be between ${lo:,} and ${hi:,} on {on}?",
                PriceLeg(
                    "between",
                    lo,
                    hi,
                    resolves,
                    range_event,
                    range_title,
                    _BETWEEN_DESCRIPTION,
                    _BETWEEN_DESCRIPTION,
                    f"{lo:,}-{hi:,}",
                    order,
                ),
            )
        )
    legs.append(
        (
            f"will-the-price-of-bitcoin-be-greater-than-{highest}-on-{tail}{year}",
            f"Will the price of Bitcoin be greater than ${highest:,} on {on}?",
            PriceLeg(
                "above",
                highest,
                None,
                resolves,
                range_event,
                range_title,
                ABOVE_DESCRIPTION,
                _BETWEEN_DESCRIPTION,
                f">{highest:,}",
                len(edges),
            ),
        )
    )
    return legs


class BtcPath:
    """The synthetic Deribit market of a seed, start and `strikes` (`deribit.generator.build_market`),
    stepped along with the Polymarket recording: its BTC index is the Deribit sample's, to the
    float (the market draws its path and its books from one random stream, so the path depends on
    the instruments: the same `strikes` as the Deribit sample's is needed)."""

    def __init__(self, seed: int, start_ns: int, strikes: int) -> None:
        from ..deribit.generator import build_market, expiries

        self.market: SynthMarket
        self.market, _ = build_market(seed, start_ns, strikes)
        self.underlying = [u.name for u in self.market.underlyings].index("BTC")
        self.near_expiry_ms = expiries(start_ns // _MS)[0]

    @property
    def now_ns(self) -> int:
        return self.market.now_ns

    def advance_to(self, ns: int) -> None:
        """Step the market while a whole step fits before `ns`."""
        market = self.market
        while market.now_ns + market.step_ns <= ns:
            market.step()

    def spot(self) -> float:
        return self.market.index(self.underlying)

    def prob_above(self, strike: float, at_ms: int) -> float:
        return self.market.model_prob_above(self.underlying, strike, at_ms * _MS)


# The mispricing: an Ornstein-Uhlenbeck process in logit space (time constant _TAU_S, stationary
# sd _SD: under half a point of probability at 0.5) kicked at Poisson times (one every _KICK_S
# per leg on average) by _KICK logits either way: 3-7 points at 0.5, against a taker fee of
# 1.75 points there plus half a tick (0.5): a gap worth taking, closed again over a few minutes.
_TAU_S: Final = 150.0
_SD: Final = 0.02
_KICK_S: Final = 1200.0
_KICK: Final = (0.12, 0.30)


class Mispricing:
    """One leg's mispricing in logit space: `x` is added to the logit of the model probability.
    It starts at `x` (0: none; `starting` gives the `x` of a gap in probability)."""

    __slots__ = ("x",)

    def __init__(self, x: float = 0.0) -> None:
        self.x = x

    @staticmethod
    def starting(p: float, by: float) -> float:
        """The `x` that quotes a leg of model probability `p` at `p + by` (ValueError unless both
        are inside (0, 1))."""
        q = p + by
        if not (0.0 < p < 1.0 and 0.0 < q < 1.0):
            raise ValueError(f"a probability of {p:.4f} mispriced by {by:+g} is {q:.4f}, outside (0, 1)")
        return math.log(q / (1.0 - q)) - math.log(p / (1.0 - p))

    def step(self, dt_s: float, rng: random.Random) -> None:
        a = dt_s / _TAU_S
        x = self.x - self.x * a + _SD * math.sqrt(2.0 * a) * rng.gauss(0.0, 1.0)
        if rng.random() < dt_s / _KICK_S:
            x += (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(*_KICK)
        self.x = x
