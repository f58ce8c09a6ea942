"""The daemon's Derive path against the local simulator on loopback: events/s into strategies,
signed orders/s, and tick-to-order latency.

    python bench/bench_derive_live.py [--burst-steps 20000] [--orders 2000] [--latency-s 30]

The simulator runs in a child process (its own core, as a venue would be on its own machine);
the daemon's engine (session, decoder, router, a strategy, gateway) in this one. Both share the
machine's 2 cores with whatever else runs: take the best of several runs.

- Ingest: a counting strategy subscribes to every instrument (ticker_slim, orderbook, trades);
  the simulator prepares `--burst-steps` market steps ahead and sends them as fast as the
  connection takes them. Events delivered to the strategy per second, first to last.
- Signed orders/s: `--orders` limit orders placed one after another by a strategy, each checked,
  signed (EIP-712 action, §3.6), sent as `private/order`, verified by the simulator (ecrecover,
  nonce, expiry, fee) and answered; and the client's own cost of `DeriveExecution.sign` alone.
- Latency: a strategy answers each ETH-PERP ticker (`ticker_slim.ETH-PERP.100`) with an order
  whose label names the ticker. The simulator records when it handed the ticker to the socket
  and when the order arrived, on the machine's monotonic clock: median and 99th percentile.

`run(...)` returns the figures as a dict (bench/run_all.py); `main` prints them.
"""

from __future__ import annotations

import functools
import time
from decimal import Decimal
from typing import Any

import httpx
import trio
from _livebench import (
    Counter,
    Idle,
    LabelAnswerer,
    burst,
    ingest_line,
    label_samples,
    latency_figures,
    latency_line,
    live_parser,
    order_figures,
    parse_or_serve,
    run_with_simulator,
)

from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import DataKind, OrderRequest, Side, Subscription
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model import Order
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
    serve,
)

PERP = "ETH-PERP"
CREDS = {
    "DERIVE_WALLET": DEMO_WALLET,
    "DERIVE_SESSION_KEY": DEMO_SESSION_KEY,
    "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
}
FAST = 100_000.0  # venue-sized rate limits on both sides: the benchmark measures the path, not them


def serve_child(port: int) -> None:
    """The child process: a simulator with a venue-sized matching limit for the benchmark."""
    configure_logging("warning", "json")
    sim = DeriveSimulator(seed=7, matching_tps=FAST, non_matching_tps=FAST, outbox=100_000)
    trio.run(functools.partial(serve, sim, port=port))


def _settings(base: str) -> DeriveSettings:
    return DeriveSettings(
        url=f"ws://{base}/ws",
        rest_url=f"http://{base}",
        ticker_interval=100,
        matching_tps=FAST,
        non_matching_tps=FAST,
        instrument_tps=FAST,
    )


async def _ingest(http: httpx.AsyncClient, base: str, burst_steps: int) -> dict[str, Any]:
    counter = Counter(
        Subscription("derive", PERP, {DataKind.TICKER}),
        lambda ctx: [Subscription("derive", i.symbol) for i in ctx.instruments("derive")],
    )
    engine = LiveEngine([counter], {"derive": _settings(base)}, mode="live", environ=CREDS)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        live: Any = engine.venues["derive"]
        with trio.fail_after(30):
            await engine.ready.wait()
            # 34 instruments x 3 kinds and the private channels: polled (no event to wait on).
            while len(live.channels) < 100:  # noqa: ASYNC110
                await trio.sleep(0.05)
        out = await burst(http, counter, engine, burst_steps)
        out["malformed"] = live.stats.malformed
        nursery.cancel_scope.cancel()
    return out


async def _orders(base: str, orders: int) -> dict[str, Any]:
    idle = Idle("orders", Subscription("derive", PERP, {DataKind.TICKER}))
    engine = LiveEngine([idle], {"derive": _settings(base)}, mode="live", environ=CREDS)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        with trio.fail_after(30):
            await engine.ready.wait()
        while engine.market_state.ticker("derive", PERP) is None:  # noqa: ASYNC110
            await trio.sleep(0.05)
        ticker = engine.market_state.ticker("derive", PERP)
        assert ticker is not None
        assert ticker.bid
        low = Decimal(int(ticker.bid * 0.5))
        t0 = time.perf_counter()
        for i in range(orders):
            await idle.ctx.buy("derive", PERP, Decimal("0.01"), price=low - i % 100)
        seconds = time.perf_counter() - t0
        # The client's own part: check, fee, nonce and EIP-712 signature, best of 5.
        execution: Any = engine.venues["derive"].execution()
        requests = [
            Order(
                OrderRequest(
                    venue="derive",
                    instrument=PERP,
                    side=Side.BUY,
                    size=Decimal("0.01") * (1 + i % 300),
                    price=low - i % 100,
                    client_order_id=f"s-{i}",
                ),
                now_ns=0,
            )
            for i in range(orders)
        ]
        sign_best = float("inf")
        for _ in range(5):
            s0 = time.perf_counter()
            for o in requests:
                execution.sign(o)
            sign_best = min(sign_best, time.perf_counter() - s0)
        await execution.cancel_all()  # leave the venue as we found it
        nursery.cancel_scope.cancel()
    return order_figures(orders, seconds, sign_best)


async def _latency(http: httpx.AsyncClient, base: str, latency_s: float) -> dict[str, Any]:
    await http.post("/_sim/latency", json={"probe": PERP})
    answerer = LabelAnswerer("derive", PERP, Decimal("0.1"))
    engine = LiveEngine([answerer], {"derive": _settings(base)}, mode="live", environ=CREDS)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        with trio.fail_after(30):
            await engine.ready.wait()
        await trio.sleep(latency_s)
        nursery.cancel_scope.cancel()
    return latency_figures(label_samples((await http.get("/_sim/latency")).json()))


async def measure(port: int, burst_steps: int, orders: int, latency_s: float) -> dict[str, Any]:
    """The three measurements against a simulator already serving on `port`."""
    base = f"127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=600) as http:
        return {
            "ingest": await _ingest(http, base, burst_steps),
            "orders": await _orders(base, orders),
            "latency_us": await _latency(http, base, latency_s),
        }


def run(
    *, burst_steps: int = 20_000, orders: int = 2_000, latency_s: float = 30.0, port: int | None = None
) -> dict[str, Any]:
    """Start the simulator in a child process, measure, stop it; the figures as a dict."""
    return run_with_simulator(__file__, port, measure, burst_steps, orders, latency_s)


def main() -> None:
    ap = live_parser(__doc__, 100, orders=2000)
    args = parse_or_serve(ap, serve_child)
    if args is None:
        return
    result = run(burst_steps=args.burst_steps, orders=args.orders, latency_s=args.latency_s, port=args.port)
    t, o, lat = result["ingest"], result["orders"], result["latency_us"]
    print(ingest_line("ingest", t))
    per = t["client_cpu_us_per_frame"]
    print(f"client cost: {per:.1f} us of CPU per frame (connection, decode, router, strategy)")
    print(
        f"orders: {o['orders']:,} signed limit orders placed and acknowledged one after another in"
        f" {o['seconds']:.2f} s = {o['orders_per_s']:,.0f} orders/s ({o['round_trip_us']:.0f} us round trip);"
        f" signing alone {o['sign_us']:.0f} us = {o['signs_per_s']:,.0f} signed orders/s"
    )
    if lat["samples"]:
        print(latency_line(lat))
    else:
        print("tick-to-order: no samples")


if __name__ == "__main__":
    main()
