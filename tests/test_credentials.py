"""Refused credentials (issue 12 §3): at start, one clear line and an exit status systemd does
not restart into (78, `RestartPreventExitStatus=78` in deploy/tradingd.service); after a
successful start, retried with backoff and reported (an error log and a `reconnecting` status)."""

from __future__ import annotations

import functools
import sys

import pytest
import trio

from connectors.deribit.settings import DeribitSettings
from connectors.deribit.simulator import DEFAULT_ACCOUNTS, DeribitSimulator
from connectors.deribit.simulator import serve as serve_deribit
from connectors.derive.settings import DeriveSettings
from connectors.derive.simulator import DEMO_SESSION_KEY, DEMO_SUBACCOUNT, DEMO_WALLET, DeriveSimulator
from connectors.derive.simulator import serve as serve_derive
from engine import StatusKind, Subscription
from engine._cli import EXIT_CREDENTIALS
from engine._errors import CredentialsRefused
from engine._live import LiveEngine
from tests.live_support import Probe, until
from tests.test_daemon import Daemon, serve_sim

CLIENT_ID, SECRET = next(iter(DEFAULT_ACCOUNTS.items()))
WRONG = "not-the-secret-0123456789"


@pytest.mark.skipif(sys.platform != "linux", reason="the daemon as on the servers")
async def test_a_wrong_secret_at_start_exits_78_at_once_with_one_line_naming_what_to_check(
    nursery: trio.Nursery, tmp_path: trio.Path
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


def test_the_unit_does_not_restart_into_refused_credentials() -> None:
    from tests.test_deploy import settings

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
    live = engine.venues["deribit"]
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
    nursery: trio.Nursery, tmp_path: trio.Path
) -> None:
    import base64

    from config._schema import CatalogConfig
    from connectors.polymarket.settings import PolymarketSettings
    from connectors.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator
    from connectors.polymarket.simulator import serve as serve_polymarket

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
        catalog_settings=CatalogConfig(
            polymarket_cache=str(tmp_path / "catalog.jsonl"), gamma_url=f"http://{base}/gamma"
        ),
    )
    with trio.fail_after(15), pytest.RaisesGroup(CredentialsRefused, flatten_subgroups=True) as caught:
        await engine.run()
    refused: BaseException = caught.value
    while isinstance(refused, BaseExceptionGroup):
        (refused,) = refused.exceptions
    assert str(refused).startswith("polymarket refused the credentials")
    assert "POLYMARKET_API_SECRET" in str(refused) and wrong not in str(refused)
