"""The synthetic market's Derive encoding (`simulators.derive.generator`).

The recording is checked three ways: as bytes (deterministic), as Derive v2 frames (the key sets of
the captured frames in tests/fixtures/derive), and as a market (replayed through `DeriveDecoder`:
instruments learned, consecutive publish ids, tickers agree with the books, prices and sizes on
their grids), and once end to end through the backtest kernel with an `InstrumentFilter`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support.recorded_lines import Line, read
from tradingd.connectors.derive import PLUGIN
from tradingd.connectors.derive.codec import DeriveDecoder
from tradingd.connectors.derive.instruments import option_sub_id, parse_instrument
from tradingd.engine import (
    BookUpdate,
    Fill,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    OptionRight,
    Status,
    Strategy,
    Subscription,
    Ticker,
    Trade,
)
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.filter import InstrumentFilter
from tradingd.engine.store import RecordingReader
from tradingd.simulators.derive import SIMULATOR
from tradingd.simulators.derive.generator import DeriveFeed, build_market, generate_sample, parse_options
from tradingd.simulators.synth import SynthMarket

START = "2026-11-24T00:00:00Z"
START_NS = 1_795_478_400 * 1_000_000_000
MS = 1_000_000
HOURS = 0.05  # 3 minutes: every kind of message, well under a second to write
FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "derive"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[Line]]:
    path = tmp_path_factory.mktemp("gen") / "derive.rec.zst"
    count = generate_sample(path, {"hours": HOURS, "start": START})
    return path, count, read(path)


def notifications(lines: list[Line], head: str) -> list[tuple[int, str, Any]]:
    return [
        (x.recv, x.msg["params"]["channel"], x.msg["params"]["data"])
        for x in lines
        if x.msg.get("method") == "subscription" and x.msg["params"]["channel"].split(".")[0] == head
    ]


# ------------------------------------------------------------------------------------ bytes


def test_same_options_give_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    opts = {"seed": 11, "hours": 0.01, "start": START}
    a, b, c = tmp_path / "a.rec", tmp_path / "b.rec", tmp_path / "c.rec.gz"
    assert generate_sample(a, opts) == generate_sample(b, opts) == SIMULATOR.generate_sample(c, opts)
    assert a.read_bytes() == b.read_bytes()
    assert [f for _, f in RecordingReader(c)] == [f for _, f in RecordingReader(a)]
    other = tmp_path / "other.rec"
    generate_sample(other, {**opts, "seed": 12})
    ours, theirs = read(a), read(other)
    # The same instruments and subscription; another market.
    assert [x.msg["result"] for x in ours[:5]] == [x.msg["result"] for x in theirs[:5]]
    assert [x.frame for x in ours[5:]] != [x.frame for x in theirs[5:]]


def test_options_are_validated() -> None:
    assert parse_options({}) == (7, 2.0, 1_795_478_400_000 * MS)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hour": 1}, "unknown generator option"),
        ({"hours": 0}, "hours must be"),
        ({"hours": 73}, "hours must be"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"start": "2026-11-24T00:00:00"}, "time zone"),
        ({"start": "yesterday"}, "not an ISO-8601"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            parse_options(bad)
    market, results = build_market(1, START_NS)
    fast = SynthMarket(
        seed=1,
        start_ns=START_NS,
        underlyings=market.underlyings,
        instruments=market.instruments,
        step_ns=50 * MS,
    )
    with pytest.raises(ValueError, match="100 ms clock"):
        DeriveFeed(fast, results, seed=1)


def test_count_matches_and_receive_times_follow_exchange_times(sample: tuple[Path, int, list[Line]]) -> None:
    _, count, lines = sample
    assert count == len(lines) > 5_000
    assert all(b.recv >= a.recv for a, b in itertools.pairwise(lines))
    for recv, _, data in notifications(lines, "ticker_slim") + notifications(lines, "orderbook"):
        assert 1 * MS <= recv - data["timestamp"] * MS <= 3 * MS
    for recv, _, data in notifications(lines, "trades"):
        assert 1 * MS <= recv - data[0]["timestamp"] * MS <= 3 * MS


# ------------------------------------------------------------------------------- the frames


def test_the_instrument_answers_define_the_34_instruments(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    answers = [x.msg for x in lines[:4]]
    assert [a["id"] for a in answers] == [1, 2, 3, 4]
    captured_keys = list(fixture("spot/http_get_instruments_eth.json")["result"][0])
    parsed = []
    for answer in answers:
        for item in answer["result"]:
            assert list(item) == captured_keys  # the live capture's keys, in its order
            parsed.append(parse_instrument(item))
    names = [inst.symbol for inst, _ in parsed]
    assert len(names) == len(set(names)) == 34
    kinds = [inst.kind for inst, _ in parsed]
    assert kinds.count(InstrumentKind.PERPETUAL) == 2 and kinds.count(InstrumentKind.OPTION) == 32
    eth_perp = next(p for p in parsed if p[0].symbol == "ETH-PERP")
    assert (eth_perp[0].tick_size, eth_perp[0].min_size, eth_perp[1].asset_address) == (
        Decimal("0.01"),
        Decimal("0.01"),
        "0xAf65752C4643E25C02F693f9D4FE19cF23a095E3",
    )
    for inst, info in parsed:
        assert inst.quote == inst.settle == "USDC"
        if inst.kind is InstrumentKind.OPTION:
            assert inst.expiry_ns is not None and inst.strike is not None
            expiry_s = inst.expiry_ns // 10**9
            assert info.sub_id == option_sub_id(expiry_s, inst.strike, call=inst.right is OptionRight.CALL)
            assert expiry_s % 86_400 == 8 * 3600  # 08:00 UTC
            assert info.asset_address in (
                "0x4BB4C3CDc7562f08e9910A0C7D8bB7e108861eB4",
                "0xd0711b9eBE84b778483709CDe62BacFDBAE13623",
            )
    assert sorted({n.split("-")[1] for n in names if n.count("-") == 3}) == ["20261127", "20261225"]


def test_the_subscription_answer_and_the_opening(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    answer = lines[4].msg
    assert answer["id"] == 5 and list(answer["result"]) == ["current_subscriptions", "status"]
    channels = answer["result"]["current_subscriptions"]
    assert len(channels) == 3 * 34 and set(answer["result"]["status"].values()) == {"ok"}
    assert "ticker_slim.ETH-PERP.100" in channels and "ticker_slim.BTC-20261127-90000-C.1000" in channels
    opening = lines[5 : 5 + 2 * 34]
    heads = [x.msg["params"]["channel"].split(".")[0] for x in opening]
    assert heads == ["orderbook"] * 34 + ["ticker_slim"] * 34
    seen = {x.msg["params"]["channel"] for x in lines if x.msg.get("method") == "subscription"}
    assert seen <= set(channels) and {c.split(".")[0] for c in seen} == {"orderbook", "ticker_slim", "trades"}


def test_frames_have_the_captured_shapes(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    slim_keys = set(fixture("perps/ws_ticker_slim_eth.json")["instrument_ticker"])
    pricing_keys = set(fixture("options/ws_ticker_slim_eth_call.json")["instrument_ticker"]["option_pricing"])
    stats_keys = set(fixture("perps/ws_ticker_slim_eth.json")["instrument_ticker"]["stats"])
    for _, channel, data in notifications(lines, "ticker_slim"):
        assert set(data) == {"timestamp", "instrument_ticker"}
        t = data["instrument_ticker"]
        assert set(t) == slim_keys and set(t["stats"]) == stats_keys
        option = channel.count("-") == 3
        assert (t["option_pricing"] is None) == (not option) and (t["f"] is None) == option
        if option:
            assert set(t["option_pricing"]) == pricing_keys and channel.endswith(".1000")
        for key, value in t.items():
            if key not in ("t", "option_pricing", "stats", "f"):
                assert isinstance(value, str) and "e" not in value.lower(), (key, value)
        assert isinstance(t["stats"]["n"], int) and isinstance(t["t"], int)
    book_keys = set(fixture("spot/ws_orderbook_eth_mainnet.json"))
    for _, _, data in notifications(lines, "orderbook"):
        assert set(data) == book_keys
        assert all(isinstance(p, str) and isinstance(a, str) for p, a in data["bids"] + data["asks"])
        assert len(data["bids"]) <= 10 and len(data["asks"]) <= 10
    # The production `trades.ETH-PERP` frame: the public record, no account fields.
    live = orjson.loads((FIXTURES / "bourse" / "ws_trades_eth_perp_mainnet.json").read_bytes())
    trade_keys = list(live["params"]["data"][0])
    trades = notifications(lines, "trades")
    assert trades
    for _, channel, data in trades:
        for item in data:
            assert list(item) == trade_keys and channel == f"trades.{item['instrument_name']}"
            assert item["direction"] in ("buy", "sell")


def test_publish_ids_follow_each_other_per_channel(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    ids: dict[str, list[int]] = defaultdict(list)
    for _, channel, data in notifications(lines, "orderbook"):
        ids[channel].append(data["publish_id"])
    assert len(ids) == 34
    for seq in ids.values():
        assert seq == list(range(seq[0], seq[0] + len(seq)))


def test_replay_through_the_decoder_gives_a_consistent_market(sample: tuple[Path, int, list[Line]]) -> None:
    path, count, _ = sample
    registry = InstrumentRegistry()
    dec = DeriveDecoder(registry)
    tops: dict[str, tuple[Any, ...]] = {}
    kinds: dict[str, int] = defaultdict(int)
    trade_ids: set[str] = set()
    for ts, frame in RecordingReader(path):
        assert ts is not None
        for ev in dec.decode(frame, ts):
            kinds[ev.type] += 1
            inst = registry.get("derive", ev.instrument)
            assert inst is not None
            if isinstance(ev, BookUpdate):
                tops[ev.instrument] = (ev.best_bid, ev.best_bid_size, ev.best_ask, ev.best_ask_size)
                assert ev.best_bid is None or ev.best_ask is None or ev.best_bid < ev.best_ask
            elif isinstance(ev, Ticker):
                # A ticker reports the book as the last snapshot left it.
                assert (ev.bid, ev.bid_size, ev.ask, ev.ask_size) == tops[ev.instrument]
                assert ev.index is not None and ev.mark is not None
                if inst.kind is InstrumentKind.OPTION:
                    assert ev.greeks is not None and ev.mark_iv is not None and 0.05 <= ev.mark_iv <= 3.0
                    assert ev.underlying == ev.index
                    assert (ev.greeks.delta > 0) == (inst.right is OptionRight.CALL)
                else:
                    assert ev.greeks is None and ev.mark_iv is None
            elif isinstance(ev, Trade):
                assert ev.trade_id not in trade_ids
                trade_ids.add(ev.trade_id)
                price, size = Decimal(repr(ev.price)), Decimal(repr(ev.size))
                assert price % inst.tick_size == 0 and size % inst.min_size == 0 and size > 0
            else:
                raise AssertionError(f"unexpected {ev!r}")
    assert dec.stats.frames == count and dec.stats.malformed == 0 and dec.stats.gaps == 0
    assert (
        dec.stats.unknown_channel == 0
        and dec.stats.skipped_instruments == 0
        and dec.stats.ignored_changes == 0
    )
    assert len(registry) == len(dec.details) == 34
    assert kinds["ticker"] > kinds["book"] > kinds["trade"] > 0
    book = dec.book("BTC-PERP")
    assert book is not None and book.quantum == 0.1 and book.levels == 20


# --------------------------------------------------------------------- through a backtest

CHAIN = InstrumentFilter(
    currencies=["ETH"], kinds=["option"], right="call", max_expiry_days=40, strike_within=0.05
)


class FilterBuyer(Strategy):
    """On the first ETH-PERP ticker: pick ETH calls with the filter, buy the perpetual at the ask."""

    def __init__(self) -> None:
        super().__init__("buyer")
        self.chosen: list[str] = []
        self.fills: list[Fill] = []
        self.index: float | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("derive", "ETH-PERP")]

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Fill):
            self.fills.append(event)
        elif isinstance(event, Ticker) and not self.chosen and event.ask is not None and event.index:
            self.index = event.index
            picked = CHAIN.select(self.ctx.instruments("derive"), now_ns=self.ctx.now_ns(), spot=event.index)
            self.chosen = [i.symbol for i in picked]
            await self.ctx.buy("derive", "ETH-PERP", Decimal("0.5"), price=Decimal(repr(event.ask)))
        elif isinstance(event, Status):
            raise AssertionError(f"unexpected status {event!r}")


def test_a_backtest_on_the_sample_picks_with_the_filter_and_pays_derive_fees(
    sample: tuple[Path, int, list[Line]],
) -> None:
    path, _, _ = sample
    strategy = FilterBuyer()
    kernel = BacktestKernel({"derive": PLUGIN}, [DataSource("derive", path)], [strategy], BacktestSettings())
    result = trio.run(kernel.run)
    # ETH ~3050: near-expiry strikes 3000-3150 and far 2900-3200 within 5% (2897.5-3202.5).
    assert strategy.chosen == [
        "ETH-20261127-3000-C",
        "ETH-20261127-3050-C",
        "ETH-20261127-3100-C",
        "ETH-20261127-3150-C",
        "ETH-20261225-2900-C",
        "ETH-20261225-3000-C",
        "ETH-20261225-3100-C",
        "ETH-20261225-3200-C",
    ]
    assert result.decoder_stats["derive"]["malformed"] == 0
    assert strategy.fills and sum(f.size for f in strategy.fills) == Decimal("0.5")
    fill = strategy.fills[0]
    assert (fill.fee_currency, fill.liquidity) == ("USDC", Liquidity.TAKER)
    # Taker: $0.10 per order + 0.06% of the notional at the index, per the published schedule.
    assert strategy.index is not None
    expected = Decimal("0.1") + Decimal("0.0006") * fill.size * Decimal(repr(strategy.index))
    assert abs(fill.fee - expected) < Decimal("0.01")
    assert result.strategies["buyer"].fills == len(strategy.fills)
