"""The live engine's surfaces: `[surface]` reaches them through the daemon's settings, a due
refit runs the real fit in a worker thread, and the daemon's status (the status file, what
`tradingd status` and the metrics read) carries the counters as JSON."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import orjson

from tests.surface.test_service import CHAIN, T0, feed
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine.daemon.service import Daemon
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
            "last_fit_s": 0.0,
            "skipped": {},
            "chains": {},
        }
    finally:
        if daemon.journal is not None:
            daemon.journal.close()
