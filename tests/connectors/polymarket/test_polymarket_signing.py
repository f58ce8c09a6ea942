"""Polymarket CLOB V2 signing (`connectors.polymarket.signing`, VENUES.md §2.4, §2.5): the test
vectors of VENUES.md, and byte-for-byte agreement with Polymarket's official Python client for V2
(`py-clob-client-v2` 1.2.1) on orders, signatures, order ids, POST bodies and L1/L2 headers."""

from __future__ import annotations

import json
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from py_clob_client_v2.clob_types import (  # type: ignore[import-untyped]
    ApiCreds,
    CreateOrderOptions,
    OrderArgsV2,
    RequestArgs,
)
from py_clob_client_v2.config import get_contract_config  # type: ignore[import-untyped]
from py_clob_client_v2.headers.headers import create_level_1_headers, create_level_2_headers  # type: ignore[import-untyped]
from py_clob_client_v2.order_builder import builder as official_builder_module  # type: ignore[import-untyped]
from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG, OrderBuilder  # type: ignore[import-untyped]
from py_clob_client_v2.order_builder.helpers import round_down  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2, OrderDataV2, SignatureTypeV2  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils import utils as official_utils
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2  # type: ignore[import-untyped]
from py_clob_client_v2.order_utils.model.side import Side as OfficialSide  # type: ignore[import-untyped]
from py_clob_client_v2.signer import Signer  # type: ignore[import-untyped]
from py_clob_client_v2.signing.hmac import build_hmac_signature  # type: ignore[import-untyped]

from tradingd.connectors.polymarket.signing import (
    BYTES32_ZERO,
    EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V2,
    ApiCredentials,
    Credentials,
    OrderSigner,
    OrderType,
    SignatureType,
    SignedOrder,
    cancel_body,
    cancel_market_body,
    cancel_orders_body,
    check_order,
    hmac_signature,
    l1_headers,
    l2_headers,
    market_order_amounts,
    order_amounts,
    order_body,
    order_type_for,
    orders_body,
)
from tradingd.engine import AuthError, Instrument, InstrumentKind, OrderRejected, Side, TimeInForce
from tradingd.engine.logs.setup import REDACTED, redact_secrets

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "polymarket"
# VENUES.md §2.4 / §2.5: the well-known test key (address 0xf39F...2266).
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
FUNDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SECRET = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
API = ApiCredentials("00000000-0000-0000-0000-000000000001", SECRET, "passphrase-1")
OFFICIAL_CREDS = ApiCreds(API.key, API.secret, API.passphrase)


def outcome(tick: str = "0.01", min_size: str = "5", *, active: bool = True) -> Instrument:
    return Instrument(
        venue="polymarket",
        symbol=TOKEN,
        kind=InstrumentKind.OUTCOME,
        base="0xdd22",
        quote="pUSD",
        settle="pUSD",
        tick_size=tick,
        min_size=min_size,
        active=active,
    )


# --------------------------------------------------------------------------- VENUES.md vectors


def test_v2_order_vector() -> None:
    """§2.5: reproduced with the official client; digest = order id, and the signature."""
    signer = OrderSigner(KEY)
    order = signer.sign(
        "1234",
        Side.BUY,
        50_000_000,
        100_000_000,
        neg_risk=False,
        salt=479249096354,
        timestamp_ms=1710000000000,
    )
    assert order.order_id == "0x8c15548d83608d34832e3ef1cb06e1d822a7b8e2ac381a5f0d11c4dcdcfa3648"
    assert order.signature == (
        "0x0247fdf6b4fd60944cdde6aee4dc8106176352480db802df31690c0a9438235c158b279108f3fcedb4a51080b6fef2b"
        "7168ea2dfc5be6347aab58818ae4e9bce1b"
    )
    assert (order.maker, order.signer, order.exchange) == (ADDRESS, ADDRESS, EXCHANGE_V2)


def test_clob_auth_vectors() -> None:
    """§2.4: chain 80002 / ts 10000000 / nonce 23 (the official test), and chain 137."""
    assert OrderSigner(KEY, chain_id=80002).clob_auth_signature(timestamp=10000000, nonce=23) == (
        "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b"
        "70c25ae232aff0ab2331e2b164a1aedc1b"
    )
    assert OrderSigner(KEY).clob_auth_signature(timestamp=1700000000) == (
        "0x659ed4b28ae28e0f038fdf0023c00863c9559caacb9ebc83f44eea87059a099a36f1e1dee110e7faa1c4f65d17489b2"
        "da1333ebef78bbe2116d81207b975052d1c"
    )


def test_hmac_vector() -> None:
    assert hmac_signature(SECRET, 1000000, "test-sign", "/orders", '{"hash": "0x123"}') == (
        "ZwAdJKvoYRlEKDkNMwd5BuwNNtg93kNaR_oU2HrfVvc="
    )


def test_contracts_are_the_official_clients() -> None:
    for chain in (137, 80002):
        config = get_contract_config(chain)
        assert (config.exchange_v2, config.neg_risk_exchange_v2) == (EXCHANGE_V2, NEG_RISK_EXCHANGE_V2)


# --------------------------------------------------------------------------- against the official client


def official_signed(
    *,
    neg_risk: bool,
    side: Side,
    maker_amount: int,
    taker_amount: int,
    salt: int,
    ts: int,
    expiration: int = 0,
    signature_type: SignatureTypeV2 = SignatureTypeV2.EOA,
    funder: str | None = None,
    chain_id: int = 137,
) -> Any:
    signer = Signer(KEY, chain_id)
    maker = funder or signer.address()
    builder = ExchangeOrderBuilderV2(
        NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2, chain_id, signer, generate_salt=lambda: str(salt)
    )
    data = OrderDataV2(
        maker=maker,
        tokenId=TOKEN,
        makerAmount=str(maker_amount),
        takerAmount=str(taker_amount),
        side=OfficialSide.BUY if side is Side.BUY else OfficialSide.SELL,
        signer=maker if signature_type == SignatureTypeV2.POLY_1271 else signer.address(),
        signatureType=signature_type,
        timestamp=str(ts),
        expiration=str(expiration),
    )
    signed = builder.build_signed_order(data)
    order_hash = builder.build_order_hash(builder.build_order_typed_data(builder.build_order(data)))
    return signed, order_hash


def exact_amounts(side: Side, price: Decimal, size: Decimal) -> tuple[int, int]:
    """§2.5 amount math done by hand, independently of the module."""
    shares, collateral = int(size * 1_000_000), int(size * price * 1_000_000)
    assert Decimal(shares) == size * 1_000_000 and Decimal(collateral) == size * price * 1_000_000
    return (collateral, shares) if side is Side.BUY else (shares, collateral)


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    tick = draw(st.sampled_from(["0.1", "0.01", "0.001", "0.0001", "0.005", "0.0025"]))
    step = Decimal(tick)
    n = int(1 / step)
    return {
        "tick": tick,
        "price": step * draw(st.integers(1, n - 1)),
        "size": Decimal(draw(st.integers(500, 10_000_000))) / 100,
        "side": draw(st.sampled_from([Side.BUY, Side.SELL])),
        "neg_risk": draw(st.booleans()),
        "salt": draw(st.integers(0, 2**40)),
        "ts": draw(st.integers(1_700_000_000_000, 1_900_000_000_000)),
        "gtd": draw(st.booleans()),
        "post_only": draw(st.booleans()),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(o=orders())
def test_orders_bodies_and_headers_are_byte_identical_to_the_official_client(o: dict[str, Any]) -> None:
    inst = outcome(o["tick"])
    signer = OrderSigner(KEY)
    expiration = o["ts"] // 1000 + 3600 if o["gtd"] else 0
    ours = signer.limit_order(
        inst,
        o["side"],
        o["price"],
        o["size"],
        neg_risk=o["neg_risk"],
        expiration=expiration,
        salt=o["salt"],
        timestamp_ms=o["ts"],
    )
    # The amounts: exact (§2.5), and the official client's wherever its floats get them right.
    assert (ours.maker_amount, ours.taker_amount) == exact_amounts(o["side"], o["price"], o["size"])
    _, off_maker, off_taker = OrderBuilder(Signer(KEY, 137)).get_order_amounts(
        o["side"].value.upper(), float(o["size"]), float(o["price"]), ROUNDING_CONFIG[o["tick"]]
    )
    if (off_maker, off_taker) != (ours.maker_amount, ours.taker_amount):
        # Only its float floor of the size loses: one cent of shares, never more (see below).
        shares = ours.taker_amount if o["side"] is Side.BUY else ours.maker_amount
        off_shares = off_taker if o["side"] is Side.BUY else off_maker
        assert shares - off_shares == 10_000
    # The signed order, the order id, the body and the L2 headers, for the same amounts.
    signed, order_hash = official_signed(
        neg_risk=o["neg_risk"],
        side=o["side"],
        maker_amount=ours.maker_amount,
        taker_amount=ours.taker_amount,
        salt=o["salt"],
        ts=o["ts"],
        expiration=expiration,
    )
    assert ours.signature == signed.signature
    assert ours.order_id == order_hash
    order_type = OrderType.GTD if o["gtd"] else OrderType.GTC
    body = order_body(ours, owner=API.key, order_type=order_type, post_only=o["post_only"])
    official_body = json.dumps(
        order_to_json_v2(signed, API.key, order_type.value, o["post_only"], False),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert body == official_body.encode()
    ts = o["ts"] // 1000
    headers = l2_headers(API, signer.address, method="POST", path="/order", body=body, timestamp=ts)
    official_headers = create_level_2_headers(
        Signer(KEY, 137),
        OFFICIAL_CREDS,
        RequestArgs(method="POST", request_path="/order", body=None, serialized_body=official_body),
        timestamp=ts,
    )
    assert headers == official_headers
    assert list(headers) == list(official_headers)


@pytest.mark.parametrize("neg_risk", [False, True])
@pytest.mark.parametrize(
    ("tick", "side", "price", "size"),
    [
        ("0.01", "BUY", "0.57", "10"),
        ("0.001", "SELL", "0.955", "123.45"),
        ("0.0001", "BUY", "0.0005", "5000"),
    ],
)
def test_the_whole_official_order_builder_path(
    monkeypatch: pytest.MonkeyPatch, neg_risk: bool, tick: str, side: str, price: str, size: str
) -> None:
    """`OrderBuilder.build_order` (its rounding, its contract choice) gives our order exactly. Its
    clock and salt cannot be injected: they are pinned through its modules' globals."""
    ts = 1_750_000_000_123
    monkeypatch.setattr(
        official_builder_module, "time", types.SimpleNamespace(time_ns=lambda: ts * 1_000_000)
    )
    monkeypatch.setattr(official_utils, "time", types.SimpleNamespace(time_ns=lambda: ts * 1_000_000))
    monkeypatch.setattr(official_utils, "random", types.SimpleNamespace(random=lambda: 0.25))
    official = OrderBuilder(Signer(KEY, 137)).build_order(
        OrderArgsV2(token_id=TOKEN, price=float(price), size=float(size), side=side),
        CreateOrderOptions(tick_size=tick, neg_risk=neg_risk),
    )
    ours = OrderSigner(KEY, salt=lambda now: int(0.25 * now), clock_ms=lambda: ts).limit_order(
        outcome(tick), Side(side.lower()), Decimal(price), Decimal(size), neg_risk=neg_risk
    )
    assert ours.to_json() == order_to_json_v2(official, API.key, "GTC")["order"]
    assert ours.exchange == (NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2)


def test_the_official_clients_float_rounding_loses_a_cent_of_shares() -> None:
    """The one deliberate difference: py-clob-client-v2 floors the size in binary floating point
    (`floor(1272.62 * 100) / 100` is 1272.61). We sign the size asked for."""
    _, maker, taker = OrderBuilder(Signer(KEY, 137)).get_order_amounts(
        "BUY", 1272.62, 0.38, ROUNDING_CONFIG["0.01"]
    )
    assert (maker, taker) == (483_591_800, 1_272_610_000)
    assert order_amounts(Side.BUY, Decimal("0.38"), Decimal("1272.62"), Decimal("0.01")) == (
        483_595_600,
        1_272_620_000,
    )


@pytest.mark.parametrize(
    ("kind", "funder"),
    [
        (SignatureType.POLY_PROXY, FUNDER),
        (SignatureType.POLY_GNOSIS_SAFE, FUNDER),
        (SignatureType.POLY_1271, FUNDER),
    ],
)
def test_wallet_signature_types_match_the_official_client(kind: SignatureType, funder: str) -> None:
    signer = OrderSigner(KEY, signature_type=kind, funder=funder)
    ours = signer.sign(
        TOKEN, Side.SELL, 10_000_000, 5_700_000, neg_risk=True, salt=42, timestamp_ms=1_760_000_000_000
    )
    signed, order_hash = official_signed(
        neg_risk=True,
        side=Side.SELL,
        maker_amount=10_000_000,
        taker_amount=5_700_000,
        salt=42,
        ts=1_760_000_000_000,
        signature_type=SignatureTypeV2(int(kind)),
        funder=funder,
    )
    assert ours.to_json() == order_to_json_v2(signed, API.key, "GTC")["order"]
    assert ours.order_id == order_hash
    assert ours.maker == funder
    assert ours.signer == (funder if kind is SignatureType.POLY_1271 else ADDRESS)
    if kind is SignatureType.POLY_1271:
        assert len(ours.signature) > 2 + 130  # the wrapped ERC-7739 form, not a bare signature


def test_another_chain_and_exchange_change_the_signature() -> None:
    args: dict[str, Any] = {"neg_risk": False, "salt": 1, "timestamp_ms": 1_760_000_000_000}
    base = OrderSigner(KEY).sign(TOKEN, Side.BUY, 5_000_000, 10_000_000, **args)
    amoy = OrderSigner(KEY, chain_id=80002).sign(TOKEN, Side.BUY, 5_000_000, 10_000_000, **args)
    neg = OrderSigner(KEY).sign(TOKEN, Side.BUY, 5_000_000, 10_000_000, **{**args, "neg_risk": True})
    assert len({base.signature, amoy.signature, neg.signature}) == 3
    signed, _ = official_signed(
        neg_risk=False,
        side=Side.BUY,
        maker_amount=5_000_000,
        taker_amount=10_000_000,
        salt=1,
        ts=1_760_000_000_000,
        chain_id=80002,
    )
    assert amoy.signature == signed.signature


@settings(max_examples=200, deadline=None)
@given(
    tick=st.sampled_from(["0.1", "0.01", "0.001", "0.0001"]),
    k=st.integers(1, 9999),
    cents=st.integers(100, 1_000_000),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_market_order_amounts_match_the_official_client(tick: str, k: int, cents: int, side: Side) -> None:
    step = Decimal(tick)
    assume(k < int(1 / step))
    price = step * k
    amount = Decimal(cents) / 100
    ours = market_order_amounts(side, amount, price, step)
    _, maker, taker = OrderBuilder(Signer(KEY, 137)).get_market_order_amounts(
        side.value.upper(), float(amount), float(price), ROUNDING_CONFIG[tick]
    )
    if side is Side.SELL:
        assert ours == (int(amount * 10**6), int(amount * price * 10**6))
    else:
        assert ours[0] == int(amount * 10**6)
        assert ours[1] <= amount / price * 10**6  # never more shares than the money buys
    r = ROUNDING_CONFIG[tick]
    floored_price = Decimal(repr(round_down(float(price), int(r.price))))
    floored_amount = Decimal(repr(round_down(float(amount), int(r.size))))
    if (floored_price, floored_amount) == (price, amount):
        # Where its float floors keep the inputs, the official client agrees, or falls short by
        # float noise in its quotient: one base unit (`int(3719199.9999999995)`), or for big share
        # counts (16 significant digits) one unit of the last amount decimal (7767.69 / 0.001).
        assert maker == ours[0]
        assert 0 <= ours[1] - taker <= max(1, 10 ** (6 - int(r.amount)))
    else:
        # Its float floor took a tick off the worst price (0.29 -> 0.28) or a cent off the amount.
        assert floored_price < price or floored_amount < amount


# --------------------------------------------------------------------------- validation


def test_check_order_accepts_what_the_venue_accepts() -> None:
    check_order(outcome(), Decimal("0.01"), Decimal("5"))
    check_order(outcome(), Decimal("0.99"), Decimal("1234.56"))
    check_order(outcome("0.001"), Decimal("0.999"), Decimal("5.5"))  # a multiple of nothing but 0.01


@pytest.mark.parametrize(
    ("inst", "price", "size", "match"),
    [
        (outcome(), "0.505", "10", "not a multiple of the tick size 0.01"),
        (outcome(), "0", "10", r"outside \[0.01, 0.99\]"),
        (outcome(), "1", "10", r"outside \[0.01, 0.99\]"),
        (outcome("0.001"), "0.9995", "10", "outside"),
        (outcome(), "0.5", "4.99", "below the minimum order size 5"),
        (outcome(), "0.5", "10.001", "more than 2 decimals"),
        (outcome(), "0.5", "0", "must be positive"),
        (outcome(), "0.5", "NaN", "finite"),
        (outcome(active=False), "0.5", "10", "not active"),
        (outcome("0.02"), "0.5", "10", "tick size 0.02 is not one Polymarket uses"),
    ],
)
def test_check_order_rejects_with_context(inst: Instrument, price: str, size: str, match: str) -> None:
    with pytest.raises(OrderRejected, match=match) as info:
        check_order(inst, Decimal(price), Decimal(size), client_order_id="s-1")
    assert (info.value.venue, info.value.instrument, info.value.client_order_id) == (
        "polymarket",
        TOKEN,
        "s-1",
    )
    assert info.value.code is None  # a pre-trade refusal, not the venue's


def test_a_rejected_order_is_never_signed() -> None:
    calls: list[int] = []

    def clock_ms() -> int:
        calls.append(1)
        return 1

    signer = OrderSigner(KEY, clock_ms=clock_ms)
    with pytest.raises(OrderRejected):
        signer.limit_order(outcome(), Side.BUY, Decimal("0.505"), Decimal("10"), neg_risk=False)
    assert calls == []


def test_amount_helpers_refuse_what_would_need_rounding() -> None:
    with pytest.raises(ValueError, match="more decimals"):
        order_amounts(Side.BUY, Decimal("0.505"), Decimal("10"), Decimal("0.01"))
    with pytest.raises(ValueError, match="unknown tick size"):
        order_amounts(Side.BUY, Decimal("0.5"), Decimal("10"), Decimal("0.02"))
    with pytest.raises(ValueError, match="at most 2 decimals"):
        market_order_amounts(Side.BUY, Decimal("1.001"), Decimal("0.5"), Decimal("0.01"))
    assert market_order_amounts(Side.BUY, Decimal("10"), Decimal("0.3"), Decimal("0.01")) == (
        10_000_000,
        33_333_300,
    )


def test_order_types() -> None:
    assert [order_type_for(t) for t in TimeInForce] == [
        OrderType.GTC,
        OrderType.GTD,
        OrderType.FAK,
        OrderType.FOK,
    ]


def test_body_rules() -> None:
    order = OrderSigner(KEY).sign(
        TOKEN, Side.BUY, 5_000_000, 10_000_000, neg_risk=False, salt=7, timestamp_ms=1
    )
    with pytest.raises(ValueError, match="post_only"):
        order_body(order, owner="k", order_type=OrderType.FOK, post_only=True)
    with pytest.raises(ValueError, match="GTD"):
        order_body(order, owner="k", order_type=OrderType.GTD)
    body = orjson.loads(order_body(order, owner="k", order_type=OrderType.FAK))
    assert list(body) == ["order", "owner", "orderType", "deferExec", "postOnly"]
    # The order object has the field set of the captured V2 signed order (§2.5).
    assert set(body["order"]) == set(orjson.loads((FIXTURES / "http_signed_order.json").read_bytes()))
    assert (
        body["order"]["salt"] == 7
        and body["order"]["tokenId"] == TOKEN
        and body["order"]["expiration"] == "0"
    )
    batch = orders_body([(order, OrderType.GTC), (order, OrderType.FOK)], owner="k")
    assert [b["orderType"] for b in orjson.loads(batch)] == ["GTC", "FOK"]
    with pytest.raises(ValueError, match="1 to 15"):
        orders_body([(order, OrderType.GTC)] * 16, owner="k")


def test_cancel_bodies_are_the_official_clients() -> None:
    def official(body: Any) -> bytes:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    assert cancel_body("0xabc") == official({"orderID": "0xabc"})
    assert cancel_orders_body(["0x1", "0x2"]) == official(["0x1", "0x2"])
    assert cancel_market_body(market="0xm", asset_id=TOKEN) == official({"market": "0xm", "asset_id": TOKEN})
    assert cancel_market_body(asset_id=TOKEN) == official({"asset_id": TOKEN})


# --------------------------------------------------------------------------- headers


def test_l1_headers_are_the_official_clients() -> None:
    ours = l1_headers(OrderSigner(KEY), timestamp=1_760_000_000, nonce=3)
    theirs = create_level_1_headers(Signer(KEY, 137), nonce=3, timestamp=1_760_000_000)
    assert ours == theirs and list(ours) == list(theirs)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/data/orders", None),
        ("DELETE", "/cancel-all", None),
        ("DELETE", "/order", '{"orderID":"0x1"}'),
    ],
)
def test_l2_headers_without_and_with_bodies(method: str, path: str, body: str | None) -> None:
    ours = l2_headers(API, ADDRESS, method=method, path=path, body=body, timestamp=1_760_000_000)
    theirs = create_level_2_headers(
        Signer(KEY, 137),
        OFFICIAL_CREDS,
        RequestArgs(method=method, request_path=path, serialized_body=body),
        timestamp=1_760_000_000,
    )
    assert ours == theirs
    assert hmac_signature(SECRET, 5, method, path, body) == build_hmac_signature(
        SECRET, "5", method, path, body
    )


def test_a_body_with_a_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be signed"):
        hmac_signature(SECRET, 1, "POST", "/x", b'{"a":"it\'s"}')


# --------------------------------------------------------------------------- credentials


ENV = {
    "POLYMARKET_PRIVATE_KEY": KEY,
    "POLYMARKET_API_KEY": API.key,
    "POLYMARKET_API_SECRET": "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
    "POLYMARKET_API_PASSPHRASE": "pass-phrase-xyz",
}


def test_credentials_from_the_environment_never_show_secrets() -> None:
    creds = Credentials.from_env(ENV)
    assert creds.api is not None and creds.api.key == API.key
    assert creds.signature_type is SignatureType.EOA and creds.funder is None
    text = repr(creds) + str(creds) + repr(creds.api) + repr(creds.signer())
    for secret in (KEY, KEY[2:], ENV["POLYMARKET_API_SECRET"], ENV["POLYMARKET_API_PASSPHRASE"]):
        assert secret not in text
    assert "<hidden>" in repr(creds)
    # Registered with the log redactor: a log line carrying one is redacted wherever it appears.
    logged = redact_secrets(None, "info", {"event": "x", "note": f"oops {ENV['POLYMARKET_API_PASSPHRASE']}"})
    assert logged["note"] == REDACTED
    assert creds.signer().address == ADDRESS


def test_credentials_from_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    creds = Credentials.from_env(
        {
            "POLYMARKET_PRIVATE_KEY_FILE": str(key_file),
            "POLYMARKET_SIGNATURE_TYPE": "2",
            "POLYMARKET_FUNDER": FUNDER,
        }
    )
    assert creds.private_key == KEY and creds.api is None
    assert creds.signature_type is SignatureType.POLY_GNOSIS_SAFE and creds.signer().maker == FUNDER


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({}, "POLYMARKET_PRIVATE_KEY"),
        ({"POLYMARKET_PRIVATE_KEY": "0x1234"}, "32 bytes"),
        ({"POLYMARKET_PRIVATE_KEY": "zz" * 32}, "not hex"),
        ({**ENV, "POLYMARKET_API_PASSPHRASE": ""}, "POLYMARKET_API_PASSPHRASE missing"),
        ({**ENV, "POLYMARKET_API_SECRET": "%%%"}, "not base64"),
        ({**ENV, "POLYMARKET_SIGNATURE_TYPE": "MAGIC"}, "unknown"),
        ({**ENV, "POLYMARKET_SIGNATURE_TYPE": "POLY_PROXY"}, "POLYMARKET_FUNDER is needed"),
        ({**ENV, "POLYMARKET_FUNDER": "0x12"}, "not an address"),
        ({"POLYMARKET_PRIVATE_KEY_FILE": "/nonexistent/key"}, "cannot read POLYMARKET_PRIVATE_KEY_FILE"),
    ],
)
def test_bad_credentials_are_named_not_shown(env: dict[str, str], match: str) -> None:
    with pytest.raises(AuthError, match=match) as info:
        Credentials.from_env(env)
    assert info.value.venue == "polymarket"
    for name in ("POLYMARKET_PRIVATE_KEY", "POLYMARKET_API_SECRET", "POLYMARKET_API_PASSPHRASE"):
        if env.get(name):
            assert env[name] not in str(info.value)


def test_signer_needs_a_funder_for_wallets_and_a_good_key() -> None:
    with pytest.raises(ValueError, match="needs the funder"):
        OrderSigner(KEY, signature_type=SignatureType.POLY_PROXY)
    with pytest.raises(ValueError, match="32 bytes"):
        OrderSigner("0x00")
    assert KEY[2:] not in repr(OrderSigner(KEY))


def test_signed_order_amounts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        OrderSigner(KEY).sign(TOKEN, Side.BUY, 0, 1, neg_risk=False)
    order = OrderSigner(KEY, clock_ms=lambda: 1_800_000_000_000, salt=lambda now: now // 2).sign(
        TOKEN, Side.BUY, 1, 2, neg_risk=False
    )
    assert isinstance(order, SignedOrder)
    assert (order.timestamp_ms, order.salt, order.metadata, order.builder) == (
        1_800_000_000_000,
        900_000_000_000,
        BYTES32_ZERO,
        BYTES32_ZERO,
    )
