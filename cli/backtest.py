"""`tradingd backtest --config FILE`: replay the configured recordings (or other data files)
through the configured strategies on simulated venues, print the summary, and with `--report`
write the JSON report, its HTML page and its PNG charts. A missing data file with a `generate`
table is synthesized first (the bundled sample: deterministic, offline).

`--report` names the JSON report (`runs/today.json`: `today.html`, `today.png` and
`today-<strategy>.png` beside it) or a run directory (`runs/today`: `report.json`,
`report.html`, ... in it, as `tradingd report RUN_DIR` reads it). It is checked before the
replay (a directory that cannot be made or written is one line, exit 2, not a failure after
the whole run), and a path one of the other outputs would overwrite (`report.html`) is refused.

`--start` / `--end` (over the config's `[backtest] start` / `end`) set the market-time window the
strategies trade in: ISO 8601 times, UTC when they name no zone. The data before the start is
replayed into the books and marks only (a strategy started at 06:00 sees the book as it was);
the replay stops at the end; the summary, the statistics and the report's `start`/`end` are the
window's. A bad time, or a start not before the end, is one line, exit 2; a window the data has
no frame in is a warning of the summary."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio
from rich.progress import Progress

from tradingd.config import LoadedConfig, load_config, utc_ns
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import print_summary, write_report
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.reports.html import release_memory
from tradingd.engine.sim.plugins import load_simulator
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.store.recording import format_time
from tradingd.engine.venue.catalog import MarketCatalog
from tradingd.engine.venue.plugins import load_catalog_class, load_venue
from tradingd.engine.venue.spi import VenuePlugin

from . import render
from .exits import UsageError
from .output_path import unwritable
from .progress import drawing_status, new_bar, progress, wanted
from .recorded import recorded_catalogs, with_recorded
from .settings import catalog_settings, risk_limits, surface_settings

__all__ = ["build_kernel", "cmd_backtest", "ensure_data"]


def ensure_data(loaded: LoadedConfig, err: Callable[[str], None], show_progress: bool = False) -> None:
    """Synthesize missing data files that have a `generate` table (the bundled sample), with a
    progress bar in market time when `show_progress` (stderr is a terminal: `progress.wanted`)."""
    bt = loaded.config.backtest
    assert bt is not None
    for i, (spec, path) in enumerate(zip(bt.data, loaded.data_paths, strict=True)):
        if path.exists():
            continue
        if spec.generate is None or spec.format != "recording":
            raise DataError(f"{loaded.data_file_missing(i)}; add a `generate` table to synthesize it")
        why = unwritable(path)
        if why is not None:
            raise DataError(f"{why} (the sample of {loaded.path})")
        # Where it goes first, short (the first thing a new user reads); then why, on its own line,
        # said as the reason it is (a newcomer took the bare "... does not exist at ..." for an error).
        err(f"generating {path} (first run only; deterministic, offline)...")
        err(f"  because {loaded.data_file_missing(i)}")
        t0 = time.perf_counter()
        try:
            with progress(f"generating {path.name}", enabled=show_progress) as bar:
                # Only with a bar: a simulator of another package may not take `progress`.
                extra = {"progress": bar} if show_progress else {}
                frames = load_simulator(spec.venue).generate_sample(path, spec.generate, **extra)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), file=str(loaded.path), path="backtest.data.generate") from None
        except OSError as exc:  # the disk filled up, the folder went away while writing
            raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
        err(f"  {frames:,} frames in {time.perf_counter() - t0:.1f} s")


# Suffixes of the files written beside the JSON: a --report naming one of them would have the
# JSON overwritten by the page or a chart (and `tradingd report` then has nothing to read).
_OTHER_OUTPUTS = (".html", ".htm", ".png")


def _report_path(arg: str) -> Path:
    """The JSON report `--report` names, its directory made and written to once (a probe file,
    removed): a path that will not do is one line naming it, before any replay."""
    given = Path(arg).expanduser()
    if arg.endswith(("/", os.sep)):  # `runs/today/`: a directory, whatever its name
        path = given / "report.json"
    elif given.suffix.lower() == ".json":
        path = given
    elif given.suffix.lower() in _OTHER_OUTPUTS:
        raise UsageError(
            f"--report {arg}: name the JSON report ({given.with_suffix('.json')}) or a run directory;"
            f" {given.with_suffix('.html').name} and the PNG charts are written beside the JSON"
        )
    elif given.is_dir() or not given.suffix:
        path = given / "report.json"
    else:
        raise UsageError(
            f"--report {arg}: give a file ending in .json, or a run directory (one that exists, a name"
            " without a dot, or a path ending in /)"
        )
    # Probed as the recording writer's output is (`output_path.unwritable`): the folder made,
    # a file created and removed in it.
    why = unwritable(path)
    if why is not None:
        raise UsageError(f"--report {arg}: {why}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"--report {arg}: {path} is not writable")
    return path


def _cached_catalogs(loaded: LoadedConfig, venues: set[str]) -> dict[str, MarketCatalog]:
    """Catalogs for a backtest: as cached (never refreshed: a backtest does not depend on
    today's venue data), for the venues that have one and a cache on disk."""
    out: dict[str, MarketCatalog] = {}
    for venue in sorted(venues):
        cls = load_catalog_class(venue)
        if cls is None:
            continue
        path = catalog_settings(loaded.config.catalog, loaded.path.parent, venue).cache
        catalog = cls(path)
        if catalog.cache_path.exists():
            out[venue] = cls.from_cache(path)
    return out


def _catalogs(
    loaded: LoadedConfig, sources: list[DataSource], plugins: dict[str, VenuePlugin]
) -> dict[str, MarketCatalog]:
    """Each venue's catalog for a backtest: the markets its recordings define (cli/recorded.py),
    over the cache on disk where there is one (the recorded definitions answer first)."""
    recorded = recorded_catalogs(((s.venue, s.path) for s in sources if s.format == "recording"), plugins)
    return with_recorded(recorded, _cached_catalogs(loaded, {s.venue for s in sources}))


def build_kernel(
    loaded: LoadedConfig,
    *,
    event_cache: EventCache | None,
    progress: Callable[[int, int], None] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> BacktestKernel:
    """The backtest a loaded config describes (its data files present: `ensure_data`), ready to
    `trio.run(kernel.run)`: the command's, and each sweep trial's. `start_ns`/`end_ns`: the
    market-time window its strategies trade in (None: the data's first / last frame), given by
    the caller: the config's `[backtest] start` / `end` (`loaded.config.backtest.start`, ns) are
    not read here, so that a caller's window (`--start`, a trial's) replaces them whole."""
    cfg = loaded.config
    bt = cfg.backtest
    if bt is None:
        raise ConfigError("no [backtest] table", file=str(loaded.path), path="backtest")
    sources = [DataSource(d.venue, p, d.format) for d, p in zip(bt.data, loaded.data_paths, strict=True)]
    plugins = {s.venue: load_venue(s.venue) for s in sources}
    settings = BacktestSettings(
        latency_ms=bt.latency_ms,
        response_latency_ms=bt.response_latency_ms,
        equity_interval_s=bt.equity_interval_s,
        queue_ahead=bt.queue_ahead,
        mailbox_capacity=bt.mailbox_capacity,
        start_ns=start_ns,
        end_ns=end_ns,
    )
    enabled = [s for s in cfg.strategies if s.enabled]
    return BacktestKernel(
        plugins,
        sources,
        loaded.build_strategies(),
        settings,
        fee_overrides={s.venue: loaded.settings_of(s.venue).fees for s in sources},
        engine_limits=risk_limits(cfg.risk),
        strategy_limits={s.name: risk_limits(s.risk) for s in enabled},
        progress=progress,
        catalogs=_catalogs(loaded, sources, plugins),
        on_failure={s.name: s.on_failure for s in enabled},
        event_cache=event_cache,
        surface_settings=surface_settings(cfg.surface),
    )


def _window(loaded: LoadedConfig, args: argparse.Namespace) -> tuple[int | None, int | None]:
    """The window of this run, in ns: `--start` / `--end` over the config's `[backtest]` keys,
    checked (a bad time, or a start not before the end, is one line naming where it came from)."""
    bt = loaded.config.backtest
    assert bt is not None
    bounds: list[tuple[int | None, str]] = []
    for name, from_file in (("start", bt.start), ("end", bt.end)):
        text = getattr(args, name, None)
        if text is None:
            bounds.append((from_file, f"[backtest] {name} of {loaded.path}"))
            continue
        try:
            bounds.append((utc_ns(text), f"--{name}"))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--{name}: {exc}") from None
    (start, start_from), (end, end_from) = bounds
    if start is not None and end is not None and start >= end:
        raise UsageError(
            f"the window's start ({format_time(start)}, {start_from}) is not before its end"
            f" ({format_time(end)}, {end_from})"
        )
    return start, end


def _data_line(kernel: BacktestKernel) -> str:
    """Where the events came from, within the summary's 80 columns (the entry's path is in the
    log's `evcache.read` / `evcache.written` line)."""
    if kernel.data_path == "cache":
        return "events read from the decoded-event cache"
    if kernel.cache_entry is not None:
        return "events decoded from the frames, decoded-event cache written"
    if kernel.event_cache is not None and kernel.event_cache.status == "next":  # evcache.WRITE_ON
        return "events decoded from the frames (the next run writes the event cache)"
    if kernel.event_cache is not None:
        return "events decoded from the frames (cache not written: see the log)"
    return "events decoded from the frames (--no-cache)"


def _exec_render(report: Path, since: float, show: bool, *, traceback: bool) -> None:
    """Become the process drawing `report` (`render.replace_process`; returns if exec failed)."""
    args = [str(report), "--since", repr(since)]
    args += ["--status"] if show else []
    args += ["--traceback"] if traceback else []
    render.replace_process(args)


def cmd_backtest(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    cfg = loaded.config
    configure_logging(
        args.log_level or cfg.logging.level,
        args.log_format or cfg.logging.format,
        sys.stderr,
        path=loaded.log_file,  # `[logging] file`: JSON lines in the replay's market time
    )
    if cfg.backtest is None:
        raise ConfigError("no [backtest] table", file=str(loaded.path), path="backtest")

    def err(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = None if args.report is None else _report_path(args.report)
    start_ns, end_ns = _window(loaded, args)
    ensure_data(loaded, err, show_progress=wanted(args.no_progress))
    progress_cm: Progress | None = None
    progress_cb: Callable[[int, int], None] | None = None
    if wanted(args.no_progress):
        bar = progress_cm = new_bar()
        task = bar.add_task("backtest", total=1)

        def progress_cb(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1))

    kernel = build_kernel(
        loaded,
        event_cache=None if getattr(args, "no_cache", False) else EventCache(),
        progress=progress_cb,
        start_ns=start_ns,
        end_ns=end_ns,
    )
    if progress_cm is not None:
        with progress_cm:
            result = trio.run(kernel.run)
    else:
        result = trio.run(kernel.run)
    try:
        # Where the events came from, in one line above the summary (the report is the same
        # either way; the warnings stay the summary's last section). On stdout with the
        # summary: stderr may be the JSON log (`--log-format json`).
        print(f"data: {_data_line(kernel)}", file=sys.stdout)
        print_summary(result, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): the report is still written, and Python's own flush
        # at exit must not fail on the closed pipe (the docs' recipe: stdout to devnull).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if report is not None:
        # The JSON report here; its HTML page and PNG charts in a process that does not hold the
        # replay (issue 17: peak RSS with --report): the kernel and the result are let go, the
        # JSON written, and this process replaced by `cli/render.py` (the same pid, stderr and
        # exit status), which loads the renderer and matplotlib and nothing of the engine's
        # machinery. Called in-process (`main(argv)`: tests, a program embedding tradingd) or
        # where exec is not a real replacement (Windows), the charts are drawn here, after the
        # replay's memory is given back.
        del kernel, progress_cm, progress_cb
        gc.collect()
        show = wanted(args.no_progress)
        since = time.monotonic()
        with drawing_status(show) as step:
            try:
                step(report.name)
                write_report(report, result)
            except OSError as exc:
                raise DataError(
                    f"cannot write the report in {report.parent}: {exc.strerror or exc}"
                ) from None
        del result
        if getattr(args, "own_process", False) and os.name == "posix":
            _exec_render(report, since, show, traceback=bool(getattr(args, "traceback", False)))
        release_memory()
        render.draw(report, since=since, show=show)
    return 0
