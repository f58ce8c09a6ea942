"""The venue's share balances against the engine's positions (issue 13 review, the fail-safe of
a full exit): at each reconciliation (start, every reconnection) the engine asks Polymarket how
many shares it holds of each token it has a position in (`GET /balance-allowance`, asset type
CONDITIONAL, as the official client asks), and alerts a difference with both figures."""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import pytest
import structlog
import trio

from tests.support.live_support import Probe, until
from tests.support.polymarket_live import API, V, start
from tradingd.connectors.polymarket.codec import PolymarketDecoder
from tradingd.connectors.polymarket.execution import ClobRest, PolymarketExecution
from tradingd.connectors.polymarket.signing import OrderSigner
from tradingd.engine import BookUpdate, OrderState, StatusKind, Subscription
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.sim.server import Receive, Scope, Send
from tradingd.engine.venue import Holdings
from tradingd.simulators.polymarket.simulator import DEMO_ACCOUNT, DEMO_API, PolymarketSimulator, serve


class SlowBalances(PolymarketSimulator):
    """The simulator, answering `GET /balance-allowance` only after `delay_s`."""

    def __init__(self, delay_s: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.delay_s = delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/balance-allowance":
            await trio.sleep(self.delay_s)
        await super().__call__(scope, receive, send)


def _execution(simulator: PolymarketSimulator) -> PolymarketExecution:
    registry = InstrumentRegistry()
    decoder = PolymarketDecoder(registry)
    signer = OrderSigner(DEMO_ACCOUNT.private_key)
    rest = ClobRest(
        "http://sim",
        api=API,
        address=signer.address,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)),
    )
    return PolymarketExecution(rest, signer, registry, decoder.outcomes)


async def test_share_balances_are_asked_several_at_a_time(autojump_clock: trio.abc.Clock) -> None:
    """Eight tokens, each answered after 1 s: asked a few at a time (not one after the other,
    which took 8 s at every reconciliation)."""
    simulator = SlowBalances(1.0, seed=3, mine_s=0.01, confirm_s=0.01)
    tokens = [t for m in simulator.feed.markets[:4] for t in (m.yes, m.no)]
    ex = _execution(simulator)
    t0 = trio.current_time()
    assert await ex.venue_positions(tokens) == Holdings(dict.fromkeys(tokens, Decimal(0)))
    assert trio.current_time() - t0 < 3.0


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
        api=API,
        address=signer.address,
        client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=simulator), event_hooks={"request": [hook]}
        ),
    )
    ex = PolymarketExecution(rest, signer, registry, decoder.outcomes)
    other = simulator.feed.markets[1].yes
    assert await ex.venue_positions([token, other]) == Holdings({token: Decimal("4.8935"), other: Decimal(0)})
    params = dict(next(r for r in asked if r.url.params.get("token_id") == token).url.params)
    assert params == {"asset_type": "CONDITIONAL", "token_id": token, "signature_type": "0"}
    answer = orjson.loads(await rest.call("GET", "/balance-allowance", params=params, auth=True))
    assert answer["balance"] == "4893500"  # millionths, as the venue's refusals count them


async def _trading(
    nursery: trio.Nursery, tmp_path: Path, simulator: PolymarketSimulator
) -> tuple[LiveEngine, Probe, str]:
    """The engine trading the simulator's first market, started, with a book of it."""
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    token = simulator.feed.markets[0].yes
    probe = Probe("p", [Subscription(V, token)])
    engine = await start(
        nursery, base, probe, cache=tmp_path / "catalog.jsonl", ready_within=15, reconnect_base_s=0.2
    )
    await until(lambda: bool(probe.of(BookUpdate, token)))
    engine.position_recheck_s = 0.3
    return engine, probe, token


async def _take(probe: Probe, token: str, side: str, size: Decimal | int) -> None:
    """A taker order of `size` that fills at once."""
    top = probe.of(BookUpdate, token)[-1]
    if side == "buy":
        done = await probe.ctx.buy(V, token, size, price=Decimal(repr(top.best_ask)) + Decimal("0.02"))
    else:
        done = await probe.ctx.sell(V, token, size, price=Decimal(repr(top.best_bid)) - Decimal("0.02"))
    assert done.status is OrderState.FILLED


async def reconnect_and_reconcile(engine: LiveEngine, probe: Probe, simulator: PolymarketSimulator) -> None:
    """Drop the connections; return once the reconciliation after it has checked positions
    (`position_checks`, counted at the end of the check, not when the reconciliation starts)."""
    done = engine.position_checks
    drops = len(probe.statuses(StatusKind.DISCONNECTED))
    simulator.drop_all()
    await until(lambda: len(probe.statuses(StatusKind.DISCONNECTED)) > drops)
    await until(lambda: engine.position_checks > done)


async def test_a_reconciliation_alerts_a_position_the_venue_does_not_hold(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A taker buy of 7: the engine and the venue both hold 7, and a reconnection's
    reconciliation finds nothing to say. Then the venue holds fewer shares than the engine (a
    fee taken in shares, a transfer outside the daemon): the next reconciliation alerts it,
    critical, with both figures; the venue's figure is what an exit may sell. The ledger is
    not rewritten: it moves only by fills (issue 16's decision)."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    account = simulator.accounts[DEMO_API.key]
    assert probe.ctx.position(V, token) == account.positions[token] == 7

    asked = simulator.requests_for("GET /balance-allowance")
    await reconnect_and_reconcile(engine, probe, simulator)
    assert simulator.requests_for("GET /balance-allowance") > asked
    assert engine.position_mismatches == 0
    account.positions[token] = Decimal("6.8935")  # the venue now holds less than the engine
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    assert engine.position_mismatches == 1
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["log_level"], alert["instrument"], alert["engine"], alert["venue_holds"]) == (
        "critical",
        token,
        "7",
        "6.8935",
    )
    assert alert["action"] == "alerted: the ledger moves only by fills; check the account"
    assert probe.ctx.position(V, token) == 7  # the ledger moves by fills only (alerted, not rewritten)


async def test_a_closed_position_is_compared_until_its_market_is_resolved(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A position bought and sold back is 0 in the ledger: still compared (a venue holding what
    we hold flat is a difference too), so tokens the venue still holds are alerted. Once its
    market is resolved (settled to 0 in the ledger while the venue keeps its tokens until they
    are redeemed, losing ones never), nothing is compared: its balance is not asked and
    nothing is alerted, reconnection after reconnection."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    await until(lambda: bool(probe.of(BookUpdate, token)[-1].best_bid))
    held = probe.ctx.position(V, token)
    await _take(probe, token, "sell", held)
    assert probe.ctx.position(V, token) == 0
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(7)  # the venue keeps the tokens
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (Decimal(alert["engine"]), Decimal(alert["venue_holds"])) == (Decimal(0), Decimal(7))
    inst = engine.registry.require(V, token)
    engine.registry.add(attrs.evolve(inst, active=False))  # its market resolved
    asked = simulator.requests_for("GET /balance-allowance")
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            await reconnect_and_reconcile(engine, probe, simulator)
    assert simulator.requests_for("GET /balance-allowance") == asked
    assert engine.position_mismatches == 1 and not engine.mismatched
    assert not [e for e in logs if e["event"] == "position.mismatch"]


async def test_a_balance_the_chain_has_not_moved_yet_is_asked_again_not_alerted(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A fill is booked when the venue matches the trade; the share balance moves when it is
    mined (§2.2). A reconciliation in between sees the venue short: it asks again after
    `position_recheck_s` and alerts only a difference that stays."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    account = simulator.accounts[DEMO_API.key]
    held = account.positions[token]
    account.positions[token] = Decimal(0)  # matched, not mined: the balance has not moved yet
    asked = simulator.requests_for("GET /balance-allowance")

    async def mined_after_the_first_look() -> None:
        await until(lambda: simulator.requests_for("GET /balance-allowance") > asked)
        account.positions[token] = held

    nursery.start_soon(mined_after_the_first_look)
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    assert simulator.requests_for("GET /balance-allowance") >= asked + 2  # asked, then again
    assert engine.position_mismatches == 0
    assert not [e for e in logs if e["event"] == "position.mismatch"]


async def test_a_venue_slow_to_say_its_balances_does_not_hold_the_reconciliation(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """`GET /balance-allowance` answered after 60 s: the check gives up after
    `position_check_s` (logged), and the reconciliation ends."""
    simulator = SlowBalances(0.0, seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    engine.position_check_s = 1.0
    simulator.delay_s = 60.0
    t0 = trio.current_time()
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    assert trio.current_time() - t0 < 5.0
    assert [e for e in logs if e["event"] == "positions.unavailable"]
    assert engine.position_mismatches == 0


async def test_a_fill_not_yet_mined_past_the_recheck_is_alerted_and_kept(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A trade matched and mined later than `position_recheck_s`: the venue's balance stays
    short of the fill at both looks, so it is alerted, but the ledger keeps the 7 shares the
    fill booked; once mined, the next reconciliation finds them agree and the alert is cleared
    (`mismatched`, the status file's `position_mismatches`). Taking the venue's 0 would have
    lost them for good (issue 16 review)."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    account = simulator.accounts[DEMO_API.key]
    held = account.positions[token]
    account.positions[token] = Decimal(0)  # matched, mined later than the recheck
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["engine"], alert["venue_holds"]) == ("7", "0")
    assert probe.ctx.position(V, token) == 7
    assert list(engine.mismatched) == [(V, token)]
    account.positions[token] = held  # now mined
    await reconnect_and_reconcile(engine, probe, simulator)
    assert probe.ctx.position(V, token) == 7
    assert engine.position_mismatches == 1 and not engine.mismatched


async def test_a_trade_that_fails_after_a_mismatch_goes_flat_not_short(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A trade matched that the chain will fail: the venue's balance never moves, so a
    reconciliation meanwhile sees 7 against 0 (alerted). Then the trade FAILS and its reversal
    takes the 7 out of the ledger: flat, as the venue is. Had the alert set the ledger to the
    venue's 0, the reversal would have left it short 7 (issue 16 review)."""
    simulator = PolymarketSimulator(seed=5, step_s=0.05, mine_s=3.0, confirm_s=0.2)
    simulator.fail_trades = 1
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    await _take(probe, token, "buy", 7)
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(0)  # the chain never moves it
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
        assert probe.ctx.position(V, token) == 7  # alerted or not, not rewritten
        await until(
            lambda: any(e["event"] == "order.fill_reversed" for e in logs), what="the trade failed", within=15
        )
    assert probe.ctx.position(V, token) == 0


class UnreadableBalance(PolymarketSimulator):
    """The simulator, answering `GET /balance-allowance` of the tokens in `spoiled`, and the
    next `spoil_next[token]` asks of a token, with a balance that is no whole number of
    millionths (no share count)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.spoiled: set[str] = set()
        self.spoil_next: dict[str, int] = {}

    def _spoils(self, token: str | None) -> bool:
        if token in self.spoiled:
            return True
        left = self.spoil_next.get(token or "", 0)
        if left:
            self.spoil_next[token or ""] = left - 1
        return left > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode().split("&") if "=" in p)
        if (
            scope["type"] == "http"
            and scope.get("path") == "/balance-allowance"
            and self._spoils(query.get("token_id"))
        ):
            body = b'{"balance": "4893500.5", "allowances": {}}'
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await super().__call__(scope, receive, send)


async def test_a_balance_that_cannot_be_read_is_unknown_never_zero() -> None:
    """One token's balance the venue answers unreadably: unknown, never 0. The answer holds the
    others' balances and names it unread (`Holdings.unread`); the token is counted at each look
    (`balances_unknown`) and alerted once, again only after it has read. Before, one unknown
    balance made the whole answer a `VenueError`: none of the venue's positions compared."""
    simulator = UnreadableBalance(seed=3, mine_s=0.01, confirm_s=0.01)
    token, other = simulator.feed.markets[0].yes, simulator.feed.markets[1].yes
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(7)
    simulator.accounts[DEMO_API.key].positions[other] = Decimal(3)
    simulator.spoiled.add(token)
    ex = _execution(simulator)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            assert await ex.venue_positions([token, other]) == Holdings(
                {other: Decimal(3)}, unread=frozenset({token})
            )
    (alert,) = [e for e in logs if e["event"] == "balance.unreadable"]
    assert (alert["log_level"], alert["instrument"]) == ("error", token)
    assert ex.balances_unknown == 2
    simulator.spoiled.clear()
    assert await ex.venue_positions([token, other]) == Holdings({token: Decimal(7), other: Decimal(3)})
    simulator.spoiled.add(token)
    with structlog.testing.capture_logs() as logs:
        assert await ex.venue_positions([token]) == Holdings({}, unread=frozenset({token}))
    assert [e["instrument"] for e in logs if e["event"] == "balance.unreadable"] == [token]
    assert ex.balances_unknown == 3


async def test_a_reconciliation_compares_every_balance_it_can_read_and_no_other(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A position closed in the ledger (0) while the venue keeps 7 tokens: alerted, and kept as
    a mismatch. Then the venue answers that token's balance unreadably, and holds 6 of the other
    token where the ledger holds 7: the other is compared and its difference alerted; the
    unreadable one is left out (`positions.left_out`, warning, naming it; counted in
    `balances_unknown`), its mismatch kept as it was, never "agreed" on a 0 nobody read. Before,
    the one unreadable balance stopped the whole venue's comparison (`positions.unavailable`)
    and the other token's difference went unseen."""
    simulator = UnreadableBalance(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    closed, held = simulator.feed.markets[0].yes, simulator.feed.markets[1].yes
    probe = Probe("p", [Subscription(V, closed), Subscription(V, held)])
    engine = await start(
        nursery, base, probe, cache=tmp_path / "catalog.jsonl", ready_within=15, reconnect_base_s=0.2
    )
    engine.position_recheck_s = 0.3
    await until(lambda: bool(probe.of(BookUpdate, closed)) and bool(probe.of(BookUpdate, held)))
    await _take(probe, held, "buy", 7)
    await _take(probe, closed, "buy", 7)
    await until(lambda: bool(probe.of(BookUpdate, closed)[-1].best_bid))
    await _take(probe, closed, "sell", probe.ctx.position(V, closed))
    assert probe.ctx.position(V, closed) == 0 and probe.ctx.position(V, held) == 7
    account = simulator.accounts[DEMO_API.key]
    account.positions[closed] = Decimal(7)  # the venue keeps the tokens
    await reconnect_and_reconcile(engine, probe, simulator)
    assert engine.position_mismatches == 1 and (V, closed) in engine.mismatched
    was = dict(engine.mismatched[(V, closed)])
    simulator.spoiled.add(closed)
    account.positions[held] = Decimal(6)  # the venue now holds one share less than the ledger
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["log_level"], alert["instrument"], alert["engine"], alert["venue_holds"]) == (
        "critical",
        held,
        "7",
        "6",
    )
    assert engine.position_mismatches == 2
    assert engine.mismatched[(V, closed)] == was  # not "agreed" on a balance nobody read
    (left_out,) = [e for e in logs if e["event"] == "positions.left_out"]
    assert (left_out["log_level"], left_out["instruments"], left_out["compared"]) == ("warning", [closed], 1)
    assert not [e for e in logs if e["event"] == "positions.unavailable"]
    assert engine.venues[V].execution_counters()["balances_unknown"] >= 1  # on `tradingd status`


async def test_a_difference_whose_balance_cannot_be_read_at_the_second_look_is_looked_at_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The venue holds 6 where the ledger holds 7; at the second look its balance cannot be read:
    neither alerted on one look nor dropped, but held back (`position.unsettled`, saying why) and
    looked at again on the backoff, which alerts it once it reads again and still differs."""
    simulator = UnreadableBalance(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    engine.position_retry_s = (0.5, 0.5, 0.5)
    await _take(probe, token, "buy", 7)
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(6)
    asked = simulator.requests_for("GET /balance-allowance")

    async def spoiled_after_the_first_look() -> None:
        await until(lambda: simulator.requests_for("GET /balance-allowance") > asked)
        simulator.spoiled.add(token)

    nursery.start_soon(spoiled_after_the_first_look)
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
        assert engine.position_mismatches == 0
        (held_back,) = [e for e in logs if e["event"] == "position.unsettled"]
        assert (held_back["why"], held_back["engine"], held_back["venue_holds"]) == (
            "the venue could not say it at the second look",
            "7",
            "6",
        )
        simulator.spoiled.clear()
        await until(lambda: engine.position_mismatches == 1, what="alerted by a retry", within=10)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["instrument"], alert["engine"], alert["venue_holds"]) == (token, "7", "6")


@pytest.mark.parametrize("unread_looks", [2, 3, 4])
async def test_a_difference_whose_balance_stays_unread_into_the_retry_is_still_looked_at(
    nursery: trio.Nursery, tmp_path: Path, unread_looks: int
) -> None:
    """The venue holds 6 where the ledger holds 7; its balance reads at the first look, then not
    for `unread_looks` looks: the second, and the retry's first (and more). Each try that cannot
    read it keeps it held back as the try before saw it, so the retry goes on and alerts the
    difference once it reads again. Before, a retry whose first look could not read it held
    nothing back and ended: no alert, no `position.unconfirmed`, only a `positions.left_out`
    warning until the next check 300 s later (and so again with a flaky endpoint)."""
    simulator = UnreadableBalance(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    engine.position_retry_s = (0.5,) * 5
    await _take(probe, token, "buy", 7)
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(6)
    asked = simulator.requests_for("GET /balance-allowance")

    async def unread_after_the_first_look() -> None:
        await until(lambda: simulator.requests_for("GET /balance-allowance") > asked)
        simulator.spoil_next[token] = unread_looks

    nursery.start_soon(unread_after_the_first_look)
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
        await until(lambda: engine.position_mismatches == 1, what="alerted by a retry", within=15)
    assert simulator.spoil_next[token] == 0  # every unread look was asked
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["instrument"], alert["engine"], alert["venue_holds"]) == (token, "7", "6")
    assert len([e for e in logs if e["event"] == "positions.left_out"]) == unread_looks
    assert not [e for e in logs if e["event"] == "position.unconfirmed"]


async def test_a_difference_whose_balance_never_reads_again_ends_unconfirmed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """As above, the balance unread from the second look on, at every try: the retry runs to its
    bound and shows the difference unconfirmed, with the figures of the look that read it
    (`position.unconfirmed`, `mismatched` with `confirmed: false`). Before, the retry's first
    try dropped it."""
    simulator = UnreadableBalance(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    engine, probe, token = await _trading(nursery, tmp_path, simulator)
    engine.position_retry_s = (0.3, 0.3, 0.3)
    await _take(probe, token, "buy", 7)
    simulator.accounts[DEMO_API.key].positions[token] = Decimal(6)
    asked = simulator.requests_for("GET /balance-allowance")

    async def unread_after_the_first_look() -> None:
        await until(lambda: simulator.requests_for("GET /balance-allowance") > asked)
        simulator.spoiled.add(token)

    nursery.start_soon(unread_after_the_first_look)
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
        await until(lambda: (V, token) in engine.mismatched, what="shown unconfirmed", within=10)
    (shown,) = [e for e in logs if e["event"] == "position.unconfirmed"]
    assert (shown["why"], shown["engine"], shown["venue_holds"], shown["tries"]) == (
        "the venue could not say it at the second look",
        "7",
        "6",
        3,
    )
    assert engine.mismatched[(V, token)]["confirmed"] is False
    assert engine.position_mismatches == 0


async def test_a_venue_holding_none_of_what_it_could_read_says_how_many_it_could_not(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The ledger holds 7 of two tokens; the venue holds none of one and the other's balance
    cannot be read. The alert says the venue holds nothing of the one compared and that one more
    could not be read, never "nothing of what we hold": of the other it said nothing at all."""
    simulator = UnreadableBalance(seed=5, step_s=0.05, mine_s=0.1, confirm_s=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    base = binds[0].removeprefix("http://")
    empty, unread = simulator.feed.markets[0].yes, simulator.feed.markets[1].yes
    probe = Probe("p", [Subscription(V, empty), Subscription(V, unread)])
    engine = await start(
        nursery, base, probe, cache=tmp_path / "catalog.jsonl", ready_within=15, reconnect_base_s=0.2
    )
    engine.position_recheck_s = 0.3
    await until(lambda: bool(probe.of(BookUpdate, empty)) and bool(probe.of(BookUpdate, unread)))
    await _take(probe, empty, "buy", 7)
    await _take(probe, unread, "buy", 7)
    account = simulator.accounts[DEMO_API.key]
    account.positions[empty] = Decimal(0)
    simulator.spoiled.add(unread)
    with structlog.testing.capture_logs() as logs:
        await reconnect_and_reconcile(engine, probe, simulator)
    (alert,) = [e for e in logs if e["event"] == "position.mismatch"]
    assert (alert["instrument"], alert["engine"], alert["venue_holds"]) == (empty, "7", "0")
    assert alert["action"] == (
        "alerted: the venue reports holding nothing of the 1 instrument compared (1 more could not "
        "be read); the ledger moves only by fills; check the account"
    )
