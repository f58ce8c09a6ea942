"""The synthetic market (`simulators.synth`) and its Deribit encoding (`simulators.deribit.generator`).

The recording is checked three ways: as bytes (deterministic), as Deribit frames (the field sets
of the captured frames in shared/fixtures/deribit, chained books), and as a market (replayed
through `DeribitDecoder`: no gaps, tickers agree with the book, trades print at the touch).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.recorded_lines import Line, read
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.deribit.instruments import PERPETUAL_EXPIRY_MS, instrument_from_json
from tradingd.engine import BookUpdate, InstrumentKind, OptionRight, Ticker, Trade
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.store import RecordingReader
from tradingd.simulators.deribit.generator import build_market, generate_sample, parse_options
from tradingd.simulators.synth import InstrumentSpec, SynthMarket, TickGrid, UnderlyingSpec

START = "2026-11-24T00:00:00Z"
START_NS = 1_795_478_400 * 1_000_000_000
MS = 1_000_000
HOURS = 0.1  # 6 minutes: ~16k frames, every kind of message, well under a second to write

# Field sets of the captured frames in shared/fixtures/deribit/ (ws_ticker.json,
# ws_book_snapshot.json, ws_book_delta.json, ws_trades.json, http_get_instruments.json) and of the
# option ticker sample of VENUES.md §1.6. Copied here so the test is self-contained.
PERP_TICKER_KEYS = {
    "timestamp", "state", "stats", "index_price", "instrument_name", "last_price", "settlement_price",
    "min_price", "max_price", "open_interest", "mark_price", "interest_value", "best_ask_price",
    "best_bid_price", "estimated_delivery_price", "best_ask_amount", "best_bid_amount",
    "current_funding", "funding_8h",
}  # fmt: skip
PERP_STATS_KEYS = {"high", "low", "price_change", "volume", "volume_usd", "volume_notional"}
OPTION_TICKER_KEYS = {
    "timestamp", "state", "stats", "greeks", "index_price", "instrument_name", "last_price",
    "settlement_price", "min_price", "max_price", "open_interest", "mark_price", "best_bid_price",
    "mark_iv", "ask_iv", "bid_iv", "underlying_price", "underlying_index", "best_ask_price",
    "interest_rate", "estimated_delivery_price", "best_ask_amount", "best_bid_amount",
}  # fmt: skip
OPTION_STATS_KEYS = {"high", "low", "price_change", "volume", "volume_usd"}
GREEKS_KEYS = {"delta", "gamma", "vega", "theta", "rho"}
# ws_book_snapshot.json carries "prev_change_id": null, which VENUES.md §1.6 says Deribit omits.
SNAPSHOT_KEYS = {"type", "instrument_name", "timestamp", "change_id", "bids", "asks"}
CHANGE_KEYS = SNAPSHOT_KEYS | {"prev_change_id"}
# ws_trades.json without the combo field of its first trade; options add `iv` (§1.6).
TRADE_KEYS = {
    "timestamp", "price", "amount", "direction", "index_price", "instrument_name", "trade_seq",
    "mark_price", "tick_direction", "contracts", "trade_id",
}  # fmt: skip
PERP_ITEM_KEYS = {
    "price_index", "kind", "instrument_name", "max_leverage", "maker_commission", "taker_commission",
    "instrument_type", "expiration_timestamp", "creation_timestamp", "is_active", "tick_size",
    "contract_size", "instrument_id", "min_trade_amount", "future_type", "max_liquidation_commission",
    "block_trade_commission", "block_trade_min_trade_amount", "block_trade_tick_size",
    "settlement_currency", "settlement_period", "base_currency", "counter_currency", "quote_currency",
    "tick_size_steps",
}  # fmt: skip
OPTION_ITEM_KEYS = (PERP_ITEM_KEYS - {"future_type"}) | {"option_type", "strike"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[Line]]:
    path = tmp_path_factory.mktemp("gen") / "deribit.rec.zst"
    count = generate_sample(path, {"hours": HOURS, "start": START})
    return path, count, read(path)


def notifications(lines: list[Line], prefix: str) -> list[tuple[int, str, Any]]:
    out = []
    for line in lines:
        msg = line.msg
        if msg.get("method") == "subscription" and msg["params"]["channel"].startswith(prefix):
            out.append((line.recv, msg["params"]["channel"], msg["params"]["data"]))
    return out


# ------------------------------------------------------------------------------------ bytes


def test_same_options_give_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    opts = {"seed": 11, "hours": 0.02, "start": START}
    a, b, c = tmp_path / "a.rec", tmp_path / "b.rec", tmp_path / "c.rec.zst"
    assert generate_sample(a, opts) == generate_sample(b, opts)
    assert a.read_bytes() == b.read_bytes()
    # The compressed file holds the same lines.
    generate_sample(c, opts)
    assert [f for _, f in RecordingReader(c)] == [f for _, f in RecordingReader(a)]
    other = tmp_path / "other.rec"
    generate_sample(other, {**opts, "seed": 12})
    assert other.read_bytes() != a.read_bytes()
    # The same instruments and subscription: only the market differs.
    ours, theirs = read(a), read(other)
    assert [x.msg["result"] for x in ours[:5]] == [x.msg["result"] for x in theirs[:5]]
    assert [x.frame for x in ours[5:]] != [x.frame for x in theirs[5:]]


def test_count_matches_lines_and_receive_times_follow_exchange_times(
    sample: tuple[Path, int, list[Line]],
) -> None:
    path, count, lines = sample
    assert count == len(lines)
    assert path.stat().st_size < 2_000_000  # compressed (raw is ~10 MB)
    assert 12_000 < count < 20_000  # ~45 frames/s for 360 s, plus the opening
    assert lines[0].recv == START_NS
    for line in lines[:5]:  # the responses: sent (usOut, µs) 1-3 ms before they arrived
        assert 1000 <= line.recv // 1000 - line.msg["usOut"] <= 3000
    recvs = [line.recv for line in lines]
    assert recvs == sorted(recvs)
    end = START_NS + int(HOURS * 3600e9)
    for recv, _, data in notifications(lines, ""):
        ts = (data[0] if isinstance(data, list) else data)["timestamp"] * MS
        assert START_NS <= ts <= end
        assert 1 * MS <= recv - ts <= 3 * MS
        assert recv % 100 == 0


def test_default_options_and_validation() -> None:
    assert parse_options({}) == (7, 2.0, START_NS)
    assert parse_options({"start": "2026-11-24T01:00:00+01:00", "hours": 1}) == (7, 1.0, START_NS)
    with pytest.raises(ValueError, match="bogus, speed"):
        parse_options({"speed": 1, "bogus": 2, "seed": 1})
    for bad in ({"hours": 0}, {"hours": 73}, {"hours": "2"}, {"seed": True}, {"seed": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            parse_options(bad)
    with pytest.raises(ValueError, match="time zone"):
        parse_options({"start": "2026-11-24T00:00:00"})
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_options({"start": "yesterday"})


# ------------------------------------------------------------------------- Deribit frames


def test_instrument_responses_parse_into_the_expected_34_instruments(
    sample: tuple[Path, int, list[Line]],
) -> None:
    _, _, lines = sample
    responses = [line.msg for line in lines[:4]]
    assert [r["id"] for r in responses] == [1, 2, 3, 4]
    assert all(r["jsonrpc"] == "2.0" and r["usOut"] - r["usIn"] == r["usDiff"] for r in responses)
    kinds = [{item["kind"] for item in r["result"]} for r in responses]
    assert kinds == [{"option"}, {"future"}, {"option"}, {"future"}]
    items = [item for r in responses for item in r["result"]]
    insts = {i.symbol: i for i in map(instrument_from_json, items)}
    assert len(insts) == len(items) == 34

    btc, eth = insts["BTC-PERPETUAL"], insts["ETH-PERPETUAL"]
    assert btc.kind is eth.kind is InstrumentKind.PERPETUAL
    assert (btc.tick_size, btc.min_size, btc.contract_size, btc.inverse) == (
        Decimal("0.5"), Decimal(10), Decimal(10), True
    )  # fmt: skip
    assert (eth.tick_size, eth.min_size, eth.contract_size) == (Decimal("0.05"), Decimal(1), Decimal(1))
    assert btc.expiry_ns is None
    assert (btc.maker_fee, btc.taker_fee) == (Decimal(0), Decimal("0.0005"))

    options = [i for i in insts.values() if i.is_option]
    assert len(options) == 32
    expiries = {1_795_766_400_000 * MS: "27NOV26", 1_798_185_600_000 * MS: "25DEC26"}  # Fridays 08:00Z
    for o in options:
        assert o.tick_size == Decimal("0.0001")
        assert o.tick_size_steps == ((Decimal("0.005"), Decimal("0.0005")),)
        assert o.min_size == (Decimal("0.1") if o.base == "BTC" else Decimal(1))
        assert o.quote == o.settle == o.base
        assert (o.maker_fee, o.taker_fee) == (Decimal("0.0003"), Decimal("0.0003"))
        assert o.expiry_ns in expiries
        code = expiries[o.expiry_ns]
        strike = int(o.strike or 0)
        assert o.symbol == f"{o.base}-{code}-{strike}-{'C' if o.right is OptionRight.CALL else 'P'}"
    strikes = defaultdict(set)
    for o in options:
        strikes[o.base, o.expiry_ns].add(int(o.strike or 0))
    assert strikes["BTC", 1_795_766_400_000 * MS] == {90000, 91000, 92000, 93000}
    assert strikes["BTC", 1_798_185_600_000 * MS] == {88000, 90000, 92000, 94000}
    assert strikes["ETH", 1_795_766_400_000 * MS] == {3000, 3050, 3100, 3150}
    assert strikes["ETH", 1_798_185_600_000 * MS] == {2900, 3000, 3100, 3200}

    for item in items:
        expected = OPTION_ITEM_KEYS if item["kind"] == "option" else PERP_ITEM_KEYS
        assert set(item) == expected, item["instrument_name"]
        if item["kind"] == "future":
            assert item["expiration_timestamp"] == PERPETUAL_EXPIRY_MS
            assert item["settlement_period"] == "perpetual"


def test_subscription_lists_every_channel_and_each_book_starts_with_a_snapshot(
    sample: tuple[Path, int, list[Line]],
) -> None:
    _, _, lines = sample
    names = [item["instrument_name"] for line in lines[:4] for item in line.msg["result"]]
    sub = lines[4].msg
    assert sub["id"] == 5
    expected = {f"{kind}.{n}.100ms" for n in names for kind in ("ticker", "book", "trades")}
    assert len(sub["result"]) == len(expected) == 102
    assert set(sub["result"]) == expected
    snapshots = [line.msg["params"]["data"] for line in lines[5 : 5 + 34]]
    assert [d["type"] for d in snapshots] == ["snapshot"] * 34
    assert {d["instrument_name"] for d in snapshots} == set(names)
    for d in snapshots:
        assert set(d) == SNAPSHOT_KEYS  # no prev_change_id on a snapshot (§1.6)
        assert all(level[0] == "new" for level in d["bids"] + d["asks"])
        assert len(d["asks"]) == (10 if d["instrument_name"].endswith("PERPETUAL") else 5)


def test_every_notification_has_the_shape_of_its_deribit_channel(
    sample: tuple[Path, int, list[Line]],
) -> None:
    _, _, lines = sample
    seen: dict[str, int] = defaultdict(int)
    for line in lines[5 + 34 :]:  # after the responses and the snapshots
        msg = line.msg
        assert set(msg) == {"jsonrpc", "method", "params"}
        assert msg["jsonrpc"] == "2.0"
        assert msg["method"] == "subscription"
        channel = msg["params"]["channel"]
        kind, name, interval = channel.split(".")
        assert interval == "100ms"
        data = msg["params"]["data"]
        option = not name.endswith("PERPETUAL")
        seen[f"{kind}-{'option' if option else 'perp'}"] += 1
        if kind == "ticker":
            assert set(data) == (OPTION_TICKER_KEYS if option else PERP_TICKER_KEYS)
            assert set(data["stats"]) == (OPTION_STATS_KEYS if option else PERP_STATS_KEYS)
            assert data["instrument_name"] == name
            assert data["state"] == "open"
            if option:
                assert set(data["greeks"]) == GREEKS_KEYS
                assert data["interest_rate"] == 0
                assert data["underlying_index"] == "index_price"
                assert data["underlying_price"] == data["index_price"]
        elif kind == "book":
            assert set(data) == CHANGE_KEYS
            assert data["type"] == "change"
            assert data["bids"] or data["asks"]
        else:
            assert kind == "trades"
            assert 1 <= len(data) <= 3
            for trade in data:
                assert set(trade) == (TRADE_KEYS | {"iv"} if option else TRADE_KEYS)
                assert trade["instrument_name"] == name
                assert isinstance(trade["trade_id"], str)
                assert trade["direction"] in ("buy", "sell")
                assert trade["tick_direction"] in (0, 1, 2, 3)
    # Rates (per second of the 6 minutes): perps ~4 tickers and ~4-5 book changes each, options
    # ~0.4 of each; perp trades ~0.8 frames/s each.
    secs = HOURS * 3600
    assert 6.5 < seen["ticker-perp"] / secs < 9.5
    assert 7.0 < seen["book-perp"] / secs < 12.0
    assert 0.9 < seen["trades-perp"] / secs < 2.4
    assert 9.0 < seen["ticker-option"] / secs < 17.0
    assert 9.0 < seen["book-option"] / secs < 17.0


def test_book_changes_chain_per_instrument(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    last: dict[str, int] = {}
    changes = 0
    for _, _, data in notifications(lines, "book."):
        name = data["instrument_name"]
        if data["type"] == "snapshot":
            assert name not in last
        else:
            assert data["prev_change_id"] == last[name]
            assert data["change_id"] > data["prev_change_id"]
            changes += 1
        last[name] = data["change_id"]
    assert len(last) == 34
    assert changes > 5000


def test_trade_sequences_ids_and_tick_directions(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    seq: dict[str, int] = {}
    last_price: dict[str, float] = {}
    ids: list[str] = []
    for _, _, data in notifications(lines, "trades."):
        for t in data:
            name = t["instrument_name"]
            assert t["trade_seq"] == seq.get(name, 0) + 1
            seq[name] = t["trade_seq"]
            if name in last_price:
                if t["price"] > last_price[name]:
                    assert t["tick_direction"] == 0
                elif t["price"] < last_price[name]:
                    assert t["tick_direction"] == 2
                else:
                    assert t["tick_direction"] in (1, 3)
            last_price[name] = t["price"]
            ids.append(t["trade_id"])
            # Options: a contract is one coin; perpetuals: 10 USD (BTC) or 1 USD (ETH).
            size = {"BTC-PERPETUAL": 10.0, "ETH-PERPETUAL": 1.0}.get(name, 1.0)
            assert t["contracts"] == t["amount"] / size
    assert len(ids) == len(set(ids))
    assert "BTC-PERPETUAL" in seq
    assert "ETH-PERPETUAL" in seq


# ---------------------------------------------------------------------- replayed market


def on_grid(price: float, inst: Any) -> bool:
    d = Decimal(repr(price))
    return d > 0 and d % inst.tick_for(d) == 0


def test_replay_through_the_decoder_gives_a_consistent_market(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    registry = InstrumentRegistry()
    dec = DeribitDecoder(registry)
    pending: dict[str, tuple[str, int, float]] = {}  # trades not yet taken out of the book
    counts: dict[str, int] = defaultdict(int)
    for line in lines:
        name = ""
        before = None
        if line.msg.get("method") == "subscription":
            name = line.msg["params"]["channel"].split(".")[1]
            book = dec.book(name)
            before = None if book is None else (dict(book.bids), dict(book.asks), book.top())
        events = dec.decode(line.frame, line.recv)
        for ev in events:
            inst = registry.get("deribit", ev.instrument)
            assert inst is not None
            book = dec.book(ev.instrument)
            assert book is not None
            if isinstance(ev, Ticker):
                counts["ticker"] += 1
                # The ticker shows the book its frames have built, at that moment.
                assert (ev.bid, ev.bid_size, ev.ask, ev.ask_size) == book.top()
                assert ev.bid is not None
                assert ev.ask is not None
                assert ev.bid < ev.ask
                assert ev.index is not None
                assert ev.mark is not None
                if inst.is_option:
                    counts["option ticker"] += 1
                    assert ev.greeks is not None
                    if inst.right is OptionRight.CALL:
                        assert 0 < ev.greeks.delta < 1
                    else:
                        assert -1 < ev.greeks.delta < 0
                    assert ev.greeks.gamma >= 0
                    assert ev.greeks.vega > 0
                    assert ev.greeks.theta < 0
                    assert ev.mark_iv is not None
                    assert ev.bid_iv is not None
                    assert ev.ask_iv is not None
                    for iv in (ev.mark_iv, ev.bid_iv, ev.ask_iv):
                        assert 0.2 < iv < 1.5
                    assert ev.bid_iv < ev.ask_iv
                    assert on_grid(ev.bid, inst)
                    assert on_grid(ev.ask, inst)
                else:
                    assert abs(ev.mark / ev.index - 1) < 0.002  # premium of a few 1e-4
            elif isinstance(ev, Trade):
                counts["trade"] += 1
                assert before is not None
                bids, asks, (bb, _, ba, _) = before
                # The aggressor takes the touch: buys at the best ask, sells at the best bid.
                level = asks if ev.side == "buy" else bids
                assert ev.price == (ba if ev.side == "buy" else bb)
                ticks = book.to_ticks(ev.price)
                side, _, taken = pending.get(ev.instrument, (ev.side.value, ticks, 0.0))
                assert side == ev.side.value
                taken += ev.size
                assert taken <= level[ticks] + 1e-9
                pending[ev.instrument] = (side, ticks, taken)
                assert math.isclose(ev.size / float(inst.min_size), round(ev.size / float(inst.min_size)))
                if inst.is_option:
                    assert on_grid(ev.price, inst)
            elif isinstance(ev, BookUpdate):
                counts["book"] += 1
                assert not book.is_crossed()
                assert ev.best_bid is not None
                assert ev.best_ask is not None
                if inst.is_option:
                    for price, _ in ev.bids + ev.asks:
                        assert on_grid(price, inst)
                for _, size in ev.bids + ev.asks:
                    assert math.isclose(size / float(inst.min_size), round(size / float(inst.min_size)))
                if ev.instrument in pending and not ev.snapshot:
                    # The change after a trade takes exactly the traded size out of its level.
                    side, ticks, taken = pending.pop(ev.instrument)
                    assert before is not None
                    old = (before[1] if side == "buy" else before[0])[ticks]
                    now = (book.asks if side == "buy" else book.bids).get(ticks, 0.0)
                    assert math.isclose(now, old - taken, abs_tol=1e-9)
    assert not pending
    assert dec.stats.gaps == 0
    assert dec.stats.malformed == 0
    assert dec.stats.unknown_channel == 0
    assert dec.stats.ignored_changes == 0
    assert len(registry) == 34
    assert counts["trade"] > 300
    assert counts["option ticker"] > 3000
    assert counts["book"] > 5000


# --------------------------------------------------------------------------------- model


def underlyings() -> list[UnderlyingSpec]:
    return [UnderlyingSpec("BTC", 91250.0, 0.5), UnderlyingSpec("ETH", 3050.0, 0.65, beta=1.25)]


def test_underlyings_have_the_intended_vol_correlation_and_trends() -> None:
    m = SynthMarket(seed=3, start_ns=START_NS, underlyings=underlyings(), instruments=[])
    closes: list[tuple[float, float]] = []
    peak_drift = 0.0
    for k in range(3 * 36_000):  # 3 hours of 100 ms steps
        m.step()
        if k % 600 == 599:
            closes.append((math.log(m.index(0)), math.log(m.index(1))))
            peak_drift = max(peak_drift, abs(m.drift(0)))
    r = [[b[j] - a[j] for a, b in itertools.pairwise(closes)] for j in (0, 1)]
    n = len(r[0])
    mean = [sum(x) / n for x in r]
    var = [sum((x - mu) ** 2 for x in xs) / n for xs, mu in zip(r, mean, strict=True)]
    cov = sum((a - mean[0]) * (b - mean[1]) for a, b in zip(r[0], r[1], strict=True)) / n
    per_year = math.sqrt(365 * 24 * 60)
    assert 0.4 < math.sqrt(var[0]) * per_year < 0.6
    assert 0.52 < math.sqrt(var[1]) * per_year < 0.8
    assert 0.7 < cov / math.sqrt(var[0] * var[1]) < 0.92
    # A trend episode happened: a drift of 5e-6/s is 0.3 % in 10 minutes.
    assert peak_drift > 5e-6
    assert m.now_ns == START_NS + 3 * 3600 * 10**9


def test_option_model_values_obey_parity_and_the_surface() -> None:
    market, _ = build_market(7, START_NS)
    names = [s.name for s in market.instruments]
    for _ in range(50):
        market.step()
    call = names.index("BTC-27NOV26-92000-C")
    put = names.index("BTC-27NOV26-92000-P")
    qc, qp = market.option_quote(call), market.option_quote(put)
    s = market.index(0)
    # Coin-quoted, r = 0: C - P = (S - K) / S.
    assert math.isclose(qc.price - qp.price, (s - 92000) / s, abs_tol=1e-12)
    assert qc.vol == qp.vol
    assert math.isclose(qc.greeks.delta - qp.greeks.delta, 1.0, abs_tol=1e-12)
    # The implied vol of the mark is the mark vol; a higher price means a higher vol.
    assert math.isclose(market.implied_vol(call, qc.price), qc.vol, rel_tol=1e-6)
    assert market.implied_vol(call, qc.price * 1.05) > qc.vol
    # Term structure: the far expiry's ATM vol sits above the near one's at the start.
    far = names.index("BTC-25DEC26-92000-C")
    assert market.option_vol(far) > 0.3
    assert market.option_vol(call) > 0.3


def test_model_books_stay_uncrossed_on_grid_and_trades_fit_their_level() -> None:
    grid = TickGrid(0.0001, ((50, 5),))
    spec = InstrumentSpec(
        name="X-C",
        underlying="BTC",
        kind="option",
        grid=grid,
        lot=0.1,
        strike=95000.0,
        expiry_ns=START_NS + 5 * 86400 * 10**9,
        coin_quoted=True,
        levels=5,
        trades_per_s=2.0,
        requote_ms=300,
    )
    m = SynthMarket(seed=5, start_ns=START_NS, underlyings=underlyings()[:1], instruments=[spec])
    # Rebuild the book from the updates alone, as a venue's client would.
    bids_l, asks_l = m.levels(0)
    bids, asks = dict(bids_l), dict(asks_l)
    trades = 0
    last_ts = START_NS
    for _ in range(3000):
        step_start = m.now_ns
        for u in m.step():
            assert step_start < u.ts_ns <= m.now_ns
            assert u.ts_ns >= last_ts
            assert u.ts_ns % MS == 0
            last_ts = u.ts_ns
            for t in u.trades:
                trades += 1
                touch = max(bids) if t.side == "sell" else min(asks)
                assert t.ticks == touch
            taken = sum(t.lots for t in u.trades)
            for side, changes in ((bids, u.bids), (asks, u.asks)):
                for ticks, old, new in changes:
                    assert side.get(ticks, 0) == old
                    assert old != new
                    if u.trades:  # a trade only takes its size out of the level it hit
                        assert ticks == u.trades[0].ticks
                        assert new == old - taken >= 0
                    if new:
                        side[ticks] = new
                    else:
                        del side[ticks]
            assert max(bids) < min(asks)
            assert all(grid.is_valid(t) for t in list(bids) + list(asks))
            assert (u.best_bid, u.best_bid_lots, u.best_ask, u.best_ask_lots) == (
                max(bids), bids[max(bids)], min(asks), asks[min(asks)]
            )  # fmt: skip
        assert m.levels(0) == (sorted(bids.items(), reverse=True), sorted(asks.items()))
    assert trades > 200


@given(st.floats(min_value=0.5, max_value=5000.0))
def test_tick_grid_rounds_onto_valid_prices(x: float) -> None:
    grid = TickGrid(0.0001, ((50, 5),))
    lo, hi = grid.floor(x), grid.ceil(x)
    assert lo <= x <= hi
    assert grid.is_valid(hi)
    assert lo <= 0 or grid.is_valid(lo)
    assert grid.above(lo) > x
    assert grid.below(hi) < x
    # Prices print as their exact decimals: 0.0055, never 0.005500000000000001.
    assert Decimal(repr(grid.price(hi))) == Decimal(hi) / 10000


def test_spec_sizes_print_as_exact_decimals() -> None:
    spec = InstrumentSpec(name="A", underlying="BTC", kind="perpetual", grid=TickGrid(0.05), lot=0.1)
    assert [spec.size(n) for n in (1, 3, 12, 70)] == [0.1, 0.3, 1.2, 7.0]
    assert TickGrid(0.05).price(61003) == 3050.15
    with pytest.raises(ValueError, match="divide 1"):
        TickGrid(0.3)
    with pytest.raises(ValueError, match="whole"):
        InstrumentSpec(name="B", underlying="BTC", kind="perpetual", grid=TickGrid(0.5), lot=2.5)
