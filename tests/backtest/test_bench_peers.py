"""bench/bench_nautilus.py's tradingd side does the work its docstring claims (the peers,
NautilusTrader and hftbacktest, are not needed: CI runs without them), and its measuring code
runs the sides interleaved and reports the median.

The expected counts come from the rows' parameters, and row d's fills from the generator's own
book (the best bid and ask after each frame), never from tradingd's engine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.samples import DERIBIT_SAMPLE, NO_DERIBIT_SAMPLE
from tradingd.engine.logs.setup import configure_logging

BENCH = Path(__file__).resolve().parent.parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bench_nautilus as bn  # noqa: E402  (bench/ is not a package: its path first)
from _common import interleaved, median_of  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet() -> None:
    configure_logging("error", "json")


@pytest.mark.parametrize("combo", ["parsed", "prebuilt"])
def test_l2_row_fills_the_orders_the_book_data_implies(tmp_path: Path, combo: str) -> None:
    tops: list[tuple[int, int]] = []
    frames = bn.l2_frames(5_000, seed=5, tops=tops)
    path = tmp_path / "l2.rec"
    bn.write_frames(frames, path)
    row = bn.make_rows(every_l2=50)["d"]
    got = bn.run_tradingd(row, combo, path, None, [])
    expected = bn.expected_l2_work(tops, 50)
    # The row must exercise both outcomes: orders that fill and orders that are cancelled.
    assert expected["fills"] > 10 and expected["cancels"] > 0
    assert {k: got[k] for k in expected} == expected
    # The engine's own account agrees: what was sent, filled and cancelled at its venue.
    engine = got["engine"]
    assert {k: engine[k] for k in ("orders", "fills", "cancels")} == {
        k: expected[k] for k in ("orders", "fills", "cancels")
    }
    assert engine["resting"] == expected["orders"] - expected["fills"] - expected["cancels"] <= 1
    assert got["cpu_s"] > 0


@pytest.mark.parametrize(("key", "strategies", "every"), [("a", 1, 100), ("b", 4, 100), ("c", 1, 10)])
def test_quote_rows_place_and_cancel_at_their_cadence_and_never_fill(
    tmp_path: Path, key: str, strategies: int, every: int
) -> None:
    n = 2_000
    path = tmp_path / "quotes.rec"
    bn.write_frames(bn.quote_frames(n), path)
    row = bn.make_rows()[key]
    assert (row.strategies, row.every) == (strategies, every)
    for combo in ("parsed", "prebuilt"):
        got = bn.run_tradingd(row, combo, path, None, [])
        orders = strategies * (n // every)
        assert got["events"] == strategies * n, combo
        assert got["orders"] == orders, combo
        assert got["cancels"] == orders - strategies, combo  # all but each strategy's last one
        assert got["fills"] == 0 and got["refused"] == 0, combo
        engine = got["engine"]  # the engine's account: each strategy's last order still rests
        assert engine == {"orders": orders, "fills": 0, "cancels": orders - strategies, "resting": strategies}


def test_mixed_sample_row_counts_the_same_from_frames_and_from_prebuilt_events() -> None:
    sample = DERIBIT_SAMPLE
    if not sample.exists():
        pytest.skip(NO_DERIBIT_SAMPLE)
    instruments = bn.sample_instruments(sample, 3_000)
    assert "BTC-PERPETUAL" in instruments and len(instruments) > 5
    row = bn.make_rows()["e"]
    parsed = bn.run_tradingd(row, "parsed", sample, 3_000, instruments)
    prebuilt = bn.run_tradingd(row, "prebuilt", sample, 3_000, instruments)
    keys = ("events", "orders", "cancels", "fills")
    assert {k: parsed[k] for k in keys} == {k: prebuilt[k] for k in keys}
    assert parsed["events"] > 3_000 and parsed["orders"] == parsed["events"] // 100 and parsed["fills"] == 0


def test_runs_are_interleaved_and_the_median_is_the_figure() -> None:
    assert [job for _, job in interleaved(["A", "B", "C"], 3)] == ["A", "B", "C"] * 3
    assert [rep for rep, _ in interleaved(["A", "B"], 2)] == [0, 0, 1, 1]
    assert median_of([5.0, 1.0, 3.0]) == 3.0
    assert median_of([4.0, 1.0, 3.0, 2.0]) == 2.5
    work = {"events": 1000, "orders": 10, "cancels": 9, "fills": 0, "setup_s": 0.1, "maxrss_kb": 2048}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("tradingd", "parsed"): [{**work, "cpu_s": s} for s in (3.0, 1.0, 2.0)],
        ("nautilus", "prebuilt"): [{**work, "cpu_s": s} for s in (4.0, 8.0, 5.0)],
    }
    figures = bn.summarize(runs)
    assert figures["tradingd parsed"]["cpu_s"] == 2.0
    assert figures["tradingd parsed"]["events_per_s"] == 500.0
    assert figures["nautilus prebuilt"]["cpu_s"] == 5.0
    assert bn.ratios(figures)["tradingd parsed / peer prebuilt (headline)"] == 2.5
    assert bn.check_same_work(bn.make_rows()["a"], figures) == []


def test_a_side_that_did_other_work_fails_the_run() -> None:
    base = {
        "events": 1000,
        "orders": 10,
        "cancels": 9,
        "fills": 3,
        "setup_s": 0.0,
        "maxrss_kb": 1,
        "cpu_s": 1.0,
    }
    figures = bn.summarize({("tradingd", "parsed"): [base], ("nautilus", "prebuilt"): [{**base, "fills": 4}]})
    problems = bn.check_same_work(bn.make_rows()["d"], figures)
    assert len(problems) == 1 and "nautilus prebuilt" in problems[0] and "fills" in problems[0]
    with pytest.raises(SystemExit, match="differs between repetitions"):
        bn.summarize({("tradingd", "parsed"): [base, {**base, "orders": 11}]})
