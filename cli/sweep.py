"""`tradingd sweep --config SWEEP.toml`: run a parameter sweep (or a walk-forward test) of a
backtest config, each trial a backtest in a local worker process (or a Ray task with
`--cluster`), then print the table of trials (best first) and write `results.csv`,
`results.json` and `sweep.html` in the results folder.

The data is decoded once for every trial: before the trials, one backtest of the base config
writes the decoded-event cache entry (if it is not there yet), which every trial then reads
(`--no-cache`: each trial decodes its frames). Every finished trial is kept at once in
`OUT/trials/` (`engine.sweep.cache`): Ctrl-C stops the workers, writes the results of what
finished and exits 130; the same command again runs only the trials still missing.

The sweep's window: its `[window]` start and end, each where given, else the base config's
`[backtest] start` / `end` (as `tradingd backtest --start/--end` over the same keys), else the
data's own; a walk-forward lays its folds within it.

Exit: 0; 1 when every trial failed, or a finished trial could not be kept (the results folder
full or gone: the sweep stops there, as on Ctrl-C, writing what finished if it can); 2 a bad
sweep or base config, a results folder that cannot be written, or a `--cluster` without Ray or
that cannot be reached (said before any work); 130 interrupted."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tradingd.config import LoadedConfig, load_sweep
from tradingd.engine.backtest.span import data_span
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.model.words import plural
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.store.recording import format_time
from tradingd.engine.sweep import html, objective, results, walkforward
from tradingd.engine.sweep.cache import TrialStore, TrialStoreError
from tradingd.engine.sweep.local import ProcessExecutor
from tradingd.engine.sweep.model import Executor, SweepOutcome, TrialResult
from tradingd.engine.sweep.ray import RayExecutor
from tradingd.engine.sweep.runner import run_sweep, trial_count
from tradingd.engine.sweep.spec import SweepSpec
from tradingd.engine.venue.plugins import load_venue

from .backtest import build_kernel, ensure_data
from .exits import UsageError
from .output_path import unwritable
from .progress import wanted
from .trial import context_for, key_of, read_base, run_trial, sources_of, sweep_window

__all__ = ["cmd_sweep", "default_workers"]

EXIT_INTERRUPTED = 130


def default_workers() -> int:
    """This machine's CPUs this process may use."""
    count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if count is not None:
        return count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _warm(loaded: LoadedConfig, cache: EventCache) -> None:
    """Decode once for every trial: one backtest of the base config over the whole data writes
    the decoded-event cache entry, unless it is there already (a previous run, a backtest)."""
    sources = sources_of(loaded)
    plugins = {s.venue: load_venue(s.venue) for s in sources}
    try:
        if cache.path_of(cache.key(plugins, sources)).exists():
            return
    except Exception:  # the cache's own trouble: the replay below says it in the log
        pass
    _err("decoding the data once for every trial (the decoded-event cache)...")
    kernel = build_kernel(loaded, event_cache=cache)
    trio.run(kernel.run)
    if kernel.cache_entry is None and kernel.data_path != "cache":
        _err("  the decoded-event cache was not written (see the log): each trial decodes its frames")


def _span(loaded: LoadedConfig) -> Callable[[], tuple[int, int]]:
    """The data's first and last receive times (a walk-forward lays its windows on them): read
    once (the trial count and the runner both ask)."""

    @functools.cache
    def span() -> tuple[int, int]:
        sources = sources_of(loaded)
        found = data_span({s.venue: load_venue(s.venue) for s in sources}, sources)
        if found is None:
            raise DataError(f"the data of {loaded.path} holds no frame: nothing to lay windows on")
        return found

    return span


def local_workers(spec: SweepSpec, workers: int) -> int:
    """The worker processes a local sweep starts: `workers`, but no more than a TPE search runs
    at once (`[search] parallel`): a pool starts all its workers up front (engine.sweep.local),
    and those past `parallel` would only sit idle, forked again whenever a worker is lost."""
    if spec.search.method == "tpe":
        return max(1, min(workers, spec.search.parallel))
    return workers


def _executor(spec: SweepSpec, workers: int, workers_given: bool) -> Executor:
    """Local processes, or Ray tasks when a cluster is named ("local": a Ray instance of this
    machine's own, with `--workers` CPUs when given). Ray is imported only then: without it, one
    line names the extra."""
    if spec.cluster is None:
        return ProcessExecutor(run_trial, local_workers(spec, workers), max_attempts=spec.max_attempts)
    local = spec.cluster == "local"
    try:
        return RayExecutor(
            run_trial,
            None if local else spec.cluster,
            max_attempts=spec.max_attempts,
            num_cpus=workers if local and workers_given else None,
        )
    except DataError as exc:
        # No Ray, or a cluster that cannot be reached or joined: the setup is wrong and no trial
        # ran. Exit 2, as a bad config or a missing data file: 1 is "every trial failed".
        raise UsageError(str(exc)) from None


@attrs.define
class _Tally:
    """What the progress bar and the last lines say: trials done, failed, from the cache, the
    best objective so far."""

    spec: SweepSpec
    done: int = 0
    failed: int = 0
    cached: int = 0
    best: TrialResult | None = None
    results: list[TrialResult] = attrs.field(factory=list)  # every finished trial (kept ones)

    def add(self, result: TrialResult) -> None:
        self.results.append(result)
        self.done += 1
        self.failed += result.status == "failed"
        self.cached += result.cached
        if result.status != "ok" or not result.feasible or result.objective is None:
            return
        o = self.spec.objective
        if self.best is None or objective.rank_key(o, result) < objective.rank_key(o, self.best):
            self.best = result

    def best_text(self) -> str:
        if self.best is None or self.best.objective is None:
            return "-"
        return f"{self.best.objective:.6g}"


@contextmanager
def _bar(show: bool, total: int, tally: _Tally) -> Iterator[Callable[[TrialResult], None]]:
    """The progress callback: a bar on stderr (trials done/total, failed, best objective) when
    `show`; always the tally."""
    if not show:
        yield tally.add
        return
    o = tally.spec.objective
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn(f"best {o.statistic}: {{task.fields[best]}}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("trials", total=total, failed=0, best="-")

        def update(result: TrialResult) -> None:
            tally.add(result)
            bar.update(task, completed=tally.done, failed=tally.failed, best=tally.best_text())

        yield update


def _write(out: Path, outcome: SweepOutcome, spec: SweepSpec) -> None:
    """The table on stdout, `results.csv`/`results.json` and (with matplotlib) `sweep.html`."""
    Console().print(results.table(outcome, spec.objective))
    try:
        results.write(out, outcome, spec.objective)
        if importlib.util.find_spec("matplotlib") is None:
            _err(
                "sweep.html not drawn: the HTML report needs the 'report' extra:"
                " pip install 'tradingd[report]'"
            )
        elif outcome.trials:
            html.render(out, outcome, spec.objective, spec.params)
    except OSError as exc:
        raise DataError(f"cannot write the results in {out}: {exc.strerror or exc}") from None


def _check_out(spec: SweepSpec, given: bool) -> None:
    """The results folder can be written (its trial cache and results files), asked before any
    decoding or trial: one line naming it, not an internal error after the work."""
    out = Path(spec.out)
    where = "--out" if given else f"out (in {spec.path})"
    for path in (out / "results.json", out / "trials" / "0.json"):
        why = unwritable(path)
        if why is not None:
            raise UsageError(f"{where} {out}: {why}")


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_sweep(args.config)
    if args.out is not None:
        spec = attrs.evolve(spec, out=str(Path(args.out).expanduser().resolve()))
    if args.cluster is not None:
        spec = attrs.evolve(spec, cluster=args.cluster)
    workers = args.workers or spec.workers or default_workers()
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    show = wanted(args.no_progress)

    table, loaded = read_base(spec)
    # The base's `[backtest] start`/`end` are the sweep's window where its [window] names none.
    spec = attrs.evolve(spec, window=sweep_window(spec, loaded))
    # First (a missing Ray is one line before any decoding); local workers start at the first
    # trial, a Ray cluster is joined now.
    executor = _executor(spec, workers, bool(args.workers or spec.workers))
    out = Path(spec.out)
    tally = _Tally(spec)
    try:
        # After the executor (a missing Ray is said first, with nothing made on disk), before
        # the data is decoded or a trial runs.
        _check_out(spec, args.out is not None)
        outcome, store = _run(spec, args, show, table, loaded, workers, executor, tally)
    except TrialStoreError as exc:
        # The trials can no longer be kept (a full disk, the folder gone): stop as Ctrl-C does,
        # writing the results of what finished if the folder still takes them.
        executor.close(cancel=True)
        stopped = SweepOutcome(trials=tuple(sorted(tally.results, key=lambda r: r.number)), interrupted=True)
        with contextlib.suppress(DataError):
            _write(out, stopped, spec)
        raise DataError(f"{exc}; the sweep stopped after {plural(tally.done, 'trial')}") from None
    finally:
        executor.close(cancel=True)
    _write(out, outcome, spec)
    # What made trials do nothing: one line however many trials (each one's in results.json).
    warned = results.warnings_line(outcome)
    if warned is not None:
        _err(warned)
    ran = tally.done - tally.cached
    summary = (
        f"{plural(tally.done, 'trial')}: {ran:,} run, {tally.cached:,} from the trial cache,"
        f" {tally.failed:,} failed"
    )
    if outcome.interrupted:
        _err(f"interrupted: {summary}; they are kept in {store.directory} (the same command resumes)")
        print(f"results (so far) in {out}")
        return EXIT_INTERRUPTED
    _err(summary)
    print(f"results in {out}")
    return 1 if tally.done and tally.failed == tally.done else 0


def _run(
    spec: SweepSpec,
    args: argparse.Namespace,
    show: bool,
    table: dict[str, Any],
    loaded: LoadedConfig,
    workers: int,
    executor: Executor,
    tally: _Tally,
) -> tuple[SweepOutcome, TrialStore]:
    """The data made ready and decoded once, then the trials (`run_sweep`) with the bar."""
    ensure_data(loaded, _err, show_progress=show)
    cache = None if args.no_cache else EventCache()
    if cache is not None:
        _warm(loaded, cache)
    ctx = context_for(spec, table, loaded, cache_dir=None if cache is None else cache.directory)
    key = key_of(ctx, cache=cache)
    span = _span(loaded)
    _check_window(spec, span())
    try:
        total = trial_count(spec, len(_plan(spec, span)) if spec.walk_forward is not None else 0)
    except ValueError as exc:
        raise ConfigError(str(exc), file=spec.path, path="walk_forward") from None
    store = TrialStore(Path(spec.out))
    where = (
        f"on the Ray cluster {spec.cluster}"
        if spec.cluster
        else f"in {plural(workers, 'local process', 'local processes')}"
    )
    _err(f"sweep: {plural(total, 'trial')} {where}; results in {spec.out}")
    with _bar(show, total, tally) as progress:
        outcome = run_sweep(spec, ctx, executor, store, key_of=key, span=span, progress=progress, warn=_err)
    return outcome, store


def _check_window(spec: SweepSpec, span: tuple[int, int]) -> None:
    """A window that misses the data entirely is a mistake (a date typo, data not recorded
    yet), not a sweep of empty trials each scoring 0 with a `best:` recommended."""
    first, last = span
    start, end = spec.window.start_ns, spec.window.end_ns
    if (start is not None and start > last) or (end is not None and end < first):
        shown = f"{_ts(start, 'its start')} -> {_ts(end, 'its end')}"
        raise ConfigError(
            f"the sweep's window {shown} holds no data: the data runs from {format_time(first)}"
            f" to {format_time(last)}",
            file=spec.path,
            path="window",
        )


def _ts(ns: int | None, default: str) -> str:
    return default if ns is None else format_time(ns)


def _plan(spec: SweepSpec, span: Callable[[], tuple[int, int]]) -> tuple[Any, ...]:
    assert spec.walk_forward is not None
    return walkforward.plan(span(), spec.walk_forward, spec.window)
