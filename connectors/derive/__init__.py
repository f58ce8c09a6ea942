"""Derive (formerly Lyra; options, perpetuals and spot in USDC): API v2, JSON-RPC over one
WebSocket (VENUES.md §3).

Modules, as in every venue package: `codec` (frames -> events), `instruments` (definitions, names
and the signing side table), `fees` (the fee schedule and `max_fee`), `signing` (login and order
signatures), `generator` (synthetic recordings for backtests and the simulator), `settings`
(`[venues.derive]`), `stream` (the live session), `execution` (signed orders), `simulator` (a
local Derive for tests and `tradingd simulate derive`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tradingd.engine.venue import (
    CatalogSettings,
    ConfigError,
    Decoder,
    FrameSource,
    InstrumentRegistry,
    LiveVenue,
    SubscriptionSource,
    VenuePlugin,
    VenueSink,
)

from .fees import DeriveFees
from .instruments import VENUE
from .settings import ENDPOINTS, DeriveSettings

__all__ = ["ENDPOINTS", "PLUGIN", "DerivePlugin", "DeriveSettings"]


class DerivePlugin(VenuePlugin):
    """The engine's handle on Derive (entry point `tradingd.venues: derive`)."""

    name = VENUE
    Settings = DeriveSettings
    data_formats: tuple[str, ...] = ()  # recordings only (`tradingd record`)

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import DeriveDecoder

        decoder: Decoder = DeriveDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> DeriveFees:
        return DeriveFees.from_config(overrides)

    def live(
        self,
        settings: DeriveSettings,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        trading: bool,
        environ: Mapping[str, str],
        **options: Any,
    ) -> LiveVenue:
        """A `DeriveSession` (a `LiveVenue`). Trading needs credentials (from `environ`:
        `DERIVE_WALLET`, `DERIVE_SESSION_KEY`, `DERIVE_SUBACCOUNT_ID`, or their `_FILE`
        variants) and logs in; market data alone (paper mode) is public and logs in to nothing.
        `options` are injected (tests: `connect`, `clock`)."""
        from .signing import Credentials
        from .stream import DeriveSession

        credentials = None
        if trading:
            credentials = Credentials.from_env(environ)
            if not settings.private:
                raise ConfigError(
                    "live trading needs the private channels: remove `private = false`",
                    path="venues.derive.private",
                )
        else:
            settings = attrs.evolve(settings, private=False)
        return DeriveSession(
            settings, registry=registry, router=router, sink=sink, credentials=credentials, **options
        )

    def open_data(self, path: Path, format: str) -> FrameSource:
        """None to open: Derive reads recordings only (`data_formats` is empty)."""
        raise ConfigError(f"{VENUE} reads no {format!r} data (only recordings)", path="backtest.data.format")

    def open_catalog(self, settings: CatalogSettings | None) -> None:
        """None: Derive's instruments come with the connection (no market catalog)."""
        return

    definition_markers: tuple[bytes, ...] = ()  # its recordings define no catalog markets

    def recorded_catalog(self, frames: Iterable[tuple[int | None, bytes]]) -> None:
        """None: no market catalog (and `definition_markers` is empty: nothing is scanned)."""
        return


PLUGIN = DerivePlugin()
