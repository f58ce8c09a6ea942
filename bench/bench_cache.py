"""The decoded-event cache against the frame path, on the bundled sample.

    python bench/bench_cache.py [--config config/backtest-deribit.toml] [--runs 5] [--frames N]
                                [--only data,backtest]

Four comparisons, each run in fresh processes, interleaved (frames, cache, frames, cache, ...),
measured in CPU time of the work (user + system, `resource.getrusage`, every thread), medians
printed with every raw figure (wall time beside it), and each process's peak RSS:

  first run   the first backtest of a data set with the cache on as `tradingd backtest` has it
              (`first-cache`, each run into a new empty folder: with `evcache.WRITE_ON` 1, the
              default, it writes the entry; with 2 it only leaves a mark), against the same
              backtest from the frames without a cache (`first-frames`); no strategy, so the
              ratio is the cache's own cost: what a new user's first `tradingd backtest` pays
  writing     the replay that writes the entry (the first of a data set by default; here each
              run into a new folder with `write_on=1`) against the frames without a cache

  data path   frames -> events (the recording read, every frame decoded: events built, books
              kept) against cache -> events (the entry's key and checksum verified, its chunks
              read, events rebuilt, counters, registry and books brought along): what a replay
              pays before the kernel sees an event
  backtest    the whole backtest of the config's strategies (the bundled config: 2), from the
              frames (`event_cache=None`) and from the cache

The cache entry is written first (a replay without strategies), in a temporary folder removed at
the end. `--frames N` replays only the first N frames (a slice written beside the sample).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): `ru_maxrss` keeps the forking parent's across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, config: str, data: str, cache_dir: str) -> dict[str, Any]:
    import trio

    from tradingd.config import load_config
    from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
    from tradingd.engine.logs.setup import configure_logging
    from tradingd.engine.model import InstrumentRegistry
    from tradingd.engine.store import RecordingReader
    from tradingd.engine.store.evcache import EventCache
    from tradingd.engine.venue.plugins import load_venue

    configure_logging("error", "json")
    loaded = load_config(config)
    bt = loaded.config.backtest
    assert bt is not None
    venue = bt.data[0].venue
    plugin = load_venue(venue)
    sources = [DataSource(venue, Path(data))]
    out: dict[str, Any] = {"mode": mode}
    t0 = _cpu()
    w0 = time.perf_counter()
    if mode == "data-frames":
        decoder = plugin.decoder(InstrumentRegistry())
        events = frames = 0
        for ts, frame in RecordingReader(data, skip_bad=True):
            frames += 1  # noqa: SIM113 - as the kernel counts
            try:  # noqa: SIM105 - contextlib.suppress costs more per frame than try
                events += len(decoder.decode(frame, ts or 0))
            except ValueError:  # MalformedFrame: counted by the kernel, skipped here
                pass
    elif mode == "data-cache":
        cache = EventCache(Path(cache_dir))
        decoder = plugin.decoder(InstrumentRegistry())
        key = cache.key({venue: plugin}, sources)
        hit = cache.open(key, sources, {venue: decoder}, lambda *a, **k: None)
        assert hit is not None, "the cache entry is missing"
        apply = hit.decoders[venue].apply
        events = frames = 0
        for ts, _, rec in hit.stream(lambda *a: None):
            frames += 1  # noqa: SIM113 - as the kernel counts
            try:  # noqa: SIM105 - contextlib.suppress costs more per frame than try
                events += len(apply(rec, ts))
            except ValueError:
                pass
    elif mode in ("first-frames", "first-cache", "writing"):
        fresh = Path(tempfile.mkdtemp(prefix="bench-cache-first-", dir=cache_dir))
        maybe = None
        if mode == "first-cache":
            maybe = EventCache(fresh)  # as `tradingd backtest` makes it
        elif mode == "writing":
            maybe = EventCache(fresh, write_on=1)
        kernel = BacktestKernel({venue: plugin}, sources, [], event_cache=maybe)
        result = trio.run(kernel.run)
        events, frames = result.events, result.frames
        want = "frames, cache written" if maybe is not None and maybe.write_on == 1 else "frames"
        assert kernel.data_path == want, kernel.data_path
        if maybe is not None and maybe.write_on > 1:
            assert maybe.status == "next", maybe.status
        shutil.rmtree(fresh)
    else:
        maybe = EventCache(Path(cache_dir)) if mode == "backtest-cache" else None
        kernel = BacktestKernel(
            {venue: plugin},
            sources,
            loaded.build_strategies(),
            BacktestSettings(latency_ms=bt.latency_ms, equity_interval_s=bt.equity_interval_s),
            event_cache=maybe,
        )
        result = trio.run(kernel.run)
        events, frames = result.events, result.frames
        if maybe is not None:
            assert kernel.data_path == "cache", kernel.data_path
        out["net_pnl"] = {k: str(s.net_pnl) for k, s in result.strategies.items()}
    out["cpu_s"] = _cpu() - t0
    out["wall_s"] = time.perf_counter() - w0
    out["events"] = events
    out["frames"] = frames
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _spawn(mode: str, config: str, data: Path, cache_dir: Path) -> dict[str, Any]:
    r = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--config",
            config,
            "--data",
            str(data),
            "--cache-dir",
            str(cache_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{r.stderr}")
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _slice(src: Path, dst: Path, frames: int) -> Path:
    import zstandard

    from tradingd.engine.store import open_binary

    stream, _ = open_binary(src)
    with stream as lines, zstandard.open(dst, "wb") as out:
        for i, line in enumerate(lines):
            if i >= frames:
                break
            out.write(line)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "backtest-deribit.toml"))
    ap.add_argument("--runs", type=int, default=5, help="runs of each side (interleaved)")
    ap.add_argument("--frames", type=int, default=0, help="replay only the first N frames (0: all)")
    ap.add_argument("--skip-backtest", action="store_true", help="no whole-backtest comparison")
    ap.add_argument(
        "--only",
        default="first,writing,data,backtest",
        help="the comparisons to run, comma-separated (first, writing, data, backtest)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.config, args.data, args.cache_dir)))
        return

    import trio

    from tradingd.config import load_config
    from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
    from tradingd.engine.logs.setup import configure_logging
    from tradingd.engine.sim.plugins import load_simulator
    from tradingd.engine.store.evcache import EventCache
    from tradingd.engine.venue.plugins import load_venue

    configure_logging("error", "json")
    loaded = load_config(args.config)
    bt = loaded.config.backtest
    assert bt is not None
    spec, data = bt.data[0], loaded.data_paths[0]
    if not data.exists():
        print(f"generating {data} ...", file=sys.stderr)
        load_simulator(spec.venue).generate_sample(data, spec.generate or {})
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        if args.frames:
            data = _slice(data, work / "slice.rec.zst", args.frames)
        cache_dir = work / "cache"
        t0 = time.perf_counter()
        writer = BacktestKernel(
            {spec.venue: load_venue(spec.venue)},
            [DataSource(spec.venue, data)],
            [],
            event_cache=EventCache(cache_dir, write_on=1),
        )
        trio.run(writer.run)
        entry = writer.cache_entry
        assert entry is not None, "the cache entry was not written"
        print(
            f"cache entry written in {time.perf_counter() - t0:.1f} s (wall, first run: frames + writing):"
            f" {entry.stat().st_size / 1e6:.1f} MB for {data.stat().st_size / 1e6:.1f} MB of recording,"
            f" {writer.frames:,} frames"
        )
        only = {name.strip() for name in args.only.split(",")}
        pairs = [
            pair
            for name, pair in [
                ("first", ("first-frames", "first-cache")),
                ("writing", ("first-frames", "writing")),
                ("data", ("data-frames", "data-cache")),
                ("backtest", ("backtest-frames", "backtest-cache")),
            ]
            if name in only and not (name == "backtest" and args.skip_backtest)
        ]
        for a, b in pairs:
            runs: dict[str, list[dict[str, Any]]] = {a: [], b: []}
            for _ in range(args.runs):
                for mode in (a, b):
                    runs[mode].append(_spawn(mode, args.config, data, cache_dir))
            med = {m: statistics.median(r["cpu_s"] for r in rs) for m, rs in runs.items()}
            wall = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in runs.items()}
            for mode, rs in runs.items():
                events = rs[0]["events"]
                cpu = [round(r["cpu_s"], 3) for r in rs]
                rss = max(r["peak_rss_mb"] for r in rs)
                print(
                    f"{mode:16} median CPU {med[mode]:7.3f} s  {events / med[mode]:>10,.0f} events/s"
                    f"  (wall {wall[mode]:.3f} s)  peak RSS {rss:6.1f} MB  runs {cpu}"
                )
            if "net_pnl" in runs[a][0]:
                assert runs[a][0]["net_pnl"] == runs[b][0]["net_pnl"], "the two paths disagree"
            if b == "first-cache":
                print(
                    f"{'':16} a first run with the cache on costs {med[b] / med[a]:.2f}x a run without it"
                    f" (wall {wall[b] / wall[a]:.2f}x)"
                )
            elif b == "writing":
                print(
                    f"{'':16} writing the entry costs {med[b] / med[a]:.2f}x a run without the cache"
                    f" (wall {wall[b] / wall[a]:.2f}x)"
                )
            else:
                print(
                    f"{'':16} cache is {med[a] / med[b]:.2f}x faster ({a.split('-')[0]};"
                    f" wall {wall[a] / wall[b]:.2f}x)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
