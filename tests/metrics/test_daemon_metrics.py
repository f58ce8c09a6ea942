"""Issue 19's first "done when": `tradingd run` (a subprocess) against the Deribit simulator with
`[metrics]` on a loopback port, scraped over HTTP while the simulator's fault switches fire: a
drop shows a reconnect, a rejection a final rejected order, the pre-trade checks a refusal, a
garbage frame a malformed count, a rate-limit answer a rate-limited request. The credentials'
secret, the venue's tokens and our order ids are in no scrape."""

from __future__ import annotations

import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon_process import CLIENT_ID, SECRET, Daemon, serve_sim

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")

CONFIG = """
mode = "live"
[logging]
level = "info"
format = "json"
[venues.deribit]
url = "ws://{address}/ws/api/v2"
rest_url = "http://{address}"
currencies = ["BTC"]
[daemon]
state_dir = "state"
shutdown_timeout_s = 6
[metrics]
listen = "127.0.0.1:{port}"
[[strategies]]
name = "churn"
class = "tests.metrics.churn:Churn"
[strategies.risk]
max_order_size = 100
"""
VENUE = {"venue": "deribit"}
CHURN = {"strategy": "churn"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Scrapes:
    """Every scrape's text, and the last one's samples by (name, labels)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.texts: list[str] = []
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    async def take(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        try:
            answer = await trio.to_thread.run_sync(lambda: httpx.get(self.url, timeout=5))
        except httpx.TransportError:
            return {}  # not serving yet
        assert answer.status_code == 200, answer.text
        self.texts.append(answer.text)
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text)
            for s in family.samples
        }
        return self.samples

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    async def until(self, check: Any, what: str, within: float = 20.0) -> None:
        async def ok() -> bool:
            await self.take()
            return bool(self.samples) and bool(check())

        with trio.fail_after(within):
            while not await ok():
                await trio.sleep(0.2)
        assert check(), what


async def test_the_metrics_move_as_the_simulators_faults_fire(nursery: trio.Nursery, tmp_path: Path) -> None:
    sim, address = await serve_sim(nursery)
    port = _free_port()
    daemon = Daemon(tmp_path, address, below=0.1)
    daemon.config.write_text(CONFIG.format(address=address, port=port), encoding="utf-8")
    sim.apply_faults({"reject": {"count": 1}})  # the first order reaching the venue is refused
    await daemon.start(nursery)
    m = Scrapes(port)
    await m.until(lambda: m.value("tradingd_ready") == 1, "ready")
    assert m.value("tradingd_venue_up", **VENUE) == 1
    assert m.value("tradingd_venue_feed_state", venue="deribit", state="live") == 1
    assert m.value("tradingd_venue_connects_total", **VENUE) == 1

    # reject: a final rejected order (the venue's); the strategy's oversized order: a refusal.
    await m.until(
        lambda: (
            m.value("tradingd_orders_final_total", strategy="churn", status="rejected", reason="venue") == 1
            and m.value("tradingd_risk_refusals_total", strategy="churn", check="max_order_size") >= 1
            and m.value("tradingd_orders_final_total", strategy="churn", status="cancelled", reason="user")
            >= 1
        ),
        "a venue rejection, a risk refusal and a cancel",
    )
    assert m.value("tradingd_orders_final_total", strategy="churn", status="rejected", reason="risk") >= 1
    assert m.value("tradingd_orders_sent_total", **CHURN) >= 2
    assert m.value("tradingd_tick_to_order_seconds_count", **VENUE) >= 2
    assert m.value("tradingd_order_ack_seconds_count", **VENUE) >= 2
    assert m.value("tradingd_journal_write_seconds_count") >= 2
    assert m.value("tradingd_event_loop_lateness_seconds_count") >= 1
    assert m.value("tradingd_strategy_events_total", **CHURN) >= 1

    # garbage: malformed frames counted, the connection kept.
    malformed = m.value("tradingd_venue_malformed_frames_total", **VENUE)
    sim.apply_faults({"garbage": 2})
    await m.until(
        lambda: m.value("tradingd_venue_malformed_frames_total", **VENUE) >= malformed + 2, "garbage"
    )

    # rate_limit: the next request (the strategy's next order or cancel) refused for rate.
    sim.apply_faults({"rate_limit": 1})
    await m.until(lambda: m.value("tradingd_venue_rate_limited_total", **VENUE) >= 1, "rate limited")

    # drops: a reconnect, a disconnect then a connect, and live again.
    await m.until(lambda: m.value("tradingd_venue_up", **VENUE) == 1, "up before the drop")
    connects = m.value("tradingd_venue_connects_total", **VENUE)
    disconnects = m.value("tradingd_venue_disconnects_total", **VENUE)
    sim.apply_faults({"drop": True})
    await m.until(
        lambda: (
            m.value("tradingd_venue_disconnects_total", **VENUE) > disconnects
            and m.value("tradingd_venue_connects_total", **VENUE) > connects
            and m.value("tradingd_venue_up", **VENUE) == 1
        ),
        "a reconnect",
    )
    assert m.value("tradingd_venue_frames_total", **VENUE) > 0
    assert 0 <= m.value("tradingd_venue_last_frame_age_seconds", **VENUE) < 10

    # Nothing secret, no order id: the credentials, the venue's tokens, our client order ids.
    text = "".join(m.texts)
    assert SECRET not in text and CLIENT_ID not in text
    tokens = [t for t in list(sim.tokens) + list(sim.refresh_tokens) if len(t) >= 6]
    assert tokens and not any(t in text for t in tokens)
    cids = {o.label for o in sim.orders.values()} | {str(o.order_id) for o in sim.orders.values()}
    assert cids and not any(c in text for c in cids)
    labels = {v for (_, ls) in m.samples for _, v in ls}
    assert not [v for v in labels if re.fullmatch(r"churn-[0-9a-z]+-\d+", v)]
    listening = daemon.events("metrics.listening")
    assert [e["address"] for e in listening] == [f"http://127.0.0.1:{port}/metrics"]

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=15) == 0
    with pytest.raises(httpx.TransportError):  # the server stopped with the daemon
        await trio.to_thread.run_sync(lambda: httpx.get(m.url, timeout=2))
