"""Soak: the live engine's memory over a long run of orders against the local Deribit simulator.

    python bench/bench_soak.py [--duration 3600] [--rate 2] [--sample-s 30] [--warmup-s 300]

The simulator runs in a child process (as in the other live benchmarks); this process runs the
live engine (session, gateway, order flow, journal in a temporary directory) and places about
`--rate` orders per second on BTC-PERPETUAL through a strategy's context, in turns:

- a limit buy far below the market, cancelled as soon as it rests (an order that ends cancelled);
- a limit order across the spread (buy above the ask, sell below the bid, alternately, so the
  position stays flat) that fills at once (an order that ends filled, with its fill).

Every `--sample-s` seconds it prints the process's resident memory (VmRSS from /proc/self/status),
the orders placed so far and the orders the engine holds in memory; at the end, the slope of RSS
over time after `--warmup-s` (least squares, MB/hour). A daemon that keeps every final order in
memory grows without bound; one that lets them go to its journal stays flat.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
from _livebench import Idle, parse_or_serve, run_with_simulator

from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import DataKind, OrderRequest, Side, Subscription
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import TradingError
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

PERP = "BTC-PERPETUAL"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


def rss_mb() -> float:
    """This process's resident set size, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 3:
        return None
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    return statistics.linear_regression(xs, ys).slope * 3600


def serve_child(port: int) -> None:
    """The child process: a simulator whose matching limit is far above the soak's rate."""
    configure_logging("warning", "json")
    sim = DeribitSimulator(seed=7, matching_rate=10_000, matching_burst=10_000, outbox=100_000)
    trio.run(functools.partial(serve, sim, port=port))


async def measure(
    port: int, duration_s: float, rate: float, sample_s: float, warmup_s: float
) -> dict[str, Any]:
    base = f"127.0.0.1:{port}"
    settings = DeribitSettings(
        url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}", matching_rate=10_000, matching_burst=10_000
    )
    strategy = Idle("soak", Subscription("deribit", PERP, {DataKind.TICKER}))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        journal = OrderJournal(Path(tmp) / "journal.sqlite")
        engine = LiveEngine([strategy], {"deribit": settings}, mode="live", environ=CREDS, journal=journal)
        placed = filled = cancelled = errors = 0
        samples: list[tuple[float, float]] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(30):
                await engine.ready.wait()
                while strategy.ctx.last_ticker("deribit", PERP) is None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            t0 = time.monotonic()
            next_sample = t0
            interval = 1.0 / rate
            n = 0
            print("     t_s   rss_mb   placed  in_memory", flush=True)
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    held = sum(1 for _ in engine.flow.tracker.orders())
                    mb = rss_mb()
                    samples.append((now - t0, mb))
                    print(f"{now - t0:8.0f} {mb:8.2f} {placed:8d} {held:10d}", flush=True)
                    next_sample += sample_s
                if now - t0 >= duration_s:
                    break
                ticker = strategy.ctx.last_ticker("deribit", PERP)
                assert ticker is not None
                assert ticker.bid
                assert ticker.ask
                try:
                    if n % 2 == 0:
                        # Rests far from the market, then cancelled.
                        price = Decimal(int(ticker.bid * 0.5))
                        req = OrderRequest("deribit", PERP, Side.BUY, Decimal(10), price)
                        update = await strategy.ctx.place_order(req)
                        placed += 1
                        if update.client_order_id:
                            await strategy.ctx.cancel_order(update.client_order_id)
                            cancelled += 1
                    else:
                        # Across the spread: fills at once; buys and sells alternate (flat).
                        buy = n % 4 == 1
                        side, price = (
                            (Side.BUY, Decimal(int(ticker.ask * 1.01)))
                            if buy
                            else (Side.SELL, Decimal(int(ticker.bid * 0.99)))
                        )
                        await strategy.ctx.place_order(
                            OrderRequest("deribit", PERP, side, Decimal(10), price)
                        )
                        placed += 1
                        filled += 1
                except TradingError:
                    errors += 1
                n += 1
                await trio.sleep_until(trio.current_time() + max(0.0, t0 + n * interval - time.monotonic()))
            nursery.cancel_scope.cancel()
        states = dict(journal._db.execute("SELECT state, count(*) FROM orders GROUP BY state").fetchall())
        fills = journal._db.execute("SELECT count(*) FROM ledger WHERE kind = 'fill'").fetchone()[0]
        journal.close()
    after = [s for s in samples if s[0] >= warmup_s]
    return {
        "duration_s": duration_s,
        "rate": rate,
        "placed": placed,
        "cancel_requests": cancelled,
        "crossing_orders": filled,
        "errors": errors,
        "final_states": states,
        "fills_booked": fills,
        "rss_start_mb": samples[0][1],
        "rss_after_warmup_mb": after[0][1] if after else None,
        "rss_end_mb": samples[-1][1],
        "slope_mb_per_hour": slope_mb_per_hour(after),
        "warmup_s": warmup_s,
        "samples": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3600.0, help="seconds of orders")
    ap.add_argument("--rate", type=float, default=2.0, help="orders per second")
    ap.add_argument("--sample-s", type=float, default=30.0, help="seconds between RSS samples")
    ap.add_argument(
        "--warmup-s", type=float, default=None, help="seconds left out of the slope (default 10%%)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the result (with every sample) here")
    args = parse_or_serve(ap, serve_child)
    if args is None:
        return
    warmup = args.duration / 10 if args.warmup_s is None else args.warmup_s
    r = run_with_simulator(
        __file__, args.port or None, measure, args.duration, args.rate, args.sample_s, warmup
    )
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=1))
    slope = r["slope_mb_per_hour"]
    print(
        f"soak: {r['placed']:,} orders in {r['duration_s']:.0f} s at {r['rate']} orders/s"
        f" ({r['errors']} refused; ends: {r['final_states']}; {r['fills_booked']} fills booked);"
        f" RSS {r['rss_start_mb']:.1f} MB at start,"
        f" {r['rss_after_warmup_mb'] or float('nan'):.1f} MB after {r['warmup_s']:.0f} s warm-up,"
        f" {r['rss_end_mb']:.1f} MB at end; slope after warm-up"
        f" {'n/a' if slope is None else f'{slope:+.2f} MB/hour'}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
