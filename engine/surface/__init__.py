"""The volatility surface of an underlying, from its option chain: per expiry a raw SVI fit of the
venue's mark IVs (weighted by what is quoted), the no-arbitrage checks (butterfly per slice,
calendar across slices), interpolation across expiries in total variance, and what strategies ask
of it: IV, prices, Greeks and the probability that the underlying settles above a strike or in a
range (with the smile's skew term).

Importing this package costs no numpy nor scipy: the queries are pure `math` (microseconds); the
fit (`fit_surface`) imports numpy and scipy when it runs (the `surface` extra).

Depends on: model."""

from .fit import fit_surface
from .model import (
    OutsideSurface,
    SliceFit,
    SurfaceQuote,
    SurfaceSettings,
    SviParams,
    VolSurface,
    calendar_check,
)

__all__ = [
    "OutsideSurface",
    "SliceFit",
    "SurfaceQuote",
    "SurfaceSettings",
    "SviParams",
    "VolSurface",
    "calendar_check",
    "fit_surface",
]
