"""Credentials at start through the CLI (issue 16, the README's refused-credentials example): a
wrong secret ends `tradingd run` with exit 78 and one line even when the state directory holds
a position an earlier run left (restored, no order to move it: the venue keeps it as it is);
but an order resting at the venue keeps the daemon retrying (a refusal at start may be a clock
not yet synced, and 78 is never restarted by systemd: the order would sit unattended), and the
retry's log line says why, and the daemon pushes systemd's start timeout out while it retries
(EXTEND_TIMEOUT_USEC: no READY=1 comes, and 90 s later systemd would stop and start it again).
Only orders the venue took (a venue order id) at the refusing venue hold it. A credential that
is not set at all is a config problem a restart does not fix: 78 too, with one line naming
the variable, never a value."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.daemon_inprocess import _daemon
from tests.support.daemon_process import ROOT, SECRET, Daemon, serve_sim, until
from tradingd.cli.exits import EXIT_CREDENTIALS
from tradingd.engine.model.errors import CredentialsRefused
from tradingd.engine.model.orders import OrderRequest

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
    notes: list[dict[str, str]] = []
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    await sock.bind(str(tmp_path / "notify.sock"))

    async def listen() -> None:
        with sock:
            while True:
                data = await sock.recv(4096)
                notes.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    nursery.start_soon(listen)
    proc = await daemon.start(
        nursery, env={"DERIBIT_CLIENT_SECRET": WRONG, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    )

    def refusals() -> list[dict[str, Any]]:
        return [e for e in daemon.events("daemon.credentials_refused") if e.get("retrying") is not None]

    await until(lambda: len(refusals()) >= 2, within=30, what="the refusal retried")
    assert proc.poll() is None  # still running: the order is not left alone
    assert {e["retrying"] for e in refusals()} == {True}
    assert (
        refusals()[0]["why"] == "1 order the journal holds as working at deribit: retrying, not leaving them"
    )
    # Not ready, so systemd's start timeout is pushed out (by 30 s, every 10 s) rather than
    # reached: no stop and start loop while the refusal is retried.
    (extend,) = await until(
        lambda: [n for n in notes if "EXTEND_TIMEOUT_USEC" in n][:1], within=10, what="EXTEND_TIMEOUT_USEC"
    )
    assert int(extend["EXTEND_TIMEOUT_USEC"]) == 30_000_000
    assert not [n for n in notes if "READY" in n]
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


async def test_only_orders_the_refusing_venue_took_hold_the_retry(tmp_path: Path) -> None:
    """A refusal at start is retried rather than exited for orders the journal holds as working
    at the refusing venue, with the venue's order id. One restored as sent with no answer (no
    venue id) or one at another venue does not hold it: exit 78 (`_refusal_is_fatal`)."""
    daemon = _daemon(tmp_path)
    refused = CredentialsRefused("deribit refused the credentials", venue="deribit")
    try:
        tracker = daemon.engine.flow.tracker
        request = functools.partial(
            OrderRequest, side="buy", size=Decimal(10), price=Decimal(1000), strategy="once"
        )
        tracker.add(request("deribit", "BTC-PERPETUAL", client_order_id="once-a-1"), now_ns=1)  # no venue id
        elsewhere = tracker.add(request("derive", "ETH-PERP", client_order_id="once-a-2"), now_ns=1)
        elsewhere.order_id = "0xd1"
        taken = tracker.add(request("deribit", "BTC-PERPETUAL", client_order_id="once-a-3"), now_ns=1)
        taken.order_id = "USDC-1"
        async with trio.open_nursery() as nursery:
            daemon._nursery = nursery
            assert not daemon._refusal_is_fatal(refused)  # retried: the venue took once-a-3
            taken.order_id = None  # as if restored sent, with no answer
            assert daemon._refusal_is_fatal(refused)  # exit 78: nothing the venue took
            assert daemon.refused is refused
            nursery.cancel_scope.cancel()  # not the stop itself (tested through the CLI above)
    finally:
        if daemon.journal is not None:
            daemon.journal.close()
