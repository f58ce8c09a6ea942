"""Backtest throughput on the bundled sample, and where the time goes.

    python bench/bench_backtest.py [--config config/backtest-deribit.toml] [--repeat 3]

Stages, each timed on the whole recording (best of `--repeat`):
  read     lines and timestamps out of the .zst file
  decode   read + the venue decoder (events built, books maintained)
  kernel   the full backtest with 0, 1 and 2 strategies (`gamma_btc`, then both), and with
           `--copies N` more copies of the strategies for the 8-strategy figure
Prints events/s per stage and the cost per event each stage adds.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import trio

from tradingd.config import load_config
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.store import RecordingReader
from tradingd.engine.venue.plugins import load_venue

ROOT = Path(__file__).resolve().parent.parent


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "backtest-deribit.toml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--copies", type=int, default=4, help="copies of both strategies for the many-strategy run"
    )
    args = ap.parse_args()
    configure_logging("error", "json")
    loaded = load_config(args.config)
    bt = loaded.config.backtest
    assert bt is not None
    spec, path = bt.data[0], loaded.data_paths[0]
    plugin = load_venue(spec.venue)
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        load_simulator(spec.venue).generate_sample(path, spec.generate or {})

    def read() -> int:
        return sum(1 for _ in RecordingReader(path))

    def decode() -> int:
        decoder = plugin.decoder(InstrumentRegistry())
        n = 0
        for ts, frame in RecordingReader(path):
            n += len(decoder.decode(frame, ts or 0))
        return n

    def kernel(strategies: list[Any]) -> Any:
        k = BacktestKernel(
            {spec.venue: plugin}, [DataSource(spec.venue, path)], strategies, BacktestSettings()
        )
        return trio.run(k.run)

    t_read, frames = best(read, args.repeat)
    t_decode, events = best(decode, args.repeat)
    rows = [("read", t_read, frames), ("read + decode", t_decode, events)]
    all_strats = loaded.build_strategies()

    def copies() -> list[Any]:
        """`args.copies + 1` copies of every strategy, each under a name of its own."""
        out = []
        for i in range(args.copies + 1):
            for x in all_strats:
                s = copy.deepcopy(x)
                s.name = f"{s.name}_{i}"
                out.append(s)
        return out

    for label, strats in (
        ("kernel, 0 strategies", list),
        ("kernel, 1 strategy", lambda: loaded.build_strategies()[:1]),
        ("kernel, 2 strategies", loaded.build_strategies),
        (f"kernel, {2 * (args.copies + 1)} strategies", copies),
    ):
        t, result = best(lambda strats=strats: kernel(strats()), args.repeat)
        rows.append((label, t, result.events))
    print(f"{frames:,} frames, {events:,} events ({path.name})")
    print(f"{'stage':<24}{'seconds':>9}{'events/s':>12}{'us/event':>10}")
    for label, t, n in rows:
        print(f"{label:<24}{t:>9.2f}{n / t:>12,.0f}{t / n * 1e6:>10.2f}")


if __name__ == "__main__":
    main()
