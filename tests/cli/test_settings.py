"""The seam between `config/` and the engine: the CLI turns a loaded config into the engine's
typed settings (`tradingd.cli.settings`), and `tradingd catalog` finds the catalog by venue
(`--venue`, default the one installed) rather than by a name written in the CLI."""

from __future__ import annotations

import typing
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from tradingd.cli.main import main
from tradingd.cli.settings import daemon_settings
from tradingd.config import DaemonConfig, load_config
from tradingd.engine.daemon.service import Daemon, daemon_paths, run_daemon
from tradingd.engine.daemon.settings import DaemonOptions, DaemonSettings, RecordingOptions
from tradingd.engine.model.risk import Limits
from tradingd.engine.venue.catalog import CatalogSettings

PAPER = """\
mode = "paper"
[venues.deribit]
currencies = ["BTC"]
[venues.polymarket]
[catalog]
polymarket_cache = "~/pm/catalog.jsonl"
refresh_after_s = 600
gamma_url = "http://127.0.0.1:9/gamma"
[recording]
enabled = true
dir = "rec"
[daemon]
state_dir = "state"
shutdown_timeout_s = 3
foreign_orders = "cancel"
[risk]
max_position = 100
[risk.instruments."BTC-PERPETUAL"]
max_order_size = 10
[[strategies]]
name = "mom"
class = "momentum"
on_failure = "leave"
[strategies.risk]
max_open_orders = 4
[[strategies]]
name = "off"
class = "momentum"
enabled = false
"""


def test_a_paper_config_becomes_the_daemons_typed_settings(tmp_path: Path) -> None:
    path = tmp_path / "paper.toml"
    path.write_text(PAPER, encoding="utf-8")
    settings = daemon_settings(load_config(path))
    assert settings.mode == "paper" and settings.config_path == path
    assert [s.name for s in settings.strategies] == ["mom"]
    assert sorted(settings.venues) == ["deribit", "polymarket"]
    assert settings.options == DaemonOptions(
        state_dir="state", shutdown_timeout_s=3.0, foreign_orders="cancel"
    )
    assert settings.recording == RecordingOptions(tmp_path / "rec")
    assert settings.engine_limits.default == Limits(max_position=Decimal(100))
    assert settings.engine_limits.for_instrument("BTC-PERPETUAL").max_order_size == Decimal(10)
    assert dict(settings.strategy_limits)["mom"].default == Limits(max_open_orders=4)
    assert dict(settings.on_failure) == {"mom": "leave"}
    # `[catalog]` as each venue's catalog reads it: its cache resolved ("~" expanded, relative to
    # the config's folder), its URL; a venue the keys do not name gets the defaults.
    assert settings.catalogs["polymarket"] == CatalogSettings(
        cache=Path("~/pm/catalog.jsonl").expanduser(),
        refresh_after_s=600.0,
        source_url="http://127.0.0.1:9/gamma",
    )
    assert settings.catalogs["deribit"] == CatalogSettings(refresh_after_s=600.0)
    relative = PAPER.replace("~/pm/catalog.jsonl", "pm.jsonl")
    path.write_text(relative, encoding="utf-8")
    assert daemon_settings(load_config(path)).catalogs["polymarket"].cache == tmp_path / "pm.jsonl"


def test_a_venue_without_a_table_of_its_own_still_reads_the_catalog_table(tmp_path: Path) -> None:
    """A strategy subscribing to Polymarket connects it with no `[venues.polymarket]` table (the
    engine connects every venue a strategy subscribes to): its catalog still reads `[catalog]`,
    not the defaults (the user's cache, not ~/.cache; the configured Gamma URL)."""
    path = tmp_path / "paper.toml"
    path.write_text(PAPER.replace("[venues.polymarket]\n", ""), encoding="utf-8")
    settings = daemon_settings(load_config(path))
    assert "polymarket" not in settings.venues
    assert settings.catalogs["polymarket"] == CatalogSettings(
        cache=Path("~/pm/catalog.jsonl").expanduser(),
        refresh_after_s=600.0,
        source_url="http://127.0.0.1:9/gamma",
    )


def test_the_daemon_is_given_typed_settings_not_a_config() -> None:
    """The engine's entry points name their settings' types (no `Any`, no config object)."""
    assert typing.get_type_hints(Daemon.__init__)["settings"] is DaemonSettings
    assert typing.get_type_hints(run_daemon)["settings"] is DaemonSettings
    assert typing.get_type_hints(daemon_paths)["daemon"] is DaemonOptions


def test_the_daemon_options_are_the_daemon_table_field_for_field() -> None:
    """`daemon_options` copies `[daemon]` by name: the two classes keep the same fields."""
    assert [f.name for f in attrs.fields(DaemonConfig)] == [f.name for f in attrs.fields(DaemonOptions)]
    assert attrs.asdict(DaemonConfig()) == attrs.asdict(DaemonOptions())


def test_catalog_takes_the_venue_of_an_installed_catalog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cache = tmp_path / "none.jsonl"
    assert main(["catalog", "search", "bitcoin", "--venue", "deribit", "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err == "tradingd: error: no catalog for venue 'deribit' (installed: polymarket)\n"
    # The default is the one catalog installed: here it has no cache yet, and says so.
    assert main(["catalog", "search", "bitcoin", "--cache", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"no catalog cache at {cache}" in err and err.count("\n") == 1
