"""fit_surface's warm start (`previous`): each expiry's least squares starts from the previous
surface's fit of it. Witnesses: a cold fit of the same quotes (the full search of step 5) on the
two real Deribit chains, on those chains moved (a level and skew shift, noise, a forward move,
time passing), and on a synthetic chain whose raw SVI drifts from fit to fit; the work done is
counted in scipy's own evaluation counts."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.surface.witness import DAY_NS, YEAR, load_chain, svi
from tradingd.engine.surface import SurfaceQuote, VolSurface, fit_surface
from tradingd.engine.surface import fit as fit_module

CHAINS = ("btc_2020-05-14.csv", "btc_2020-05-21.csv")
NS = 1_000_000_000

# How close a warm fit must come to a cold one of the same quotes, in IV (fractions).
SAME = 1e-4  # the same quotes: a hundredth of a vol point at every strike
MOVED = 5e-4  # moved quotes: half a tenth of a vol point at every strike, RMS within a fifth of that
MOVED_RMSE = 1e-4


class Counted:
    """scipy.optimize.least_squares, counting its Jacobian evaluations (one per iteration)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import scipy.optimize

        self.original = scipy.optimize.least_squares
        self.jacobians = 0
        self.calls = 0
        monkeypatch.setattr(scipy.optimize, "least_squares", self)

    def __call__(self, *args: Any, **kw: Any) -> Any:
        found = self.original(*args, **kw)
        self.calls += 1
        self.jacobians += int(found.njev or 0)
        return found

    def take(self) -> tuple[int, int]:
        out = (self.calls, self.jacobians)
        self.calls = self.jacobians = 0
        return out


def fit(quotes: Sequence[SurfaceQuote], as_of: int, previous: VolSurface | None = None) -> VolSurface:
    return fit_surface(quotes, venue="deribit", underlying="BTC", as_of_ns=as_of, previous=previous)


def assert_as_good(warm: VolSurface, cold: VolSurface, tol: float, rmse_tol: float | None = None) -> None:
    assert [s.expiry_ns for s in warm.slices] == [s.expiry_ns for s in cold.slices]
    assert warm.skipped == cold.skipped
    for w, c in zip(warm.slices, cold.slices, strict=True):
        assert [k for k, _ in w.residuals] == [k for k, _ in c.residuals]
        worst = max(abs(a - b) for (_, a), (_, b) in zip(w.residuals, c.residuals, strict=True))
        assert worst <= tol, (w.expiry_ns, worst)
        assert w.rmse_iv <= c.rmse_iv + (rmse_tol if rmse_tol is not None else tol), w.expiry_ns
        assert w.butterfly_ok == c.butterfly_ok and w.lee_ok == c.lee_ok


def moved(
    quotes: Sequence[SurfaceQuote], *, level: float, tilt: float, noise: float, forward: float, seed: int
) -> list[SurfaceQuote]:
    """The chain a little later: every IV (mark, bid, ask) moved by `level + tilt * k` plus noise,
    every forward by the factor `1 + forward`."""
    rng = random.Random(seed)
    out = []
    for q in quotes:
        d = level + tilt * math.log(q.strike / q.forward) + rng.gauss(0.0, noise)
        out.append(
            attrs.evolve(
                q,
                iv=q.iv + d,
                bid_iv=q.bid_iv + d if q.bid_iv else q.bid_iv,
                ask_iv=q.ask_iv + d if q.ask_iv else q.ask_iv,
                forward=q.forward * (1.0 + forward),
            )
        )
    return out


@pytest.fixture(scope="module", params=CHAINS)
def real(request: pytest.FixtureRequest) -> tuple[list[SurfaceQuote], int, VolSurface]:
    quotes, as_of = load_chain(request.param)
    return quotes, as_of, fit(quotes, as_of)


def test_a_warm_fit_of_the_same_real_chain_is_the_cold_fit_for_a_fraction_of_the_work(
    real: tuple[list[SurfaceQuote], int, VolSurface], monkeypatch: pytest.MonkeyPatch
) -> None:
    quotes, as_of, _ = real
    counted = Counted(monkeypatch)
    cold = fit(quotes, as_of)
    cold_calls, cold_work = counted.take()
    warm = fit(quotes, as_of, previous=cold)
    warm_calls, warm_work = counted.take()
    assert_as_good(warm, cold, SAME)
    assert all(s.warm_starts == 1 for s in warm.slices)
    assert all(s.warm_starts == 0 for s in cold.slices)
    assert warm.report()["slices"][0]["warm_starts"] == 1
    # One search per expiry from where the last one ended (the 2-D search over (m, sigma) of the
    # profiled fit, then the 5-D least squares from its end: two least squares), against several
    # starts each.
    assert warm_calls == 2 * len(warm.slices) < cold_calls
    assert warm_work * 5 < cold_work


@settings(max_examples=12, deadline=None)
@given(
    level=st.floats(-0.01, 0.01),
    tilt=st.floats(-0.03, 0.03),
    noise=st.sampled_from([0.0, 0.0005, 0.002]),
    forward=st.floats(-0.005, 0.005),
    later_s=st.sampled_from([0, 5, 60, 600]),
    seed=st.integers(0, 100),
)
def test_a_warm_fit_of_a_moved_real_chain_is_as_good_as_a_cold_one(
    real: tuple[list[SurfaceQuote], int, VolSurface],
    level: float,
    tilt: float,
    noise: float,
    forward: float,
    later_s: int,
    seed: int,
) -> None:
    quotes, as_of, before = real
    now = moved(quotes, level=level, tilt=tilt, noise=noise, forward=forward, seed=seed)
    later = as_of + later_s * NS
    assert_as_good(fit(now, later, previous=before), fit(now, later), MOVED, MOVED_RMSE)


def test_a_week_old_surface_as_the_start_gives_the_cold_fit() -> None:
    """2020-05-14's surface starting 2020-05-21's fit: five expiries in common, a week of moves
    (another minimum for most): the full search runs where the warm fit is worse than the week-old
    one, and the result is the cold fit's."""
    old_quotes, old_as_of = load_chain(CHAINS[0])
    quotes, as_of = load_chain(CHAINS[1])
    old = fit(old_quotes, old_as_of)
    warm, cold = fit(quotes, as_of, previous=old), fit(quotes, as_of)
    assert_as_good(warm, cold, SAME)
    common = {s.expiry_ns for s in old.slices} & {s.expiry_ns for s in warm.slices}
    assert len(common) == 5
    searched = [s.expiry_ns for s in warm.slices if s.warm_starts == 0]
    assert set(searched) > {s.expiry_ns for s in warm.slices} - common  # and more than those


def test_another_chains_or_a_later_surface_is_no_start() -> None:
    quotes, as_of = load_chain(CHAINS[1])
    cold = fit(quotes, as_of)
    for previous in (
        attrs.evolve(cold, underlying="ETH"),
        attrs.evolve(cold, venue="derive"),
        attrs.evolve(cold, as_of_ns=as_of + NS),
    ):
        again = fit(quotes, as_of, previous=previous)
        assert again.report() == cold.report()


# -- a synthetic chain moving from fit to fit ------------------------------------------------------

AS_OF = 1_700_000_000 * NS
EXPIRIES = ((2.0, (0.0016, 0.04, -0.55, -0.05, 0.08)), (30.0, (0.019, 0.11, -0.4, 0.02, 0.15)))


def moving_chain(steps: int, seed: int, step_s: int = 5) -> Iterator[tuple[int, list[SurfaceQuote]]]:
    """Every `step_s` seconds, the chain of two expiries (2 and 30 days) x 12 strikes x call/put:
    IVs from a raw SVI per expiry whose level, skew and centre drift (random walks), a forward on
    a random walk, half a tenth of a vol point of noise, 1 to 4 vol points wide."""
    rng = random.Random(seed)
    forward = 90_000.0
    drift = [0.0, 0.0, 0.0]  # level (in a), rho, m
    strikes = [forward * math.exp(-0.25 + 0.5 * i / 11) for i in range(12)]
    for step in range(steps):
        now = AS_OF + step * step_s * NS
        quotes = []
        for days, (a, b, rho, m, sigma) in EXPIRIES:
            expiry = AS_OF + round(days * DAY_NS)
            t0 = days * 86_400 / YEAR  # the smile is held in IV as time passes
            params = (a * (1 + drift[0]), b, rho + drift[1], m + drift[2], sigma)
            for strike in strikes:
                k = math.log(strike / forward)
                iv = math.sqrt(svi(k, *params) / t0) + rng.gauss(0.0, 0.0005)
                for call in (True, False):
                    half = rng.uniform(0.005, 0.02)
                    name = f"BTC-{days:.0f}-{strike:.0f}-{'C' if call else 'P'}"
                    bid, ask = iv - half, iv + half
                    quotes.append(SurfaceQuote(name, strike, expiry, iv, forward, bid, ask, call, now))
        yield now, quotes
        forward *= math.exp(rng.gauss(0.0, 0.0004))
        drift = [x + rng.gauss(0.0, scale) for x, scale in zip(drift, (0.004, 0.004, 0.002), strict=True)]


@pytest.mark.parametrize("seed", [1, 2])
def test_warm_fits_of_a_moving_chain_follow_the_cold_ones_for_less_work(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = Counted(monkeypatch)
    previous: VolSurface | None = None
    cold_work = warm_work = 0
    for now, quotes in moving_chain(40, seed):
        cold = fit(quotes, now)
        cold_work += counted.take()[1]
        warm = fit(quotes, now, previous=previous)
        warm_work += counted.take()[1]
        assert_as_good(warm, cold, MOVED, MOVED_RMSE)
        previous = warm
    # Measured: 503 and 510 Jacobians warm against 1336 and 1332 cold (the 2-D search of the
    # profiled fit and the 5-D least squares after it, both counted).
    assert warm_work * 2 < cold_work, (warm_work, cold_work)


def test_the_full_search_runs_again_every_so_many_warm_fits() -> None:
    counts = []
    previous: VolSurface | None = None
    for now, quotes in moving_chain(2 * fit_module.WARM_SEARCH_EVERY + 2, seed=3):
        previous = fit(quotes, now, previous=previous)
        counts.append([s.warm_starts for s in previous.slices])
    every = fit_module.WARM_SEARCH_EVERY
    # The first fit is cold; then 1, 2, ... until the search runs with the warm start (0 again),
    # unless the guard ran it earlier (a fit much worse than its previous one).
    for expiry in range(len(EXPIRIES)):
        column = [c[expiry] for c in counts]
        assert column[0] == 0
        assert all(b in (0, a + 1) for a, b in itertools.pairwise(column))
        assert max(column) < every
        assert column.count(0) >= 3
