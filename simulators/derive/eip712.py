"""The simulated Derive's signature checks (VENUES.md §3.5, §3.6), written from the documents and
Derive's `v2-action-signing-python` layout (DV-SIGN `signed_action.py`, `module_data/trade.py`,
`utils.py`), computed with eth-abi, eth-hash and eth-account, never with the connector's signer.

Login (§3.5): the `timestamp` string signed with EIP-191 `personal_sign`; the venue recovers the
signer (`eth_account.Account.recover_message(encode_defunct(text=timestamp))`).

Orders (§3.6), an EIP-712 typed message whose domain separator is a published constant:

    struct TradeModuleData { address asset; uint256 subId; int256 limitPrice; int256 amount;
                             uint256 maxFee; uint256 recipientId; bool isBid; }   // abi.encode'd
    struct Action { uint256 subaccountId; uint256 nonce; address module; bytes data;
                    uint256 expiry; address owner; address signer; }

- `data` is `abi.encode` of the trade module's tuple; prices, amounts and fees as 1e18 fixed
  point, truncated toward zero (DV-SIGN `decimal_to_big_int`: `int(value * 10**18)`);
- `hashStruct(Action)` = keccak256(abi.encode(ACTION_TYPEHASH, subaccountId, nonce, module,
  keccak256(data), expiry, owner, signer)): EIP-712 hashes a `bytes` member;
- the digest is EIP-712's keccak256(0x19 0x01 || DOMAIN_SEPARATOR || hashStruct(Action)), i.e.
  an EIP-191 version 0x01 message whose header is the domain separator, which is how the check
  hands it to `Account.recover_message` (`SignableMessage(b"\\x01", separator, struct hash)`);
- the signature is r || s || v over that digest (v 27/28), hex with or without `0x` (the
  official package's `sign()` drops the prefix).

The domain separators and trade modules are the constants of §3.6 (their preimage, Derive's
Matching contract domain, is not published with them; a venue only needs the constant).
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, localcontext
from typing import Final

import attrs
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

__all__ = [
    "ACTION_TYPE",
    "ACTION_TYPEHASH",
    "DOMAINS",
    "MAINNET",
    "TESTNET",
    "Action",
    "Domain",
    "TradeModuleData",
    "address_of",
    "e18",
    "login_signer",
    "parse_signature",
]

ACTION_TYPE: Final = (
    "Action(uint256 subaccountId,uint256 nonce,address module,bytes data,"
    "uint256 expiry,address owner,address signer)"
)
ACTION_TYPEHASH: Final[bytes] = keccak(ACTION_TYPE.encode())

_INT256 = (-(2**255), 2**255 - 1)


_UINT256 = (0, 2**256 - 1)
_SIGNATURE = re.compile(r"(?:0x)?([0-9a-fA-F]{130})")


@functools.lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    """An address as eth-abi takes it (a venue sees the same few again and again: cached)."""
    return str(to_checksum_address(address))


@attrs.frozen
class Domain:
    """An environment's signing constants (§3.6 "Constants", v2)."""

    name: str
    separator: bytes = attrs.field(repr=lambda b: "0x" + b.hex())
    trade_module: str


MAINNET: Final = Domain(
    "mainnet",
    bytes.fromhex("d96e5f90797da7ec8dc4e276260c7f3f87fedf68775fbe1ef116e996fc60441b"),
    "0xB8D20c2B7a1Ad2EE33Bc50eF10876eD3035b5e7b",
)
TESTNET: Final = Domain(
    "testnet",
    bytes.fromhex("9bcf4dc06df5d8bf23af818d5716491b995020f377d3b7b64c29ed14e3dd1105"),
    "0x87F2863866D85E3192a35A73b388BD625D83f2be",
)
DOMAINS: Final = {"mainnet": MAINNET, "testnet": TESTNET}


def e18(value: Decimal, *, signed: bool) -> int:
    """`value` in 1e18 fixed point, truncated toward zero (DV-SIGN `decimal_to_big_int`), exact
    for any decimal string a client can send. ValueError outside int256 (uint256 unsigned)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    with localcontext() as ctx:
        ctx.prec = 400
        ctx.Emax = 999_999
        scaled = int(value.scaleb(18))
    low, high = _INT256 if signed else _UINT256
    if not low <= scaled <= high:
        raise ValueError(f"{value} does not fit an {'int' if signed else 'uint'}256 at 1e18")
    return scaled


@attrs.frozen
class TradeModuleData:
    """The trade module's part of an order action (§3.6 step 1)."""

    asset: str
    sub_id: int
    limit_price: Decimal
    amount: Decimal
    max_fee: Decimal
    recipient_id: int
    is_bid: bool

    def encode(self) -> bytes:
        return abi_encode(
            ["address", "uint256", "int256", "int256", "uint256", "uint256", "bool"],
            [
                _checksummed(self.asset),
                self.sub_id,
                e18(self.limit_price, signed=True),
                e18(self.amount, signed=True),
                e18(self.max_fee, signed=False),
                self.recipient_id,
                self.is_bid,
            ],
        )


@attrs.frozen
class Action:
    """An EIP-712 `Action` (module docstring)."""

    subaccount_id: int
    nonce: int
    module: str
    data: bytes
    expiry: int
    owner: str
    signer: str

    _hash: list[bytes] = attrs.field(factory=list, init=False, eq=False, repr=False)  # computed once

    def struct_hash(self) -> bytes:
        if not self._hash:
            encoded = abi_encode(
                ["bytes32", "uint256", "uint256", "address", "bytes32", "uint256", "address", "address"],
                [
                    ACTION_TYPEHASH,
                    self.subaccount_id,
                    self.nonce,
                    _checksummed(self.module),
                    keccak(self.data),
                    self.expiry,
                    _checksummed(self.owner),
                    _checksummed(self.signer),
                ],
            )
            self._hash.append(keccak(encoded))
        return self._hash[0]

    def message(self, domain: Domain) -> SignableMessage:
        """The typed message as eth-account signs and recovers it."""
        return SignableMessage(b"\x01", domain.separator, self.struct_hash())

    def digest(self, domain: Domain) -> bytes:
        """EIP-712's digest: keccak256(0x1901 || domain separator || struct hash)."""
        return keccak(b"\x19\x01" + domain.separator + self.struct_hash())

    def signer_of(self, domain: Domain, signature: str) -> str:
        """The address whose key made `signature` over this action. ValueError if none."""
        return _recover(self.message(domain), signature)


def parse_signature(signature: object) -> bytes:
    """65 bytes from hex (0x optional). ValueError for anything else."""
    m = _SIGNATURE.fullmatch(signature.strip()) if isinstance(signature, str) else None
    if m is None:
        raise ValueError("a signature is 65 bytes of hex (r, s, v)")
    return bytes.fromhex(m.group(1))


def _recover(message: SignableMessage, signature: str) -> str:
    raw = parse_signature(signature)
    try:
        return str(Account.recover_message(message, signature=raw))
    except Exception as exc:  # eth-keys refuses a v, r or s that recovers no key
        raise ValueError(f"the signature recovers no key ({exc})") from None


def login_signer(timestamp: str, signature: str) -> str:
    """Who signed a login's (or a REST call's) timestamp (§3.5). ValueError if nobody."""
    return _recover(encode_defunct(text=timestamp), signature)


def address_of(private_key: str) -> str:
    """The checksummed address of a private key (the demo account's session key)."""
    return str(Account.from_key(private_key).address)
