"""Deribit (options, futures, perpetuals): JSON-RPC 2.0 over one WebSocket (VENUES.md §1).

Modules, as in every venue package: `codec` (frames -> events), `instruments` (definitions),
`fees` (the fee schedule), `generator` (synthetic recordings for backtests and the simulator).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    SubscriptionSource,
    VenuePlugin,
    VenueSink,
)

from .fees import DeribitFees
from .instruments import VENUE
from .settings import DeribitSettings

__all__ = ["PLUGIN", "DeribitPlugin"]


class DeribitPlugin(VenuePlugin):
    """The engine's handle on Deribit (entry point `tradingd.venues: deribit`)."""

    name = VENUE
    Settings = DeribitSettings
    # `[[backtest.data]] format = ...`: Tardis.dev CSV files (`tardis` infers the dataset from
    # each file's header); see `connectors/deribit/tardis.py`.
    data_formats: tuple[str, ...] = (
        "tardis",
        "tardis-options_chain",
        "tardis-incremental_book_L2",
        "tardis-trades",
        "tardis-quotes",
        "tardis-derivative_ticker",
    )

    def decoder(self, registry: InstrumentRegistry) -> Decoder:
        from .codec import DeribitDecoder

        decoder: Decoder = DeribitDecoder(registry)
        return decoder

    def fee_model(self, overrides: Mapping[str, Any]) -> DeribitFees:
        return DeribitFees.from_config(overrides)

    def live(
        self,
        settings: DeribitSettings,
        *,
        registry: InstrumentRegistry,
        router: SubscriptionSource,
        sink: VenueSink,
        trading: bool,
        environ: Mapping[str, str],
        **options: Any,
    ) -> LiveVenue:
        """A `DeribitSession` (a `LiveVenue`). Trading needs credentials (from `environ`:
        `DERIBIT_CLIENT_ID`/`DERIBIT_CLIENT_SECRET`, or `DERIBIT_KEY`); market data alone does
        not, and uses them when present. `options` are injected (tests: `connect`, `clock`)."""
        from .signing import Credentials
        from .stream import DeribitSession

        credentials = None
        if trading:
            credentials = Credentials.from_env(environ)
            if not settings.private:
                raise ConfigError(
                    "live trading needs the private channels: remove `private = false`",
                    path="venues.deribit.private",
                )
        else:
            try:
                credentials = Credentials.from_env(environ)
            except AuthError:
                credentials = None
            settings = attrs.evolve(settings, private=False)
        if credentials is None and settings.interval == "raw":
            # Deribit refuses a subscribe asking for `raw` on an unauthenticated connection,
            # whole (13778): every channel of the batch, the 100 ms ones with them.
            raise ConfigError(
                'interval = "raw" needs credentials: Deribit serves raw channels only to an '
                "authenticated connection (13778); set DERIBIT_CLIENT_ID and DERIBIT_CLIENT_SECRET "
                'or use interval = "100ms"',
                path="venues.deribit.interval",
            )
        return DeribitSession(
            settings, registry=registry, router=router, sink=sink, credentials=credentials, **options
        )

    def open_data(self, path: Path, format: str) -> FrameSource:
        """A reader of `(receive time ns, frame)` for a data file of one of `data_formats`."""
        from .tardis import TardisReader, dataset_of_format

        try:
            dataset = dataset_of_format(format)
        except ValueError as exc:
            raise ConfigError(str(exc), path="backtest.data.format") from None
        return TardisReader(path, dataset)

    def open_catalog(self, settings: CatalogSettings | None) -> None:
        """None: Deribit's instruments come with the connection (no market catalog)."""
        return

    definition_markers: tuple[bytes, ...] = ()  # its recordings define no catalog markets

    def recorded_catalog(self, frames: Iterable[tuple[int | None, bytes]]) -> None:
        """None: no market catalog (and `definition_markers` is empty: nothing is scanned)."""
        return


PLUGIN = DeribitPlugin()
