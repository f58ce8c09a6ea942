"""A Deribit BTC option chain of a known smile, written as Tardis CSV files (the datasets
`options_chain`, `quotes` and `derivative_ticker`) that the Deribit connector replays as wire
frames (connectors/deribit/tardis.py): a backtest whose every option ticker carries the IV the
chain's own model says, so a fitted surface has a witness.

The model: spot `spot(t)` (no carry: every expiry's forward is the spot), and per expiry a raw SVI
smile in total variance w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), held fixed in IV
at each k = ln(K / F) as time passes (`iv`). Prices are Black's at that IV, in BTC (coin-quoted
options). The venue's delta column is `venue_delta` (a number the model would never give, so a
test tells which delta a strategy used), or no Greeks at all."""

from __future__ import annotations

import calendar
import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from tradingd.engine import YEAR_SECONDS, bs_price

NS = 1_000_000_000
US = 1_000
START_NS = calendar.timegm((2026, 11, 24, 0, 0, 0)) * NS  # a Tuesday
NEAR_NS = calendar.timegm((2026, 12, 4, 8, 0, 0)) * NS  # Fridays, 08:00 UTC
FAR_NS = calendar.timegm((2026, 12, 25, 8, 0, 0)) * NS
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@attrs.frozen
class Smile:
    """Raw SVI parameters of one expiry, in total variance at that expiry's time from START."""

    a: float
    b: float = 0.0
    rho: float = 0.0
    m: float = 0.0
    sigma: float = 0.1

    def w(self, k: float) -> float:
        x = k - self.m
        return self.a + self.b * (self.rho * x + math.sqrt(x * x + self.sigma * self.sigma))


def flat(vol: float, expiry_ns: int) -> Smile:
    return Smile(a=vol * vol * (expiry_ns - START_NS) / NS / YEAR_SECONDS)


def wave(t_ns: int) -> float:
    """The default spot path: 90,000 moving +/- 1.5% on a 10-minute sine."""
    return 90_000.0 * math.exp(0.015 * math.sin(2 * math.pi * (t_ns - START_NS) / (600 * NS)))


@attrs.frozen
class Chain:
    strikes: Sequence[int] = (80_000, 82_500, 85_000, 87_500, 90_000, 92_500, 95_000, 97_500, 100_000)
    smiles: dict[int, Smile] = attrs.field(
        factory=lambda: {NEAR_NS: flat(0.6, NEAR_NS), FAR_NS: flat(0.6, FAR_NS)}
    )
    spot: Callable[[int], float] = wave
    seconds: int = 600
    option_every_s: int = 2
    venue_delta: float | None = 0.9  # the calls'; the puts' is this minus 1; None: no Greeks

    def t_years(self, expiry_ns: int, now_ns: int) -> float:
        return (expiry_ns - now_ns) / NS / YEAR_SECONDS

    def iv(self, strike: float, expiry_ns: int, now_ns: int) -> float:
        """The model's IV: the expiry's smile at k = ln(K / F(now)), held in IV as time passes."""
        smile = self.smiles[expiry_ns]
        t0 = self.t_years(expiry_ns, START_NS)
        return math.sqrt(smile.w(math.log(strike / self.spot(now_ns))) / t0)

    def write(self, folder: Path) -> Path:
        """The three CSV files in `folder` (made), which a `tardis` data source reads."""
        folder.mkdir(parents=True, exist_ok=True)
        steps = range(self.seconds)
        perp = {"exchange": "deribit", "symbol": "BTC-PERPETUAL"}
        rows: list[dict[str, Any]] = []
        for s in steps:
            ts = START_NS + s * NS
            spot = self.spot(ts)
            rows.append(
                {**perp, "timestamp": ts // US, "local_timestamp": ts // US + 500, "funding_rate": ""}
            )
            rows[-1].update(index_price=spot, mark_price=spot, open_interest=1e6, last_price=spot)
        _write(folder / "deribit_derivative_ticker_2026-11-24_BTC-PERPETUAL.csv", rows)
        rows = []
        for s in steps:
            ts = START_NS + s * NS
            mid = round(self.spot(ts) * 2) / 2  # the perpetual's tick: 0.5
            rows.append({**perp, "timestamp": ts // US, "local_timestamp": ts // US + 600})
            rows[-1].update(ask_amount=1e7, ask_price=mid + 0.5, bid_price=mid - 0.5, bid_amount=1e7)
        _write(folder / "deribit_quotes_2026-11-24_BTC-PERPETUAL.csv", rows)
        rows = []
        for s in steps[:: self.option_every_s]:
            ts = START_NS + s * NS
            spot = self.spot(ts)
            for n, (expiry, strike, call) in enumerate(self.options()):
                iv = self.iv(strike, expiry, ts)
                t = self.t_years(expiry, ts)
                bid = _tick(bs_price(spot, strike, t, iv - 0.01, call=call) / spot, up=False)
                row: dict[str, Any] = {
                    "exchange": "deribit",
                    "symbol": option_name(expiry, strike, call),
                    "timestamp": ts // US,
                    "local_timestamp": ts // US + 700 + n,
                    "type": "call" if call else "put",
                    "strike_price": strike,
                    "expiration": expiry // US,
                    "open_interest": 10.0,
                    "last_price": "",
                    "bid_price": bid if bid > 0 else "",
                    "bid_amount": 50.0,
                    "bid_iv": round((iv - 0.01) * 100, 4),
                    "ask_price": _tick(bs_price(spot, strike, t, iv + 0.01, call=call) / spot, up=True),
                    "ask_amount": 50.0,
                    "ask_iv": round((iv + 0.01) * 100, 4),
                    "mark_price": bs_price(spot, strike, t, iv, call=call) / spot,
                    "mark_iv": round(iv * 100, 6),
                    "underlying_index": "SYN.BTC",
                    "underlying_price": spot,
                }
                delta = self.venue_delta
                greeks = (
                    (None,) * 5
                    if delta is None
                    else (delta if call else delta - 1.0, 1e-5, 100.0, -50.0, 10.0)
                )
                row.update({g: "" if v is None else v for g, v in zip(_GREEKS, greeks, strict=True)})
                rows.append(row)
        _write(folder / "deribit_options_chain_2026-11-24_OPTIONS.csv", rows)
        return folder

    def options(self) -> list[tuple[int, int, bool]]:
        return [(e, k, call) for e in sorted(self.smiles) for k in self.strikes for call in (True, False)]


_GREEKS = ("delta", "gamma", "vega", "theta", "rho")


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)


def option_name(expiry_ns: int, strike: int, call: bool) -> str:
    y, mo, d = _ymd(expiry_ns)
    return f"BTC-{d}{_MONTHS[mo - 1]}{y % 100:02d}-{strike}-{'C' if call else 'P'}"


def _ymd(ns: int) -> tuple[int, int, int]:
    import time

    t = time.gmtime(ns // NS)
    return t.tm_year, t.tm_mon, t.tm_mday


def _tick(price: float, *, up: bool) -> float:
    """Deribit's coin-option grid: 0.0001 up to 0.005, 0.0005 above."""
    tick = 0.0005 if price > 0.005 else 0.0001
    n = math.ceil(price / tick - 1e-9) if up else math.floor(price / tick + 1e-9)
    return round(n * tick, 4)
