"""Polymarket CLOB V2 signing (VENUES.md §2.4, §2.5): orders, auth headers, credentials.

- **Orders** are the EIP-712 `Order` of the CTF Exchange **V2** (domain version "2"; fees are not
  signed, the protocol sets them at match). A neg-risk market's orders are signed for the Neg Risk
  CTF Exchange V2, every other market's for the CTF Exchange V2. The order id the CLOB returns is
  the order's EIP-712 digest (`SignedOrder.order_id`), known before the order is sent.
- **Amounts** are exact integers in 6-decimal units computed from Decimal price and size (§2.5):
  a buy gives `size x price` pUSD for `size` shares, a sell the reverse. A price on the tick and a
  size of at most 2 decimals make both amounts exact, so nothing is rounded: an order that would
  need rounding is refused by `check_order` (`OrderRejected`) before anything is signed.
- **L1 headers** (`ClobAuth` EIP-712, for the API-key endpoints) and **L2 headers** (HMAC-SHA256
  over `timestamp + METHOD + path + body`, for every authenticated REST call).
- **Bodies**: `order_body` and friends write the exact bytes to send (and to HMAC): compact JSON in
  the key order of Polymarket's official Python client.

Every signature, header and body here is byte-identical to what `py-clob-client-v2` 1.2.1 makes for
the same inputs (tests/connectors/polymarket/test_polymarket_signing.py), with one deliberate
difference: that client rounds sizes with binary floats (`floor(size * 100) / 100`), which drops a
cent of shares for about one size in fifteen (1272.62 becomes 1272.61); here amounts are exact.

Signatures are made with coincurve (libsecp256k1, the backend eth-account itself uses when it is
installed) straight on the digest: the same RFC 6979 signature as eth-account's, ~6x faster than
going through its signing API. eth-account derives the address from the key.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Final

import attrs
import coincurve
import orjson
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from tradingd.engine.venue import AuthError, Instrument, OrderRejected, Side, TimeInForce, register_secret

from .instruments import VENUE

__all__ = [
    "AMOY",
    "BYTES32_ZERO",
    "CLOB_AUTH_MESSAGE",
    "EXCHANGE_V2",
    "NEG_RISK_EXCHANGE_V2",
    "ORDER_TYPE",
    "POLYGON",
    "ROUNDING",
    "ZERO_ADDRESS",
    "ApiCredentials",
    "Credentials",
    "OrderSigner",
    "OrderType",
    "Rounding",
    "SignatureType",
    "SignedOrder",
    "cancel_body",
    "cancel_market_body",
    "cancel_orders_body",
    "check_order",
    "clob_auth_digest",
    "hmac_signature",
    "l1_headers",
    "l2_headers",
    "market_order_amounts",
    "order_amounts",
    "order_body",
    "order_digest",
    "order_type_for",
    "orders_body",
    "recover_signer",
]

POLYGON: Final = 137
AMOY: Final = 80002
# §2.5: the same addresses on Polygon and Amoy (PM-TS2; py-clob-client-v2 `config.py`).
EXCHANGE_V2: Final = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2: Final = "0xe2222d279d744050d28e00520010520000310F59"
ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"
BYTES32_ZERO: Final = "0x" + "00" * 32
ORDER_TYPE: Final = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
    "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)"
)
CLOB_AUTH_MESSAGE: Final = "This message attests that I control the given wallet"

_ORDER_TYPEHASH: Final = keccak(ORDER_TYPE.encode())
_DOMAIN_TYPEHASH: Final = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_EXCHANGE_NAME: Final = keccak(b"Polymarket CTF Exchange")
_EXCHANGE_VERSION: Final = keccak(b"2")
_AUTH_DOMAIN_TYPEHASH: Final = keccak(b"EIP712Domain(string name,string version,uint256 chainId)")
_AUTH_TYPEHASH: Final = keccak(b"ClobAuth(address address,string timestamp,uint256 nonce,string message)")
_AUTH_NAME: Final = keccak(b"ClobAuthDomain")
_AUTH_VERSION: Final = keccak(b"1")
_AUTH_MESSAGE: Final = keccak(CLOB_AUTH_MESSAGE.encode())
# POLY_1271 (deposit wallets): the order is wrapped in Solady's ERC-7739 `TypedDataSign` (§2.5).
_SOLADY_TYPEHASH: Final = keccak(
    (
        "TypedDataSign(Order contents,string name,string version,uint256 chainId,"
        "address verifyingContract,bytes32 salt)" + ORDER_TYPE
    ).encode()
)
_DEPOSIT_WALLET_NAME: Final = keccak(b"DepositWallet")
_DEPOSIT_WALLET_VERSION: Final = keccak(b"1")
_ORDER_TYPE_SUFFIX: Final = ORDER_TYPE.encode().hex() + len(ORDER_TYPE).to_bytes(2, "big").hex()
_UINT256: Final = 1 << 256
_URLSAFE: Final = str.maketrans("-_", "+/")
_UNITS: Final = Decimal(1_000_000)  # collateral and outcome tokens both have 6 decimals (§2.5)


class SignatureType(enum.IntEnum):
    """Who signs for the maker (§2.5)."""

    EOA = 0  # the key's own address holds the funds
    POLY_PROXY = 1  # a Polymarket proxy wallet owned by the key
    POLY_GNOSIS_SAFE = 2  # a Gnosis safe owned by the key
    POLY_1271 = 3  # a deposit wallet (ERC-1271): signer = the wallet, signature wrapped


class OrderType(enum.StrEnum):
    """`orderType` of POST /order (§2.3)."""

    GTC = "GTC"
    GTD = "GTD"
    FOK = "FOK"
    FAK = "FAK"  # fill and kill: what the engine calls IOC


_ORDER_TYPES: Final = {
    TimeInForce.GTC: OrderType.GTC,
    TimeInForce.GTD: OrderType.GTD,
    TimeInForce.FOK: OrderType.FOK,
    TimeInForce.IOC: OrderType.FAK,
}


def order_type_for(tif: TimeInForce) -> OrderType:
    """The venue's order type for the engine's time in force."""
    return _ORDER_TYPES[tif]


@attrs.frozen
class Rounding:
    """Decimal places of price, size and amounts at one tick size (§2.5 table)."""

    price: int
    size: int
    amount: int


# py-clob-client-v2 `ROUNDING_CONFIG` (the §2.5 table plus its 0.005 and 0.0025 ticks).
ROUNDING: Final[Mapping[Decimal, Rounding]] = {
    Decimal("0.1"): Rounding(1, 2, 3),
    Decimal("0.01"): Rounding(2, 2, 4),
    Decimal("0.005"): Rounding(3, 2, 5),
    Decimal("0.0025"): Rounding(4, 2, 6),
    Decimal("0.001"): Rounding(3, 2, 5),
    Decimal("0.0001"): Rounding(4, 2, 6),
}


def _rounding(tick: Decimal) -> Rounding:
    found = ROUNDING.get(tick.normalize())
    if found is None:
        raise ValueError(f"unknown tick size {tick} (known: {', '.join(map(str, ROUNDING))})")
    return found


def _decimals(d: Decimal) -> int:
    exponent = d.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _units(d: Decimal) -> int:
    """`d` in 6-decimal base units; ValueError unless exact (amounts are never rounded here)."""
    scaled = d * _UNITS
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{d} is not a whole number of 6-decimal units")
    return int(scaled)


def order_amounts(side: Side, price: Decimal, size: Decimal, tick: Decimal) -> tuple[int, int]:
    """(makerAmount, takerAmount) of a limit order of `size` shares at `price` (§2.5): a buy
    pays `size x price` pUSD for `size` shares, a sell the reverse. The inputs must pass
    `check_order` (price on the tick, size of at most 2 decimals); ValueError otherwise."""
    r = _rounding(tick)
    if _decimals(price) > r.price or _decimals(size) > r.size:
        raise ValueError(f"price {price} / size {size} have more decimals than tick {tick} allows")
    shares, collateral = _units(size), _units(size * price)
    return (collateral, shares) if side is Side.BUY else (shares, collateral)


def market_order_amounts(side: Side, amount: Decimal, price: Decimal, tick: Decimal) -> tuple[int, int]:
    """(makerAmount, takerAmount) of a market order (FOK/FAK) as Polymarket's client builds it:
    a buy spends `amount` pUSD (at most 2 decimals) for `amount / price` shares, rounded down to
    the tick's amount decimals; a sell gives `amount` shares for `amount x price`. `price` is the
    worst price accepted (it must be on the tick)."""
    r = _rounding(tick)
    if price <= 0 or _decimals(price) > r.price:
        raise ValueError(f"price {price} is not a price at tick {tick}")
    if amount <= 0 or _decimals(amount) > r.size:
        raise ValueError(f"amount {amount} must be positive with at most {r.size} decimals")
    if side is Side.BUY:
        shares = amount / price
        if _decimals(shares) > r.amount:
            # The official client's float steps, done exactly: up to amount+4 places (absorbing
            # float noise there), then down to the amount's places.
            shares = shares.quantize(Decimal(1).scaleb(-(r.amount + 4)), rounding=ROUND_CEILING)
            if _decimals(shares) > r.amount:
                shares = shares.quantize(Decimal(1).scaleb(-r.amount), rounding=ROUND_FLOOR)
        return _units(amount), _units(shares)
    return _units(amount), _units(amount * price)


def check_order(
    inst: Instrument, price: Decimal, size: Decimal, *, client_order_id: str | None = None
) -> None:
    """Raise `OrderRejected` unless Polymarket would accept this limit order's numbers (§2.5,
    §2.6): an active outcome token, a known tick, `tick <= price <= 1 - tick` on the tick, a size
    of at least the minimum with at most 2 decimals, and amounts that are not zero."""

    def reject(reason: str) -> OrderRejected:
        return OrderRejected(reason, venue=VENUE, instrument=inst.symbol, client_order_id=client_order_id)

    if inst.venue != VENUE:
        raise reject(f"{inst.venue}:{inst.symbol} is not a Polymarket instrument")
    if not inst.active:
        raise reject(f"instrument {inst.symbol} is not active (closed, resolved or not accepting orders)")
    tick = inst.tick_size.normalize()
    if tick not in ROUNDING:
        raise reject(f"tick size {inst.tick_size} is not one Polymarket uses")
    r = ROUNDING[tick]
    if not price.is_finite() or not size.is_finite():
        raise reject(f"price {price} and size {size} must be finite")
    if price < tick or price > 1 - tick:
        raise reject(f"price {price} is outside [{tick}, {1 - tick}]")
    if price % tick != 0:
        raise reject(f"price {price} is not a multiple of the tick size {tick}")
    if size <= 0:
        raise reject(f"size {size} must be positive")
    if _decimals(size) > r.size:
        raise reject(f"size {size} has more than {r.size} decimals")
    if size < inst.min_size:
        raise reject(f"size {size} is below the minimum order size {inst.min_size}")
    if _decimals(size * price) > r.amount:  # cannot happen with the checks above; kept as a guard
        raise reject(f"size {size} x price {price} is not exact to {r.amount} decimals")


# -- EIP-712 -------------------------------------------------------------------------------


def _uint(v: int) -> bytes:
    if not 0 <= v < _UINT256:
        raise ValueError(f"{v} is not a uint256")
    return v.to_bytes(32, "big")


def _address(a: str) -> bytes:
    raw = bytes.fromhex(a.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not an address: {a!r}")
    return raw.rjust(32, b"\0")


def _bytes32(h: str) -> bytes:
    raw = bytes.fromhex(h.removeprefix("0x").zfill(64))
    if len(raw) != 32:
        raise ValueError(f"not a bytes32: {h!r}")
    return raw


def _domain_separator(chain_id: int, contract: str) -> bytes:
    return keccak(
        _DOMAIN_TYPEHASH + _EXCHANGE_NAME + _EXCHANGE_VERSION + _uint(chain_id) + _address(contract)
    )


@attrs.frozen
class SignedOrder:
    """A signed V2 order: the signed fields, the unsigned `expiration` (unix seconds, 0 = none),
    the signature, and `order_id` (the EIP-712 digest, the id the CLOB gives the order)."""

    salt: int
    maker: str
    signer: str
    token_id: str
    maker_amount: int
    taker_amount: int
    side: Side
    signature_type: SignatureType
    timestamp_ms: int
    metadata: str
    builder: str
    expiration: int
    signature: str
    order_id: str
    exchange: str

    def to_json(self) -> dict[str, Any]:
        """The `order` object of POST /order, keys in py-clob-client-v2's order (`salt` a JSON
        number, amounts and token id strings; §2.5)."""
        return {
            "salt": self.salt,
            "maker": self.maker,
            "signer": self.signer,
            "tokenId": self.token_id,
            "makerAmount": str(self.maker_amount),
            "takerAmount": str(self.taker_amount),
            "side": "BUY" if self.side is Side.BUY else "SELL",
            "expiration": str(self.expiration),
            "signatureType": int(self.signature_type),
            "timestamp": str(self.timestamp_ms),
            "metadata": self.metadata,
            "builder": self.builder,
            "signature": self.signature,
        }


def _order_json(
    order: SignedOrder, owner: str, order_type: OrderType, post_only: bool, defer_exec: bool
) -> dict[str, Any]:
    if post_only and order_type in (OrderType.FOK, OrderType.FAK):
        raise ValueError("post_only is not allowed with FOK/FAK orders")
    if (order_type is OrderType.GTD) != (order.expiration > 0):
        raise ValueError("a GTD order needs an expiration, and only a GTD order may have one")
    return {
        "order": order.to_json(),
        "owner": owner,
        "orderType": str(order_type),
        "deferExec": defer_exec,
        "postOnly": post_only,
    }


def order_body(
    order: SignedOrder,
    *,
    owner: str,
    order_type: OrderType,
    post_only: bool = False,
    defer_exec: bool = False,
) -> bytes:
    """The exact body of POST /order (§2.3): `owner` is the API key. ValueError for post-only
    FOK/FAK orders and for an expiration on anything but GTD (or GTD without one)."""
    return orjson.dumps(_order_json(order, owner, order_type, post_only, defer_exec))


def orders_body(
    orders: Sequence[tuple[SignedOrder, OrderType]],
    *,
    owner: str,
    post_only: bool = False,
    defer_exec: bool = False,
) -> bytes:
    """The exact body of POST /orders (a batch, at most 15 orders per the venue, §2.3)."""
    if not 0 < len(orders) <= 15:
        raise ValueError(f"a batch holds 1 to 15 orders, got {len(orders)}")
    return orjson.dumps([_order_json(o, owner, t, post_only, defer_exec) for o, t in orders])


def cancel_body(order_id: str) -> bytes:
    """The body of DELETE /order."""
    return orjson.dumps({"orderID": order_id})


def cancel_orders_body(order_ids: Sequence[str]) -> bytes:
    """The body of DELETE /orders."""
    return orjson.dumps(list(order_ids))


def cancel_market_body(*, market: str | None = None, asset_id: str | None = None) -> bytes:
    """The body of DELETE /cancel-market-orders (the fields given, in the client's order)."""
    body: dict[str, str] = {}
    if market:
        body["market"] = market
    if asset_id:
        body["asset_id"] = asset_id
    return orjson.dumps(body)


def _sign_digest(key: coincurve.PrivateKey, digest: bytes) -> bytes:
    """r || s || v (27/28) over a 32-byte digest: eth-account's signature for the same key."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


class OrderSigner:
    """Signs V2 orders and ClobAuth messages with one private key.

    `signature_type` and `funder` say whose funds an order moves: with EOA (the default) the key's
    own address; with a proxy or safe the `funder` address (signed by the key); with POLY_1271 the
    deposit wallet `funder`, which is then the order's signer too. `salt` and `clock_ms` are
    injected in tests; by default the salt is random below the time in ms (as the official client
    draws it, a JSON-safe integer) and the timestamp is the wall clock in ms.
    """

    def __init__(
        self,
        private_key: str,
        *,
        chain_id: int = POLYGON,
        signature_type: SignatureType = SignatureType.EOA,
        funder: str | None = None,
        salt: Callable[[int], int] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        raw = _private_key_bytes(private_key)
        self._key = coincurve.PrivateKey(raw)
        self.address: str = Account.from_key(raw).address
        self.chain_id = chain_id
        self.signature_type = SignatureType(signature_type)
        if self.signature_type is not SignatureType.EOA and not funder:
            raise ValueError(f"signature type {self.signature_type.name} needs the funder (wallet) address")
        self.maker: str = funder or self.address
        _address(self.maker)
        self.signer: str = self.maker if self.signature_type is SignatureType.POLY_1271 else self.address
        self._salt = salt or (lambda now_ms: secrets.randbelow(max(now_ms, 1)))
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._domains = {
            False: _domain_separator(chain_id, EXCHANGE_V2),
            True: _domain_separator(chain_id, NEG_RISK_EXCHANGE_V2),
        }

    def __repr__(self) -> str:
        kind = self.signature_type.name
        return f"OrderSigner(address={self.address}, maker={self.maker}, {kind}, chain {self.chain_id})"

    def sign(
        self,
        token_id: str,
        side: Side,
        maker_amount: int,
        taker_amount: int,
        *,
        neg_risk: bool,
        expiration: int = 0,
        salt: int | None = None,
        timestamp_ms: int | None = None,
        metadata: str = BYTES32_ZERO,
        builder: str = BYTES32_ZERO,
    ) -> SignedOrder:
        """Sign an order for these exact amounts (see `order_amounts`), for the neg-risk
        exchange when `neg_risk`."""
        if maker_amount <= 0 or taker_amount <= 0:
            raise ValueError("order amounts must be positive")
        ts = self._clock_ms() if timestamp_ms is None else timestamp_ms
        salt = self._salt(ts) if salt is None else salt
        domain = self._domains[neg_risk]
        side_code = 0 if side is Side.BUY else 1
        contents = keccak(
            _ORDER_TYPEHASH
            + _uint(salt)
            + _address(self.maker)
            + _address(self.signer)
            + _uint(int(token_id))
            + _uint(maker_amount)
            + _uint(taker_amount)
            + _uint(side_code)
            + _uint(int(self.signature_type))
            + _uint(ts)
            + _bytes32(metadata)
            + _bytes32(builder)
        )
        digest = keccak(b"\x19\x01" + domain + contents)
        if self.signature_type is SignatureType.POLY_1271:
            signature = self._sign_1271(domain, contents)
        else:
            signature = "0x" + _sign_digest(self._key, digest).hex()
        return SignedOrder(
            salt=salt,
            maker=self.maker,
            signer=self.signer,
            token_id=token_id,
            maker_amount=maker_amount,
            taker_amount=taker_amount,
            side=side,
            signature_type=self.signature_type,
            timestamp_ms=ts,
            metadata=metadata,
            builder=builder,
            expiration=expiration,
            signature=signature,
            order_id="0x" + digest.hex(),
            exchange=NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2,
        )

    def _sign_1271(self, domain: bytes, contents: bytes) -> str:
        """A deposit wallet's signature: the key signs the order wrapped in `TypedDataSign` for the
        wallet, followed by what the wallet needs to rebuild it (py-clob-client-v2)."""
        wrapped = keccak(
            _SOLADY_TYPEHASH
            + contents
            + _DEPOSIT_WALLET_NAME
            + _DEPOSIT_WALLET_VERSION
            + _uint(self.chain_id)
            + _address(self.signer)
            + bytes(32)
        )
        inner = _sign_digest(self._key, keccak(b"\x19\x01" + domain + wrapped))
        return "0x" + inner.hex() + domain.hex() + contents.hex() + _ORDER_TYPE_SUFFIX

    def limit_order(
        self,
        inst: Instrument,
        side: Side,
        price: Decimal,
        size: Decimal,
        *,
        neg_risk: bool,
        expiration: int = 0,
        client_order_id: str | None = None,
        salt: int | None = None,
        timestamp_ms: int | None = None,
    ) -> SignedOrder:
        """Check (`OrderRejected`), compute the amounts and sign a limit order."""
        check_order(inst, price, size, client_order_id=client_order_id)
        maker_amount, taker_amount = order_amounts(side, price, size, inst.tick_size)
        return self.sign(
            inst.symbol,
            side,
            maker_amount,
            taker_amount,
            neg_risk=neg_risk,
            expiration=expiration,
            salt=salt,
            timestamp_ms=timestamp_ms,
        )

    def clob_auth_signature(self, *, timestamp: int, nonce: int = 0) -> str:
        """The L1 `ClobAuth` EIP-712 signature (§2.4): the key's address attests it controls it."""
        return (
            "0x"
            + _sign_digest(self._key, clob_auth_digest(self.address, timestamp, nonce, self.chain_id)).hex()
        )


# -- verification (the simulator's side of the venue) ----------------------------------------


def clob_auth_digest(address: str, timestamp: int | str, nonce: int, chain_id: int) -> bytes:
    """The EIP-712 digest of a `ClobAuth` message (§2.4)."""
    domain = keccak(_AUTH_DOMAIN_TYPEHASH + _AUTH_NAME + _AUTH_VERSION + _uint(chain_id))
    contents = keccak(
        _AUTH_TYPEHASH + _address(address) + keccak(str(timestamp).encode()) + _uint(nonce) + _AUTH_MESSAGE
    )
    return keccak(b"\x19\x01" + domain + contents)


def order_digest(order: Mapping[str, Any], *, chain_id: int, neg_risk: bool) -> bytes:
    """The EIP-712 digest of a V2 order in its POST /order JSON form (`SignedOrder.to_json`),
    for the exchange of a neg-risk market or not: what the venue verifies the signature
    against, and the order's id. Raises ValueError/KeyError/TypeError for a malformed order."""
    side = order["side"]
    side_code = {"BUY": 0, "SELL": 1, 0: 0, 1: 1}.get(side)
    if side_code is None:
        raise ValueError(f"side must be BUY or SELL, got {side!r}")
    contents = keccak(
        _ORDER_TYPEHASH
        + _uint(int(order["salt"]))
        + _address(str(order["maker"]))
        + _address(str(order["signer"]))
        + _uint(int(order["tokenId"]))
        + _uint(int(order["makerAmount"]))
        + _uint(int(order["takerAmount"]))
        + _uint(side_code)
        + _uint(int(order["signatureType"]))
        + _uint(int(order["timestamp"]))
        + _bytes32(str(order.get("metadata") or BYTES32_ZERO))
        + _bytes32(str(order.get("builder") or BYTES32_ZERO))
    )
    domain = _domain_separator(chain_id, NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2)
    return keccak(b"\x19\x01" + domain + contents)


def recover_signer(digest: bytes, signature: str) -> str:
    """The address whose key made `signature` (65 bytes, r || s || v with v 27/28) over
    `digest`, checksummed. Raises ValueError for a signature that recovers nothing."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise ValueError("the signature is not hex") from None
    if len(raw) != 65 or raw[64] not in (27, 28):
        raise ValueError("the signature must be 65 bytes ending in v = 27 or 28")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            raw[:64] + bytes([raw[64] - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception for an invalid signature
        raise ValueError(f"the signature recovers no key ({exc})") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def l1_headers(signer: OrderSigner, *, timestamp: int, nonce: int = 0) -> dict[str, str]:
    """The L1 headers of the API-key endpoints (§2.4); `timestamp` in unix seconds."""
    return {
        "POLY_ADDRESS": signer.address,
        "POLY_SIGNATURE": signer.clob_auth_signature(timestamp=timestamp, nonce=nonce),
        "POLY_TIMESTAMP": str(timestamp),
        "POLY_NONCE": str(nonce),
    }


def hmac_signature(
    secret: str, timestamp: int, method: str, path: str, body: bytes | str | None = None
) -> str:
    """The L2 HMAC (§2.4): urlsafe base64 (padded) of HMAC-SHA256, keyed by the urlsafe-base64
    decoded secret, over `timestamp + METHOD + path + body` (`path` without its query string,
    `body` the exact bytes sent, left out when empty).

    The official Python client replaces `'` by `"` in the body before signing; a body holding a
    `'` would then be signed differently from what is sent, so one is refused here (ValueError):
    no body this client sends contains one."""
    message = f"{timestamp}{method}{path}".encode()
    if body:
        raw = body.encode() if isinstance(body, str) else body
        if b"'" in raw:
            raise ValueError("a body containing ' cannot be signed the way the venue's client does")
        message += raw
    digest = hmac.new(base64.urlsafe_b64decode(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def l2_headers(
    api: ApiCredentials,
    address: str,
    *,
    method: str,
    path: str,
    body: bytes | str | None = None,
    timestamp: int,
) -> dict[str, str]:
    """The L2 headers of an authenticated REST call (§2.4); `address` is the signer's EOA,
    `timestamp` unix seconds."""
    return {
        "POLY_ADDRESS": address,
        "POLY_SIGNATURE": hmac_signature(api.secret, timestamp, method, path, body),
        "POLY_TIMESTAMP": str(timestamp),
        "POLY_API_KEY": api.key,
        "POLY_PASSPHRASE": api.passphrase,
    }


# -- credentials ---------------------------------------------------------------------------


def _private_key_bytes(key: str) -> bytes:
    try:
        raw = bytes.fromhex(key.strip().removeprefix("0x"))
    except ValueError:
        raise ValueError("the private key is not hex") from None
    if len(raw) != 32:
        raise ValueError(f"the private key must be 32 bytes, got {len(raw)}")
    return raw


@attrs.frozen(repr=False)
class ApiCredentials:
    """The L2 API key triple (`POST /auth/api-key` or `/auth/derive-api-key`, §2.3). `repr`
    shows the key's first 8 characters only."""

    key: str
    secret: str = attrs.field(repr=False)
    passphrase: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"ApiCredentials(key={self.key[:8]}..., secret=<hidden>, passphrase=<hidden>)"


@attrs.frozen(repr=False)
class Credentials:
    """Everything that trades on Polymarket: the wallet's private key (signs orders and
    ClobAuth), the L2 API credentials (None until created or derived), and whose funds orders
    move (`signature_type`, `funder`). `repr` never shows a secret."""

    private_key: str = attrs.field(repr=False)
    api: ApiCredentials | None = None
    signature_type: SignatureType = SignatureType.EOA
    funder: str | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(private_key=<hidden>, api={self.api!r}, "
            f"signature_type={self.signature_type.name}, funder={self.funder})"
        )

    def signer(self, *, chain_id: int = POLYGON) -> OrderSigner:
        return OrderSigner(
            self.private_key, chain_id=chain_id, signature_type=self.signature_type, funder=self.funder
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """From the environment, each variable also readable from a file named by `<NAME>_FILE`
        (systemd's `LoadCredential`):

        - `POLYMARKET_PRIVATE_KEY` (required): 32 bytes of hex;
        - `POLYMARKET_API_KEY`, `POLYMARKET_API_SECRET`, `POLYMARKET_API_PASSPHRASE`: all three or
          none (then `api` is None and must be created or derived with L1 headers);
        - `POLYMARKET_SIGNATURE_TYPE`: `EOA` (default), `POLY_PROXY`, `POLY_GNOSIS_SAFE`,
          `POLY_1271` or its number; `POLYMARKET_FUNDER`: the wallet address for the others.

        Raises `AuthError` naming what is missing or malformed, never a value. The secrets are
        registered with the log redactor."""
        env = os.environ if environ is None else environ

        def read(name: str) -> str | None:
            value = env.get(name)
            if value:
                return value.strip()
            path = env.get(f"{name}_FILE")
            if path:
                try:
                    return Path(path).read_text().strip() or None
                except OSError as exc:
                    raise AuthError(
                        f"cannot read {name}_FILE ({path}): {exc.strerror}", venue=VENUE
                    ) from None
            return None

        key = read("POLYMARKET_PRIVATE_KEY")
        if not key:
            raise AuthError(
                "Polymarket credentials missing: set POLYMARKET_PRIVATE_KEY (or POLYMARKET_PRIVATE_KEY_FILE)",
                venue=VENUE,
            )
        try:
            _private_key_bytes(key)
        except ValueError as exc:
            raise AuthError(f"POLYMARKET_PRIVATE_KEY: {exc}", venue=VENUE) from None
        parts = {n: read(f"POLYMARKET_API_{n}") for n in ("KEY", "SECRET", "PASSPHRASE")}
        given = [n for n, v in parts.items() if v]
        api: ApiCredentials | None = None
        if given and len(given) != 3:
            missing = ", ".join(f"POLYMARKET_API_{n}" for n, v in parts.items() if not v)
            raise AuthError(f"Polymarket API credentials incomplete: {missing} missing", venue=VENUE)
        if given:
            api = ApiCredentials(parts["KEY"] or "", parts["SECRET"] or "", parts["PASSPHRASE"] or "")
            try:
                # Strictly: the signing decoder drops stray characters and would sign with a
                # key the venue never issued.
                if not base64.b64decode(api.secret.translate(_URLSAFE), validate=True):
                    raise ValueError("empty")
            except ValueError:
                raise AuthError("POLYMARKET_API_SECRET is not base64", venue=VENUE) from None
        type_name = (read("POLYMARKET_SIGNATURE_TYPE") or "EOA").upper()
        try:
            sig_type = SignatureType(int(type_name)) if type_name.isdigit() else SignatureType[type_name]
        except (KeyError, ValueError):
            known = ", ".join(t.name for t in SignatureType)
            raise AuthError(f"POLYMARKET_SIGNATURE_TYPE: unknown ({known})", venue=VENUE) from None
        funder = read("POLYMARKET_FUNDER")
        if sig_type is not SignatureType.EOA and not funder:
            raise AuthError(f"POLYMARKET_FUNDER is needed with signature type {sig_type.name}", venue=VENUE)
        if funder:
            try:
                _address(funder)
            except ValueError:
                raise AuthError("POLYMARKET_FUNDER is not an address", venue=VENUE) from None
        register_secret(key)
        register_secret(key.removeprefix("0x"))
        if api is not None:
            register_secret(api.secret)
            register_secret(api.passphrase)
        return cls(private_key=key, api=api, signature_type=sig_type, funder=funder)
