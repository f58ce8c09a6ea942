"""Derive authentication and order signing (VENUES.md §3.5, §3.6), byte for byte as Derive's
official `derive-action-signing` package computes them (the tests compare with it).

- Login (`public/login` over WebSocket, and the `X-LYRA*` headers of private REST calls): an
  EIP-191 `personal_sign` of the UTC time in ms as a decimal string, by the session key (§3.5).
- Orders: each `private/order` carries its own EIP-712 signature over an *action* (§3.6):
  1. trade module data = abi.encode(address asset, uint256 sub_id, int256 limit_price_e18,
     int256 amount_e18, uint256 max_fee_e18, uint256 recipient_id, bool is_bid);
  2. action hash = keccak256(abi.encode(ACTION_TYPEHASH, subaccount_id, nonce, TRADE_MODULE,
     keccak256(module data), signature_expiry_sec, owner wallet, signer));
  3. typed-data hash = keccak256(0x1901 || DOMAIN_SEPARATOR || action hash);
  4. signature = r || s || v (65 bytes, v = 27/28) over it, with no further prefix.

Every word of those encodings is static, so the ABI encoding is written out here (32-byte words)
instead of going through eth-abi: the same bytes (tests) at a fraction of the cost. Signing goes
straight to coincurve (libsecp256k1), which is what eth-account itself uses when it is installed.

Fixed point: Decimals become 1e18 integers exactly as the official package does,
`int(value * Decimal(10**18))`: the product is rounded to 28 significant digits (the default
decimal context; ours is pinned, so a caller's context cannot change a signature) and then
truncated toward zero. `OrderSigner.sign_order` goes further and refuses a number that would be
signed as anything but its exact value (more than 18 decimals, or digits the 28-digit product
drops), because the venue re-derives the signed integers from the decimal strings we send.

Credentials (`Credentials.from_env`): `DERIVE_WALLET` (the Derive smart-contract wallet, the
action's `owner`), `DERIVE_SESSION_KEY` (the private key that signs: a registered session key,
or the owner's key), `DERIVE_SUBACCOUNT_ID`; each may instead be given as a file path in
`<NAME>_FILE` (systemd `LoadCredential`). The key is never in a repr, and is registered with the
log redactor.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Any, Literal

import attrs
import coincurve
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from tradingd.engine.venue import AuthError, OrderRejected, register_secret

from .instruments import VENUE, DeriveInstrumentInfo

__all__ = [
    "ACTION_TYPEHASH",
    "DOMAINS",
    "MAINNET",
    "MIN_SIGNATURE_TTL_S",
    "TESTNET",
    "Credentials",
    "NonceSource",
    "OrderSigner",
    "SignedOrder",
    "SigningDomain",
    "action_hash",
    "encode_trade_data",
    "login_digest",
    "login_params",
    "login_signature",
    "recover_signer",
    "rest_auth_headers",
    "sign_digest",
    "to_e18",
    "typed_data_hash",
]

# keccak256("Action(uint256 subaccountId,uint256 nonce,address module,bytes data,uint256 expiry,
# address owner,address signer)") (§3.6 "Constants").
ACTION_TYPEHASH = bytes.fromhex("4d7a9f27c403ff9c0f19bce61d76d82f9aa29f8d6d4b0c5474607d9770d1af17")

# §3.6: the venue refuses a signature that expires less than 5 minutes ahead (error 11011); a
# little more keeps a clock a few seconds off, or a slow round trip, from tripping it.
MIN_SIGNATURE_TTL_S = 330

Direction = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["gtc", "post_only", "fok", "ioc"]

_E18 = Decimal(10**18)
# The official package multiplies in the default decimal context; this is that context, pinned.
_E18_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)
_EXACT_CONTEXT = Context(prec=400, Emax=999_999, Emin=-999_999)
_INT256_MIN, _INT256_MAX = -(2**255), 2**255 - 1
_UINT256_MAX = 2**256 - 1
_ADDRESS = re.compile(r"(?:0x)?([0-9a-fA-F]{40})")
_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_ZERO12 = bytes(12)


def _address_bytes(address: str, what: str) -> bytes:
    m = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if m is None:
        raise ValueError(f"{what}: not an address: {address!r}")
    return bytes.fromhex(m.group(1))


@attrs.frozen
class SigningDomain:
    """The chain constants an order signature binds (§3.6 "Constants", v2)."""

    name: str
    domain_separator: bytes = attrs.field(repr=lambda b: "0x" + b.hex())
    trade_module: str

    def __attrs_post_init__(self) -> None:
        if len(self.domain_separator) != 32:
            raise ValueError(f"{self.name}: a domain separator is 32 bytes")
        _address_bytes(self.trade_module, "trade_module")


MAINNET = SigningDomain(
    "mainnet",
    bytes.fromhex("d96e5f90797da7ec8dc4e276260c7f3f87fedf68775fbe1ef116e996fc60441b"),
    "0xB8D20c2B7a1Ad2EE33Bc50eF10876eD3035b5e7b",
)
TESTNET = SigningDomain(
    "testnet",
    bytes.fromhex("9bcf4dc06df5d8bf23af818d5716491b995020f377d3b7b64c29ed14e3dd1105"),
    "0x87F2863866D85E3192a35A73b388BD625D83f2be",
)
DOMAINS: Mapping[str, SigningDomain] = {"mainnet": MAINNET, "testnet": TESTNET}


# ------------------------------------------------------------------------ encoding primitives


def to_e18(value: Decimal) -> int:
    """`value` in 1e18 fixed point, as the official package computes it (module docstring).
    Raises ValueError for a non-finite value or one outside int256."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"expected a finite Decimal, got {value!r}")
    scaled = int(_E18_CONTEXT.multiply(value, _E18))
    if not _INT256_MIN <= scaled <= _INT256_MAX:
        raise ValueError(f"{value} is out of the int256 range once scaled by 1e18")
    return scaled


def _uint(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
        raise ValueError(f"{what}: expected an unsigned 256-bit integer, got {value!r}")
    return value.to_bytes(32, "big")


def _int(value: int) -> bytes:
    return value.to_bytes(32, "big", signed=True)


def encode_trade_data(
    *,
    asset_address: str,
    sub_id: int,
    limit_price: Decimal,
    amount: Decimal,
    max_fee: Decimal,
    recipient_id: int,
    is_bid: bool,
) -> bytes:
    """The trade module's data (§3.6 step 1): seven static ABI words, 224 bytes."""
    fee = to_e18(max_fee)
    if fee < 0:
        raise ValueError(f"max_fee must not be negative, got {max_fee}")
    return b"".join(
        (
            _ZERO12 + _address_bytes(asset_address, "asset_address"),
            _uint(sub_id, "sub_id"),
            _int(to_e18(limit_price)),
            _int(to_e18(amount)),
            fee.to_bytes(32, "big"),
            _uint(recipient_id, "recipient_id"),
            (1 if is_bid else 0).to_bytes(32, "big"),
        )
    )


def action_hash(
    *,
    subaccount_id: int,
    nonce: int,
    module: str,
    data: bytes,
    signature_expiry_sec: int,
    owner: str,
    signer: str,
) -> bytes:
    """keccak256 of the ABI-encoded action (§3.6 step 2)."""
    return keccak(
        b"".join(
            (
                ACTION_TYPEHASH,
                _uint(subaccount_id, "subaccount_id"),
                _uint(nonce, "nonce"),
                _ZERO12 + _address_bytes(module, "module"),
                keccak(data),
                _uint(signature_expiry_sec, "signature_expiry_sec"),
                _ZERO12 + _address_bytes(owner, "owner"),
                _ZERO12 + _address_bytes(signer, "signer"),
            )
        )
    )


def typed_data_hash(domain_separator: bytes, action: bytes) -> bytes:
    """The EIP-712 digest (§3.6 step 3): keccak256(0x1901 || DOMAIN_SEPARATOR || action hash)."""
    return keccak(b"\x19\x01" + domain_separator + action)


def sign_digest(key: coincurve.PrivateKey, digest: bytes) -> bytes:
    """The 65-byte r || s || v signature of a 32-byte digest, v = 27 + recovery id (§3.6 step 4),
    as eth-account's `unsafe_sign_hash` makes it (deterministic RFC 6979, low s)."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))


def _personal_digest(text: str) -> bytes:
    data = text.encode()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


_SIGNATURE = re.compile(r"(?:0x)?([0-9a-fA-F]{130})")


def recover_signer(digest: bytes, signature: str) -> str:
    """The checksummed address whose key made `signature` (r || s || v hex, 0x optional; v 27/28
    or 0/1) over the 32-byte `digest`: what the venue does to check a login or an order (a
    venue simulator's side of §3.5 and §3.6). Raises ValueError for a signature that is not 65
    bytes of hex or recovers no key."""
    m = _SIGNATURE.fullmatch(signature.strip()) if isinstance(signature, str) else None
    if m is None or len(digest) != 32:
        raise ValueError("a signature is 65 bytes of hex (r, s, v)")
    raw = bytes.fromhex(m.group(1))
    v = raw[64]
    recovery = v - 27 if v >= 27 else v
    if recovery not in (0, 1):
        raise ValueError(f"a signature's v is 27 or 28 (or 0 or 1), got {v}")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            raw[:64] + bytes((recovery,)), digest, hasher=None
        )
    except Exception as exc:  # libsecp256k1 refuses an r/s that recovers no point
        raise ValueError(f"the signature recovers no key ({exc})") from None
    return str(to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:]))


# ------------------------------------------------------------------------------- credentials


def _private_key(hex_key: str) -> coincurve.PrivateKey:
    m = _KEY.fullmatch(hex_key.strip())
    if m is None:
        raise ValueError("a private key is 32 bytes of hex (64 digits, 0x optional)")
    return coincurve.PrivateKey(bytes.fromhex(m.group(1)))


def _address_of(key: coincurve.PrivateKey) -> str:
    public = key.public_key.format(compressed=False)[1:]
    return str(to_checksum_address(keccak(public)[-20:]))


@attrs.frozen(repr=False)
class Credentials:
    """Who signs: the Derive wallet (owner of the subaccount), the subaccount, and the session
    key. `signer` is the key's address. `repr` never shows the key."""

    wallet: str = attrs.field()
    session_key: str = attrs.field(repr=False)
    subaccount_id: int
    signer: str = attrs.field(init=False)
    _key: coincurve.PrivateKey = attrs.field(init=False, repr=False, eq=False)

    @wallet.validator
    def _check_wallet(self, _: Any, value: str) -> None:
        _address_bytes(value, "wallet")

    def __attrs_post_init__(self) -> None:
        sub = self.subaccount_id
        if isinstance(sub, bool) or not isinstance(sub, int) or sub < 0:
            raise ValueError("subaccount_id must be a non-negative integer")
        key = _private_key(self.session_key)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "signer", _address_of(key))
        object.__setattr__(self, "wallet", to_checksum_address(self.wallet))

    def __repr__(self) -> str:
        return (
            f"Credentials(wallet={self.wallet!r}, signer={self.signer!r}, "
            f"subaccount_id={self.subaccount_id}, session_key=<hidden>)"
        )

    @property
    def key(self) -> coincurve.PrivateKey:
        """The signing key (for this module's functions)."""
        return self._key

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """From `DERIVE_WALLET`, `DERIVE_SESSION_KEY` and `DERIVE_SUBACCOUNT_ID` (each, or its
        `_FILE` variant naming a file that holds it). Raises `AuthError` naming what is missing
        or malformed, never a value."""
        env = os.environ if environ is None else environ

        def read(name: str) -> str | None:
            value = env.get(name)
            if value:
                return value.strip()
            path = env.get(f"{name}_FILE")
            if path:
                try:
                    return Path(path).read_text().strip()
                except OSError as exc:
                    message = f"cannot read {name}_FILE ({path}): {exc.strerror}"
                    raise AuthError(message, venue=VENUE) from None
            return None

        names = ("DERIVE_WALLET", "DERIVE_SESSION_KEY", "DERIVE_SUBACCOUNT_ID")
        wallet, key, sub = (read(n) for n in names)
        if not (wallet and key and sub):
            missing = ", ".join(n for n, v in zip(names, (wallet, key, sub), strict=True) if not v)
            raise AuthError(f"Derive credentials missing: set {missing} (or the _FILE variants)", venue=VENUE)
        m = _KEY.fullmatch(key)
        if m is None:
            message = "DERIVE_SESSION_KEY must be a private key: 64 hex digits, 0x optional"
            raise AuthError(message, venue=VENUE)
        register_secret(m.group(1))
        if _ADDRESS.fullmatch(wallet) is None:
            raise AuthError("DERIVE_WALLET must be an address: 0x and 40 hex digits", venue=VENUE)
        if not sub.isdigit():
            raise AuthError("DERIVE_SUBACCOUNT_ID must be a decimal integer", venue=VENUE)
        try:
            return cls(wallet, key, int(sub))
        except ValueError:  # a 32-byte value that is not a valid secp256k1 key (0, or >= n)
            raise AuthError("DERIVE_SESSION_KEY is not a valid secp256k1 private key", venue=VENUE) from None


# ------------------------------------------------------------------------------------- login


def login_digest(timestamp: str) -> bytes:
    """The digest a login signs: EIP-191 `personal_sign` of the timestamp string (§3.5)."""
    return _personal_digest(timestamp)


def login_signature(key: coincurve.PrivateKey, timestamp_ms: int) -> str:
    """`0x` + the 65-byte EIP-191 signature of the decimal string `timestamp_ms` (§3.5)."""
    return "0x" + sign_digest(key, _personal_digest(str(timestamp_ms))).hex()


def login_params(credentials: Credentials, timestamp_ms: int) -> dict[str, str]:
    """The params of `public/login` (§3.5)."""
    return {
        "wallet": credentials.wallet,
        "timestamp": str(timestamp_ms),
        "signature": login_signature(credentials.key, timestamp_ms),
    }


def rest_auth_headers(credentials: Credentials, timestamp_ms: int) -> dict[str, str]:
    """The headers of a private REST call (§3.5), spelled as the official package spells them."""
    return {
        "X-LYRAWALLET": credentials.wallet,
        "X-LYRATIMESTAMP": str(timestamp_ms),
        "X-LYRASIGNATURE": login_signature(credentials.key, timestamp_ms),
    }


# ------------------------------------------------------------------------------------ orders


def _utc_ms() -> int:
    return time.time_ns() // 1_000_000


_SYSTEM_RANDOM = random.SystemRandom()


def _system_draw() -> int:
    return _SYSTEM_RANDOM.randrange(1000)


class NonceSource:
    """Action nonces `<utc_ms><0-999>` (§3.6: e.g. 1695836058725001), strictly increasing, so two
    orders never share one (error 11017) and each reads as its own time (11018). Inject the clock
    (ms) and the 0-999 draw for tests."""

    def __init__(
        self, *, clock_ms: Callable[[], int] = _utc_ms, draw: Callable[[], int] | None = None
    ) -> None:
        self._clock_ms = clock_ms
        self._draw: Callable[[], int] = draw if draw is not None else _system_draw
        self._last = 0

    def __call__(self) -> int:
        r = self._draw()
        if not 0 <= r <= 999:
            raise ValueError(f"a nonce's random part is 0-999, got {r}")
        nonce = self._clock_ms() * 1000 + r
        if nonce <= self._last:
            nonce = self._last + 1
        self._last = nonce
        return nonce


def _signs_exactly(value: Decimal) -> bool:
    """True when `to_e18(value)` is exactly value x 1e18 (nothing truncated or rounded away)."""
    exact = _EXACT_CONTEXT.multiply(value, _E18)
    return exact == exact.to_integral_value() and to_e18(value) == int(exact)


def _plain(value: Decimal) -> str:
    """A Decimal as the plain decimal string the order JSON carries (never an exponent)."""
    return format(value, "f")


@attrs.frozen
class SignedOrder:
    """An order ready for `private/order`: what was signed, the digests, and the signature."""

    instrument_name: str
    direction: Direction
    amount: Decimal
    limit_price: Decimal
    max_fee: Decimal
    subaccount_id: int
    nonce: int
    signer: str
    signature_expiry_sec: int
    signature: str  # 0x + 130 hex digits
    order_type: OrderType = "limit"
    time_in_force: TimeInForce = "gtc"
    label: str | None = None
    reduce_only: bool = False
    mmp: bool = False
    encoded_data: bytes = attrs.field(default=b"", repr=False)
    action_hash: bytes = attrs.field(default=b"", repr=False)
    typed_data_hash: bytes = attrs.field(default=b"", repr=False)

    def params(self) -> dict[str, Any]:
        """The `private/order` params (§3.6): numbers as plain decimal strings, nonce an int."""
        out: dict[str, Any] = {
            "instrument_name": self.instrument_name,
            "direction": self.direction,
            "order_type": self.order_type,
            "time_in_force": self.time_in_force,
            "amount": _plain(self.amount),
            "limit_price": _plain(self.limit_price),
            "max_fee": _plain(self.max_fee),
            "subaccount_id": self.subaccount_id,
            "nonce": self.nonce,
            "signer": self.signer,
            "signature_expiry_sec": self.signature_expiry_sec,
            "signature": self.signature,
            "mmp": self.mmp,
        }
        if self.reduce_only:
            out["reduce_only"] = True
        if self.label:
            out["label"] = self.label
        return out


class OrderSigner:
    """Signs `private/order` actions for one subaccount in one environment (§3.6).

    `clock_s` (unix seconds) sets the signature expiry, `signature_ttl_s` ahead (orders expire
    then whatever their time in force: §3.6 "Constraints"); `nonces` draws nonces.
    """

    def __init__(
        self,
        credentials: Credentials,
        domain: SigningDomain,
        *,
        nonces: Callable[[], int] | None = None,
        clock_s: Callable[[], float] = time.time,
        signature_ttl_s: int = 3600,
    ) -> None:
        if signature_ttl_s < MIN_SIGNATURE_TTL_S:
            raise ValueError(
                f"signature_ttl_s must be at least {MIN_SIGNATURE_TTL_S} (Derive wants > 5 minutes)"
            )
        self.credentials = credentials
        self.domain = domain
        self.signature_ttl_s = signature_ttl_s
        self._nonces = nonces if nonces is not None else NonceSource()
        self._clock_s = clock_s

    def sign_order(
        self,
        info: DeriveInstrumentInfo,
        *,
        direction: Direction,
        amount: Decimal,
        limit_price: Decimal,
        max_fee: Decimal,
        order_type: OrderType = "limit",
        time_in_force: TimeInForce = "gtc",
        label: str | None = None,
        reduce_only: bool = False,
        mmp: bool = False,
        nonce: int | None = None,
        signature_expiry_sec: int | None = None,
    ) -> SignedOrder:
        """Sign one order on the instrument `info` describes. Raises `OrderRejected` (naming the
        order by `label`) for a bad direction, type or time in force, a non-positive amount or
        price, a negative fee, a number that cannot be signed exactly, or an expiry too close."""
        name = info.name

        def reject(reason: str) -> OrderRejected:
            return OrderRejected(reason, venue=VENUE, instrument=name, client_order_id=label)

        if direction not in ("buy", "sell"):
            raise reject(f"direction must be 'buy' or 'sell', got {direction!r}")
        if order_type not in ("limit", "market"):
            raise reject(f"order_type must be 'limit' or 'market', got {order_type!r}")
        if time_in_force not in ("gtc", "post_only", "fok", "ioc"):
            raise reject(f"unknown time_in_force {time_in_force!r}")
        for what, value, positive in (
            ("amount", amount, True),
            ("limit_price", limit_price, True),
            ("max_fee", max_fee, False),
        ):
            if not isinstance(value, Decimal) or not value.is_finite():
                raise reject(f"{what} must be a finite Decimal, got {value!r}")
            if value < 0 or (positive and value == 0):
                raise reject(f"{what} must be {'positive' if positive else 'at least 0'}, got {value}")
            if not _signs_exactly(value):
                raise reject(f"{what} {value} has more precision than 1e18 fixed point can sign exactly")
        if nonce is None:
            nonce = self._nonces()
        now = int(self._clock_s())
        expiry = now + self.signature_ttl_s if signature_expiry_sec is None else signature_expiry_sec
        if expiry - now < MIN_SIGNATURE_TTL_S:
            ahead = f"less than {MIN_SIGNATURE_TTL_S} s ahead (Derive wants > 5 minutes)"
            raise reject(f"signature expiry {expiry} is {ahead}")
        creds = self.credentials
        data = encode_trade_data(
            asset_address=info.asset_address,
            sub_id=info.sub_id,
            limit_price=limit_price,
            amount=amount,
            max_fee=max_fee,
            recipient_id=creds.subaccount_id,
            is_bid=direction == "buy",
        )
        action = action_hash(
            subaccount_id=creds.subaccount_id,
            nonce=nonce,
            module=self.domain.trade_module,
            data=data,
            signature_expiry_sec=expiry,
            owner=creds.wallet,
            signer=creds.signer,
        )
        digest = typed_data_hash(self.domain.domain_separator, action)
        return SignedOrder(
            instrument_name=name,
            direction=direction,
            amount=amount,
            limit_price=limit_price,
            max_fee=max_fee,
            subaccount_id=creds.subaccount_id,
            nonce=nonce,
            signer=creds.signer,
            signature_expiry_sec=expiry,
            signature="0x" + sign_digest(creds.key, digest).hex(),
            order_type=order_type,
            time_in_force=time_in_force,
            label=label,
            reduce_only=reduce_only,
            mmp=mmp,
            encoded_data=data,
            action_hash=action,
            typed_data_hash=digest,
        )
