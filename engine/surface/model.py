"""The volatility surface's value types and its queries, in pure `math` (a probability query costs
microseconds and imports nothing heavy; the fit, with numpy and scipy, is `fit.py`).

Conventions (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces", arXiv:1204.0646):
log-moneyness k = ln(K / F(t)), total implied variance w(k, t) = iv(k, t)^2 * t, t in years of
365 days (`engine.model.pricing.YEAR_SECONDS`). Prices are undiscounted Black prices on the forward
F, in the forward's currency (USD for Deribit's BTC options: `underlying_price`): what a payoff at
expiry is worth in that currency at expiry. A probability is the risk-neutral one under the
forward's measure, the number a binary market paying 1 at expiry should trade at before discounting.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ..model.events import Greeks
from ..model.pricing import YEAR_SECONDS

__all__ = [
    "MAX_EXPIRY_S",
    "MAX_IV",
    "MAX_MONEYNESS",
    "MAX_REFIT_INTERVAL_S",
    "MIN_IV",
    "OutsideSurface",
    "SliceFit",
    "SurfaceQuote",
    "SurfaceSettings",
    "SviParams",
    "VolSurface",
    "calendar_check",
]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_NS_PER_YEAR = 1e9 * YEAR_SECONDS
# The most `SurfaceSettings.min_refit_interval_s` and `max_refit_interval_s` may be (a year): a
# longer interval means nothing for a surface, and the service holds them in integer ns.
MAX_REFIT_INTERVAL_S = 365 * 86_400.0

# What a fit takes from a quote (engine/surface/fit.py, step 1). Anything a venue sends may be
# absurd; these bounds reject what no venue sends, never a real quote, so that one absurd number
# is its quote's problem (dropped, counted), never its expiry's: a mark IV of 1e-208, finite and
# positive, overflowed the fit's linear solve (weighted by 1 / (IV t), squared) and failed the
# whole expiry. Within all four bounds no chain overflows the fit, however extreme
# (tests/surface/test_fit.py::test_no_chain_within_the_bounds_overflows_the_fit).
#
# IVs (mark, bid and ask), fractions: Deribit's are percent on the wire, marks typically 10% to
# 300% (the real BTC chains of tests/fixtures/deribit/chains: marks 70% to 209%, bids from 17%;
# 0 and 500% mean "no quote"). A usable IV is at least one vol point, which is also the least the
# fit's box lets a slice's variance be (step 5: v >= (1 vol point)^2 t): a mark below it could only
# be a residual. A bid or ask IV below it is no quoted side (it only widens the quote's interval).
MIN_IV = 0.01
# The most `SurfaceSettings.max_iv` may be: 1000%, twice Deribit's cap (its 500% is "no ask").
# A cap of 1e200 let an IV of 1e180 overflow IV^2 t.
MAX_IV = 10.0
# A usable strike is within this factor of its expiry's forward: |k| = |ln(K / F)| <= ln(1000) =
# 6.9. The real chains span |k| <= 1.4 (strikes 2,500 to 36,000 around 9,300); a crash leaving
# such strikes listed puts them at 2 or 3 (BTC from 9,300 to 4,000: 36,000 is at k = 2.2).
MAX_MONEYNESS = 1000.0
# The farthest expiry a fit takes from its `as_of_ns`, either way: ten years. Deribit lists
# quarterlies about a year out (the real chains' longest: 225 days); a later expiry is a bad
# number (and an int of one can be past a float's range: 10**400 ns raised OverflowError).
MAX_EXPIRY_S = 10 * 365 * 86_400


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _npdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _positive_number(x: object) -> bool:
    """A positive int or float a float can hold (a Python int can be larger: 10**400)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and 0 < x <= sys.float_info.max


def _usable_iv(x: object, max_iv: float) -> bool:
    """An IV a fit can use: a number in [MIN_IV, max_iv) (NaN is not)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and MIN_IV <= x < max_iv


def _usable_quote(q: SurfaceQuote, max_iv: float) -> bool:
    """Whether a quote's own numbers can be fitted: a positive finite strike and forward and a
    usable mark IV (its strike's distance from the expiry's forward is checked by the fit)."""
    return _positive_number(q.strike) and _positive_number(q.forward) and _usable_iv(q.iv, max_iv)


class OutsideSurface(ValueError):
    """Raised by a query the surface cannot answer: no slice was fitted, the time is at or past
    the query's expiry or after the last fitted expiry (no extrapolation in time beyond it), or
    the strike is not a finite positive number. The message says which."""


@attrs.frozen
class SurfaceSettings:
    """How a chain becomes a surface (config `[surface]`). Raises ValueError naming the field
    when a value is not finite and positive (`min_iv_change`, `min_forward_change`: not finite or
    negative), `min_quotes` is below 5 (raw SVI has 5 parameters), `max_iv` is not above `MIN_IV`
    or is over `MAX_IV`, `max_refit_interval_s` is below `min_refit_interval_s`, or either refit
    interval is over a year (`MAX_REFIT_INTERVAL_S`).

    When a chain is refitted (engine/surface/service.py): at most once per `min_refit_interval_s`
    of event time, and then only when the chain moved since its last fit: an option came or went
    (or its book gained or lost a side), a quote's mark IV moved by `min_iv_change` or more
    (absolute, in IV's own unit: 0.002 is a fifth of a vol point), or a quote's forward by
    `min_forward_change` or more (relative: the surface is in log-moneyness k = ln(K / F), so a
    forward move alone shifts every k by ln(F' / F)). The defaults keep a surface within a fifth of
    a vol point of every quote beyond its own fit error (0.2 to 5 points RMS on the real chains'
    two-sided quotes, tests/surface/test_real_chains.py; a bid-ask is one to a few points) and
    its forward within 0.05%: at 60% vol a one-day digital at the money moves about 0.6
    probability points for 0.05% of forward, and less than 0.1 for a fifth of a vol point one
    standard deviation out. A chain quoted anew but still within both is
    refitted anyway once `max_refit_interval_s` passed since its last fit, so a surface's
    `as_of_ns` stays that recent while its chain is quoted (strategies judge a surface's age by it).
    Zero for both thresholds: any new ticker makes a due refit happen."""

    min_refit_interval_s: float = 5.0  # event time between two fits of one chain
    min_quotes: int = 5  # distinct strikes per expiry; fewer: the expiry is skipped, and reported
    # quotes with IV < MIN_IV or >= this are dropped (Deribit's 0 / 500% wings); at most MAX_IV
    max_iv: float = 5.0
    min_expiry_s: float = 3600.0  # expiries closer than this are skipped
    min_iv_change: float = 0.002  # a mark IV move (absolute) that makes a due refit happen
    min_forward_change: float = 0.0005  # a forward's relative move that does
    max_refit_interval_s: float = 60.0  # a chain quoted anew is refitted at least this often

    def __attrs_post_init__(self) -> None:
        for name in ("min_refit_interval_s", "max_iv", "min_expiry_s", "max_refit_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not _finite(value) or value <= 0:
                raise ValueError(f"surface.{name} must be a finite positive number, not {value!r}")
        for name in ("min_refit_interval_s", "max_refit_interval_s"):
            value = getattr(self, name)
            if value > MAX_REFIT_INTERVAL_S:
                raise ValueError(
                    f"surface.{name} must be at most a year ({MAX_REFIT_INTERVAL_S:.0f} s), not {value!r}"
                )
        for name in ("min_iv_change", "min_forward_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not _finite(value) or value < 0:
                raise ValueError(f"surface.{name} must be a finite number >= 0, not {value!r}")
        if not MIN_IV < self.max_iv <= MAX_IV:
            raise ValueError(
                f"surface.max_iv must be above {MIN_IV:g} and at most {MAX_IV:g} "
                f"(1000%: no venue quotes more), not {self.max_iv!r}"
            )
        if self.max_refit_interval_s < self.min_refit_interval_s:
            raise ValueError(
                f"surface.max_refit_interval_s ({self.max_refit_interval_s!r}) must be at least "
                f"min_refit_interval_s ({self.min_refit_interval_s!r})"
            )
        if isinstance(self.min_quotes, bool) or not isinstance(self.min_quotes, int) or self.min_quotes < 5:
            raise ValueError(
                "surface.min_quotes must be an integer >= 5 (raw SVI has 5 parameters), "
                f"not {self.min_quotes!r}"
            )


def _integer_ns(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value.__class__ is not int:  # a bool, a float (NaN), a string: no time of an expiry
        raise TypeError(f"SurfaceQuote.{attribute.name} is an integer of nanoseconds, not {value!r}")


@attrs.frozen
class SurfaceQuote:
    """One option's input to a fit, from its latest ticker. Its numbers are not validated here:
    the fit drops what it cannot use (and counts it), so one bad ticker never stops a surface.
    Its expiry is an instrument's (an `int` of nanoseconds), checked: it is what a fit groups
    quotes by, and a float there (NaN) would be skipped for the wrong reason or, beside an
    integer, would stop the fit's sorting (TypeError)."""

    instrument: str
    strike: float
    expiry_ns: int = attrs.field(validator=_integer_ns)
    iv: float  # mark IV, a fraction (0.55)
    forward: float  # USD: the ticker's underlying (Deribit `underlying_price`), else the index
    bid_iv: float | None = None
    ask_iv: float | None = None
    call: bool | None = None
    ts_ns: int = 0


@attrs.frozen
class SviParams:
    """Raw SVI (Gatheral 2004): w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), total
    variance of one expiry as a function of log-moneyness. Raises ValueError unless every number is
    finite, b >= 0, |rho| < 1, sigma > 0 and the smallest variance a + b sigma sqrt(1 - rho^2) > 0."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __attrs_post_init__(self) -> None:
        if not all(_finite(x) for x in (self.a, self.b, self.rho, self.m, self.sigma)):
            raise ValueError(f"SVI parameters must be finite: {self}")
        if self.b < 0 or not -1.0 < self.rho < 1.0 or self.sigma <= 0:
            raise ValueError(f"SVI parameters need b >= 0, |rho| < 1, sigma > 0: {self}")
        if self.min_w() <= 0:
            raise ValueError(f"SVI total variance must stay positive (a + b sigma sqrt(1-rho^2) > 0): {self}")

    def min_w(self) -> float:
        """The smallest total variance of the slice (at k = m - rho sigma / sqrt(1 - rho^2))."""
        return self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho * self.rho)

    def w(self, k: float) -> float:
        x = k - self.m
        return self.a + self.b * (self.rho * x + math.sqrt(x * x + self.sigma * self.sigma))

    def dw(self, k: float) -> float:
        """dw/dk."""
        x = k - self.m
        return self.b * (self.rho + x / math.sqrt(x * x + self.sigma * self.sigma))

    def d2w(self, k: float) -> float:
        """d2w/dk2."""
        x = k - self.m
        r2 = x * x + self.sigma * self.sigma
        return self.b * self.sigma * self.sigma / (r2 * math.sqrt(r2))

    def g(self, k: float) -> float:
        """Gatheral & Jacquier's density factor (2014, eq. 2.1): the slice has no butterfly
        arbitrage where g(k) >= 0 (the risk-neutral density is g / sqrt(2 pi w) exp(-d2^2 / 2))."""
        w, dw, d2w = self.w(k), self.dw(k), self.d2w(k)
        return _g(k, w, dw, d2w)

    def lee_ok(self) -> bool:
        """Roger Lee's moment bound on the wings' slopes: b (1 + |rho|) <= 2."""
        return self.b * (1.0 + abs(self.rho)) <= 2.0


def _g(k: float, w: float, dw: float, d2w: float) -> float:
    if w <= 0.0:
        return -math.inf
    u = 1.0 - k * dw / (2.0 * w)
    return u * u - dw * dw / 4.0 * (1.0 / w + 0.25) + d2w / 2.0


@attrs.frozen
class SliceFit:
    """One expiry's fit and what was checked of it."""

    expiry_ns: int
    t_years: float  # from the surface's as_of_ns to expiry
    forward: float  # USD: the median of the quotes' forwards
    params: SviParams
    quotes: int  # used
    dropped: int  # refused (wings with no quote, bad numbers, a forward or strike that is not positive)
    rmse_iv: float  # fitted IV - market IV, fractions
    max_abs_err_iv: float
    residuals: tuple[tuple[float, float], ...]  # (strike, fitted - market IV)
    butterfly_min_g: float  # the smallest g(k) on a dense grid over and beyond the quoted strikes
    butterfly_ok: bool  # g(k) >= 0 on that grid
    lee_ok: bool  # b (1 + |rho|) <= 2
    butterfly_min_k: float = 0.0  # where on the grid g is smallest (log-moneyness)
    arbitrage_penalty: bool = False  # refitted with a penalty on negative g (fit.py, step 6)
    quoted: int = 0  # used quotes with a two-sided bid/ask IV
    rmse_iv_quoted: float = math.nan  # fitted IV - mark IV over those quotes only
    outside_quotes: int = 0  # of those, how many have the fitted IV outside their [bid, ask]
    warm_starts: int = 0  # fits in a row started from the previous fit alone (0: all starts searched)

    def iv_at(self, strike: float) -> float:
        """The fitted IV of this slice at `strike` (the slice's own forward and time)."""
        return math.sqrt(self.params.w(math.log(strike / self.forward)) / self.t_years)


def calendar_check(slices: Sequence[SliceFit], grid: Sequence[float]) -> tuple[tuple[int, int, float], ...]:
    """Where total variance falls from one expiry to the next (calendar arbitrage, Gatheral &
    Jacquier 2014 Lemma 2.1: w(k, t) nondecreasing in t at every k): (expiry_i, expiry_j, k) for
    each neighbouring pair i < j and each k of `grid` with w_j(k) < w_i(k). `slices` by expiry."""
    found: list[tuple[int, int, float]] = []
    for before, after in itertools.pairwise(slices):
        found.extend(
            (before.expiry_ns, after.expiry_ns, k)
            for k in grid
            if after.params.w(k) < before.params.w(k) - 1e-12 * max(1.0, before.params.w(k))
        )
    return tuple(found)


@attrs.frozen
class _Point:
    """The surface at one (strike, expiry): time, forward, log-moneyness, total variance and its
    first two k-derivatives at that time."""

    t: float
    forward: float
    k: float
    w: float
    dw: float
    d2w: float


@attrs.frozen
class VolSurface:
    """A fitted implied-volatility surface of one underlying on one venue, as of `as_of_ns`.

    Time: t = (expiry_ns - (now_ns or as_of_ns)) / 1e9 / YEAR_SECONDS. A query at a later `now_ns`
    (the surface not refitted yet) keeps each slice's smile in IV and shrinks its total variance
    with its remaining time (w_i * t_i(now) / t_i(as_of)); slices already expired are left out.
    Between two slices, at fixed k = ln(K / F(t)), total variance is linear in t (which keeps the
    slices' calendar order) and ln F is linear in t; before the first slice w(k, t) = w_1(k) t / t_1
    and ln F continues the first two slices' line (flat with one slice); after the last slice, or
    at or past the expiry asked for: OutsideSurface.
    """

    venue: str
    underlying: str
    as_of_ns: int
    slices: tuple[SliceFit, ...]  # by expiry
    calendar_ok: bool
    calendar_violations: tuple[tuple[int, int, float], ...]  # (expiry_i, expiry_j, k where w_j < w_i)
    skipped: tuple[tuple[int, str], ...]  # (expiry_ns, why)
    _expiries: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        expiries = tuple(s.expiry_ns for s in self.slices)
        if any(b <= a for a, b in itertools.pairwise(expiries)):
            raise ValueError("a surface's slices must be in increasing order of expiry, one per expiry")
        if any(not (s.t_years > 0 and s.forward > 0 and math.isfinite(s.forward)) for s in self.slices):
            raise ValueError("a surface's slices need a positive time and a positive finite forward")
        object.__setattr__(self, "_expiries", expiries)

    # -- the queries ------------------------------------------------------------------------------

    def forward(self, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """The forward price for `expiry_ns` (USD)."""
        now = self.as_of_ns if now_ns is None else now_ns
        t, first, j = self._bracket(expiry_ns, now)
        return self._forward(t, now, first, j, expiry_ns)

    def total_variance(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        return self._point(strike, expiry_ns, now_ns).w

    def iv(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """Implied volatility (a fraction) at `strike` for `expiry_ns`."""
        p = self._point(strike, expiry_ns, now_ns)
        return math.sqrt(p.w / p.t)

    def call_price(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """Undiscounted Black call price (USD) at the surface's IV."""
        p = self._point(strike, expiry_ns, now_ns)
        s = math.sqrt(p.w)
        d1 = -p.k / s + 0.5 * s
        return p.forward * _ncdf(d1) - strike * _ncdf(d1 - s)

    def put_price(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """Undiscounted Black put price (USD) at the surface's IV."""
        p = self._point(strike, expiry_ns, now_ns)
        s = math.sqrt(p.w)
        d1 = -p.k / s + 0.5 * s
        return strike * _ncdf(s - d1) - p.forward * _ncdf(-d1)

    def prob_above(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """P(S_T > strike) = -dC/dK of the undiscounted call with the smile's total variance w(k):
        N(d2) - phi(d2) w'(k) / (2 sqrt(w)), d2 = -k / sqrt(w) - sqrt(w) / 2 (the skew term is what
        N(d2) at the strike's own vol misses). Clamped to [0, 1] (a slice with butterfly arbitrage
        can push it outside: `SliceFit.butterfly_ok` says whether that can happen)."""
        p = self._point(strike, expiry_ns, now_ns)
        s = math.sqrt(p.w)
        d2 = -p.k / s - 0.5 * s
        prob = _ncdf(d2) - _npdf(d2) * p.dw / (2.0 * s)
        return min(1.0, max(0.0, prob))

    def prob_below(self, strike: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """P(S_T <= strike) = 1 - prob_above."""
        return 1.0 - self.prob_above(strike, expiry_ns, now_ns=now_ns)

    def prob_between(self, low: float, high: float, expiry_ns: int, *, now_ns: int | None = None) -> float:
        """P(low < S_T <= high) = prob_above(low) - prob_above(high), never below 0. Raises
        OutsideSurface when low > high."""
        if not low <= high:
            raise OutsideSurface(f"a range needs low <= high, not {low!r} > {high!r}")
        return max(
            0.0,
            self.prob_above(low, expiry_ns, now_ns=now_ns) - self.prob_above(high, expiry_ns, now_ns=now_ns),
        )

    def greeks(self, strike: float, expiry_ns: int, *, call: bool, now_ns: int | None = None) -> Greeks:
        """Greeks of the option at `strike`, in `engine.model.pricing.bs_greeks` units (delta per
        unit of underlying, gamma per unit of underlying price, vega per vol point, theta per
        calendar day), with the forward as the underlying and no rate (`rho` is None).

        Delta and gamma are sticky-moneyness: the smile moves with the forward (the IV at a strike
        follows k = ln(K / F)), so delta = N(d1) - phi(d1) w'(k) / (2 sqrt(w)) for a call (put: minus
        one), and gamma its derivative in F; on a flat smile both are Black-Scholes'. Vega and theta
        are Black-Scholes' at the surface's IV (a parallel vol move; time passing at fixed IV)."""
        p = self._point(strike, expiry_ns, now_ns)
        s = math.sqrt(p.w)
        sqrt_t = math.sqrt(p.t)
        d1 = -p.k / s + 0.5 * s
        pdf = _npdf(d1)
        s1 = p.dw / (2.0 * s)  # d sqrt(w) / dk
        s2 = p.d2w / (2.0 * s) - s1 * s1 / s  # d2 sqrt(w) / dk2
        delta_call = _ncdf(d1) - pdf * s1
        dd1 = -1.0 / s + p.k * s1 / (s * s) + 0.5 * s1  # d d1 / dk
        # gamma = d delta / dF = -(d delta / dk) / F, with k = ln(K / F)
        gamma = pdf * (s2 - dd1 * (1.0 + d1 * s1)) / p.forward
        vol = s / sqrt_t
        vega = p.forward * pdf * sqrt_t / 100.0
        theta = -p.forward * pdf * vol / (2.0 * sqrt_t) / 365.0
        return Greeks(
            delta=delta_call if call else delta_call - 1.0, gamma=gamma, vega=vega, theta=theta, rho=None
        )

    # -- reporting --------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The fit as JSON-able data: per slice its parameters, residuals and arbitrage checks;
        the calendar check across slices; what was skipped and why."""
        return {
            "venue": self.venue,
            "underlying": self.underlying,
            "as_of_ns": self.as_of_ns,
            "calendar_ok": self.calendar_ok,
            "calendar_violations": [list(v) for v in self.calendar_violations],
            "skipped": [{"expiry_ns": e, "why": why} for e, why in self.skipped],
            "slices": [
                {
                    "expiry_ns": s.expiry_ns,
                    "t_years": s.t_years,
                    "forward": s.forward,
                    "svi": attrs.asdict(s.params),
                    "atm_iv": s.iv_at(s.forward),
                    "quotes": s.quotes,
                    "dropped": s.dropped,
                    "rmse_iv": s.rmse_iv,
                    "max_abs_err_iv": s.max_abs_err_iv,
                    "residuals": [list(r) for r in s.residuals],
                    "butterfly_ok": s.butterfly_ok,
                    "butterfly_min_g": s.butterfly_min_g,
                    "butterfly_min_k": s.butterfly_min_k,
                    "lee_ok": s.lee_ok,
                    "arbitrage_penalty": s.arbitrage_penalty,
                    "quoted": s.quoted,
                    "rmse_iv_quoted": None if math.isnan(s.rmse_iv_quoted) else s.rmse_iv_quoted,
                    "outside_quotes": s.outside_quotes,
                    "warm_starts": s.warm_starts,
                }
                for s in self.slices
            ],
        }

    # -- the interpolation ------------------------------------------------------------------------

    def _bracket(self, expiry_ns: int, now: int) -> tuple[float, int, int]:
        """(t, index of the first slice not expired at `now`, index of the first slice expiring at
        or after `expiry_ns`), or OutsideSurface."""
        if not self.slices:
            raise OutsideSurface(f"the {self.underlying} surface on {self.venue} has no fitted expiry")
        if expiry_ns <= now:
            raise OutsideSurface(f"expiry {expiry_ns} is not after the time asked for ({now})")
        if expiry_ns > self._expiries[-1]:
            raise OutsideSurface(
                f"expiry {expiry_ns} is after the last expiry of the {self.underlying} surface "
                f"({self._expiries[-1]})"
            )
        first = bisect.bisect_right(self._expiries, now)
        return (expiry_ns - now) / _NS_PER_YEAR, first, bisect.bisect_left(self._expiries, expiry_ns)

    def _slice_t(self, i: int, now: int) -> float:
        return self.slices[i].t_years - (now - self.as_of_ns) / _NS_PER_YEAR

    def _forward(self, t: float, now: int, first: int, j: int, expiry_ns: int) -> float:
        if self._expiries[j] == expiry_ns:
            return self.slices[j].forward
        if j > first:
            lo, hi = j - 1, j
        elif first + 1 < len(self.slices):
            lo, hi = first, first + 1
        else:
            return self.slices[first].forward
        t_lo, t_hi = self._slice_t(lo, now), self._slice_t(hi, now)
        f_lo, f_hi = self.slices[lo].forward, self.slices[hi].forward
        return f_lo * math.exp(math.log(f_hi / f_lo) * (t - t_lo) / (t_hi - t_lo))

    def _point(self, strike: float, expiry_ns: int, now_ns: int | None) -> _Point:
        if not (_finite(strike) and strike > 0):
            raise OutsideSurface(f"a strike must be a finite positive number, not {strike!r}")
        now = self.as_of_ns if now_ns is None else now_ns
        t, first, j = self._bracket(expiry_ns, now)
        forward = self._forward(t, now, first, j, expiry_ns)
        k = math.log(strike / forward)
        hi = self.slices[j]
        t_hi = self._slice_t(j, now)
        # The slice's smile held in IV while its remaining time shrinks (1.0 when now is as_of).
        scale_hi = t_hi / hi.t_years
        p = hi.params
        w_hi, dw_hi, d2w_hi = p.w(k) * scale_hi, p.dw(k) * scale_hi, p.d2w(k) * scale_hi
        if self._expiries[j] == expiry_ns:
            return _Point(t, forward, k, w_hi, dw_hi, d2w_hi)
        if j == first:  # before the first slice: total variance in proportion to time
            f = t / t_hi
            return _Point(t, forward, k, w_hi * f, dw_hi * f, d2w_hi * f)
        lo = self.slices[j - 1]
        t_lo = self._slice_t(j - 1, now)
        scale_lo = t_lo / lo.t_years
        q = lo.params
        x = (t - t_lo) / (t_hi - t_lo)
        y = 1.0 - x
        return _Point(
            t,
            forward,
            k,
            y * q.w(k) * scale_lo + x * w_hi,
            y * q.dw(k) * scale_lo + x * dw_hi,
            y * q.d2w(k) * scale_lo + x * d2w_hi,
        )
