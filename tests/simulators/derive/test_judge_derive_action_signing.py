"""The Derive simulator's fidelity, proven by code nobody here wrote: Derive's official signing
package (`derive-action-signing` 0.0.13, a test-only dependency) signs the REST headers and an
order action exactly as a trader using it would, and POSTs them to the simulator. The signed
order is accepted; the same order tampered with is refused with Derive's error code and shape
(VENUES.md §3.1, §3.5-§3.7), with HTTP 200 as Derive answers a JSON-RPC error over REST.

The signing constants (testnet DOMAIN_SEPARATOR, ACTION_TYPEHASH, trade module) are the ones
Derive's official client (`derive-client` 0.3.16) ships for its TEST environment: nothing of the
connector's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from derive_action_signing import (  # type: ignore[import-untyped]
    SignedAction,
    TradeModuleData,
    get_action_nonce,
    sign_rest_auth_header,
    sign_ws_login,
    utc_now_ms,
)
from derive_client.config import CONFIGS  # type: ignore[import-untyped]
from derive_client.data_types import Environment  # type: ignore[import-untyped]
from web3 import Web3

from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)

SIGNER = Web3().eth.account.from_key(DEMO_SESSION_KEY).address
TESTNET = CONFIGS[Environment.TEST]  # derive-client's own testnet constants


def official_order(
    simulator: DeriveSimulator, *, price: str = "1000", amount: str = "0.25"
) -> dict[str, Any]:
    """`private/order` params as Derive's examples build them with the official package."""
    item = next(i for i in simulator.instrument_items if i["instrument_name"] == "ETH-PERP")
    action = SignedAction(
        subaccount_id=DEMO_SUBACCOUNT,
        owner=DEMO_WALLET,
        signer=SIGNER,
        signature_expiry_sec=utc_now_ms() // 1000 + 600,
        nonce=get_action_nonce(),
        module_address=TESTNET.contracts.TRADE_MODULE,
        module_data=TradeModuleData(
            asset_address=item["base_asset_address"],
            sub_id=int(item["base_asset_sub_id"]),
            limit_price=Decimal(price),
            amount=Decimal(amount),
            max_fee=Decimal(10),
            recipient_id=DEMO_SUBACCOUNT,
            is_bid=True,
        ),
        DOMAIN_SEPARATOR=TESTNET.DOMAIN_SEPARATOR,
        ACTION_TYPEHASH=TESTNET.ACTION_TYPEHASH,
    )
    action.sign(DEMO_SESSION_KEY)
    action.validate_signature()  # the package's own check, before the simulator's
    return {
        **action.to_json(),
        "instrument_name": "ETH-PERP",
        "direction": "buy",
        "order_type": "limit",
        "time_in_force": "gtc",
        "mmp": False,
        "label": "official-1",
    }


async def post(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(params), headers=headers)


@pytest.fixture
async def client() -> Any:
    simulator = DeriveSimulator(seed=13)
    transport = httpx.ASGITransport(app=simulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://derive.sim") as http:
        http.simulator = simulator  # type: ignore[attr-defined]
        yield http


async def test_an_order_signed_by_the_official_package_is_accepted(client: httpx.AsyncClient) -> None:
    simulator: DeriveSimulator = client.simulator  # type: ignore[attr-defined]
    headers = sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    params = official_order(simulator)
    assert not params["signature"].startswith("0x")  # the package's hex has no prefix
    answer = await post(client, "/private/order", params, **headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"id", "result"}
    order = body["result"]["order"]
    assert (order["order_status"], order["label"], order["amount"], order["limit_price"]) == (
        "open",
        "official-1",
        "0.25",
        "1000",
    )
    assert order["signer"] == SIGNER and order["nonce"] == params["nonce"]
    assert order["order_id"] in simulator.orders
    # Its open orders, through the same signed headers.
    headers = sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    listed = await post(client, "/private/get_open_orders", {"subaccount_id": DEMO_SUBACCOUNT}, **headers)
    assert [o["order_id"] for o in listed.json()["result"]["orders"]] == [order["order_id"]]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "limit_price": "1001"},  # a signed term changed
        lambda p: {**p, "amount": "0.26"},
        lambda p: {**p, "signer": "0x" + "33" * 20},  # claims another signer
        lambda p: {
            **p,
            "signature": p["signature"][:-2] + ("1b" if p["signature"][-2:] == "1c" else "1c"),  # v flipped
        },
        lambda p: {**p, "signature": ("f" if p["signature"][0] != "f" else "e") + p["signature"][1:]},
    ],
)
async def test_a_tampered_order_is_refused_with_derives_error(client: httpx.AsyncClient, tamper: Any) -> None:
    simulator: DeriveSimulator = client.simulator  # type: ignore[attr-defined]
    headers = sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    answer = await post(client, "/private/order", tamper(official_order(simulator)), **headers)
    # Derive answers a JSON-RPC error over REST with HTTP 200 (the error in the body): the official
    # client raises its DeriveJSONRPCError only for a 2xx answer (it calls raise_for_status()
    # first), and Derive's live answers reached hummingbot's connector as 2xx bodies (its
    # "Error submitting order ...: Signature does not match data", hummingbot PR #7465).
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"id", "error"} and set(body["error"]) <= {"code", "message", "data"}
    assert body["error"]["code"] == 14014 and body["error"]["message"] == "Invalid signature"
    assert simulator.orders == {}


async def test_rest_headers_are_verified(client: httpx.AsyncClient) -> None:
    simulator: DeriveSimulator = client.simulator  # type: ignore[attr-defined]
    params = official_order(simulator)
    missing = await post(client, "/private/order", params)
    assert missing.json()["error"]["code"] == 14021  # no wallet header
    stranger = "0x" + "44" * 32
    wrong_key = sign_rest_auth_header(Web3(), DEMO_WALLET, stranger)
    refused = await post(client, "/private/order", params, **wrong_key)
    assert refused.json()["error"]["code"] == 14026  # not a session key of the wallet
    assert simulator.orders == {}


async def test_the_official_ws_login_params_are_accepted(client: httpx.AsyncClient) -> None:
    simulator: DeriveSimulator = client.simulator  # type: ignore[attr-defined]
    login = sign_ws_login(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    assert simulator.call("public/login", login, peer=None, account=None, after=[]) == [DEMO_SUBACCOUNT]
    public = await post(client, "/public/get_instruments", {"currency": "ETH", "instrument_type": "perp"})
    assert [i["instrument_name"] for i in public.json()["result"]] == ["ETH-PERP"]
