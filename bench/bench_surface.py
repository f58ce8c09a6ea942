"""The volatility surface: what a refit costs and what a probability query costs (issue 20).

    python bench/bench_surface.py [--repeat 7] [--expiries 8] [--strikes 40] [--queries 20000] [--json FILE]

1. Refit of a real chain: `tests/fixtures/deribit/chains/btc_2020-05-21.csv` (Deribit BTC,
   2020-05-21, 326 options over 7 expiries), `fit_surface` on all of it, arbitrage checks included.
2. Refit of a synthetic chain: `--expiries` expiries (1 day to about a year) of `--strikes`
   strikes each, a call and a put per strike, mark IVs from a known raw SVI per expiry plus
   noise (half a vol point), quoted 2 to 6 vol points wide.
   And a generator-shaped chain (`generator_chain`: what `tradingd generate --venue deribit
   --strikes 12` quotes, 2 expiries x 12 strikes, a smile raw SVI fits only loosely).
   Then the chains moved a little, 5 s later (every IV up a fifth of a vol point and tilted by
   one point per unit of log-moneyness, a tenth of a point of noise, the forward up 0.05%: what
   a quiet market does between two refits), fitted cold and warm (`previous=` the surface of
   the chain before the move, as the service refits), with the least squares' iterations
   (Jacobian evaluations, all expiries) of each.
3. Queries on the real chain's surface: `prob_above`, `prob_between` and `iv` at `--queries`
   (strike, expiry) pairs drawn once (strikes 0.6 to 1.6 times the forward, expiries anywhere
   from an hour to the last slice, so most fall between slices), the figure per query.

Every figure is CPU time of this process (`time.process_time`: what the work costs, not what
the other processes of a shared machine cost it), the median of `--repeat` runs, each run after
one untimed warm-up (the fit's first run imports numpy and scipy: that import is measured apart,
in a fresh interpreter, as `import cost`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (BENCH, ROOT):  # _common; tests.surface.witness (the chain fixtures' loader)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _common import median_of  # noqa: E402

from tests.surface.witness import load_chain  # noqa: E402
from tradingd.engine.surface import SurfaceQuote, VolSurface, fit_surface  # noqa: E402

CHAIN = ROOT / "tests" / "fixtures" / "deribit" / "chains" / "btc_2020-05-21.csv"
DAY_NS = 86_400 * 10**9


def real_chain() -> tuple[list[SurfaceQuote], int]:
    """The captured chain's quotes (Deribit's percent IVs as fractions) and its capture's end, read
    by the tests' own loader (one reader of the chain fixtures)."""
    return load_chain(CHAIN.name)


def synthetic_chain(expiries: int, strikes: int, seed: int = 1) -> tuple[list[SurfaceQuote], int]:
    """`expiries` x `strikes` x (call, put) quotes from a raw SVI per expiry, as of a fixed time."""
    rng = random.Random(seed)
    as_of = 1_700_000_000 * 10**9
    forward = 50_000.0
    quotes = []
    for e in range(expiries):
        days = 365.0 ** (e / max(expiries - 1, 1))  # 1 day to a year, evenly in log time
        t = days / 365.0
        atm = 0.55 + 0.15 * math.exp(-days / 30.0)  # short expiries richer, as in crypto
        a, b, rho, m, sigma = atm * atm * t * 0.8, 0.12 * math.sqrt(t), -0.3, 0.02, 0.15 * math.sqrt(t) + 0.02
        width = 4.0 * atm * math.sqrt(t) + 0.1
        expiry_ns = as_of + round(days * DAY_NS)
        for i in range(strikes):
            k = -width + 2.0 * width * i / max(strikes - 1, 1)
            strike = round(forward * math.exp(k), 2)
            w = a + b * (rho * (k - m) + math.hypot(k - m, sigma))
            iv = math.sqrt(w / t) + rng.gauss(0.0, 0.005)
            for right in ("C", "P"):
                half = rng.uniform(0.01, 0.03)
                quotes.append(
                    SurfaceQuote(
                        f"BTC-{e}-{strike:.0f}-{right}",
                        strike,
                        expiry_ns,
                        iv,
                        forward + rng.uniform(-5.0, 5.0),
                        iv - half,
                        iv + half,
                        right == "C",
                    )
                )
    return quotes, as_of


def generator_chain(seed: int = 1) -> tuple[list[SurfaceQuote], int]:
    """A chain shaped as `tradingd generate --venue deribit --strikes 12` makes: 2 expiries (3 and
    31 days) x 12 strikes x (call, put), the smile a parabola in x = k / sqrt(t) (IV = 0.40 - 0.03 x
    + 0.02 x^2: the sample's, read off its fitted points), which raw SVI fits only in a flat valley
    of near-equal fits; quoted 1 to 4 vol points wide."""
    rng = random.Random(seed)
    as_of = 1_795_000_000 * 10**9
    forward = 91_250.0
    quotes = []
    for days in (3.0, 31.0):
        t = days / 365.0
        expiry_ns = as_of + round(days * DAY_NS)
        for i in range(12):
            x = -1.6 + 3.2 * i / 11
            k = x * math.sqrt(t)
            strike = round(forward * math.exp(k), 2)
            iv = 0.40 - 0.03 * x + 0.02 * x * x + rng.gauss(0.0, 0.0005)
            for right in ("C", "P"):
                half = rng.uniform(0.005, 0.02)
                quotes.append(
                    SurfaceQuote(
                        f"BTC-{days:.0f}-{strike:.0f}-{right}",
                        strike,
                        expiry_ns,
                        iv,
                        forward,
                        iv - half,
                        iv + half,
                        right == "C",
                    )
                )
    return quotes, as_of


def moved(quotes: list[SurfaceQuote], seed: int = 3) -> list[SurfaceQuote]:
    """The chain a little later (module docstring, 2.)."""
    rng = random.Random(seed)
    out = []
    for q in quotes:
        d = 0.002 - 0.01 * math.log(q.strike / q.forward) + rng.gauss(0.0, 0.001)
        bid = None if q.bid_iv is None else q.bid_iv + d
        ask = None if q.ask_iv is None else q.ask_iv + d
        out.append(attrs.evolve(q, iv=q.iv + d, bid_iv=bid, ask_iv=ask, forward=q.forward * 1.0005))
    return out


class Iterations:
    """Counts scipy's least-squares iterations (Jacobian evaluations) of the fits it wraps."""

    def __init__(self) -> None:
        import scipy.optimize

        self.module = scipy.optimize
        self.original = scipy.optimize.least_squares
        self.count = 0

    def __enter__(self) -> Iterations:
        def counted(*args: Any, **kw: Any) -> Any:
            found = self.original(*args, **kw)
            self.count += int(found.njev or 0)
            return found

        self.module.least_squares = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.least_squares = self.original


def cpu_runs(work: Callable[[], object], repeat: int) -> list[float]:
    """CPU seconds of `repeat` runs of `work`, after one untimed run."""
    work()
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        work()
        out.append(time.process_time() - t0)
    return out


def import_cost() -> float:
    """CPU seconds a fresh interpreter spends importing what a first fit imports."""
    code = (
        "import time; t0 = time.process_time()\nimport numpy, scipy.optimize\nprint(time.process_time() - t0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return float(done.stdout.strip())


def queries(surface: VolSurface, n: int, seed: int = 2) -> list[tuple[float, float, int]]:
    """(strike, a second strike above it, expiry) triples inside the surface."""
    rng = random.Random(seed)
    first = surface.as_of_ns + 3_600 * 10**9
    last = surface.slices[-1].expiry_ns
    forward = surface.slices[0].forward
    out = []
    for _ in range(n):
        strike = forward * rng.uniform(0.6, 1.6)
        out.append((strike, strike * rng.uniform(1.01, 1.2), rng.randrange(first, last)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--expiries", type=int, default=8)
    parser.add_argument("--strikes", type=int, default=40)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"import_cost_ms": import_cost() * 1e3}

    real, real_as_of = real_chain()
    synth, synth_as_of = synthetic_chain(args.expiries, args.strikes)

    def fit_real() -> VolSurface:
        return fit_surface(real, venue="deribit", underlying="BTC", as_of_ns=real_as_of)

    def fit_synth() -> VolSurface:
        return fit_surface(synth, venue="deribit", underlying="BTC", as_of_ns=synth_as_of)

    gen, gen_as_of = generator_chain()

    def fit_gen() -> VolSurface:
        return fit_surface(gen, venue="deribit", underlying="BTC", as_of_ns=gen_as_of)

    before_real, before_synth, before_gen = fit_real(), fit_synth(), fit_gen()
    gen_moved, later_gen = moved(gen), gen_as_of + 5 * 10**9

    def fit_gen_moved(previous: VolSurface | None = None) -> VolSurface:
        return fit_surface(
            gen_moved, venue="deribit", underlying="BTC", as_of_ns=later_gen, previous=previous
        )

    real_moved, synth_moved = moved(real), moved(synth)
    later_real, later_synth = real_as_of + 5 * 10**9, synth_as_of + 5 * 10**9

    def fit_real_moved(previous: VolSurface | None = None) -> VolSurface:
        return fit_surface(
            real_moved, venue="deribit", underlying="BTC", as_of_ns=later_real, previous=previous
        )

    def fit_synth_moved(previous: VolSurface | None = None) -> VolSurface:
        return fit_surface(
            synth_moved, venue="deribit", underlying="BTC", as_of_ns=later_synth, previous=previous
        )

    fits: list[tuple[str, str, list[float], VolSurface, int]] = []
    for key, what, work in (
        ("real", f"real chain: {len(real)} options, 7 expiries", fit_real),
        (
            "synthetic",
            f"synthetic: {len(synth)} options, {args.expiries} x {args.strikes} strikes",
            fit_synth,
        ),
        ("real_moved_cold", "real chain moved, cold", fit_real_moved),
        ("real_moved_warm", "real chain moved, warm (previous=)", lambda: fit_real_moved(before_real)),
        ("synthetic_moved_cold", "synthetic moved, cold", fit_synth_moved),
        ("synthetic_moved_warm", "synthetic moved, warm (previous=)", lambda: fit_synth_moved(before_synth)),
        ("generator", f"generator-shaped: {len(gen)} options, 2 x 12 strikes", fit_gen),
        ("generator_moved_cold", "generator-shaped moved, cold", fit_gen_moved),
        (
            "generator_moved_warm",
            "generator-shaped moved, warm (previous=)",
            lambda: fit_gen_moved(before_gen),
        ),
    ):
        runs = cpu_runs(work, args.repeat)
        with Iterations() as counted:
            surface = work()
        fits.append((key, what, runs, surface, counted.count))
        results[f"refit_{key}_ms"] = median_of(runs) * 1e3
        results[f"refit_{key}_runs_ms"] = [r * 1e3 for r in runs]
        results[f"refit_{key}_slices"] = len(surface.slices)
        results[f"refit_{key}_iterations"] = counted.count
    for key in ("real", "synthetic", "generator"):
        by_key = {f[0]: f[3] for f in fits}
        cold, warm = by_key[f"{key}_moved_cold"], by_key[f"{key}_moved_warm"]
        worst = max(
            abs(a - b)
            for c, w in zip(cold.slices, warm.slices, strict=True)
            for (_, a), (_, b) in zip(c.residuals, w.residuals, strict=True)
        )
        results[f"warm_vs_cold_{key}_max_residual_diff_iv"] = worst

    surface = fits[0][3]
    pairs = queries(surface, args.queries)
    per_query: dict[str, list[float]] = {}
    for name, query in (
        ("prob_above", lambda k, _k2, e: surface.prob_above(k, e)),
        ("prob_between", lambda k, k2, e: surface.prob_between(k, k2, e)),
        ("iv", lambda k, _k2, e: surface.iv(k, e)),
    ):

        def run(query: Callable[[float, float, int], float] = query) -> None:
            for strike, high, expiry in pairs:
                query(strike, high, expiry)

        per_query[name] = [r / len(pairs) for r in cpu_runs(run, args.repeat)]
        results[f"{name}_us"] = median_of(per_query[name]) * 1e6

    print(
        "import numpy + scipy.optimize (fresh interpreter, once per process): "
        f"{results['import_cost_ms']:.0f} ms CPU"
    )
    print()
    print(
        f"{'refit (CPU, median of ' + str(args.repeat) + ')':52} {'ms':>8} {'per slice':>10} "
        f"{'iterations':>10}   runs (ms)"
    )
    for _key, what, runs, fitted, iterations in fits:
        med = median_of(runs) * 1e3
        print(
            f"{what:52} {med:8.1f} {med / max(len(fitted.slices), 1):10.2f} {iterations:10}   "
            + " ".join(f"{r * 1e3:.1f}" for r in runs)
        )
    print(
        "warm vs cold on the moved chains, the largest difference of a residual (vol points): "
        f"real {results['warm_vs_cold_real_max_residual_diff_iv'] * 100:.4f}, "
        f"synthetic {results['warm_vs_cold_synthetic_max_residual_diff_iv'] * 100:.4f}, "
        f"generator-shaped {results['warm_vs_cold_generator_max_residual_diff_iv'] * 100:.4f}"
    )
    print()
    print(f"{'query on the real surface (CPU per query)':52} {'us':>8}")
    for name, runs in per_query.items():
        print(f"{name:52} {median_of(runs) * 1e6:8.2f}")
    print(f"({len(pairs)} (strike, expiry) pairs, strikes 0.6-1.6 x forward, t from 1 h to the last expiry)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
