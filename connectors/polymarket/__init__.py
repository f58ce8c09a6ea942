"""Polymarket (binary outcome tokens on the CLOB V2): VENUES.md §2.

Modules, as in every venue package: `codec` (frames -> events), `book` (the local book of one
token), `instruments` (definitions, and the `Outcomes` table signing needs), `fees` (the V2 fee
schedule), `signing` (CLOB V2 orders, L1/L2 auth headers, credentials), `generator` (synthetic
recordings for backtests and the simulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from engine import InstrumentRegistry
from engine._plugins import Decoder

from .fees import PolymarketFees
from .instruments import VENUE

__all__ = ["PLUGIN", "PolymarketPlugin", "PolymarketSettings"]


@attrs.frozen
class PolymarketSettings:
    """`[venues.polymarket]`. For now only `fees` (the `PolymarketFees` overrides); the
    connection settings (endpoints, keepalive, reconnects) come with the live connector.
    Credentials are never here: see `connectors.polymarket.signing.Credentials`."""

    fees: dict[str, Any] = attrs.field(factory=dict)


class PolymarketPlugin:
    """The engine's handle on Polymarket (entry point `tradingd.venues: polymarket`)."""

    name = VENUE
    Settings = PolymarketSettings

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import PolymarketDecoder

        decoder: Decoder = PolymarketDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> PolymarketFees:
        return PolymarketFees.from_config(overrides)

    def generate_sample(self, path: Path, options: Mapping[str, Any]) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options)
        return frames


PLUGIN = PolymarketPlugin()
