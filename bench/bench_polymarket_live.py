"""The daemon's Polymarket path against the local simulator on loopback: events/s into a
strategy, signed orders/s, and tick-to-order latency.

    python bench/bench_polymarket_live.py [--burst-steps 20000] [--orders 1000] [--latency-s 30]

The simulator runs in a child process (its own core, as a venue would be on its own machine);
the daemon's engine (both connections, decoder, router, a strategy, gateway, REST client) in
this one. Both share the machine's 2 cores with whatever else runs: take the best of several runs.

- Ingest: a counting strategy subscribes to every token (book, trades, tickers); the simulator
  prepares `--burst-steps` market steps (250 ms of market each) ahead and sends them as fast as
  the market connection takes them. Events delivered to the strategy per second, first to last.
- Signed orders/s: `--orders` limit orders placed one after another by a strategy, each
  checked against its token, signed (EIP-712 V2), posted with its L2 HMAC headers, verified by
  the simulator (signature recovered, HMAC, owner, balance) and answered; and the client's own
  cost of signing plus body plus HMAC alone.
- Latency: a strategy answers each book change of one token with an order. The simulator
  records when it handed the change to the socket and when the order arrived, on the machine's
  monotonic clock. Polymarket orders carry no label, so the answer names the change it answers
  in its size (5 shares + the change's exchange time in ms modulo 10,000, in hundredths): median
  and 99th percentile over `--latency-s`, the market running 5x faster than real time.

`run(...)` returns the figures as a dict (bench/run_all.py); `main` prints them.
"""

from __future__ import annotations

import functools
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio
from _livebench import (
    Counter,
    Idle,
    burst,
    ingest_line,
    latency_figures,
    latency_line,
    live_parser,
    order_figures,
    parse_or_serve,
    run_with_simulator,
)

from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.signing import order_body
from tradingd.engine import BookUpdate, MarketEvent, OrderRequest, Side, Strategy, Subscription
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model import Order
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.venue.catalog import CatalogSettings
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator, serve

V = "polymarket"
_API = DEMO_API
CREDS = {
    "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
    "POLYMARKET_API_KEY": _API.key,
    "POLYMARKET_API_SECRET": _API.secret,
    "POLYMARKET_API_PASSPHRASE": _API.passphrase,
}
SEED = 7
PROBE_MARKET = 6  # the hourly up-or-down market: requoted every 0.5-2 s of market time
FAST = 100_000.0  # no local order limit: the benchmark measures the path, not the limiter
_TOKENS = PolymarketSimulator(seed=SEED).feed.markets  # the child's markets (same seed)
FIRST = _TOKENS[0].yes
PROBE = _TOKENS[PROBE_MARKET].yes


class Answerer(Strategy):
    """Answers each book change of the probe token (once per instant) with a resting order whose
    size names the change (module docstring)."""

    def __init__(self) -> None:
        super().__init__("answer")
        self.seen: set[int] = set()
        self.sent = 0

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription(V, PROBE, {"book"})]

    async def on_event(self, event: MarketEvent) -> None:
        if not isinstance(event, BookUpdate) or event.snapshot or event.ts_exchange is None:
            return
        ms = event.ts_exchange // 1_000_000
        if ms in self.seen:
            return
        self.seen.add(ms)
        self.sent += 1
        size = Decimal(5) + Decimal(ms % 10_000) / 100
        await self.ctx.place_order(
            OrderRequest(venue=V, instrument=PROBE, side=Side.BUY, size=size, price=Decimal("0.01"))
        )


def serve_child(port: int) -> None:
    """The child process: the simulator, its market 5x faster than real time (step 50 ms)."""
    configure_logging("warning", "json")
    sim = PolymarketSimulator(seed=SEED, step_s=0.05, outbox=100_000)
    trio.run(functools.partial(serve, sim, port=port))


def _engine(base: str, strategy: Strategy, cache: Path) -> LiveEngine:
    settings = PolymarketSettings(
        url=f"ws://{base}/ws", rest_url=f"http://{base}", order_rate=FAST, order_burst=FAST, fill_wait_s=0.0
    )
    return LiveEngine(
        [strategy],
        {V: settings},
        mode="live",
        environ=CREDS,
        catalog_settings={"polymarket": CatalogSettings(cache=cache, source_url=f"http://{base}/gamma")},
    )


async def _ingest(http: httpx.AsyncClient, base: str, burst_steps: int, cache: Path) -> dict[str, Any]:
    tokens = [t for m in _TOKENS for t in (m.yes, m.no)]
    counter = Counter(Subscription(V, FIRST), lambda ctx: [Subscription(V, t) for t in tokens])
    engine = _engine(base, counter, cache)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        live: Any = engine.venues[V]
        with trio.fail_after(30):
            await engine.ready.wait()
            while len(live.market.assets) < len(tokens):  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(0.05)
        out = await burst(http, counter, engine, burst_steps)
        out["malformed"] = live.market.stats.malformed
        out["book_gaps"] = live.decoder.stats.gaps
        nursery.cancel_scope.cancel()
    return out


async def _orders(base: str, orders: int, cache: Path) -> dict[str, Any]:
    idle = Idle("orders", Subscription(V, FIRST, {"book"}))
    engine = _engine(base, idle, cache)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        with trio.fail_after(30):
            await engine.ready.wait()
        t0 = time.perf_counter()
        for i in range(orders):
            await idle.ctx.buy(V, FIRST, Decimal(5) + Decimal(i % 500) / 100, price=Decimal("0.01"))
        seconds = time.perf_counter() - t0
        # The client's own part: check, amounts, EIP-712 signature, POST body, L2 HMAC; best of 5.
        execution: Any = engine.venues[V].execution()
        neg_risk = bool(execution.outcomes.get(FIRST).neg_risk)
        requests = [
            Order(
                OrderRequest(
                    venue=V,
                    instrument=FIRST,
                    side=Side.BUY,
                    size=Decimal(5) + Decimal(i % 500) / 100,
                    price=Decimal("0.01") * (1 + i % 40),
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
                prepared = execution._sign(o, neg_risk)
                body = order_body(prepared.signed, owner=_API.key, order_type=prepared.order_type)
                execution.rest.headers("POST", "/order", body)
            sign_best = min(sign_best, time.perf_counter() - s0)
        await execution.cancel_all()  # leave the venue as we found it
        nursery.cancel_scope.cancel()
    return order_figures(orders, seconds, sign_best)


async def _latency(http: httpx.AsyncClient, base: str, latency_s: float, cache: Path) -> dict[str, Any]:
    await http.post("/_sim/latency", json={"probe": PROBE})
    answerer = Answerer()
    engine = _engine(base, answerer, cache)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        with trio.fail_after(30):
            await engine.ready.wait()
        await trio.sleep(latency_s)
        execution: Any = engine.venues[V].execution()
        await execution.cancel_all()
        nursery.cancel_scope.cancel()
    marks = (await http.get("/_sim/latency")).json()
    await http.post("/_sim/latency", json={"probe": ""})
    samples = sorted(
        (arrived - marks["sent_at"][key]) * 1e6
        for key, arrived in marks["arrived_at"].items()
        if key in marks["sent_at"] and 0 < arrived - marks["sent_at"][key] < 1.0
    )
    return {"answers": answerer.sent, **latency_figures(samples)}


async def measure(port: int, burst_steps: int, orders: int, latency_s: float) -> dict[str, Any]:
    """The three measurements against a simulator already serving on `port`."""
    base = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "catalog.jsonl"
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=600) as http:
            return {
                "ingest": await _ingest(http, base, burst_steps, cache),
                "orders": await _orders(base, orders, cache),
                "latency_us": await _latency(http, base, latency_s, cache),
            }


def run(
    *, burst_steps: int = 20_000, orders: int = 1_000, latency_s: float = 30.0, port: int | None = None
) -> dict[str, Any]:
    """Start the simulator in a child process, measure, stop it; the figures as a dict."""
    return run_with_simulator(__file__, port, measure, burst_steps, orders, latency_s)


def main() -> None:
    ap = live_parser(__doc__, 250, orders=1000)
    args = parse_or_serve(ap, serve_child)
    if args is None:
        return
    result = run(burst_steps=args.burst_steps, orders=args.orders, latency_s=args.latency_s, port=args.port)
    t, o, lat = result["ingest"], result["orders"], result["latency_us"]
    print(ingest_line("ingest", t, f", gaps {t['book_gaps']}"))
    print(
        f"client cost: {t['client_cpu_us_per_frame']:.1f} us of CPU per frame"
        " (connection, decode, router, strategy)"
    )
    print(
        f"orders: {o['orders']:,} signed limit orders placed and acknowledged one after another in"
        f" {o['seconds']:.2f} s = {o['orders_per_s']:,.0f} orders/s ({o['round_trip_us']:.0f} us each);"
        f" sign + body + HMAC alone {o['sign_us']:.0f} us = {o['signs_per_s']:,.0f} signed orders/s"
    )
    if lat["samples"]:
        print(latency_line(lat, f" of {lat['answers']} answers"))
    else:
        print(f"tick-to-order: no samples ({lat['answers']} answers)")


if __name__ == "__main__":
    main()
