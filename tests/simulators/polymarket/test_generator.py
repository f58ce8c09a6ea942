"""The synthetic Polymarket recording (`simulators.polymarket.generator`).

Checked three ways: as bytes (deterministic), as Polymarket frames (the field sets of the captured
messages in tests/fixtures/polymarket), and as a market (replayed through `PolymarketDecoder`: the
registry learns every token from the first line, no book ever disagrees with the venue's best
bid/ask, trades print at the touch, the NO book mirrors the YES book, a tick size changes, a market
resolves).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tradingd.cli.main import main
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.engine import BookUpdate, Status, StatusKind, Ticker, Trade
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.store import RecordingReader
from tradingd.simulators.polymarket import SIMULATOR
from tradingd.simulators.polymarket.generator import MARKETS, PolymarketFeed, generate_sample, parse_options

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
START = "2026-11-24T00:00:00Z"
START_NS = 1_795_478_400 * 1_000_000_000
MS = 1_000_000
HOURS = 0.25  # 15 minutes: every kind of message, the resolution included


def keys(name: str) -> set[str]:
    return set(orjson.loads((FIXTURES / name).read_bytes()))


# The captured messages' field sets (the generator may not invent or drop fields).
BOOK_KEYS = keys("ws_market_book_msg.json") | {"hash"}  # the capture omits the hash PM-DOCS shows
PRICE_CHANGE_KEYS = keys("ws_market_price_change_msg.json")
CHANGE_KEYS = set(
    orjson.loads((FIXTURES / "ws_market_price_change_msg.json").read_bytes())["price_changes"][0]
)
LAST_TRADE_KEYS = keys("ws_market_last_trade_msg.json")
BEST_BID_ASK_KEYS = keys("ws_market_best_bid_ask_msg.json")
TICK_KEYS = keys("ws_market_tick_size_msg.json")
RESOLVED_KEYS = keys("ws_market_resolved_msg.json")
GAMMA_KEYS = keys("gamma_market.json")


@dataclass
class Line:
    recv: int
    frame: bytes


def read(path: Path) -> list[Line]:
    out = []
    for ts, f in RecordingReader(path):
        assert ts is not None
        out.append(Line(ts, f))
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[Line]]:
    path = tmp_path_factory.mktemp("gen") / "polymarket.rec.zst"
    count = generate_sample(path, {"hours": HOURS, "start": START})
    return path, count, read(path)


def messages(lines: list[Line]) -> list[tuple[int, Any]]:
    """Every message after the opening, with its receive time (arrays flattened, PONG skipped)."""
    out = []
    for line in lines[2:]:
        if line.frame == b"PONG":
            continue
        msg = orjson.loads(line.frame)
        for m in msg if isinstance(msg, list) else [msg]:
            out.append((line.recv, m))
    return out


# ------------------------------------------------------------------------------------ bytes


def test_same_options_give_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    opts = {"seed": 11, "hours": 0.02, "start": START}
    a, b, c = tmp_path / "a.rec", tmp_path / "b.rec", tmp_path / "c.rec.zst"
    assert generate_sample(a, opts) == generate_sample(b, opts)
    assert a.read_bytes() == b.read_bytes()
    generate_sample(c, opts)
    assert [f for _, f in RecordingReader(c)] == [f for _, f in RecordingReader(a)]
    other = tmp_path / "other.rec"
    generate_sample(other, {**opts, "seed": 12})
    assert other.read_bytes() != a.read_bytes()


def test_the_plugin_writes_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "p.rec"
    assert SIMULATOR.generate_sample(path, {"hours": 0.01}) == len(read(path)) > 10


def test_count_and_receive_times(sample: tuple[Path, int, list[Line]]) -> None:
    path, count, lines = sample
    assert count == len(lines)
    assert 8_000 < count < 40_000
    assert path.stat().st_size < 3_000_000
    recvs = [line.recv for line in lines]
    assert recvs == sorted(recvs)
    assert START_NS < recvs[0] < START_NS + 100 * MS
    end = START_NS + int(HOURS * 3600e9)
    for recv, msg in messages(lines):
        ts = int(msg["timestamp"]) * MS
        assert START_NS <= ts <= end
        assert 1 * MS <= recv - ts <= 3 * MS
        assert recv % 100 == 0
    pongs = [line.recv for line in lines if line.frame == b"PONG"]
    assert len(pongs) == int(HOURS * 360)
    assert all(9_990 * MS < b - a < 10_010 * MS for a, b in itertools.pairwise(pongs))


def test_default_options_and_validation() -> None:
    assert parse_options({}) == (7, 2.0, START_NS)
    assert parse_options({"start": "2026-11-24T01:00:00+01:00", "hours": 1}) == (7, 1.0, START_NS)
    with pytest.raises(ValueError, match="unknown generator option"):
        parse_options({"sped": 1})
    with pytest.raises(ValueError, match="seed must be an integer"):
        parse_options({"seed": "7"})
    with pytest.raises(ValueError, match="hours must be"):
        parse_options({"hours": 0})
    with pytest.raises(ValueError, match="time zone"):
        parse_options({"start": "2026-11-24T00:00:00"})


# ------------------------------------------------------------------------------------ frames


def test_the_opening_is_the_gamma_answer_then_the_dump(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    gamma = orjson.loads(lines[0].frame)
    assert isinstance(gamma, list) and len(gamma) == len(MARKETS)
    for market in gamma:
        assert set(market) - GAMMA_KEYS <= {"negRiskMarketID", "groupItemTitle", "feeSchedule"}
        assert len(orjson.loads(market["clobTokenIds"])) == 2 and orjson.loads(market["outcomes"]) == [
            "Yes",
            "No",
        ]
    assert sum(m["negRisk"] for m in gamma) == 4
    assert len({m["negRiskMarketID"] for m in gamma if m["negRisk"]}) == 1
    dump = orjson.loads(lines[1].frame)
    assert isinstance(dump, list) and len(dump) == 2 * len(MARKETS)
    assert all(b["event_type"] == "book" and set(b) == BOOK_KEYS for b in dump)


def test_frame_shapes_are_the_captured_ones(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    kinds: Counter[str] = Counter()
    for _, msg in messages(lines):
        kind = msg["event_type"]
        kinds[kind] += 1
        if kind == "book":
            assert set(msg) == BOOK_KEYS
            # Best levels last: bids ascending, asks descending (§2.2).
            bids = [Decimal(lv["price"]) for lv in msg["bids"]]
            asks = [Decimal(lv["price"]) for lv in msg["asks"]]
            assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
        elif kind == "price_change":
            assert set(msg) == PRICE_CHANGE_KEYS
            assert len(msg["price_changes"]) == 2
            assert all(set(c) == CHANGE_KEYS for c in msg["price_changes"])
        elif kind == "last_trade_price":
            assert set(msg) == LAST_TRADE_KEYS
        elif kind == "best_bid_ask":
            assert set(msg) == BEST_BID_ASK_KEYS
        elif kind == "tick_size_change":
            assert set(msg) == TICK_KEYS
        elif kind == "market_resolved":
            assert set(msg) == RESOLVED_KEYS
        else:
            raise AssertionError(f"unexpected event type {kind}")
        # Numbers are strings, as the venue writes them (§2.2).
        for field in ("price", "size", "best_bid", "best_ask", "timestamp"):
            if field in msg:
                assert isinstance(msg[field], str)
    assert kinds["price_change"] > 1000 and kinds["book"] > 50 and kinds["last_trade_price"] > 25
    assert kinds["best_bid_ask"] > 100 and kinds["tick_size_change"] >= 2 and kinds["market_resolved"] == 1


# ------------------------------------------------------------------------------------ the market


def replay(lines: list[Line]) -> tuple[PolymarketDecoder, list[Any]]:
    dec = PolymarketDecoder(InstrumentRegistry())
    events = []
    for i, line in enumerate(lines):
        events.extend(dec.decode(line.frame, line.recv))
        if i == 0:
            assert len(dec.registry) == 2 * len(MARKETS)  # the first line taught every token
    return dec, events


def test_replay_learns_every_token_and_never_disagrees(sample: tuple[Path, int, list[Line]]) -> None:
    _, count, lines = sample
    dec, events = replay(lines)
    s = dec.stats
    assert (s.frames, s.malformed, s.unknown_channel, s.gaps, s.ignored_changes, s.skipped_instruments) == (
        count,
        0,
        0,
        0,
        0,
        0,
    )
    assert s.control == 1 + sum(line.frame == b"PONG" for line in lines)  # the Gamma answer, the PONGs
    assert not [
        e
        for e in events
        if isinstance(e, Status) and e.status in (StatusKind.BOOK_GAP, StatusKind.BOOK_RESYNC)
    ]
    neg = [o for o in dec.outcomes if o.neg_risk]
    assert len(neg) == 8 and len({o.neg_risk_market_id for o in neg}) == 1
    fees = {str(o.fees.rate) for o in dec.outcomes if o.fees is not None}
    assert fees == {"0", "0.07"}
    for inst in dec.registry:
        assert inst.min_size == Decimal(5) and inst.quote == "pUSD"


def test_tick_size_changes_and_resolution(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    dec, events = replay(lines)
    ticks = [e for e in events if isinstance(e, Status) and e.status is StatusKind.TICK_SIZE_CHANGE]
    assert ticks and all(e.data["new_tick_size"] == 0.001 for e in ticks)
    for e in ticks:
        inst = dec.registry.get("polymarket", e.instrument)
        assert inst is not None and inst.tick_size == Decimal("0.001")
    resolved = [e for e in events if isinstance(e, Status) and e.status is StatusKind.MARKET_RESOLVED]
    assert sorted(e.data["payout"] for e in resolved) == [0.0, 1.0]
    winner = next(e.instrument for e in resolved if e.data["payout"] == 1.0)
    # Pulled to the outcome before it resolved: the winner's last trade was dear.
    last = [e for e in events if isinstance(e, Trade) and e.instrument == winner][-1]
    assert last.price > 0.9
    for e in resolved:
        inst = dec.registry.get("polymarket", e.instrument)
        book = dec.book(e.instrument)
        assert inst is not None and not inst.active
        assert book is not None and book.levels == 0
        # After it, only the emptied book of the token: nothing more about a resolved market.
        after = [x for x in events[events.index(e) + 1 :] if x.instrument == e.instrument]
        assert len(after) == 1 and isinstance(after[0], BookUpdate) and after[0].snapshot
        assert (after[0].bids, after[0].asks) == ((), ())


def test_trades_print_at_the_touch_and_books_mirror(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    dec = PolymarketDecoder(InstrumentRegistry())
    for line in lines[:2]:
        dec.decode(line.frame, line.recv)
    complement = {o.token_id: o.complement for o in dec.outcomes}
    trades = tickers = mirrors = 0
    for line in lines[2:]:
        before = {t: b.top() for t, b in dec.books().items()}
        for e in dec.decode(line.frame, line.recv):
            if isinstance(e, Trade):
                trades += 1
                bid, bid_size, ask, ask_size = before[e.instrument]
                if e.side.value == "buy":
                    assert e.price == ask and ask_size is not None and e.size <= ask_size
                else:
                    assert e.price == bid and bid_size is not None and e.size <= bid_size
            elif isinstance(e, Ticker):
                tickers += 1
                book = dec.book(e.instrument)
                assert book is not None
                bb, _, ba, _ = book.top()
                assert (e.bid, e.ask) == (bb, ba)  # best_bid_ask agrees with the book
        if line.frame == b"PONG":
            # A PONG ends a step: every token's book is then the mirror of its complement's
            # (a YES bid at p is a NO ask at 1 - p, §2.2).
            for token, book in dec.books().items():
                other = dec.book(complement[token] or "")
                assert other is not None
                bids, _ = book.depth()
                _, other_asks = other.depth()
                assert [(round(1 - p, 4), size) for p, size in bids] == other_asks
                mirrors += 1
    assert trades > 25 and tickers > 100 and mirrors > 1000


def test_neg_risk_prices_sum_to_one(sample: tuple[Path, int, list[Line]]) -> None:
    _, _, lines = sample
    feed = PolymarketFeed.create(seed=7, start_ns=START_NS)
    feed.opening(HOURS)
    group = [m for m in feed.markets if m.spec.group is not None]
    for _ in range(2000):
        feed.step()
        assert abs(sum(feed.fair(m) for m in group) - 1.0) < 1e-9
    dec, _ = replay(lines)
    mids = []
    for o in dec.outcomes:
        if o.neg_risk and o.outcome == "Yes":
            book = dec.book(o.token_id)
            assert book is not None
            bb, _, ba, _ = book.top()
            assert bb is not None and ba is not None
            mids.append((bb + ba) / 2)
    assert len(mids) == 4 and 0.85 < sum(mids) < 1.15


def test_generate_and_decode_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pm.rec.gz"
    assert (
        main(["generate", "--venue", "polymarket", "--out", str(out), "--hours", "0.01", "--seed", "3"]) == 0
    )
    capsys.readouterr()
    assert main(["decode", "--venue", "polymarket", str(out)]) == 0
    decoded = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    types = Counter(e["type"] for e in decoded)
    assert types["book"] > 100 and types["ticker"] > 10
    assert all(e["venue"] == "polymarket" for e in decoded)
    by_type: dict[str, set[str]] = defaultdict(set)
    for e in decoded:
        by_type[e["type"]].update(e)
    assert {"bids", "asks", "best_bid", "best_ask", "sequence", "snapshot"} <= by_type["book"]
