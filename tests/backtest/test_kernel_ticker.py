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
