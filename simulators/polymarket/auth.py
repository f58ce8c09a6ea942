"""The simulated CLOB's checks of who is asking: L1 `ClobAuth` and V2 `Order` EIP-712 signatures,
and the L2 HMAC, written from the venue's documents and verified with eth-account, never with the
connector's signing code (the simulator is a witness of it, not a copy).

Sources (VENUES.md §2.4, §2.5; PM-PY `signing/eip712.py`, `signing/hmac.py`; PM-TS2
`ctfExchangeV2TypedData.ts`; docs.polymarket.com "Authentication"):

- L1: EIP-712 domain `{name: "ClobAuthDomain", version: "1", chainId}` (no verifyingContract),
  struct `ClobAuth(address address,string timestamp,uint256 nonce,string message)`, the message
  "This message attests that I control the given wallet", the timestamp a string of unix seconds.
  Headers `POLY_ADDRESS`, `POLY_SIGNATURE`, `POLY_TIMESTAMP`, `POLY_NONCE`.
- L2: `base64url(HMAC_SHA256(base64url_decode(secret), timestamp + METHOD + path + body))`, `=`
  padding kept, `path` without the query string, `body` the exact bytes sent (left out when
  empty). Headers `POLY_ADDRESS`, `POLY_SIGNATURE`, `POLY_TIMESTAMP`, `POLY_API_KEY`,
  `POLY_PASSPHRASE`.
- Orders (exchange V2): domain `{name: "Polymarket CTF Exchange", version: "2", chainId,
  verifyingContract}` with the CTF Exchange V2 for standard markets and the Neg Risk CTF Exchange
  V2 for neg-risk ones; struct `Order(uint256 salt,address maker,address signer,uint256 tokenId,
  uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,
  bytes32 metadata,bytes32 builder)`; `side` 0 BUY / 1 SELL; `expiration` and `taker` travel in
  the JSON unsigned; fees are not signed. The order's id at the venue is the EIP-712 digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

import attrs
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

__all__ = [
    "CLOB_AUTH_MESSAGE",
    "EXCHANGE_V2",
    "NEG_RISK_EXCHANGE_V2",
    "ApiKey",
    "Wallet",
    "clob_auth_typed_data",
    "digest",
    "hmac_signature",
    "order_id",
    "order_typed_data",
    "recover",
]

CLOB_AUTH_MESSAGE: Final = "This message attests that I control the given wallet"
EXCHANGE_V2: Final = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2: Final = "0xe2222d279d744050d28e00520010520000310F59"
_ZERO32: Final = "0x" + "00" * 32

_CLOB_AUTH_TYPES: Final = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "ClobAuth": [
        {"name": "address", "type": "address"},
        {"name": "timestamp", "type": "string"},
        {"name": "nonce", "type": "uint256"},
        {"name": "message", "type": "string"},
    ],
}
_ORDER_TYPES: Final = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Order": [
        {"name": "salt", "type": "uint256"},
        {"name": "maker", "type": "address"},
        {"name": "signer", "type": "address"},
        {"name": "tokenId", "type": "uint256"},
        {"name": "makerAmount", "type": "uint256"},
        {"name": "takerAmount", "type": "uint256"},
        {"name": "side", "type": "uint8"},
        {"name": "signatureType", "type": "uint8"},
        {"name": "timestamp", "type": "uint256"},
        {"name": "metadata", "type": "bytes32"},
        {"name": "builder", "type": "bytes32"},
    ],
}


@attrs.frozen(repr=False)
class ApiKey:
    """An L2 API key as the venue hands it out (`POST /auth/api-key`): key, secret, passphrase."""

    key: str
    secret: str
    passphrase: str

    def __repr__(self) -> str:  # never a secret in a log line
        return f"ApiKey(key={self.key!r})"


@attrs.frozen(repr=False)
class Wallet:
    """A demo wallet: its private key and the API key the simulator derives for it."""

    private_key: str
    api: ApiKey

    @property
    def address(self) -> str:
        return str(Account.from_key(self.private_key).address)

    def __repr__(self) -> str:
        return f"Wallet(api={self.api!r})"


def clob_auth_typed_data(address: str, timestamp: str, nonce: int, chain_id: int) -> dict[str, Any]:
    """The L1 `ClobAuth` typed data an address signs to prove it controls itself."""
    return {
        "types": _CLOB_AUTH_TYPES,
        "primaryType": "ClobAuth",
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {
            "address": to_checksum_address(address),
            "timestamp": str(timestamp),
            "nonce": int(nonce),
            "message": CLOB_AUTH_MESSAGE,
        },
    }


def _bytes32(value: Any) -> bytes:
    raw = bytes.fromhex(str(value or _ZERO32).removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def order_typed_data(order: Mapping[str, Any], *, chain_id: int, neg_risk: bool) -> dict[str, Any]:
    """The V2 `Order` typed data of an order in its `POST /order` JSON form, for its market's
    exchange. Raises ValueError/KeyError/TypeError for a malformed order."""
    side = {"BUY": 0, "SELL": 1}.get(str(order["side"]))
    if side is None:
        raise ValueError(f"side must be BUY or SELL, got {order['side']!r}")
    return {
        "types": _ORDER_TYPES,
        "primaryType": "Order",
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2,
        },
        "message": {
            "salt": int(order["salt"]),
            "maker": to_checksum_address(str(order["maker"])),
            "signer": to_checksum_address(str(order["signer"])),
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": side,
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": _bytes32(order.get("metadata")),
            "builder": _bytes32(order.get("builder")),
        },
    }


def _signable(typed: Mapping[str, Any]) -> SignableMessage:
    return encode_typed_data(full_message=dict(typed))


def digest(typed: Mapping[str, Any]) -> bytes:
    """The EIP-712 digest `keccak(0x19 || 0x01 || domainSeparator || structHash)` of typed data."""
    signable = _signable(typed)
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def order_id(order: Mapping[str, Any], *, chain_id: int, neg_risk: bool) -> str:
    """The venue's id of an order: its EIP-712 digest, 0x-hex."""
    return "0x" + digest(order_typed_data(order, chain_id=chain_id, neg_risk=neg_risk)).hex()


def recover(typed: Mapping[str, Any], signature: str) -> str:
    """The checksummed address whose key signed `typed`; ValueError when it recovers nothing."""
    try:
        return str(Account.recover_message(_signable(typed), signature=signature))
    except ValueError:
        raise
    except Exception as exc:  # eth-keys raises its own types for a signature off the curve
        raise ValueError(f"the signature recovers no key ({exc})") from None


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The L2 signature of a request: urlsafe base64 (padded) of HMAC-SHA256 keyed by the
    urlsafe-base64-decoded secret over `timestamp + METHOD + path + body`. ValueError for a
    secret that is not base64."""
    try:
        key = base64.urlsafe_b64decode(secret.encode())
    except (ValueError, TypeError):
        raise ValueError("the secret is not urlsafe base64") from None
    message = f"{timestamp}{method}{path}".encode() + body
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
