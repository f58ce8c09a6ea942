"""Row f of bench_nautilus.py: hftbacktest (numba strategy, Rust engine) on the same L2 frames as
row d, with the same strategy: count frames; every `every` frames, cancel the one resting order
unless it filled, and place a limit buy of 10 at the best bid (fills when the ask comes down to it).

    python bench/bench_nautilus.py --rows f      # this side and tradingd's, interleaved

What hftbacktest is handed: its own event array (numpy, `event_dtype`) built beforehand from the
JSON frames (the building is the run's setup; hftbacktest has no JSON path of its own: its
users convert data to these arrays offline). A snapshot frame is a DEPTH_CLEAR_EVENT per side
(up to the data's farthest price) and a DEPTH_SNAPSHOT_EVENT per level; a change frame is one
DEPTH_EVENT per level (size 0: delete).
Zero latencies (`constant_order_latency(0, 0)`, local time = exchange time), no fees, the
no-partial-fill exchange (an order of 10 against levels of at least 10: whole fills, as on the
other sides), the risk-averse queue model (it matters for trades only; there are none here).
The strategy steps one frame at a time with `elapse(100 ms)` (the generated frames are exactly
100 ms apart), so a frame is an event, as for the other engines. The numba strategy is compiled
on a small array first (setup); the timed part is the compiled loop over the whole data.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import orjson
from _common import settled
from bench_nautilus import ORDER_SIZE, STEP, TICK, Frames, Row, read_frames

__all__ = ["events_of", "run_hftbacktest"]


def events_of(frames: Frames) -> tuple[Any, int]:
    """hftbacktest's event array for Deribit `book.X.100ms` frames (module docstring), and the
    number of book frames in it."""
    np = importlib.import_module("numpy")
    t = importlib.import_module("hftbacktest.types")
    common = t.EXCH_EVENT | t.LOCAL_EVENT
    buy, sell = common | t.BUY_EVENT, common | t.SELL_EVENT
    rows: list[tuple[int, int, int, float, float, int, int, float]] = []
    # A no-op event (a delete of a level that is not there) a step before the first frame and
    # a step after the last: `elapse` starts from the first event's time, and reports the end of
    # the data when it reaches the last, so these make every frame one `elapse(step)` of its own.
    noop = t.DEPTH_EVENT | buy
    first = True
    last_ts = 0
    books = 0
    books_data = []
    for ts_local, frame in frames:
        params = orjson.loads(frame).get("params")
        if params is not None and params["channel"].startswith("book."):
            books_data.append((ts_local, params["data"]))
    # A snapshot clears each side up to a price (hftbacktest walks the ticks in between): up to
    # the farthest price of the whole data, so nothing of the previous book is left.
    low = min((p for _, d in books_data for _, p, _ in d["bids"]), default=0.0)
    high = max((p for _, d in books_data for _, p, _ in d["asks"]), default=0.0)
    for ts_local, d in books_data:
        books += 1
        ts = last_ts = ts_local  # feed latency 0: the exchange time is the receive time
        if first:
            rows.append((noop, ts - STEP, ts - STEP, 1.0, 0.0, 0, 0, 0.0))
            first = False
        if d["type"] == "snapshot":
            rows.append((t.DEPTH_CLEAR_EVENT | buy, ts, ts, float(low), 0.0, 0, 0, 0.0))
            rows.append((t.DEPTH_CLEAR_EVENT | sell, ts, ts, float(high), 0.0, 0, 0, 0.0))
            kind = t.DEPTH_SNAPSHOT_EVENT
        else:
            kind = t.DEPTH_EVENT
        for _, p, s in d["bids"]:
            rows.append((kind | buy, ts, ts, float(p), float(s), 0, 0, 0.0))
        for _, p, s in d["asks"]:
            rows.append((kind | sell, ts, ts, float(p), float(s), 0, 0, 0.0))
    rows.append((noop, last_ts + STEP, last_ts + STEP, 1.0, 0.0, 0, 0, 0.0))
    return np.array(rows, dtype=t.event_dtype), books


def _strategy() -> Any:
    numba = importlib.import_module("numba")
    hbt_mod = importlib.import_module("hftbacktest")
    GTC, LIMIT, FILLED, NEW = hbt_mod.GTC, hbt_mod.LIMIT, hbt_mod.FILLED, hbt_mod.NEW

    @numba.njit  # type: ignore[untyped-decorator]
    def loop(hbt: Any, every: int, step: int, size: float, frames: int) -> tuple[int, int, int, int]:
        count = orders = cancels = fills = 0
        resting = 0  # the order id resting, 0: none
        next_id = 1
        # `frames` bounds the loop: past its data, hftbacktest's clock runs on while orders rest.
        while count < frames and hbt.elapse(step) == 0:
            count += 1
            if resting != 0:
                o = hbt.orders(0).get(resting)
                if o is not None and o.status == FILLED:
                    fills += 1
                    resting = 0
            if count % every:
                continue
            bid = hbt.depth(0).best_bid
            if resting != 0:
                o = hbt.orders(0).get(resting)
                if o is not None and o.status == NEW:
                    hbt.cancel(0, resting, False)
                    cancels += 1
                resting = 0
            hbt.clear_inactive_orders(0)
            hbt.submit_buy_order(0, next_id, bid, size, GTC, LIMIT, False)
            resting = next_id
            next_id += 1
            orders += 1
        if resting != 0:
            o = hbt.orders(0).get(resting)
            if o is not None and o.status == FILLED:
                fills += 1
        return count, orders, cancels, fills

    return loop


def _backtest(data: Any) -> Any:
    h = importlib.import_module("hftbacktest")
    asset = (
        h.BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(TICK)
        .lot_size(float(ORDER_SIZE))
        .last_trades_capacity(0)
    )
    return h.HashMapMarketDepthBacktest([asset])


def run_hftbacktest(row: Row, combo: str, path: Path, limit: int | None) -> dict[str, Any]:
    """One run: {cpu_s, setup_s, events, orders, cancels, fills}."""
    if combo != "prebuilt":
        raise ValueError("hftbacktest runs from its prebuilt event arrays only")
    t0 = time.process_time()
    frames = read_frames(path, limit)
    data, books = events_of(frames)
    loop = _strategy()
    warm_data, warm_books = events_of(frames[:300])
    warm = _backtest(warm_data)
    loop(warm, row.every, STEP, float(ORDER_SIZE), warm_books)  # numba compiles here, not in the timed run
    warm.close()
    hbt = _backtest(data)
    setup = time.process_time() - t0
    settled()
    t0 = time.process_time()
    count, orders, cancels, fills = loop(hbt, row.every, STEP, float(ORDER_SIZE), books)
    cpu = time.process_time() - t0
    hbt.close()
    return {
        "cpu_s": cpu,
        "setup_s": setup,
        "events": count,
        "orders": orders,
        "cancels": cancels,
        "fills": fills,
    }
