"""The simulated Derive's signature checks (`simulators.derive.eip712`) against VENUES.md's test
vectors (§3.5 login, §3.6 order action) and against Derive's official signing package
(`derive-action-signing`, the judge): whatever it signs, the simulator hashes the same and
recovers the same signer; a changed term recovers someone else."""

from __future__ import annotations

from decimal import Decimal

from derive_action_signing import (  # type: ignore[import-untyped]
    SignedAction,
    sign_rest_auth_header,
    sign_ws_login,
)
from derive_action_signing import TradeModuleData as OfficialTradeData
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from tradingd.simulators.derive.eip712 import (
    ACTION_TYPEHASH,
    MAINNET,
    TESTNET,
    Action,
    Domain,
    TradeModuleData,
    address_of,
    login_signer,
)
from tradingd.simulators.derive.simulator import DEMO_SESSION_KEY, DEMO_SUBACCOUNT, DEMO_WALLET

# VENUES.md §3.6 "Test vector" (reproduced there with derive-action-signing 0.0.13).
VECTOR_DATA = (
    "000000000000000000000000bcb494059969daab460e0b5d4f5c2366aab79aa1"
    "0000000000000000000000000000000000000000800000000000000000000000"
    "0000000000000000000000000000000000000000000000056bc75e2d63100000"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
    "00000000000000000000000000000000000000000000003635c9adc5dea00000"
    "0000000000000000000000000000000000000000000000000000000000007831"
    "0000000000000000000000000000000000000000000000000000000000000001"
)
VECTOR_ACTION_HASH = "4c3a0ce47f5a10a26f2189cf55a7b73c8f7a28ebb5f0da2a088040b2fe862ee1"
VECTOR_TYPED_DATA_HASH = "466437dbc9328cd836aaa39b7b660877da38d4bbded97d2f1d55fa8fcde5844e"
VECTOR_SIGNATURE = (
    "0x80e1b083df61c2aa6200924ca027fd9fe9bd324af48dbe37073667692f43967a"
    "2ea78346b08d3d212b4809eefc7519d97fee1f9b549c1821a74ff62fbb68f3731c"
)
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
# VENUES.md §3.5 "Test vector": the key signing "1700000000000".
LOGIN_SIGNATURE = (
    "0x5191adf09347810ecd7ffe7e1124d2230441afc321529ea4d20be982c612af68"
    "4fac942dac02748949bdba4cf9d968c3cdc0c7a837a52d9c2fb7b4743708b4691c"
)


def vector_action() -> Action:
    data = TradeModuleData(
        asset="0xBcB494059969DAaB460E0B5d4f5c2366aab79aa1",
        sub_id=39614081257132168796771975168,
        limit_price=Decimal("100"),
        amount=Decimal("1"),
        max_fee=Decimal("1000"),
        recipient_id=30769,
        is_bid=True,
    )
    return Action(
        subaccount_id=30769,
        nonce=1695836058725001,
        module="0x87F2863866D85E3192a35A73b388BD625D83f2be",
        data=data.encode(),
        expiry=1700000600,
        owner="0x8772185a1516f0d61fC1c2524926BfC69F95d698",
        signer=SIGNER,
    )


def test_the_action_typehash_is_keccak_of_the_action_type() -> None:
    assert ACTION_TYPEHASH.hex() == "4d7a9f27c403ff9c0f19bce61d76d82f9aa29f8d6d4b0c5474607d9770d1af17"


def test_the_order_vector() -> None:
    action = vector_action()
    assert action.data.hex() == VECTOR_DATA
    assert action.struct_hash().hex() == VECTOR_ACTION_HASH
    assert action.digest(TESTNET).hex() == VECTOR_TYPED_DATA_HASH
    assert action.signer_of(TESTNET, VECTOR_SIGNATURE) == SIGNER
    assert action.signer_of(TESTNET, VECTOR_SIGNATURE[2:]) == SIGNER  # the package drops the 0x
    # eth-account, signing the typed message as the simulator builds it, makes the vector's
    # signature (deterministic, RFC 6979): the message is the one Derive's signers sign.
    signed = Account.sign_message(action.message(TESTNET), DEMO_SESSION_KEY)
    assert "0x" + bytes(signed.signature).hex() == VECTOR_SIGNATURE
    # Another domain, another digest: a testnet signature does not recover on mainnet.
    assert action.signer_of(MAINNET, VECTOR_SIGNATURE) != SIGNER


def test_the_login_vector_and_the_official_packages_login_and_headers() -> None:
    assert login_signer("1700000000000", LOGIN_SIGNATURE) == SIGNER
    assert login_signer("1700000000001", LOGIN_SIGNATURE) != SIGNER
    assert address_of(DEMO_SESSION_KEY) == SIGNER
    login = sign_ws_login(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    assert login_signer(login["timestamp"], login["signature"]) == SIGNER
    headers = sign_rest_auth_header(Web3(), DEMO_WALLET, DEMO_SESSION_KEY)
    assert login_signer(headers["X-LYRATIMESTAMP"], headers["X-LYRASIGNATURE"]) == SIGNER


decimals = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**9), places=6)


@settings(max_examples=40, deadline=None)
@given(
    price=decimals,
    amount=decimals,
    max_fee=st.decimals(min_value=Decimal(0), max_value=Decimal(10**6), places=6),
    sub_id=st.integers(min_value=0, max_value=2**96),
    subaccount=st.integers(min_value=1, max_value=2**32),
    nonce=st.integers(min_value=10**15, max_value=10**17),
    expiry=st.integers(min_value=1_700_000_000, max_value=2_000_000_000),
    is_bid=st.booleans(),
    domain=st.sampled_from([TESTNET, MAINNET]),
)
def test_what_the_official_package_signs_the_simulator_recovers(
    price: Decimal,
    amount: Decimal,
    max_fee: Decimal,
    sub_id: int,
    subaccount: int,
    nonce: int,
    expiry: int,
    is_bid: bool,
    domain: Domain,
) -> None:
    asset = "0xAf65752C4643E25C02F693f9D4FE19cF23a095E3"
    official = SignedAction(
        subaccount_id=subaccount,
        owner=DEMO_WALLET,
        signer=SIGNER,
        signature_expiry_sec=expiry,
        nonce=nonce,
        module_address=domain.trade_module,
        module_data=OfficialTradeData(
            asset_address=asset,
            sub_id=sub_id,
            limit_price=price,
            amount=amount,
            max_fee=max_fee,
            recipient_id=subaccount,
            is_bid=is_bid,
        ),
        DOMAIN_SEPARATOR="0x" + domain.separator.hex(),
        ACTION_TYPEHASH="0x" + ACTION_TYPEHASH.hex(),
    )
    signature = official.sign(DEMO_SESSION_KEY)
    # The simulator rebuilds the action from the decimal strings an order carries.
    sent = official.to_json()
    data = TradeModuleData(
        asset=asset,
        sub_id=sub_id,
        limit_price=Decimal(sent["limit_price"]),
        amount=Decimal(sent["amount"]),
        max_fee=Decimal(sent["max_fee"]),
        recipient_id=subaccount,
        is_bid=is_bid,
    ).encode()
    assert data == official.module_data.to_abi_encoded()
    action = Action(subaccount, nonce, domain.trade_module, data, expiry, DEMO_WALLET, SIGNER)
    assert action.struct_hash() == bytes(official._get_action_hash())
    assert action.digest(domain) == bytes(official._to_typed_data_hash())
    assert action.signer_of(domain, signature) == SIGNER
    # One tick more on the price is another action: the signature recovers someone else.
    moved = TradeModuleData(asset, sub_id, price + Decimal("0.000001"), amount, max_fee, subaccount, is_bid)
    other = Action(subaccount, nonce, domain.trade_module, moved.encode(), expiry, DEMO_WALLET, SIGNER)
    assert other.signer_of(domain, signature) != SIGNER
    assert keccak(data) != keccak(moved.encode())


def test_the_demo_account_is_the_vectors_owner_and_subaccount() -> None:
    assert (DEMO_WALLET, DEMO_SUBACCOUNT) == ("0x8772185a1516f0d61fC1c2524926BfC69F95d698", 30769)
