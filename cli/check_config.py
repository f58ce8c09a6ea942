"""`tradingd check-config FILE`: validate a config (its keys, values, venues, strategies and
their params, data files) without running anything; exit 0 with a one-line summary, or 2 with
one line naming the bad key."""

from __future__ import annotations

import argparse

from tradingd.config import load_config
from tradingd.engine.model.errors import DataError

__all__ = ["cmd_check_config"]


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = load_config(args.path)
    cfg = loaded.config
    data = ""
    if cfg.backtest is not None:
        missing = [
            loaded.data_file_missing(i)
            for i, (d, p) in enumerate(zip(cfg.backtest.data, loaded.data_paths, strict=True))
            if not p.exists() and d.generate is None
        ]
        if missing:
            raise DataError(f"{args.path}: {'; '.join(missing)}")
        n = len(loaded.data_paths)
        data = f", {n} data file{'' if n == 1 else 's'}"
    strategies = ", ".join(f"{n} ({c.__name__})" for n, c in loaded.strategy_classes.items())
    print(f"{args.path}: OK: mode {cfg.mode}, strategies: {strategies}{data}")
    return 0
