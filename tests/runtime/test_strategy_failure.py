"""One strategy's failure is that strategy's (issue 12, section 3): the real daemon against the
Deribit simulator with a strategy raising in `on_start`, one raising `SystemExit` in `on_event`
and a healthy one; then the same in a backtest."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trio

from tests.support.daemon_process import ROOT, SECRET, Daemon, serve_sim, sim_orders, until
from tests.support.helpers import PERP, request, ticker
from tests.support.live_support import Probe
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import OrderState, OrderUpdate, Side
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.runtime.strategy import StrategyFailure

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")

STRATEGIES = """
[[strategies]]
name = "broken_start"
class = "tests.support.daemon_strategies:FailOnStart"

[[strategies]]
name = "exits"
class = "tests.support.daemon_strategies:ExitOnEvent"
[strategies.params]
below = 0.1

[[strategies]]
name = "healthy"
class = "tests.support.daemon_strategies:PlaceOnce"
[strategies.params]
below = 0.1
"""


def _strategy(daemon: Daemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = ((daemon.status() or {}).get("strategies") or {}).get(name) or {}
    return found


async def test_failing_strategies_are_stopped_and_reported_and_the_others_go_on(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=0.1)
    # The same daemon config, with three strategies instead of one.
    text = daemon.config.read_text(encoding="utf-8")
    daemon.config.write_text(text[: text.index("[[strategies]]")] + STRATEGIES, encoding="utf-8")
    proc = await daemon.start(nursery)

    await until(lambda: _strategy(daemon, "broken_start").get("state") == "failed", what="on_start failure")
    await until(lambda: _strategy(daemon, "exits").get("state") == "failed", within=20, what="SystemExit")
    status = daemon.status()
    assert status is not None
    start_failure = status["strategies"]["broken_start"]["failure"]
    assert (start_failure["phase"], start_failure["error"]) == ("on_start", "RuntimeError")
    assert SECRET not in start_failure["message"] and "[redacted]" in start_failure["message"]
    exit_failure = status["strategies"]["exits"]["failure"]
    assert (exit_failure["phase"], exit_failure["error"]) == ("on_event", "SystemExit")
    assert "(2 failed)" in status["status"]

    # The failed strategy's resting order is cancelled (the default policy); the healthy one's
    # stays, and the healthy strategy keeps receiving.
    exits_cid = next(c for c, _, _ in daemon.orders() if c.startswith("exits-"))
    await until(lambda: sim_orders(sim, exits_cid)[0].state == "cancelled", what="the failed one's order")
    healthy = await until(
        lambda: [c for c, _, s in daemon.orders() if c.startswith("healthy-") and s == "open"]
    )
    seen = _strategy(daemon, "healthy")["events"]
    await until(lambda: _strategy(daemon, "healthy")["events"] > seen + 3, what="the healthy one receiving")
    assert proc.returncode is None  # the daemon is up
    assert sim_orders(sim, healthy[0])[0].state == "open"
    cli = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    shown = await trio.run_process(
        [*cli, "status", "--config", str(daemon.config)],
        capture_stdout=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"},
        check=False,
    )
    text = shown.stdout.decode()
    assert shown.returncode == 0 and "FAILED in on_start: RuntimeError" in text, text
    assert "FAILED in on_event: SystemExit" in text and "(2 failed)" in text

    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0
    db = sqlite3.connect(f"file:{daemon.state / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        noted = [
            orjson.loads(d) for (d,) in db.execute("SELECT data FROM events WHERE kind = 'strategy_failed'")
        ]
    finally:
        db.close()
    assert {(n["strategy"], n["phase"]) for n in noted} >= {
        ("broken_start", "on_start"),
        ("exits", "on_event"),
    }
    assert not any(SECRET in n["message"] for n in noted)

    # Every line the process wrote (stdout and stderr together) is a JSON log line: no raw
    # traceback, from the strategies' hooks, their thread or a finalizer; the secret nowhere.
    raw = b"".join(p.read_bytes() for p in daemon.logs)
    assert SECRET.encode() not in raw
    lines = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    assert all({"ts", "level", "event"} <= line.keys() for line in lines)
    failed = [e for e in lines if e["event"] == "strategy.failed"]
    assert {(e["strategy"], e["phase"], e["error"]) for e in failed} == {
        ("broken_start", "on_start", "RuntimeError"),
        ("broken_start", "on_stop", "KeyboardInterrupt"),
        ("exits", "on_event", "SystemExit"),
    }
    assert all(e["level"] == "critical" and "exception" in e for e in failed)
    assert any(e["event"] == "thread.exception_uncaught" and "exception" in e for e in lines)
    assert any(e["event"] == "exception.unraisable" for e in lines)
    assert "Traceback (most recent call last)" not in raw.decode()


async def _exits_alone(nursery: trio.Nursery, tmp_path: Path, old: str, new: str) -> Any:
    """The daemon on the simulator with only the "exits" strategy (its table's `old` text made
    `new`), started and seen to fail: (simulator, daemon, process)."""
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=0.1)
    text = daemon.config.read_text(encoding="utf-8")
    strategies = STRATEGIES[STRATEGIES.index('[[strategies]]\nname = "exits"') :].replace(old, new)
    daemon.config.write_text(text[: text.index("[[strategies]]")] + strategies, encoding="utf-8")
    proc = await daemon.start(nursery)
    await until(lambda: _strategy(daemon, "exits").get("state") == "failed", within=20, what="SystemExit")
    return sim, daemon, proc


async def test_the_leave_policy_leaves_a_failed_strategys_order_working(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, daemon, proc = await _exits_alone(
        nursery, tmp_path, 'name = "exits"', 'name = "exits"\non_failure = "leave"'
    )
    await until(lambda: daemon.events("strategy.failed_orders_left"), what="the policy applied")
    exits_cid = next(c for c, _, _ in daemon.orders() if c.startswith("exits-"))
    assert sim_orders(sim, exits_cid)[0].state == "open"
    assert _strategy(daemon, "exits")["open_orders"] == 1
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0


async def test_a_failed_strategys_order_is_cancelled_even_when_its_on_stop_hangs(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, daemon, proc = await _exits_alone(
        nursery, tmp_path, "daemon_strategies:ExitOnEvent", "daemon_strategies:ExitHangOnStop"
    )
    exits_cid = next(c for c, _, _ in daemon.orders() if c.startswith("exits-"))
    # on_stop is given 5 s, then the cancel runs on a deadline of its own.
    await until(lambda: sim_orders(sim, exits_cid)[0].state == "cancelled", what="the failed one's order")
    assert daemon.events("strategy.on_stop_timeout")
    cancelled = await until(lambda: daemon.events("order.cancelled"), what="the cancel in the log")
    assert [e["client_order_id"] for e in cancelled] == [exits_cid]
    assert not daemon.events("strategy.failed_orders_working")
    await until(lambda: _strategy(daemon, "exits")["open_orders"] == 0, what="the status file")
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0


def _engine_with_open_order(cid: str) -> LiveEngine:
    engine = LiveEngine(
        [Probe("s")],
        {"deribit": DeribitSettings()},
        mode="live",
        environ={"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s52-x"},  # nothing connects
    )
    engine.registry.add(PERP)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    order = engine.flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid=cid), now_ns=1)
    engine.flow.assign_order_id(order, "V1")
    engine.failures["s"] = StrategyFailure(phase="on_event", error="E", message="", ts_ns=1)
    engine.failure_final_wait_s = 1.0
    return engine


def _cancelled(cid: str) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=2,
        order_id="V1",
        client_order_id=cid,
        status=OrderState.CANCELLED,
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("10"),
        filled_size=Decimal(0),
    )


async def test_a_cancel_confirmed_later_on_the_user_channel_is_not_alerted() -> None:
    """The failed strategy's cancel was answered, its final state comes a moment later on the
    venue's user channel: no `failed_orders_working` alert. An order never confirmed is."""
    engine = _engine_with_open_order("s-1")
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine._check_failed_orders, engine.slots[0])
            await trio.sleep(0.2)
            engine.flow.on_update(_cancelled("s-1"))
    assert not [e for e in logs if e["event"] == "strategy.failed_orders_working"]

    engine = _engine_with_open_order("s-2")
    with trio.fail_after(5), structlog.testing.capture_logs() as logs:
        await engine._check_failed_orders(engine.slots[0])
    [alert] = [e for e in logs if e["event"] == "strategy.failed_orders_working"]
    assert alert["log_level"] == "critical" and alert["client_order_ids"] == ["s-2"]
