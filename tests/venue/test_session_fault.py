"""An unexpected exception out of a venue session's own tasks (its handshake, the subscription
follower, a token refresher) ends that connection, never the engine: counted
(`stats.session_faults`), logged at critical level with its traceback, and the session reconnects
with its backoff while the strategies keep running (hostile-input review, r13 MEDIUM 2)."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from tests.support.live_support import Probe, until
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.engine import Subscription, Ticker
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator
from tradingd.simulators.deribit.simulator import serve as serve_deribit


async def test_a_session_task_raising_unexpectedly_reconnects_and_the_engine_keeps_running(
    nursery: trio.Nursery,
) -> None:
    sim = DeribitSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_deribit, sim))
    base = address.removeprefix("http://")
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    probe = Probe("p", [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})])
    with capture_logs() as logs:
        engine = LiveEngine(
            [probe],
            {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
            mode="live",
            environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
            paper_latency_s=0.0,
        )
        await nursery.start(engine.run)
        with trio.fail_after(15):
            await engine.ready.wait()
        live: Any = engine.venues["deribit"]  # the Deribit session: its follower is patched
        connects = live.stats.connects
        sync = live._sync_subscriptions
        raised: list[int] = []

        async def broken_once() -> None:
            # A bug of ours in the subscription follower (a task of the session's own nursery).
            if not raised:
                raised.append(1)
                raise RuntimeError("a bug in the subscription follower")
            await sync()

        live._sync_subscriptions = broken_once
        live.wake()
        channel = "ticker.BTC-PERPETUAL.100ms"
        assert channel in live.channels
        await until(lambda: raised, within=5, what="the follower raised")
        await until(
            lambda: (
                live.stats.connects > connects
                and live.connected
                and "ticker.BTC-PERPETUAL.100ms" in live.channels
            ),
            within=15,
            what="the session reconnected and subscribed again",
        )
        seen = len(probe.of(Ticker))
        await until(lambda: len(probe.of(Ticker)) > seen + 2, within=10, what="tickers after the fault")
    assert live.stats.session_faults == 1
    (fault,) = [e for e in logs if e["event"] == "session.fault"]
    assert fault["log_level"] == "critical" and fault["error_type"] == "RuntimeError"
    assert fault["error"] == "a bug in the subscription follower" and fault["venue"] == "deribit"
    assert isinstance(fault["exc_info"], RuntimeError) and fault["faults"] == 1
    assert any(
        e["event"] == "session.reconnecting" and e["reason"] == "session fault: RuntimeError" for e in logs
    )


async def test_a_background_task_beside_the_connections_is_restarted_after_a_fault() -> None:
    # Polymarket's fee retries and order heartbeats run beside its connections (`supervise`): an
    # unexpected exception out of one ended PolymarketSession.run, so the engine.
    from tests.support.frame_sessions import _session

    session = _session(lambda message: None)
    session._backoff.base = 0.01
    runs: list[int] = []

    async def task() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise KeyError("an answer nothing expected")

    with capture_logs() as logs:
        with trio.fail_after(5):
            await session.supervise(task, what="retry_fees")
    assert len(runs) == 3 and session.stats.session_faults == 2
    faults = [e for e in logs if e["event"] == "session.fault"]
    assert [(e["log_level"], e["error_type"], e["task"], e["faults"]) for e in faults] == [
        ("critical", "KeyError", "retry_fees", 1),
        ("critical", "KeyError", "retry_fees", 2),
    ]


async def test_a_cancelled_supervised_task_is_not_a_fault() -> None:
    from tests.support.frame_sessions import _session

    session = _session(lambda message: None)
    with trio.move_on_after(0.05):
        await session.supervise(trio.sleep_forever, what="order_heartbeats")
    assert session.stats.session_faults == 0


async def test_a_fault_before_any_handshake_succeeded_ends_the_engine_never_a_daemon_never_ready(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met at the first login, every time: the net reconnected forever, a daemon never
    ready that never exits (systemd's start timeout extended meanwhile). Before any handshake
    has succeeded a fault ends the engine, as refused credentials do at start."""
    sim = DeribitSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_deribit, sim))
    base = address.removeprefix("http://")
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))

    async def broken(self: DeribitSession, raw: Any) -> None:
        raise RuntimeError("a bug at login")

    monkeypatch.setattr(DeribitSession, "_take_token", broken)
    engine = LiveEngine(
        [Probe("p", [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})])],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
        mode="live",
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
        paper_latency_s=0.0,
    )
    with (
        capture_logs() as logs,
        trio.fail_after(15),
        pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="a bug at login"), flatten_subgroups=True),
    ):
        await engine.run()
    assert [e["error_type"] for e in logs if e["event"] == "session.fault"] == ["RuntimeError"]
    assert not engine.ready.is_set()


async def test_a_supervised_task_is_restarted_within_its_max_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Polymarket's order heartbeats: a backoff growing to its 30 s cap would let the venue's
    # dead-man switch cancel every open order between two heartbeats.
    from tests.support.frame_sessions import _session

    session = _session(lambda message: None)
    session._backoff.base = 0.02
    starts: list[float] = []

    async def task() -> None:
        starts.append(trio.current_time())
        if len(starts) < 8:
            raise KeyError("an answer nothing expected")

    with trio.fail_after(5):
        await session.supervise(task, what="order_heartbeats", max_delay=0.05)
    gaps = [b - a for a, b in itertools.pairwise(starts)]  # the clock's own time: the delays
    assert len(starts) == 8 and max(gaps) <= 0.05, gaps  # uncapped: 0.02 * 2**n, to 1.28 s
