"""The compiled replay loop (engine/backtest/_kernel.c) is the Python loop, byte for byte: the
same report JSON, the same log lines, the same strategy observations, on the bundled sample's
kind of data and on hostile data (malformed frames, bare and bad lines, gaps, unread channels),
with strategies that do odd things: raise, raise `SystemExit` and `KeyboardInterrupt`, fail in
`on_stop` after that, await what a backtest cannot simulate, replace their `on_event` with
something that is not a coroutine function, (un)subscribe and fail in the middle of a fan-out
(the routes change while an event is being delivered), park on orders and sleeps while events
wait in their mailbox. Each scenario runs in a child process: a crash there is a failed test,
not a dead test run.

The tracebacks are compared exactly too: a strategy's error or failure is logged with the
strategy's own frames only (the kernel's frame that stepped it, `_replay` in Python or the
compiled `loop` called from it, is not in it)."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.support import deribit_frames as dfr
from tests.support.backtests import config_span
from tests.support.child import in_a_child
from tests.support.log_streams import _Stream
from tradingd.engine import MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.backtest.report import report_dict
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.events import Side
from tradingd.engine.model.orders import OrderRequest
from tradingd.engine.store import format_ts
from tradingd.engine.venue.plugins import load_venue

T0 = dfr.T0_MS * 1_000_000
PERP = "BTC-PERPETUAL"
_WALL = ("timestamp", "duration_s", "elapsed_s", "wall_s", "wall_ts")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tradingd.engine.backtest._kernel") is None,
    reason="the compiled loop is not built",
)


class _Odd:
    def __await__(self) -> Any:
        yield "not the context's"


class _NotIterator:
    def __await__(self) -> Any:
        return 42


class Odd(Strategy):
    """Does, on its `n`-th event, the odd thing `what` (then behaves, and trades a little)."""

    def __init__(self, name: str, what: str, every: int, subs: list[Subscription]) -> None:
        super().__init__(name)
        self.what, self.every, self.subs = what, every, subs
        self.n = 0
        self.seen: list[Any] = []

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_start(self) -> None:
        if self.what == "not-a-coroutine":
            self.on_event = self._plain  # type: ignore[method-assign,assignment]
        elif self.what == "awaitable-object":
            self.on_event = self._awaitable  # type: ignore[method-assign]

    def _plain(self, event: MarketEvent) -> int:
        self.seen.append(("plain", event.ts_local))
        return 1

    def _awaitable(self, event: MarketEvent) -> Any:
        self.seen.append(("awaitable", event.ts_local))
        return _NotIterator() if self.n % 2 else iter(())

    async def on_event(self, event: MarketEvent) -> None:
        self.n += 1
        self.seen.append((type(event).__name__, event.instrument, event.ts_local, self.n))
        if self.n % self.every:
            return
        what = self.what
        if what == "raise":
            raise ValueError(f"strategy bug at {self.n}")
        if what == "exit":
            raise SystemExit(3)
        if what == "interrupt":
            raise KeyboardInterrupt
        if what == "foreign":
            await _Odd()
        if what == "unsubscribe":
            self.ctx.unsubscribe([Subscription("deribit", PERP)])
            self.ctx.subscribe([Subscription("deribit", PERP)])
        if what == "trade":
            with contextlib.suppress(Exception):
                await self.ctx.place_order(
                    OrderRequest(
                        venue="deribit",
                        instrument=PERP,
                        side=Side.BUY if self.n % 2 else Side.SELL,
                        price=Decimal("90000.5") if self.n % 2 else Decimal("90000"),
                        size=Decimal("10"),
                    )
                )
            await self.ctx.sleep(0.002)
            self.seen.append(("woke", self.ctx.now_ns()))

    async def on_stop(self) -> None:
        if self.what == "exit":
            raise RuntimeError("and on_stop fails too")


def _at(ms: int, frame: bytes) -> bytes:
    return format_ts(T0 + ms * 1_000_000).encode() + b" " + frame


def _data(path: Path, n: int) -> Path:
    """An opening, then `n` frames of book changes, trades and tickers (some unread, some
    malformed, bare and bad lines among them) around a moving price."""
    lines = [
        _at(0, dfr.instruments()),
        _at(
            1,
            dfr.snapshot(PERP, 1, 10, [(90000.0, 50.0), (89999.5, 30.0)], [(90000.5, 40.0), (90001.0, 10.0)]),
        ),
    ]
    cid = 10
    for i in range(n):
        ms = 2 + i
        k = i % 11
        if k in (0, 3, 6):
            lines.append(_at(ms, dfr.change(PERP, ms, cid + 1, [["change", 90000.0, 40.0 + i % 7]], [])))
            cid += 1
        elif k == 1:
            lines.append(_at(ms, dfr.trade(PERP, ms, 90000.5 if i % 2 else 90000.0, 5.0, "buy", f"t{i}")))
        elif k == 7:  # two trades in one frame
            one = orjson.loads(dfr.trade(PERP, ms, 90000.0, 2.0, "sell", f"t{i}"))
            two = dict(one["params"]["data"][0], trade_id=f"u{i}", price=90000.5, direction="buy")
            one["params"]["data"].append(two)
            lines.append(_at(ms, orjson.dumps(one)))
        elif k in (2, 8):
            lines.append(_at(ms, dfr.ticker(PERP, ms, bid=90000.0, ask=90000.5, mark=90000.2, index=90000.1)))
        elif k == 4:
            lines.append(
                _at(
                    ms,
                    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.x.1","data":{}}}',
                )
            )
        elif k == 5 and i % 3 == 0:
            lines.append(_at(ms, b"[1, 2, 3]"))  # malformed
        elif k == 9 and i % 4 == 0:
            lines.append(b"not a recording line at all")
        else:
            lines.append(_at(ms, dfr.change(PERP, ms, cid + 1, [], [["change", 90000.5, 30.0 + i % 5]])))
            cid += 1
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _kinds(what: str) -> Any:
    """`what@ticker`: the strategy subscribes to the tickers only (the book and trade frames then
    reach no strategy, and its orders fill against them: the unrouted frames' counts)."""
    return {"ticker"} if what.endswith("@ticker") else None


def _market(market: Any) -> str:
    """What the replay left in the market state (the tickers path is done in C for its common
    case, `_kernel.c` `on_ticker`, by the method in Python)."""
    return repr(
        (
            sorted((k, repr(t)) for k, t in market.tickers.items()),
            sorted(market.index.items()),
            sorted(market._rate_key.items()),
            sorted(market.fill_rates.items()),
            market.listener_errors,
        )
    )


def scenario(path: str, odd: list[tuple[str, str, int]], compiled: bool) -> dict[str, Any]:
    """One run: the report JSON, the log lines, what each strategy saw."""
    stream = _Stream()
    configure_logging("info", "json", stream)
    strategies = [
        Odd(name, what, every, [Subscription("deribit", PERP, kinds)])
        for name, what, every, kinds in ((n, w.removesuffix("@ticker"), e, _kinds(w)) for n, w, e in odd)
    ]
    kernel = BacktestKernel(
        {"deribit": load_venue("deribit")},
        [DataSource("deribit", Path(path))],
        strategies,
        BacktestSettings(latency_ms=1, equity_interval_s=0.05),
        compiled=compiled,
    )
    assert kernel.compiled is compiled
    result = trio.run(kernel.run)
    report = report_dict(result)
    for key in _WALL:
        report.pop(key, None)
    lines = []
    for raw in stream.buffer.getvalue().splitlines():
        rec = orjson.loads(raw)
        rec.pop("wall_ts", None)
        if rec.get("clock") != "sim":
            for key in _WALL:
                rec.pop(key, None)
        lines.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())
    configure_logging("warning", "json", io.StringIO())
    return {
        "report": orjson.dumps(report, option=orjson.OPT_SORT_KEYS).decode(),
        "logs": lines,
        "seen": [repr(s.seen) for s in strategies],
        "counts": [kernel.frames, kernel.events, kernel.malformed, kernel.now],
        "market": _market(kernel.market),
        # Read and written by the compiled delivery through the slots' member offsets.
        "slots": [repr((s.received, s.phase, s.coro is None, s.failure)) for s in kernel.slots],
    }


def _child(path: Path, odd: list[tuple[str, str, int]], compiled: bool) -> dict[str, Any]:
    out: dict[str, Any] = _in_a_child("scenario", str(path), odd, compiled)
    return out


ODD_SETS = {
    "plain": [("a", "trade", 7), ("b", "none", 1)],
    "tickers-only": [("a", "trade@ticker", 2)],
    "raise": [("a", "raise", 3), ("b", "trade", 5)],
    "exit-mid-fanout": [("a", "exit", 9), ("b", "trade", 4), ("c", "raise", 25)],
    "interrupt": [("a", "interrupt", 30), ("b", "foreign", 6)],
    "foreign": [("a", "foreign", 4), ("b", "unsubscribe", 5)],
    "not-a-coroutine": [("a", "not-a-coroutine", 1), ("b", "awaitable-object", 1), ("c", "trade", 3)],
}


@pytest.mark.parametrize("name", sorted(ODD_SETS))
def test_the_compiled_loop_runs_as_the_python_loop(tmp_path: Path, name: str) -> None:
    path = _data(tmp_path / "d.rec", 3000)
    odd = ODD_SETS[name]
    python = _child(path, odd, False)
    compiled = _child(path, odd, True)
    assert compiled["counts"] == python["counts"]
    assert compiled["seen"] == python["seen"]
    assert compiled["report"] == python["report"]
    assert compiled["logs"] == python["logs"]
    assert compiled["market"] == python["market"]
    assert compiled["slots"] == python["slots"]
    assert python["counts"][2] > 0, "malformed frames met"


def bundled(config: str, compiled: bool, cache: str | None, window: bool) -> dict[str, Any]:
    """The bundled example's strategies (GammaScalp, Momentum) on a generated sample, as the
    command builds it: from the frames, or the decoded-event cache (`cache`), whole or in a
    window of its middle."""
    from tradingd.cli.backtest import build_kernel
    from tradingd.config import load_config
    from tradingd.engine.store.evcache import EventCache

    stream = _Stream()
    configure_logging("info", "json", stream)
    loaded = load_config(Path(config))
    start = end = None
    if window:
        first, last = config_span(loaded)
        start, end = first + (last - first) // 4, first + (last - first) // 2
    evc = None if cache is None else EventCache(Path(cache), write_on=1)
    kernel = build_kernel(loaded, event_cache=evc, start_ns=start, end_ns=end)
    kernel.compiled = compiled
    result = trio.run(kernel.run)
    report = report_dict(result)
    for key in _WALL:
        report.pop(key, None)
    lines = []
    for raw in stream.buffer.getvalue().splitlines():
        rec = orjson.loads(raw)
        if str(rec.get("event", "")).startswith("evcache.") or rec.get("clock") != "sim":
            continue
        rec.pop("wall_ts", None)
        lines.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode())
    configure_logging("warning", "json", io.StringIO())
    return {
        "report": orjson.dumps(report, option=orjson.OPT_SORT_KEYS).decode(),
        "logs": lines,
        "path": kernel.data_path,
        "counts": [kernel.frames, kernel.events, kernel.malformed, kernel.now],
        "market": _market(kernel.market),
    }


def _bundled_child(config: Path, compiled: bool, cache: Path | None, window: bool) -> dict[str, Any]:
    out: dict[str, Any] = _in_a_child(
        "bundled", str(config), compiled, None if cache is None else str(cache), window
    )
    return out


@pytest.mark.parametrize("window", [False, True], ids=["whole", "window"])
def test_the_bundled_example_runs_the_same_both_ways(tmp_path: Path, window: bool) -> None:
    from tests.support.backtests import bundled_config_on

    config = bundled_config_on(tmp_path, hours=0.05, seed=7)
    cache = tmp_path / "cache"
    python = _bundled_child(config, False, None, window)
    assert python["counts"][1] > 1000, "events replayed"
    for compiled, evc in ((True, None), (True, cache), (True, cache), (False, cache)):
        out = _bundled_child(config, compiled, evc, window)
        assert out["counts"] == python["counts"]
        assert out["report"] == python["report"]
        assert out["logs"] == python["logs"]
        assert out["market"] == python["market"]
    assert out["path"] == "cache"


def leaks(path: str) -> dict[str, Any]:
    """Every odd scenario run three times, compiled: what the shared objects' reference counts
    and the traced memory moved by between the second and the third run (a reference the loop
    kept or dropped shows here; the first run fills the caches)."""
    import gc
    import tracemalloc

    from tradingd.engine.backtest.kernel import _Wait
    from tradingd.engine.model.events import BookUpdate, DataKind, Ticker, Trade

    watch: list[Any] = [DataKind.BOOK, DataKind.TRADES, DataKind.TICKER, BookUpdate, Ticker, Trade, _Wait]
    watch += ["deribit", PERP, None, True, False, "on_event", 0, 1, 2]
    out: dict[str, Any] = {}
    tracemalloc.start()
    for name, odd in sorted(ODD_SETS.items()):
        sizes, refs = [], []
        for _ in "abc":  # not a range: its ints would be among the watched ones
            scenario(path, odd, True)
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
            refs.append([sys.getrefcount(o) for o in watch])
        out[name] = {
            "refs": [b - a for a, b in zip(refs[1], refs[2], strict=True)],
            "grew": sizes[2] - sizes[1],
        }
    return out


def _in_a_child(function: str, *args: Any, timeout: float = 300) -> Any:
    """`function(*args)` of this module run in a fresh interpreter (its classes, caches and
    counts its own), its JSON answer."""
    return in_a_child("tests.backtest.test_kernel_compiled", function, *args, timeout=timeout)


def test_the_compiled_loop_keeps_no_reference(tmp_path: Path) -> None:
    path = _data(tmp_path / "d.rec", 3000)
    for name, moved in _in_a_child("leaks", str(path), timeout=600).items():
        # A reference kept or dropped per frame or per event moves a count by thousands (3,000
        # frames); the interpreter's own caches may move the singletons' (None, True, 0...) by a
        # few between two runs, as they did once under a loaded xdist run.
        assert all(abs(d) < 300 for d in moved["refs"]), (name, moved)
        assert moved["grew"] < 200_000, (name, moved)  # ~3,000 frames: a leak per frame is more


def test_the_compiled_loop_takes_the_readers_batches(tmp_path: Path) -> None:
    """The recording's generator is resumed once a batch of its lines (the loop takes the lines
    from the batch itself), not once a line; the lines are still all replayed, as the Python loop
    replays them (the tests above), line numbers included."""
    from tradingd.engine.store.recording import RecordingReader

    path = _data(tmp_path / "d.rec", 3000)
    resumes = 0
    code = RecordingReader._read.__code__

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal resumes
        if event == "call" and frame.f_code is code:
            resumes += 1

    runs = {}
    for compiled in (False, True):
        resumes = 0
        kernel = BacktestKernel(
            {"deribit": load_venue("deribit")},
            [DataSource("deribit", path)],
            [Odd("a", "none", 1, [Subscription("deribit", PERP)])],
            BacktestSettings(latency_ms=1, equity_interval_s=0.05),
            compiled=compiled,
        )
        sys.setprofile(count)
        try:
            trio.run(kernel.run)
        finally:
            sys.setprofile(None)
        runs[compiled] = (resumes, kernel.frames, kernel.events)
    (by_python, frames, events), (by_c, frames_c, events_c) = runs[False], runs[True]
    assert (frames_c, events_c) == (frames, events) and frames > 2500
    assert by_python >= frames  # a resume a line
    assert by_c < frames / 5, (by_c, frames)


def patched(path: str, compiled: bool) -> dict[str, Any]:
    """A run, then properties (counting their calls) set over slot names the compiled loop reads
    by offset (`_Slot.received`, `MarketState.tickers`, `OrderBook._inv`) and over what it reads
    of the market events' classes (a field of their base, `BookUpdate.venue`; a field of their
    own, `Ticker.instrument`; the class attribute `Trade.kind`), then a second run: the second
    run's calls and outcome."""
    from tradingd.engine.backtest.kernel import _Slot
    from tradingd.engine.model.book import OrderBook
    from tradingd.engine.model.events import BookUpdate, Ticker, Trade
    from tradingd.engine.model.market import MarketState

    odd = ODD_SETS["plain"]
    scenario(path, odd, compiled)  # the first run: the loop learns (and releases) its classes
    calls: dict[str, int] = {}

    def counting(cls: type, name: str) -> None:
        member = cls.__dict__[name]
        calls[name] = 0

        def get(obj: Any) -> Any:
            calls[name] += 1
            return member.__get__(obj, cls)

        def put(obj: Any, value: Any) -> None:
            member.__set__(obj, value)

        setattr(cls, name, property(get, put))

    counting(_Slot, "received")
    counting(MarketState, "tickers")
    counting(OrderBook, "_inv")
    # The events' attributes: how often the loops read them differs (the Python loop reads
    # `ev.venue` twice), that they are read through what the class has now does not.
    event_calls: dict[str, int] = {}

    def counting_event(cls: type, name: str) -> None:
        found = inspect.getattr_static(cls, name)
        event_calls[f"{cls.__name__}.{name}"] = 0

        def get(obj: Any) -> Any:
            event_calls[f"{cls.__name__}.{name}"] += 1
            return found.__get__(obj, cls) if hasattr(found, "__get__") else found

        setattr(cls, name, property(get))

    counting_event(BookUpdate, "venue")
    counting_event(Ticker, "instrument")
    counting_event(Trade, "kind")
    # A `__getattribute__` of its own (a wrapper of the generic one): every read goes through it.
    through: set[tuple[str, int]] = set()

    def getattribute(obj: Any, name: str) -> Any:
        if name in ("venue", "instrument", "kind"):
            through.add((name, object.__getattribute__(obj, "ts_local")))
        return object.__getattribute__(obj, name)

    BookUpdate.__getattribute__ = getattribute  # type: ignore[method-assign]
    out = scenario(path, odd, compiled)
    return {
        "calls": calls,
        "event_calls_made": sorted(k for k, n in event_calls.items() if n > 0),
        "through_getattribute": sorted(through),
        "report": out["report"],
        "slots": out["slots"],
        "market": out["market"],
        "seen": out["seen"],
    }


def test_a_property_set_over_a_slot_name_after_a_loop_is_honoured(tmp_path: Path) -> None:
    """The loop learns the member offsets of the classes it reads by offset at each call (and
    releases the classes when it returns); a class attribute replaced between two runs must be
    read again, and `BookUpdate`'s own `__getattribute__` (then no field read at its offset, no
    `kind` from the class) must read every attribute, as Python reads them."""
    path = _data(tmp_path / "d.rec", 600)
    python, compiled_out = _both_loops("patched", str(path))
    assert python["calls"]["received"] > 0 and python["calls"]["tickers"] > 0
    assert python["event_calls_made"] == ["BookUpdate.venue", "Ticker.instrument", "Trade.kind"]
    assert {name for name, _ in python["through_getattribute"]} == {"venue", "instrument", "kind"}
    assert compiled_out == python


def _both_loops(func: str, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`func(*args, compiled)` of this module run in a fresh process for each loop (it patches
    classes): the Python loop's outcome, then the compiled loop's."""
    return _in_a_child(func, *args, False), _in_a_child(func, *args, True)


def _at_event(n: int, patch: Any) -> None:
    """`Odd` strategies call `patch()` once, when the first of them receives its `n`th event."""
    original = Odd.on_event
    done = [False]

    async def on_event(self: Odd, event: MarketEvent) -> None:
        if not done[0] and self.n == n:
            done[0] = True
            patch()
        await original(self, event)

    Odd.on_event = on_event  # type: ignore[method-assign]


def midloop(path: str, compiled: bool) -> dict[str, Any]:
    """One run in which a strategy, at its 20th event (the loop running, its classes learnt),
    sets counting properties over the slot names the compiled loop reads by offset and over what
    it reads of the market events: the outcome, the calls, which events were read so."""
    from tradingd.engine.backtest.kernel import _Slot
    from tradingd.engine.model.book import OrderBook
    from tradingd.engine.model.events import BookUpdate, Ticker, Trade
    from tradingd.engine.model.market import MarketState

    calls: dict[str, int] = {}
    reads: set[tuple[str, int]] = set()

    def counting(cls: type, name: str) -> None:
        found = inspect.getattr_static(cls, name)
        key = f"{cls.__name__}.{name}"
        calls[key] = 0

        def get(obj: Any) -> Any:
            calls[key] += 1
            if hasattr(obj, "ts_local"):  # an event: which one
                reads.add((key, obj.ts_local))
            return found.__get__(obj, cls) if hasattr(found, "__get__") else found

        def put(obj: Any, value: Any) -> None:
            found.__set__(obj, value)

        setattr(cls, name, property(get, put if hasattr(found, "__set__") else None))

    def patch() -> None:
        for cls, name in (
            (_Slot, "received"),
            (MarketState, "tickers"),
            (OrderBook, "_inv"),
            (BookUpdate, "venue"),
            (Ticker, "instrument"),
            (Trade, "kind"),
        ):
            counting(cls, name)

    _at_event(20, patch)
    out = scenario(path, ODD_SETS["plain"], compiled)
    slots = ("_Slot.received", "MarketState.tickers", "OrderBook._inv")
    return {
        "calls": {k: n for k, n in calls.items() if k in slots},
        "event_calls_made": sorted(k for k, n in calls.items() if n > 0 and k not in slots),
        "event_reads": sorted(reads),
        **out,
    }


def test_a_property_set_over_a_slot_name_while_a_loop_runs_is_honoured(tmp_path: Path) -> None:
    """The loop keeps the offsets it learnt while it runs, checked against the class's version
    tag at each use: properties set by a strategy part-way through a run (over the slots the loop
    reads by offset, and over the market events' fields and `kind`) are read through from then
    on, as the Python loop reads them (a cache that ignored the tag would read the slots)."""
    path = _data(tmp_path / "d.rec", 600)
    python, compiled_out = _both_loops("midloop", str(path))
    assert all(n > 0 for n in python["calls"].values()), python["calls"]
    assert python["event_calls_made"] == ["BookUpdate.venue", "Ticker.instrument", "Trade.kind"]
    assert python["event_reads"]
    assert compiled_out == python


def kind_get(path: str, compiled: bool) -> dict[str, Any]:
    """One run in which a strategy, at its 20th event, gives the kinds' class a `__get__` (the
    market event classes' version tags do not change): the events whose `kind` went through it."""
    from tradingd.engine.model.events import DataKind

    reads: list[int] = []

    def get(self: Any, obj: Any, cls: Any = None) -> Any:
        if obj is not None:
            reads.append(obj.ts_local)
        return self

    _at_event(20, lambda: type.__setattr__(DataKind, "__get__", get))
    out = scenario(path, ODD_SETS["plain"], compiled)
    return {"reads": reads, **out}


def test_a_get_given_to_the_kinds_class_while_a_loop_runs_is_honoured(tmp_path: Path) -> None:
    """`kind` is read from the event's class by the compiled loop where it is no descriptor; its
    own class given a `__get__` mid-run (which the event class's tag does not see) makes it one,
    checked where it is used: every event after goes through it, in both loops."""
    path = _data(tmp_path / "d.rec", 600)
    python, compiled_out = _both_loops("kind_get", str(path))
    assert len(python["reads"]) > 100
    assert compiled_out == python


def released(path: str) -> dict[str, Any]:
    """A compiled run with the kernel's `_Slot`, `OrderBook` and `MarketState` replaced by
    subclasses of their own (the loop caches the classes it reads the slots of), then every
    reference to them dropped: whether each is collected (the loop does not keep a class alive
    once it returned)."""
    import gc
    import weakref

    from tradingd.engine.backtest import kernel

    kernel_module: Any = kernel  # its `_Slot` and `OrderBook` names rebound for the run
    slot_cls: Any = type("SlotSub", (kernel_module._Slot,), {"__slots__": ()})
    book_cls: Any = type("BookSub", (kernel_module.OrderBook,), {"__slots__": ()})
    market_cls: Any = type("MarketSub", (kernel_module.MarketState,), {"__slots__": ()})
    refs = {"slot": weakref.ref(slot_cls), "book": weakref.ref(book_cls), "market": weakref.ref(market_cls)}
    saved = kernel_module._Slot, kernel_module.OrderBook, kernel_module.MarketState
    kernel_module._Slot, kernel_module.OrderBook, kernel_module.MarketState = slot_cls, book_cls, market_cls
    try:
        out = scenario(path, ODD_SETS["plain"], True)
    finally:
        kernel_module._Slot, kernel_module.OrderBook, kernel_module.MarketState = saved
    del slot_cls, book_cls, market_cls
    gc.collect()
    return {
        "alive": sorted(name for name, ref in refs.items() if ref() is not None),
        "slots": out["slots"],
        "market": out["market"],
    }


def test_the_compiled_loop_keeps_no_class_alive_once_it_returned(tmp_path: Path) -> None:
    path = _data(tmp_path / "d.rec", 600)
    out = _in_a_child("released", str(path))
    received = [int(s[1 : s.index(",")]) for s in out["slots"]]  # repr((received, phase, ...))
    assert received and all(n > 0 for n in received), "the run delivered through its slots"
    assert out["market"], "the run kept tickers in its market"
    assert out["alive"] == []


def test_the_kernels_test_helpers_keep_no_class_alive_once_they_returned() -> None:
    """`_kernel.on_ticker` and `_kernel.book_reaches` learn the market's and the book's class as
    the loop does, and release them as a loop call does, whether they return or raise."""
    import gc
    import types
    import weakref

    from tests.support.helpers import PERP as PERP_INSTRUMENT
    from tests.support.helpers import book, ticker
    from tradingd.engine.backtest import _kernel
    from tradingd.engine.model.book import OrderBook
    from tradingd.engine.model.instruments import InstrumentRegistry
    from tradingd.engine.model.market import MarketState

    market_cls: Any = type("MarketSub", (MarketState,), {"__slots__": ()})
    book_cls: Any = type("BookSub", (OrderBook,), {"__slots__": ()})
    refs = [weakref.ref(market_cls), weakref.ref(book_cls)]
    market = market_cls(InstrumentRegistry([PERP_INSTRUMENT]))
    _kernel.on_ticker(market, market.on_ticker, ticker(PERP, 1, index=90_000.0))
    assert ("deribit", PERP) in market.tickers
    with pytest.raises(KeyError):  # no reach entry for the instrument: an error, raised
        _kernel.book_reaches(types.SimpleNamespace(reach={}), book(PERP), book_cls)
    del market, market_cls, book_cls
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
