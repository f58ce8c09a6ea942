"""Issue 16: what the daemon's status says of a feed that went silent with its socket open (the
simulator's `stall_s`): stale, with the time of its last frame, though the session reconnected
and its own age started again; as it was when a stop began; and in the singular for one."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import trio

from tests.support.daemon_inprocess import _daemon
from tests.support.daemon_process import ROOT, Daemon, serve_sim, until
from tradingd.engine.model.words import duration, plural
from tradingd.engine.venue.session import VenueSession

S = 10**9


async def test_a_silent_feed_is_stale_across_reconnects_and_as_it_was_at_the_stop(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    try:
        wall = [1_800_000_000 * S]
        daemon.clock = lambda: wall[0]
        session = daemon.engine.venues["deribit"]
        assert isinstance(session, VenueSession)
        session._ws = cast(Any, object())  # connected (the test plays the session's part)
        session.ready.set()
        daemon.engine.ready.set()
        session.stats.frames = 10
        session._last_rx = trio.current_time()
        venue = daemon.status()["venues"]["deribit"]
        first = venue["last_frame_ns"]
        assert venue["feed"] == "live" and abs(first - wall[0]) < S  # (the test's own trio time runs)
        assert "deribit up; 1 strategy; 0 open orders" in daemon.status_line()

        # Silent for 130 s: the session found it stale and reconnected, its own age restarted.
        wall[0] += 130 * S
        session.stats.stale += 1
        session._last_rx = trio.current_time()
        status = daemon.status()
        venue = status["venues"]["deribit"]
        assert venue["feed"] == "stale" and venue["last_frame_ns"] == first
        assert venue["last_frame_age_s"] < 1  # the session's age: since the new connection
        assert "deribit stale (no frame for 2 min 10 s)" in status["status"]
        # The watchdog (`watchdog_stale_s`, 120 s) sees the silence too, not the reconnect.
        assert daemon.health() == ["deribit: nothing received for 130 s"]

        session.stats.frames += 1  # a frame: the feed lives again
        session._last_rx = trio.current_time()
        wall[0] += S
        assert daemon.status()["venues"]["deribit"]["feed"] == "live"
        assert daemon.health() == []

        # The stop closes the connection; the final status says how the feed was before.
        daemon.stopping = True
        session._ws = None
        daemon._write_status(final=True)
        final = orjson.loads(daemon.paths.status_file.read_bytes())
        assert final["stopped"] is True
        assert final["venues"]["deribit"]["feed"] == "down"  # now
        assert final["venues"]["deribit"]["feed_before_stop"] == "live"  # as the stop began
    finally:
        if daemon.journal is not None:
            daemon.journal.close()


def test_words_for_people() -> None:
    assert plural(1, "strategy", "strategies") == "1 strategy"
    assert plural(2, "strategy", "strategies") == "2 strategies"
    assert plural(0, "open order") == "0 open orders"
    assert plural(12_345, "frame") == "12,345 frames"
    assert [duration(s) for s in (0.04, 9.96, 42.7, 125, 3_600 * 2 + 7 * 60, 86_400 * 3 + 3_600 * 4)] == [
        "0.0 s",
        "10.0 s",
        "42 s",
        "2 min 05 s",
        "2 h 07 min",
        "3 d 4 h",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the servers")
async def test_the_live_tour_stall_then_stop_as_tradingd_status_says_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=0.1, after_s=10_000.0)  # no order in this test
    text = daemon.config.read_text(encoding="utf-8")
    # The venue's own limit, short for the test (30 s by default): the session calls the feed
    # stale after it and reconnects.
    daemon.config.write_text(
        text.replace('currencies = ["BTC"]\n', 'currencies = ["BTC"]\nstale_after_s = 2\n'), encoding="utf-8"
    )
    proc = await daemon.start(nursery)
    cli = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}

    def feed() -> str | None:
        venue = ((daemon.status() or {}).get("venues") or {}).get("deribit") or {}
        found: str | None = venue.get("feed")
        return found

    await until(lambda: feed() == "live" and (daemon.status() or {}).get("ready"), what="a live feed")
    sim.apply_faults({"stall_s": 12.0})  # nothing sent, the socket left open
    status = await until(
        lambda: (s := daemon.status()) and s["venues"]["deribit"]["feed"] == "stale" and s,
        what="a stale feed",
    )
    assert "deribit stale (no frame for" in status["status"]
    venue = status["venues"]["deribit"]
    assert (status["updated_ns"] - venue["last_frame_ns"]) / 1e9 > 2
    shown = await trio.run_process(
        [*cli, "status", "--config", str(daemon.config)], capture_stdout=True, env=env, check=False
    )
    out = " ".join(shown.stdout.decode().split())
    assert shown.returncode == 0 and "stale: no frame for" in out, out

    # The stall has been seen, by the status file and by `tradingd status`: end it now rather than
    # wait out its 12 s (long only so that a loaded machine sees it). A connection still waits
    # out its own sleep: the session's next reconnect is served.
    sim.faults.stall(0)
    await until(lambda: feed() == "live", within=30, what="the feed back after the stall")
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0
    stopped = await trio.run_process(
        [*cli, "status", "--config", str(daemon.config)], capture_stdout=True, env=env, check=False
    )
    out = " ".join(stopped.stdout.decode().split())
    assert stopped.returncode == 3 and "stopped at" in out and "was live" in out, out
    assert "last status: live: deribit up; 1 strategy" in out  # as the stop began, not "down"
    assert "running" not in out.replace("ran ", "")
