"""The simulated Derive's order path, driven with orders signed by Derive's official package:
price-time priority between clients, maker and taker fills and fees, self-cross, the last page
repeated past `num_pages`, REST errors with HTTP 200, and the `private` switch (answers that
outrun or trail the private channel)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import trio
from derive_action_signing import (  # type: ignore[import-untyped]
    SignedAction,
    TradeModuleData,
    sign_rest_auth_header,
)
from derive_client.data_types import generated_models as dc  # type: ignore[import-untyped]
from web3 import Web3

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.derive.eip712 import ACTION_TYPEHASH, TESTNET, address_of
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
    RpcError,
    SimAccount,
    _Peer,
    demo_account,
)
from tradingd.simulators.matching import Side

PERP = "ETH-PERP"
D = Decimal
# Well-known development keys (public test values), one per client.
KEYS = {
    "alice": "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "bob": "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "carol": "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
}
WALLETS = {name: "0x" + f"{i + 1:02x}" * 20 for i, name in enumerate(KEYS)}
SUBS = {"alice": 101, "bob": 202, "carol": 303}
_nonces = itertools.count()


def simulator() -> DeriveSimulator:
    accounts = [SimAccount(WALLETS[n], {SUBS[n]}, {address_of(k): None}) for n, k in KEYS.items()]
    return DeriveSimulator(
        seed=11, accounts=[*accounts, demo_account()], matching_tps=1000.0, clock=fixed_clock()
    )


def signed(
    sim: DeriveSimulator, who: str, direction: str, price: str, amount: str, **extra: Any
) -> dict[str, Any]:
    """`private/order` params signed by `who` with the official package."""
    item = next(i for i in sim.instrument_items if i["instrument_name"] == PERP)
    action = SignedAction(
        subaccount_id=SUBS[who],
        owner=WALLETS[who],
        signer=address_of(KEYS[who]),
        signature_expiry_sec=sim.clock() // 1_000_000_000 + 600,  # the simulator's time
        nonce=sim.clock() // 1_000_000 * 1000 + next(_nonces) % 1000,
        module_address=TESTNET.trade_module,
        module_data=TradeModuleData(
            asset_address=item["base_asset_address"],
            sub_id=int(item["base_asset_sub_id"]),
            limit_price=D(price),
            amount=D(amount),
            max_fee=D(100),
            recipient_id=SUBS[who],
            is_bid=direction == "buy",
        ),
        DOMAIN_SEPARATOR="0x" + TESTNET.separator.hex(),
        ACTION_TYPEHASH="0x" + ACTION_TYPEHASH.hex(),
    )
    action.sign(KEYS[who])
    return {
        **action.to_json(),
        "instrument_name": PERP,
        "direction": direction,
        "label": f"{who}-{price}",
        **extra,
    }


def place(sim: DeriveSimulator, who: str, direction: str, price: str, amount: str, **extra: Any) -> Any:
    account = sim.accounts[WALLETS[who].lower()]
    params = signed(sim, who, direction, price, amount, **extra)
    return sim.call("private/order", params, peer=None, account=account, after=[])


def market_depth(sim: DeriveSimulator, side: Side) -> Decimal:
    return sum((a for _, a in sim.book(PERP).levels(side, clients=False)), D(0))


async def test_price_then_time_priority_between_clients_at_the_makers_prices() -> None:
    sim = simulator()
    best = sim.book(PERP).best(Side.BUY)
    assert best is not None
    low = str(int(best) - 500)  # far below the market: only the clients rest there
    first = place(sim, "alice", "buy", low, "0.2")["order"]
    second = place(sim, "bob", "buy", low, "0.2")["order"]
    better = place(sim, "bob", "buy", str(int(low) + 1), "0.1")["order"]
    assert {o["order_status"] for o in (first, second, better)} == {"open"}
    # Carol sells through the market's bids and on into the clients': the better price first,
    # then, at one price, the earlier order; each at the maker's own price.
    size = market_depth(sim, Side.BUY) + D("0.4")
    taken = place(sim, "carol", "sell", low, str(size))
    assert taken["order"]["order_status"] == "filled"
    mine = [(t["trade_price"], t["trade_amount"], t["liquidity_role"]) for t in taken["trades"]][-3:]
    assert mine == [(str(int(low) + 1), "0.1", "taker"), (low, "0.2", "taker"), (low, "0.1", "taker")]
    orders = sim.orders
    assert (orders[better["order_id"]].state, orders[first["order_id"]].state) == ("filled", "filled")
    assert orders[second["order_id"]].state == "open" and orders[second["order_id"]].filled == D("0.1")
    # The makers' side of it: maker fills at their prices, the maker's fee (0.01% x notional).
    alice = sim.accounts[WALLETS["alice"].lower()]
    (fill,) = alice.trades
    index = D(fill["index_price"])
    assert (fill["liquidity_role"], fill["trade_price"], fill["trade_amount"]) == ("maker", low, "0.2")
    assert D(fill["trade_fee"]) == D("0.0001") * D("0.2") * index
    assert alice.positions[(SUBS["alice"], PERP)] == D("0.2")
    # The taker pays the base fee once for the whole sweep.
    carol = sim.accounts[WALLETS["carol"].lower()]
    fees = sum(D(t["trade_fee"]) for t in carol.trades)
    assert fees == D("0.1") + D("0.0006") * size * index
    assert D(taken["order"]["order_fee"]) == fees


async def test_an_order_that_would_trade_with_its_own_subaccount_is_refused() -> None:
    sim = simulator()
    best = sim.book(PERP).best(Side.BUY)
    assert best is not None
    low = str(int(best) - 500)
    place(sim, "alice", "buy", low, "0.2")
    size = str(market_depth(sim, Side.BUY) + D("0.1"))
    with pytest.raises(RpcError) as info:
        place(sim, "alice", "sell", low, size)
    assert info.value.code == 11007
    # Nothing traded: not even the market's bids the walk passed first.
    assert sim.accounts[WALLETS["alice"].lower()].trades == []


async def test_a_resting_order_fills_when_the_feed_trades_through_it() -> None:
    sim = simulator()
    best = sim.book(PERP).best(Side.BUY)
    assert best is not None
    low = str(int(best) - 500)
    resting = place(sim, "bob", "buy", low, "0.3")["order"]
    sim.trade(PERP, "sell", str(int(low) - 1), "0.2")  # another account sells through our bid
    order = sim.orders[resting["order_id"]]
    assert (order.state, order.filled) == ("open", D("0.2"))
    (fill,) = sim.accounts[WALLETS["bob"].lower()].trades
    assert (fill["trade_price"], fill["liquidity_role"]) == (low, "maker")


async def test_a_page_past_num_pages_answers_the_last_page_again() -> None:
    sim = simulator()
    best = sim.book(PERP).best(Side.SELL)
    assert best is not None
    for _ in range(5):  # five fills
        place(sim, "alice", "buy", str(best + 100), "0.01")
    account = sim.accounts[WALLETS["alice"].lower()]

    def page(method: str, n: int) -> Any:
        params = {"subaccount_id": SUBS["alice"], "page": n, "page_size": 2}
        return sim.call(method, params, peer=None, account=account, after=[])

    for method, key in (
        ("private/get_trade_history", "trades"),
        ("private/get_orders", "orders"),
        ("private/get_order_history", "orders"),
    ):
        answers = [page(method, n) for n in range(1, 6)]
        assert answers[0]["pagination"] == {"count": 5, "num_pages": 3}
        assert [len(a[key]) for a in answers] == [2, 2, 1, 1, 1]
        assert answers[3][key] == answers[4][key] == answers[2][key]  # the last page, again
        seen = [x.get("trade_id") or x["order_id"] for a in answers[:3] for x in a[key]]
        assert len(set(seen)) == 5


async def test_rest_errors_come_with_http_200_and_the_json_rpc_error() -> None:
    sim = simulator()
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://derive.sim") as http:
        unknown = await http.post("/public/get_instrument", json={"instrument_name": "NOPE-PERP"})
        assert unknown.status_code == 200
        assert unknown.json()["error"] == {
            "code": 12001,
            "message": "Instrument not found",
            "data": "instrument_name 'NOPE-PERP'",
        }
        missing = await http.post("/public/no_such_method", json={})
        assert (missing.status_code, missing.json()["error"]["code"]) == (200, -32601)
        headers = sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
        bad = {**signed(sim, "alice", "buy", "1000", "0.1"), "subaccount_id": DEMO_SUBACCOUNT}
        refused = await http.post("/private/order", content=orjson.dumps(bad), headers=headers)
        assert refused.status_code == 200 and refused.json()["error"]["code"] == 14014
        garbage = await http.post("/public/get_time", content=b"{not json")
        assert (garbage.status_code, garbage.json()["error"]["code"]) == (200, -32700)
        ok = await http.post("/public/get_time", json={})
        assert ok.status_code == 200 and isinstance(ok.json()["result"], int)


async def _session(sim: DeriveSimulator) -> tuple[_Peer, trio.MemoryReceiveChannel[bytes]]:
    send, receive = trio.open_memory_channel[bytes](100)
    peer = _Peer(1, send, "/ws")
    sim.sessions[1] = peer
    peer.account = sim.accounts[WALLETS["alice"].lower()]
    await sim.on_text(
        peer,
        orjson.dumps(
            {"id": 1, "method": "subscribe", "params": {"channels": [f"{SUBS['alice']}.orders"]}}
        ).decode(),
    )
    assert orjson.loads(receive.receive_nowait())["result"]["status"] == {f"{SUBS['alice']}.orders": "ok"}
    return peer, receive


def _drain(receive: trio.MemoryReceiveChannel[bytes]) -> list[str]:
    out: list[str] = []
    while True:
        try:
            msg = orjson.loads(receive.receive_nowait())
        except trio.WouldBlock:
            return out
        out.append("answer" if "id" in msg else msg["params"]["channel"])


async def test_the_private_switch_makes_the_answer_outrun_or_trail_the_channel() -> None:
    sim = simulator()
    peer, receive = await _session(sim)
    best = sim.book(PERP).best(Side.BUY)
    assert best is not None

    async def order() -> None:
        params = signed(sim, "alice", "buy", str(int(best) - 500), "0.1")
        await sim.on_text(peer, orjson.dumps({"id": 2, "method": "private/order", "params": params}).decode())

    await order()  # by default the channel outruns the answer
    assert _drain(receive) == [f"{SUBS['alice']}.orders", "answer"]
    assert sim.apply_faults({"private": {"trail_s": 0.05}}) == {"private": {"trail_s": 0.05}}
    await order()
    assert _drain(receive) == ["answer"]
    sim._release()
    assert _drain(receive) == []  # not yet due
    await trio.sleep(0.06)
    sim._release()
    assert _drain(receive) == [f"{SUBS['alice']}.orders"]
    sim.apply_faults({"private": "outrun"})
    await order()
    assert _drain(receive) == [f"{SUBS['alice']}.orders", "answer"]
    with pytest.raises(ValueError, match="private"):
        sim.apply_faults({"private": {"trail_s": -1}})


async def test_positions_carry_the_entry_price_and_the_pnl_realized_by_reducing() -> None:
    sim = simulator()
    account = sim.accounts[WALLETS["alice"].lower()]
    ask = sim.book(PERP).best(Side.SELL)
    assert ask is not None
    bought = place(sim, "alice", "buy", str(ask + 50), "0.3")["trades"]
    cost = sum(D(t["trade_price"]) * D(t["trade_amount"]) for t in bought)
    bid = sim.book(PERP).best(Side.BUY)
    assert bid is not None
    sold = place(sim, "alice", "sell", str(bid - 50), "0.1")["trades"]
    (position,) = sim.call(
        "private/get_positions", {"subaccount_id": SUBS["alice"]}, peer=None, account=account, after=[]
    )["positions"]
    average = cost / D("0.3")
    assert (D(position["amount"]), D(position["average_price"])) == (D("0.2"), average)
    realized = sum((D(t["trade_price"]) - average) * D(t["trade_amount"]) for t in sold)
    assert (
        D(position["realized_pnl_excl_fees"]) == realized == sum(D(t["realized_pnl_excl_fees"]) for t in sold)
    )
    fees = sum(D(t["trade_fee"]) for t in bought + sold)
    assert D(position["total_fees"]) == fees and D(position["realized_pnl"]) == realized - fees
    assert D(position["unrealized_pnl"]) == (D(position["mark_price"]) - average) * D("0.2")
    assert D(position["mark_value"]) == D(position["mark_price"]) * D("0.2") and position["leverage"] is None


async def test_replace_cancels_the_old_order_and_places_the_new_one() -> None:
    sim = simulator()
    account = sim.accounts[WALLETS["alice"].lower()]
    best = sim.book(PERP).best(Side.BUY)
    ask = sim.book(PERP).best(Side.SELL)
    assert best is not None and ask is not None
    low = str(int(best) - 500)
    old = place(sim, "alice", "buy", low, "0.2")["order"]

    def replace(**terms: Any) -> Any:
        price = terms.pop("price", str(int(low) + 1))
        params = {**signed(sim, "alice", "buy", price, "0.2", **terms), "order_id_to_cancel": old["order_id"]}
        return sim.call("private/replace", params, peer=None, account=account, after=[])

    # A wrong expected fill, or a bad signature: refused, nothing cancelled.
    with pytest.raises(RpcError) as info:
        replace(expected_filled_amount="0.1")
    assert info.value.code == -32602 and sim.orders[old["order_id"]].state == "open"
    with pytest.raises(RpcError) as info:
        replace(signature="0x" + "11" * 65)
    assert info.value.code == 14014 and sim.orders[old["order_id"]].state == "open"
    answer = replace(expected_filled_amount="0")
    assert answer["cancelled_order"]["order_status"] == "cancelled"
    assert (
        answer["order"]["order_status"] == "open" and answer["order"]["replaced_order_id"] == old["order_id"]
    )
    assert [o.order_id for o in sim.book(PERP).orders()] == [answer["order"]["order_id"]]
    # The new order refused by the book (post-only crossing the ask): the old one stays cancelled.
    old = answer["order"]
    refused = replace(price=str(ask + 1), time_in_force="post_only")
    assert refused["cancelled_order"]["order_id"] == old["order_id"] and refused["order"] is None
    assert refused["create_order_error"]["code"] == 11008 and sim.book(PERP).orders() == []
    for result in (answer, refused):  # derive-client's own schema reads both answers
        msgspec.json.decode(orjson.dumps({"id": 1, "result": result}), type=dc.PrivateReplaceResponseSchema)


def test_a_fill_outside_a_trio_run_settles_at_the_first_step_in_one() -> None:
    sim = simulator()  # a script calling the simulator directly, with no server running
    ask = sim.book(PERP).best(Side.SELL)
    assert ask is not None
    answer = place(sim, "bob", "buy", str(ask + 10), "0.1")
    assert answer["order"]["order_status"] == "filled" and answer["trades"]
    assert sim.settle_now() == len(answer["trades"])
    assert {t["tx_status"] for t in sim.accounts[WALLETS["bob"].lower()].trades} == {"settled"}
