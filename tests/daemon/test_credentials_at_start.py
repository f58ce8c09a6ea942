"""Credentials at start through the CLI (issue 16, the README's refused-credentials example): a
wrong secret ends `tradingd run` with exit 78 and one line even when the state directory holds
a position an earlier run left (restored, no order to move it: the venue keeps it as it is);
but an order resting at the venue keeps the daemon retrying (a refusal at start may be a clock
not yet synced, and 78 is never restarted by systemd: the order would sit unattended), and the
retry's log line says why. A credential that is not set at all is a config problem a restart
does not fix: 78 too, with one line naming the variable, never a value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.daemon_process import ROOT, SECRET, Daemon, serve_sim, until
from tradingd.cli.exits import EXIT_CREDENTIALS

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the daemon as on the servers")

WRONG = "not-the-secret-but-long-enough-0123456789"


async def _left_behind(nursery: trio.Nursery, tmp_path: Path, below: float) -> Daemon:
    """A daemon run that leaves a position (`below` 0: a taker buy) or a resting order (a buy
    under the market), stopped with SIGTERM (orders are left working: no cancel_on_shutdown)."""
    _, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=below)
    proc = await daemon.start(nursery)

    def held() -> bool:
        status = daemon.status() or {}
        strategy = (status.get("strategies") or {}).get("once") or {}
        return bool(strategy.get("positions") if below == 0 else strategy.get("open_orders"))

    await until(held, within=30, what="a position or a resting order to leave behind")
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=20) == 0
    return daemon


async def test_a_wrong_secret_exits_78_even_with_a_position_an_earlier_run_left(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    daemon = await _left_behind(nursery, tmp_path, below=0.0)
    await daemon.start(nursery, env={"DERIBIT_CLIENT_SECRET": WRONG})
    code = await daemon.wait_exit(within=30)
    output = daemon.logs[1].read_text(encoding="utf-8")
    assert code == EXIT_CREDENTIALS, output[-3000:]
    restored = daemon.events("journal.restored")[-1]
    assert restored["ledger"] and not restored["live"]  # the earlier run's position, no order
    lines = [line for line in output.splitlines() if line.startswith("tradingd: error:")]
    assert len(lines) == 1 and "deribit refused the credentials" in lines[0], output[-3000:]
    assert "DERIBIT_CLIENT_SECRET" in lines[0] and WRONG not in output
    refusals = [e for e in daemon.events("daemon.credentials_refused") if e.get("retrying") is not None]
    assert [e["retrying"] for e in refusals] == [False]  # at once: no retry first, then a stop


async def test_a_refusal_at_start_with_an_order_resting_at_the_venue_retries_and_says_why(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    daemon = await _left_behind(nursery, tmp_path, below=0.1)
    proc = await daemon.start(nursery, env={"DERIBIT_CLIENT_SECRET": WRONG})

    def refusals() -> list[dict[str, Any]]:
        return [e for e in daemon.events("daemon.credentials_refused") if e.get("retrying") is not None]

    await until(lambda: len(refusals()) >= 2, within=30, what="the refusal retried")
    assert proc.poll() is None  # still running: the order is not left alone
    assert {e["retrying"] for e in refusals()} == {True}
    assert (
        refusals()[0]["why"]
        == "1 order restored from the journal rests at the venue: retrying, not leaving them"
    )
    assert daemon.events("journal.restored")[-1]["live"] == 1
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=20) == 0


def _run_without(tmp_path: Path, *unset: str) -> tuple[int, str]:
    config = tmp_path / "live.toml"
    Daemon(tmp_path, "127.0.0.1:9", below=0.1)  # writes live.toml: no venue is reached
    env = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("DERIBIT_")}
    env.update(
        {"PYTHONPATH": str(ROOT), "DERIBIT_CLIENT_ID": "tradingd-sim", "DERIBIT_CLIENT_SECRET": SECRET}
    )
    for name in unset:
        env.pop(name, None)
    cmd = [sys.executable, "-c", "import sys; from tradingd.cli.main import main; sys.exit(main())"]
    done = subprocess.run(
        [*cmd, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize("unset", ["DERIBIT_CLIENT_SECRET", "DERIBIT_CLIENT_ID"])
def test_a_credential_not_set_exits_78_with_one_line_naming_the_variable(tmp_path: Path, unset: str) -> None:
    code, stderr = _run_without(tmp_path, unset)
    assert code == EXIT_CREDENTIALS, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tradingd: error:")]
    assert len(lines) == 1, stderr
    assert f"{unset} not set" in lines[0]
    other = {"DERIBIT_CLIENT_SECRET": SECRET, "DERIBIT_CLIENT_ID": "tradingd-sim"}
    assert all(value not in stderr for name, value in other.items() if name != unset)
    assert "Traceback" not in stderr
