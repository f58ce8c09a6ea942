"""A venue plugin is checked against the SPI when it is loaded: one that lacks a member of
`VenuePlugin` is one line naming what it lacks, not an AttributeError later (e.g. a backtest of
a third-party plugin without a data reader)."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import ConfigError
from tradingd.engine.venue import plugins


class _NoReader:
    """Deribit's plugin without `open_data` and `open_catalog`."""

    def __getattr__(self, name: str) -> Any:
        if name in {"open_data", "open_catalog"}:
            raise AttributeError(name)
        return getattr(PLUGIN, name)


def test_a_plugin_that_lacks_a_member_of_the_spi_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = EntryPoint("thirdparty", "thirdparty_venue:PLUGIN", "tradingd.venues")
    monkeypatch.setattr(EntryPoint, "load", lambda self: _NoReader())
    monkeypatch.setattr(plugins, "entry_points", lambda group: [entry])
    with pytest.raises(ConfigError) as refused:
        plugins.load_venue("thirdparty")
    assert "lacks open_catalog, open_data" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_bundled_plugins_follow_the_spi() -> None:
    for name in ("deribit", "derive", "polymarket"):
        assert plugins.load_venue(name).name == name
