"""The tests that read `data/deribit-sample.rec.zst` skip on a fresh clone, which has none (it is
generated, not committed). Their reason said only "not in this checkout"; it now names the command
that makes the sample, and this checks that command does: its config's data is that file, and
generated when missing."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.samples import DERIBIT_SAMPLE, MAKES_DERIBIT_SAMPLE, NO_DERIBIT_SAMPLE
from tradingd.config import load_config

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_command_a_skip_names_makes_the_sample() -> None:
    config = re.fullmatch(r"tradingd backtest --config (\S+)", MAKES_DERIBIT_SAMPLE)
    assert config is not None and f"`{MAKES_DERIBIT_SAMPLE}`" in NO_DERIBIT_SAMPLE
    loaded = load_config(ROOT / config[1])
    assert loaded.config.backtest is not None
    (spec,) = loaded.config.backtest.data
    (path,) = loaded.data_paths
    assert path == DERIBIT_SAMPLE.resolve()  # the file the tests look for
    assert spec.generate is not None  # made on the first run, when it is not there


def test_every_test_skipping_without_the_sample_says_how_to_make_it() -> None:
    own_words = [
        f"{test.relative_to(ROOT)}: {line.strip()}"
        for test in (ROOT / "tests").rglob("*.py")
        if test != Path(__file__)
        for line in test.read_text().splitlines()
        if "skip" in line and "deribit-sample.rec.zst" in line
    ]
    assert own_words == []  # each says NO_DERIBIT_SAMPLE
