"""Deribit authentication (VENUES.md §1.3): credentials, the `client_signature` HMAC, and the
`deri-hmac-sha256` HTTP authorization header.

Credentials come from the environment (`DERIBIT_CLIENT_ID` / `DERIBIT_CLIENT_SECRET`; the seed's
`DERIBIT_KEY` is accepted as `client_id:client_secret`) or from files (`*_FILE` variables, as
systemd's `LoadCredential` provides them), never from the config. Their repr never shows the
secret, and the secret is registered with the log redactor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import attrs

from tradingd.engine.venue import AuthError, register_secret

__all__ = ["Credentials", "http_signature_header", "sign_client_signature"]


def sign_client_signature(secret: str, timestamp_ms: int, nonce: str, data: str = "") -> str:
    """`signature` of a `client_signature` grant: lowercase hex HMAC-SHA256 of
    `timestamp + "\\n" + nonce + "\\n" + data` keyed by the client secret (§1.3)."""
    message = f"{timestamp_ms}\n{nonce}\n{data}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def http_signature_header(
    client_id: str, secret: str, *, timestamp_ms: int, nonce: str, method: str, uri: str, body: str = ""
) -> str:
    """The `Authorization` header of a signed HTTP request (§1.3): `deri-hmac-sha256 id=...,
    ts=...,nonce=...,sig=...` with sig = hex HMAC-SHA256 over
    `ts\\nnonce\\nMETHOD\\nURI\\nbody\\n` (URI with its query string)."""
    message = f"{timestamp_ms}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n".encode()
    sig = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"deri-hmac-sha256 id={client_id},ts={timestamp_ms},nonce={nonce},sig={sig}"


def new_nonce() -> str:
    return secrets.token_hex(8)


@attrs.frozen(repr=False)
class Credentials:
    """An API key pair. `repr` shows the client id only."""

    client_id: str
    client_secret: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=<hidden>)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """From `DERIBIT_CLIENT_ID`/`DERIBIT_CLIENT_SECRET` (or `..._FILE` paths to files holding
        them), else `DERIBIT_KEY` = `client_id:client_secret`. Raises `AuthError` naming what is
        missing (never what was found)."""
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
                    raise AuthError(
                        f"cannot read {name}_FILE ({path}): {exc.strerror}", venue="deribit"
                    ) from None
            return None

        client_id, secret = read("DERIBIT_CLIENT_ID"), read("DERIBIT_CLIENT_SECRET")
        if not (client_id and secret):
            key = read("DERIBIT_KEY")
            if key and ":" in key:
                client_id, _, secret = key.partition(":")
        if not (client_id and secret):
            # Name what is missing (never a value): the one variable a user forgot, not both.
            given = {"DERIBIT_CLIENT_ID": client_id, "DERIBIT_CLIENT_SECRET": secret}
            unset = [name for name, value in given.items() if not value]
            raise AuthError(
                f"Deribit credentials missing: {' and '.join(unset)} not set "
                "(set DERIBIT_CLIENT_ID and DERIBIT_CLIENT_SECRET, or their _FILE variants, "
                "or DERIBIT_KEY=client_id:client_secret)",
                venue="deribit",
            )
        register_secret(secret)
        return cls(client_id, secret)
