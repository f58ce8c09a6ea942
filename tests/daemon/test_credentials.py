"""Refused credentials (issue 12 §3): at start, one clear line and an exit status systemd does
not restart into (78, `RestartPreventExitStatus=78` in deploy/tradingd.service); after a
successful start, retried with backoff and reported (an error log and a `reconnecting` status)."""

from __future__ import annotations

import functools
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

from tests.support.daemon_process import Daemon, serve_sim, sim_orders
from tests.support.daemon_process import until as until_file
from tests.support.live_support import Probe, until
from tests.support.sessions import venue_session
from tests.support.systemd_unit import settings
from tradingd.cli.main import EXIT_CREDENTIALS
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.engine import StatusKind, Subscription
from tradingd.engine.model.errors import CredentialsRefused
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator
from tradingd.simulators.deribit.simulator import serve as serve_deribit
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)
from tradingd.simulators.derive.simulator import serve as serve_derive

CLIENT_ID, SECRET = next(iter(DEFAULT_ACCOUNTS.items()))
WRONG = "not-the-secret-0123456789"


@pytest.mark.skipif(sys.platform != "linux", reason="the daemon as on the servers")
async def test_a_wrong_secret_at_start_exits_78_at_once_with_one_line_naming_what_to_check(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim, address = await serve_sim(nursery)
    daemon = Daemon(tmp_path, address, below=1.0)
    t0 = trio.current_time()
    await daemon.start(nursery, env={"DERIBIT_CLIENT_SECRET": WRONG})
    code = await daemon.wait_exit(within=30)
    elapsed = trio.current_time() - t0
    assert code == EXIT_CREDENTIALS == 78
    assert elapsed < 20  # no retrying forever (it took about 2 s here, most of it start-up)
    assert sim.method_counts["public/auth"] == 1  # refused once, not asked again
    output = daemon.logs[0].read_text(encoding="utf-8")
    lines = [line for line in output.splitlines() if line.startswith("tradingd: error:")]
    assert len(lines) == 1, output
    (line,) = lines
    assert "deribit refused the credentials" in line and "invalid_credentials (13004)" in line
    assert "DERIBIT_CLIENT_ID" in line and "DERIBIT_CLIENT_SECRET" in line
    assert WRONG not in output and "Traceback" not in output
    # The JSON log says it as an error too, for journald.
    assert daemon.events("session.credentials_refused")
    # Through the orderly stop (the SIGTERM path: strategies stopped, orders settled, journal
    # closed), then the exit line.
    assert daemon.events("daemon.stopping") and daemon.events("daemon.stopped")
    assert [e["code"] for e in daemon.events("daemon.exit")] == [78]
    assert [e["retrying"] for e in daemon.events("daemon.credentials_refused")] == [False]


def test_the_unit_waits_for_the_clock_to_be_synchronised() -> None:
    # A login signs the current time: before NTP, a refusal is the clock's, not the secret's.
    unit = settings()
    for key in ("Wants", "After"):
        assert "time-sync.target" in " ".join(unit[key]).split(), key
    assert "network-online.target" in " ".join(unit["After"]).split()


@pytest.mark.skipif(sys.platform != "linux", reason="the daemon as on the servers")
async def test_a_refusal_while_another_venue_trades_is_retried_and_alerted_never_an_exit(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Deribit trades (a resting order); Derive, configured with a key it refuses, comes up only
    # later (its first handshake ever): leaving Deribit's book alone would be worse than retrying.
    sim, address = await serve_sim(nursery)
    with socket.socket() as probe:  # a free port for the Derive simulator, started later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = Daemon(tmp_path, address, below=0.1, strategy_start_wait_s=0.2)
    text = daemon.config.read_text(encoding="utf-8")
    derive = f"""
[venues.derive]
url = "ws://127.0.0.1:{port}/ws"
rest_url = "http://127.0.0.1:{port}"
currencies = ["ETH"]
instrument_types = ["perp"]
reconnect_base_s = 0.05
reconnect_cap_s = 0.2
"""
    daemon.config.write_text(text.replace("[daemon]", derive + "[daemon]"), encoding="utf-8")
    stranger = {
        "DERIVE_WALLET": DEMO_WALLET,
        "DERIVE_SESSION_KEY": "0x" + "11" * 32,  # not a session key of the wallet
        "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
    }
    proc = await daemon.start(nursery, env=stranger)
    placed = await until_file(
        lambda: [c for c, _, s in daemon.orders() if s == "open"], what="Deribit's order"
    )
    derive_sim = DeriveSimulator(seed=5, step_s=0.05)
    await nursery.start(functools.partial(serve_derive, derive_sim, port=port))
    await until_file(lambda: derive_sim.requests_for("public/login") >= 3, what="Derive's login retried")
    assert proc.returncode is None  # still up
    alerts = daemon.events("daemon.credentials_refused")
    assert alerts and all(e["level"] == "critical" and e["retrying"] for e in alerts)
    assert alerts[0]["venue"] == "derive" and "DERIVE_SESSION_KEY" in alerts[0]["error"]
    assert not daemon.events("daemon.exit")
    status = await until_file(
        lambda: (s := daemon.status()) and s.get("credentials_refused") and s, what="the status file"
    )
    assert "derive" in status["credentials_refused"]
    # Deribit goes on: its order still resting, its feed still arriving.
    assert sim_orders(sim, placed[0])[0].state == "open"
    frames = status["venues"]["deribit"]["frames"]
    await until_file(
        lambda: (daemon.status() or {})["venues"]["deribit"]["frames"] > frames, what="Deribit's feed"
    )
    proc.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(within=12) == 0


def test_the_unit_does_not_restart_into_refused_credentials() -> None:
    assert settings()["RestartPreventExitStatus"] == [str(EXIT_CREDENTIALS)]


async def test_a_refused_login_at_start_ends_the_derive_session_naming_what_to_check(
    nursery: trio.Nursery,
) -> None:
    sim = DeriveSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_derive, sim))
    base = address.removeprefix("http://")
    stranger = {
        "DERIVE_WALLET": DEMO_WALLET,
        "DERIVE_SESSION_KEY": "0x" + "11" * 32,  # not a session key of the wallet
        "DERIVE_SUBACCOUNT_ID": str(DEMO_SUBACCOUNT),
    }
    engine = LiveEngine(
        [],
        {"derive": DeriveSettings(url=f"ws://{base.removeprefix('http://')}/ws", reconnect_base_s=0.05)},
        mode="live",
        environ=stranger,
    )
    with trio.fail_after(15), pytest.RaisesGroup(CredentialsRefused, flatten_subgroups=True) as caught:
        await engine.run()
    refused: BaseException = caught.value
    while isinstance(refused, BaseExceptionGroup):  # through the engine's nurseries
        (refused,) = refused.exceptions
    assert str(refused).startswith("derive refused the credentials")
    assert "DERIVE_WALLET, DERIVE_SESSION_KEY and DERIVE_SUBACCOUNT_ID" in str(refused)
    assert sim.requests_for("public/login") == 1
    assert DEMO_SESSION_KEY not in str(refused)


async def test_a_refusal_after_a_successful_start_is_retried_with_backoff_and_reported(
    nursery: trio.Nursery,
) -> None:
    sim = DeribitSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_deribit, sim))
    base = address.removeprefix("http://")
    probe = Probe("p", [Subscription("deribit", "BTC-PERPETUAL", {"ticker"})])
    engine = LiveEngine(
        [probe],
        {
            "deribit": DeribitSettings(
                url=f"ws://{base}/ws/api/v2",
                rest_url=f"http://{base}",
                reconnect_base_s=0.05,
                reconnect_cap_s=0.2,
            )
        },
        mode="live",
        environ={"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET},
        paper_latency_s=0.0,
    )
    await nursery.start(engine.run)
    with trio.fail_after(15):
        await engine.ready.wait()
    live = venue_session(engine, "deribit", DeribitSession)
    account = sim.accounts[CLIENT_ID]
    account.secret = "rotated-at-the-venue"  # the key changed under a running daemon
    auths = sim.method_counts["public/auth"]
    sim.apply_faults({"drop": True})
    await until(lambda: sim.method_counts["public/auth"] >= auths + 3, within=15, what="auth retried")

    def refusals() -> list[object]:
        return [s for s in probe.statuses(StatusKind.RECONNECTING) if s.data.get("credentials_refused")]

    await until(refusals, what="a reconnecting status saying the credentials were refused")
    assert "invalid_credentials" in str(refusals()[0].data["error"])  # type: ignore[attr-defined]
    assert not live.authenticated
    # Fixed at the venue: the session comes back on its own.
    account.secret = SECRET
    await until(lambda: live.authenticated and "user.orders.any.any.raw" in live.channels, within=15)


async def test_a_wrong_polymarket_api_secret_at_start_ends_the_session_naming_what_to_check(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import base64

    from tradingd.connectors.polymarket.settings import PolymarketSettings
    from tradingd.engine.venue.catalog import CatalogSettings
    from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator
    from tradingd.simulators.polymarket.simulator import serve as serve_polymarket

    sim = PolymarketSimulator(seed=5, step_s=0.05)
    (address,) = await nursery.start(functools.partial(serve_polymarket, sim))
    base = address.removeprefix("http://")
    wrong = base64.urlsafe_b64encode(b"\x07" * 32).decode()  # well formed, not the key's
    engine = LiveEngine(
        [],
        {"polymarket": PolymarketSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}")},
        mode="live",
        environ={
            "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
            "POLYMARKET_API_KEY": DEMO_API.key,
            "POLYMARKET_API_SECRET": wrong,
            "POLYMARKET_API_PASSPHRASE": DEMO_API.passphrase,
        },
        catalog_settings={
            "polymarket": CatalogSettings(cache=tmp_path / "catalog.jsonl", source_url=f"http://{base}/gamma")
        },
    )
    with trio.fail_after(15), pytest.RaisesGroup(CredentialsRefused, flatten_subgroups=True) as caught:
        await engine.run()
    refused: BaseException = caught.value
    while isinstance(refused, BaseExceptionGroup):
        (refused,) = refused.exceptions
    assert str(refused).startswith("polymarket refused the credentials")
    assert "POLYMARKET_API_SECRET" in str(refused) and wrong not in str(refused)
