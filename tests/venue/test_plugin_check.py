"""A venue plugin is checked against the SPI when it is loaded: one that lacks a member of
`VenuePlugin` is one line naming what it lacks, not an AttributeError later (e.g. a backtest of
a third-party plugin without a data reader). So is the `Decoder` a backtest makes of it."""

from __future__ import annotations

import inspect
import sys
import typing
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import ConfigError
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.venue import Decoder, plugins


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


class _Forwarding:
    """A decoder that provides Deribit's decoder's members through `__getattr__` (a wrapper, a
    proxy), but for those it `hides`."""

    hides: frozenset[str] = frozenset()

    def __init__(self, registry: InstrumentRegistry) -> None:
        self._real = PLUGIN.decoder(registry)

    def __getattr__(self, name: str) -> Any:
        if name in self.hides:
            raise AttributeError(name)
        return getattr(self._real, name)


class _OldDecoder(_Forwarding):
    """Deribit's decoder as a third-party one written before `Decoder.gapped_books` was declared."""

    hides = frozenset({"gapped_books"})


class _ForwardingPlugin:
    """Deribit's plugin through `__getattr__`, making `makes` decoders."""

    makes: type[_Forwarding] = _Forwarding

    def decoder(self, registry: InstrumentRegistry) -> _Forwarding:
        return self.makes(registry)

    def __getattr__(self, name: str) -> Any:
        return getattr(PLUGIN, name)


class _OldPlugin(_ForwardingPlugin):
    """Deribit's plugin, making `_OldDecoder`s."""

    makes = _OldDecoder


def test_a_backtest_refuses_a_decoder_that_lacks_a_member_of_the_spi_in_one_line(tmp_path: Path) -> None:
    """The backtest reads `gapped_books` for its gap warning (and the event cache for its
    entries): a decoder without it is refused when the backtest makes it, naming what it lacks,
    not taken for one with no gaps by book nor an AttributeError at the run's end."""
    plugin: Any = _OldPlugin()
    source = DataSource("deribit", tmp_path / "x.rec")
    with pytest.raises(ConfigError) as refused:
        BacktestKernel({"deribit": plugin}, [source], [], BacktestSettings())
    text = str(refused.value)
    assert "lacks gapped_books" in text and "_OldDecoder" in text and "'deribit'" in text, text
    assert "\n" not in text


def test_the_bundled_decoders_follow_the_spi() -> None:
    for name in ("deribit", "derive", "polymarket"):
        decoder = plugins.checked_decoder(plugins.load_venue(name), InstrumentRegistry())
        assert isinstance(decoder, Decoder) and not decoder.gapped_books


_ABSENT = object()


@pytest.fixture
def static_protocol_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`isinstance` against a runtime-checkable protocol as Python 3.12 does it: the members
    looked up statically (`inspect.getattr_static`), never through `__getattr__`."""
    if sys.version_info >= (3, 12):
        return

    def check(cls: Any, instance: Any) -> bool:
        attrs = typing._get_protocol_attrs(cls)  # type: ignore[attr-defined]
        return all(inspect.getattr_static(instance, a, _ABSENT) is not _ABSENT for a in attrs)

    monkeypatch.setattr(type(Decoder), "__instancecheck__", check)


@pytest.mark.usefixtures("static_protocol_checks")
def test_a_decoder_and_a_plugin_with_their_members_through_getattr_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What decides is what the object lacks (`hasattr`, which asks `__getattr__`), not
    `isinstance`, which stopped asking it in Python 3.12 and so refused such an object while
    saying it lacked nothing."""
    assert not isinstance(_Forwarding(InstrumentRegistry()), Decoder)  # as on 3.12
    plugin: Any = _ForwardingPlugin()
    decoder = plugins.checked_decoder(plugin, InstrumentRegistry())
    assert isinstance(decoder, _Forwarding)
    entry = EntryPoint("thirdparty", "thirdparty_venue:PLUGIN", "tradingd.venues")
    monkeypatch.setattr(EntryPoint, "load", lambda self: plugin)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [entry])
    assert plugins.load_venue("thirdparty") is plugin


@typing.runtime_checkable
class _Base(typing.Protocol):
    name: str

    def open_data(self) -> Any: ...


@typing.runtime_checkable
class _Derived(_Base, typing.Protocol):
    def decoder(self) -> Any: ...


class _OnlyDerived:
    """`_Derived`'s own member, none of its base's."""

    def decoder(self) -> Any:
        return None


class _Whole(_OnlyDerived):
    name = "whole"

    def open_data(self) -> Any:
        return None


def test_a_protocol_deriving_from_another_is_checked_for_its_bases_members_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A protocol that inherits another (like `VenueExecution` its `ExecutionClient` and
    `Reconciler`): an object lacking a member of the base, a method or an annotated attribute, is
    refused naming it, not taken for having only the derived protocol's own."""
    entry = EntryPoint("thirdparty", "thirdparty_venue:PLUGIN", "tradingd.venues")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [entry])
    check = ("tradingd.venues", "thirdparty", _Derived, "venue plugin", "_Derived")
    monkeypatch.setattr(EntryPoint, "load", lambda self: _OnlyDerived())
    with pytest.raises(ConfigError) as refused:
        plugins.load_checked(*check)
    assert str(refused.value).endswith("is no _Derived: it lacks name, open_data"), refused.value
    whole = _Whole()
    monkeypatch.setattr(EntryPoint, "load", lambda self: whole)
    assert plugins.load_checked(*check) is whole
