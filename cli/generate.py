"""`tradingd generate --venue V --out FILE [--hours H] [--seed S] [--start T] [--strikes N]
[--crypto deribit] [--mispriced P] [--no-progress]`:
write a synthetic recording of a venue's market (deterministic for a seed, offline), in the
recording format a backtest reads. The output path is checked before generating (an hour of
market takes seconds); a terminal shows a progress bar in market time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tradingd.engine.model.errors import DataError
from tradingd.engine.sim.plugins import load_simulator

from .exits import UsageError
from .output_path import unwritable
from .progress import progress, wanted

__all__ = ["cmd_generate"]


def cmd_generate(args: argparse.Namespace) -> int:
    plugin = load_simulator(args.venue)
    options: dict[str, Any] = {}
    if args.hours is not None:
        options["hours"] = args.hours
    if args.seed is not None:
        options["seed"] = args.seed
    if args.start is not None:
        options["start"] = args.start
    if args.strikes is not None:
        options["strikes"] = args.strikes
    if args.crypto is not None:
        options["crypto"] = args.crypto
    if args.mispriced is not None:
        options["mispriced"] = args.mispriced
    out = Path(args.out)
    why = unwritable(out)
    if why is not None:
        raise UsageError(why)
    t0 = time.perf_counter()
    show = wanted(args.no_progress)
    try:
        with progress(f"generating {out.name}", enabled=show) as bar:
            # Only with a bar: a simulator of another package may not take `progress`.
            extra = {"progress": bar} if show else {}
            frames = plugin.generate_sample(out, options, **extra)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # the disk filled up, the folder went away while writing
        raise DataError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {frames:,} frames to {args.out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
