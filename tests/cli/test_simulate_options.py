"""`tradingd simulate` takes the generator options a sample takes (`--strikes`, `--crypto`):
the Deribit simulator lists a chain of that many strikes per expiry, the Polymarket simulator's
Gamma serves the Bitcoin price markets (so `tradingd catalog refresh --gamma-url` and
`catalog price-markets` find them), and an option a venue does not take, or a wrong value, is one
usage line. The witnesses are the generator's own (`strike_ladder`, `PolymarketFeed`'s legs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.simulate_cli import simulate_cli
from tradingd.cli.main import main
from tradingd.simulators.polymarket.generator import PolymarketFeed


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["deribit", "--strikes", "30"], "--strikes must be an integer from 4 to 24, got 30"),
        (["deribit", "--strikes", "3"], "--strikes must be an integer from 4 to 24, got 3"),
        (
            ["deribit", "--crypto", "deribit"],
            "tradingd simulate deribit takes no --crypto (--crypto is for polymarket)",
        ),
        (
            ["derive", "--strikes", "12"],
            "tradingd simulate derive takes no --strikes (--strikes is for deribit and polymarket)",
        ),
        (["polymarket", "--crypto", "binance"], '--crypto must be "none" or "deribit", got \'binance\''),
        (
            ["polymarket", "--strikes", "12"],
            "--strikes (of the deribit sample whose BTC path to follow) needs --crypto deribit",
        ),
        (
            ["polymarket", "--mispriced", "-0.1"],
            "--mispriced (of a Bitcoin price market) needs --crypto deribit",
        ),
        (
            ["polymarket", "--crypto", "deribit", "--mispriced", "2"],
            "--mispriced must be a probability between -1 and 1, got 2.0",
        ),
        (
            ["deribit", "--mispriced", "-0.1"],
            "tradingd simulate deribit takes no --mispriced (--mispriced is for polymarket)",
        ),
    ],
)
def test_an_option_the_venue_does_not_take_or_a_wrong_value_is_one_usage_line(
    capfd: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    code = main(["simulate", *argv, "--port", "0"])
    _, err = capfd.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [f"tradingd: error: {line}"]


def test_simulate_deribit_strikes_lists_that_wide_a_chain() -> None:
    with simulate_cli("deribit", "--strikes", "12") as sim:
        answer = httpx.get(
            f"http://{sim.address}/api/v2/public/get_instruments",
            params={"currency": "BTC", "kind": "option"},
            timeout=10,
        )
    items = answer.json()["result"]
    strikes: dict[int, set[float]] = {}
    for item in items:
        strikes.setdefault(item["expiration_timestamp"], set()).add(item["strike"])
    assert len(strikes) == 2
    assert all(len(s) == 12 for s in strikes.values())
    assert len(items) == 2 * 2 * 12  # 2 expiries x calls and puts


def test_simulate_polymarket_crypto_serves_the_price_markets_to_catalog_refresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The generator's own legs for the simulator's seed (7), strikes and start (the same date).
    legs = PolymarketFeed(7, time.time_ns(), crypto="deribit", strikes=12).price_legs
    # slug -> (condition, low, high) as the generator priced it.
    want = {
        m.spec.slug: (m.spec.price.condition, m.spec.price.low, m.spec.price.high)
        for m in legs
        if m.spec.price
    }
    assert len(want) == 15
    cache = str(tmp_path / "catalog.jsonl")
    with simulate_cli("polymarket", "--crypto", "deribit", "--strikes", "12") as sim:
        assert (
            main(["catalog", "refresh", "--gamma-url", f"http://{sim.address}/gamma", "--cache", cache]) == 0
        )
        capsys.readouterr()
    assert main(["catalog", "price-markets", "--underlying", "BTC", "--json", "--cache", cache]) == 0
    found = json.loads(capsys.readouterr().out)
    read = {
        m["slug"]: (m["condition"], *(None if m[k] is None else float(m[k]) for k in ("low", "high")))
        for m in found["markets"]
    }
    assert read == want
