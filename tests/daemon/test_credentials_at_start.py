"""Credentials at start through the CLI (issue 16, the README's refused-credentials example): a
wrong secret ends `tradingd run` with exit 78 and one line even when the state directory holds
what an earlier run left (a position, a resting order: restored, never reached with this
process), and a credential that is not set at all is a config problem a restart does not fix:
78 too, with one line naming the variable, never a value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.support.daemon_process import ROOT, SECRET, Daemon, serve_sim, until
from tradingd.cli.exits import EXIT_CREDENTIALS

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the daemon as on the servers")

WRONG = "not-the-secret-but-long-enough-0123456789"


@pytest.mark.parametrize(("below", "left"), [(0.0, "a position"), (0.1, "a resting order")])
async def test_a_wrong_secret_exits_78_even_with_what_an_earlier_run_left_in_the_journal(
    nursery: trio.Nursery, tmp_path: Path, below: float, left: str
) -> None:
    _, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=below)
    proc = await daemon.start(nursery)

    def held() -> bool:
        status = daemon.status() or {}
        strategy = (status.get("strategies") or {}).get("once") or {}
        return bool(strategy.get("positions") if below == 0 else strategy.get("open_orders"))

    await until(held, within=30, what=f"{left} to leave behind")
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=20) == 0  # orders are left working (no cancel_on_shutdown)

    await daemon.start(nursery, env={"DERIBIT_CLIENT_SECRET": WRONG})
    code = await daemon.wait_exit(within=30)
    output = daemon.logs[1].read_text(encoding="utf-8")
    assert code == EXIT_CREDENTIALS, output[-3000:]
    restored = daemon.events("journal.restored")[-1]
    assert restored["ledger"] or restored["live"]  # the earlier run's book was there
    lines = [line for line in output.splitlines() if line.startswith("tradingd: error:")]
    assert len(lines) == 1 and "deribit refused the credentials" in lines[0], output[-3000:]
    assert "DERIBIT_CLIENT_SECRET" in lines[0] and WRONG not in output
    refusals = [e for e in daemon.events("daemon.credentials_refused") if e.get("retrying") is not None]
    assert [e["retrying"] for e in refusals] == [False]  # at once: no retry first, then a stop


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
