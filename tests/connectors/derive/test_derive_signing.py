"""Derive signing (connectors/derive/signing.py) against VENUES.md §3.5/§3.6 vectors and against
Derive's official `derive-action-signing` 0.0.13 (a test-only dependency), byte for byte."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from derive_action_signing import (  # type: ignore[import-untyped]
    SignedAction,
    TradeModuleData,
    decimal_to_big_int,
    sign_rest_auth_header,
)
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from tradingd.connectors.derive.instruments import DeriveInstrumentInfo, parse_instrument
from tradingd.connectors.derive.signing import (
    ACTION_TYPEHASH,
    DOMAINS,
    MAINNET,
    TESTNET,
    Credentials,
    NonceSource,
    OrderSigner,
    SigningDomain,
    action_hash,
    encode_trade_data,
    login_digest,
    login_params,
    login_signature,
    recover_signer,
    rest_auth_headers,
    sign_digest,
    to_e18,
    typed_data_hash,
)
from tradingd.engine import AuthError, OrderRejected
from tradingd.engine.logs.setup import REDACTED, redact_secrets

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "derive"

# VENUES.md §3.6 "Test vector" (and §3.5: the same key signs the login vector).
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OWNER = "0x8772185a1516f0d61fC1c2524926BfC69F95d698"
ASSET = "0xBcB494059969DAaB460E0B5d4f5c2366aab79aa1"
SUB_ID = 39614081257132168796771975168
SUBACCOUNT = 30769
NONCE = 1695836058725001
EXPIRY = 1700000600
# VENUES.md §3.6 encoded_data, one ABI word per line.
ENCODED = "".join(
    (
        "000000000000000000000000bcb494059969daab460e0b5d4f5c2366aab79aa1",  # asset
        "0000000000000000000000000000000000000000800000000000000000000000",  # sub_id (2**95)
        "0000000000000000000000000000000000000000000000056bc75e2d63100000",  # limit_price 100e18
        "0000000000000000000000000000000000000000000000000de0b6b3a7640000",  # amount 1e18
        "00000000000000000000000000000000000000000000003635c9adc5dea00000",  # max_fee 1000e18
        "0000000000000000000000000000000000000000000000000000000000007831",  # recipient 30769
        "0000000000000000000000000000000000000000000000000000000000000001",  # is_bid
    )
)
ACTION_HASH = "4c3a0ce47f5a10a26f2189cf55a7b73c8f7a28ebb5f0da2a088040b2fe862ee1"
TYPED_DATA_HASH = "466437dbc9328cd836aaa39b7b660877da38d4bbded97d2f1d55fa8fcde5844e"
SIGNATURE = (
    "0x80e1b083df61c2aa6200924ca027fd9fe9bd324af48dbe37073667692f43967a2ea78346b08d3d212b4809eefc7519d97fee1f9b"
    "549c1821a74ff62fbb68f3731c"
)
LOGIN_SIGNATURE = (
    "0x5191adf09347810ecd7ffe7e1124d2230441afc321529ea4d20be982c612af684fac942dac02748949bdba4cf9d968c3cdc0c7a8"
    "37a52d9c2fb7b4743708b4691c"
)

CREDS = Credentials(OWNER, KEY, SUBACCOUNT)
INFO = DeriveInstrumentInfo(
    name="ETH-20260627-3500-C",
    instrument_type="option",
    asset_address=ASSET,
    sub_id=SUB_ID,
    amount_step=Decimal("0.01"),
    minimum_amount=Decimal("0.01"),
    maximum_amount=Decimal(100),
    base_fee=Decimal("0.5"),
    maker_fee_rate=Decimal("0.0003"),
    taker_fee_rate=Decimal("0.0004"),
)
NOW_S = EXPIRY - 600


def official(
    *,
    domain: SigningDomain = TESTNET,
    subaccount_id: int = SUBACCOUNT,
    nonce: int = NONCE,
    expiry: int = EXPIRY,
    owner: str = OWNER,
    signer: str = SIGNER,
    asset: str = ASSET,
    sub_id: int = SUB_ID,
    limit_price: Decimal = Decimal(100),
    amount: Decimal = Decimal(1),
    max_fee: Decimal = Decimal(1000),
    is_bid: bool = True,
) -> SignedAction:
    """The official package's action for the same inputs."""
    return SignedAction(
        subaccount_id=subaccount_id,
        owner=owner,
        signer=signer,
        signature_expiry_sec=expiry,
        nonce=nonce,
        module_address=domain.trade_module,
        module_data=TradeModuleData(
            asset_address=asset,
            sub_id=sub_id,
            limit_price=limit_price,
            amount=amount,
            max_fee=max_fee,
            recipient_id=subaccount_id,
            is_bid=is_bid,
        ),
        DOMAIN_SEPARATOR="0x" + domain.domain_separator.hex(),
        ACTION_TYPEHASH="0x" + ACTION_TYPEHASH.hex(),
    )


def signer_at(now: int = NOW_S, domain: SigningDomain = TESTNET) -> OrderSigner:
    return OrderSigner(CREDS, domain, clock_s=lambda: now, nonces=NonceSource(clock_ms=lambda: now * 1000))


# ------------------------------------------------------------------------------------ vectors


def test_the_venues_action_vector() -> None:
    order = signer_at().sign_order(
        INFO,
        direction="buy",
        amount=Decimal(1),
        limit_price=Decimal(100),
        max_fee=Decimal(1000),
        nonce=NONCE,
        signature_expiry_sec=EXPIRY,
    )
    assert order.encoded_data.hex() == ENCODED
    assert order.action_hash.hex() == ACTION_HASH
    assert order.typed_data_hash.hex() == TYPED_DATA_HASH
    assert order.signature == SIGNATURE
    assert order.signer == SIGNER


def test_the_official_package_agrees_on_the_vector() -> None:
    action = official()
    assert action.module_data.to_abi_encoded().hex() == ENCODED
    assert action._get_action_hash().hex() == ACTION_HASH
    assert action._to_typed_data_hash().hex() == TYPED_DATA_HASH
    assert action.sign(KEY) == SIGNATURE.removeprefix("0x")  # its sign() has no 0x


def test_the_login_vector_and_the_official_login_headers() -> None:
    assert login_signature(CREDS.key, 1700000000000) == LOGIN_SIGNATURE
    assert login_params(CREDS, 1700000000000) == {
        "wallet": OWNER,
        "timestamp": "1700000000000",
        "signature": LOGIN_SIGNATURE,
    }
    # The official helper reads the clock itself: sign the timestamp it chose and compare.
    theirs = sign_rest_auth_header(Web3(), OWNER, KEY)
    ours = rest_auth_headers(CREDS, int(theirs["X-LYRATIMESTAMP"]))
    assert ours.keys() == theirs.keys()
    assert ours["X-LYRAWALLET"] == theirs["X-LYRAWALLET"]
    assert ours["X-LYRASIGNATURE"] == "0x" + theirs["X-LYRASIGNATURE"].removeprefix("0x")


def test_the_constants() -> None:
    assert (
        Web3.keccak(
            text="Action(uint256 subaccountId,uint256 nonce,address module,bytes data,uint256 expiry,"
            "address owner,address signer)"
        )
        == ACTION_TYPEHASH
    )
    assert DOMAINS == {"mainnet": MAINNET, "testnet": TESTNET}
    assert (
        MAINNET.domain_separator.hex() == "d96e5f90797da7ec8dc4e276260c7f3f87fedf68775fbe1ef116e996fc60441b"
    )
    assert MAINNET.trade_module == "0xB8D20c2B7a1Ad2EE33Bc50eF10876eD3035b5e7b"
    assert TESTNET.trade_module == "0x87F2863866D85E3192a35A73b388BD625D83f2be"
    assert "0x9bcf4dc0" in repr(TESTNET)


# ------------------------------------------------------------- random orders (hypothesis)

# Many decimals, both signs of magnitude, and more significant digits than the 28 the official
# package keeps when it scales by 1e18 (its default decimal context): its rounding is ours too.
many_decimals = st.decimals(
    min_value=Decimal("0.000000000000000001"), max_value=Decimal("1000000000"), places=30, allow_nan=False
)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: Web3.to_checksum_address("0x" + b.hex()))
uint64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=150, deadline=None)
@given(
    amount=many_decimals,
    price=many_decimals,
    max_fee=many_decimals | st.just(Decimal(0)),
    is_bid=st.booleans(),
    subaccount=st.integers(min_value=0, max_value=2**40),
    nonce=uint64,
    expiry=st.integers(min_value=0, max_value=2**40),
    asset=addresses,
    sub_id=st.integers(min_value=0, max_value=2**96 - 1),
    domain=st.sampled_from([MAINNET, TESTNET]),
)
def test_encodings_digests_and_signatures_equal_the_official_ones(
    amount: Decimal,
    price: Decimal,
    max_fee: Decimal,
    is_bid: bool,
    subaccount: int,
    nonce: int,
    expiry: int,
    asset: str,
    sub_id: int,
    domain: SigningDomain,
) -> None:
    data = encode_trade_data(
        asset_address=asset,
        sub_id=sub_id,
        limit_price=price,
        amount=amount,
        max_fee=max_fee,
        recipient_id=subaccount,
        is_bid=is_bid,
    )
    action = action_hash(
        subaccount_id=subaccount,
        nonce=nonce,
        module=domain.trade_module,
        data=data,
        signature_expiry_sec=expiry,
        owner=OWNER,
        signer=SIGNER,
    )
    digest = typed_data_hash(domain.domain_separator, action)
    theirs = official(
        domain=domain,
        subaccount_id=subaccount,
        nonce=nonce,
        expiry=expiry,
        asset=asset,
        sub_id=sub_id,
        limit_price=price,
        amount=amount,
        max_fee=max_fee,
        is_bid=is_bid,
    )
    assert data == theirs.module_data.to_abi_encoded()
    assert action == theirs._get_action_hash()
    assert digest == theirs._to_typed_data_hash()
    assert sign_digest(CREDS.key, digest).hex() == theirs.sign(KEY)


exact = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("10000000"), places=18, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    amount=exact,
    price=exact,
    max_fee=exact,
    direction=st.sampled_from(["buy", "sell"]),
    nonce=st.integers(min_value=1, max_value=2**63),
    ttl=st.integers(min_value=330, max_value=10**7),
    domain=st.sampled_from([MAINNET, TESTNET]),
)
def test_signed_orders_equal_the_official_signature_and_carry_what_was_signed(
    amount: Decimal,
    price: Decimal,
    max_fee: Decimal,
    direction: str,
    nonce: int,
    ttl: int,
    domain: SigningDomain,
) -> None:
    order = signer_at(domain=domain).sign_order(
        INFO,
        direction=direction,  # type: ignore[arg-type]
        amount=amount,
        limit_price=price,
        max_fee=max_fee,
        nonce=nonce,
        signature_expiry_sec=NOW_S + ttl,
        label="s-1",
    )
    theirs = official(
        domain=domain,
        nonce=nonce,
        expiry=NOW_S + ttl,
        limit_price=price,
        amount=amount,
        max_fee=max_fee,
        is_bid=direction == "buy",
    )
    assert order.signature == "0x" + theirs.sign(KEY)
    params = order.params()
    # The venue recomputes the signed integers from the strings we send: they must agree.
    for key, value in (("amount", amount), ("limit_price", price), ("max_fee", max_fee)):
        assert "e" not in params[key].lower()
        assert Decimal(params[key]) == value
        assert to_e18(Decimal(params[key])) == decimal_to_big_int(value)
    theirs_json = theirs.to_json()
    for key in ("subaccount_id", "nonce", "signer", "signature_expiry_sec"):
        assert params[key] == theirs_json[key]
    assert (
        Account._recover_hash(order.typed_data_hash, signature=bytes.fromhex(params["signature"][2:]))
        == SIGNER
    )


@settings(max_examples=200, deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**40), max_value=10**40))
def test_fixed_point_equals_the_official_conversion(value: Decimal) -> None:
    try:
        theirs: int | None = decimal_to_big_int(value)
    except ValueError:
        theirs = None
    if theirs is None:
        with pytest.raises(ValueError, match="int256"):
            to_e18(value)
    else:
        assert to_e18(value) == theirs


def test_fixed_point_refuses_non_finite_values() -> None:
    for bad in (Decimal("NaN"), Decimal("Infinity"), 1.5):
        with pytest.raises(ValueError, match="finite Decimal"):
            to_e18(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- order checks


def sign(signer: OrderSigner | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "direction": "sell",
        "amount": Decimal("1.25"),
        "limit_price": Decimal("3500.5"),
        "max_fee": Decimal("2"),
        "label": "s-7",
    }
    args.update(kw)
    return (signer or signer_at()).sign_order(INFO, **args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"direction": "short"}, "direction must be 'buy' or 'sell'"),
        ({"order_type": "stop"}, "order_type must be"),
        ({"time_in_force": "day"}, "unknown time_in_force"),
        ({"amount": Decimal(0)}, "amount must be positive"),
        ({"limit_price": Decimal("-1")}, "limit_price must be positive"),
        ({"max_fee": Decimal("-0.1")}, "max_fee must be at least 0"),
        ({"amount": Decimal("NaN")}, "amount must be a finite Decimal"),
        ({"amount": 1.5}, "amount must be a finite Decimal"),
        ({"amount": Decimal("0.0000000000000000001")}, "more precision than 1e18"),
        ({"limit_price": Decimal("123456789012.123456789012345678")}, "more precision than 1e18"),
        ({"signature_expiry_sec": NOW_S + 300}, "less than 330 s ahead"),
    ],
)
def test_orders_that_cannot_be_signed_are_rejected_before_signing(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(OrderRejected, match=message) as err:
        sign(**change)
    assert (err.value.venue, err.value.instrument, err.value.client_order_id) == ("derive", INFO.name, "s-7")


def test_defaults_nonce_expiry_and_params() -> None:
    signer = signer_at()
    first = sign(signer)
    assert first.signature_expiry_sec == NOW_S + 3600
    assert first.nonce // 1000 == NOW_S * 1000  # <utc_ms><0-999>
    # The clock stands still: the signer's nonces still increase.
    nonces = [first.nonce] + [sign(signer).nonce for _ in range(20)]
    assert nonces == sorted(set(nonces))
    order = sign(reduce_only=True, mmp=True, time_in_force="post_only", amount=Decimal("1E+1"))
    assert order.params() == {
        "instrument_name": INFO.name,
        "direction": "sell",
        "order_type": "limit",
        "time_in_force": "post_only",
        "amount": "10",
        "limit_price": "3500.5",
        "max_fee": "2",
        "subaccount_id": SUBACCOUNT,
        "nonce": order.nonce,
        "signer": SIGNER,
        "signature_expiry_sec": NOW_S + 3600,
        "signature": order.signature,
        "mmp": True,
        "reduce_only": True,
        "label": "s-7",
    }
    assert len(order.signature) == 132
    with pytest.raises(ValueError, match="at least 330"):
        OrderSigner(CREDS, TESTNET, signature_ttl_s=300)
    assert signer.signature_ttl_s == 3600


def test_params_have_the_captured_request_fields() -> None:
    # NT's captured testnet request (spot/http_submit_order_request.json) and the limit-order
    # params of common/private_order_params_limit.json: we send what they send (the referral
    # code is theirs; `mmp` is ours, §3.6 step 5).
    captured = orjson.loads((FIXTURES / "spot" / "http_submit_order_request.json").read_bytes())
    limit = orjson.loads((FIXTURES / "common" / "private_order_params_limit.json").read_bytes())
    ours = set(sign().params())
    assert set(captured) <= ours
    assert set(limit) - {"referral_code"} <= ours
    assert {k: type(v) for k, v in captured.items()} == {
        k: type(v) for k, v in sign().params().items() if k in captured
    }


def test_an_order_on_a_captured_instrument() -> None:
    _, info = parse_instrument(orjson.loads((FIXTURES / "spot" / "instrument_eth.json").read_bytes()))
    order = signer_at().sign_order(
        info, direction="buy", amount=Decimal("0.1"), limit_price=Decimal(100), max_fee=Decimal(1000), nonce=1
    )
    theirs = official(asset=info.asset_address, sub_id=0, amount=Decimal("0.1"), nonce=1, expiry=NOW_S + 3600)
    assert order.signature == "0x" + theirs.sign(KEY)


def test_nonces_increase_strictly_and_take_an_injected_draw() -> None:
    draws = iter([999, 5, 0, 7])
    source = NonceSource(clock_ms=lambda: 1695836058725, draw=lambda: next(draws))
    assert [source() for _ in range(3)] == [1695836058725999, 1695836058726000, 1695836058726001]
    assert source() == 1695836058726002  # the clock stood still: still unique and increasing
    real = NonceSource()
    a, b = real(), real()
    assert b > a and len(str(a)) == 16
    with pytest.raises(ValueError, match="0-999"):
        NonceSource(draw=lambda: 1000)()


# ------------------------------------------------------------------------------ credentials


def test_credentials_from_the_environment_never_show_the_key(tmp_path: Path) -> None:
    creds = Credentials.from_env(
        {"DERIVE_WALLET": OWNER.lower(), "DERIVE_SESSION_KEY": KEY, "DERIVE_SUBACCOUNT_ID": "30769"}
    )
    assert (creds.wallet, creds.signer, creds.subaccount_id) == (OWNER, SIGNER, SUBACCOUNT)
    assert KEY[2:] not in repr(creds) and "hidden" in repr(creds)
    # The key is registered with the log redactor, with or without its 0x.
    scrubbed = redact_secrets(None, "info", {"event": "x", "detail": f"key={KEY[2:]}", "other": KEY})
    assert scrubbed["detail"] == REDACTED and scrubbed["other"] == REDACTED
    key_file = tmp_path / "key"
    key_file.write_text(KEY[2:] + "\n")
    from_file = Credentials.from_env(
        {"DERIVE_WALLET": OWNER, "DERIVE_SESSION_KEY_FILE": str(key_file), "DERIVE_SUBACCOUNT_ID": "7"}
    )
    assert (from_file.signer, from_file.subaccount_id) == (SIGNER, 7)


def env(**changes: str) -> dict[str, str]:
    return {"DERIVE_WALLET": OWNER, "DERIVE_SESSION_KEY": KEY, "DERIVE_SUBACCOUNT_ID": "1", **changes}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "missing: set DERIVE_WALLET, DERIVE_SESSION_KEY, DERIVE_SUBACCOUNT_ID"),
        ({"DERIVE_WALLET": OWNER, "DERIVE_SUBACCOUNT_ID": "1"}, "missing: set DERIVE_SESSION_KEY "),
        (env(DERIVE_SESSION_KEY=KEY[:-2]), "64 hex digits"),
        (env(DERIVE_WALLET="0x12"), "DERIVE_WALLET must be"),
        (env(DERIVE_SUBACCOUNT_ID="-1"), "decimal integer"),
        (env(DERIVE_SESSION_KEY="0x" + "0" * 64), "not a valid"),
        (
            env(DERIVE_SESSION_KEY="", DERIVE_SESSION_KEY_FILE="/nonexistent/k"),
            "cannot read DERIVE_SESSION_KEY_FILE",
        ),
    ],
)
def test_bad_credentials_are_named_not_shown(environ: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError, match=message) as err:
        Credentials.from_env(environ)
    assert err.value.venue == "derive"
    assert KEY[2:] not in str(err.value) and KEY[2:-2] not in str(err.value)


def test_recovering_the_signer_as_the_venue_checks_it() -> None:
    # The §3.5 login vector and the §3.6 order vector recover to the key's address, as
    # eth-account's ecrecover says; a flipped v recovers another address; junk is refused.
    assert recover_signer(login_digest("1700000000000"), LOGIN_SIGNATURE) == SIGNER
    digest = bytes.fromhex(TYPED_DATA_HASH)
    assert recover_signer(digest, SIGNATURE) == SIGNER == Account._recover_hash(digest, signature=SIGNATURE)
    assert recover_signer(digest, SIGNATURE[2:]) == SIGNER  # the official package's unprefixed hex
    flipped = SIGNATURE[:-2] + ("1b" if SIGNATURE.endswith("1c") else "1c")
    assert recover_signer(digest, flipped) != SIGNER
    with pytest.raises(ValueError, match="65 bytes"):
        recover_signer(digest, "0x1234")
    with pytest.raises(ValueError, match="v is 27 or 28"):
        recover_signer(digest, SIGNATURE[:-2] + "05")
