"""Issue 13: `tradingd status` (the status file, systemd's STATUS= line and the printed table)
says how many fills wait for a first index price, and its money figures stay JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from tests.support.daemon_inprocess import _daemon
from tests.support.helpers import OPTION, ticker
from tradingd.cli.status import _print_status
from tradingd.engine import Fill, Liquidity, Side


def test_status_counts_the_fills_waiting_for_an_index_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = _daemon(tmp_path)
    try:
        engine = daemon.engine
        engine.registry.add(OPTION)
        bought = Fill(
            venue="deribit",
            instrument=OPTION.symbol,
            ts_exchange=None,
            ts_local=1,
            trade_id="t1",
            side=Side.BUY,
            price=Decimal("0.05"),
            size=Decimal("1"),
            fee=Decimal("0.0003"),
            fee_currency="BTC",
            liquidity=Liquidity.TAKER,
        )
        engine.flow.ledger("once").on_fill(bought, OPTION)  # before any index price
        status = daemon.status()
        assert status["waiting_fills"] == 1
        once = status["strategies"]["once"]
        assert once["waiting_fills"] == 1 and once["positions"] == {f"deribit:{OPTION.symbol}": "1"}
        assert (once["realized_pnl"], once["fees"]) == (0.0, 0.0)  # not booked at a rate of 0: not booked yet
        assert "1 fill waits for an index price" in daemon.status_line()
        # As `tradingd status` reads the file (and adds what it learns of the process).
        _print_status({**orjson.loads(orjson.dumps(status)), "running": True, "age_s": 0.5})
        assert "1 fill waits for a first index price" in capsys.readouterr().out

        engine.market_state.on_ticker(ticker(OPTION.symbol, index=100_000.0, mark=0.05))
        status = orjson.loads(orjson.dumps(daemon.status()))  # money as JSON numbers, not Decimal
        once = status["strategies"]["once"]
        assert status["waiting_fills"] == 0 and once["waiting_fills"] == 0
        assert once["fees"] == 30.0 and isinstance(once["fees"], float)
        assert once["unrealized_pnl"] == 0.0 and once["realized_pnl"] == 0.0
        assert "wait" not in daemon.status_line()
    finally:
        if daemon.journal is not None:
            daemon.journal.close()


def test_status_shows_the_position_mismatches_alerted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A position the venue reports other than ours (engine.runtime.live `_check_positions`):
    in the status file (`position_mismatches`, until a check finds the two agree) and in
    `tradingd status`, both figures whole, on 80 columns."""
    daemon = _daemon(tmp_path)
    try:
        since = 1_790_000_000 * 10**9
        daemon.engine.mismatched[("deribit", "BTC-PERPETUAL")] = {
            "venue": "deribit",
            "instrument": "BTC-PERPETUAL",
            "engine": "12000",
            "venue_holds": "0",
            "since_ns": since,
        }
        status = orjson.loads(orjson.dumps(daemon.status()))
        assert status["position_mismatches"] == [
            {
                "venue": "deribit",
                "instrument": "BTC-PERPETUAL",
                "engine": "12000",
                "venue_holds": "0",
                "since_ns": since,
            }
        ]
        _print_status({**status, "running": True, "age_s": 0.5}, Console(width=80))
        out = " ".join(capsys.readouterr().out.split())
        assert "position mismatch deribit BTC-PERPETUAL: we hold 12,000, the venue 0" in out
        daemon.engine.mismatched.clear()
        assert daemon.status()["position_mismatches"] is None
        # A difference every retry held back: shown, marked unconfirmed, not as a mismatch.
        daemon.engine.mismatched[("deribit", "BTC-PERPETUAL")] = {
            "venue": "deribit",
            "instrument": "BTC-PERPETUAL",
            "engine": "12000",
            "venue_holds": "11990",
            "since_ns": since,
            "confirmed": False,
        }
        (shown,) = orjson.loads(orjson.dumps(daemon.status()))["position_mismatches"]
        assert shown["confirmed"] is False
        _print_status(
            {**status, "position_mismatches": [shown], "running": True, "age_s": 0.5}, Console(width=80)
        )
        out = " ".join(capsys.readouterr().out.split())
        assert "position unconfirmed deribit BTC-PERPETUAL: we hold 12,000, the venue 11,990" in out
        assert "position mismatch" not in out
    finally:
        if daemon.journal is not None:
            daemon.journal.close()
