"""A finished backtest's kernel is freed at once, by reference counting: once its run is over,
nothing it holds refers back to it (the order flow's `deliver` and the flow's own callbacks,
the surface service's clock, the slots' strategies, whose contexts hold the kernel: all let go
when `run` ends, `BacktestKernel._let_go`). So when its last outside reference goes its whole
world goes with it: decoders (a cache replay's too) and their books, simulated venues, order
flow with its orders and ledgers, market, strategies. Before, each sat in cycles until a full
collection: a sweep's worker carried every finished trial's until then.

What is not covered, and why: trio's runner is in cycles of its own (Runner <-> its tasks <->
their nurseries), which keep what the main task ended with until a collection: the result on
success (held here anyway), and on a run that raises the exception, whose traceback's frames
hold the kernel. And a strategy the caller still holds keeps its context, and through it the
kernel (a plain reference, not a cycle: the strategy stays readable, its context usable)."""

from __future__ import annotations

import gc
import importlib.util
import sys
import tomllib
import weakref
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.backtests import bundled_config_on, config_span
from tests.support.child import in_a_child
from tests.support.collector import no_collector
from tradingd.cli.backtest import build_kernel
from tradingd.config import load_config
from tradingd.engine import MarketEvent, Strategy, Subscription
from tradingd.engine.backtest.kernel import BacktestKernel, BacktestSettings, DataSource
from tradingd.engine.store.evcache import EventCache
from tradingd.engine.venue.plugins import load_venue

COMPILED = [
    pytest.param(False, id="python"),
    pytest.param(
        True,
        id="compiled",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("tradingd.engine.backtest._kernel") is None,
            reason="the compiled loop is not built",
        ),
    ),
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example (GammaScalp, which fits surfaces and trades options, and Momentum) on
    a few minutes of a generated Deribit sample."""
    return bundled_config_on(tmp_path_factory.mktemp("freed"), hours=0.05, seed=7)


def _kernel(config: Path, compiled: bool, cache: EventCache | None, window: bool) -> BacktestKernel:
    loaded = load_config(config)
    start = end = None
    if window:  # the middle of the data: a warm-up before it, a stop at its end
        first, last = config_span(loaded)
        start, end = first + (last - first) // 4, first + 3 * (last - first) // 4
    kernel = build_kernel(loaded, event_cache=cache, start_ns=start, end_ns=end)
    kernel.compiled = compiled
    return kernel


def _watched(
    kernel: BacktestKernel, strategies: dict[str, Any]
) -> tuple[dict[str, weakref.ref[Any]], list[Any]]:
    """Weak references to the finished kernel and to what only it holds (`strategies`, by name,
    as it was given them: its slots let go of them when the run ended), and a few of each
    decoder's books (not weakly referenceable: their reference counts are checked)."""
    objects: dict[str, Any] = {
        "kernel": kernel,
        "flow": kernel.flow,
        "tracker": kernel.flow.tracker,
        "router": kernel.router,
        "registry": kernel.registry,
        "surfaces": kernel.surfaces,
    }
    books = []
    for venue, decoder in kernel.decoders.items():  # a cache replay's: its replay decoders
        objects[f"decoder {venue}"] = decoder
        objects[f"simulated venue {venue}"] = kernel.sims[venue]
        books += [decoder.book(symbol) for symbol in decoder.book_instruments()[:3]]
    for name, strategy in strategies.items():
        objects[f"strategy {name}"] = strategy
        objects[f"context {name}"] = strategy.ctx
    return {name: weakref.ref(o) for name, o in objects.items()}, [b for b in books if b is not None]


def _alive(refs: dict[str, weakref.ref[Any]]) -> dict[str, list[str]]:
    """What is still alive, with the types of what refers to it."""
    out = {}
    for name, ref in refs.items():
        obj = ref()
        if obj is not None:
            out[name] = sorted({type(r).__name__ for r in gc.get_referrers(obj)})
        del obj
    return out


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("data", ["frames", "cache", "cache-window"])
def test_a_finished_kernel_is_freed_at_once_with_its_world(config: Path, compiled: bool, data: str) -> None:
    """With the collector off, the kernel's last reference dropped after its run: nothing of its
    world is left (the module docstring), on either loop, from the frames or from the cache
    (whole, or a window: warm-up and stop), the result still whole."""
    cache = None
    if data != "frames":  # an entry written first (with the collector on): this run reads it
        cache = EventCache(config.parent / f"cache-{compiled}", write_on=1)
        trio.run(_kernel(config, compiled, cache, False).run)
    with no_collector():
        kernel = _kernel(config, compiled, cache, data.endswith("window"))
        strategies = {slot.name: slot.strategy for slot in kernel.slots}
        result = trio.run(kernel.run)
        assert kernel.data_path == ("frames" if cache is None else "cache")
        assert result.strategies["gamma_btc"].fills > 0, "orders filled: the order flow was used"
        assert kernel.surfaces.stats.refit_reasons, "surfaces asked for: the service's clock was read"
        refs, books = _watched(kernel, strategies)
        assert len(books) >= 3
        del kernel, strategies
        assert not _alive(refs), _alive(refs)
        for book in books:  # the list's, the loop's, the call's
            assert sys.getrefcount(book) == 3, [type(r).__name__ for r in gc.get_referrers(book)]
        # The result is the caller's, whole: it needs nothing of the kernel.
        assert result.strategies["gamma_btc"].series is not None and result.files[0].frames > 0


@pytest.mark.parametrize("compiled", COMPILED)
def test_a_strategy_held_after_the_run_keeps_its_kernel_readable(config: Path, compiled: bool) -> None:
    """A strategy the caller holds after the run keeps its context, and the kernel through it
    (a plain reference): the strategy's state and its context still answer; dropping it then
    frees the kernel at once."""
    with no_collector():
        kernel = _kernel(config, compiled, None, False)
        strategies = {slot.name: slot.strategy for slot in kernel.slots}
        gamma = strategies["gamma_btc"]
        result = trio.run(kernel.run)
        end = kernel.now
        refs, _ = _watched(kernel, strategies)
        del kernel, strategies
        assert refs["kernel"]() is not None and refs["decoder deribit"]() is not None
        ctx = gamma.ctx
        assert ctx.now_ns() == end
        view = ctx.positions()
        positions = {f"{venue}:{symbol}": str(qty) for (venue, symbol), qty in view.positions.items() if qty}
        assert positions and positions == result.strategies["gamma_btc"].positions
        assert view.fees == result.strategies["gamma_btc"].fees
        del ctx, gamma
        assert not _alive(refs), _alive(refs)


def test_a_kernel_runs_once_and_a_second_run_says_so(config: Path) -> None:
    """A run lets go of what it ran with (its slots' strategies, the flow's callbacks), so a
    second `run` of the same kernel is refused in one clear line before it touches anything: it
    met the router's "a strategy named ... is already running" and then, in `_let_go`, a bare
    AttributeError that hid it. Letting go twice is harmless."""
    kernel = _kernel(config, False, None, False)
    first = trio.run(kernel.run)
    once = "^a BacktestKernel runs once: make a new one for another run$"
    with pytest.raises(RuntimeError, match=once) as err:
        trio.run(kernel.run)
    assert err.value.__context__ is None
    kernel._let_go()
    assert first.files[0].frames > 0


def test_a_strategy_parked_when_the_run_raises_is_closed_before_its_flow_lets_go(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that raises (here its progress callback, at the first checkpoint) leaves a strategy
    parked in an await: its coroutine is closed while the flow is still whole, so its `finally`
    runs once, at the end of `run`, against a flow that takes orders. Dropping the slot's
    reference did not close it: the Python loop's frame, kept by the exception's traceback,
    still held it, and it closed only when that went, after the flow had let go."""
    from tradingd.engine.backtest import kernel as kernel_module
    from tradingd.engine.runtime import flow as flow_module

    monkeypatch.setattr(kernel_module, "_CHECKPOINT_EVERY", 1 << 6)
    whole: list[bool] = []

    class Parked(Strategy):
        def required_subscriptions(self) -> list[Subscription]:
            return [Subscription("deribit", "BTC-PERPETUAL")]

        async def on_event(self, event: MarketEvent) -> None:
            try:
                await self.ctx.sleep(3600)
            finally:
                whole.append(kernel.flow.deliver is not flow_module._released)

    def boom(done: int, total: int) -> None:
        raise RuntimeError("stop here")

    sample = config.parent / "sample.rec.zst"
    kernel = BacktestKernel(
        {"deribit": load_venue("deribit")},
        [DataSource("deribit", sample)],
        [Parked("parked")],
        BacktestSettings(),
        progress=boom,
    )
    kernel.compiled = False
    with pytest.raises(RuntimeError, match="^stop here$") as err:
        trio.run(kernel.run)
    assert whole == [True], whole
    assert err.value is not None


def trials(config: str, n: int) -> dict[str, Any]:
    """`n` sweep trials of `config` run in this process (a worker's), the collector off: after
    each, what is left of the backtests (kernels, order flows, markets, books)."""
    from tradingd.cli.trial import run_trial
    from tradingd.engine.model.book import OrderBook
    from tradingd.engine.model.market import MarketState
    from tradingd.engine.runtime.flow import OrderFlow
    from tradingd.engine.sweep.model import TrialContext, TrialSpec, Window

    path = Path(config)
    ctx = TrialContext(
        base_path=str(path),
        base_table=tomllib.loads(path.read_text()),
        cache_dir=None,
        data_files=(),
        code_version="t",
    )
    kinds = (BacktestKernel, OrderFlow, MarketState, OrderBook)
    left = []
    gc.collect()
    gc.disable()
    for number in range(n):
        result = run_trial(ctx, TrialSpec(key=f"k{number}", number=number, params={}, window=Window()))
        assert result.status == "ok", result
        counts = {k.__name__: 0 for k in kinds}
        for o in gc.get_objects():
            if isinstance(o, kinds):
                counts[type(o).__name__] += 1
        left.append(counts)
    return {"left": left}


def test_a_sweep_worker_keeps_no_finished_trial(config: Path) -> None:
    """Trials run one after the other in one worker process with the collector off (as between
    two collections of a long sweep): after each, none of its backtest is left."""
    out = in_a_child("tests.backtest.test_kernel_freed", "trials", str(config), 3, timeout=300)
    assert out["left"] == [{"BacktestKernel": 0, "OrderFlow": 0, "MarketState": 0, "OrderBook": 0}] * 3, out
