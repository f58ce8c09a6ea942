"""A wider Deribit chain (`generate = {strikes = N}`) and the synthetic market's model at any
expiry (`SynthMarket.model_*`), which prices the Polymarket Bitcoin markets.

Witnesses: the generated tickers themselves (their marks, IVs and index, read back as a client
reads them, priced with a Black-Scholes written here), finite differences, and the chain Deribit
lists (strikes on its grid)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.recorded_lines import Line, read
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.deribit.instruments import instrument_from_json
from tradingd.engine.model import InstrumentRegistry
from tradingd.simulators.deribit.generator import build_market, expiries, generate_sample, strike_ladder

START = "2026-11-24T00:00:00Z"
START_NS = 1_795_478_400 * 1_000_000_000
MS = 1_000_000
YEAR_NS = 365 * 86_400 * 10**9  # engine.model.pricing.YEAR_SECONDS
NEAR_NS, FAR_NS = (e * MS for e in expiries(START_NS // MS))
SPOT = {"BTC": 91250.0, "ETH": 3050.0}
HOURS = 0.05  # 3 minutes


def ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bs_call(s: float, k: float, t: float, vol: float) -> float:
    """Black-Scholes, r = 0, in USD: written here, not the project's."""
    sd = vol * math.sqrt(t)
    d1 = math.log(s / k) / sd + sd / 2
    return s * ncdf(d1) - k * ncdf(d1 - sd)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> list[Line]:
    path = tmp_path_factory.mktemp("strikes") / "deribit10.rec.zst"
    generate_sample(path, {"hours": HOURS, "start": START, "strikes": 10})
    return read(path)


def tickers(lines: list[Line]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        msg = line.msg
        if (
            isinstance(msg, dict)
            and msg.get("method") == "subscription"
            and msg["params"]["channel"].startswith("ticker.")
        ):
            out.append(msg["params"]["data"])
    return out


def parse_name(name: str) -> tuple[str, int, int, bool]:
    """BTC-27NOV26-92000-C -> ("BTC", expiry ns, 92000, True)."""
    ccy, code, strike, right = name.split("-")
    expiry = NEAR_NS if code == "27NOV26" else FAR_NS
    assert code in ("27NOV26", "25DEC26")
    return ccy, expiry, int(strike), right == "C"


# ------------------------------------------------------------------------------- the chain


def test_four_strikes_is_the_chain_every_sample_had() -> None:
    assert strike_ladder("BTC", "week", 4) == [90000, 91000, 92000, 93000]
    assert strike_ladder("BTC", "month", 4) == [88000, 90000, 92000, 94000]
    assert strike_ladder("ETH", "week", 4) == [3000, 3050, 3100, 3150]
    assert strike_ladder("ETH", "month", 4) == [2900, 3000, 3100, 3200]


@given(st.sampled_from(["BTC", "ETH"]), st.sampled_from(["week", "month"]), st.integers(5, 24))
def test_a_wider_chain_spans_a_smile_on_deribits_grid(ccy: str, period: str, n: int) -> None:
    strikes = strike_ladder(ccy, period, n)
    spot = SPOT[ccy]
    assert len(strikes) == n
    assert strikes == sorted(set(strikes))  # distinct, ascending
    # Deribit's grid: BTC strikes are whole thousands, ETH's multiples of 50.
    assert all(k % (1000 if ccy == "BTC" else 50) == 0 for k in strikes)
    assert strikes[0] > 0
    # About 15 % either side of spot for the week, 30 % for the month (rounded onto the grid,
    # which is coarser out there).
    reach = 0.13 if period == "week" else 0.22
    assert strikes[0] <= spot * (1 - reach)
    assert strikes[-1] >= spot * (1 + reach)
    # Finer near the money: from 8 strikes on, the two around spot of the near expiry are at
    # most 3.5 % of it apart (the far expiry's 7 %).
    below = max(k for k in strikes if k <= spot)
    above = min(k for k in strikes if k > spot)
    if n >= 8:
        assert above - below <= (0.035 if period == "week" else 0.07) * spot


def test_the_wide_sample_lists_every_strike_and_replays_cleanly(wide: list[Line]) -> None:
    responses = [line.msg for line in wide[:4]]
    items = [item for r in responses for item in r["result"]]
    insts = {i.symbol: i for i in map(instrument_from_json, items)}
    assert len(insts) == len(items) == 2 + 2 * 2 * 10 * 2
    assert len({item["instrument_id"] for item in items}) == len(items)
    strikes: dict[tuple[str, int], set[int]] = defaultdict(set)
    for inst in insts.values():
        if inst.is_option:
            assert inst.expiry_ns is not None
            strikes[inst.base, inst.expiry_ns].add(int(inst.strike or 0))
    assert strikes["BTC", NEAR_NS] == set(strike_ladder("BTC", "week", 10))
    assert strikes["BTC", FAR_NS] == set(strike_ladder("BTC", "month", 10))
    assert strikes["ETH", NEAR_NS] == set(strike_ladder("ETH", "week", 10))
    assert strikes["ETH", FAR_NS] == set(strike_ladder("ETH", "month", 10))
    dec = DeribitDecoder(InstrumentRegistry())
    for line in wide:
        dec.decode(line.frame, line.recv)
    s = dec.stats
    assert (s.malformed, s.gaps, s.skipped_instruments) == (0, 0, 0)


# ------------------------------------------------------------------------------- the tickers


def test_tickers_carry_the_skewed_surface(wide: list[Line]) -> None:
    """Each option ticker's mark_iv is the model's skewed vol (skew and curvature in normalised
    log-moneyness, read back by a regression over the near chain), its mark price is
    Black-Scholes at that vol on its underlying_price, and the book's IVs bracket it."""
    rows: list[tuple[float, float]] = []
    checked = 0
    for data in tickers(wide):
        name = data["instrument_name"]
        if name.endswith("PERPETUAL"):
            continue
        ccy, expiry, strike, call = parse_name(name)
        s = data["underlying_price"]
        assert s == data["index_price"] > 0  # r = 0 on the index: the forward is the index
        t = (expiry - data["timestamp"] * MS) / YEAR_NS
        iv = data["mark_iv"] / 100
        usd = bs_call(s, strike, t, iv) + (0.0 if call else strike - s)
        # The mark (coin, 4 decimals) is the model price at the mark IV: up to its rounding, and
        # the IV's (0.01 of a %: vega <= 0.4 S sqrt(t) per unit of vol) and the index's (0.005).
        assert abs(data["mark_price"] - usd / s) <= 0.00005 + 0.4 * math.sqrt(t) * 0.00005 + 1e-6, name
        if data["best_bid_price"] > 0 and data["best_ask_price"] > 0:
            assert data["bid_iv"] <= data["mark_iv"] <= data["ask_iv"], name
            checked += 1
        if ccy == "BTC" and expiry == NEAR_NS:
            rows.append((math.log(strike / s) / math.sqrt(t), iv))
    assert checked > 100
    # iv = atm + skew m + curvature m^2: least squares over the near BTC chain's tickers.
    n = len(rows)
    assert n > 100
    xs = [[1.0, m, m * m] for m, _ in rows]
    ata = [[sum(x[i] * x[j] for x in xs) for j in range(3)] for i in range(3)]
    atb = [sum(x[i] * iv for x, (_, iv) in zip(xs, rows, strict=True)) for i in range(3)]
    atm, skew, curvature = solve3(ata, atb)
    assert 0.4 < atm < 0.6
    assert skew == pytest.approx(-0.03, abs=0.004)  # the BTC underlying's skew
    assert curvature == pytest.approx(0.02, abs=0.004)  # and curvature
    spread = max(iv for _, iv in rows) - min(iv for _, iv in rows)
    assert spread > 0.02  # a smile, not a flat line


def solve3(a: list[list[float]], b: list[float]) -> tuple[float, float, float]:
    """Cramer's rule for a 3x3 system."""

    def det(m: list[list[float]]) -> float:
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    d = det(a)
    cols = []
    for j in range(3):
        m = [[b[i] if c == j else a[i][c] for c in range(3)] for i in range(3)]
        cols.append(det(m) / d)
    return cols[0], cols[1], cols[2]


def test_the_models_digital_is_the_slope_of_the_tickers_marks(wide: list[Line]) -> None:
    """P(S_T > K) at the near expiry from the model (`model_prob_above`, the closed form with the
    skew term) against -dC/dK from the generated tickers: the mark prices (coin x index = USD)
    of two neighbouring near-expiry calls, ticked within a second of each other.

    Tolerance 0.015 for one pair: marks are rounded to 0.0001 BTC ($4.6 each way per price,
    0.005 over 2,000 of strike, 0.0023 over 4,000), the index moves between the two tickers
    (under 0.003), and a difference is the slope at the midpoint only up to the density's
    curvature (0.002 over 2,000, 0.008 over 4,000). On average the errors cancel: within 0.003,
    where the flat-vol N(d2), without the skew term, is off by 0.006 (0.012 near the money)."""
    market, _ = build_market(7, START_NS, 10)
    btc = 0
    strikes = strike_ladder("BTC", "week", 10)
    latest: dict[int, tuple[int, float]] = {}  # strike -> (ms, USD mark)
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for data in tickers(wide):
        name = data["instrument_name"]
        if name.startswith("BTC-27NOV26-") and name.endswith("-C"):
            by_step[-(-data["timestamp"] * MS // market.step_ns) * market.step_ns].append(data)
    errors: list[float] = []
    flat_errors: list[float] = []
    end = START_NS + int(HOURS * 3600e9)
    while market.now_ns < end:
        market.step()
        for data in by_step.get(market.now_ns, []):
            strike = parse_name(data["instrument_name"])[2]
            latest[strike] = (data["timestamp"], data["mark_price"] * data["index_price"])
            j = strikes.index(strike)
            for lo, hi in zip(strikes[max(0, j - 1) : j + 1], strikes[j : j + 2], strict=False):
                if lo == hi or lo not in latest or hi not in latest:
                    continue
                (t_lo, c_lo), (t_hi, c_hi) = latest[lo], latest[hi]
                if abs(t_lo - t_hi) > 1000:
                    continue
                fd = -(c_hi - c_lo) / (hi - lo)
                mid = (lo + hi) / 2
                model = market.model_prob_above(btc, mid, NEAR_NS)
                errors.append(fd - model)
                w = market.model_total_variance(btc, mid, NEAR_NS)
                d2 = -math.log(mid / market.index(btc)) / math.sqrt(w) - math.sqrt(w) / 2
                flat_errors.append(fd - ncdf(d2))
    assert len(errors) > 100
    assert max(abs(e) for e in errors) < 0.015
    assert abs(sum(errors) / len(errors)) < 0.003
    assert abs(sum(flat_errors) / len(flat_errors)) > 0.005  # the data sees the skew


# ------------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def stepped() -> Any:
    market, _ = build_market(7, START_NS, 10)
    for _ in range(3000):  # 5 minutes in
        market.step()
    return market


@given(
    moneyness=st.floats(0.7, 1.4),
    hours=st.floats(1.0, (FAR_NS - START_NS) / 3.6e12 - 1.0),
)
def test_the_closed_form_digital_is_minus_the_call_slope(
    stepped: Any, moneyness: float, hours: float
) -> None:
    market = stepped
    strike = market.index(0) * moneyness
    at = START_NS + int(hours * 3.6e12)
    # A step small against the spread of S_T (sqrt(w) in log terms): the difference's own
    # error, ~ (h / spread)^2 / 6, stays far below the tolerance.
    h = strike * math.sqrt(market.model_total_variance(0, strike, at)) * 1e-3
    fd = -(market.model_call(0, strike + h, at) - market.model_call(0, strike - h, at)) / (2 * h)
    p = market.model_prob_above(0, strike, at)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(fd, abs=1e-6)
    # Higher strike, lower probability.
    assert market.model_prob_above(0, strike * 1.01, at) <= p


def test_the_model_at_a_listed_expiry_is_the_options_mark(stepped: Any) -> None:
    market = stepped
    for i, spec in enumerate(market.instruments):
        if spec.kind != "option":
            continue
        u = market.underlying_of(i)
        assert spec.expiry_ns is not None and spec.strike is not None
        t = (spec.expiry_ns - market.now_ns) / YEAR_NS
        w = market.model_total_variance(u, spec.strike, spec.expiry_ns)
        assert w == pytest.approx(market.option_vol(i) ** 2 * t, rel=1e-12)
        if spec.call:
            usd = market.option_quote(i).price_usd
            assert market.model_call(u, spec.strike, spec.expiry_ns) == pytest.approx(usd, rel=1e-9, abs=1e-9)


def test_between_expiries_total_variance_is_linear_in_time(stepped: Any) -> None:
    market = stepped
    s = market.index(0)
    for strike in (0.9 * s, s, 1.1 * s):
        w_near = market.model_total_variance(0, strike, NEAR_NS)
        w_far = market.model_total_variance(0, strike, FAR_NS)
        mid = (NEAR_NS + FAR_NS) // 2
        assert market.model_total_variance(0, strike, mid) == pytest.approx((w_near + w_far) / 2, rel=1e-9)
        # Before the first expiry: the first slice scaled by time.
        half = (market.now_ns + NEAR_NS) // 2
        assert market.model_total_variance(0, strike, half) == pytest.approx(w_near / 2, rel=1e-6)
    with pytest.raises(ValueError, match="past its last listed expiry"):
        market.model_prob_above(0, s, FAR_NS + 1)
    with pytest.raises(ValueError, match="positive"):
        market.model_prob_above(0, 0.0, NEAR_NS)


def test_a_sample_without_options_has_no_surface() -> None:
    from tradingd.simulators.synth import SynthMarket, UnderlyingSpec

    market = SynthMarket(
        seed=1, start_ns=START_NS, underlyings=[UnderlyingSpec("BTC", 1e5, 0.5)], instruments=[]
    )
    with pytest.raises(ValueError, match="no options"):
        market.model_total_variance(0, 1e5, NEAR_NS)


def test_strikes_option_changes_the_chain_not_the_four_strike_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.rec", tmp_path / "b.rec"
    assert generate_sample(a, {"hours": 0.01, "strikes": 12}) == generate_sample(
        b, {"hours": 0.01, "strikes": 12}
    )
    assert a.read_bytes() == b.read_bytes()
    four, default = tmp_path / "four.rec", tmp_path / "default.rec"
    generate_sample(four, {"hours": 0.01, "strikes": 4})
    generate_sample(default, {"hours": 0.01})
    assert four.read_bytes() == default.read_bytes() != a.read_bytes()
