"""Raw SVI on numpy arrays: total variance, its k-derivatives and Gatheral & Jacquier's g(k), for
the fit and its checks over many points at once (`model.SviParams` is the same formula on one
float, for the queries). Imported only by the fit: numpy is the `surface` extra."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "d2w", "dw", "g", "w"]

Array = npt.NDArray[np.float64]
# The results pass through `np.asarray(..., dtype=np.float64)` (no copy: they are float64 already)
# so that their type is `Array` under the stubs of every numpy 2 (2.2, which the `bench` extra
# installs beside NautilusTrader, types `float + array` as Any).


def w(k: Array, a: float, b: float, rho: float, m: float, sigma: float) -> Array:
    """w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))."""
    x = k - m
    return np.asarray(a + b * (rho * x + np.sqrt(x * x + sigma * sigma)), dtype=np.float64)


def dw(k: Array, a: float, b: float, rho: float, m: float, sigma: float) -> Array:
    x = k - m
    return np.asarray(b * (rho + x / np.sqrt(x * x + sigma * sigma)), dtype=np.float64)


def d2w(k: Array, a: float, b: float, rho: float, m: float, sigma: float) -> Array:
    x = k - m
    r2 = x * x + sigma * sigma
    return np.asarray(b * sigma * sigma / (r2 * np.sqrt(r2)), dtype=np.float64)


def g(k: Array, a: float, b: float, rho: float, m: float, sigma: float) -> Array:
    """Gatheral & Jacquier (2014, arXiv:1204.0646) eq. 2.1:
    g(k) = (1 - k w' / (2 w))^2 - w'^2 / 4 (1 / w + 1 / 4) + w'' / 2; the slice's risk-neutral
    density is g / sqrt(2 pi w) exp(-d2^2 / 2), so g >= 0 everywhere means no butterfly arbitrage.
    -inf where w <= 0 (no density at all)."""
    ww = w(k, a, b, rho, m, sigma)
    d1 = dw(k, a, b, rho, m, sigma)
    d2 = d2w(k, a, b, rho, m, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = 1.0 - k * d1 / (2.0 * ww)
        out = u * u - d1 * d1 / 4.0 * (1.0 / ww + 0.25) + d2 / 2.0
    return np.where(ww > 0.0, out, -np.inf)
