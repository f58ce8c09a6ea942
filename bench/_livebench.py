"""What the live benchmarks share: the venue's simulator in a child process of its own (so its
CPU is not the client's), started on a free loopback port, waited for, and stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio

from tradingd.engine import MarketEvent, Status, Strategy, Subscription

__all__ = ["Counter", "Idle", "free_port", "run_with_simulator"]


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
