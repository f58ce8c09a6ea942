"""Derive (formerly Lyra; options, perpetuals and spot in USDC): API v2, JSON-RPC over one
WebSocket (VENUES.md §3).

Modules, as in every venue package: `codec` (frames -> events), `instruments` (definitions, names
and the signing side table), `fees` (the fee schedule and `max_fee`), `signing` (login and order
signatures), `generator` (synthetic recordings for backtests and the simulator). The settings
class lives here until the connection (`stream`, `execution`, `simulator`, and `settings` beside
them, as in the Deribit package) arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from engine import InstrumentRegistry
from engine._plugins import Decoder

from .fees import DeriveFees
from .instruments import VENUE, InstrumentType

__all__ = ["ENDPOINTS", "PLUGIN", "DerivePlugin", "DeriveSettings"]

# §3.1 (v2 hosts; §3.0 on v3): (WebSocket, REST) per environment.
ENDPOINTS = {
    "testnet": ("wss://api-demo.lyra.finance/ws", "https://api-demo.lyra.finance"),
    "mainnet": ("wss://api.lyra.finance/ws", "https://api.lyra.finance"),
}


def _at_least(minimum: float) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name}: expected at least {minimum}, got {value}")

    return check


def _one_of(*allowed: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name}: expected one of {', '.join(map(str, allowed))}, got {value}")

    return check


@attrs.frozen
class DeriveSettings:
    """`[venues.derive]`. Testnet unless `environment = "mainnet"` (the environment also picks the
    signing domain: `connectors.derive.signing.DOMAINS`). `url`/`rest_url` override the endpoints
    (a local simulator). Credentials are never here: see `connectors.derive.signing.Credentials`.

    `ticker_interval` is the `ticker_slim` interval in ms; `book_group`/`book_depth` pick the
    `orderbook.{instrument}.{group}.{depth}` channel (§3.4); `signature_ttl_s` is how long an
    order's signature, hence the order, lives (§3.6: more than 5 minutes).
    """

    environment: Literal["testnet", "mainnet"] = "testnet"
    url: str | None = None
    rest_url: str | None = None
    currencies: list[str] = attrs.field(factory=lambda: ["BTC", "ETH"])
    instrument_types: list[InstrumentType] = attrs.field(factory=lambda: ["option", "perp"])
    ticker_interval: Literal[100, 1000] = 1000
    book_group: int = attrs.field(default=1, validator=_one_of(1, 10, 100))
    book_depth: int = attrs.field(default=10, validator=_one_of(1, 10, 20, 100))
    signature_ttl_s: int = attrs.field(default=3600, validator=_at_least(330))
    fees: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url or ENDPOINTS[self.environment][0]

    @property
    def http_url(self) -> str:
        return (self.rest_url or ENDPOINTS[self.environment][1]).rstrip("/")


class DerivePlugin:
    """The engine's handle on Derive (entry point `tradingd.venues: derive`)."""

    name = VENUE
    Settings = DeriveSettings

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import DeriveDecoder

        decoder: Decoder = DeriveDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> DeriveFees:
        return DeriveFees.from_config(overrides)

    def generate_sample(self, path: Path, options: Mapping[str, Any]) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options)
        return frames


PLUGIN = DerivePlugin()
