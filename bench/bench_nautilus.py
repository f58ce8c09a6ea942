"""tradingd's backtest kernel against NautilusTrader's BacktestEngine (and hftbacktest on L2), the
same work on both sides, each run in a fresh process, interleaved, CPU time, medians.

    pip install -e '.[bench]'        # NautilusTrader 1.221.0 and hftbacktest 2.4.4 (not tradingd deps)
    python bench/bench_nautilus.py [--quotes 500000] [--frames 200000] [--repeat 3] [--rows a,b,c,d,e,f]
                                   [--sample data/deribit-sample.rec.zst] [--json PATH]

Rows (the issue's table):
  a  quotes of one perpetual (`quote.BTC-PERPETUAL`), 1 strategy, an order every 100 quotes;
  b  the same with 4 strategies;
  c  the same, 1 strategy, an order every 10 quotes;
  d  L2 book frames of one perpetual (Deribit `book.BTC-PERPETUAL.100ms`: a snapshot, then changes,
     a fresh snapshot every 1,000 frames), an order every 100 frames AT the best bid: the orders
     fill when the ask comes down to them, and both sides must fill the same ones;
  e  the bundled mixed sample (options tickers, books, trades, the perpetual), orders on the
     perpetual 1% below its last bid (they never fill);
  f  hftbacktest (bench_hftbacktest.py) on the same L2 events as (d), the same strategy.

Combinations (each a column): tradingd parsed (the recording's raw frames through its reader and
decoder, as users run it); tradingd prebuilt (the frames decoded beforehand by the same decoder, the
kernel handed those events; the decoding is reported as setup, not in the figure); tradingd from
the decoded-event cache (`run_tradingd_cache`: the entry written by a first replay in setup,
not timed; the timed replay reads the events from it);
NautilusTrader prebuilt (its data objects built beforehand: its best case, the issue's headline);
NautilusTrader parsed (the same JSON frames turned into its objects with its own public means,
orjson and its constructors, inside the timed part, then `add_data` and `run`).

The strategy, on both sides: count every market event it receives (quotes / tickers, book frames,
trades); every `every` events, cancel its ONE resting order if it is still open (`cancel_order`
on that order, never `cancel_all_orders`) and place one limit buy. Each side counts events seen,
orders placed, cancels confirmed and orders filled; the run FAILS (exit 1) when the two sides'
counts differ. Both have zero latency.

What each engine does that the other does not, and what was done about it:
- Quotes (a-c): NautilusTrader's matching engine keeps an L1 book from every quote and checks the
  resting order against it; tradingd's simulated venue does not fill on quotes (Deribit's `quote`
  channel only feeds the market state), so it never looks at them. The orders sit 1% below the
  bid so neither side fills (asserted); NautilusTrader's extra check is one comparison per quote.
- Books (d): tradingd keeps one book (its decoder's; the simulated venue fills against it, the
  strategy reads the best bid from the `BookUpdate` event). NautilusTrader keeps two: its matching
  engine's, and the one its data engine keeps for the strategy's managed delta subscription,
  where its strategy reads the best bid (the matching engine's book is a `cdef` attribute of the
  engine, out of a strategy's reach): that second book is work tradingd does not do. tradingd
  checks a book for fills only while an order rests on it; NautilusTrader's matching engine
  iterates on every delta batch.
- A cancel that crosses a fill: NautilusTrader's fill reaches its strategy before the frame's
  data does, tradingd's after it (venue reports come back at the next clock step), so at a
  cadence point on the very frame an order filled tradingd sends a cancel that is refused
  (counted as `refused`, not as a cancel); NautilusTrader checks `order.is_open` and sends none.
  The orders placed, cancelled and filled are the same.
- What each is handed: tradingd parsed reads the recording file (plain, or zstd for the sample)
  inside its time; NautilusTrader parsed gets the frames as bytes in memory (read in its setup),
  so reading the file counts against tradingd only.
- Mapping (e): a tradingd `Ticker` (option tickers, the perpetual's ticker) -> one `QuoteTick`
  (a missing side as price 0 size 0); a `BookUpdate` -> one `OrderBookDeltas` (a snapshot: CLEAR
  then ADDs with F_SNAPSHOT; a change: ADD/UPDATE/DELETE per level as Deribit's `new`/`change`/
  `delete`, F_LAST on the last); a `Trade` -> one `TradeTick`; `Status` events (book gaps,
  funding) have no counterpart and are not counted. Every instrument of the sample is a
  `CryptoPerpetual` for NautilusTrader with the instrument's tick and size steps (only the
  perpetual is traded; the type matters for margin only). The venue runs L2_MBP books.
  NautilusTrader parsed maps the JSON frames the same way, frame by frame (it has no Deribit
  adapter's chain check: a change is applied as it comes).
- Ticker fields: tradingd's decoder builds the whole ticker (greeks, IVs, mark, index, funding),
  NautilusTrader's `QuoteTick` holds the top of book only.

Measurement: each (engine, combination, row) runs in a fresh `python` process started by `sh`
(so its peak RSS is its own), `--repeat` times, interleaved (A B C D A B C D ...). The figure is the
median of the child's CPU time (`time.process_time`, around the engine's run only; building inputs
is reported separately as `setup_s`, and what it built is frozen out of the garbage collector's
reach before the clock starts, on every side: `_common.settled`) and events/s = events / median
CPU. Peak RSS is the child's `ru_maxrss`. The ratio is tradingd events/s over the peer's (higher:
tradingd faster).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio
from _common import DERIBIT_SAMPLE, interleaved, median_of, missing_data, run_child, settled

from tradingd.engine import (
    BookUpdate,
    MarketEvent,
    OrderRejected,
    OrderState,
    OrderUpdate,
    Status,
    StatusKind,
    Strategy,
    Subscription,
    Ticker,
    Trade,
)
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model import InstrumentRegistry, OrderBook
from tradingd.engine.store import RecordingReader, RecordingWriter
from tradingd.engine.store.evcache import EventCache

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_478_400 * 1_000_000_000  # 2026-11-24T00:00:00Z
STEP = 100_000_000  # ns between generated frames (Deribit's 100 ms channels)
PERP = "BTC-PERPETUAL"
TICK = 0.5
DEPTH = 20  # levels per side of the generated L2 book
SNAPSHOT_EVERY = 1000  # a fresh snapshot every this many L2 frames
ORDER_SIZE = 10  # USD contracts: every displayed level holds at least this much

ENGINES = ("tradingd", "nautilus", "hftbacktest")
COMBOS = ("parsed", "prebuilt")  # and "cache" for tradingd: run_tradingd_cache
Frames = list[tuple[int, bytes]]


@attrs.frozen
class Row:
    """One line of the issue's table: the data, the strategies, the cadence, the fill mode."""

    key: str
    title: str
    data: str  # "quotes", "l2" or "sample"
    every: int
    strategies: int = 1
    at_bid: bool = False  # True: buy at the best bid (fills); False: 1% below the bid (never)


def make_rows(every_quotes: int = 100, every_fast: int = 10, every_l2: int = 100) -> dict[str, Row]:
    return {
        "a": Row("a", f"quotes, 1 strategy, an order every {every_quotes}", "quotes", every_quotes),
        "b": Row("b", f"quotes, 4 strategies, an order every {every_quotes}", "quotes", every_quotes, 4),
        "c": Row("c", f"quotes, 1 strategy, an order every {every_fast}", "quotes", every_fast),
        "d": Row("d", f"L2 book frames, an order every {every_l2} at the bid", "l2", every_l2, 1, True),
        "e": Row("e", f"bundled mixed sample, an order every {every_quotes} events", "sample", every_quotes),
        "f": Row("f", f"L2 book frames vs hftbacktest, every {every_l2} at the bid", "l2", every_l2, 1, True),
    }


# -- data ------------------------------------------------------------------------------------

_INSTRUMENTS = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "result": [
            {
                "kind": "future",
                "instrument_name": PERP,
                "tick_size": TICK,
                "min_trade_amount": 10.0,
                "contract_size": 10.0,
                "base_currency": "BTC",
                "quote_currency": "USD",
                "settlement_currency": "BTC",
                "settlement_period": "perpetual",
                "instrument_type": "reversed",
                "expiration_timestamp": 32503708800000,
            }
        ],
    }
)


def _notification(channel: str, data: Any) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def quote_frames(n: int, seed: int = 1) -> Frames:
    """`n` Deribit `quote.BTC-PERPETUAL` frames (after the instruments response): a random walk
    of the mid on a 0.5 tick, one every 100 ms."""
    rng = random.Random(seed)
    ticks = 180_000  # 90,000.0
    out: Frames = [(T0 - 1000, _INSTRUMENTS)]
    for i in range(n):
        ticks += rng.choice((-1, 0, 0, 1))
        spread = rng.choice((1, 1, 2))
        ts = T0 + i * STEP
        data = {
            "timestamp": ts // 1_000_000,
            "instrument_name": PERP,
            "best_bid_price": ticks * TICK,
            "best_bid_amount": float(rng.randrange(1, 50) * 10),
            "best_ask_price": (ticks + spread) * TICK,
            "best_ask_amount": float(rng.randrange(1, 50) * 10),
        }
        out.append((ts, _notification(f"quote.{PERP}", data)))
    return out


@attrs.define
class L2Model:
    """The generator's own book (ticks -> size), kept apart from any engine's: the reference the
    test computes expected fills from."""

    bids: dict[int, float] = attrs.Factory(dict)
    asks: dict[int, float] = attrs.Factory(dict)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)


def l2_frames(n: int, seed: int = 2, tops: list[tuple[int, int]] | None = None) -> Frames:
    """`n` Deribit `book.BTC-PERPETUAL.100ms` frames (after the instruments response): a snapshot of
    20 levels a side, then changes (the mid moving one tick: the best level of one side deleted, a
    new best on the other, the depth kept; or 1-2 sizes changed), a fresh snapshot every 1,000
    frames, of a book moved 1 or 2 ticks with new sizes (one that keeps an old level is wrong).
    Never crossed; sizes are multiples of 10 (an order of 10 always fills whole). `tops`, when
    given, receives (best bid ticks, best ask ticks) after each frame."""
    rng = random.Random(seed)
    book = L2Model()
    mid = 180_000
    for k in range(DEPTH):
        book.bids[mid - k] = 10.0 * rng.randrange(1, 30)
        book.asks[mid + 1 + k] = 10.0 * rng.randrange(1, 30)
    out: Frames = [(T0 - 1000, _INSTRUMENTS)]
    change_id = 1000
    channel = f"book.{PERP}.100ms"
    for i in range(n):
        ts = T0 + i * STEP
        prev = change_id
        change_id += 1
        base: dict[str, Any] = {"timestamp": ts // 1_000_000, "instrument_name": PERP, "change_id": change_id}
        if i % SNAPSHOT_EVERY == 0:
            if i:  # as after a resubscription: the book has moved, levels the changes never touched
                shift = rng.choice((-2, -1, 1, 2))
                book.bids = {t + shift: 10.0 * rng.randrange(1, 30) for t in book.bids}
                book.asks = {t + shift: 10.0 * rng.randrange(1, 30) for t in book.asks}
            bids = [["new", t * TICK, s] for t, s in sorted(book.bids.items(), reverse=True)]
            asks = [["new", t * TICK, s] for t, s in sorted(book.asks.items())]
            data = {"type": "snapshot", **base, "bids": bids, "asks": asks}
        else:
            bids, asks = [], []
            r = rng.random()
            bb, ba = book.best_bid(), book.best_ask()
            if r < 0.2 and ba - bb == 1:  # down a tick: the best bid goes, a new best ask at its price
                del book.bids[bb]
                bids.append(["delete", bb * TICK, 0.0])
                low = min(book.bids) - 1
                book.bids[low] = 10.0 * rng.randrange(1, 30)
                bids.append(["new", low * TICK, book.bids[low]])
                book.asks[bb] = 10.0 * rng.randrange(1, 30)
                asks.append(["new", bb * TICK, book.asks[bb]])
                high = max(book.asks)
                del book.asks[high]
                asks.append(["delete", high * TICK, 0.0])
            elif r < 0.4 and ba - bb == 1:  # up a tick
                del book.asks[ba]
                asks.append(["delete", ba * TICK, 0.0])
                high = max(book.asks) + 1
                book.asks[high] = 10.0 * rng.randrange(1, 30)
                asks.append(["new", high * TICK, book.asks[high]])
                book.bids[ba] = 10.0 * rng.randrange(1, 30)
                bids.append(["new", ba * TICK, book.bids[ba]])
                low = min(book.bids)
                del book.bids[low]
                bids.append(["delete", low * TICK, 0.0])
            else:  # sizes change on 1 or 2 levels
                for _ in range(rng.choice((1, 2))):
                    side, levels = (bids, book.bids) if rng.random() < 0.5 else (asks, book.asks)
                    t = rng.choice(list(levels))
                    levels[t] = 10.0 * rng.randrange(1, 30)
                    if not any(x[1] == t * TICK for x in side):
                        side.append(["change", t * TICK, levels[t]])
            data = {"type": "change", **base, "prev_change_id": prev, "bids": bids, "asks": asks}
        out.append((ts, _notification(channel, data)))
        if tops is not None:
            tops.append((book.best_bid(), book.best_ask()))
    return out


def expected_l2_work(tops: Sequence[tuple[int, int]], every: int) -> dict[str, int]:
    """What the row-d strategy must do on frames whose tops (best bid, best ask ticks, after each
    frame) are `tops`, computed from the generator's book alone: at every `every`-th frame the
    resting order is cancelled unless it filled, then a buy is placed at that frame's best bid; an
    order fills at the first later frame whose best ask is at or below its price."""
    placed = cancels = fills = 0
    resting: int | None = None
    for i, (bid, ask) in enumerate(tops, start=1):
        if resting is not None and ask <= resting:
            fills += 1
            resting = None
        if i % every == 0:
            if resting is not None:
                cancels += 1
            resting = bid
            placed += 1
    return {"events": len(tops), "orders": placed, "cancels": cancels, "fills": fills}


def write_frames(frames: Frames, path: Path) -> None:
    with RecordingWriter(path) as w:
        for ts, frame in frames:
            w.write(ts, frame)


def read_frames(path: Path, limit: int | None = None) -> Frames:
    out: Frames = []
    for ts, frame in RecordingReader(path):
        if ts is None:
            continue
        out.append((ts, frame))
        if limit is not None and len(out) > limit:
            break
    return out


# -- tradingd ---------------------------------------------------------------------------------


class BenchStrategy(Strategy):
    """Counts market events; every `every` of them cancels its one resting order (unless it
    filled) and places a limit buy on `target`: at the best bid (`at_bid`, from the target's
    `BookUpdate`) or 1% below the target's last bid (from its `Ticker`)."""

    def __init__(self, name: str, subs: list[Subscription], every: int, target: str, at_bid: bool) -> None:
        super().__init__(name)
        self.subs = subs
        self.every = every
        self.target = target
        self.at_bid = at_bid
        self.count = 0
        self.orders = 0
        self.cancels = 0
        self.refused = 0
        self.fills = 0
        self.bid: float | None = None
        self.resting: str | None = None

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> None:
        cls = event.__class__
        if cls is OrderUpdate:
            assert isinstance(event, OrderUpdate)
            if event.status is OrderState.FILLED and event.client_order_id == self.resting:
                self.fills += 1
                self.resting = None
            return
        if cls is Ticker:
            assert isinstance(event, Ticker)
            if not self.at_bid and event.instrument == self.target:
                self.bid = event.bid
        elif cls is BookUpdate:
            assert isinstance(event, BookUpdate)
            if self.at_bid and event.instrument == self.target:
                self.bid = event.best_bid
        elif cls is not Trade:
            return
        self.count += 1
        if self.count % self.every or self.bid is None:
            return
        if self.resting is not None:
            try:
                await self.ctx.cancel_order(self.resting)
                self.cancels += 1
            except OrderRejected:  # filled on this very frame: its report comes at the next step
                self.refused += 1
                self.fills += 1
            self.resting = None
        price = Decimal(str(self.bid)) if self.at_bid else Decimal(round(self.bid * 0.99 * 2)) / 2
        placed = await self.ctx.buy("deribit", self.target, ORDER_SIZE, price=price)
        self.orders += 1
        self.resting = placed.client_order_id


class PrebuiltDecoder:
    """The Deribit decoder's place for tradingd prebuilt: frame `i`'s events, decoded beforehand,
    are returned as they are; the books are kept from them (a snapshot replaces, a change sets its
    levels, a gap empties and invalidates) so the simulated venue fills against the same books.
    Frames that decoded to no market event (instrument definitions) are decoded again for real:
    the registry learns from them."""

    def __init__(self, registry: InstrumentRegistry, events: Sequence[list[MarketEvent] | None]) -> None:
        from tradingd.connectors.deribit import PLUGIN

        self._real = PLUGIN.decoder(registry)
        self.venue = self._real.venue
        self.registry = registry
        self.stats = self._real.stats
        self.last_unknown_channel: str | None = None
        self.gapped_books = self._real.gapped_books
        self._events = events
        self._i = 0
        self._books: dict[str, OrderBook] = {}

    def decode(self, frame: bytes, ts_local: int) -> list[MarketEvent]:
        i = self._i
        self._i = i + 1
        events = self._events[i]
        if events is None:
            return self._real.decode(frame, ts_local)
        books = self._books
        for ev in events:
            cls = ev.__class__
            if cls is BookUpdate:
                assert isinstance(ev, BookUpdate)
                book = books.get(ev.instrument)
                if book is None:
                    real = self._real.book(ev.instrument)
                    book = books[ev.instrument] = OrderBook(real.quantum if real is not None else 1e-8)
                if ev.snapshot:
                    book.clear()
                    book.valid = True
                book.update(ev.bids, ev.asks)
                book.sequence = ev.sequence
            elif cls is Status:
                assert isinstance(ev, Status)
                if ev.status is StatusKind.BOOK_GAP and (book := books.get(ev.instrument)) is not None:
                    book.clear()
                    book.valid = False
        return events

    def book(self, instrument: str) -> OrderBook | None:
        return self._books.get(instrument)

    def book_instruments(self) -> list[str]:
        return list(self._books)

    def invalidate_books(self) -> None:
        for book in self._books.values():
            book.valid = False


class MemoryFrames:
    """A `FrameSource` over frames in memory (tradingd prebuilt: no file to read)."""

    def __init__(self, path: Path, frames: Frames) -> None:
        self.path = path
        self.size = 0
        self._frames = frames

    @property
    def bytes_read(self) -> int:
        return 0

    @property
    def bad_lines(self) -> int:
        return 0

    def __iter__(self) -> Iterator[tuple[int | None, bytes]]:
        return iter(self._frames)


class PrebuiltPlugin:
    """Deribit's plugin with the decoder above and frames from memory (`format="prebuilt"`)."""

    data_formats = ("prebuilt",)

    def __init__(self, events: Sequence[list[MarketEvent] | None], frames: Frames) -> None:
        from tradingd.connectors.deribit import PLUGIN

        self._plugin = PLUGIN
        self.name = PLUGIN.name
        self.Settings = PLUGIN.Settings
        self._events = events
        self._frames = frames

    def decoder(self, registry: InstrumentRegistry) -> PrebuiltDecoder:
        return PrebuiltDecoder(registry, self._events)

    def fee_model(self, overrides: Any) -> Any:
        return self._plugin.fee_model(overrides)

    def open_data(self, path: Path, fmt: str) -> MemoryFrames:
        return MemoryFrames(path, self._frames)


def predecode(frames: Frames) -> tuple[list[list[MarketEvent] | None], Frames, InstrumentRegistry]:
    """Every frame through a fresh Deribit decoder: its events (None for a frame of no market
    event: it is decoded again at replay), the frames to hand the kernel (empty bytes where the
    events stand in for them), and the instruments learned."""
    from tradingd.connectors.deribit import PLUGIN

    registry = InstrumentRegistry()
    dec = PLUGIN.decoder(registry)
    events: list[list[MarketEvent] | None] = []
    kept: Frames = []
    for ts, frame in frames:
        try:
            got = dec.decode(frame, ts)
        except Exception:  # a malformed frame: decoded (and counted) again at replay
            got = []
        if got:
            events.append(got)
            kept.append((ts, b""))
        else:
            events.append(None)
            kept.append((ts, frame))
    return events, kept, registry


def _strategies(row: Row, instruments: Sequence[str]) -> list[BenchStrategy]:
    if row.data == "sample":
        subs = [Subscription("deribit", s, {"ticker", "book", "trades"}) for s in instruments]
    elif row.data == "l2":
        subs = [Subscription("deribit", PERP, {"book"})]
    else:
        subs = [Subscription("deribit", PERP, {"ticker"})]
    return [BenchStrategy(f"bench{k}", subs, row.every, PERP, row.at_bid) for k in range(row.strategies)]


def sample_instruments(path: Path, limit: int | None) -> list[str]:
    """The instruments with market events in the first `limit` frames of the sample."""
    events, _, _ = predecode(read_frames(path, limit))
    names = {
        ev.instrument for got in events if got for ev in got if ev.__class__ in (Ticker, BookUpdate, Trade)
    }
    return sorted(names)


def run_tradingd(
    row: Row, combo: str, path: Path, limit: int | None, instruments: Sequence[str]
) -> dict[str, Any]:
    """One run of the kernel: {cpu_s, setup_s, events, orders, cancels, refused, fills, and the
    engine's own account of orders, fills, cancels and orders left resting}."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run_tradingd(row, combo, path, limit, instruments, Path(tmp))


def _run_tradingd(
    row: Row, combo: str, path: Path, limit: int | None, instruments: Sequence[str], tmp: Path
) -> dict[str, Any]:
    from tradingd.connectors.deribit import PLUGIN

    t0 = time.process_time()
    plugins: dict[str, Any] = {"deribit": PLUGIN}
    source = DataSource("deribit", path)
    if combo == "prebuilt":
        events, kept, _ = predecode(read_frames(path, limit))
        plugins = {"deribit": PrebuiltPlugin(events, kept)}
        source = DataSource("deribit", path, format="prebuilt")
    elif limit is not None:  # a part of the sample: that part as its own recording
        part = tmp / "part.rec"
        write_frames(read_frames(path, limit), part)
        source = DataSource("deribit", part)
    cache = None
    if combo == "cache":
        # The entry is written by a first replay in setup (not timed), as a user's first
        # backtest of the data writes it; the timed run reads the events from it.
        cache = EventCache(tmp / "event-cache", write_on=1)  # this replay writes (not only marks)
        writer = BacktestKernel(
            plugins,
            [source],
            _strategies(row, instruments),
            BacktestSettings(latency_ms=0),
            event_cache=cache,
        )
        trio.run(writer.run)
        assert writer.data_path == "frames, cache written", writer.data_path
    strategies = _strategies(row, instruments)
    kernel = BacktestKernel(plugins, [source], strategies, BacktestSettings(latency_ms=0), event_cache=cache)
    setup = time.process_time() - t0
    settled()
    t0 = time.process_time()
    result = trio.run(kernel.run)
    cpu = time.process_time() - t0
    if cache is not None:
        assert kernel.data_path == "cache", kernel.data_path
    # The engine's own account of the same work (not the strategies' counters): orders sent,
    # orders filled, orders still resting at the venue at the end; the rest were cancelled.
    sent = sum(r.orders for r in result.strategies.values())
    filled = sum(r.filled_orders for r in result.strategies.values())
    resting = sum(len(v) for sim in kernel.sims.values() for v in sim.resting.values())
    engine = {"orders": sent, "fills": filled, "cancels": sent - filled - resting, "resting": resting}
    return {"cpu_s": cpu, "setup_s": setup, **_sum_counts(strategies), "engine": engine}


def _sum_counts(strategies: Sequence[Any]) -> dict[str, int]:
    return {
        "events": sum(s.count for s in strategies),
        "orders": sum(s.orders for s in strategies),
        "cancels": sum(s.cancels for s in strategies),
        "fills": sum(s.fills for s in strategies),
        "refused": sum(getattr(s, "refused", 0) for s in strategies),
    }


def run_tradingd_cache(row: Row, path: Path, limit: int | None, instruments: Sequence[str]) -> dict[str, Any]:
    """tradingd from the decoded-event cache: the row's events read from a cache entry written
    by a first replay in setup (a later backtest of the same data, or a sweep's trial)."""
    return run_tradingd(row, "cache", path, limit, instruments)


# -- NautilusTrader ---------------------------------------------------------------------------


def nautilus_available() -> str | None:
    """The installed NautilusTrader version, or None."""
    try:
        import nautilus_trader
    except ImportError:
        return None
    return str(nautilus_trader.__version__)


def _nt(module: str) -> Any:
    # Through importlib: NautilusTrader's compiled modules carry no type stubs, and it is not
    # installed where tradingd's side runs in CI.
    return importlib.import_module(f"nautilus_trader.{module}")


def _decimals(x: float | Decimal | str) -> int:
    d = Decimal(str(x)).normalize()
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


class NTBuilder:
    """Builds NautilusTrader's data objects: from tradingd's decoded events (row e prebuilt) or
    from the JSON frames (every other case), the mapping in the module docstring."""

    def __init__(self, registry: InstrumentRegistry) -> None:
        data = _nt("model.data")
        enums = _nt("model.enums")
        ids = _nt("model.identifiers")
        objects = _nt("model.objects")
        self.QuoteTick, self.TradeTick = data.QuoteTick, data.TradeTick
        self.Delta, self.Deltas, self.BookOrder = data.OrderBookDelta, data.OrderBookDeltas, data.BookOrder
        self.Price, self.Quantity = objects.Price, objects.Quantity
        self.BUY, self.SELL = enums.OrderSide.BUY, enums.OrderSide.SELL
        self.ADD, self.UPDATE, self.DELETE = (
            enums.BookAction.ADD,
            enums.BookAction.UPDATE,
            enums.BookAction.DELETE,
        )
        self.BUYER, self.SELLER = enums.AggressorSide.BUYER, enums.AggressorSide.SELLER
        self.F_LAST, self.F_SNAPSHOT = int(enums.RecordFlag.F_LAST), int(enums.RecordFlag.F_SNAPSHOT)
        self.TradeId = ids.TradeId
        cur = _nt("model.currencies")
        self.instruments: dict[str, Any] = {}
        self.precision: dict[str, tuple[int, int]] = {}
        venue = ids.Venue("DERIBIT")
        for inst in registry:
            # Precisions: the finest tick of the instrument (Deribit options have two), its size step.
            pp = max(_decimals(t) for t in (inst.tick_size, *(t for _, t in inst.tick_size_steps)))
            sp = _decimals(inst.min_size)
            nt_inst = _nt("model.instruments").CryptoPerpetual(
                instrument_id=ids.InstrumentId(ids.Symbol(inst.symbol), venue),
                raw_symbol=ids.Symbol(inst.symbol),
                base_currency=cur.BTC,
                quote_currency=cur.USD,
                settlement_currency=cur.BTC,
                is_inverse=inst.symbol == PERP,
                price_precision=pp,
                size_precision=sp,
                price_increment=objects.Price(float(inst.tick_size), pp),
                size_increment=objects.Quantity(10.0**-sp, sp),
                ts_event=0,
                ts_init=0,
                margin_init=Decimal(0),
                margin_maint=Decimal(0),
                maker_fee=Decimal(0),
                taker_fee=Decimal(0),
            )
            self.instruments[inst.symbol] = nt_inst
            self.precision[inst.symbol] = (pp, sp)

    # from tradingd's events (row e, prebuilt)
    def from_events(self, events: Sequence[list[MarketEvent] | None]) -> list[Any]:
        out: list[Any] = []
        for got in events:
            for ev in got or ():
                cls = ev.__class__
                if cls is Ticker:
                    assert isinstance(ev, Ticker)
                    out.append(
                        self.quote(
                            ev.instrument,
                            ev.bid,
                            ev.bid_size,
                            ev.ask,
                            ev.ask_size,
                            ev.ts_exchange,
                            ev.ts_local,
                        )
                    )
                elif cls is BookUpdate:
                    assert isinstance(ev, BookUpdate)
                    out.append(
                        self.deltas_from_levels(
                            ev.instrument, ev.snapshot, ev.bids, ev.asks, ev.ts_exchange, ev.ts_local
                        )
                    )
                elif cls is Trade:
                    assert isinstance(ev, Trade)
                    side = "buy" if ev.side.value == "buy" else "sell"
                    out.append(
                        self.trade(
                            ev.instrument, ev.price, ev.size, side, ev.trade_id, ev.ts_exchange, ev.ts_local
                        )
                    )
        return out

    def quote(
        self,
        inst: str,
        bid: float | None,
        bsz: float | None,
        ask: float | None,
        asz: float | None,
        ts: int | None,
        ts_init: int,
    ) -> Any:
        pp, sp = self.precision[inst]
        P, Q = self.Price, self.Quantity
        return self.QuoteTick(
            self.instruments[inst].id,
            P(bid or 0.0, pp),
            P(ask or 0.0, pp),
            Q(bsz or 0.0, sp),
            Q(asz or 0.0, sp),
            ts or ts_init,
            ts_init,
        )

    def trade(
        self, inst: str, price: float, size: float, side: str, trade_id: str, ts: int | None, ts_init: int
    ) -> Any:
        pp, sp = self.precision[inst]
        return self.TradeTick(
            self.instruments[inst].id,
            self.Price(price, pp),
            self.Quantity(size, sp),
            self.BUYER if side == "buy" else self.SELLER,
            self.TradeId(str(trade_id)),
            ts or ts_init,
            ts_init,
        )

    def deltas_from_levels(
        self,
        inst: str,
        snapshot: bool,
        bids: Sequence[tuple[float, float]],
        asks: Sequence[tuple[float, float]],
        ts: int | None,
        ts_init: int,
    ) -> Any:
        """tradingd's levels (size 0: delete) -> deltas. Without Deribit's action names an
        existing level's new size is an UPDATE (NautilusTrader's L2 book treats ADD and UPDATE of a
        price level alike)."""
        levels = [(self.BUY, p, s) for p, s in bids] + [(self.SELL, p, s) for p, s in asks]
        actions = [
            (side, self.DELETE if s <= 0 else (self.ADD if snapshot else self.UPDATE), p, s)
            for side, p, s in levels
        ]
        return self._deltas(inst, snapshot, actions, ts or ts_init, ts_init)

    def _deltas(
        self,
        inst: str,
        snapshot: bool,
        actions: Sequence[tuple[Any, Any, float, float]],
        ts: int,
        ts_init: int,
    ) -> Any:
        iid = self.instruments[inst].id
        pp, sp = self.precision[inst]
        P, Q, BO, D = self.Price, self.Quantity, self.BookOrder, self.Delta
        flag = self.F_SNAPSHOT if snapshot else 0
        out = [D.clear(iid, 0, ts, ts_init)] if snapshot else []
        for side, action, p, s in actions:
            out.append(D(iid, action, BO(side, P(p, pp), Q(s, sp), 0), flag, 0, ts, ts_init))
        if not out:
            # A change of no level: tradingd still delivers its (empty) BookUpdate, so
            # NautilusTrader gets one batch too: the delete of a level that is not there.
            out.append(D(iid, self.DELETE, BO(self.BUY, P(0.0, pp), Q(0.0, sp), 0), 0, 0, ts, ts_init))
        last = out[-1]
        out[-1] = D(iid, last.action, last.order, last.flags | self.F_LAST, 0, ts, ts_init)
        return self.Deltas(iid, out)

    # from the JSON frames (NautilusTrader parsed; prebuilt of rows a-d)
    def from_frames(self, frames: Frames) -> list[Any]:
        loads = orjson.loads
        out: list[Any] = []
        actions = {"new": self.ADD, "change": self.UPDATE, "delete": self.DELETE}
        BUY, SELL = self.BUY, self.SELL
        for ts_init, frame in frames:
            msg = loads(frame)
            params = msg.get("params")
            if params is None:
                continue
            channel: str = params["channel"]
            d = params["data"]
            if channel.startswith(("quote.", "ticker.")):
                inst = d["instrument_name"]
                out.append(
                    self.quote(
                        inst,
                        d.get("best_bid_price"),
                        d.get("best_bid_amount"),
                        d.get("best_ask_price"),
                        d.get("best_ask_amount"),
                        d["timestamp"] * 1_000_000,
                        ts_init,
                    )
                )
            elif channel.startswith("book."):
                snapshot = d["type"] == "snapshot"
                acts = [(BUY, actions[a], p, s) for a, p, s in d["bids"]] + [
                    (SELL, actions[a], p, s) for a, p, s in d["asks"]
                ]
                out.append(
                    self._deltas(d["instrument_name"], snapshot, acts, d["timestamp"] * 1_000_000, ts_init)
                )
            elif channel.startswith("trades."):
                for t in d:
                    out.append(
                        self.trade(
                            t["instrument_name"],
                            t["price"],
                            t["amount"],
                            t["direction"],
                            t["trade_id"],
                            t["timestamp"] * 1_000_000,
                            ts_init,
                        )
                    )
        return out


def _nt_engine(builder: NTBuilder, book_type: str) -> Any:
    engine_mod = _nt("backtest.engine")
    config = _nt("config")
    enums = _nt("model.enums")
    ids = _nt("model.identifiers")
    cur = _nt("model.currencies")
    engine = engine_mod.BacktestEngine(
        engine_mod.BacktestEngineConfig(
            trader_id=ids.TraderId("BENCH-001"), logging=config.LoggingConfig(bypass_logging=True)
        )
    )
    venue = ids.Venue("DERIBIT")
    engine.add_venue(
        venue=venue,
        oms_type=enums.OmsType.NETTING,
        account_type=enums.AccountType.MARGIN,
        base_currency=None,
        starting_balances=[
            _nt("model.objects").Money(1_000_000, cur.BTC),
            _nt("model.objects").Money(1_000_000_000, cur.USD),
        ],
        book_type=getattr(enums.BookType, book_type),
    )
    for inst in builder.instruments.values():
        engine.add_instrument(inst)
    return engine


def _nt_strategy_class() -> Any:
    config_mod = _nt("config")
    StrategyConfig: Any = config_mod.StrategyConfig
    NTStrategy: Any = _nt("trading.strategy").Strategy
    OrderSide = _nt("model.enums").OrderSide

    class CounterConfig(StrategyConfig, frozen=True):  # type: ignore[misc, call-arg]
        every: int = 100
        at_bid: bool = False
        kinds: str = "quotes"

    class NTCounter(NTStrategy):  # type: ignore[misc]
        """BenchStrategy's twin (module docstring)."""

        def __init__(self, config: CounterConfig) -> None:
            super().__init__(config)
            self.every = config.every
            self.at_bid = config.at_bid
            self.kinds = config.kinds
            self.count = self.orders = self.cancels = self.fills = 0
            self.bid: float | None = None
            self.resting: Any = None
            self.target: Any = None
            self.watch: list[Any] = []

        def on_start(self) -> None:
            for iid in self.watch:
                if self.kinds in ("quotes", "sample"):
                    self.subscribe_quote_ticks(iid)
                if self.kinds in ("l2", "sample"):
                    # Row d's strategy reads the best bid from the book the data engine keeps for
                    # a managed subscription (the matching engine's own is not reachable).
                    self.subscribe_order_book_deltas(iid, managed=self.at_bid and iid == self.target.id)
                if self.kinds == "sample":
                    self.subscribe_trade_ticks(iid)

        def on_quote_tick(self, tick: Any) -> None:
            if not self.at_bid and tick.instrument_id == self.target.id:
                self.bid = float(tick.bid_price)
            self._tick()

        def on_trade_tick(self, tick: Any) -> None:
            self._tick()

        def on_order_book_deltas(self, deltas: Any) -> None:
            if self.at_bid and deltas.instrument_id == self.target.id:
                p = self.cache.order_book(self.target.id).best_bid_price()
                self.bid = None if p is None else float(p)
            self._tick()

        def _tick(self) -> None:
            self.count += 1
            if self.count % self.every or self.bid is None or (not self.at_bid and self.bid <= 0):
                return
            if self.resting is not None and self.resting.is_open:
                self.cancel_order(self.resting)
            price = self.bid if self.at_bid else round(self.bid * 0.99 * 2) / 2
            order = self.order_factory.limit(
                instrument_id=self.target.id,
                order_side=OrderSide.BUY,
                quantity=self.target.make_qty(ORDER_SIZE),
                price=self.target.make_price(price),
            )
            self.submit_order(order)
            self.orders += 1
            self.resting = order

        def on_order_canceled(self, event: Any) -> None:
            self.cancels += 1

        def on_order_filled(self, event: Any) -> None:
            order = self.cache.order(event.client_order_id)
            if order is not None and order.is_closed:
                self.fills += 1

    return CounterConfig, NTCounter


def run_nautilus(row: Row, combo: str, path: Path, limit: int | None) -> dict[str, Any]:
    t0 = time.process_time()
    frames = read_frames(path, limit)
    events, _, registry = predecode(frames) if row.data == "sample" else (None, None, _registry_of(frames))
    builder = NTBuilder(registry)
    data: list[Any] | None = None
    if combo == "prebuilt":
        data = builder.from_events(events) if events is not None else builder.from_frames(frames)
    book_type = "L1_MBP" if row.data == "quotes" else "L2_MBP"
    engine = _nt_engine(builder, book_type)
    CounterConfig, NTCounter = _nt_strategy_class()
    kinds = row.data
    target = builder.instruments[PERP]
    for k in range(row.strategies):
        s = NTCounter(CounterConfig(every=row.every, at_bid=row.at_bid, kinds=kinds, order_id_tag=f"{k:03d}"))
        s.target = target
        s.watch = [i.id for i in builder.instruments.values()] if kinds == "sample" else [target.id]
        engine.add_strategy(s)
    if data is not None:
        engine.add_data(data)
    setup = time.process_time() - t0
    settled()
    t0 = time.process_time()
    if data is None:  # parsed: the objects from the frames, inside the time
        engine.add_data(builder.from_frames(frames))
    engine.run()
    cpu = time.process_time() - t0
    counts = _sum_counts(engine.trader.strategies())
    engine.dispose()
    return {"cpu_s": cpu, "setup_s": setup, **counts}


def _registry_of(frames: Frames) -> InstrumentRegistry:
    """The instruments of a generated file (its first frame), as tradingd's decoder learns them."""
    from tradingd.connectors.deribit import PLUGIN

    registry = InstrumentRegistry()
    PLUGIN.decoder(registry).decode(frames[0][1], frames[0][0])
    return registry


# -- the child: one run in a fresh process ----------------------------------------------------


def child(args: argparse.Namespace) -> None:
    configure_logging("error", "json")
    rows = make_rows(args.every_quotes, args.every_fast, args.every_l2)
    row = rows[args.row]
    path = Path(args.data)
    limit = args.limit if args.limit else None
    if args.engine == "tradingd":
        instruments = json.loads(args.instruments) if args.instruments else []
        if args.combo == "cache":
            out = run_tradingd_cache(row, path, limit, instruments)
        else:
            out = run_tradingd(row, args.combo, path, limit, instruments)
    elif args.engine == "nautilus":
        out = run_nautilus(row, args.combo, path, limit)
    else:
        import bench_hftbacktest

        out = bench_hftbacktest.run_hftbacktest(row, args.combo, path, limit)
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(out))


# -- the parent: data, interleaved children, the table ------------------------------------------


def jobs_for(row: Row, have_nautilus: bool, have_hbt: bool) -> list[tuple[str, str]]:
    """(engine, combination) pairs measured for a row."""
    jobs = [("tradingd", "parsed"), ("tradingd", "prebuilt"), ("tradingd", "cache")]
    if row.key == "f":
        if have_hbt:
            jobs.append(("hftbacktest", "prebuilt"))
    elif have_nautilus:
        jobs += [("nautilus", "prebuilt"), ("nautilus", "parsed")]
    return jobs


def summarize(
    runs: dict[tuple[str, str], list[dict[str, Any]]], strategies: int = 1
) -> dict[str, dict[str, Any]]:
    """Per (engine, combination): the median CPU time, events/s from it (events of the data:
    the events the strategies saw over their number), median setup and peak RSS, the work counts
    (identical across repetitions, or the run fails), all CPU times."""
    out: dict[str, dict[str, Any]] = {}
    for (engine, combo), got in runs.items():
        counts = {k: got[0][k] for k in ("events", "orders", "cancels", "fills")}
        for r in got[1:]:
            if any(r[k] != v for k, v in counts.items()):
                raise SystemExit(f"{engine} {combo}: the work differs between repetitions: {got}")
        cpu = median_of([r["cpu_s"] for r in got])
        out[f"{engine} {combo}"] = {
            **counts,
            "refused": got[0].get("refused", 0),
            "cpu_s": cpu,
            "events_per_s": counts["events"] / strategies / cpu if cpu > 0 else 0.0,
            "setup_s": median_of([r["setup_s"] for r in got]),
            "maxrss_mb": median_of([r["maxrss_kb"] for r in got]) / 1024,
            "cpu_all_s": [r["cpu_s"] for r in got],
        }
    return out


def check_same_work(row: Row, figures: dict[str, dict[str, Any]]) -> list[str]:
    """Every side's events, orders, cancels and fills equal tradingd parsed's: a list of the
    differences (empty when the work is the same)."""
    ref = figures["tradingd parsed"]
    bad = []
    for name, f in figures.items():
        diff = {k: (ref[k], f[k]) for k in ("events", "orders", "cancels", "fills") if f[k] != ref[k]}
        if diff:
            bad.append(f"row {row.key}: {name} differs from tradingd parsed: {diff}")
    return bad


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    def r(a: str, b: str) -> float | None:
        if a in figures and b in figures and figures[b]["events_per_s"] > 0:
            return float(figures[a]["events_per_s"] / figures[b]["events_per_s"])
        return None

    peer = "nautilus" if "nautilus prebuilt" in figures else "hftbacktest"
    pairs = {
        "tradingd parsed / peer prebuilt (headline)": r("tradingd parsed", f"{peer} prebuilt"),
        "tradingd parsed / peer parsed": r("tradingd parsed", f"{peer} parsed"),
        "tradingd prebuilt / peer prebuilt": r("tradingd prebuilt", f"{peer} prebuilt"),
        "tradingd cache / peer prebuilt": r("tradingd cache", f"{peer} prebuilt"),
    }
    return {k: v for k, v in pairs.items() if v is not None}


def print_row(row: Row, figures: dict[str, dict[str, Any]], ratio: dict[str, float]) -> None:
    print(f"\nrow {row.key}: {row.title}")
    print(
        f"{'side':<22} {'events':>9} {'orders':>7} {'cancels':>7} {'fills':>6} {'cpu s (median)':>15} "
        f"{'events/s':>11} {'setup s':>8} {'peak MB':>8}  cpu s of each run"
    )
    for name, f in figures.items():
        print(
            f"{name:<22} {f['events']:>9,} {f['orders']:>7,} {f['cancels']:>7,} {f['fills']:>6,} "
            f"{f['cpu_s']:>15.3f} {f['events_per_s']:>11,.0f} {f['setup_s']:>8.2f} {f['maxrss_mb']:>8.0f}  "
            + " ".join(f"{x:.3f}" for x in f["cpu_all_s"])
        )
    for k, v in ratio.items():
        print(f"ratio {k}: {v:.2f}")


def hftbacktest_available() -> str | None:
    """The installed hftbacktest version, or None."""
    try:
        hftbacktest = importlib.import_module("hftbacktest")  # untyped, and an optional extra
    except ImportError:
        return None
    return str(getattr(hftbacktest, "__version__", "2.x"))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotes", type=int, default=500_000, help="quotes in rows a-c")
    ap.add_argument("--frames", type=int, default=200_000, help="L2 book frames in rows d and f")
    ap.add_argument("--sample", help="row e's data (default: data/deribit-sample.rec.zst)")
    ap.add_argument("--sample-frames", type=int, default=0, help="row e: only the first N frames (0: all)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side, interleaved; the median counts")
    ap.add_argument("--rows", default="a,b,c,d,e,f")
    ap.add_argument("--every-quotes", type=int, default=100)
    ap.add_argument("--every-fast", type=int, default=10)
    ap.add_argument("--every-l2", type=int, default=100)
    ap.add_argument("--json", help="write the figures there (bench/run_all.py reads them)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--combo", help=argparse.SUPPRESS)
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--instruments", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    rows = make_rows(args.every_quotes, args.every_fast, args.every_l2)
    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in rows]
    if unknown:
        ap.error(f"--rows: unknown row(s) {', '.join(unknown)} (known: {', '.join(rows)})")
    selected = [rows[k] for k in keys]
    sample = Path(args.sample) if args.sample else DERIBIT_SAMPLE
    if any(row.data == "sample" for row in selected):  # checked before any work: one line, exit 2
        instead = None if args.sample else "give --sample PATH"
        missing = missing_data("bench/bench_nautilus.py", sample, instead=instead)
        if missing is not None:
            print(missing, file=sys.stderr)
            return 2
    configure_logging("error", "json")
    nt_version, hbt_version = nautilus_available(), hftbacktest_available()
    print(
        f"NautilusTrader {nt_version or 'not installed'}, hftbacktest {hbt_version or 'not installed'}; "
        f"median of {args.repeat} interleaved runs, each in a fresh process; CPU time of the run only"
    )
    if nt_version is None or hbt_version is None:
        print("the peers are missing: pip install -e '.[bench]' (tradingd's side runs alone)")
    report: dict[str, Any] = {
        "nautilus_version": nt_version,
        "hftbacktest_version": hbt_version,
        "repeat": args.repeat,
        "rows": {},
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[str, Path] = {}
        for row in selected:
            if row.data in paths:
                continue
            if row.data == "quotes":
                paths["quotes"] = Path(tmp) / "quotes.rec"
                write_frames(quote_frames(args.quotes), paths["quotes"])
            elif row.data == "l2":
                paths["l2"] = Path(tmp) / "l2.rec"
                write_frames(l2_frames(args.frames), paths["l2"])
            else:
                paths["sample"] = sample
        for row in selected:
            path = paths[row.data]
            limit = args.sample_frames if row.data == "sample" and args.sample_frames else 0
            instruments = sample_instruments(path, limit or None) if row.data == "sample" else []
            jobs = jobs_for(row, nt_version is not None, hbt_version is not None)
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {j: [] for j in jobs}
            for _, (engine, combo) in interleaved(jobs, args.repeat):
                argv_child = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--child",
                    "--engine",
                    engine,
                    "--combo",
                    combo,
                    "--row",
                    row.key,
                    "--data",
                    str(path),
                    "--limit",
                    str(limit),
                    "--instruments",
                    json.dumps(instruments),
                    "--every-quotes",
                    str(args.every_quotes),
                    "--every-fast",
                    str(args.every_fast),
                    "--every-l2",
                    str(args.every_l2),
                ]
                runs[(engine, combo)].append(run_child(argv_child))
            figures = summarize(runs, row.strategies)
            failures += check_same_work(row, figures)
            ratio = ratios(figures)
            print_row(row, figures, ratio)
            report["rows"][row.key] = {"title": row.title, "figures": figures, "ratios": ratio}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for f in failures:
        print("FAILED, not the same work: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
