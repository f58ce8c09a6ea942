"""Simulators are found by venue name in their own entry point group (`tradingd.simulators`),
apart from the venue plugins: a venue without a simulator, or a simulator missing a member of
`SimulatorPlugin`, is one line, not an AttributeError later."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tradingd.engine import ConfigError
from tradingd.engine.sim import plugins
from tradingd.engine.venue import plugins as venue_plugins
from tradingd.simulators.deribit import SIMULATOR


class _NoBanner:
    """Deribit's simulator without `banner`."""

    def __getattr__(self, name: str) -> Any:
        if name == "banner":
            raise AttributeError(name)
        return getattr(SIMULATOR, name)


def test_a_simulator_that_lacks_a_member_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint("thirdparty", "thirdparty_sim:SIMULATOR", "tradingd.simulators")
    monkeypatch.setattr(EntryPoint, "load", lambda self: _NoBanner())
    monkeypatch.setattr(venue_plugins, "entry_points", lambda group: [entry])  # the shared loader's
    with pytest.raises(ConfigError) as refused:
        plugins.load_simulator("thirdparty")
    assert "lacks banner" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_venue_without_a_simulator_is_named_with_the_simulated_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"no simulator for venue 'nowhere' \(simulated: deribit, derive, polymarket\)"
    ):
        plugins.load_simulator("nowhere")


def test_the_bundled_simulators_follow_the_protocol() -> None:
    assert plugins.available_simulators() == ["deribit", "derive", "polymarket"]
    for name in plugins.available_simulators():
        assert plugins.load_simulator(name).name == name
