"""The live engine's surfaces: `[surface]` reaches them through the daemon's settings, a due
refit runs the real fit in a worker thread, and the daemon's status (the status file, what
`tradingd status` and the metrics read) carries the counters as JSON."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import orjson
import trio

from tests.support.deribit_live import CREDS, PERP, serve_sim
from tests.support.live_support import Probe, until
from tests.surface.test_service import CHAIN, T0, FakeFit, feed
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import DataKind, Subscription, Ticker
from tradingd.engine.daemon.service import Daemon
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.surface import SurfaceSettings
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS


def _daemon(tmp_path: Path, surface: str) -> Daemon:
    config = tmp_path / "live.toml"
    config.write_text(
        'mode = "live"\n[venues.deribit]\nurl = "ws://127.0.0.1:9/ws/api/v2"\nrest_url = "http://127.0.0.1:9"\n'
        'currencies = ["BTC"]\n[daemon]\nstate_dir = "state"\n'
        '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n' + surface,
        encoding="utf-8",
    )
    client_id, secret = next(iter(DEFAULT_ACCOUNTS.items()))
    return Daemon(
        daemon_settings(load_config(config)),
        environ={"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret},
        clock=lambda: T0,
    )


async def test_a_live_refit_runs_the_real_fit_in_a_worker_thread_and_the_status_shows_it(
    tmp_path: Path,
) -> None:
    daemon = _daemon(tmp_path, "[surface]\nmin_refit_interval_s = 2.5\nmin_quotes = 5\n")
    try:
        engine = daemon.engine
        surfaces = engine.surfaces
        assert surfaces.settings == SurfaceSettings(min_refit_interval_s=2.5)
        assert surfaces.threaded
        threads: list[int] = []
        real = surfaces._fit

        def watched(*args: Any, **kw: Any) -> Any:
            threads.append(threading.get_ident())
            from tradingd.engine.surface.fit import fit_surface

            return (real or fit_surface)(*args, **kw)

        surfaces._fit = watched
        for inst in CHAIN:
            engine.registry.add(inst)
        feed(engine.market_state, CHAIN, T0)
        surface = await surfaces.surface_async("BTC", "deribit")
        assert surface is not None and len(surface.slices) == 2
        assert threads and threads[0] != threading.get_ident()
        assert math.isclose(surface.iv(90_000.0, surface.slices[1].expiry_ns), 0.6, abs_tol=1e-3)
        status = orjson.loads(orjson.dumps(daemon.status()))["surfaces"]
        assert status["fits"] == 1 and status["fit_failures"] == 0 and status["last_fit_s"] > 0
        assert status["chains"]["deribit:BTC"] == {
            "as_of_ns": T0,
            "expiries": 2,
            "skipped_expiries": 0,
            "options": len(CHAIN),
            "skipped": {},
            # Asked without a strategy's name (the service directly): the strategy "".
            "strategies": {
                "": {
                    "as_of_ns": T0,
                    "fits": 1,
                    "shared_fits": 0,
                    "empty_fits": 0,
                    "fit_failures": 0,
                    "refits_skipped": 0,
                }
            },
        }
    finally:
        if daemon.journal is not None:
            daemon.journal.close()


def test_without_the_table_the_live_engine_takes_the_defaults(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "")
    try:
        assert daemon.engine.surfaces.settings == SurfaceSettings()
        assert daemon.status()["surfaces"] == {
            "fits": 0,
            "fit_failures": 0,
            "empty_fits": 0,
            "shared_fits": 0,
            "last_fit_s": 0.0,
            "fit_cpu_s": 0.0,
            "refits_skipped": 0,
            "refit_reasons": {},
            "skipped": {},
            "chains": {},
        }
    finally:
        if daemon.journal is not None:
            daemon.journal.close()


async def test_live_the_chain_is_streamed_once_asked_for_and_refits_run_off_the_event_loop(
    nursery: trio.Nursery,
) -> None:
    """Against the Deribit simulator on loopback: the first `ctx.surface` subscribes the venue
    connection to the chain's tickers; `surface_async` awaits a fit in a worker thread; a later
    sync `surface` returns the latest at once and the refit it started, in the engine's nursery,
    is there at a later call. The fit is injected (the simulator's chain is 4 strikes wide)."""
    _, base = await serve_sim(nursery)
    probe = Probe(subs=[Subscription("deribit", PERP, {DataKind.TICKER})])
    engine = LiveEngine(
        [probe],
        {"deribit": DeribitSettings(url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}")},
        mode="paper",
        environ=CREDS,
        # Any new ticker makes a refit due (no move thresholds): this test is about where the
        # refit runs, not when the chain has moved enough (tests/surface/test_refit_decisions.py).
        surface_settings=SurfaceSettings(min_refit_interval_s=0.2, min_iv_change=0.0, min_forward_change=0.0),
    )
    fit = FakeFit()
    engine.surfaces._fit = fit
    await nursery.start(engine.run)
    with trio.fail_after(10):
        await engine.ready.wait()
    ctx = probe.ctx
    assert ctx.surface("BTC", venue="deribit") is None  # nothing streamed yet
    chain = engine.surfaces.chain_symbols("BTC", "deribit")
    assert len(chain) == 16
    # The venue connection's merged subscriptions carry the chain's tickers now.
    assert {(s, DataKind.TICKER) for s in chain} <= engine.router.merged("deribit")
    await until(
        lambda: all(engine.market_state.ticker("deribit", s) for s in chain), what="the chain's tickers"
    )
    await trio.sleep(0.25)
    first = await ctx.surface_async("BTC", venue="deribit")
    assert first is not None and len(fit.calls) == 1 and fit.threads[0] != threading.get_ident()
    assert {q.instrument for q in fit.calls[0][0]} == set(chain)
    await trio.sleep(0.25)
    assert ctx.surface("BTC", venue="deribit") is first  # the refit started, not awaited
    await until(lambda: ctx.surface("BTC", venue="deribit") is not first, what="the refit")
    second = ctx.surface("BTC", venue="deribit")
    assert second is not None and second.as_of_ns > first.as_of_ns
    assert fit.threads[1] != threading.get_ident()
    assert probe.of(Ticker, chain[0])  # the strategy is sent the chain's tickers too
