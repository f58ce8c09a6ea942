"""The 4-strike Deribit sample, `data/deribit-sample.rec.zst`: generated, not committed (the first
run of `config/backtest-deribit.toml` makes it), so a fresh clone has none. The tests that read it
skip without it, with `NO_DERIBIT_SAMPLE` as their reason: it names the command that makes it
(tests/house/test_sample_skips.py checks the command does)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["DERIBIT_SAMPLE", "MAKES_DERIBIT_SAMPLE", "NO_DERIBIT_SAMPLE"]

ROOT: Final = Path(__file__).resolve().parent.parent.parent
DERIBIT_SAMPLE: Final = ROOT / "data" / "deribit-sample.rec.zst"
MAKES_DERIBIT_SAMPLE: Final = "tradingd backtest --config config/backtest-deribit.toml"
NO_DERIBIT_SAMPLE: Final = (
    "data/deribit-sample.rec.zst is not here: it is generated, not committed;"
    f" `{MAKES_DERIBIT_SAMPLE}` makes it on its first run"
)
