"""The README's example backtest (config/backtest.toml: GammaScalp, Momentum and CrossVenue) end to
end on an hour of the bundled samples' kind: CrossVenue trades, and each of its fills in the
report carries the gap it traded on. The witness of those gaps is the data generator's own model
(simulators/synth.py: the probability its Polymarket prices are drawn around, computed without
engine/surface): what CrossVenue's surface said (`p_model`) is close to it, and what it bought was
cheap by it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from tests.support.backtests import DERIBIT_GENERATE, POLYMARKET_GENERATE, crossvenue_samples
from tradingd.cli.main import main
from tradingd.cli.recorded import recorded_catalogs
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import PriceMarket
from tradingd.simulators.polymarket.crypto import BtcPath

ROOT = Path(__file__).resolve().parents[2]
START_NS = 1_795_478_400 * 10**9  # the samples' start, 2026-11-24T00:00:00Z
TAG = re.compile(
    r"gap=(?P<gap>[+-]\d\.\d{4}) p_model=(?P<p>\d\.\d{4}) bid=(?P<bid>\S+) ask=(?P<ask>\S+)"
    r" fee=(?P<fee>\d\.\d{4}) (?P<outcome>YES|NO)"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    folder = tmp_path_factory.mktemp("cv")
    deribit, polymarket = crossvenue_samples(folder, hours=1.0)
    text = (ROOT / "config" / "backtest.toml").read_text()
    for old, new in (
        ('path = "../data/deribit-sample-12.rec.zst"', f'path = "{deribit}"'),
        ('path = "../data/polymarket-btc-sample.rec.zst"', f'path = "{polymarket}"'),
        (DERIBIT_GENERATE, ""),
        (POLYMARKET_GENERATE, ""),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    config = folder / "bt.toml"
    config.write_text(text)
    out = folder / "run"
    try:
        assert main(["backtest", "--config", str(config), "--report", str(out), "--no-progress"]) == 0
    finally:
        structlog.reset_defaults()
    return orjson.loads((out / "report.json").read_bytes()), (out / "report.html").read_text(), polymarket


@pytest.mark.slow
def test_crossvenue_trades_beside_the_other_two_and_its_fills_carry_their_gap(
    run: tuple[dict[str, Any], str, Path],
) -> None:
    report, page, _ = run
    assert set(report["strategies"]) == {"gamma_btc", "momentum_eth", "cross_btc"}
    assert not [w for w in report["warnings"] if "cross_btc" in w], report["warnings"]
    cv = report["strategies"]["cross_btc"]
    assert cv["errors"] == 0 and cv["orders"] >= 3 and cv["fills"] >= 3
    rows = cv["series"]["fills"]
    assert len(rows) == cv["fills"]
    for _ts, instrument, side, price, size, fee_usd, liquidity, tag in rows:
        m = TAG.fullmatch(tag)
        assert m is not None, tag
        assert instrument.startswith("polymarket:") and liquidity == "taker"
        # Filled at the touch the tag names, and the fee asked before the order (ctx.fee) is the
        # one the simulated venue booked on the fill.
        touch = m["ask"] if side == "buy" else m["bid"]
        assert price == pytest.approx(float(touch))
        assert fee_usd / size == pytest.approx(float(m["fee"]), abs=6e-5)
        gap = float(m["gap"])
        assert gap == pytest.approx(float(m["p"]) - price, abs=2e-4)
        if side == "buy":
            assert gap > float(m["fee"]) + 0.02  # the config's margin
        else:
            assert gap < 0.005  # the config's exit_gap
    for name in ("gamma_btc", "momentum_eth"):
        s = report["strategies"][name]
        assert s["errors"] == 0 and s["fills"] > 0
    # The page lists the fills with their tags (the last 50 of each strategy).
    assert "<th>tag</th>" in page
    assert f"<td class='tag'>{rows[-1][7]}</td>" in page


@pytest.mark.slow
def test_what_crossvenue_bought_was_cheap_by_the_generators_own_model(
    run: tuple[dict[str, Any], str, Path],
) -> None:
    """Each entry's `p_model` (the fitted surface's digital) against the probability the generator
    priced the token around (its synthetic market's model at the market's resolution instant, at
    the fill's time): close, and above what was paid."""
    report, _, polymarket = run
    (catalog,) = recorded_catalogs([("polymarket", polymarket)], {"polymarket": POLYMARKET}).values()
    found, _ = catalog.price_markets("BTC")
    by_token: dict[str, tuple[PriceMarket, bool]] = {}
    for pm in found:
        by_token[pm.yes_token] = (pm, True)
        by_token[pm.no_token] = (pm, False)
    path = BtcPath(seed=7, start_ns=START_NS, strikes=12)
    buys = [r for r in report["strategies"]["cross_btc"]["series"]["fills"] if r[2] == "buy"]
    assert buys
    worst = 0.0
    for ts, instrument, _, price, _, _, _, tag in sorted(buys):
        pm, yes = by_token[instrument.removeprefix("polymarket:")]
        path.advance_to(ts)
        at_ms = pm.resolves_at_ns // 1_000_000
        above = {float(k): path.prob_above(float(k), at_ms) for k in pm.strikes}
        if pm.condition == "above":
            fair_yes = above[float(pm.low or 0)]
        elif pm.condition == "below":
            fair_yes = 1 - above[float(pm.high or 0)]
        else:
            fair_yes = above[float(pm.low or 0)] - above[float(pm.high or 0)]
        fair = fair_yes if yes else 1 - fair_yes
        m = TAG.fullmatch(tag)
        assert m is not None
        worst = max(worst, abs(float(m["p"]) - fair))
        assert fair - price > float(m["fee"]), (tag, fair)  # cheap by the generator's model too
    assert worst < 0.02, worst
