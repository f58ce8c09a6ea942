"""The simulator's fidelity, proven by Polymarket's own Python client (`py-clob-client-v2` 1.2.1,
synchronous: run in a worker thread) against the simulator served by hypercorn on loopback: it
derives its API key (L1), reads books and prices, creates, posts, lists and cancels orders (L2),
trades at market, and a tampered signature or HMAC is refused with the venue's status and body;
every market-data read of the client's `endpoints.py` (the batch forms, the book hash, fee rate
and exponent, the three market listings walked by their cursors, the price history) answers what
the client parses; and the venue's known REST failures (425, 503, Cloudflare's HTML 403) reach
the client as the venue sends them. Every endpoint it calls on the way is served."""

from __future__ import annotations

import base64
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio
from py_clob_client_v2.client import ClobClient  # type: ignore[import-untyped]
from py_clob_client_v2.clob_types import (  # type: ignore[import-untyped]
    ApiCreds,
    AssetType,
    BalanceAllowanceParams,
    BookParams,
    MarketOrderArgsV2,
    OpenOrderParams,
    OrderArgsV2,
    OrderPayload,
    OrderType,
    PricesHistoryParams,
    TradeParams,
)
from py_clob_client_v2.exceptions import PolyApiException  # type: ignore[import-untyped]

from tradingd.simulators.polymarket.simulator import (
    DEMO_ACCOUNT,
    DEMO_ADDRESS,
    DEMO_API,
    PolymarketSimulator,
    serve,
)
from tradingd.simulators.polymarket.wire import summary_hash

API = DEMO_API
T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """The official client is synchronous: off the event loop, in a worker thread."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw))


@pytest.fixture(autouse=True)
def judged_within() -> Iterator[None]:
    """Each judge test's wall time, bounded (COMMON.md: a judge file in ~20 s)."""
    began = time.perf_counter()
    yield
    elapsed = time.perf_counter() - began
    assert elapsed < 15, f"the judge took {elapsed:.1f} s"


@pytest.fixture
async def venue(nursery: trio.Nursery) -> tuple[PolymarketSimulator, str]:
    sim = PolymarketSimulator(seed=11, step_s=0.05, mine_s=0.05, confirm_s=0.05)
    binds = await nursery.start(functools.partial(serve, sim))
    return sim, binds[0]


def cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


async def test_the_official_client_reads_books_and_prices(venue: tuple[PolymarketSimulator, str]) -> None:
    sim, host = venue
    client = ClobClient(host, chain_id=137)
    token = sim.feed.markets[0].yes
    condition = sim.feed.markets[0].condition_id
    assert await call(client.get_ok) == "OK"
    assert abs(await call(client.get_server_time) - sim.clock() // 1_000_000_000) <= 2
    assert await call(client.get_version) == 2
    book = await call(client.get_order_book, token)
    # The summary's hash is the venue's algorithm (§2.3), as the official client computes it.
    assert book["hash"] == summary_hash(book) == await call(client.get_order_book_hash, book)
    bids = [float(b["price"]) for b in book["bids"]]
    asks = [float(a["price"]) for a in book["asks"]]
    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # best levels last (§2.2)
    assert float((await call(client.get_price, token, "BUY"))["price"]) == bids[-1]  # BUY: the best bid
    assert float((await call(client.get_price, token, "SELL"))["price"]) == asks[-1]
    mid = float((await call(client.get_midpoint, token))["mid"])
    assert bids[-1] < mid < asks[-1]
    assert float((await call(client.get_spread, token))["spread"]) == pytest.approx(asks[-1] - bids[-1])
    assert await call(client.get_tick_size, token) == "0.01"
    assert await call(client.get_neg_risk, token) is False
    assert await call(client.get_neg_risk, sim.feed.markets[2].yes) is True  # the neg-risk event
    books = await call(
        client.get_order_books, [BookParams(token_id=token), BookParams(token_id=sim.feed.markets[0].no)]
    )
    assert [b["asset_id"] for b in books] == [token, sim.feed.markets[0].no]
    prices = await call(client.get_prices, [BookParams(token_id=token, side="BUY")])
    assert float(prices[token]["BUY"]) == bids[-1]
    market = await call(client.get_market, condition)
    assert [t["token_id"] for t in market["tokens"]] == [token, sim.feed.markets[0].no]
    assert market["minimum_tick_size"] == 0.01 and market["accepting_orders"] is True
    page = await call(client.get_markets)
    assert page["next_cursor"] == "LTE=" and len(page["data"]) == len(sim.feed.markets)
    assert await call(client.get_last_trade_price, token) is not None
    assert not sim.unserved


async def test_the_official_client_trades(venue: tuple[PolymarketSimulator, str]) -> None:
    sim, host = venue
    token = sim.feed.markets[0].yes
    client = ClobClient(host, chain_id=137, key=DEMO_ACCOUNT.private_key)
    # L1: an API key for the wallet (it exists: create is refused, derive gives it).
    creds = await call(client.create_or_derive_api_key)
    assert (creds.api_key, creds.api_secret, creds.api_passphrase) == (API.key, API.secret, API.passphrase)
    client.set_api_creds(creds)
    assert API.key in (await call(client.get_api_keys))["apiKeys"]
    # A resting limit order: created (tick size, neg-risk and version asked of the venue), signed,
    # posted, listed, cancelled.
    posted = await call(
        client.create_and_post_order, OrderArgsV2(token_id=token, price=0.05, size=10, side="BUY")
    )
    assert posted["success"] is True and posted["status"] == "live"
    order_id = posted["orderID"]
    assert sim.orders[order_id].status == "LIVE" and sim.orders[order_id].account.address == DEMO_ADDRESS
    assert [o["id"] for o in await call(client.get_open_orders)] == [order_id]
    assert [o["id"] for o in await call(client.get_open_orders, OpenOrderParams(asset_id=token))] == [
        order_id
    ]
    assert (await call(client.get_order, order_id))["original_size"] == "10"
    cancelled = await call(client.cancel_order, OrderPayload(orderID=order_id))
    assert cancelled == {"canceled": [order_id], "not_canceled": {}}
    assert await call(client.get_open_orders) == []
    again = await call(client.cancel_order, OrderPayload(orderID=order_id))
    assert again["not_canceled"] == {order_id: "already canceled or matched"}
    # A market order (FOK): priced from the book, matched, its trade followed until mined.
    bought = await call(
        client.create_and_post_market_order,
        MarketOrderArgsV2(token_id=token, amount=5, side="BUY"),
        None,
        OrderType.FOK,
    )
    assert bought["success"] is True and bought["status"] == "matched" and bought["tradeIDs"]
    assert bought["transactionsHashes"]  # the client waited for the trade to be mined
    trades = await call(client.get_trades, TradeParams(id=bought["tradeIDs"][0]))
    assert trades[0]["status"] in ("MINED", "CONFIRMED") and trades[0]["taker_order_id"] == bought["orderID"]
    balance = await call(client.get_balance_allowance)
    assert int(balance["balance"]) < 100_000 * 1_000_000  # pUSD was spent
    # Cancel-all.
    await call(client.create_and_post_order, OrderArgsV2(token_id=token, price=0.04, size=10, side="BUY"))
    assert len((await call(client.cancel_all))["canceled"]) == 1
    assert not sim.unserved  # every endpoint the official client called on the way is served


async def test_tampered_signatures_and_hmacs_are_refused_as_the_venue_refuses_them(
    venue: tuple[PolymarketSimulator, str],
) -> None:
    sim, host = venue
    token = sim.feed.markets[0].yes
    client = ClobClient(
        host, chain_id=137, key=DEMO_ACCOUNT.private_key, creds=ApiCreds(API.key, API.secret, API.passphrase)
    )
    order = await call(client.create_order, OrderArgsV2(token_id=token, price=0.05, size=10, side="BUY"))
    # One byte of the EIP-712 signature changed: HTTP 400 {"error": "invalid signature"}.
    sig = order.signature
    tampered = dataclasses.replace(order, signature=sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:])
    with pytest.raises(PolyApiException) as info:
        await call(client.post_order, tampered)
    assert (info.value.status_code, info.value.error_msg) == (400, {"error": "invalid signature"})
    # A signed field changed after signing (the amount): the signature no longer recovers the signer.
    inflated = dataclasses.replace(order, makerAmount=str(int(order.makerAmount) + 1))
    with pytest.raises(PolyApiException) as info:
        await call(client.post_order, inflated)
    assert (info.value.status_code, info.value.error_msg) == (400, {"error": "invalid signature"})
    # A wrong API secret: the HMAC fails, HTTP 401 {"error": "Unauthorized/Invalid api key"}.
    client.set_api_creds(ApiCreds(API.key, "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", API.passphrase))
    with pytest.raises(PolyApiException) as info:
        await call(client.post_order, order)
    assert (info.value.status_code, info.value.error_msg) == (401, {"error": "Unauthorized/Invalid api key"})
    with pytest.raises(PolyApiException) as info:
        await call(client.get_open_orders)
    assert info.value.status_code == 401
    # The untouched order with the right key is taken: the refusals were about the tampering.
    client.set_api_creds(ApiCreds(API.key, API.secret, API.passphrase))
    assert (await call(client.post_order, order))["success"] is True
    assert len(sim.orders) == 1


async def test_the_official_client_reads_every_market_data_path(
    venue: tuple[PolymarketSimulator, str],
) -> None:
    sim, host = venue
    client = ClobClient(host, chain_id=137)
    markets = sim.feed.markets
    yes, no = markets[0].yes, markets[0].no
    tokens = [BookParams(token_id=yes), BookParams(token_id=no)]
    # Books, each with the hash the client computes over it (§2.3).
    for book in await call(client.get_order_books, tokens):
        assert book["hash"] == await call(client.get_order_book_hash, book)
        assert {"min_order_size", "tick_size", "neg_risk", "last_trade_price"} <= book.keys()
    books = {b["asset_id"]: b for b in await call(client.get_order_books, tokens)}
    # The batch reads agree with the single ones and with the books (best levels last).
    mids = await call(client.get_midpoints, tokens)
    spreads = await call(client.get_spreads, tokens)
    prices = await call(client.get_prices, tokens)  # no side: both
    for token in (yes, no):
        bid, ask = float(books[token]["bids"][-1]["price"]), float(books[token]["asks"][-1]["price"])
        assert float(mids[token]) == pytest.approx((bid + ask) / 2, abs=0.0051)
        assert float(spreads[token]) == pytest.approx(ask - bid, abs=0.0101)
        assert set(prices[token]) == {"BUY", "SELL"}
        assert float(prices[token]["SELL"]) >= float(prices[token]["BUY"])
    last = await call(client.get_last_trades_prices, tokens)
    assert [item["token_id"] for item in last] == [yes, no]
    assert all({"price", "side"} <= item.keys() for item in last)
    # The market's parameters: fee rate (the V1 authorization: 1000 for a fee-bearing market, 0
    # for a free one, py-clob-client-v2 #107), the V2 schedule of `/clob-markets`.
    fee_bearing = [m for m in markets if m.spec.fees is not None and m.spec.fees[0] > 0]
    free = [m for m in markets if m.spec.fees is None or m.spec.fees[0] == 0]
    assert fee_bearing and free
    assert await call(client.get_fee_rate_bps, fee_bearing[0].yes) == 1000
    assert await call(client.get_fee_rate_bps, free[0].yes) == 0
    schedule = fee_bearing[0].spec.fees
    assert schedule is not None
    assert await call(client.get_fee_exponent, fee_bearing[0].yes) == schedule[1]
    info = await call(client.get_clob_market_info, fee_bearing[0].condition_id)
    assert [t["t"] for t in info["t"]] == [fee_bearing[0].yes, fee_bearing[0].no]
    # The three listings, walked page by page with the venue's cursors (base64 offsets, "LTE=").
    sim.reads.page_size = 2
    ids = sorted(m.condition_id for m in markets)
    for read, full in (
        (client.get_simplified_markets, False),
        (client.get_sampling_markets, True),
        (client.get_sampling_simplified_markets, False),
    ):
        seen: list[dict[str, Any]] = []
        page = await call(read)
        pages = 1
        while True:
            assert page["count"] == len(page["data"]) <= page["limit"] == 2
            seen += page["data"]
            if page["next_cursor"] == "LTE=":
                break
            assert page["next_cursor"] == cursor(len(seen))
            page = await call(read, page["next_cursor"])
            pages += 1
        assert pages == -(-len(seen) // 2)
        for market in seen:
            assert market["rewards"]["rates"] and market["accepting_orders"] is True
            assert {t["token_id"] for t in market["tokens"]} <= {t for m in markets for t in (m.yes, m.no)}
            assert ("question" in market) is full  # the full object, or the simplified one
        if read is client.get_simplified_markets:
            assert sorted(m["condition_id"] for m in seen) == ids
    with pytest.raises(PolyApiException) as bad:
        await call(client.get_simplified_markets, "not a cursor")
    assert (bad.value.status_code, bad.value.error_msg) == (400, {"error": "invalid next_cursor"})
    # The price history: the token's midpoints as the simulator sampled them.
    await trio.sleep(1.1)  # a second sample
    now = sim.clock() // 1_000_000_000
    history = await call(
        client.get_prices_history, PricesHistoryParams(market=yes, start_ts=now - 60, end_ts=now + 1)
    )
    points = history["history"]
    assert points and all(isinstance(p["t"], int) and 0 < p["p"] < 1 for p in points)
    assert [p["t"] for p in points] == sorted({p["t"] for p in points})
    assert (await call(client.get_prices_history, PricesHistoryParams(market=yes, interval="1h")))["history"]
    assert not sim.unserved


async def test_the_official_client_reads_its_account(venue: tuple[PolymarketSimulator, str]) -> None:
    sim, host = venue
    token = sim.feed.markets[0].yes
    client = ClobClient(
        host, chain_id=137, key=DEMO_ACCOUNT.private_key, creds=ApiCreds(API.key, API.secret, API.passphrase)
    )
    bought = await call(
        client.create_and_post_market_order,
        MarketOrderArgsV2(token_id=token, amount=5, side="BUY"),
        None,
        OrderType.FOK,
    )
    shares = await call(
        client.get_balance_allowance, BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=token)
    )
    assert int(shares["balance"]) > 0  # millionths of a share
    assert (await call(client.update_balance_allowance))["balance"].isdigit()
    page = await call(client.get_trades_paginated, TradeParams(asset_id=token))
    assert [t["id"] for t in page["trades"]] == bought["tradeIDs"] and page["next_cursor"] == "LTE="
    heartbeat = await call(client.post_heartbeat)
    assert heartbeat["heartbeat_id"]
    assert not sim.unserved


async def test_the_venues_rest_failures_reach_the_official_client_as_the_venue_sends_them(
    venue: tuple[PolymarketSimulator, str],
) -> None:
    sim, host = venue
    token = sim.feed.markets[0].yes
    client = ClobClient(
        host, chain_id=137, key=DEMO_ACCOUNT.private_key, creds=ApiCreds(API.key, API.secret, API.passphrase)
    )
    order = await call(client.create_order, OrderArgsV2(token_id=token, price=0.05, size=10, side="BUY"))
    # The matching engine restarting: 425 on order requests only (docs: trading/matching-engine).
    sim.apply_faults({"too_early": 1})
    assert await call(client.get_ok) == "OK"
    with pytest.raises(PolyApiException) as info:
        await call(client.post_order, order)
    assert (info.value.status_code, info.value.error_msg) == (425, {"error": "Too Early"})
    # Cancel-only, then disabled: the documented 503 bodies (resources/error-codes).
    sim.apply_faults({"trading": "cancel_only"})
    with pytest.raises(PolyApiException) as info:
        await call(client.post_order, order)
    assert info.value.status_code == 503 and "cancel-only" in info.value.error_msg["error"]
    assert (await call(client.cancel_all))["canceled"] == []  # cancels still go through
    sim.apply_faults({"trading": "disabled"})
    with pytest.raises(PolyApiException) as info:
        await call(client.get_open_orders)
    disabled = "Trading is currently disabled. Check polymarket.com for updates"
    assert info.value.error_msg == {"error": disabled}
    sim.apply_faults({"trading": "normal"})
    assert not sim.orders  # none of it reached the matching engine
    # Cloudflare's firewall: HTML, not JSON (the client keeps the text it could not parse).
    sim.apply_faults({"cloudflare": 1})
    with pytest.raises(PolyApiException) as info:
        await call(client.get_order_book, token)
    assert info.value.status_code == 403
    assert "<title>Attention Required! | Cloudflare</title>" in str(info.value.error_msg)
    assert (await call(client.post_order, order))["success"] is True  # every switch spent or off
