"""Deribit refuses a subscribe asking for `raw` on an unauthenticated connection, the whole
batch (13778, cryptofeed issue #768; the simulator does the same). Market data without
credentials at `interval = "raw"` would then get no channel at all, reported only channel by
channel: it is a configuration error, said once at start."""

from __future__ import annotations

from typing import Any

import pytest

from tradingd.connectors.deribit import PLUGIN
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import ConfigError
from tradingd.engine.venue import InstrumentRegistry


def _live(settings: DeribitSettings, environ: dict[str, str]) -> Any:
    unused: Any = None  # neither is touched before connecting
    return PLUGIN.live(
        settings, registry=InstrumentRegistry(), router=unused, sink=unused, trading=False, environ=environ
    )


def test_raw_channels_without_credentials_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r'interval = "raw" needs credentials') as refused:
        _live(DeribitSettings(interval="raw"), {})
    assert refused.value.path == "venues.deribit.interval"


def test_raw_channels_with_credentials_and_100ms_without_are_accepted() -> None:
    # Long, unlikely values: a credential read is registered with the log redactor for the
    # whole process, and a short one ("secret") would be redacted inside every later log key.
    keys = {
        "DERIBIT_CLIENT_ID": "raw-interval-test-id",
        "DERIBIT_CLIENT_SECRET": "raw-interval-test-secret-0f3c9a",
    }
    assert _live(DeribitSettings(interval="raw"), keys) is not None
    assert _live(DeribitSettings(), {}) is not None
