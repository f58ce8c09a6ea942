"""The compiled loop's ticker path (`_kernel.c` `on_ticker`: a ticker kept and its index price
stored in C where the outcome is plain, `MarketState.on_ticker` for the rest) leaves the market
as the method does: random tickers (index prices None, usable, 0, negative, NaN, infinite, an
int; instruments known, unknown, known later; listeners that record and one that fails) fed to
two markets, one by the method and one by the compiled path, and compared after each."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.helpers import OPTION, PERP, ticker
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.model.market import MarketState

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tradingd.engine.backtest._kernel") is None,
    reason="the compiled loop is not built",
)

_INDEX = st.sampled_from([None, None, 90_000.0, 91_000.5, 0.0, -1.0, math.nan, math.inf, 90_000])
_op = st.one_of(
    st.tuples(st.just("ticker"), st.sampled_from([PERP.symbol, OPTION.symbol]), _INDEX, st.integers(1, 9)),
    st.tuples(st.just("register"), st.sampled_from([PERP, OPTION])),
    st.tuples(st.just("listen"), st.booleans()),
)


def _digest(m: MarketState) -> Any:
    return (
        list(m.tickers.items()),  # order and identity: the same ticker objects, set in the same order
        repr(list(m.index.items())),  # repr: NaN compares unequal to itself
        list(m._rate_key.items()),
        m.listener_errors,
    )


def _recorder(log: list[tuple[str, str]]) -> Callable[[str, str], None]:
    def listener(venue: str, currency: str) -> None:
        log.append((venue, currency))

    return listener


def _failing(venue: str, currency: str) -> None:
    raise RuntimeError(f"a ledger's bug ({venue} {currency})")


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_op, max_size=40))
def test_the_compiled_ticker_path_leaves_the_market_as_the_method(ops: list[tuple[Any, ...]]) -> None:
    from tradingd.engine.backtest import _kernel

    calls: dict[str, list[tuple[str, str]]] = {"py": [], "c": []}
    markets = {"py": MarketState(InstrumentRegistry()), "c": MarketState(InstrumentRegistry())}
    for op in ops:
        if op[0] == "ticker":
            _, inst, index, ms = op
            t = ticker(inst, ms, index=index)
            markets["py"].on_ticker(t)
            _kernel.on_ticker(markets["c"], markets["c"].on_ticker, t)
        elif op[0] == "register":
            for m in markets.values():
                m.registry.add(op[1])
        else:
            for name, m in markets.items():
                if not op[1]:
                    m.on_first_rate.clear()
                    continue
                m.on_first_rate.append(_recorder(calls[name]))
                m.on_first_rate.append(_failing)  # counted (`listener_errors`), the others still told
        assert _digest(markets["c"]) == _digest(markets["py"])
        assert calls["c"] == calls["py"]


def test_the_common_case_is_done_in_c() -> None:
    """A usable rate known before: the method is not called (it is, for a first rate)."""
    from tradingd.engine.backtest import _kernel

    m = MarketState(InstrumentRegistry([PERP]))
    called: list[Any] = []

    def method(t: Any) -> None:
        called.append(t)
        m.on_ticker(t)

    first, second, bare = (
        ticker(PERP.symbol, 1, index=90_000.0),
        ticker(PERP.symbol, 2, index=90_001.0),
        ticker(),
    )
    _kernel.on_ticker(m, method, first)
    _kernel.on_ticker(m, method, second)
    _kernel.on_ticker(m, method, bare)  # no index: kept, nothing else
    assert called == [first]
    assert m.tickers == {("deribit", PERP.symbol): second, ("deribit", OPTION.symbol): bare}
    assert m.index == {("deribit", "BTC"): 90_001.0}
    _kernel.on_ticker(None, method, ticker(PERP.symbol, 3, index=1.0))  # no market: the method
    assert len(called) == 2 and m.index == {("deribit", "BTC"): 1.0}


_UAF = """
from tradingd.engine.backtest import _kernel
from tradingd.engine.model.instruments import InstrumentRegistry
from tradingd.engine.model.market import MarketState
m = MarketState(InstrumentRegistry())
class Ev:
    index = None
    instrument = "i"
    @property
    def venue(self):
        m.tickers = {}  # drops the dict the C path read from the market's slot
        [dict() for _ in range(100)]
        return "v"
for _ in range(3):
    m.tickers = {("x", str(i)): i for i in range(1000)}
    try:
        _kernel.on_ticker(m, m.on_ticker, Ev())
    except TypeError as exc:
        print("refused", exc)
    else:
        print("taken")
"""


def test_the_ticker_helper_refuses_an_event_of_another_class() -> None:
    """`_kernel.on_ticker` takes any object; the C path reads the market's slots around the
    event's attribute reads, which on another class may run code that replaces them (the loop
    hands it exact `Ticker`s only). In a child: before the fix this crashed the interpreter."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _UAF], capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().splitlines() == ["refused _kernel: a Ticker is expected, not 'Ev'"] * 3


class _OtherMarket:
    """A market of another class whose slots of the names the C path reads lie at other offsets
    than `MarketState`'s (there `tickers` is where `MarketState` has `_rate_key`)."""

    __slots__ = ("tickers", "index", "_rate_key")  # noqa: RUF023 (the order is the point)

    def __init__(self) -> None:
        self.tickers: dict[Any, Any] = {}
        self.index: dict[Any, Any] = {}
        self._rate_key: dict[Any, Any] = {}

    def on_ticker(self, t: Any) -> None:
        raise AssertionError("the C path takes this ticker")


def test_a_market_class_learnt_meanwhile_does_not_leave_its_offsets_to_the_ticker_path() -> None:
    """The ticker path reads the event's attributes before the market's slots; code they run
    (here a property over `Ticker.index`) may make another call learn another market class's
    offsets: the path learns its market's again before reading the slots, and leaves the market
    as the method does."""
    import inspect

    from tradingd.engine.backtest import _kernel
    from tradingd.engine.model.events import Ticker

    m, twin = (MarketState(InstrumentRegistry([PERP])) for _ in range(2))
    other = _OtherMarket()
    original = inspect.getattr_static(Ticker, "index")
    nested = [False]

    def index(ev: Any) -> Any:
        if not nested[0]:
            nested[0] = True
            _kernel.on_ticker(other, other.on_ticker, ticker(OPTION.symbol, 9))
        return original.__get__(ev, Ticker)

    t = ticker(PERP.symbol, 1)  # no index: the C path keeps it in `tickers`, nothing else
    Ticker.index = property(index)  # type: ignore[assignment]
    try:
        _kernel.on_ticker(m, m.on_ticker, t)
    finally:
        Ticker.index = original
    assert nested[0] and list(other.tickers) == [("deribit", OPTION.symbol)]
    twin.on_ticker(t)
    assert _digest(m) == _digest(twin)
