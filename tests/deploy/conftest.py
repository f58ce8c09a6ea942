"""The target the deploy tests' Prometheus scrapes: the real daemon (`tradingd run` in a
subprocess) against the Deribit simulator, serving its metrics on a loopback port."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio

from tests.deploy.prometheus import binary, free_port
from tests.support.daemon_process import Daemon, serve_sim, until

PERP = "BTC-PERPETUAL"


def _config(address: str, metrics_port: int) -> str:
    return f"""
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
listen = "127.0.0.1:{metrics_port}"
[recording]
enabled = true
dir = "recordings"
[[strategies]]
name = "exercise"
class = "tests.deploy.strategies:Exercise"
[strategies.risk]
max_order_size = 100
[alerts]
webhooks = [{{ format = "json", url_file = "alert-url" }}]
"""


@pytest.fixture
def prometheus_exe() -> str:
    """The `prometheus` binary: a missing one skips the test naming the Debian package (fails it
    under CI=true). A plain fixture, so the skip happens before the test's trio run."""
    return binary("prometheus")


@pytest.fixture
async def metrics_daemon(nursery: trio.Nursery, tmp_path: Path) -> str:
    """The host:port of a running daemon's metrics, once its strategy has filled, cancelled and
    been refused, and a reconciliation has found a foreign order: every series the dashboard and
    the rules read exists (the recording's counter too: [recording] is on; the alerts' too:
    [alerts] is on)."""
    sim, address = await serve_sim(nursery)
    # An order on the account that the daemon did not place: the start's reconciliation reports
    # it (a reconciliation surprise of kind foreign_order).
    account = next(iter(sim.accounts.values()))
    price = float(sim.listings[PERP].tick_size * 2)  # far under the market: it rests
    order = {"instrument_name": PERP, "amount": 10, "type": "limit", "price": price, "label": "foreign"}
    sim.call("private/buy", order, account=account)
    assert [o.label for o in sim.orders.values()] == ["foreign"]
    port = free_port()
    daemon = Daemon(tmp_path, address, below=0.0)
    daemon.config.write_text(_config(address, port), encoding="utf-8")
    # A webhook nobody answers: the alert counters exist (TradingdAlertsFailing reads them).
    (daemon.config.parent / "alert-url").write_text(f"http://127.0.0.1:{free_port()}/hook\n")
    await daemon.start(nursery)
    [done] = await until(lambda: daemon.events("exercise.done"), within=20, what="the strategy's orders")
    assert (done["filled"], done["cancelled"]) == ("filled", "cancelled")
    assert "max_order_size" in done["refused"]
    assert Decimal(10) in {o.filled for o in sim.orders.values() if o.label != "foreign"}
    return f"127.0.0.1:{port}"
