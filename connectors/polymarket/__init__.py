"""Polymarket (binary outcome tokens on the CLOB V2): VENUES.md §2.

Modules, as in every venue package: `codec` (frames -> events), `book` (the local book of one
token), `instruments` (definitions, and the `Outcomes` table signing needs), `fees` (the V2 fee
schedule), `signing` (CLOB V2 orders, L1/L2 auth headers, credentials), `generator` (synthetic
recordings for backtests and the simulator), `settings` (`[venues.polymarket]`), `stream` (the
live market and user connections), `execution` (orders over REST), `simulator` (a local CLOB).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs

from tradingd.engine.venue import (
    AuthError,
    CatalogSettings,
    ConfigError,
    Decoder,
    FrameSource,
    InstrumentRegistry,
    LiveVenue,
    MarketCatalog,
    SubscriptionSource,
    VenuePlugin,
    VenueSink,
)

from .fees import PolymarketFees
from .instruments import VENUE
from .settings import PolymarketSettings

__all__ = ["PLUGIN", "PolymarketPlugin", "PolymarketSettings"]


class PolymarketPlugin(VenuePlugin):
    """The engine's handle on Polymarket (entry point `tradingd.venues: polymarket`)."""

    name = VENUE
    Settings = PolymarketSettings
    data_formats: tuple[str, ...] = ()  # recordings only (`tradingd record`)

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import PolymarketDecoder

        decoder: Decoder = PolymarketDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> PolymarketFees:
        return PolymarketFees.from_config(overrides)

    def live(
        self,
        settings: PolymarketSettings,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        trading: bool,
        environ: Mapping[str, str],
        **options: Any,
    ) -> LiveVenue:
        """A `PolymarketSession` (a `LiveVenue`). Trading needs the wallet key and the API
        credentials (from `environ`: `POLYMARKET_PRIVATE_KEY`, `POLYMARKET_API_KEY`, `_SECRET`,
        `_PASSPHRASE`, or their `_FILE` variants); market data alone needs nothing. `options`
        are injected (tests: `connect`, `http`, `clock`)."""
        from .signing import Credentials
        from .stream import PolymarketSession

        credentials = None
        if trading:
            credentials = Credentials.from_env(environ)
            if credentials.api is None:
                raise AuthError(
                    "live trading on Polymarket needs the API credentials: set POLYMARKET_API_KEY, "
                    "POLYMARKET_API_SECRET and POLYMARKET_API_PASSPHRASE (create them once with the "
                    "wallet key: POST /auth/api-key)",
                    venue=VENUE,
                )
            if not settings.private:
                raise ConfigError(
                    "live trading needs the user channel: remove `private = false`",
                    path="venues.polymarket.private",
                )
        else:
            settings = attrs.evolve(settings, private=False)
        return PolymarketSession(
            settings, registry=registry, router=router, sink=sink, credentials=credentials, **options
        )

    def open_data(self, path: Path, format: str) -> FrameSource:
        """None to open: Polymarket reads recordings only (`data_formats` is empty)."""
        raise ConfigError(f"{VENUE} reads no {format!r} data (only recordings)", path="backtest.data.format")

    # What a recorded frame that defines markets holds (`catalog.markets_from_definitions`): Gamma
    # and CLOB market objects both have a `"question"`; of the market and user channels' frames only
    # the rare `new_market` event has one (parsed, then passed over). A recording is scanned for
    # it as bytes (cli/recorded.py): one marker, one pass of `bytes.find` (about 3 GB/s).
    definition_markers: tuple[bytes, ...] = (b'"question"',)

    def recorded_catalog(self, frames: Iterable[tuple[int | None, bytes]]) -> MarketCatalog:
        """The markets the recorded Gamma and CLOB market objects define
        (`catalog.markets_from_definitions`), in a `StaticCatalog` that reads crypto price
        markets as the cache's catalog does (`pricemarkets.classify`)."""
        import datetime as dt

        from tradingd.engine.venue import StaticCatalog

        from .catalog import markets_from_definitions
        from .pricemarkets import classify

        found = markets_from_definitions(frames)
        updated = None if found.last_ts is None else dt.datetime.fromtimestamp(found.last_ts / 1e9, dt.UTC)
        return StaticCatalog(VENUE, found.markets, recognize=classify, updated=updated)

    def open_catalog(self, settings: CatalogSettings | None) -> AbstractAsyncContextManager[MarketCatalog]:
        """The Gamma market catalog (`catalog.PolymarketCatalog`): its cache file (None: the user
        cache folder), its Gamma URL (None: Polymarket's) and how often it refreshes."""
        from .catalog import PolymarketCatalog
        from .gamma import DEFAULT_GAMMA_URL

        if settings is None:
            return PolymarketCatalog.open(None)
        return PolymarketCatalog.open(
            settings.cache,
            gamma_url=settings.source_url or DEFAULT_GAMMA_URL,
            refresh_after_s=settings.refresh_after_s,
        )


PLUGIN = PolymarketPlugin()
