"""The daily-loss start survives a restart whoever rolled the UTC day: an order's risk check at
00:00:00 rolls it before the status loop's once-a-second call, and the loop still journals it."""

from __future__ import annotations

from pathlib import Path

import attrs

from tests.support.daemon_process import CLIENT_ID, SECRET
from tests.support.daemon_strategies import LIVE_ONCE_CONFIG
from tests.support.helpers import PERP, request, ticker
from tradingd.cli.settings import daemon_settings
from tradingd.config import load_config
from tradingd.engine.daemon import Daemon
from tradingd.engine.daemon.service import release_state_dir

DAY = 86_400 * 10**9
CONFIG = LIVE_ONCE_CONFIG


def _daemon(path: Path, now: int) -> Daemon:
    return Daemon(
        daemon_settings(load_config(path)),
        environ={"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET},
        clock=lambda: now,
    )


def _stop(daemon: Daemon) -> None:
    assert daemon.journal is not None
    daemon.journal.close()
    release_state_dir(daemon._state_lock)
    daemon._state_lock = None


def test_a_day_rolled_by_an_order_check_is_journaled_and_restored(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text(CONFIG, encoding="utf-8")
    daemon = _daemon(path, DAY * 10 + 5)
    flow = daemon.engine.flow
    flow.registry.add(PERP)
    daemon.engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_000.0))
    risk = flow.risk
    equity = -100.0
    risk.equity_of = lambda scope: equity
    daemon._journal_risk_day(DAY * 10 + 5)  # the status loop: day 10 journaled
    equity = -500.0  # the day's losses, at 00:00:00 of day 11
    req = attrs.evolve(request("buy", "10", "90000", instrument=PERP.symbol, cid="once-1"), strategy="once")
    risk.check(req, now_ns=DAY * 11 + 1)  # the order's check rolls day 11 first
    assert risk.day == 11 and risk.day_start_equity[None] == -500.0
    daemon._journal_risk_day(DAY * 11 + 10**9)  # the status loop's next second
    equity = -800.0  # more losses on day 11, then a restart
    _stop(daemon)
    again = _daemon(path, DAY * 11 + 2 * 10**9)
    try:
        risk = again.engine.flow.risk
        assert risk.day == 11 and risk.day_start_equity == {None: -500.0, "once": -500.0}  # not day 10's -100
        risk.equity_of = lambda scope: equity
        again._journal_risk_day(DAY * 11 + 3 * 10**9)  # the restored day is not rolled again
        assert risk.day_start_equity == {None: -500.0, "once": -500.0} and risk.today_pnl(None) == -300.0
    finally:
        _stop(again)
