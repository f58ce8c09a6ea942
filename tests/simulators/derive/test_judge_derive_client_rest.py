"""The Derive simulator judged by Derive's official Python client (`derive-client` 0.3.16, its
synchronous `HTTPClient`, run in a worker thread) over REST on loopback: it connects (account,
session keys, every instrument type, the subaccount), reads instruments, tickers and the public
trade history, places, reads, lists and cancels signed orders (its own signing, through
`derive-action-signing`), and sees its fills, trades and position. Every answer is decoded by the
client's own msgspec schemas: a missing or mistyped field fails the call.

The client is pointed at the simulator through its own environment table (tests/support/
derive_judges.py)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
import trio
from derive_client import HTTPClient  # type: ignore[import-untyped]
from derive_client._clients.utils import DeriveJSONRPCError  # type: ignore[import-untyped]
from derive_client.data_types import Environment  # type: ignore[import-untyped]
from derive_client.data_types.generated_models import (  # type: ignore[import-untyped]
    Direction,
    InstrumentType,
    OrderStatus,
    TimeInForce,
)
from eth_account import Account

from tests.support.derive_judges import loopback_env, venue
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)

__all__ = ["loopback_env", "venue"]  # the fixtures, used by name

T = TypeVar("T")
SIGNER = Account.from_key(DEMO_SESSION_KEY).address  # the session key's address


async def call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """The client is synchronous: off the event loop, in a worker thread."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw))


@pytest.fixture
async def client(loopback_env: Environment) -> Any:
    client = HTTPClient(
        wallet=DEMO_WALLET, session_key=DEMO_SESSION_KEY, subaccount_id=DEMO_SUBACCOUNT, env=loopback_env
    )
    await call(client.connect)
    yield client
    await call(client.disconnect)


def _item(sim: DeriveSimulator, name: str) -> dict[str, Any]:
    return next(i for i in sim.instrument_items if i["instrument_name"] == name)


async def test_the_client_connects_and_reads_the_market(venue: DeriveSimulator, client: Any) -> None:
    # connect() asked private/get_account, private/session_keys, public/get_all_instruments (each
    # type, paged) and private/get_subaccount, and decoded each with its schemas.
    assert client.account.state.wallet == DEMO_WALLET
    assert client.account.state.subaccount_ids == [DEMO_SUBACCOUNT]
    assert client.active_subaccount.id == DEMO_SUBACCOUNT
    assert client.active_subaccount.state.subaccount_value == Decimal(100_000)
    keys = await call(client.account.session_keys)
    assert [k.public_session_key for k in keys.public_session_keys] == [SIGNER]
    cached = {**client.markets.perp_instruments_cache, **client.markets.option_instruments_cache}
    assert set(cached) == {i["instrument_name"] for i in venue.instrument_items if i["is_active"]}
    perp = cached["ETH-PERP"]
    assert perp.base_asset_address == _item(venue, "ETH-PERP")["base_asset_address"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the client deprecates get_ticker
        ticker = await call(client.markets.get_ticker, instrument_name="ETH-PERP")
    assert ticker.best_bid_price < ticker.best_ask_price
    assert ticker.min_price < ticker.mark_price < ticker.max_price
    assert ticker.five_percent_bid_depth >= ticker.best_bid_amount > 0
    assert ticker.five_percent_ask_depth >= ticker.best_ask_amount > 0
    [oi] = ticker.open_interest["SM"]
    assert oi.current_open_interest > 0

    tickers = await call(client.markets.get_tickers, instrument_type=InstrumentType.perp, currency="ETH")
    assert list(tickers) == ["ETH-PERP"]
    assert tickers["ETH-PERP"].M > 0 and tickers["ETH-PERP"].stats.n >= 0
    option = next(
        i for i in venue.instrument_items if i["instrument_type"] == "option" and i["base_currency"] == "BTC"
    )
    expiry = option["instrument_name"].split("-")[1]
    options = await call(
        client.markets.get_tickers, instrument_type=InstrumentType.option, currency="BTC", expiry_date=expiry
    )
    assert option["instrument_name"] in options
    assert all(name.split("-")[1] == expiry for name in options)
    assert all(t.option_pricing is not None for t in options.values())
    with pytest.raises(DeriveJSONRPCError) as refused:  # the venue's rule: options need an expiry
        await call(client.markets.get_tickers, instrument_type=InstrumentType.option, currency="BTC")
    assert refused.value.rpc_error.code == -32602

    # The same ticker over plain REST carries `stats` (Feb-2026 shape, VENUES.md §3.3), which the
    # client's v2 schema does not name.
    async with httpx.AsyncClient(base_url=venue.base_url) as raw:  # type: ignore[attr-defined]
        body = (await raw.post("/public/get_ticker", json={"instrument_name": "ETH-PERP"})).json()
    assert set(body["result"]["stats"]) == {
        "contract_volume", "num_trades", "open_interest", "high", "low", "percent_change", "usd_change"
    }  # fmt: skip


async def test_the_public_trade_history_lists_settled_trades(venue: DeriveSimulator, client: Any) -> None:
    bid = Decimal(str(venue.tickers["ETH-PERP"]["b"]))
    printed = venue.trade("ETH-PERP", "sell", bid, _item(venue, "ETH-PERP")["amount_step"])
    await trio.sleep(venue.settle_after_s + 0.1)
    trades = await call(client.trades.list_public, instrument_name="ETH-PERP", page_size=1000)
    mine = [t for t in trades if t.trade_id == printed]
    assert len(mine) == 1 and mine[0].tx_hash.startswith("0x") and mine[0].tx_status.value == "settled"
    assert [t.timestamp for t in trades] == sorted((t.timestamp for t in trades), reverse=True)


async def test_the_client_places_reads_and_cancels_a_signed_order(
    venue: DeriveSimulator, client: Any
) -> None:
    bid = Decimal(str(venue.tickers["ETH-PERP"]["b"]))
    step = Decimal(_item(venue, "ETH-PERP")["amount_step"])
    order = await call(
        client.orders.create,
        amount=step * 3,
        direction=Direction.buy,
        instrument_name="ETH-PERP",
        limit_price=bid * Decimal("0.8"),  # far below the market: it rests
        label="judge-rest",
    )
    assert order.order_status is OrderStatus.open and order.label == "judge-rest"
    assert order.signer == SIGNER and order.amount == step * 3
    assert (await call(client.orders.get, order_id=order.order_id)).order_status is OrderStatus.open
    assert [o.order_id for o in await call(client.orders.list_open)] == [order.order_id]
    assert [o.order_id for o in (await call(client.active_subaccount.refresh)).state.open_orders] == [
        order.order_id
    ]
    cancelled = await call(client.orders.cancel, instrument_name="ETH-PERP", order_id=order.order_id)
    assert cancelled.order_status is OrderStatus.cancelled and cancelled.cancel_reason.value == "user_request"
    assert (await call(client.orders.get, order_id=order.order_id)).order_status is OrderStatus.cancelled
    assert await call(client.orders.list_open) == []


async def test_the_client_sees_its_fill_trade_and_position(venue: DeriveSimulator, client: Any) -> None:
    ask = Decimal(str(venue.tickers["ETH-PERP"]["a"]))
    step = Decimal(_item(venue, "ETH-PERP")["amount_step"])
    order = await call(
        client.orders.create,
        amount=step,
        direction=Direction.buy,
        instrument_name="ETH-PERP",
        limit_price=ask * Decimal("1.01"),
        time_in_force=TimeInForce.ioc,
        label="judge-fill",
    )
    assert order.order_status is OrderStatus.filled and order.filled_amount == step
    trades = await call(client.trades.list_private, order_id=order.order_id)
    assert [t.trade_amount for t in trades] == [step] and trades[0].direction is Direction.buy
    state = (await call(client.active_subaccount.refresh)).state
    [position] = [p for p in state.positions if p.instrument_name == "ETH-PERP"]
    assert position.amount == step and position.average_price == trades[0].trade_price
    assert position.total_fees == trades[0].trade_fee
    [listed] = await call(client.positions.list)
    assert (listed.instrument_name, listed.amount, listed.average_price) == (
        "ETH-PERP",
        step,
        position.average_price,
    )
    collaterals = (await call(client.collateral.get)).collaterals
    assert [(c.asset_name, c.amount) for c in collaterals] == [
        ("USDC", Decimal(100_000) - trades[0].trade_fee)
    ]
    [portfolio] = await call(client.account.get_all_portfolios)
    assert portfolio.subaccount_id == DEMO_SUBACCOUNT
    assert [(q.instrument_name, q.amount) for q in portfolio.positions] == [("ETH-PERP", step)]


async def test_a_refused_order_reaches_the_client_as_derives_error(client: Any) -> None:
    """Derive answers a JSON-RPC error over REST with HTTP 200: the client raises its
    `DeriveJSONRPCError` with the venue's code only then (it calls `raise_for_status()` first)."""
    with pytest.raises(DeriveJSONRPCError) as refused:
        await call(
            client.orders.create,
            amount=Decimal("1000000"),  # above the instrument's maximum amount
            direction=Direction.buy,
            instrument_name="ETH-PERP",
            limit_price=Decimal(1),
        )
    assert refused.value.rpc_error.code == 11012
