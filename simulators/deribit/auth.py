"""Deribit's HMAC authentication rules, written from VENUES.md §1.3 (Deribit's authentication
article), for the simulator to check what a client signs.

- WebSocket `public/auth` with `grant_type = client_signature`: `StringToSign = Timestamp + "\\n"
  + Nonce + "\\n" + Data` (`Data` defaults to "", so the string then ends in "\\n"); `signature =
  lowercase_hex(HMAC_SHA256(key=ClientSecret, msg=StringToSign))`; the timestamp (ms) is valid
  for 60 s.
- HTTP `Authorization: deri-hmac-sha256 id=ClientId,ts=Timestamp,nonce=Nonce,sig=Signature` with
  `Signature = HEX(HMAC-SHA256(secret, ts + "\\n" + nonce + "\\n" + UPPER(METHOD) + "\\n" +
  URI_with_query + "\\n" + Body + "\\n"))`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = [
    "TIMESTAMP_WINDOW_MS",
    "client_signature",
    "http_signature",
    "parse_hmac_header",
    "signature_matches",
]

TIMESTAMP_WINDOW_MS: Final = 60_000


def _hex_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def client_signature(secret: str, timestamp: int | str, nonce: str, data: str = "") -> str:
    """The `signature` of a WebSocket `client_signature` grant."""
    return _hex_hmac(secret, f"{timestamp}\n{nonce}\n{data}")


def http_signature(secret: str, timestamp: int | str, nonce: str, method: str, uri: str, body: str) -> str:
    """The `sig` of an HTTP `deri-hmac-sha256` Authorization header."""
    return _hex_hmac(secret, f"{timestamp}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n")


def signature_matches(expected: str, given: object) -> bool:
    """A constant-time comparison; a signature that is not a string never matches."""
    return isinstance(given, str) and hmac.compare_digest(expected, given)


def parse_hmac_header(value: str) -> dict[str, str]:
    """`id=…,ts=…,nonce=…,sig=…` as a dict (parts without `=` are ignored)."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            out[key] = val
    return out
