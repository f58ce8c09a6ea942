"""The tour's fault switches as a user sees them in the daemon's log (issue 16): `drop` is
`session.disconnected`, `session.reconnecting` (reason, attempt, delay) and `session.connected`;
`gap` on a subscribed book is a `book.gap` line and that book alone resnapshotted."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import structlog
import trio

from tests.support.deribit_live import PERP, serve_sim, start
from tradingd.engine import DataKind, MarketEvent, Strategy, Subscription


class Watch(Strategy):
    """Holds subscriptions to the perpetual, and nothing else."""

    def __init__(self, name: str, kinds: set[DataKind]) -> None:
        super().__init__(name)
        self.kinds = kinds

    def required_subscriptions(self) -> list[Subscription]:
        return [Subscription("deribit", PERP, self.kinds)]

    async def on_event(self, event: MarketEvent) -> None:
        pass


async def _until(
    logs: list[MutableMapping[str, Any]], found: Callable[[MutableMapping[str, Any]], bool]
) -> MutableMapping[str, Any]:
    with trio.fail_after(15):
        while True:
            for entry in logs:
                if found(entry):
                    return entry
            await trio.sleep(0.02)


async def test_a_drop_logs_disconnected_reconnecting_with_reason_attempt_delay_then_connected(
    nursery: trio.Nursery,
) -> None:
    with structlog.testing.capture_logs() as logs:
        sim, base = await serve_sim(nursery)
        await start(nursery, base, Watch("w", {DataKind.TICKER}))
        first = await _until(logs, lambda e: e["event"] == "session.connected")
        assert first["connection"] == 1 and first["venue"] == "deribit"
        sim.apply_faults({"drop": True})
        again = await _until(logs, lambda e: e["event"] == "session.connected" and e["connection"] == 2)
    events = [e["event"] for e in logs if e["event"].startswith("session.")]
    lost = events.index("session.disconnected")
    assert events[lost : lost + 2] == ["session.disconnected", "session.reconnecting"]
    reconnecting = next(e for e in logs if e["event"] == "session.reconnecting")
    assert "dropped by the simulator" in reconnecting["reason"]
    assert reconnecting["attempt"] == 1 and 0 < reconnecting["delay_s"] <= 30
    assert reconnecting["log_level"] == "warning"
    assert logs.index(reconnecting) < logs.index(again)


async def test_a_gap_on_a_subscribed_book_is_logged_and_that_book_resnapshotted(
    nursery: trio.Nursery,
) -> None:
    with structlog.testing.capture_logs() as logs:
        sim, base = await serve_sim(nursery)
        engine = await start(nursery, base, Watch("w", {DataKind.TICKER, DataKind.BOOK}))
        decoder = engine.venues["deribit"].decoder
        with trio.fail_after(10):
            while decoder.book(PERP) is None:
                await trio.sleep(0.02)
        answer = sim.apply_faults({"gap": "*"})
        assert "gap_waits" not in answer  # a book is subscribed: it has something to lose
        gap = await _until(logs, lambda e: e["event"] == "book.gap")
        again = await _until(logs, lambda e: e["event"] == "book.resubscribe")
    assert gap["instrument"] == PERP and gap["reason"] == "sequence_gap"
    assert any(PERP in channel for channel in again["channels"])
    assert sim.pending_faults() == {}  # the switch fired
