"""Deribit (options, futures, perpetuals): JSON-RPC 2.0 over one WebSocket (VENUES.md §1).

Modules, as in every venue package: `codec` (frames -> events), `instruments` (definitions),
`fees` (the fee schedule), `generator` (synthetic recordings for backtests and the simulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import InstrumentRegistry
from engine._plugins import Decoder

from .fees import DeribitFees
from .instruments import VENUE

__all__ = ["PLUGIN", "DeribitPlugin"]


class DeribitPlugin:
    """The engine's handle on Deribit (entry point `tradingd.venues: deribit`)."""

    name = VENUE

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import DeribitDecoder

        decoder: Decoder = DeribitDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> DeribitFees:
        return DeribitFees.from_config(overrides)

    def generate_sample(self, path: Path, options: Mapping[str, Any]) -> int:
        from .generator import generate_sample

        frames: int = generate_sample(path, options)
        return frames


PLUGIN = DeribitPlugin()
