"""The venue's share balances against the engine's positions (issue 13 review, the fail-safe of
a full exit): at each reconciliation (start, every reconnection) the engine asks Polymarket how
many shares it holds of each token it has a position in (`GET /balance-allowance`, asset type
CONDITIONAL, as the official client asks), and alerts a difference with both figures."""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import structlog
import trio

from config._schema import CatalogConfig
from connectors.polymarket.codec import PolymarketDecoder
from connectors.polymarket.execution import ClobRest, PolymarketExecution
from connectors.polymarket.settings import PolymarketSettings
from connectors.polymarket.signing import OrderSigner
from connectors.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator, serve
from engine import BookUpdate, InstrumentRegistry, OrderState, StatusKind, Subscription
from engine._live import LiveEngine
from tests.live_support import Probe, until

V = "polymarket"
CREDS = {
    "POLYMARKET_PRIVATE_KEY": DEMO_ACCOUNT.private_key,
    "POLYMARKET_API_KEY": DEMO_API.key,
    "POLYMARKET_API_SECRET": DEMO_API.secret,
    "POLYMARKET_API_PASSPHRASE": DEMO_API.passphrase,
}


async def test_the_venues_share_balance_is_read_in_millionths_as_the_official_client_asks() -> None:
    simulator = PolymarketSimulator(seed=3, mine_s=0.01, confirm_s=0.01)
    token = simulator.feed.markets[0].yes
    simulator.accounts[DEMO_API.key].positions[token] = Decimal("4.8935")
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    signer = OrderSigner(DEMO_ACCOUNT.private_key)
    asked: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        asked.append(request)

    rest = ClobRest(
        "http://sim",
        api=DEMO_API,
        address=signer.address,
        client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=simulator), event_hooks={"request": [hook]}
        ),
    )
    ex = PolymarketExecution(rest, signer, registry, decoder.outcomes)
    other = simulator.feed.markets[1].yes
    assert await ex.venue_positions([token, other]) == {token: Decimal("4.8935"), other: Decimal(0)}
    params = dict(asked[0].url.params)
    assert params == {"asset_type": "CONDITIONAL", "token_id": token, "signature_type": "0"}
    answer = orjson.loads(await rest.call("GET", "/balance-allowance", params=params, auth=True))
    assert answer["balance"] == "4893500"  # millionths, as the venue's refusals count them


async def test_a_reconciliation_alerts_a_position_the_venue_does_not_hold(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A taker buy of 7: the engine and the venue both hold 7, and a reconnection's
    reconciliation finds nothing to say. Then the venue holds fewer shares than the engine (a
    fee taken in shares, a transfer outside the daemon): the next reconciliation alerts it,
    critical, with both figures; the venue's figure is what an exit may sell."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    token = simulator.feed.markets[0].yes
    probe = Probe("p", [Subscription(V, token)])
    engine = LiveEngine(
        [probe],
        {V: PolymarketSettings(url=f"ws://{base}/ws", rest_url=f"http://{base}", reconnect_base_s=0.2)},
        mode="live",
        environ=CREDS,
        paper_latency_s=0.0,
        catalog_settings=CatalogConfig(
            polymarket_cache=str(tmp_path / "catalog.jsonl"), gamma_url=f"http://{base}/gamma"
        ),
    )
    await nursery.start(engine.run)
    with trio.fail_after(15):
        await engine.ready.wait()
    await until(lambda: bool(probe.of(BookUpdate, token)))
    ask = Decimal(repr(probe.of(BookUpdate, token)[-1].best_ask))
    bought = await probe.ctx.buy(V, token, 7, price=ask + Decimal("0.02"))
    assert bought.status is OrderState.FILLED
    account = simulator.accounts[DEMO_API.key]
    assert probe.ctx.position(V, token) == account.positions[token] == 7

    async def reconnect_and_reconcile() -> None:
        done = engine.reconciliations
        drops = len(probe.statuses(StatusKind.DISCONNECTED))
        simulator.drop_all()
        await until(lambda: len(probe.statuses(StatusKind.DISCONNECTED)) > drops)
        await until(lambda: engine.reconciliations > done)

    asked = simulator.requests_for("GET /balance-allowance")
    await reconnect_and_reconcile()
    assert simulator.requests_for("GET /balance-allowance") > asked
    assert engine.position_mismatches == 0
    account.positions[token] = Decimal("6.8935")  # the venue now holds less than the engine
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile()
        await until(lambda: engine.position_mismatches >= 1)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["log_level"], alert["instrument"], alert["engine"], alert["venue_holds"]) == (
        "critical",
        token,
        "7",
        "6.8935",
    )
    assert probe.ctx.position(V, token) == 7  # the ledger moves by fills only (alerted, not rewritten)
