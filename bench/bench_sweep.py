"""Sweep throughput: trials per minute of the bundled example, on local processes and on Ray.

    python bench/bench_sweep.py [--config config/backtest-deribit.toml] [--runs 3] [--trials 4,8,16]
                                [--minutes 30,60,120] [--no-ray] [--json FILE] [--quick]

Each trial is a backtest of the config (both example strategies) with a few strategy
parameters changed: a fixed grid built here (momentum_eth's threshold, then its lookback_s,
then gamma_btc's delta_band, then its min_hedge_interval_s), not the example sweep file's,
so the figures do not move when that file does. Trials run through the sweep's own path
(`runner.run_sweep`, the trial cache in a new folder each run so nothing is skipped, the data
decoded once beforehand into an event cache every trial reads, as `tradingd sweep` does).

  throughput   `--throughput-trials` trials (8) on the config's data with 1 and 2 local worker
               processes (`ProcessExecutor`) and as tasks on a Ray instance of this machine
               (`RayExecutor`, its CPUs; started once, its start-up timed apart). Each kind of
               executor runs a 2-trial sweep first, untimed: its worker processes start then
               (a sweep pays that once), the figures are the steady state
  trials       how the cost grows with the number of trials (`--trials`), 2 local workers
  data         how it grows with the data (`--minutes` of generated Deribit data, the config's
               `generate` table's seed: the 120-minute file is the config's own sample),
               `--data-trials` trials (4), 2 local workers

Every figure: the wall time of the whole sweep (trials per minute: what a user waits for; on a
shared machine it is noise: read it with the CPU figure) and the CPU time each trial took in its
worker (`time.process_time` around the trial, summed over the sweep's trials): their ratio shows
what the executor and the machine's load add. The jobs are interleaved (A B C A B C ...) and
the median of `--runs` printed, with every raw figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import interleaved, median_of  # noqa: E402

from tradingd.engine.sweep.model import TrialContext, TrialResult, TrialSpec  # noqa: E402

# The grid's dimensions, in the order a larger grid takes them in: a grid of n trials (a power
# of two up to 64) is the first log2(n) halvings' product (4 thresholds first).
_DIMENSIONS: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    ("momentum_eth", "threshold", (0.02, 0.03, 0.04, 0.05)),
    ("momentum_eth", "lookback_s", (120, 300)),
    ("gamma_btc", "delta_band", (0.05, 0.1)),
    ("gamma_btc", "min_hedge_interval_s", (5, 30)),
)


def timed_trial(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """`run_trial`, with the CPU time it took in its worker kept in its statistics (`_bench`)."""
    from tradingd.cli.trial import run_trial

    t0 = time.process_time()
    result = run_trial(ctx, trial)
    cpu = time.process_time() - t0
    return attrs.evolve(result, stats={**result.stats, "_bench": {"cpu_s": cpu}})


def grid_params(n: int) -> dict[str, dict[str, Any]]:
    """The fixed grid of `n` trials (the sweep's `params`: strategy -> parameter -> space)."""
    from tradingd.engine.sweep.spec import ParamSpace

    out: dict[str, dict[str, Any]] = {}
    left = n
    for strategy, name, values in _DIMENSIONS:
        if left <= 1:
            break
        take = min(len(values), left)
        if left % take:
            raise ValueError(f"{n} trials: give a power of two up to 64")
        out.setdefault(strategy, {})[name] = ParamSpace("values", values[:take])
        left //= take
    if left != 1:
        raise ValueError(f"{n} trials: give a power of two up to 64")
    return out


@attrs.define
class _Data:
    """One data set, ready for trials: the base config's table and its trial context."""

    label: str
    minutes: float
    base: Path
    table: dict[str, Any]
    ctx: TrialContext
    key: Callable[..., str]


def _config_for(config: Path, minutes: float, data_dir: Path, folder: Path) -> Path:
    """The config itself when its sample is `minutes` long; else a copy beside `folder` reading
    a generated file of `minutes` (same venue and seed) from `data_dir`."""
    import tomllib

    table = tomllib.loads(config.read_text())
    [data] = table["backtest"]["data"]
    gen = data.get("generate")
    if gen is None:
        raise SystemExit(f"{config}: its data has no `generate` table; give --minutes the config's own")
    if abs(float(gen["hours"]) * 60 - minutes) < 1e-9:
        return config
    text = config.read_text()
    old_path = f'path = "{data["path"]}"'
    new_path = data_dir / f"bench-sweep-{data['venue']}-{minutes:g}m.rec.zst"
    old_gen = f"generate = {{ seed = {gen['seed']}, hours = {gen['hours']} }}"
    if old_path not in text or old_gen not in text:
        raise SystemExit(f"{config}: its [[backtest.data]] is not written as the bundled config's")
    text = text.replace(old_path, f"path = {json.dumps(str(new_path))}")
    text = text.replace(old_gen, f"generate = {{ seed = {gen['seed']}, hours = {minutes / 60!r} }}")
    out = folder / f"{config.stem}-{minutes:g}m.toml"
    out.write_text(text)
    return out


def _prepare(label: str, minutes: float, base: Path, events: Path) -> _Data:
    """Read the base, generate its data if missing, decode it once into the event cache."""
    import trio

    from tradingd.cli.backtest import build_kernel, ensure_data
    from tradingd.cli.trial import context_for, key_of, read_base
    from tradingd.engine.store.evcache import EventCache
    from tradingd.engine.sweep.spec import SweepSpec

    spec = SweepSpec(path=str(base), base=str(base), out="", params={})
    table, loaded = read_base(spec)
    ensure_data(loaded, lambda line: print(f"  {line}", flush=True))
    cache = EventCache(events)
    trio.run(build_kernel(loaded, event_cache=cache).run)  # decoded once, as `tradingd sweep` does
    ctx = context_for(spec, table, loaded, cache_dir=cache.directory)
    return _Data(label, minutes, base, table, ctx, key_of(ctx, cache=cache))


def _sweep(data: _Data, trials: int, executor: Any, out: Path) -> dict[str, Any]:
    """One sweep of `trials` grid trials on `executor` (closed after); its wall and CPU times."""
    from tradingd.engine.sweep.cache import TrialStore
    from tradingd.engine.sweep.runner import run_sweep
    from tradingd.engine.sweep.spec import SweepSpec

    spec = SweepSpec(path=str(data.base), base=str(data.base), out=str(out), params=grid_params(trials))

    def span() -> tuple[int, int]:
        raise AssertionError("no walk-forward in the benchmark")

    t0 = time.perf_counter()
    try:
        outcome = run_sweep(spec, data.ctx, executor, TrialStore(out), key_of=data.key, span=span)
    finally:
        executor.close(cancel=True)
    wall = time.perf_counter() - t0
    bad = [r.error for r in outcome.trials if r.status != "ok"]
    if bad or len(outcome.trials) != trials:
        raise RuntimeError(f"{len(bad)} of {len(outcome.trials)} trials failed: {bad[:3]}")
    cpu = sum(float(r.stats["_bench"]["cpu_s"]) for r in outcome.trials)
    return {"wall_s": wall, "cpu_s": cpu, "trials": trials}


def _table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [f"{x!s:>{w}}" for x, w in zip(row, widths, strict=True)]
        cells[0] = f"{row[0]!s:<{widths[0]}}"  # the label left-aligned, the figures right
        print("  ".join(cells))


def _summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    trials = runs[0]["trials"]
    wall = median_of(walls)
    return {
        "trials": trials,
        "wall_s": wall,
        "trials_per_min": trials / wall * 60,
        "cpu_s_per_trial": median_of(cpus) / trials,
        "raw_wall_s": [round(w, 2) for w in walls],
        "raw_cpu_s": [round(c, 2) for c in cpus],
    }


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--config", default=str(ROOT / "config" / "backtest-deribit.toml"), help="the base backtest"
    )
    ap.add_argument("--runs", type=int, default=3, help="repetitions of each job (the median is printed)")
    ap.add_argument("--throughput-trials", type=int, default=8)
    ap.add_argument("--trials", default="4,8,16", help="trial counts for the growth with trials")
    ap.add_argument("--minutes", default="30,60,120", help="data lengths for the growth with data")
    ap.add_argument("--data-trials", type=int, default=4, help="trials per data length")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="where the generated data files go")
    ap.add_argument("--no-ray", action="store_true", help="local processes only")
    ap.add_argument("--ray-cpus", type=int, default=None, help="the Ray instance's CPUs (default: all)")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON too")
    ap.add_argument("--quick", action="store_true", help="one run, 2 trials a job (a smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.throughput_trials, args.data_trials = 1, 2, 2
        args.trials = "2,4"
    import bench_sweep  # this file as a module: the trial function workers import by name

    from tradingd.engine.logs.setup import configure_logging
    from tradingd.engine.sweep.local import ProcessExecutor

    fn = bench_sweep.timed_trial
    configure_logging("error", "json")
    config = Path(args.config).resolve()
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        events = tmp / "events"
        print("preparing the data (generated once, decoded once per data set)...", flush=True)
        import tomllib

        own = float(tomllib.loads(config.read_text())["backtest"]["data"][0]["generate"]["hours"]) * 60
        full = _prepare(f"{own:g} min (the config's)", own, config, events)
        sets = {
            m: full
            if abs(m - own) < 1e-9
            else _prepare(f"{m:g} min", m, _config_for(config, m, data_dir, tmp), events)
            for m in _floats(args.minutes)
        }
        ray_owner = None
        if not args.no_ray:
            from tradingd.engine.sweep.ray import RayExecutor

            t0 = time.perf_counter()
            ray_owner = RayExecutor(fn, None, num_cpus=args.ray_cpus)
            out["ray_start_s"] = time.perf_counter() - t0
            out["ray_cpus"] = ray_owner.capacity
        # A job: (group, label, data, trials, make the executor).
        Job = tuple[str, str, _Data, int, Callable[[], Any]]
        jobs: list[Job] = [
            ("throughput", "local, 1 worker", full, args.throughput_trials, lambda: ProcessExecutor(fn, 1)),
            ("throughput", "local, 2 workers", full, args.throughput_trials, lambda: ProcessExecutor(fn, 2)),
        ]
        if ray_owner is not None:
            from tradingd.engine.sweep.ray import RayExecutor

            label = f"Ray, {ray_owner.capacity} CPUs (local instance)"
            jobs.append(("throughput", label, full, args.throughput_trials, lambda: RayExecutor(fn, None)))
        for n in _counts(args.trials):
            grid_params(n)  # a count the grid cannot make fails here, before any run
            jobs.append(("trials", f"{n} trials", full, n, lambda: ProcessExecutor(fn, 2)))
        for m, data in sets.items():
            jobs.append(("data", f"{m:g} min", data, args.data_trials, lambda: ProcessExecutor(fn, 2)))
        got: dict[tuple[str, str], list[dict[str, Any]]] = {}
        try:
            # Untimed, once per kind of executor: the local forkserver and Ray's worker processes
            # start (and import tradingd) on a sweep's first trials; the figures are the steady
            # state a sweep's later trials see (Ray's instance start is printed apart).
            warm = {job[1]: job for job in jobs if job[0] == "throughput"}
            for w, (_, _, data, _, make) in enumerate(warm.values()):
                _sweep(data, 2, make(), tmp / f"warm-{w}")
            for i, (rep, job) in enumerate(interleaved(jobs, args.runs)):
                group, label, data, trials, make = job
                figures = _sweep(data, trials, make(), tmp / f"out-{i}")
                got.setdefault((group, label), []).append(figures)
                print(
                    f"  run {rep + 1}/{args.runs} {group}: {label}: {trials} trials in "
                    f"{figures['wall_s']:.1f} s (CPU in the workers {figures['cpu_s']:.1f} s)",
                    flush=True,
                )
        finally:
            if ray_owner is not None:
                ray_owner.close(cancel=True)
    summary = {f"{g}: {label}": _summary(runs) for (g, label), runs in got.items()}
    out["figures"] = summary

    def rows(group: str) -> list[tuple[Any, ...]]:
        return [
            (
                key.split(": ", 1)[1],
                s["trials"],
                f"{s['wall_s']:.1f}",
                f"{s['trials_per_min']:.1f}",
                f"{s['cpu_s_per_trial']:.2f}",
                " ".join(map(str, s["raw_wall_s"])),
            )
            for key, s in summary.items()
            if key.startswith(group + ":")
        ]

    header = ("", "trials", "wall s", "trials/min", "CPU s/trial", "raw wall s")
    print(f"\nmedian of {args.runs} run(s), jobs interleaved; CPU: each trial's in its worker")
    if "ray_start_s" in out:
        print(
            f"Ray instance start ({out['ray_cpus']} CPUs): {out['ray_start_s']:.1f} s"
            " (once, not in the figures)"
        )
    _table(f"throughput ({full.label} of data)", header, rows("throughput"))
    _table(f"growth with trials (2 local workers, {full.label} of data)", header, rows("trials"))
    _table(f"growth with data (2 local workers, {args.data_trials} trials)", header, rows("data"))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
