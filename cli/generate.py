"""`tradingd generate --venue V --out FILE [--hours H] [--seed S] [--start T]`: write a synthetic
recording of a venue's market (deterministic for a seed, offline), in the recording format a
backtest reads."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tradingd.engine.sim.plugins import load_simulator

from .exits import UsageError

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
    t0 = time.perf_counter()
    try:
        frames = plugin.generate_sample(Path(args.out), options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {frames:,} frames to {args.out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
