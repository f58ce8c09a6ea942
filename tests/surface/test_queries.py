"""The surface's queries against closed forms and finite differences (engine/surface/model.py):
a flat surface's digital is N(d2) to 1e-6; a skewed one's prob_above is -dC/dK of its own call
prices; interpolation in total variance between slices and in proportion to time before the first;
sticky-moneyness delta and gamma are the forward-derivatives of the call price; what the surface
cannot answer raises OutsideSurface."""

from __future__ import annotations

import itertools
import json
import math

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.surface.witness import DAY_NS, YEAR, N, black_call, digital, svi, svi_g
from tradingd.engine.model.pricing import bs_greeks
from tradingd.engine.surface import OutsideSurface, SliceFit, SurfaceSettings, SviParams, VolSurface

AS_OF = 1_700_000_000 * 10**9


def slice_of(params: SviParams, days: float, forward: float) -> SliceFit:
    return SliceFit(
        expiry_ns=AS_OF + round(days * DAY_NS),
        t_years=days * 86_400 / YEAR,
        forward=forward,
        params=params,
        quotes=5,
        dropped=0,
        rmse_iv=0.0,
        max_abs_err_iv=0.0,
        residuals=(),
        butterfly_min_g=0.0,
        butterfly_ok=True,
        lee_ok=True,
    )


def surface_of(*slices: SliceFit) -> VolSurface:
    return VolSurface(
        venue="deribit",
        underlying="BTC",
        as_of_ns=AS_OF,
        slices=slices,
        calendar_ok=True,
        calendar_violations=(),
        skipped=(),
    )


def flat(vol: float, days: float, forward: float) -> SliceFit:
    t = days * 86_400 / YEAR
    return slice_of(SviParams(a=vol * vol * t, b=0.0, rho=0.0, m=0.0, sigma=0.1), days, forward)


# A skewed BTC-like smile (30 days, ATM near 80%): put wing steeper than the call wing.
SKEW = SviParams(a=0.02, b=0.25, rho=-0.35, m=0.05, sigma=0.15)
SKEW_LONG = SviParams(a=0.09, b=0.3, rho=-0.25, m=0.08, sigma=0.3)


def test_a_flat_surface_prices_the_closed_form_digital_to_1e_6() -> None:
    surface = surface_of(flat(0.8, 30, 50_000.0))
    expiry = surface.slices[0].expiry_ns
    w = 0.8**2 * 30 / 365
    for strike in (20_000.0, 40_000.0, 49_999.0, 50_000.0, 61_234.5, 120_000.0):
        assert surface.prob_above(strike, expiry) == pytest.approx(digital(50_000.0, strike, w), abs=1e-6)
        assert surface.prob_below(strike, expiry) == pytest.approx(1 - digital(50_000.0, strike, w), abs=1e-6)
        assert surface.call_price(strike, expiry) == pytest.approx(black_call(50_000.0, strike, w), rel=1e-9)
        put = black_call(50_000.0, strike, w) - (50_000.0 - strike)  # parity on the forward
        assert surface.put_price(strike, expiry) == pytest.approx(put, rel=1e-9, abs=1e-6)
    between = digital(50_000.0, 45_000.0, w) - digital(50_000.0, 55_000.0, w)
    assert surface.prob_between(45_000.0, 55_000.0, expiry) == pytest.approx(between, abs=1e-6)


@given(
    vol=st.floats(0.05, 3.0),
    days=st.floats(0.05, 400.0),
    forward=st.floats(1.0, 1e6),
    moneyness=st.floats(-2.5, 2.5),
)
def test_flat_surfaces_match_n_d2_everywhere(
    vol: float, days: float, forward: float, moneyness: float
) -> None:
    surface = surface_of(flat(vol, days, forward))
    t = days * 86_400 / YEAR
    strike = forward * math.exp(moneyness * vol * math.sqrt(t))  # within 2.5 standard deviations
    expected = N.cdf(-math.log(strike / forward) / (vol * math.sqrt(t)) - vol * math.sqrt(t) / 2)
    assert surface.prob_above(strike, surface.slices[0].expiry_ns) == pytest.approx(expected, abs=1e-6)


def test_the_skew_term_is_what_n_d2_at_the_strikes_own_vol_misses() -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0))
    expiry = surface.slices[0].expiry_ns
    for strike, smile_rises in ((40_000.0, False), (70_000.0, True)):
        k = math.log(strike / 50_000.0)
        assert (SKEW.dw(k) > 0) is smile_rises
        naive = digital(50_000.0, strike, svi(k, *SKEW_TUPLE))
        h = 0.5
        fd = -(surface.call_price(strike + h, expiry) - surface.call_price(strike - h, expiry)) / (2 * h)
        assert surface.prob_above(strike, expiry) == pytest.approx(fd, abs=1e-7)
        # Where the smile rises with the strike (w' > 0) a digital is worth less than N(d2) at the
        # strike's own vol; where it falls, more.
        gap = surface.prob_above(strike, expiry) - naive
        assert (gap < -0.01) if smile_rises else (gap > 0.01), gap


SKEW_TUPLE = (SKEW.a, SKEW.b, SKEW.rho, SKEW.m, SKEW.sigma)


@pytest.mark.parametrize("days", [3.0, 30.0, 45.0, 90.0])  # before, at, between and at the slices
def test_prob_above_is_minus_the_strike_derivative_of_the_call_price(days: float) -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0))
    expiry = AS_OF + round(days * DAY_NS)
    for strike in (25_000.0, 38_000.0, 47_500.0, 50_000.0, 52_000.0, 61_000.0, 90_000.0):
        h = strike * 1e-5
        fd = -(surface.call_price(strike + h, expiry) - surface.call_price(strike - h, expiry)) / (2 * h)
        assert surface.prob_above(strike, expiry) == pytest.approx(fd, abs=2e-7), strike
        # prob_between is the difference of the two digitals: the mass of the range
        lo, hi = strike * 0.97, strike * 1.05
        assert surface.prob_between(lo, hi, expiry) == pytest.approx(
            surface.prob_above(lo, expiry) - surface.prob_above(hi, expiry), abs=1e-12
        )


def test_interpolation_is_linear_in_total_variance_at_fixed_moneyness() -> None:
    short, long = slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0)
    surface = surface_of(short, long)
    t1, t2 = 30 / 365, 90 / 365
    for days in (30.0, 41.5, 60.0, 89.0, 90.0):
        t = days / 365
        expiry = AS_OF + round(days * DAY_NS)
        # ln F linear in t between the slices' forwards
        forward = 50_000.0 * (50_400.0 / 50_000.0) ** ((t - t1) / (t2 - t1))
        assert surface.forward(expiry) == pytest.approx(forward, rel=1e-12)
        for strike in (30_000.0, 50_000.0, 70_000.0):
            k = math.log(strike / forward)
            x = (t - t1) / (t2 - t1)
            w = (1 - x) * svi(k, *SKEW_TUPLE) + x * svi(k, 0.09, 0.3, -0.25, 0.08, 0.3)
            assert surface.total_variance(strike, expiry) == pytest.approx(w, rel=1e-10)
            assert surface.iv(strike, expiry) == pytest.approx(math.sqrt(w / t), rel=1e-10)


def test_before_the_first_slice_total_variance_scales_with_time_and_the_forward_continues() -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0))
    days = 7.0
    expiry = AS_OF + round(days * DAY_NS)
    rate = math.log(50_400.0 / 50_000.0) / (60 / 365)
    forward = 50_000.0 * math.exp(rate * (days - 30) / 365)
    assert surface.forward(expiry) == pytest.approx(forward, rel=1e-12)
    k = math.log(52_000.0 / forward)
    assert surface.total_variance(52_000.0, expiry) == pytest.approx(svi(k, *SKEW_TUPLE) * 7 / 30, rel=1e-10)
    # one slice: the forward is flat before it
    alone = surface_of(slice_of(SKEW, 30, 50_000.0))
    assert alone.forward(expiry) == 50_000.0


def test_a_later_now_keeps_each_slices_smile_in_iv_and_drops_expired_slices() -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0))
    expiry_30, expiry_90 = surface.slices[0].expiry_ns, surface.slices[1].expiry_ns
    now = AS_OF + 10 * DAY_NS
    for strike in (40_000.0, 50_000.0, 65_000.0):
        assert surface.iv(strike, expiry_30, now_ns=now) == pytest.approx(
            surface.iv(strike, expiry_30), rel=1e-12
        )
        w_now = surface.total_variance(strike, expiry_30, now_ns=now)
        assert w_now == pytest.approx(surface.total_variance(strike, expiry_30) * 20 / 30, rel=1e-12)
    # After the first expiry, the second slice alone: before it, in proportion to time
    later = AS_OF + 40 * DAY_NS
    half_way = AS_OF + 65 * DAY_NS
    k = math.log(50_000.0 / 50_400.0)
    expected = svi(k, 0.09, 0.3, -0.25, 0.08, 0.3) * (50 / 90) * (25 / 50)
    assert surface.total_variance(50_000.0, half_way, now_ns=later) == pytest.approx(expected, rel=1e-10)
    assert surface.forward(expiry_90, now_ns=later) == 50_400.0


@pytest.mark.parametrize(
    ("strike", "days", "now_days", "why"),
    [
        (50_000.0, 90.5, 0.0, "after the last expiry"),
        (50_000.0, 30.0, 30.0, "not after"),
        (50_000.0, 30.0, 31.0, "not after"),
        (0.0, 30.0, 0.0, "finite positive"),
        (-5.0, 30.0, 0.0, "finite positive"),
        (math.nan, 30.0, 0.0, "finite positive"),
        (math.inf, 30.0, 0.0, "finite positive"),
    ],
)
def test_what_the_surface_cannot_answer_raises_outside_surface(
    strike: float, days: float, now_days: float, why: str
) -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0))
    expiry = AS_OF + round(days * DAY_NS)
    now = AS_OF + round(now_days * DAY_NS)
    with pytest.raises(OutsideSurface, match=why):
        surface.prob_above(strike, expiry, now_ns=now)
    with pytest.raises(OutsideSurface, match=why):
        surface.iv(strike, expiry, now_ns=now)


def test_an_empty_surface_answers_nothing_and_a_reversed_range_is_refused() -> None:
    empty = surface_of()
    with pytest.raises(OutsideSurface, match="no fitted expiry"):
        empty.forward(AS_OF + DAY_NS)
    surface = surface_of(slice_of(SKEW, 30, 50_000.0))
    with pytest.raises(OutsideSurface, match="low <= high"):
        surface.prob_between(60_000.0, 50_000.0, surface.slices[0].expiry_ns)


def _scaled_forwards(surface: VolSurface, factor: float) -> VolSurface:
    """The same smiles in k, every forward times `factor`: the sticky-moneyness move."""
    return attrs.evolve(
        surface, slices=tuple(attrs.evolve(s, forward=s.forward * factor) for s in surface.slices)
    )


@pytest.mark.parametrize("days", [30.0, 50.0])
@pytest.mark.parametrize("strike", [35_000.0, 48_000.0, 50_000.0, 56_000.0, 80_000.0])
def test_sticky_moneyness_delta_and_gamma_are_the_call_prices_forward_derivatives(
    days: float, strike: float
) -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0), slice_of(SKEW_LONG, 90, 50_400.0))
    expiry = AS_OF + round(days * DAY_NS)
    forward = surface.forward(expiry)
    h = 1e-4
    up, down = _scaled_forwards(surface, 1 + h), _scaled_forwards(surface, 1 - h)
    c0, cu, cd = (s.call_price(strike, expiry) for s in (surface, up, down))
    p0, pu, pd = (s.put_price(strike, expiry) for s in (surface, up, down))
    call = surface.greeks(strike, expiry, call=True)
    put = surface.greeks(strike, expiry, call=False)
    assert call.delta == pytest.approx((cu - cd) / (2 * h * forward), abs=1e-6)
    assert put.delta == pytest.approx((pu - pd) / (2 * h * forward), abs=1e-6)
    assert call.gamma == pytest.approx((cu - 2 * c0 + cd) / (h * forward) ** 2, rel=1e-3)
    assert put.gamma == call.gamma
    assert put.gamma == pytest.approx((pu - 2 * p0 + pd) / (h * forward) ** 2, rel=1e-3)
    assert call.rho is None
    # vega: a parallel move of the IV by one point, the smile's shape kept
    t = days / 365
    vol = surface.iv(strike, expiry)
    bumped = black_call(forward, strike, (vol + 0.005) ** 2 * t) - black_call(
        forward, strike, (vol - 0.005) ** 2 * t
    )
    assert call.vega == pytest.approx(bumped, rel=1e-4)


def test_on_a_flat_surface_the_greeks_are_black_scholes_on_the_forward() -> None:
    surface = surface_of(flat(0.65, 20, 3_000.0))
    expiry = surface.slices[0].expiry_ns
    for strike in (2_000.0, 2_900.0, 3_000.0, 3_500.0):
        for call in (True, False):
            ours = surface.greeks(strike, expiry, call=call)
            theirs = bs_greeks(3_000.0, strike, 20 / 365, 0.65, call=call)
            assert ours.delta == pytest.approx(theirs.delta, abs=1e-12)
            assert ours.gamma == pytest.approx(theirs.gamma, rel=1e-9)
            assert ours.vega == pytest.approx(theirs.vega, rel=1e-9)
            assert ours.theta == pytest.approx(theirs.theta, rel=1e-9)


@st.composite
def arbitrage_free(draw: st.DrawFn) -> SviParams:
    """Raw SVI slices with g >= 0 on a wide grid and Lee's bound (checked with the tests' own g)."""
    a = draw(st.floats(0.0005, 0.2))
    b = draw(st.floats(0.01, 0.9))
    rho = draw(st.floats(-0.8, 0.8))
    m = draw(st.floats(-0.3, 0.3))
    sigma = draw(st.floats(0.02, 1.0))
    assume(b * (1 + abs(rho)) < 2.0)
    grid = [-3.0 + i * 0.01 for i in range(601)]
    assume(all(svi_g(k, a, b, rho, m, sigma) > 1e-6 for k in grid))
    return SviParams(a=a, b=b, rho=rho, m=m, sigma=sigma)


@given(params=arbitrage_free(), days=st.floats(1.0, 365.0), fraction=st.floats(0.05, 1.0))
def test_on_arbitrage_free_slices_probabilities_are_in_0_1_and_fall_with_the_strike(
    params: SviParams, days: float, fraction: float
) -> None:
    surface = surface_of(slice_of(params, days, 100.0))
    expiry = AS_OF + round(days * fraction * DAY_NS)  # at the slice or before it
    strikes = [100.0 * math.exp(-2.0 + i * 0.05) for i in range(81)]
    probs = [surface.prob_above(k, expiry) for k in strikes]
    for strike, p in zip(strikes, probs, strict=True):
        h = strike * 1e-5
        fd = -(surface.call_price(strike + h, expiry) - surface.call_price(strike - h, expiry)) / (2 * h)
        assert p == pytest.approx(fd, abs=1e-6)  # the probability is the unclamped -dC/dK
        assert 0.0 <= p <= 1.0
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(probs))
    assert surface.prob_between(strikes[10], strikes[50], expiry) >= 0.0


def test_svi_parameters_and_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="finite"):
        SviParams(a=math.nan, b=0.1, rho=0.0, m=0.0, sigma=0.1)
    with pytest.raises(ValueError, match=r"\|rho\| < 1"):
        SviParams(a=0.1, b=0.1, rho=1.0, m=0.0, sigma=0.1)
    with pytest.raises(ValueError, match="b >= 0"):
        SviParams(a=0.1, b=-0.1, rho=0.0, m=0.0, sigma=0.1)
    with pytest.raises(ValueError, match="positive"):
        SviParams(a=-0.1, b=0.1, rho=0.0, m=0.0, sigma=0.1)  # w(m) = 0.1 * 0.1 - 0.1 < 0
    with pytest.raises(ValueError, match="surface.max_iv"):
        SurfaceSettings(max_iv=math.inf)
    # An IV cap past 1000% lets IV^2 t overflow the fit (1e200 did); one at or under a vol point
    # leaves nothing to fit
    for cap in (10.5, 1e200, 0.01, 0.005):
        with pytest.raises(ValueError, match=r"surface.max_iv must be above 0.01 and at most 10 "):
            SurfaceSettings(max_iv=cap)
    assert SurfaceSettings(max_iv=10.0).max_iv == 10.0
    with pytest.raises(ValueError, match="surface.min_refit_interval_s"):
        SurfaceSettings(min_refit_interval_s=0.0)
    with pytest.raises(ValueError, match="surface.min_expiry_s"):
        SurfaceSettings(min_expiry_s=-1.0)
    with pytest.raises(ValueError, match="surface.min_quotes"):
        SurfaceSettings(min_quotes=4)
    assert SurfaceSettings(min_quotes=5).min_quotes == 5


def test_svi_derivatives_and_g_match_finite_differences() -> None:
    for k in (-1.2, -0.3, 0.0, 0.05, 0.4, 1.5):
        h = 1e-5
        assert SKEW.dw(k) == pytest.approx((SKEW.w(k + h) - SKEW.w(k - h)) / (2 * h), rel=1e-6)
        assert SKEW.d2w(k) == pytest.approx((SKEW.dw(k + h) - SKEW.dw(k - h)) / (2 * h), rel=1e-6)
        assert SKEW.g(k) == pytest.approx(svi_g(k, *SKEW_TUPLE), abs=1e-5)
    assert SKEW.lee_ok()
    assert not SviParams(a=0.1, b=1.6, rho=0.3, m=0.0, sigma=0.1).lee_ok()  # 1.6 * 1.3 > 2


def test_the_report_is_json() -> None:
    surface = surface_of(slice_of(SKEW, 30, 50_000.0))
    report = json.loads(json.dumps(surface.report()))
    assert report["slices"][0]["svi"] == {"a": 0.02, "b": 0.25, "rho": -0.35, "m": 0.05, "sigma": 0.15}
    assert report["slices"][0]["atm_iv"] == pytest.approx(math.sqrt(svi(0.0, *SKEW_TUPLE) / (30 / 365)))
