"""The simulator's own signature checks (`simulators/polymarket/auth.py`) against VENUES.md §2.4-2.5's
test vectors and against Polymarket's own client, py-clob-client-v2 (its EIP-712 builders and HMAC):
two independent writings of the same documents must agree byte for byte."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from py_clob_client_v2.headers.headers import create_level_1_headers  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils.model import OrderDataV2, Side, SignatureTypeV2  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2  # type: ignore[import-untyped]
from py_clob_client_v2.signer import Signer  # type: ignore[import-untyped]
from py_clob_client_v2.signing.hmac import build_hmac_signature  # type: ignore[import-untyped]

from tradingd.simulators.polymarket.auth import (
    EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V2,
    clob_auth_typed_data,
    digest,
    hmac_signature,
    order_id,
    order_typed_data,
    recover,
)

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ZERO32 = "0x" + "00" * 32


def sign(typed: dict[str, object]) -> str:
    signature: bytes = Account.sign_message(encode_typed_data(full_message=typed), KEY).signature
    return "0x" + signature.hex()


@pytest.mark.parametrize(
    ("chain", "ts", "nonce", "expected"),
    [
        (
            80002,
            "10000000",
            23,
            "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b70c25ae232aff0ab2331e2b164a1aedc1b",
        ),
        (
            137,
            "1700000000",
            0,
            "0x659ed4b28ae28e0f038fdf0023c00863c9559caacb9ebc83f44eea87059a099a36f1e1dee110e7faa1c4f65d17489b2da1333ebef78bbe2116d81207b975052d1c",
        ),
    ],
)
def test_clob_auth_matches_the_venues_vectors(chain: int, ts: str, nonce: int, expected: str) -> None:
    typed = clob_auth_typed_data(ADDRESS, ts, nonce, chain)
    assert sign(typed) == expected
    assert recover(typed, expected) == ADDRESS
    # Another message (another nonce) recovers someone else: the check can fail.
    assert recover(clob_auth_typed_data(ADDRESS, ts, nonce + 1, chain), expected) != ADDRESS


def test_clob_auth_agrees_with_the_official_client() -> None:
    headers = create_level_1_headers(Signer(KEY, 137), nonce=7, timestamp=1_800_000_000)
    typed = clob_auth_typed_data(headers["POLY_ADDRESS"], headers["POLY_TIMESTAMP"], 7, 137)
    assert recover(typed, headers["POLY_SIGNATURE"]) == ADDRESS


def test_hmac_matches_the_venues_vector_and_the_official_client() -> None:
    secret = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    body = b'{"hash": "0x123"}'
    assert hmac_signature(secret, "1000000", "test-sign", "/orders", body) == (
        "ZwAdJKvoYRlEKDkNMwd5BuwNNtg93kNaR_oU2HrfVvc="
    )
    compact = b'{"orderID":"0xabc"}'
    assert hmac_signature(secret, "1700000000", "DELETE", "/order", compact) == build_hmac_signature(
        secret, "1700000000", "DELETE", "/order", compact.decode()
    )
    # No body: nothing appended, as the client does.
    assert hmac_signature(secret, "1700000000", "GET", "/data/orders", b"") == build_hmac_signature(
        secret, "1700000000", "GET", "/data/orders"
    )


VECTOR_ORDER = {
    "salt": 479249096354,
    "maker": ADDRESS,
    "signer": ADDRESS,
    "taker": "0x0000000000000000000000000000000000000000",
    "tokenId": "1234",
    "makerAmount": "50000000",
    "takerAmount": "100000000",
    "side": "BUY",
    "signatureType": 0,
    "timestamp": "1710000000000",
    "expiration": "0",
    "metadata": ZERO32,
    "builder": ZERO32,
}


def test_the_v2_order_matches_the_venues_vector() -> None:
    typed = order_typed_data(VECTOR_ORDER, chain_id=137, neg_risk=False)
    assert digest(typed).hex() == "8c15548d83608d34832e3ef1cb06e1d822a7b8e2ac381a5f0d11c4dcdcfa3648"
    signature = sign(typed)
    assert signature == (
        "0x0247fdf6b4fd60944cdde6aee4dc8106176352480db802df31690c0a9438235c"
        "158b279108f3fcedb4a51080b6fef2b7168ea2dfc5be6347aab58818ae4e9bce1b"
    )
    assert recover(typed, signature) == ADDRESS
    # The unsigned JSON fields do not move the digest; a signed one does.
    assert (
        order_id({**VECTOR_ORDER, "expiration": "99"}, chain_id=137, neg_risk=False)
        == "0x" + digest(typed).hex()
    )
    assert order_id({**VECTOR_ORDER, "makerAmount": "50000001"}, chain_id=137, neg_risk=False) != (
        "0x" + digest(typed).hex()
    )
    # The neg-risk exchange is another domain: the same order is another digest.
    assert order_id(VECTOR_ORDER, chain_id=137, neg_risk=True) != "0x" + digest(typed).hex()


@pytest.mark.parametrize(("neg_risk", "exchange"), [(False, EXCHANGE_V2), (True, NEG_RISK_EXCHANGE_V2)])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_the_v2_order_agrees_with_the_official_client(neg_risk: bool, exchange: str, side: Side) -> None:
    builder = ExchangeOrderBuilderV2(exchange, 137, Signer(KEY, 137), generate_salt=lambda: 987654321)
    signed = builder.build_signed_order(
        OrderDataV2(
            maker=ADDRESS,
            tokenId="71321045679252212594626385532706912750332728571942532289631379312455583992563",
            makerAmount="5000000",
            takerAmount="10000000",
            side=side,
            signer=ADDRESS,
            signatureType=SignatureTypeV2.EOA,
            timestamp="1765000000123",
            expiration="1765000999",
        )
    )
    body = order_to_json_v2(signed, owner="key", order_type="GTD")["order"]
    typed = order_typed_data(body, chain_id=137, neg_risk=neg_risk)
    official = builder.build_order_typed_data(dataclasses.replace(signed))
    assert order_id(body, chain_id=137, neg_risk=neg_risk) == builder.build_order_hash(official)
    assert recover(typed, body["signature"]) == ADDRESS
    # Signed for the other exchange, it is not this exchange's order.
    other = order_typed_data(body, chain_id=137, neg_risk=not neg_risk)
    assert recover(other, body["signature"]) != ADDRESS


def test_malformed_orders_and_signatures_raise_value_errors() -> None:
    with pytest.raises(ValueError):
        order_typed_data({**VECTOR_ORDER, "side": "HOLD"}, chain_id=137, neg_risk=False)
    with pytest.raises(ValueError):
        order_typed_data({**VECTOR_ORDER, "metadata": "0x12"}, chain_id=137, neg_risk=False)
    typed = order_typed_data(VECTOR_ORDER, chain_id=137, neg_risk=False)
    for bad in ("0x", "0x" + "00" * 65, "not hex"):
        with pytest.raises(ValueError):
            recover(typed, bad)
