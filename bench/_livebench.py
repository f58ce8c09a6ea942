"""What the live benchmarks share: the venue's simulator in a child process of its own (so its
CPU is not the client's), started on a free loopback port, waited for, and stopped; the command
line; the burst measurement; and the figures of the order and latency measurements."""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx
import trio

from tradingd.engine import DataKind, MarketEvent, OrderRequest, Side, Status, Strategy, Subscription, Ticker
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.runtime.live import LiveEngine

__all__ = [
    "Counter",
    "Idle",
    "LabelAnswerer",
    "burst",
    "free_port",
    "ingest_line",
    "label_samples",
    "latency_figures",
    "latency_line",
    "live_parser",
    "order_figures",
    "parse_or_serve",
    "run_with_simulator",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_with_simulator(
    script: str,
    port: int | None,
    measure: Callable[..., Awaitable[dict[str, Any]]],
    *args: Any,
) -> dict[str, Any]:
    """Run `script --serve-sim --port PORT` (the benchmark's own simulator mode), wait until it
    answers `/_sim/state`, then `trio.run(measure, port, *args)`; the child is always stopped."""
    port = port or free_port()
    child = subprocess.Popen([sys.executable, script, "--serve-sim", "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_sim/state", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise
                time.sleep(0.2)
        return trio.run(measure, port, *args)
    finally:
        child.terminate()
        child.wait(10)


class Counter(Strategy):
    """Counts what reaches it. It starts with `first` and, at its first market event, subscribes
    to what `everything(ctx)` names (the whole market of the benchmark)."""

    def __init__(self, first: Subscription, everything: Callable[[Any], list[Subscription]]) -> None:
        super().__init__("counter")
        self.first = first
        self.everything = everything
        self.count = 0
        self.last = 0.0
        self.subscribed = False

    def required_subscriptions(self) -> list[Subscription]:
        return [self.first]

    async def on_event(self, event: MarketEvent) -> None:
        self.count += 1
        self.last = time.perf_counter()
        if not self.subscribed and not isinstance(event, Status):
            self.subscribed = True
            self.ctx.subscribe(self.everything(self.ctx))


class Idle(Strategy):
    """Places orders when asked to (the orders/s measurement drives it through its context)."""

    def __init__(self, name: str, subscription: Subscription) -> None:
        super().__init__(name)
        self.subscription = subscription

    def required_subscriptions(self) -> list[Subscription]:
        return [self.subscription]

    async def on_event(self, event: MarketEvent) -> None:
        return None


def live_parser(doc: str | None, step_ms: int, orders: int | None = None) -> argparse.ArgumentParser:
    """The live benchmarks' options: the burst's market steps (`step_ms` of market each), the
    orders placed one after another (when the benchmark places any), the latency's duration."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    ap.add_argument(
        "--burst-steps", type=int, default=20_000, help=f"market steps ({step_ms} ms each) in the burst"
    )
    if orders is not None:
        ap.add_argument("--orders", type=int, default=orders, help="orders placed one after another")
    ap.add_argument("--latency-s", type=float, default=30.0)
    return ap


def parse_or_serve(ap: argparse.ArgumentParser, serve_child: Callable[[int], None], port: int = 0) -> Any:
    """Parse the command line (with `--port` and the child's hidden `--serve-sim`). In the child:
    serve the simulator on `--port` and return None. In the parent: the arguments, logging set to
    warnings (the benchmark prints its figures)."""
    ap.add_argument("--port", type=int, default=port, help="0: a free port")
    ap.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_sim:
        serve_child(args.port)
        return None
    configure_logging("warning", "json")
    return args


async def burst(http: httpx.AsyncClient, counter: Counter, engine: LiveEngine, steps: int) -> dict[str, Any]:
    """The simulator prepares `steps` market steps ahead and sends them as fast as the connection
    takes them; the figures of what reached `counter` (the engine's first strategy), first to last,
    and this process's CPU for it (idle waits excluded): the client's own cost per frame."""
    frames = (await http.post("/_sim/burst", json={"prepare": steps})).json()["frames"]
    before = counter.count
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sent = (await http.post("/_sim/burst", json={"burst": True})).json()["sent"]
    quiet, last_count = 0, -1
    while quiet < 20:  # 1 s without a new event: the burst is through
        await trio.sleep(0.05)
        quiet = quiet + 1 if counter.count == last_count else 0
        last_count = counter.count
    events = counter.count - before
    cpu = time.process_time() - cpu0
    await http.post("/_sim/burst", json={"resume": True})
    mailbox = engine.router.slots()[0].mailbox.stats
    return {
        "frames_prepared": frames,
        "frames_sent": sent,
        "events": events,
        "seconds": counter.last - t0,
        "events_per_s": events / (counter.last - t0),
        "client_cpu_us_per_frame": cpu / sent * 1e6,
        "dropped_or_conflated": mailbox.conflated + mailbox.merged,
    }


def ingest_line(what: str, t: dict[str, Any], extra: str = "") -> str:
    """The burst's figures (`burst`, with the venue's `malformed` count), as one line."""
    return (
        f"{what}: {t['events']:,} events from {t['frames_sent']:,} frames in {t['seconds']:.2f} s"
        f" = {t['events_per_s']:,.0f} events/s into the strategy"
        f" (conflated/merged {t['dropped_or_conflated']:,}, malformed {t['malformed']}{extra})"
    )


def order_figures(orders: int, seconds: float, sign_best: float) -> dict[str, float]:
    """`orders` placed one after another in `seconds`; the client's own signing of as many took
    `sign_best` (the best of its runs)."""
    return {
        "orders": orders,
        "seconds": seconds,
        "orders_per_s": orders / seconds,
        "round_trip_us": seconds / orders * 1e6,
        "sign_us": sign_best / orders * 1e6,
        "signs_per_s": orders / sign_best,
    }


def label_samples(marks: dict[str, Any]) -> list[float]:
    """Tick-to-order times in us, sorted, from the simulator's `/_sim/latency` marks, where each
    answer's label (`lat-<the ticker's exchange time in ms>`) names the ticker it answers."""
    sent_at = {int(k): v for k, v in marks["sent_at"].items()}
    return sorted(
        (arrived - sent_at[int(label[4:])]) * 1e6
        for label, arrived in marks["arrived_at"].items()
        if label.startswith("lat-") and int(label[4:]) in sent_at
    )


def latency_figures(samples: Sequence[float]) -> dict[str, Any]:
    """Median, 99th percentile, least and most of sorted `samples` (None for each when empty)."""
    return {
        "samples": len(samples),
        "median": statistics.median(samples) if samples else None,
        "p99": samples[min(len(samples) - 1, int(0.99 * len(samples)))] if samples else None,
        "min": samples[0] if samples else None,
        "max": samples[-1] if samples else None,
    }


def latency_line(lat: dict[str, Any], extra: str = "") -> str:
    """`latency_figures` as one line."""
    return (
        f"tick-to-order: median {lat['median']:.0f} us, p99 {lat['p99']:.0f} us"
        f" (min {lat['min']:.0f}, max {lat['max']:.0f}; {lat['samples']} samples{extra})"
    )


class LabelAnswerer(Strategy):
    """Answers every ticker of `instrument` with a far-away buy of `size` (half the bid) whose
    label names the ticker (`lat-<its exchange time in ms>`, read back by `label_samples`)."""

    def __init__(self, venue: str, instrument: str, size: Decimal) -> None:
        super().__init__("answer")
        self.venue = venue
        self.instrument = instrument
        self.size = size
        self.sent = 0

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription(self.venue, self.instrument, {DataKind.TICKER})]

    async def on_event(self, event: MarketEvent) -> None:
        if (
            isinstance(event, Ticker)
            and event.instrument == self.instrument
            and event.ts_exchange
            and event.bid
        ):
            self.sent += 1
            await self.ctx.place_order(
                OrderRequest(
                    venue=self.venue,
                    instrument=self.instrument,
                    side=Side.BUY,
                    size=self.size,
                    price=Decimal(int(event.bid * 0.5)),
                    client_order_id=f"lat-{event.ts_exchange // 1_000_000}",
                )
            )
