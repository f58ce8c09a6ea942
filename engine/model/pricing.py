"""Black-Scholes prices, Greeks and implied volatility (no rates, no dividends by default).

Greeks use the conventions Deribit publishes, so that a strategy can use either source alike:
delta per unit of underlying, gamma per unit of underlying price, vega per one vol point (0.01),
theta per calendar day, rho per one percentage point of rate.
"""

from __future__ import annotations

import math

from .events import Greeks

__all__ = ["YEAR_SECONDS", "bs_greeks", "bs_price", "implied_vol"]

YEAR_SECONDS = 365.0 * 24 * 3600
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def _npdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _d1d2(spot: float, strike: float, t: float, vol: float, rate: float) -> tuple[float, float]:
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / sd
    return d1, d1 - sd


def bs_price(spot: float, strike: float, t: float, vol: float, *, call: bool, rate: float = 0.0) -> float:
    """Price of a European option in the underlying's quote currency (USD for BTC options).
    `t` is in years. At or past expiry (t <= 0) or with zero vol it is the intrinsic value."""
    if t <= 0.0 or vol <= 0.0:
        intrinsic = spot - strike if call else strike - spot
        return max(intrinsic, 0.0)
    d1, d2 = _d1d2(spot, strike, t, vol, rate)
    disc = math.exp(-rate * t)
    if call:
        return spot * _ncdf(d1) - strike * disc * _ncdf(d2)
    return strike * disc * _ncdf(-d2) - spot * _ncdf(-d1)


def bs_greeks(spot: float, strike: float, t: float, vol: float, *, call: bool, rate: float = 0.0) -> Greeks:
    """Greeks of a European option (conventions in the module docstring)."""
    if t <= 0.0 or vol <= 0.0:
        itm = spot > strike if call else spot < strike
        delta = (1.0 if call else -1.0) if itm else 0.0
        return Greeks(delta=delta, gamma=0.0, vega=0.0, theta=0.0, rho=0.0)
    d1, d2 = _d1d2(spot, strike, t, vol, rate)
    sqrt_t = math.sqrt(t)
    pdf = _npdf(d1)
    disc = math.exp(-rate * t)
    gamma = pdf / (spot * vol * sqrt_t)
    vega = spot * pdf * sqrt_t / 100.0
    common = -spot * pdf * vol / (2.0 * sqrt_t)
    if call:
        delta = _ncdf(d1)
        theta = (common - rate * strike * disc * _ncdf(d2)) / 365.0
        rho = strike * t * disc * _ncdf(d2) / 100.0
    else:
        delta = _ncdf(d1) - 1.0
        theta = (common + rate * strike * disc * _ncdf(-d2)) / 365.0
        rho = -strike * t * disc * _ncdf(-d2) / 100.0
    return Greeks(delta=delta, gamma=gamma, vega=vega, theta=theta, rho=rho)


def implied_vol(
    price: float, spot: float, strike: float, t: float, *, call: bool, rate: float = 0.0, tol: float = 1e-8
) -> float | None:
    """The vol at which `bs_price` equals `price`, or None when no vol does (price below
    intrinsic or above the underlying). Bisection on [1e-4, 10]: slow-ish but never diverges."""
    if t <= 0.0 or price <= 0.0:
        return None
    lo, hi = 1e-4, 10.0
    if (
        not bs_price(spot, strike, t, lo, call=call, rate=rate)
        <= price
        <= bs_price(spot, strike, t, hi, call=call, rate=rate)
    ):
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if bs_price(spot, strike, t, mid, call=call, rate=rate) < price:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)
