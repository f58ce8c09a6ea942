"""The daemon's Deribit path against the local simulator on loopback: frames/s into strategies,
and tick-to-order latency.

    python bench/bench_deribit_live.py [--burst-steps 20000] [--latency-s 30]

The simulator runs in a child process (its own core, as a venue would be on its own machine);
the daemon's engine (session, decoder, router, a strategy, gateway) in this one.

- Throughput: a counting strategy subscribes to every instrument (ticker, book, trades); the
  simulator prepares `--burst-steps` market steps ahead and sends them as fast as the connection
  takes them. Events delivered to the strategy per second, from the first to the last.
- Latency: a strategy answers each BTC-PERPETUAL ticker with an order whose label names the
  ticker. The simulator records when it handed the ticker to the socket and when the order
  arrived, on the machine's monotonic clock: median and 99th percentile, over `--latency-s`.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import httpx
import trio
from _livebench import (
    Counter,
    LabelAnswerer,
    burst,
    ingest_line,
    label_samples,
    latency_figures,
    latency_line,
    live_parser,
    parse_or_serve,
    run_with_simulator,
)

from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import DataKind, Subscription
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator, serve

PERP = "BTC-PERPETUAL"
CREDS = {
    "DERIBIT_CLIENT_ID": next(iter(DEFAULT_ACCOUNTS)),
    "DERIBIT_CLIENT_SECRET": next(iter(DEFAULT_ACCOUNTS.values())),
}


def serve_child(port: int) -> None:
    """The child process: a simulator with a venue-sized matching limit for the benchmark."""
    configure_logging("warning", "json")
    sim = DeribitSimulator(seed=7, matching_rate=10_000, matching_burst=10_000, outbox=100_000)
    trio.run(functools.partial(serve, sim, port=port))


async def measure(port: int, burst_steps: int, latency_s: float) -> dict[str, Any]:
    base = f"127.0.0.1:{port}"
    settings = DeribitSettings(
        url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}", matching_rate=10_000, matching_burst=10_000
    )
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=600) as http:
        # Throughput.
        counter = Counter(
            Subscription("deribit", PERP, {DataKind.TICKER}),
            lambda ctx: [Subscription("deribit", i.symbol) for i in ctx.instruments("deribit")],
        )
        engine = LiveEngine([counter], {"deribit": settings}, mode="live", environ=CREDS)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(30):
                await engine.ready.wait()
                # 34 instruments x 3 kinds, and the private channels: polled (no event to wait on).
                while len(engine.venues["deribit"].channels) < 100:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            out["throughput"] = await burst(http, counter, engine, burst_steps)
            out["throughput"]["malformed"] = engine.venues["deribit"].stats.malformed
            nursery.cancel_scope.cancel()
        # Latency.
        await http.post("/_sim/latency", json={"probe": PERP})
        answerer = LabelAnswerer("deribit", PERP, Decimal(10))
        engine = LiveEngine([answerer], {"deribit": settings}, mode="live", environ=CREDS)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(30):
                await engine.ready.wait()
            await trio.sleep(latency_s)
            nursery.cancel_scope.cancel()
        out["latency_us"] = latency_figures(label_samples((await http.get("/_sim/latency")).json()))
    return out


def main() -> None:
    ap = live_parser(__doc__, 100)
    args = parse_or_serve(ap, serve_child, port=18765)
    if args is None:
        return
    result = run_with_simulator(__file__, args.port, measure, args.burst_steps, args.latency_s)
    t, lat = result["throughput"], result["latency_us"]
    print(ingest_line("throughput", t))
    per = t["client_cpu_us_per_frame"]
    print(
        f"client cost: {per:.1f} us of CPU per frame (connection, decode, router, strategy)"
        f" = room for {1e6 / per:,.0f} frames/s on one core; the simulator's sender is the bound above"
    )
    print(latency_line(lat))


if __name__ == "__main__":
    main()
