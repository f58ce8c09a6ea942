"""A surface from an option chain: per expiry, raw SVI fitted to the mark IVs (quasi-explicitly:
a linear solve inside a 2-D search, then scipy's bounded least squares), weighted by what is
quoted; then the arbitrage checks (butterfly and Lee's bound per slice, calendar across slices).
numpy and scipy (the `surface` extra) are imported when a fit runs,
never when this module is imported.

What a fit does with its input, in order:

1. A quote is dropped (and counted in its expiry's `dropped`) when its strike or forward is not a
   finite positive number, its mark IV is not a number in [MIN_IV, max_iv) (one vol point; Deribit's
   0% and 500% wings mean "no quote"), or its strike is more than MAX_MONEYNESS (1000) times from
   its expiry's forward (3.) either way (model.py says why each bound: none rejects a real quote).
   Its bid and ask IVs count only as a pair with MIN_IV <= bid <= ask < max_iv; a missing side
   only lowers the quote's weight (4.). So no number that reaches the fit's arithmetic can
   overflow it (tests/surface/test_fit.py runs it with numpy's warnings as errors).
2. An expiry is skipped (reported in `VolSurface.skipped` with the reason) when it is closer than
   `min_expiry_s` or more than MAX_EXPIRY_S (ten years) away, when fewer than `min_quotes` distinct
   strikes are left, or when the fit fails.
3. The forward of an expiry is the median of its quotes' forwards (a quote dropped for its strike
   still votes); k = ln(K / F).
4. A quote's weight is 1 / the width of the IV interval its book brackets: [bid, ask] when both
   sides are quoted, [0, ask] or [bid, max_iv] with one side, [0, max_iv] with none (the venue's
   mark is then its own model, not a price: Deribit flattens its marks past the quoted wings),
   floored at a quarter of the expiry's median two-sided spread (one very tight quote must not pin
   the fit alone). Quotes at one strike (a call and a put) become one point: their IVs averaged by
   weight, the point weighing as its best quote.
5. The fit minimises the weighted IV errors over (v, b, rho, m, sigma), v = a + b sigma
   sqrt(1 - rho^2) the smallest total variance, in a box: v >= (1 vol point)^2 t, 0 <= b <= 2,
   |rho| <= 0.999, sigma in [a quarter of the closest strikes' k gap, 4] (the data cannot tell a
   narrower curve from a kink, a spike of density), m within the quoted k widened by its span; so
   every fit has b >= 0, |rho| < 1, sigma > 0 and a + b sigma sqrt(1 - rho^2) > 0.
   The search is the quasi-explicit calibration (Zeliade Systems, "Quasi-explicit calibration of
   Gatheral's SVI model", 2009; De Marco & Martini): with (m, sigma) fixed, w is linear in
   (a, p, q) (`_Profile`), solved exactly as a 3-column weighted linear least squares; a 2-D
   least squares over (m, sigma) minimises the IV errors of that profiled fit, and the 5-D least
   squares ends the search from there (same objective, a few iterations). The full search starts
   the 2-D one from the best `MS_STARTS` points of a grid of (m, sigma) over the quoted k and
   sigma up to its bound (each a linear solve).
   Warm start (`previous`, the service's latest surface of the chain): an expiry the previous
   surface fitted starts the 2-D search alone from that fit's (m, sigma), its smile held in IV
   at the same strikes (m moved by the forward's log move). On a smile raw SVI fits only loosely
   (the Deribit generator's, a parabola in k / sqrt(t): a flat valley of near-equal fits, where
   the 5-D least squares alone crept ~140 iterations from a warm start) a warm refit costs about
   2 ms a slice instead of 25 (bench/bench_surface.py). The result is kept when its RMS IV error
   is within `WARM_RMSE_RATIO` and `WARM_RMSE_SLACK` of the previous fit's; otherwise (the chain
   moved too far: another minimum) the full search runs too and the best of all is kept. So a
   warm start cannot stay in a worse minimum for long, the full search runs with it every
   `WARM_SEARCH_EVERY` fits of the expiry (`SliceFit.warm_starts` counts the fits since the last
   full search).
6. If the best fit has butterfly arbitrage on the check grid (g(k) < 0), it is fitted again with
   a penalty on g below a small margin over the grid, its weight raised tenfold up to twice while
   the arbitrage stays; the penalised fit replaces the first when it removes the arbitrage, or
   lessens it for less than one vol point more of RMS IV error (`SliceFit.arbitrage_penalty` says
   so; `butterfly_ok` still reports what is left). Lee's bound is checked and reported, not
   enforced (its box keeps b <= 2).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..model.pricing import YEAR_SECONDS
from .model import (
    MAX_EXPIRY_S,
    MAX_MONEYNESS,
    SliceFit,
    SurfaceQuote,
    SurfaceSettings,
    SviParams,
    VolSurface,
    _usable_iv,
    _usable_quote,
    calendar_check,
)

if TYPE_CHECKING:
    from .svi import Array

__all__ = ["check_grid", "fit_surface"]

_NS_PER_YEAR = 1e9 * YEAR_SECONDS
_MAX_EXPIRY_NS = MAX_EXPIRY_S * 10**9
_MAX_ABS_K = math.log(MAX_MONEYNESS)
GRID_POINTS = 1001  # the butterfly check's grid, per slice
CALENDAR_POINTS = 201  # the calendar check's grid, shared by all slices
PENALTY_POINTS = 201  # where the arbitrage penalty looks (the check's grid, coarser: for speed)
PENALTY_WEIGHTS = (1e2, 1e3, 1e4)  # per unit of negative g, against residuals in IV (about 0.01)
PENALTY_MARGIN = 1e-3  # g is held above this on the coarse grid, to be >= 0 between its points
_SIGMA_STARTS = (0.05, 0.2, 0.6)  # sigma starts, as fractions of the quoted k span
# A warm start's result is kept when its RMS IV error is at most this ratio of the previous fit's
# plus this slack (a tenth of a vol point: the chain moved a little since, the fit may be a little
# worse); else the full search runs as well. And the full search runs at least every this many fits.
WARM_RMSE_RATIO = 1.1
WARM_RMSE_SLACK = 0.001
WARM_SEARCH_EVERY = 10


@attrs.frozen
class _Point:
    strike: float
    k: float
    iv: float
    weight: float


@attrs.frozen
class _Expiry:
    expiry_ns: int
    t: float
    forward: float
    points: tuple[_Point, ...]
    used: int
    dropped: int
    quoted: tuple[tuple[float, float, float, float], ...]  # two-sided quotes: (k, mark, bid, ask) IVs


def fit_surface(
    quotes: Sequence[SurfaceQuote],
    *,
    venue: str,
    underlying: str,
    as_of_ns: int,
    settings: SurfaceSettings = SurfaceSettings(),  # noqa: B008 (frozen, immutable)
    previous: VolSurface | None = None,
) -> VolSurface:
    """The surface of `underlying` on `venue` from `quotes`, as of `as_of_ns`. Never raises on bad
    data: what cannot be used is dropped or skipped, and counted or reported in the result (an
    empty chain gives a surface with no slices, whose queries raise OutsideSurface).

    `previous`: an earlier surface of the same chain, whose slices start the same expiries' fits
    (step 5's warm start); ignored when it is another chain's or is later than `as_of_ns`."""
    prior: dict[int, SliceFit] = {}
    if (
        isinstance(previous, VolSurface)
        and previous.venue == venue
        and previous.underlying == underlying
        and previous.as_of_ns <= as_of_ns
    ):
        prior = {s.expiry_ns: s for s in previous.slices}
    by_expiry: dict[int, list[SurfaceQuote]] = {}
    for q in quotes:
        by_expiry.setdefault(q.expiry_ns, []).append(q)
    slices: list[SliceFit] = []
    skipped: list[tuple[int, str]] = []
    for expiry_ns in sorted(by_expiry):
        # Compared in integer ns before any float: an int of an expiry can be past a float's range.
        if not -_MAX_EXPIRY_NS <= expiry_ns - as_of_ns <= _MAX_EXPIRY_NS:
            skipped.append(
                (expiry_ns, f"expires more than {MAX_EXPIRY_S / YEAR_SECONDS:g} years from as_of_ns")
            )
            continue
        seconds = (expiry_ns - as_of_ns) / 1e9
        if seconds < settings.min_expiry_s:
            skipped.append(
                (expiry_ns, f"expires in {seconds:.0f} s, closer than min_expiry_s={settings.min_expiry_s:g}")
            )
            continue
        prepared = _prepare(expiry_ns, seconds / YEAR_SECONDS, by_expiry[expiry_ns], settings)
        if isinstance(prepared, str):
            skipped.append((expiry_ns, prepared))
            continue
        try:
            slices.append(_fit_slice(prepared, prior.get(expiry_ns)))
        except (ValueError, ArithmeticError) as exc:  # scipy's and SviParams' refusals of a bad fit
            skipped.append((expiry_ns, f"the fit failed: {exc}"))
    violations = calendar_check(slices, check_grid(slices, CALENDAR_POINTS)) if len(slices) > 1 else ()
    return VolSurface(
        venue=venue,
        underlying=underlying,
        as_of_ns=as_of_ns,
        slices=tuple(slices),
        calendar_ok=not violations,
        calendar_violations=violations,
        skipped=tuple(skipped),
    )


def check_grid(slices: Sequence[SliceFit], points: int) -> tuple[float, ...]:
    """A k grid covering every slice's quoted strikes and four of its ATM standard deviations,
    widened by half on each side (the calendar check's, shared by all slices)."""
    half = max(_half_width(s.forward, s.residuals, s.params) for s in slices)
    step = 2.0 * half / (points - 1)
    return tuple(-half + i * step for i in range(points))


def _half_width(forward: float, residuals: Sequence[tuple[float, float]], params: SviParams) -> float:
    ks = [abs(math.log(strike / forward)) for strike, _ in residuals]
    return 1.5 * max([*ks, 4.0 * math.sqrt(params.w(0.0))])


def _spread(q: SurfaceQuote, max_iv: float) -> tuple[float, bool]:
    """The width of the IV interval the book brackets the quote in, and whether both sides are
    quoted: [bid, ask] when both are; a missing side (None, or not a usable IV: Deribit's 0 and
    500) widens it to 0 or max_iv, so an unquoted mark (the venue's model, not a price) has the
    width max_iv and weighs little."""
    bid, ask = q.bid_iv, q.ask_iv
    lo = bid if bid is not None and _usable_iv(bid, max_iv) else 0.0
    hi = ask if ask is not None and _usable_iv(ask, max_iv) else max_iv
    has_bid, has_ask = lo > 0.0, hi < max_iv
    if hi < lo:  # crossed: neither side is believable
        return max_iv, False
    return hi - lo, has_bid and has_ask


def _prepare(
    expiry_ns: int, t: float, quotes: list[SurfaceQuote], settings: SurfaceSettings
) -> _Expiry | str:
    """The expiry's points to fit, or why it cannot be fitted."""
    usable = [q for q in quotes if _usable_quote(q, settings.max_iv)]
    forward = statistics.median(q.forward for q in usable) if usable else math.nan
    # ln K - ln F: K / F can overflow or underflow where the logs of two positive floats cannot.
    # (A median of two forwards near the float's limit is inf: then no strike is near it.)
    log_f = math.log(forward) if usable else math.nan
    good = [q for q in usable if abs(math.log(q.strike) - log_f) <= _MAX_ABS_K]
    dropped = len(quotes) - len(good)
    strikes = {q.strike for q in good}
    if len(strikes) < settings.min_quotes:
        return (
            f"{len(strikes)} usable strikes, fewer than min_quotes={settings.min_quotes} "
            f"({dropped} of {len(quotes)} quotes dropped)"
        )
    spreads = [_spread(q, settings.max_iv) for q in good]
    two_sided = [width for width, both in spreads if both]
    # one very tight quote must not pin the fit alone
    floor = max(0.25 * statistics.median(two_sided), 1e-4) if two_sided else 1e-4
    per_strike: dict[float, list[tuple[float, float]]] = {}
    for q, (width, _) in zip(good, spreads, strict=True):
        weight = 1.0 / max(width, floor)
        per_strike.setdefault(q.strike, []).append((q.iv, weight))
    raw = [
        (strike, sum(iv * wt for iv, wt in found) / sum(wt for _, wt in found), max(wt for _, wt in found))
        for strike, found in sorted(per_strike.items())
    ]
    mean_weight = sum(wt for _, _, wt in raw) / len(raw)  # weights near 1: the penalty's scale
    points = tuple(_Point(s, math.log(s / forward), iv, wt / mean_weight) for s, iv, wt in raw)
    quoted = tuple(
        (math.log(q.strike / forward), q.iv, float(q.bid_iv or 0.0), float(q.ask_iv or 0.0))
        for q, (_, both) in zip(good, spreads, strict=True)
        if both
    )
    return _Expiry(expiry_ns, t, forward, points, len(good), dropped, quoted)


def _params(x: Array) -> tuple[float, float, float, float, float]:
    """(a, b, rho, m, sigma) from the fit's variables (v, b, rho, m, sigma)."""
    v, b, rho, m, sigma = (float(y) for y in x)
    return v - b * sigma * math.sqrt(1.0 - rho * rho), b, rho, m, sigma


def _fit_slice(e: _Expiry, prior: SliceFit | None = None) -> SliceFit:
    import numpy as np
    from scipy.optimize import least_squares

    from . import svi

    k = np.array([p.k for p in e.points])
    iv = np.array([p.iv for p in e.points])
    wt = np.array([p.weight for p in e.points])
    t = e.t
    total = iv * iv * t
    k_lo, k_hi = float(np.min(k)), float(np.max(k))
    span = max(k_hi - k_lo, 1e-3)
    v_floor = 1e-4 * t  # one vol point
    # The data cannot tell a curve narrower than its strike spacing from a kink (a spike of density)
    sigma_floor = max(0.25 * float(np.min(np.diff(k))) if len(k) > 1 else 1e-4, 1e-4)
    lower = np.array([v_floor, 0.0, -0.999, k_lo - span, sigma_floor])
    upper = np.array([max(4.0 * float(total.max()), 2.0 * v_floor), 2.0, 0.999, k_hi + span, 4.0])

    def residuals(x: Array) -> Array:
        a, b, rho, m, sigma = _params(x)
        model = svi.w(k, a, b, rho, m, sigma)
        out: Array = (np.sqrt(np.maximum(model, 1e-12) / t) - iv) * wt
        return out

    def jacobian(x: Array) -> Array:
        v, b, rho, m, sigma = (float(y) for y in x)
        a = v - b * sigma * math.sqrt(1.0 - rho * rho)
        c = math.sqrt(1.0 - rho * rho)
        dx = k - m
        r = np.sqrt(dx * dx + sigma * sigma)
        model = np.maximum(a + b * (rho * dx + r), 1e-12)
        scale = wt / (2.0 * np.sqrt(model * t))  # d residual / d w
        # d w / d (v, b, rho, m, sigma), with a = v - b sigma sqrt(1 - rho^2)
        cols = (
            np.ones_like(k),
            -sigma * c + rho * dx + r,
            b * sigma * rho / c + b * dx,
            -b * (rho + dx / r),
            -b * c + b * sigma / r,
        )
        out: Array = np.stack([scale * col for col in cols], axis=1)
        return out

    profile = _Profile(k, iv, wt, t, lower, upper)
    ms_lower, ms_upper = lower[3:], upper[3:]

    def solve(ms0: Array) -> _Found:
        """The 2-D search over (m, sigma) of the profiled fit, then the 5-D least squares from its
        end (a few iterations: it starts at the profile's best, on the same objective)."""
        ms = np.clip(ms0, ms_lower + 1e-12 * (ms_upper - ms_lower), ms_upper - 1e-12 * (ms_upper - ms_lower))
        outer = least_squares(
            profile.residuals,
            ms,
            bounds=(ms_lower, ms_upper),
            method="trf",
            x_scale="jac",
            ftol=OUTER_TOL,
            xtol=OUTER_TOL,
        )
        x0 = np.clip(profile.params(*(float(y) for y in outer.x)), lower, upper)
        if POLISH:
            found = least_squares(
                residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf", x_scale="jac"
            )
            return _Found(found.x, found.fun)
        return _Found(x0, residuals(x0))

    best: _Found | None = None
    warm_starts = 0
    warm = _warm_start(e, prior, lower, upper)
    if warm is not None and prior is not None:
        found = solve(warm[3:])
        if np.all(np.isfinite(found.x)):
            best = found
            warm_starts = prior.warm_starts + 1
    search = (
        best is None
        or warm_starts >= WARM_SEARCH_EVERY
        or prior is None
        or _rms(best.fun / wt) > prior.rmse_iv * WARM_RMSE_RATIO + WARM_RMSE_SLACK
    )
    if search:
        warm_starts = 0
        for ms0 in _ms_starts(profile, k, span, ms_lower, ms_upper):
            found = solve(ms0)
            if np.all(np.isfinite(found.x)) and (best is None or found.cost < best.cost):
                best = found
    if best is None:
        raise ValueError("no start converged to finite parameters")
    x = best.x
    grid_half = _half_width(e.forward, [(p.strike, 0.0) for p in e.points], SviParams(*_params(x)))
    grid = np.linspace(-grid_half, grid_half, GRID_POINTS, dtype=np.float64)
    min_g, min_k = _min_g(grid, x)
    penalty_used = False
    if min_g < 0.0:
        penalty_k = np.linspace(-grid_half, grid_half, PENALTY_POINTS, dtype=np.float64)
        rmse_before = _rms(residuals(x) / wt)
        again, g_again, k_again = x, min_g, min_k
        for weight in PENALTY_WEIGHTS:

            def penalised(y: Array, weight: float = weight) -> Array:
                gk = svi.g(penalty_k, *_params(y))
                return np.concatenate([residuals(y), weight * np.minimum(gk - PENALTY_MARGIN, 0.0)])

            again = least_squares(penalised, again, bounds=(lower, upper), method="trf", x_scale="jac").x
            if not np.all(np.isfinite(again)):
                break
            g_again, k_again = _min_g(grid, again)
            if g_again >= 0.0:
                break
        if (
            np.all(np.isfinite(again))
            and g_again > min_g
            and (g_again >= 0.0 or _rms(residuals(again) / wt) <= rmse_before + 0.01)
        ):
            x, min_g, min_k, penalty_used = again, g_again, k_again, True
    params = SviParams(*_params(x))
    fitted = np.sqrt(svi.w(k, *attrs.astuple(params)) / t)
    errors = fitted - iv
    rmse_quoted, outside = math.nan, 0
    if e.quoted:
        qk, mark, bid, ask = (np.array(col) for col in zip(*e.quoted, strict=True))
        at_quotes = np.sqrt(svi.w(qk, *attrs.astuple(params)) / t)
        rmse_quoted = float(np.sqrt(np.mean((at_quotes - mark) ** 2)))
        outside = int(np.sum((at_quotes < bid) | (at_quotes > ask)))
    return SliceFit(
        expiry_ns=e.expiry_ns,
        t_years=t,
        forward=e.forward,
        params=params,
        quotes=e.used,
        dropped=e.dropped,
        rmse_iv=float(np.sqrt(np.mean(errors * errors))),
        max_abs_err_iv=float(np.max(np.abs(errors))),
        residuals=tuple((p.strike, float(err)) for p, err in zip(e.points, errors, strict=True)),
        butterfly_min_g=min_g,
        butterfly_ok=min_g >= 0.0,
        lee_ok=params.lee_ok(),
        butterfly_min_k=min_k,
        arbitrage_penalty=penalty_used,
        quoted=len(e.quoted),
        rmse_iv_quoted=rmse_quoted,
        outside_quotes=outside,
        warm_starts=warm_starts,
    )


POLISH = True
OUTER_TOL = 1e-10
MS_STARTS = 2  # the full search runs the 2-D search from this many of the grid's best (m, sigma)


@attrs.frozen
class _Found:
    x: Array
    fun: Array

    @property
    def cost(self) -> float:
        return 0.5 * float(self.fun @ self.fun)


def _ms_starts(profile: _Profile, k: Array, span: float, lower: Array, upper: Array) -> list[Array]:
    """The full search's starts: a grid of (m, sigma) over the quoted k and the sigma starts, each
    scored by its profiled fit (a linear least squares), the best few kept."""
    import numpy as np

    k_lo, k_hi = float(np.min(k)), float(np.max(k))
    scored = []
    for m in np.linspace(k_lo - 0.5 * span, k_hi + 0.5 * span, 7):
        for sigma in np.geomspace(max(float(lower[1]), 0.02 * span), float(upper[1]), 6):
            ms = np.clip(np.array([m, sigma]), lower, upper)
            r = profile.residuals(ms)
            scored.append((float(r @ r), ms))
    scored.sort(key=lambda item: item[0])
    return [ms for _, ms in scored[:MS_STARTS]]


def _rms(x: Array) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(x * x)))


def _min_g(grid: Array, x: Array) -> tuple[float, float]:
    import numpy as np

    from . import svi

    gk = svi.g(grid, *_params(x))
    i = int(np.argmin(gk))
    return float(gk[i]), float(grid[i])


def _warm_start(e: _Expiry, prior: SliceFit | None, lower: Array, upper: Array) -> Array | None:
    """The previous fit of the expiry as a start (v, b, rho, m, sigma) in today's box: its smile held
    in IV at the same strikes (total variance scaled by the time left, m moved by the forward's log
    move: w_now(k) = w_then(k + ln(F_now / F_then)) t_now / t_then). None without one."""
    import numpy as np

    if prior is None:
        return None
    p = prior.params
    scale = e.t / prior.t_years
    shift = math.log(e.forward / prior.forward)
    x0 = np.array([p.min_w() * scale, p.b * scale, p.rho, p.m - shift, p.sigma])
    if not np.all(np.isfinite(x0)):
        return None
    margin = 1e-12 * (upper - lower)
    start: Array = np.clip(x0, lower + margin, upper - margin)
    return start


# -- the quasi-explicit calibration (Zeliade 2009; De Marco & Martini) ---------------------------


class _Profile:
    """Raw SVI with (m, sigma) fixed is linear in the rest: with y = (k - m) / sigma and
    z = sqrt(y^2 + 1), w = a + p (z + y) / 2 + q (z - y) / 2, p = b sigma (1 + rho) and
    q = b sigma (1 - rho) the wing slopes in y (both >= 0 iff b >= 0 and |rho| <= 1). The best
    (a, p, q) for given (m, sigma) is a 3-column weighted linear least squares: in total variance,
    each point weighted by d IV / d w = 1 / (2 IV t) times its weight, so it minimises the IV
    errors to first order, then one Gauss-Newton step at the fitted IVs (the exact IV errors to
    second order). p, q < 0 are held at 0 (the best of the faces); then the box of step 5 is
    applied (b <= 2, |rho| <= 0.999, v >= its floor) and the IV residuals of those parameters
    returned: what the 2-D search over (m, sigma) minimises is the 5-D fit's own objective."""

    def __init__(self, k: Array, iv: Array, wt: Array, t: float, lower: Array, upper: Array) -> None:
        import numpy as np

        self.k, self.iv, self.wt, self.t = k, iv, wt, t
        self.total = iv * iv * t
        self.lower, self.upper = lower, upper
        self.u0 = wt / (2.0 * iv * t)
        self.np = np
        self.evaluations = 0

    def params(self, m: float, sigma: float) -> Array:
        """(v, b, rho, m, sigma): the fit's variables, inside its box."""
        np = self.np
        y = (self.k - m) / sigma
        z = np.sqrt(y * y + 1.0)
        cols = np.empty((len(y), 3))
        cols[:, 0] = 1.0
        cols[:, 1] = 0.5 * (z + y)
        cols[:, 2] = 0.5 * (z - y)
        a, p, q = self._solve(cols, self.u0)
        w = a + cols[:, 1] * p + cols[:, 2] * q
        if np.all(w > 0.0):  # Gauss-Newton at the fitted IVs: IV - iv ~ (w - total) / (2 sqrt(w t))
            fitted = np.sqrt(w / self.t)
            # residual r = wt (fitted - iv); linearised at w: r ~ wt (fitted - iv) + u (w' - w)
            u = self.wt / (2.0 * fitted * self.t)
            target = w - (fitted - self.iv) / (u / self.wt)
            a, p, q = self._solve(cols, u, target)
        c, d = 0.5 * (p + q), 0.5 * (p - q)
        b = c / sigma
        rho = d / c if c > 0.0 else 0.0
        lo, hi = self.lower, self.upper
        b = min(max(b, float(lo[1])), float(hi[1]))
        rho = min(max(rho, float(lo[2])), float(hi[2]))
        v = a + b * sigma * math.sqrt(1.0 - rho * rho)
        v = min(max(v, float(lo[0])), float(hi[0]))
        out: Array = np.array([v, b, rho, m, sigma])
        return out

    def _solve(self, cols: Array, u: Array, target: Array | None = None) -> tuple[float, float, float]:
        """The weighted least squares (a, p, q) with p, q >= 0: the free solution, else the best
        with p, q or both held at 0."""
        np = self.np
        rhs = (self.total if target is None else target) * u
        design = cols * u[:, None]
        best: tuple[float, float, float] | None = None
        best_cost = math.inf
        gram = design.T @ design
        moment = design.T @ rhs
        for free in ((0, 1, 2), (0, 1), (0, 2), (0,)):
            idx = list(free)
            try:
                sol = np.linalg.solve(gram[np.ix_(idx, idx)], moment[idx])
            except np.linalg.LinAlgError:
                continue
            x = [0.0, 0.0, 0.0]
            for i, j in enumerate(free):
                x[j] = float(sol[i])
            if x[1] < 0.0 or x[2] < 0.0:
                continue
            if len(free) == 3:
                return x[0], x[1], x[2]
            resid = design[:, idx] @ sol - rhs
            cost = float(resid @ resid)
            if cost < best_cost:
                best, best_cost = (x[0], x[1], x[2]), cost
        return best if best is not None else (float(np.average(rhs / u, weights=u * u)), 0.0, 0.0)

    def residuals(self, ms: Array) -> Array:
        """The IV residuals of the best parameters at (m, sigma) = ms."""
        from . import svi

        self.evaluations += 1
        x = self.params(float(ms[0]), float(ms[1]))
        model = svi.w(self.k, *_params(x))
        out: Array = (self.np.sqrt(self.np.maximum(model, 1e-12) / self.t) - self.iv) * self.wt
        return out
