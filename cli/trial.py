"""One sweep trial, where the worker is: the base backtest config with the trial's parameters
applied, replayed over the trial's window with the sweep's shared decoded-event cache
(`run_trial`); what every trial of a sweep shares (`context_for`), and the key a trial is cached
under (`key_of`).

A trial is deterministic: the same config, window, data and code give the same statistics on
any worker (the kernel's replay is; nothing here reads a clock or a random source), so its
result can be kept by key (`engine.sweep.cache.TrialStore`) and a rerun skips it."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import socket
import sys
import sysconfig
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import trio

from tradingd.config import LoadedConfig, load_config_data
from tradingd.engine.backtest.kernel import DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.store.evcache import DecoderChanged, EventCache, decoder_version, tree_digest
from tradingd.engine.store.recording import format_time
from tradingd.engine.sweep.model import Params, TrialContext, TrialResult, TrialSpec, Window, result_for
from tradingd.engine.sweep.spec import SweepSpec
from tradingd.engine.sweep.stats import summed_curve, total_stats
from tradingd.engine.venue.plugins import load_venue

from .backtest import build_kernel

__all__ = [
    "DataUnreadable",
    "apply_params",
    "code_version",
    "context_for",
    "key_of",
    "read_base",
    "run_trial",
    "sources_of",
    "sweep_window",
]


class DataUnreadable(DataError):
    """Raised by a trial whose data file this worker cannot read (not mounted on this host, not
    copied there, no permission): names the file and the host. Not the trial's own failure:
    the trial cache does not keep it (`cache.TrialStore`), so a rerun after the fix runs it."""


# -- the base config -------------------------------------------------------------------------
def read_base(spec: SweepSpec) -> tuple[dict[str, Any], LoadedConfig]:
    """The sweep's base backtest config, read once: its TOML table (what each trial changes)
    and that table loaded and checked as the file (`ConfigError` naming every problem). Every
    strategy the sweep's `[params.<name>]` names must be one of the base's."""
    path = Path(spec.base)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the base config {path} does not exist", file=spec.path, path="base") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the base config {path}: {exc.strerror}", file=spec.path) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None
    loaded = load_config_data(copy.deepcopy(table), path)
    if loaded.config.backtest is None:
        raise ConfigError("no [backtest] table: a sweep's base is a backtest config", file=str(path))
    names = [s.get("name") for s in table.get("strategies", []) if isinstance(s, dict)]
    for name in spec.params:
        if name not in names:
            raise ConfigError(
                f"[params.{name}]: no strategy {name!r} in the base config {path}"
                f" (its strategies: {', '.join(map(str, names)) or 'none'})",
                file=spec.path,
                path=f"params.{name}",
            )
    return table, loaded


def sweep_window(spec: SweepSpec, loaded: LoadedConfig) -> Window:
    """The sweep's window: its `[window]` start and end where given, else the base config's
    `[backtest] start` / `end` (bound by bound, as `tradingd backtest --start/--end` replace the
    same keys), else None (the data's own). A trial's kernel never reads the base's keys
    (`build_kernel`): its window is this, or a walk-forward's fold laid within it."""
    bt = loaded.config.backtest
    assert bt is not None
    start = spec.window.start_ns if spec.window.start_ns is not None else bt.start
    end = spec.window.end_ns if spec.window.end_ns is not None else bt.end
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            f"the sweep's window is empty: its start ({format_time(start)}) is not before its end"
            f" ({format_time(end)}) ([window] over the base's [backtest] start/end)",
            file=spec.path,
            path="window",
        )
    return Window(start, end)


def apply_params(table: Mapping[str, Any], params: Params) -> dict[str, Any]:
    """A deep copy of the base table with each `[[strategies]]`'s `params` entries replaced by
    the trial's (by strategy name; other entries as they were)."""
    out: dict[str, Any] = copy.deepcopy(dict(table))
    for strategy in out.get("strategies", []):
        changed = params.get(strategy.get("name"))
        if changed:
            strategy["params"] = {**strategy.get("params", {}), **changed}
    return out


# -- the code a trial runs ---------------------------------------------------------------------
_PACKAGE = Path(__file__).resolve().parent.parent  # the installed `tradingd` package
# What a backtest's result depends on besides the decoders (in `decoder_version`): the engine,
# the bundled strategies, the connectors' simulated venues and fees, the config's defaults, and
# how a trial is built and run (this module, `cli/backtest.py`'s kernel, `cli/settings.py`).
# Each room's code as the event cache's decoder version takes it (`evcache.tree_digest`): its
# Python, its C sources and headers (engine/backtest/_kernel.c, engine/_typecache.h...) and its
# built modules, so a changed `_kernel.c` or a rebuilt `.so` alone makes new trial keys too.
_CODE_ROOTS = ("engine", "strategies", "connectors", "config")
_CODE_FILES = ("cli/trial.py", "cli/backtest.py", "cli/settings.py")


def _digest_files(h: Any, files: Iterable[Path], root: Path) -> None:
    for p in sorted(files):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")


def _installed() -> set[Path]:
    """Python's and the installed packages' folders: never a user's folder of their own."""
    paths = sysconfig.get_paths()
    return {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}


def _user_code(loaded: LoadedConfig) -> list[Path]:
    """The source files of the user's strategy code the config names from outside tradingd (a
    `module:Class`): every `.py` of its top-level package (or its one file), every `.py` beside
    it in the folder the loader imported it from (a `helpers.py` it imports: `config._loader`),
    and every module imported so far from under that folder (a helper package). A user module
    whose source cannot be found (no file: built at run time) is a `ConfigError`: its trials
    could not be keyed by their code, and a kept result could be reused after an edit."""
    files: set[Path] = set()
    installed = _installed()
    for name, cls in loaded.strategy_classes.items():
        top = cls.__module__.partition(".")[0]
        if top == "tradingd":
            continue
        module = sys.modules.get(top)
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
        if origin is not None and origin not in ("built-in", "frozen") and Path(origin).is_file():
            f = Path(origin).resolve()
            package = f.parent if f.name == "__init__.py" else None
        else:  # a namespace package (a folder without `__init__.py`): its folders
            where = [Path(p).resolve() for p in getattr(module, "__path__", ())]
            if not where:
                raise ConfigError(
                    f"strategy {name!r}: cannot find the source of its module {top!r} (its trials"
                    " are keyed by their code): give a module of .py files",
                    file=str(loaded.path),
                )
            f, package = where[0], where[0]
            for more in where[1:]:
                files.update(p for p in more.rglob("*.py") if "__pycache__" not in p.parts)
        home = (package or f).parent
        if package is not None:
            files.update(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.add(f)
        if home in installed:  # an installed module: its own files only, not site-packages'
            continue
        files.update(home.glob("*.py"))
        for imported in list(sys.modules.values()):
            file = getattr(imported, "__file__", None)
            if not (isinstance(file, str) and file.endswith(".py")):
                continue
            p = Path(file).resolve()
            # Not a virtualenv's packages that happen to sit under the user's folder.
            if p.is_relative_to(home) and not any(p.is_relative_to(i) for i in installed):
                files.add(p)
    return sorted(p for p in files if p.is_file())


def code_version(loaded: LoadedConfig) -> str:
    """A hash of the code a trial's result depends on: each venue's `decoder_version` (the
    event cache's), tradingd's engine, strategies, connectors and config code (Python, C and
    built modules: `_CODE_ROOTS`), the trial's own modules, and the user's strategy modules the
    config names. Any edit makes new trial keys, so a rerun after a code change runs every
    trial again."""
    assert loaded.config.backtest is not None
    h = hashlib.sha256(b"tradingd-trial-code|")
    for venue in sorted({d.venue for d in loaded.config.backtest.data}):
        try:
            version = decoder_version(load_venue(venue))
        except DecoderChanged as exc:
            raise DataError(f"cannot key the sweep's trials: {exc}; run the command again") from None
        h.update(f"{venue}={version}|".encode())
    for room in _CODE_ROOTS:
        h.update(f"room|{room}|".encode())
        tree_digest(h, _PACKAGE / room)
    _digest_files(h, (_PACKAGE / f for f in _CODE_FILES), _PACKAGE)
    for user in _user_code(loaded):
        h.update(b"user|" + str(user).encode() + b"\0" + user.read_bytes() + b"\0")
    return h.hexdigest()


def context_for(
    spec: SweepSpec, table: Mapping[str, Any], loaded: LoadedConfig, *, cache_dir: Path | None
) -> TrialContext:
    """What every trial of the sweep shares (sent to each worker): the base table (`read_base`),
    its path, the shared event cache folder (None: `--no-cache`), the data files as absolute
    paths (checked readable on each worker before its trial), and the code version."""
    return TrialContext(
        base_path=str(Path(spec.base).resolve()),
        base_table=copy.deepcopy(dict(table)),
        cache_dir=None if cache_dir is None else str(Path(cache_dir).resolve()),
        data_files=tuple(str(p.resolve()) for p in loaded.data_paths),
        code_version=code_version(loaded),
    )


def sources_of(loaded: LoadedConfig) -> list[DataSource]:
    """The base config's data as the kernel's sources (the event cache's key, the data's span)."""
    bt = loaded.config.backtest
    assert bt is not None
    return [DataSource(d.venue, p, d.format) for d, p in zip(bt.data, loaded.data_paths, strict=True)]


def key_of(ctx: TrialContext, *, cache: EventCache | None = None) -> Callable[[Params, Window], str]:
    """The trial key function of a sweep: sha256 of the canonical JSON of the changed config
    table, the window, the data's content and the code version. The data's content is the event
    cache's key of the base's data sources (each file's BLAKE2b, memoized in `cache` by the
    file's stamps: give the sweep's own cache, which its warm-up backtest already hashed with,
    and no file is hashed twice)."""
    loaded = load_config_data(copy.deepcopy(dict(ctx.base_table)), ctx.base_path)
    sources = sources_of(loaded)
    plugins = {s.venue: load_venue(s.venue) for s in sources}
    cache = cache or EventCache(Path(ctx.cache_dir) if ctx.cache_dir else None)
    try:
        data = cache.key(plugins, sources)
    except DecoderChanged as exc:
        raise DataError(f"cannot key the sweep's trials: {exc}; run the command again") from None
    except OSError as exc:
        raise DataError(f"cannot read a data file of {ctx.base_path}: {exc}") from None

    def key(params: Params, window: Window) -> str:
        doc = {
            "config": apply_params(ctx.base_table, params),
            "window": [window.start_ns, window.end_ns],
            "data": data,
            "code": ctx.code_version,
        }
        # TOML's dates and times (the only non-JSON values a table holds) as their ISO text.
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    return key


# -- the trial -----------------------------------------------------------------------------------
def _check_readable(files: Iterable[str]) -> None:
    """Each data file can be read on this worker (one byte of a file, the listing of a folder),
    else `DataUnreadable` naming the file and this host: a cluster's workers must share the
    data (the same path on a shared filesystem)."""
    for name in files:
        try:
            if os.path.isdir(name):
                os.listdir(name)
            else:
                with open(name, "rb") as f:
                    f.read(1)
        except OSError as exc:
            raise DataUnreadable(
                f"data file {name} is not readable on worker {socket.gethostname()}:"
                f" {exc.strerror or exc} (every worker must see the data at the same path)"
            ) from None


_logging_set = False


def _quiet_logging() -> None:
    """A worker logs errors only, to its stderr (the sweep's terminal), through the project's
    logging (its redactor: never a secret). Not warnings: a strategy's warning repeats in every
    trial (the example's refused hedges: dozens per trial, thousands per sweep, over the progress
    bar), and what made a trial do nothing is in its result's `warnings`. Once per worker
    process; not the base config's `[logging] file` (many workers appending to one file)."""
    global _logging_set
    if not _logging_set:
        configure_logging("error", "json", sys.stderr)
        logging.getLogger().setLevel(logging.ERROR)
        _logging_set = True


# One event cache per folder per worker process: its memo of the data files' digests is kept
# from one trial to the next (each file is hashed once per worker, not once per trial).
_caches: dict[str, EventCache] = {}


def _event_cache(directory: str | None) -> EventCache | None:
    if directory is None:
        return None
    found = _caches.get(directory)
    if found is None:
        found = _caches[directory] = EventCache(Path(directory))
    return found


def run_trial(ctx: TrialContext, trial: TrialSpec) -> TrialResult:
    """Run one trial (in a worker) and return its result; raises on a failure (the executor
    records it as the trial's error). Statistics: each strategy's report statistics (no
    curves) and their `"total"`; equity: the strategies' curves summed; warnings: the report's."""
    _quiet_logging()
    t0 = time.perf_counter()
    _check_readable(ctx.data_files)
    loaded = load_config_data(apply_params(ctx.base_table, trial.params), ctx.base_path)
    kernel = build_kernel(
        loaded,
        event_cache=_event_cache(ctx.cache_dir),
        start_ns=trial.window.start_ns,
        end_ns=trial.window.end_ns,
    )
    result = trio.run(kernel.run)
    report = report_dict(result, include_curves=False)
    strategies: dict[str, dict[str, Any]] = report["strategies"]
    curve = summed_curve(s.equity_curve for s in result.strategies.values())
    stats: dict[str, Mapping[str, Any]] = dict(strategies)
    stats["total"] = total_stats(strategies, curve, result.equity_interval_s)
    return result_for(
        trial,
        "ok",
        stats=stats,
        equity=curve,
        # What made a strategy or a data file do nothing: the worker does not log it (it would
        # repeat in every trial over the progress bar), the result keeps it.
        warnings=tuple(str(w) for w in report.get("warnings", ())),
        duration_s=round(time.perf_counter() - t0, 3),
    )
