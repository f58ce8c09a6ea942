"""The tests' own formulas, written from the references and not from engine/surface: the Black
call on a forward (undiscounted), raw SVI, Gatheral & Jacquier's g, and a loader of the captured
Deribit chains. What the surface computes is checked against these, never against itself."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from statistics import NormalDist

from tradingd.engine.surface import SurfaceQuote

N = NormalDist()
CHAINS = Path(__file__).resolve().parent.parent / "fixtures" / "deribit" / "chains"
DAY_NS = 86_400 * 10**9
YEAR = 365.0 * 86_400  # seconds


def black_call(forward: float, strike: float, total_variance: float) -> float:
    """E[(S_T - K)+] for a lognormal S_T with mean `forward` and log-variance `total_variance`."""
    s = math.sqrt(total_variance)
    d1 = (math.log(forward / strike) + total_variance / 2.0) / s
    return forward * N.cdf(d1) - strike * N.cdf(d1 - s)


def digital(forward: float, strike: float, total_variance: float) -> float:
    """P(S_T > K) at one flat vol: N(d2)."""
    s = math.sqrt(total_variance)
    return N.cdf((math.log(forward / strike) - total_variance / 2.0) / s)


def svi(k: float, a: float, b: float, rho: float, m: float, sigma: float) -> float:
    return a + b * (rho * (k - m) + math.hypot(k - m, sigma))


def svi_g(k: float, a: float, b: float, rho: float, m: float, sigma: float) -> float:
    """g(k) from derivatives taken by central differences of `svi` (not from a closed form)."""
    h = 1e-4
    w = svi(k, a, b, rho, m, sigma)
    w1 = (svi(k + h, a, b, rho, m, sigma) - svi(k - h, a, b, rho, m, sigma)) / (2 * h)
    w2 = (svi(k + h, a, b, rho, m, sigma) - 2 * w + svi(k - h, a, b, rho, m, sigma)) / (h * h)
    return (1 - k * w1 / (2 * w)) ** 2 - w1 * w1 / 4 * (1 / w + 0.25) + w2 / 2


def load_chain(name: str) -> tuple[list[SurfaceQuote], int]:
    """A captured chain's quotes (IVs from Deribit's percent to fractions, as the Ticker carries
    them) and the capture's end (the newest row), the `as_of_ns` of its fit."""
    quotes = []
    with (CHAINS / name).open(newline="") as f:
        for row in csv.DictReader(f):
            quotes.append(
                SurfaceQuote(
                    instrument=row["instrument_name"],
                    strike=float(row["strike"]),
                    expiry_ns=int(row["expiration_timestamp"]) * 10**6,
                    iv=float(row["mark_iv"]) / 100.0,
                    forward=float(row["underlying_price"]),
                    bid_iv=float(row["bid_iv"]) / 100.0,
                    ask_iv=float(row["ask_iv"]) / 100.0,
                    call=row["option_type"] == "call",
                    ts_ns=int(row["timestamp"]) * 10**6,
                )
            )
    return quotes, max(q.ts_ns for q in quotes)
