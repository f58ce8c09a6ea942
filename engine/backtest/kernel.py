"""The backtest kernel: recordings -> the venue decoders -> the same strategy objects, on a
simulated clock, deterministically.

It does not go through the live channels: events are dispatched directly (that is what makes
hundreds of thousands of events per second affordable), but with the live semantics:

- Each strategy processes one event at a time. Its `on_event` coroutine is driven by the kernel;
  when it awaits its context (`place_order`, `cancel_order`, `sleep`), it is parked until the
  simulated clock reaches the answer (order latency to the venue + response latency back), and
  the events that arrive meanwhile wait in its `Mailbox`, conflated exactly as live.
- Orders go through the same `OrderFlow` (pre-trade checks, tracking, ledger) as live, to a
  `SimulatedVenue` per venue that fills against the recorded books and trades.
- Time only moves forward: timers (order arrivals, answers, sleeps, GTD and option expiries) fire
  in time order before the first market event at or after their time; ties keep their order.

The same inputs give the same result, byte for byte (no wall clock, no hash-order iteration).

Windows (`BacktestSettings.start_ns` / `end_ns`, receive times; issue 18's sweep trials and
walk-forward folds): the frames before `start_ns` are decoded as usual (the books, the decoders'
instruments, a cache entry being written) and their tickers kept (marks, index prices), and
instruments expire as they do, but no strategy is started, nor receives any event, timer or
order, and nothing is sampled or counted: a strategy started at 06:00 sees the books as they were
at 06:00. The strategies start, as on a data file that begins there, before the first market
event at or after `start_ns`. The replay stops at the first frame at or after `end_ns`, which is
not applied: the strategies stop as at the data's end, unrealized PnL at the marks known before
it. The equity curve, the statistics, the fills and the frame counts are the window's; the
result's `start_ns`/`end_ns` are the window's bounds where the data covers them (else its first
or last frame in the window). A window holding no frame starts no strategy and says so in
one warning. The event cache is keyed and written as for the whole data (windowing is after
decoding): a run stopped at its window's end while writing the entry decodes the rest of the
data into it after its result, so every window of a data set reads the one entry.

After the run, `BacktestResult.warnings` says in one line each what made a strategy or a data
file do nothing, which a table of zeros would not: a strategy subscribed to a venue no data file
is of, or to instruments the data does not have, or that received no market event; orders on
instruments the data holds no order book for (nothing can fill); a data file whose frames reached
no strategy, or hold channels its venue's decoder does not read (another venue's data?), with
where each of its frames went. A strategy may add what it found missing itself: an optional
`data_warnings()` method returning one-line strings, called once after `on_stop` (GammaScalp:
no option of its underlying in the data). Each warning is also logged once, as
`backtest.warning` with its `kind`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import inspect
import itertools
import math
import time
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from ..logs.setup import cached_logger, redact_text, simulated_clock
from ..model.book import OrderBook
from ..model.errors import DataError, MalformedFrame, OrderRejected, StrategyError
from ..model.events import (
    BookUpdate,
    DataKind,
    Fill,
    MarketEvent,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Status,
    StatusKind,
    Ticker,
    Trade,
)
from ..model.fees import DeliveryFeeModel, FeeModel
from ..model.instruments import Instrument, InstrumentKind, InstrumentRegistry, OptionRight
from ..model.ledger import CONTEXT as LEDGER_CONTEXT
from ..model.market import USD_LIKE, MarketState
from ..model.money import ZERO as _ZERO
from ..model.money import decimal_text, from_float, optional
from ..model.orders import ClientOrderIds, Order, OrderRequest
from ..model.pricing import YEAR_SECONDS
from ..model.risk import RiskLimits
from ..model.settlement import funding_amount
from ..model.simvenue import SimulatedVenue
from ..model.words import line_text
from ..runtime.context import BaseContext
from ..runtime.flow import OrderFlow
from ..runtime.mailbox import Mailbox, log_drops
from ..runtime.router import MarketRouter, StrategySlot
from ..runtime.strategy import FailurePolicy, Phase, Strategy, StrategyFailure, split_strategy_fault
from ..store.evcache import CachedReader, CacheWriter, DecoderChanged, EventCache
from ..store.recorder import RecordingSet
from ..store.recording import RecordingReader, format_ts, merge_recordings
from ..surface.model import SurfaceSettings
from ..surface.service import SurfaceService
from ..venue.catalog import MarketCatalog
from ..venue.plugins import checked_decoder
from ..venue.spi import Decoder, FrameSource, VenuePlugin

try:  # the compiled replay loop (_kernel.c); a tree built without it runs the Python loop, the reference
    from . import _kernel
except ImportError:  # pragma: no cover - the install builds it
    _kernel = None  # type: ignore[assignment]

__all__ = [
    "BacktestKernel",
    "BacktestResult",
    "BacktestSettings",
    "DataSource",
    "FillRecord",
    "FrameSource",
    "StrategyResult",
    "StrategySeries",
    "max_drawdown",
    "sharpe_ratio",
    "sortino_ratio",
]

_NS = 1_000_000_000
_CHECKPOINT_EVERY = 1 << 14
# Bad lines and malformed frames: the first few are logged one by one (file and line), then
# one line every `_REPORT_EVERY`, and the total at the end of the run.
_REPORT_FIRST = 10
_REPORT_EVERY = 10_000
_CHART_STEP_S = 10.0  # the charts' sampling step, at most (a divisor of equity_interval_s)
_CHART_POINTS = 4096  # a series past this many points keeps every other one (bounded memory)
_FILLS_KEPT = 20_000  # fills kept per strategy for the charts (all are counted)
# Module constants, not lookups on the order lifecycle's path (once per order and per answer):
# `OrderState.REJECTED` is a class attribute lookup (~0.1 us), `heapq.heappush` a module one.
_REJECTED = OrderState.REJECTED
_push = heapq.heappush  # a timer's push (`_at`, and where it is inline)
_FINISHED: Any = object()  # `_deliver`: the strategy's step ended (nothing a coroutine awaits)
# What the compiled loop (`_kernel.loop`) returns with: a frame it did not touch, a frame the
# decoder found malformed, a frame done but for its tail (a sample, the checkpoint, an expiry due).
_C_FRAME = 0
_C_MALFORMED = 1
_C_TAIL = 2


def _strategy_frames(exc: BaseException) -> BaseException:
    """A strategy's exception as logged: the kernel's leading frames taken off its traceback,
    and off those of the exceptions chained to it (`__context__`, `__cause__`, a group's
    members), e.g. the `SystemExit` from `on_event` that an `on_stop` error was raised in:
    the frame that stepped the strategy (`_replay`, `_deliver`, `_drive`...) is the Python
    loop's, the compiled loop adds none, so both log the same traceback, the strategy's own
    frames."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        if tb is not e.__traceback__:
            e.__traceback__ = tb
        todo.extend(x for x in (e.__context__, e.__cause__) if x is not None)
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
    return exc


def _window_time(_: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    # An int, not a float (ns since the epoch are past a double's exact integers) nor a bool.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{attribute.name}: expected ns since the epoch (an int) or None, got {value!r}")


@attrs.frozen
class BacktestSettings:
    """How the simulated venues behave. Latencies are one-way, in milliseconds."""

    latency_ms: float = 20.0
    response_latency_ms: float | None = None  # None: same as latency_ms
    equity_interval_s: float = 60.0
    queue_ahead: bool = False
    mailbox_capacity: int = 1024
    # The market-time window the strategies trade in (issue 18's walk-forward windows), receive
    # times in ns since the epoch: None from the data's first frame / to its last. Frames before
    # `start_ns` only warm the books and the marks up; the replay stops at `end_ns` (module
    # docstring, "Windows").
    start_ns: int | None = attrs.field(default=None, validator=_window_time)
    end_ns: int | None = attrs.field(default=None, validator=_window_time)

    def __attrs_post_init__(self) -> None:
        if self.start_ns is not None and self.end_ns is not None and self.start_ns >= self.end_ns:
            raise ValueError(
                f"the backtest window's start ({format_ts(self.start_ns)}) is not before its end"
                f" ({format_ts(self.end_ns)})"
            )


@attrs.frozen
class DataSource:
    """One data file of one venue: a recording (DESIGN.md), or another `format` the venue's
    plugin opens (`VenuePlugin.open_data`), yielding (receive time ns, frame) like a recording."""

    venue: str
    path: Path = attrs.field(converter=Path)
    format: str = "recording"


@attrs.frozen
class FillRecord:
    """One fill as the report draws it: when (the venue's report reached the engine), what,
    which way, at what price (in the instrument's quote currency), how much, the fee in USD
    (None while no USD rate is known for it), maker/taker, and its order's `tag` (the strategy's
    note on why it traded; "" when it wrote none)."""

    ts: int
    instrument: str
    side: str
    price: float
    size: float
    fee_usd: float | None  # None: no USD rate known for it when it filled
    liquidity: str
    tag: str = ""


@attrs.frozen
class StrategySeries:
    """A strategy's time series for the report's charts, sampled every `step_s` of replay time
    (at most `_CHART_POINTS` points: a longer run keeps every other point, doubling the step).
    `positions` and `prices` (the mark) are per `venue:instrument` traded, aligned with `ts`."""

    step_s: float
    ts: tuple[int, ...]
    equity: tuple[float, ...]
    positions: dict[str, tuple[float, ...]]
    prices: dict[str, tuple[float | None, ...]]
    fills: tuple[FillRecord, ...]
    fills_dropped: int


@attrs.frozen
class StrategyResult:
    orders: int
    fills: int
    rejected: int
    errors: int
    # Money (USD) is exact; the equity curve and the statistics drawn from it are floats.
    fees: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    net_pnl: Decimal
    max_drawdown: float
    sharpe: float | None
    turnover: Decimal
    positions: dict[str, str]
    conflated: int
    merged: int
    dropped: int
    equity_curve: tuple[tuple[int, float], ...]
    sortino: float | None = None
    round_trips: int = 0
    win_rate: float | None = None
    avg_holding_s: float | None = None
    filled_orders: int = 0
    fill_ratio: float | None = None
    series: StrategySeries | None = None
    failure: StrategyFailure | None = None  # set when the strategy failed and was stopped
    funding: Decimal = Decimal(0)  # funding received (negative: paid), part of realized_pnl
    waiting_fills: int = 0  # fills whose USD value never found a rate (counted in positions only)
    # Where max_drawdown was taken: (ts, equity) of its peak and of its trough. Both are among
    # the points it was measured on (every chart sample, every fill), which the chart series may
    # not hold (a fill between samples, a thinned series): the report puts them back in.
    drawdown_points: tuple[tuple[int, float], tuple[int, float]] | None = None


@attrs.frozen
class DataFileStats:
    """What was wrong with one data source: lines that are not recording lines, frames the
    decoder refused, and `.zst` files that end inside a frame (file, last receive time read).
    And where its frames went: `frames` read and decoded; of them `control` (responses,
    heartbeats), `unread_channel` (channels its venue's decoder does not read), `no_event`
    (no market event for another reason: instrument definitions, ...), `fills`: frames whose
    market events reached no strategy but that the simulated venue used (they kept the book of an
    instrument some strategy ordered, which its orders fill against, or held trades it checked
    resting orders against), and `unrouted`: frames whose market events reached neither."""

    venue: str
    path: str
    bad_lines: int = 0
    malformed_frames: int = 0
    unfinished: tuple[tuple[str, int | None], ...] = ()
    frames: int = 0
    control: int = 0
    unread_channel: int = 0
    no_event: int = 0
    unrouted: int = 0
    fills: int = 0


@attrs.frozen
class BacktestResult:
    events: int
    frames: int
    malformed_frames: int
    bad_lines: int
    duration_s: float
    start_ns: int | None
    end_ns: int | None
    strategies: dict[str, StrategyResult]
    decoder_stats: dict[str, dict[str, int]]
    equity_interval_s: float = 60.0
    files: tuple[DataFileStats, ...] = ()
    # One line each, for people: what made the run (or part of it) do nothing (`_warnings`).
    warnings: tuple[str, ...] = ()
    # For people: what a venue's catalog calls the instruments the result lists, by
    # `venue:symbol` (`_instrument_names`); the result's own keys stay the venue's ids.
    instrument_names: Mapping[str, str] = attrs.field(factory=dict)


class _Wait:
    """What a backtest context awaits: the kernel parks the strategy until `resume`."""

    __slots__ = ("action", "arg")

    def __init__(self, action: str, arg: Any) -> None:
        self.action = action
        self.arg = arg

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


class _Chart:
    """A strategy's chart series, bounded: past `cap` points every other point is dropped and
    only every `stride`-th sample is kept from then on."""

    __slots__ = ("cap", "count", "equity", "positions", "prices", "stride", "ts")

    def __init__(self, cap: int = _CHART_POINTS) -> None:
        self.cap = cap
        self.count = 0
        self.stride = 1
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.positions: dict[str, list[float]] = {}
        self.prices: dict[str, list[float | None]] = {}

    def add(self, ts: int, equity: float, positions: dict[str, tuple[float, float | None]]) -> None:
        self.count += 1
        if (self.count - 1) % self.stride:
            return
        n = len(self.ts)
        self.ts.append(ts)
        self.equity.append(equity)
        for key, (qty, price) in positions.items():
            pos = self.positions.get(key)
            if pos is None:  # first seen now: flat (and unpriced) before
                pos = self.positions[key] = [0.0] * n
                self.prices[key] = [None] * n
            pos.append(qty)
            self.prices[key].append(price)
        for key, pos in self.positions.items():
            if len(pos) == n:
                pos.append(0.0)
                self.prices[key].append(None)
        if len(self.ts) >= self.cap:
            self.ts = self.ts[::2]
            self.equity = self.equity[::2]
            self.positions = {k: v[::2] for k, v in self.positions.items()}
            self.prices = {k: v[::2] for k, v in self.prices.items()}
            self.stride *= 2


class _Trips:
    """Round trips per instrument (flat -> position -> flat, or through zero), for the win rate
    and the holding time. A trip's PnL is what it realized minus every fee paid on the way,
    opening fee included."""

    __slots__ = ("count", "held_ns", "last", "open", "wins")

    def __init__(self) -> None:
        self.count = 0
        self.wins = 0
        self.held_ns = 0
        # key -> (qty, realized, fees) as of the last look; key -> (opened at, realized, fees)
        self.last: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = {}
        self.open: dict[tuple[str, str], tuple[int, Decimal, Decimal]] = {}

    def update(self, key: tuple[str, str], qty: Decimal, realized: Decimal, fees: Decimal, now: int) -> None:
        prev_qty, prev_realized, prev_fees = self.last.get(key, (_ZERO, _ZERO, _ZERO))
        self.last[key] = (qty, realized, fees)
        if prev_qty == 0:
            if qty != 0:
                self.open[key] = (now, prev_realized, prev_fees)
            return
        if qty != 0 and (qty > 0) == (prev_qty > 0):
            return
        opened, r0, f0 = self.open.pop(key, (now, prev_realized, prev_fees))
        self.count += 1
        self.held_ns += now - opened
        if (realized - r0) - (fees - f0) > 0:
            self.wins += 1
        if qty != 0:  # through zero: a new trip starts with this fill
            self.open[key] = (now, realized, fees)


class _Slot(StrategySlot):
    __slots__ = (
        "chart",
        "coro",
        "dd_peak",
        "dd_peak_ts",
        "dd_points",
        "failure",
        "filled_ids",
        "filled_on",
        "fills",
        "fills_dropped",
        "keys_seen",
        "max_dd",
        "ordered",
        "phase",
        "received",
        "samples",
        "trips",
        "waiting",
    )

    def __init__(self, strategy: Strategy, mailbox: Mailbox) -> None:
        super().__init__(strategy, mailbox)
        # The mailbox's queue, empty exactly when no event waits: a test of it costs no call
        # (the kernel's per event check after a step, which nearly always finds none).
        self.waiting = mailbox.entries
        self.coro: Coroutine[Any, Any, Any] | None = None  # the parked on_event, if any
        self.phase: Phase = "on_start"  # the hook `coro` runs (or the next one will)
        self.failure: StrategyFailure | None = None
        self.samples: list[tuple[int, float]] = []
        self.dd_peak = 0.0
        self.dd_peak_ts: int | None = None  # None until the first sample (the start, flat)
        self.dd_points: tuple[tuple[int, float], tuple[int, float]] | None = None
        self.max_dd = 0.0
        self.chart = _Chart()
        self.trips = _Trips()
        self.fills: list[FillRecord] = []
        self.fills_dropped = 0
        self.filled_ids: set[str] = set()
        # For the run's warnings (`BacktestKernel._warnings`): market events delivered, orders
        # sent per (venue, instrument), instruments filled, and the subscriptions it started with.
        self.received = 0
        self.ordered: dict[tuple[str, str], int] = {}
        self.filled_on: set[tuple[str, str]] = set()
        self.keys_seen: set[tuple[str, str, DataKind]] = set()


class _Context(BaseContext):
    """A strategy's context in a backtest: the kernel's clock, its simulated venues."""

    def __init__(self, kernel: BacktestKernel, slot: _Slot) -> None:
        super().__init__(slot.name, kernel, kernel.sims)
        self._kernel = kernel

    def now_ns(self) -> int:
        return self._kernel.now

    async def sleep(self, seconds: float) -> None:
        await _Wait("sleep", seconds)

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        request = self.prepare(request)
        order = self.flow.accept(request, now_ns=self._kernel.now)  # pre-trade checks: may raise
        result: OrderUpdate = await _Wait("place", order)
        return result

    async def cancel_order(self, client_order_id: str) -> OrderUpdate:
        order = self._own(client_order_id)
        if order.state in self.final_states:  # `is_final`, without the property's call
            return order.snapshot(ts_local=self._kernel.now)
        self.flow.cancel_requested(order, now_ns=self._kernel.now)
        result: OrderUpdate = await _Wait("cancel", order)
        return result

    async def edit_order(
        self,
        client_order_id: str,
        *,
        price: Decimal | int | str | None = None,
        size: Decimal | int | str | None = None,
    ) -> OrderUpdate:
        order = self._own(client_order_id)
        new_price = optional(price, "edit price")
        new_size = optional(size, "edit size")
        self.flow.check_edit(order, new_price, new_size, now_ns=self._kernel.now)  # may raise, at once
        result: OrderUpdate = await _Wait("edit", (order, new_price, new_size))
        return result


# Thresholds relative to the curve itself, so that the ratios do not depend on its unit (USD or
# cents give the same Sharpe). A change this much smaller than the equity is float noise, not
# PnL (sums of marks and fees leave ~1e-16 relative residues): a curve of only such changes is
# flat. Changes whose spread is this much smaller than the largest change have no spread: the
# rounding of a constant gain must not make an enormous ratio.
_NOISE = 1e-12
_SPREAD = 1e-6


def _changes(equity: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(equity)]


def _normalized_changes(equity: Sequence[float]) -> list[float] | None:
    """The curve's changes divided by the largest one (ratios are scale free, and so are their
    thresholds this way); None for a flat curve: no change beyond float noise."""
    diffs = _changes(equity)
    largest = max((abs(d) for d in diffs), default=0.0)
    level = max((abs(x) for x in equity), default=0.0)
    if largest == 0.0 or largest <= _NOISE * level:
        return None
    return [d / largest for d in diffs]


def _annualized(
    equity: Sequence[float], interval_s: float, square_spread: Callable[[list[float], float], float]
) -> float | None:
    """The mean change of `equity` over the square root of `square_spread(changes, mean)` (a
    variance: the changes are scaled by the largest, so 1 is the largest), x sqrt(intervals per
    year). 0 for a flat curve; None for fewer than two changes or a spread of none."""
    if len(equity) < 3:
        return None
    diffs = _normalized_changes(equity)
    if diffs is None:
        return 0.0
    mean = sum(diffs) / len(diffs)
    square = square_spread(diffs, mean)
    if square <= _SPREAD * _SPREAD:
        return None
    return mean / math.sqrt(square) * math.sqrt(YEAR_SECONDS / interval_s)


def _variance(diffs: list[float], mean: float) -> float:
    """The sample variance of the changes (Sharpe's spread)."""
    return sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)


def _downside_variance(diffs: list[float], mean: float) -> float:
    """The mean square of the losses over all changes, target 0 (Sortino's spread)."""
    return sum(d * d for d in diffs if d < 0) / len(diffs)


def sharpe_ratio(equity: Sequence[float], interval_s: float) -> float | None:
    """Annualized Sharpe ratio of the per-interval changes of an equity curve sampled every
    `interval_s` (USD PnL: the ratio does not depend on the capital it is measured against):
    mean / sample standard deviation x sqrt(intervals per year).

    A flat curve (no change beyond float noise) is 0: no return, for no risk. None when
    undefined: fewer than two changes, or changes that all are the same gain or loss (no
    variance to divide by)."""
    return _annualized(equity, interval_s, _variance)


def sortino_ratio(equity: Sequence[float], interval_s: float) -> float | None:
    """Annualized Sortino ratio: mean change / downside deviation (root mean square of the
    negative changes, over all intervals; target 0) x sqrt(intervals per year). A flat curve
    is 0; None when undefined (fewer than two changes, or gains with no loss ever)."""
    return _annualized(equity, interval_s, _downside_variance)


def max_drawdown(equity: Sequence[float]) -> float:
    """The largest fall of `equity` from a previous peak (the start counts as a peak at 0)."""
    peak = 0.0
    worst = 0.0
    for x in equity:
        if x > peak:
            peak = x
        elif peak - x > worst:
            worst = peak - x
    return worst


def _sharpe(samples: Sequence[tuple[int, float]], interval_s: float) -> float | None:
    """The Sharpe ratio of the sampled equity curve (a run's first sample is its start, at 0)."""
    if len(samples) < 3:
        return None
    return sharpe_ratio([e for _, e in samples], interval_s)


def _until(
    stream: Iterator[tuple[Any, int, Any]], end: int, cut: list[tuple[Any, int, Any]]
) -> Iterator[tuple[Any, int, Any]]:
    """`stream` up to its first frame at or after `end` (a window's end), which goes in `cut`."""
    for item in stream:
        ts = item[0]
        if ts is not None and ts >= end:
            cut.append(item)
            return
        yield item


def settlement_price(inst: Instrument, index: float | Decimal) -> Decimal:
    """What an expiring instrument settles at, in its quote currency, given the index price:
    money, so exact and reproducible (the README's "Money is exact"). A float index enters at
    its shortest repr (`from_float`, as a fill's index price and every USD rate do), so the
    recorded index's text, never its binary expansion; the intrinsic value is then Decimal
    arithmetic: exact for a USD-quoted option and a future; a coin option's is the intrinsic
    value over the index in the ledger's context (34 digits, `LEDGER_CONTEXT`), the same on
    every run. (In float, a 2000 USD delivery was booked as 2000.000000000000064 USD.)"""
    s = index if isinstance(index, Decimal) else from_float(index, "index price")
    if inst.kind is InstrumentKind.OPTION and inst.strike is not None:
        strike = inst.strike
        intrinsic = max(s - strike if inst.right is OptionRight.CALL else strike - s, _ZERO)
        return intrinsic if inst.quote.upper() in USD_LIKE else LEDGER_CONTEXT.divide(intrinsic, s)
    return s


class BacktestKernel:
    """Replays `sources` through their venues' decoders into `strategies` (module docstring)."""

    def __init__(
        self,
        plugins: Mapping[str, VenuePlugin],
        sources: Sequence[DataSource],
        strategies: Sequence[Strategy],
        settings: BacktestSettings = BacktestSettings(),
        *,
        fee_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        engine_limits: RiskLimits | None = None,
        strategy_limits: Mapping[str, RiskLimits] | None = None,
        log: structlog.typing.FilteringBoundLogger | None = None,
        progress: Callable[[int, int], None] | None = None,
        catalogs: Mapping[str, MarketCatalog] | None = None,
        on_failure: Mapping[str, FailurePolicy] | None = None,
        event_cache: EventCache | None = None,
        surface_settings: SurfaceSettings | None = None,
        compiled: bool = True,
    ) -> None:
        """`compiled`: the replay loop's common frames run in C (`_kernel.loop`) where it is
        built; False, or a tree without it, the Python loop, the reference (the same calls and
        side effects in the same order: tests/backtest/test_kernel_compiled.py)."""
        if not sources:
            raise StrategyError("a backtest needs at least one data source")
        self.settings = settings
        self.compiled = compiled and _kernel is not None
        # As live: a failed strategy's open orders are cancelled unless its policy is "leave".
        self.on_failure: dict[str, FailurePolicy] = dict(on_failure or {})
        self.catalogs = dict(catalogs or {})  # as cached: a backtest never refreshes from the venue
        # Bound once per logging configuration (`cached_logger`): orders and fills log at info
        # on the order path, which a run at "warning" filters out.
        self.log = cached_logger(log or structlog.get_logger("tradingd.backtest"))
        self.progress = progress
        self.registry = InstrumentRegistry()
        self.market = MarketState(self.registry)
        self.router: MarketRouter[_Slot] = MarketRouter(mailbox_capacity=settings.mailbox_capacity)
        self.flow = OrderFlow(
            self.registry,
            self.market,
            self._deliver_private,
            engine_limits=engine_limits,
            strategy_limits=strategy_limits,
            log=self.log,
        )
        self.ids = ClientOrderIds("bt")
        self.now = 0
        # The chains' volatility surfaces (`ctx.surface`), fitted in the strategy's call on the
        # replayed market's clock: the same data gives the same surfaces at the same instants.
        self.surfaces = SurfaceService(
            self.market,
            self.registry,
            surface_settings or SurfaceSettings(),
            lambda: self.now,
            log=self.log,
        )
        self._lat = int(settings.latency_ms * 1_000_000)
        resp = settings.response_latency_ms
        self._resp = self._lat if resp is None else int(resp * 1_000_000)
        self._timers: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        fee_overrides = fee_overrides or {}
        self._plugins = dict(plugins)
        self.sources = list(sources)
        self.decoders: dict[str, Decoder] = {}
        self.sims: dict[str, SimulatedVenue] = {}
        for src in self.sources:
            if src.venue in self.decoders:
                continue
            plugin = plugins[src.venue]
            decoder = checked_decoder(plugin, self.registry)  # one line if it lacks a member
            self.decoders[src.venue] = decoder
            self.sims[src.venue] = SimulatedVenue(
                src.venue,
                self.registry,
                plugin.fee_model(fee_overrides.get(src.venue, {})),
                decoder.book,
                index=self.market.index_of(src.venue),
                tickers=functools.partial(self.market.ticker, src.venue),
                queue_ahead=settings.queue_ahead,
            )
        self.slots: list[_Slot] = []
        for strategy in strategies:
            if not inspect.iscoroutinefunction(strategy.on_event):
                raise StrategyError(f"strategy {strategy.name!r}: on_event must be `async def`")
            slot = _Slot(
                strategy, Mailbox(settings.mailbox_capacity, on_drop=log_drops(strategy.name, self.log))
            )
            self.slots.append(slot)
        self.events = 0
        self.frames = 0
        self.malformed = 0
        self.bad_lines_seen = 0
        self._malformed_by: list[int] = [0] * len(self.sources)
        self._bare_by: list[int] = [0] * len(self.sources)  # bare frames among timestamped lines
        self._unfinished: list[list[tuple[Path, int | None]]] = [[] for _ in self.sources]
        # Where each source's frames went (`DataFileStats`); a venue's decoder stats as last
        # attributed to a source (control and unread channel counts move on frames of no event).
        n = len(self.sources)
        self._frames_by: list[int] = [0] * n
        self._control_by: list[int] = [0] * n
        self._unread_by: list[int] = [0] * n
        self._no_event_by: list[int] = [0] * n
        self._unrouted_by: list[int] = [0] * n
        # Of the unrouted frames: those the simulated venue used as they came (a trade checked
        # against resting orders, a book update of an instrument with orders), and the others
        # with book updates by the instruments they keep the books of: whether the fills used
        # those books is known only at the end (an instrument some strategy ordered).
        self._fill_used_by: list[int] = [0] * n
        self._book_frames_by: list[dict[tuple[tuple[str, str], ...], int]] = [{} for _ in range(n)]
        # The same for frames of one book update of the source's venue (most): by instrument.
        self._book_frame_by: list[dict[str, int]] = [{} for _ in range(n)]
        self._stats_seen: dict[str, tuple[int, int]] = {}
        self.warnings: list[str] = []
        self._expiries: list[tuple[int, str, str]] = []
        self._registry_size = -1
        self._expired: set[tuple[str, str]] = set()
        # Funding events a strategy held the perpetual at but nothing was booked for (no mark, or
        # no USD rate for the settlement currency), by (strategy, venue, instrument): how many,
        # and what was missing. Said after the run (`_funding_warnings`).
        self._funding_unpriced: dict[tuple[str, str, str], tuple[int, set[str]]] = {}
        self._equity_ns = int(settings.equity_interval_s * _NS)
        self._next_equity = 0
        self.chart_step_s = settings.equity_interval_s
        # The decoded-event cache (engine.store.evcache): None replays from frames only. After
        # the run, `data_path` says where the events came from: "frames", "frames, cache
        # written", or "cache" (`cache_entry` names the file).
        self.event_cache = event_cache
        self.data_path = "frames"
        self.cache_entry: Path | None = None
        self._evc_writer: CacheWriter | None = None
        self._ran = False  # `run` once: it lets go of what it ran with (`_let_go`)
        # The window (`BacktestSettings.start_ns/end_ns`): whether the replay stopped at its end
        # (the data went on), and then the readers' bad lines met, by file.
        self._stopped = False
        self._draining = False
        self._bad_read: dict[Path, int] = {}
        # A window with no frame of the data in it: (the last frame before it, the first after
        # it), each None when there is none (`_warnings` says it in one line).
        self._empty_window: tuple[int | None, int | None] | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _open(self, src: DataSource) -> FrameSource:
        if src.format == "recording":
            # A bad line is reported with its file and number and skipped (README, "Decode").
            if src.path.is_dir():  # a `tradingd record` directory: the venue's files in time order
                return RecordingSet(src.path, src.venue, skip_bad=True, on_bad=self._reader_bad_line)
            return RecordingReader(src.path, skip_bad=True, on_bad=self._reader_bad_line)
        return self._plugins[src.venue].open_data(src.path, src.format)

    def _reader_bad_line(self, path: Path, lineno: int, reason: str) -> None:
        if self._evc_writer is not None:  # kept where it came, for a replay from the cache
            self._evc_writer.bad_line(path, lineno, reason)
        if self._draining:  # past the window's end: the cache entry's, not this run's
            return
        self._read_bad_line(path, lineno, reason)

    def _read_bad_line(self, path: Path, lineno: int, reason: str) -> None:
        """A reader's bad line (or the cache's record of one), counted by file as met: a run
        that stops at its window's end counts those of the data it read, on either path (a
        reader's own count, and a cache entry's, are the whole file's)."""
        self._bad_read[path] = self._bad_read.get(path, 0) + 1
        self._bad_line(path, lineno, reason)

    def _data(
        self,
    ) -> tuple[list[Any], Any, list[Callable[[Any, int], list[MarketEvent]]], CacheWriter | None]:
        """The readers, the stream of (ts, source index, frame) and each source's decode: from
        the event cache when it holds this data set for these decoders (the replay decoders
        then stand in for the venues' own, books and counters included), else from the frames,
        recorded into a new cache entry when there is a cache."""
        venue_of = [src.venue for src in self.sources]
        cache = self.event_cache
        key = None
        if cache is not None:
            try:
                key = cache.key(self._plugins, self.sources)
            except OSError:  # a data file that cannot be read: the frame path says so
                cache = None
            except DecoderChanged as exc:  # the source on disk is not the code running
                self.log.warning("evcache.off", reason=str(exc))
                cache = None
        if cache is not None and key is not None:
            hit = cache.open(key, self.sources, self.decoders, self.log.warning)
            if hit is not None:
                self.data_path = "cache"
                self.cache_entry = hit.path
                for venue, rd in hit.decoders.items():
                    self.decoders[venue] = rd
                    self.sims[venue].books = rd.book
                return (
                    list(hit.readers),
                    hit.stream(self._read_bad_line),
                    [hit.decoders[v].apply for v in venue_of],
                    None,
                )
        readers: list[Any] = [self._open(src) for src in self.sources]
        stream: Any
        if len(readers) == 1:
            only = readers[0]
            # A recording tags its own lines (no generator around it); other sources are wrapped.
            if isinstance(only, RecordingReader):
                stream = only.tagged(0)
            else:
                stream = ((ts, 0, frame) for ts, frame in only)
        else:
            stream = merge_recordings(readers)
        decoders: list[Callable[[Any, int], list[MarketEvent]]] = [self.decoders[v].decode for v in venue_of]
        writer = None if cache is None or key is None else cache.writer(key, self.log.warning, self.sources)
        if writer is not None:
            self._evc_writer = writer
            writer.watch_registry(self.registry)
            stream = writer.wrap_stream(stream, readers)
            decoders = [writer.wrap_decoder(i, self.decoders[v], readers[i]) for i, v in enumerate(venue_of)]
        return readers, stream, decoders, writer

    def _bad_line(self, path: Path, lineno: int, reason: str) -> None:
        self.bad_lines_seen += 1
        n = self.bad_lines_seen
        if n <= _REPORT_FIRST or n % _REPORT_EVERY == 0:
            self.log.warning("data.bad_line", file=str(path), line=lineno, error=reason, count=n)

    def _malformed(self, reader: FrameSource, idx: int, venue: str, exc: Exception, count: int) -> None:
        self._malformed_by[idx] += 1
        if count <= _REPORT_FIRST or count % _REPORT_EVERY == 0:
            where = getattr(reader, "where", None)
            path, lineno = where() if where is not None else (reader.path, None)
            self.log.warning(
                "frame.malformed", venue=venue, file=str(path), line=lineno, error=str(exc), count=count
            )

    def _no_event(self, idx: int, venue: str) -> None:
        """A frame of source `idx` gave no market event: say why, from what its decoder counted
        meanwhile (a frame with events never counts as control or unread)."""
        self._no_event_by[idx] += 1
        stats = self.decoders[venue].stats
        control, unread = stats.control, stats.unknown_channel
        seen_control, seen_unread = self._stats_seen.get(venue, (0, 0))
        self._control_by[idx] += control - seen_control
        self._unread_by[idx] += unread - seen_unread
        self._stats_seen[venue] = (control, unread)

    def _data_end(self, readers: list[FrameSource], *, files: bool = True) -> None:
        """After the data: the totals of what was rate-limited, and (`files`: the data was read
        to its end) the `.zst` files that end inside a frame (cut short, or still being
        written), each named with its last time read."""
        if self.bad_lines_seen > _REPORT_FIRST:
            self.log.warning("data.bad_lines", total=self.bad_lines_seen, logged=_REPORT_FIRST)
        if self.malformed > _REPORT_FIRST:
            self.log.warning("frame.malformed_total", total=self.malformed, logged=_REPORT_FIRST)
        if not files:  # stopped at the window's end: what lies past it is not this run's
            return
        self._unfinished = self._cut_files(readers)
        for cut in self._unfinished:
            for path, last in cut:
                self.log.warning(
                    "data.unfinished",
                    file=str(path),
                    last=None if last is None else format_ts(last),
                    error="the .zst ends inside a frame (cut short, or still being written):"
                    " read to its last complete block",
                )

    @staticmethod
    def _cut_files(readers: list[FrameSource]) -> list[list[tuple[Path, int | None]]]:
        """Each source's `.zst` files that end inside a frame, with the last time read."""
        out: list[list[tuple[Path, int | None]]] = []
        for r in readers:
            if isinstance(r, RecordingSet | CachedReader):
                out.append(list(r.unfinished_files))
            elif isinstance(r, RecordingReader) and r.unfinished:
                out.append([(r.path, r.last_ts)])
            else:
                out.append([])
        return out

    def book(self, venue: str, instrument: str) -> OrderBook | None:
        decoder = self.decoders.get(venue)
        return None if decoder is None else decoder.book(instrument)

    def fee_model(self, venue: str) -> FeeModel | None:
        """The fee schedule the simulated venue books fills at (`StrategyContext.fee`)."""
        sim = self.sims.get(venue)
        return None if sim is None else sim.fees

    def _at(self, when: int, fn: Callable[..., None], *args: Any) -> None:
        seq = self._seq = self._seq + 1
        _push(self._timers, (when, seq, fn, args))

    def _run_timers(self, until: float) -> None:
        timers = self._timers
        pop = heapq.heappop
        while timers and timers[0][0] <= until:
            when, _, fn, args = pop(timers)
            if when > self.now:
                self.now = when
            fn(*args)

    # -- strategies -------------------------------------------------------------------------
    def _deliver(self, slot: _Slot, event: MarketEvent) -> None:
        if slot.failure is not None:
            return  # stopped (the fan-out being delivered may still name it)
        if slot.coro is not None:
            slot.mailbox.put(event)
            return
        coro = slot.strategy.on_event(event)
        if slot.phase != "on_event":
            self._drive(slot, coro, None, None)
            return
        # `_drive`'s first step, inline: a call less per strategy and event (the cost that grows
        # with the strategies), the same outcomes in the same way. Stepped by `next` on its
        # awaitable iterator, not `send(None)`: a coroutine that finishes (most events) then
        # returns the default from C, without raising and catching a `StopIteration` (about
        # 0.2 us less per strategy and event). What it raises, or awaits, is the same.
        try:
            awaited = next(coro.__await__(), _FINISHED)
        except Exception as exc:  # a strategy's bug: logged and counted, the run goes on
            self._strategy_error(slot, exc)
        except BaseException as exc:
            self._fault(slot, exc)
            return
        else:
            if awaited is not _FINISHED:
                if type(awaited) is _Wait:
                    slot.coro = coro
                    self._park(slot, awaited)
                    return
                self._unsimulated(slot, coro, awaited)
        if slot.waiting:
            waiting = slot.mailbox.get_nowait()
            if waiting is not None:
                self._drive(slot, slot.strategy.on_event(waiting), None, None)

    def _drive(
        self, slot: _Slot, coro: Coroutine[Any, Any, Any], value: Any, error: BaseException | None
    ) -> None:
        """Run a strategy coroutine until it finishes or parks; then feed it what waited.

        As live: an ordinary exception from `on_event` is logged and counted and the strategy
        goes on; one from `on_start` or `on_stop`, or anything that is not an `Exception`
        (`SystemExit`, `KeyboardInterrupt`), fails the strategy (`_fail`): it is stopped and
        reported failed in the result, and the run goes on with the others."""
        while True:
            try:
                awaited = coro.send(value) if error is None else coro.throw(error)
            except StopIteration:
                slot.coro = None
                if slot.phase != "on_event":
                    if slot.phase == "on_stop":
                        if slot.failure is not None:
                            self._after_failure(slot)
                        return
                    slot.phase = "on_event"
            except Exception as exc:  # a strategy's bug: logged and counted, the run goes on
                slot.coro = None
                if slot.phase != "on_event":
                    self._fail(slot, exc)
                    return
                self._strategy_error(slot, exc)
            except BaseException as exc:
                self._fault(slot, exc)
                return
            else:
                if type(awaited) is _Wait:
                    slot.coro = coro
                    self._park(slot, awaited)
                    return
                self._unsimulated(slot, coro, awaited)
            if not slot.waiting:
                return
            event = slot.mailbox.get_nowait()
            if event is None:
                return
            coro, value, error = slot.strategy.on_event(event), None, None

    def _fault(self, slot: _Slot, exc: BaseException) -> None:
        """Not an `Exception` (`SystemExit`, `KeyboardInterrupt`...): the strategy fails; trio's
        cancellation goes on up."""
        cancelled, fault = split_strategy_fault(exc)
        if cancelled is not None:
            raise exc
        assert fault is not None
        slot.coro = None
        self._fail(slot, fault)

    def _unsimulated(self, slot: _Slot, coro: Coroutine[Any, Any, Any], awaited: Any) -> None:
        """The strategy awaited something that is not its context's: an error of the strategy."""
        coro.close()
        slot.coro = None
        self._strategy_error(
            slot,
            StrategyError(
                f"awaited {awaited!r}, which a backtest cannot simulate: await only the "
                "context's methods (place_order, cancel_order, sleep) in strategies"
            ),
        )

    def _fail(self, slot: _Slot, exc: BaseException) -> None:
        """The strategy failed in `slot.phase`: it gets no more events; `on_stop` is called once
        (unless that is what failed), then its open orders follow its `on_failure` policy."""
        phase = slot.phase
        first = slot.failure is None
        if first:
            slot.failure = StrategyFailure(
                phase=phase, error=type(exc).__name__, message=redact_text(str(exc))[:500], ts_ns=self.now
            )
            if self.router.slot(slot.name) is not None:
                self.router.remove(slot.name)
        self.log.critical(
            "strategy.failed",
            strategy=slot.name,
            phase=phase,
            error=type(exc).__name__,
            policy=self.on_failure.get(slot.name, "cancel"),
            exc_info=_strategy_frames(exc),
        )
        if phase == "on_stop":
            self._after_failure(slot)
            return
        slot.phase = "on_stop"
        self._drive(slot, slot.strategy.on_stop(), None, None)

    def _after_failure(self, slot: _Slot) -> None:
        """A failed strategy's open orders, by its policy: cancelled at the simulated venue now
        (the reports arrive after the response latency), or left working."""
        if self.on_failure.get(slot.name, "cancel") != "cancel":
            return
        for order in self.flow.tracker.open_orders(slot.name):
            try:
                events = self.sims[order.request.venue].cancel(order, self.now)
            except OrderRejected as exc:
                self.flow.cancel_refused(order, exc, now_ns=self.now)
                continue
            self._at(self.now + self._resp, self._apply, events)

    def _strategy_error(self, slot: _Slot, exc: Exception) -> None:
        slot.errors += 1
        if slot.errors <= 20 or slot.errors % 1000 == 0:
            self.log.error(
                "strategy.error",
                strategy=slot.name,
                errors=slot.errors,
                error=repr(exc),
                exc_info=_strategy_frames(exc),
            )

    def _resume(self, slot: _Slot, value: Any = None, error: BaseException | None = None) -> None:
        coro = slot.coro
        assert coro is not None
        self._drive(slot, coro, value, error)

    def _park(self, slot: _Slot, wait: _Wait) -> None:
        now = self.now
        action = wait.action
        # An order's and a cancel's arrival (one of each per order): `_at`, inline.
        if action == "place":
            seq = self._seq = self._seq + 1
            _push(self._timers, (now + self._lat, seq, self._arrive_order, (slot, wait.arg)))
        elif action == "cancel":
            seq = self._seq = self._seq + 1
            _push(self._timers, (now + self._lat, seq, self._arrive_cancel, (slot, wait.arg)))
        elif action == "sleep":
            delay = max(0, int(float(wait.arg) * _NS))
            self._at(now + delay, self._resume, slot)
        elif action == "edit":
            self._at(now + self._lat, self._arrive_edit, slot, *wait.arg)
        else:  # pragma: no cover - only the context creates _Wait objects
            raise AssertionError(action)

    # -- the venue side ---------------------------------------------------------------------
    def _arrive_order(self, slot: _Slot, order: Order) -> None:
        req = order.request
        key = (req.venue, req.instrument)
        ordered = slot.ordered
        ordered[key] = ordered.get(key, 0) + 1
        sim = self.sims[req.venue]
        now = self.now
        events = sim.submit(order, now)
        if req.expire_at_ns is not None:
            self._at(req.expire_at_ns, self._expire_gtd, sim)
        seq = self._seq = self._seq + 1  # `_at`, inline
        _push(self._timers, (now + self._resp, seq, self._answer_order, (slot, order, events)))

    def _answer_order(self, slot: _Slot, order: Order, events: list[PrivateEvent]) -> None:
        first = events[0] if events else None
        if isinstance(first, OrderUpdate) and first.status is _REJECTED:
            exc = OrderRejected(
                first.reason or "rejected",
                venue=order.request.venue,
                instrument=order.request.instrument,
                client_order_id=order.client_order_id,
                code=first.reason,
                venue_message=first.reason,
            )
            self.flow.venue_rejected(order, exc, now_ns=self.now)
            self._resume(slot, None, exc)
            return
        self._answer(slot, order, events)

    def _arrive_cancel(self, slot: _Slot, order: Order) -> None:
        sim = self.sims[order.request.venue]
        now = self.now
        try:
            events = sim.cancel(order, now)
        except OrderRejected as exc:
            self._at(now + self._resp, self._answer_cancel_refused, slot, order, exc)
            return
        seq = self._seq = self._seq + 1  # `_at`, inline
        _push(self._timers, (now + self._resp, seq, self._answer, (slot, order, events)))

    def _arrive_edit(self, slot: _Slot, order: Order, price: Decimal | None, size: Decimal | None) -> None:
        sim = self.sims[order.request.venue]
        try:
            events = sim.edit(order, self.now, price=price, size=size)
        except OrderRejected as exc:
            self._at(self.now + self._resp, self._resume, slot, None, exc)
            return
        self._at(self.now + self._resp, self._answer, slot, order, events)

    def _answer(self, slot: _Slot, order: Order, events: list[PrivateEvent]) -> None:
        """The venue's answer to an order, a cancel or an edit: its reports applied, then the
        strategy resumed with the order as it stands."""
        flow = self.flow  # `_apply`, inline; an order report (most) to `on_update` at once
        for ev in events:
            if ev.__class__ is OrderUpdate:  # `on_private`'s first test
                flow.on_update(ev)
            else:
                flow.on_private(ev)
        answer = order.snapshot(ts_local=self.now)
        coro = slot.coro  # `_resume`, inline
        assert coro is not None
        self._drive(slot, coro, answer, None)

    def _answer_cancel_refused(self, slot: _Slot, order: Order, exc: OrderRejected) -> None:
        self.flow.cancel_refused(order, exc, now_ns=self.now)
        self._resume(slot, None, exc)

    def _expire_gtd(self, sim: SimulatedVenue) -> None:
        events = sim.expire(self.now)
        if events:
            self._at(self.now + self._resp, self._apply, events)

    def _apply(self, events: list[PrivateEvent]) -> None:
        """Venue reports reach the engine (at the response time)."""
        on_private = self.flow.on_private
        for ev in events:
            on_private(ev)

    def _deliver_private(self, event: PrivateEvent) -> None:
        slot = self.router.slot(event.strategy or "")
        if slot is None:
            return
        if isinstance(event, Fill):
            # `_mark_drawdown`, inline (the fill's own booking made the ledger)
            flow = self.flow
            ledger = flow.ledgers.get(slot.name) or flow.ledger(slot.name)
            self._track_drawdown(slot, self.now, float(ledger.equity_usd()))
            self._record_fill(slot, event)
        self._deliver(slot, event)

    def _record_fill(self, slot: _Slot, fill: Fill) -> None:
        """What the report needs of a fill (per fill, never per market event): the fill for the
        charts, its order for the fill ratio, and the position's round trip."""
        if fill.client_order_id:
            slot.filled_ids.add(fill.client_order_id)
        slot.filled_on.add((fill.venue, fill.instrument))
        ledger = self.flow.ledgers.get(slot.name) or self.flow.ledger(slot.name)
        pos = ledger.positions.get((fill.venue, fill.instrument))
        if pos is None:
            return
        if len(slot.fills) < _FILLS_KEPT:
            # The fee in USD at the rates the ledger books it at; None (not 0) while unknown.
            inst = pos.instrument
            fee_usd: float | None = 0.0
            if fill.fee != 0:
                rq, _, rf = ledger.rates(inst, fill.fee_currency, fill.index_price)
                if fill.fee_currency == inst.symbol:  # taken in shares: valued at the fill's price
                    fee_usd = None if rq is None else float(fill.fee * inst.contract_size * fill.price) * rq
                else:
                    fee_usd = None if rf is None else float(fill.fee) * rf
            # `_tag_of`, inline: its order's tag ("" for none, or an order no longer known).
            order = self.flow.tracker.get(fill.client_order_id) if fill.client_order_id else None
            tag = "" if order is None else order.request.tag
            slot.fills.append(
                FillRecord(
                    ts=self.now,
                    instrument=f"{fill.venue}:{fill.instrument}",
                    side=fill.side._value_,  # `.value`, without the enum property's two calls
                    price=float(fill.price),
                    size=float(fill.size),
                    fee_usd=fee_usd,
                    liquidity=fill.liquidity._value_,
                    tag=tag,
                )
            )
        else:
            slot.fills_dropped += 1
        slot.trips.update((fill.venue, fill.instrument), pos.qty, pos.realized_usd, pos.fees_usd, self.now)

    def _tag_of(self, fill: Fill) -> str:
        """The tag of the order `fill` filled ("" for none, or an order no longer known)."""
        order = self.flow.tracker.get(fill.client_order_id) if fill.client_order_id else None
        return "" if order is None else order.request.tag

    def _settled(self, venue: str, symbol: str) -> None:
        """A settlement closed positions in `symbol`: their round trips end now."""
        for slot in self.slots:
            pos = self.flow.ledger(slot.name).positions.get((venue, symbol))
            if pos is not None:
                slot.trips.update((venue, symbol), pos.qty, pos.realized_usd, pos.fees_usd, self.now)

    # -- expiry -----------------------------------------------------------------------------
    def _refresh_expiries(self) -> None:
        self._registry_size = len(self.registry)
        self._expiries = sorted(
            (inst.expiry_ns, inst.venue, inst.symbol)
            for inst in self.registry
            if inst.expiry_ns is not None and (inst.venue, inst.symbol) not in self._expired
        )

    def _expire_instruments(self, now: int, *, notify: bool = True) -> None:
        """Instruments whose expiry passed: their orders end, and (`_deliver_expiry`) their
        positions settle at the index and their subscribers get an EXPIRED status. The delivery
        reaches the engine a response latency after the expiry is seen, as a venue's report
        does: the venue delivers the position it holds, fills it made before the expiry
        included, whose reports are still in flight until then. Before a window's start
        (`notify` False) nobody holds anything or is subscribed yet: settled at once, unsaid."""
        while self._expiries and self._expiries[0][0] <= now:
            _, venue, symbol = self._expiries.pop(0)
            self._expired.add((venue, symbol))
            inst = self.registry.get(venue, symbol)
            assert inst is not None
            index = self.market.index.get((venue, inst.base))
            sim = self.sims.get(venue)
            if sim is not None:
                events = sim.expire(now, instrument=symbol)
                if events:
                    # Its orders' final reports, after the fills in flight (a strategy hears
                    # an order's fill before its final state), as `_expire_gtd`'s.
                    if notify:
                        self._at(now + self._resp, self._apply, events)
                    else:
                        self._apply(events)
            if notify:
                self._at(now + self._resp, self._deliver_expiry, inst, index, True)
            else:
                self._deliver_expiry(inst, index, False)

    def _deliver_expiry(self, inst: Instrument, index: float | None, notify: bool) -> None:
        """An expired instrument's delivery (`_expire_instruments`): every position in it settled
        at `index` (the index when the expiry was seen), else said (never settled at a guessed
        price); then, with `notify`, its subscribers' EXPIRED status."""
        venue, symbol = inst.venue, inst.symbol
        if index is not None:
            s = from_float(index, "index price")
            price = settlement_price(inst, s)
            sim = self.sims.get(venue)
            fees = sim.fees if sim is not None else None
            for name, ledger in self.flow.ledgers.items():
                qty = ledger.position(venue, symbol)
                if qty != 0:
                    # The venue's delivery fee, where its fee model knows one (Deribit's: half a
                    # taker's; Derive documents none): counted in the fees, as a fill's.
                    if isinstance(fees, DeliveryFeeModel):
                        fee, currency = fees.delivery_fee(inst, price, qty, s)
                    else:
                        fee, currency = _ZERO, inst.settle
                    realized = ledger.settle(inst, price, fee=fee, fee_currency=currency)
                    self.log.info(
                        "position.settled",
                        strategy=name,
                        instrument=symbol,
                        price=decimal_text(price),
                        realized=decimal_text(realized),
                        fee=decimal_text(fee),
                        fee_currency=currency,
                    )
            self._settled(venue, symbol)
        else:
            # No delivery price without the index: never settled at a guessed one. Said, not
            # left to a table that shows the dead instrument held (and marked at its last
            # mark, or at its cost where it never had one) as if it traded on.
            holders = sorted(n for n, lg in self.flow.ledgers.items() if lg.position(venue, symbol) != 0)
            if holders:
                self._warn(
                    "expiry_unpriced",
                    f"{venue}:{symbol} expired at {format_ts(inst.expiry_ns or self.now)} with no"
                    f" {inst.base} index price in the data: not settled, still held by"
                    f" {', '.join(holders)} (its unrealized PnL is not a delivery's)",
                )
        if not notify:
            return
        status = Status(
            venue=venue,
            instrument=symbol,
            ts_exchange=inst.expiry_ns,
            ts_local=self.now,
            status=StatusKind.EXPIRED,
            message=f"{symbol} expired",
            data={"settlement_index": index},
        )
        for slot in self.router.route(status):
            self._deliver(slot, status)

    def _resolve(self, status: Status) -> None:
        """A prediction market resolved: its resting orders end and its positions settle at the
        payout the venue announced (`data["payout"]`, 1.0 for the winning outcome, else 0.0).
        Both reach the engine a response latency later, as a venue's reports do, after every
        fill the venue made before the resolution, whose report is still in flight: the orders'
        final reports after their fills, and one settlement (`_settle_late`) of the shares the
        account then holds, as the venue pays out (as an option's delivery, `_deliver_expiry`).
        Settled at once and again later, a sale crossing the resolution was booked on a
        settled (flat) position: short shares for a while, and two round trips."""
        payout = status.data.get("payout")
        if not isinstance(payout, int | float):
            self.log.warning("resolution.no_payout", venue=status.venue, instrument=status.instrument)
            return
        sim = self.sims.get(status.venue)
        if sim is not None:
            events = sim.expire(self.now, instrument=status.instrument)
            if events:
                self._at(self.now + self._resp, self._apply, events)
        self._at(self.now + self._resp, self._settle_late, status.venue, status.instrument, payout)

    def _settle_late(self, venue: str, instrument: str, payout: float) -> None:
        """Every position in a resolved market's token closed at its payout (none: nothing)."""
        if self.flow.settle(venue, instrument, payout):
            self._settled(venue, instrument)

    def _funding(self, status: Status) -> None:
        """A perpetual's funding event passed (`StatusKind.FUNDING`, from Tardis'
        `derivative_ticker` funding fields): each strategy holding it receives
        `engine.funding_amount` (positive rate: longs pay) at the last mark before the event, in
        the perpetual's settlement currency, booked at the USD rate of now (`Ledger.funding`).
        Without a mark or a USD rate nothing is booked (never at an unknown rate): logged, and
        counted for the report's warnings (`_funding_warnings`): a PnL without its funding is
        not to be read as one with it."""
        inst = self.registry.get(status.venue, status.instrument)
        rate = status.data.get("funding_rate")
        if inst is None or not isinstance(rate, int | float):
            return
        mark = self.market.mark(status.venue, status.instrument)
        usd_rate = self.market.usd_rate(status.venue, inst.settle)
        for name, ledger in self.flow.ledgers.items():
            qty = ledger.position(status.venue, status.instrument)
            if qty == 0:
                continue
            if mark is None or mark <= 0 or usd_rate is None:
                self.log.warning(
                    "funding.unpriced", strategy=name, instrument=status.instrument, funding_rate=rate
                )
                key = (name, status.venue, status.instrument)
                count, missing = self._funding_unpriced.get(key, (0, set()))
                if mark is None or mark <= 0:
                    missing.add("mark price")
                if usd_rate is None:
                    missing.add(f"{inst.settle} USD rate")
                self._funding_unpriced[key] = (count + 1, missing)
                continue
            amount = funding_amount(
                qty,
                Decimal(repr(mark)),
                Decimal(repr(rate)),
                inverse=inst.inverse,
                contract_size=inst.contract_size,
            )
            usd = ledger.funding(inst, amount, inst.settle, usd_rate)
            self.log.info(
                "position.funding",
                strategy=name,
                instrument=status.instrument,
                funding_rate=rate,
                amount=decimal_text(amount),
                currency=inst.settle,
                usd=decimal_text(usd),
            )

    # -- equity -----------------------------------------------------------------------------
    def _mark_drawdown(self, slot: _Slot) -> None:
        self._track_drawdown(slot, self.now, float(self.flow.ledger(slot.name).equity_usd()))

    @staticmethod
    def _track_drawdown(slot: _Slot, now: int, equity: float) -> None:
        """The max drawdown, on every chart sample and every fill (the equity curve alone, every
        `equity_interval_s`, misses what falls between), with its peak and trough points."""
        if slot.dd_peak_ts is None:
            slot.dd_peak_ts = now
        if equity > slot.dd_peak:
            slot.dd_peak, slot.dd_peak_ts = equity, now
        elif slot.dd_peak - equity > slot.max_dd:
            slot.max_dd = slot.dd_peak - equity
            slot.dd_points = ((slot.dd_peak_ts, slot.dd_peak), (now, equity))

    def _sample(self, now: int) -> None:
        """Every chart step: the charts; every equity interval: the equity curve as well."""
        equity_due = now >= self._next_equity
        if equity_due:
            step = self._equity_ns
            self._next_equity += step * ((now - self._next_equity) // step + 1)
        mark = self.market.mark
        for slot in self.slots:
            ledger = self.flow.ledger(slot.name)
            equity = float(ledger.equity_usd())
            slot.chart.add(
                now,
                equity,
                {
                    f"{venue}:{symbol}": (float(p.qty), mark(venue, symbol))
                    for (venue, symbol), p in ledger.positions.items()
                },
            )
            self._track_drawdown(slot, now, equity)
            if equity_due:
                slot.samples.append((now, equity))

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> BacktestResult:
        """Replay every source to the end and return the result. Meanwhile log lines carry the
        simulated time (`"clock": "sim"`, engine.logs.setup): from the first frame read to the
        end of what was in flight when the data ended; before the first frame, the wall time."""
        if self._ran:
            raise RuntimeError("a BacktestKernel runs once: make a new one for another run")
        self._ran = True
        with simulated_clock(lambda: self.now or None):  # `now` is 0 until the first frame
            try:
                return await self._replay()
            except BaseException:
                if self._evc_writer is not None:  # no cache entry from half a replay
                    self._evc_writer.abort()
                    self._evc_writer = None
                raise
            finally:
                self._let_go()

    def _let_go(self) -> None:
        """The run is over (or raised): what refers back to the kernel from within lets go, so
        that a finished kernel is in no reference cycle and is freed by reference counting as
        soon as its last outside reference goes, with its decoders and books, simulated venues,
        order flow, market and strategies (a sweep worker runs many: each waited for a full
        collection). Those references: the order flow's `deliver` and its own callbacks
        (`OrderFlow.release`); the surface service's clock (from now on the time the run ended
        at, which `now` no longer moves from); and each slot's strategy, whose context holds the
        kernel, with the coroutine a run that raised may have left parked (a slot's `strategy`
        is gone after the run: its counts stay). A strategy the caller still holds keeps its
        context, and the kernel through it: readable as before. The result is made before, and
        is the same. A strategy's coroutine parked when the run raised is closed first, while
        the flow still takes what its `finally` may do (dropping it was not enough: the
        exception's traceback may hold it, and it would have closed only after the flow let go);
        one that will not close is logged, the run's outcome is not changed."""
        for slot in self.slots:
            coro, slot.coro = slot.coro, None
            if coro is not None:
                try:
                    coro.close()
                except Exception as exc:  # it awaited in its `finally`, or raised there
                    self.log.warning("backtest.strategy_not_closed", strategy=slot.name, error=repr(exc))
        self.flow.release()
        self.surfaces.clock = functools.partial(int, self.now)
        for slot in self.slots:
            if hasattr(slot, "strategy"):
                del slot.strategy

    async def _replay(self) -> BacktestResult:
        wall0 = time.perf_counter()
        for slot in self.slots:
            self.router.add(slot)
            slot.keys_seen.update(slot.keys)
            slot.strategy.attach(_Context(self, slot))
        readers, stream, decoders, writer = self._data()
        venue_of = [src.venue for src in self.sources]
        total_bytes = sum(r.size for r in readers)
        interval = self._equity_ns = int(self.settings.equity_interval_s * _NS)
        # The charts are sampled every `interval / k` (<= 10 s), the equity curve every k-th
        # time, on the frames it always was (the curve and Sharpe do not depend on the charts).
        per = max(1, math.ceil(self.settings.equity_interval_s / _CHART_STEP_S))
        if interval % per:
            per = 1
        interval //= per
        self.chart_step_s = interval / _NS
        next_sample = 0
        start_ns: int | None = None
        events_count = 0
        frames = 0
        malformed = 0
        routes = self.router.routes
        route = self.router.route
        on_ticker = self.market.on_ticker
        sims = self.sims
        deliver = self._deliver
        timers = self._timers
        frames_by = self._frames_by
        unrouted_by = self._unrouted_by
        fill_used_by = self._fill_used_by
        book_frames_by = self._book_frames_by
        book_frame_by = self._book_frame_by
        no_event = self._no_event
        registry = self.registry
        resp = self._resp
        next_expiry = math.inf
        started = False
        strategies_started = False
        # The window: frames before its start warm the books up (`_warm_up`), and the replay
        # stops at the first frame at or after its end (`_until`, which keeps that frame in
        # `cut`). Without one, the loop below reads the stream itself: no cost per frame.
        window_start, window_end = self.settings.start_ns, self.settings.end_ns
        it: Iterator[tuple[Any, int, Any]] = iter(stream)
        main: Any = it  # Any, as `stream`: the hot loop's events are dispatched by class
        warmed = 0
        if window_start is not None:
            first, warmed = await self._warm_up(it, readers, decoders, window_start, total_bytes)
            if first is not None:
                main = itertools.chain((first,), it)
            next_expiry = self._expiries[0][0] if self._expiries else math.inf
        cut: list[tuple[Any, int, Any]] = []
        if window_end is not None:
            main = _until(main, window_end, cut)
        # The compiled loop (`_kernel.loop`) takes the common frames once the strategies have
        # started, from the same iterator, and hands back the rest: a frame it did not touch
        # (processed below as in the Python loop), a malformed one, or a frame's tail.
        loop = _kernel.loop if self.compiled else None
        consts: tuple[Any, ...] = ()
        take = main.__next__
        while True:
            if loop is not None and strategies_started:
                if not consts:
                    consts = self._loop_consts(decoders, venue_of, resp)
                state: list[Any] = [frames, events_count, next_sample, next_expiry]
                back: Any = loop(self, main, consts, state)
                frames, events_count = state[0], state[1]
                if back is None:
                    break
                code, ts, idx, frame = back
                if code == _C_MALFORMED:  # `frame` is the decoder's MalformedFrame
                    malformed += 1
                    self._malformed(readers[idx], idx, venue_of[idx], frame, malformed)
                    continue
                if code == _C_FRAME:  # `ts` is the item as read
                    ts, idx, frame = ts
            else:
                code = _C_FRAME
                try:
                    ts, idx, frame = take()
                except StopIteration:
                    break
            if code == _C_FRAME:
                if ts is None:
                    if not started and not warmed:  # bare frames from the start: not a recording at all
                        raise DataError(
                            f"{readers[idx].path}: a bare frame has no receive time and cannot be replayed"
                        )
                    self._bare_frame(readers, idx)
                    continue
                if not started:
                    started = True
                    start_ns = ts
                    self.now = ts
                    next_sample = ts + interval
                    # The curves start at the start, flat (nothing held yet): a loss taken at once
                    # (crossing the spread, fees) is the curve's first change, in the ratios too.
                    self._next_equity = ts
                    self._sample(ts)
                if timers and timers[0][0] <= ts:
                    self._run_timers(ts)
                self.now = ts
                frames += 1
                frames_by[idx] += 1
                try:
                    events = decoders[idx](frame, ts)
                except MalformedFrame as exc:
                    malformed += 1
                    self._malformed(readers[idx], idx, venue_of[idx], exc, malformed)
                    continue
                if not strategies_started and events:
                    # Before the first market event: the recording's opening (instrument
                    # definitions) is known, as a live session knows it once connected.
                    strategies_started = True
                    for slot in self.slots:
                        self._drive(slot, slot.strategy.on_start(), None, None)
                events_count += len(events)
                routed = False
                fill_used = False
                for ev in events:
                    cls = ev.__class__
                    if cls is Ticker:
                        on_ticker(ev)
                    elif cls is BookUpdate:
                        sim = sims[ev.venue]
                        if ev.instrument in sim.reach:  # orders rest there, or sizes are consumed
                            fill_used = True
                            # Most updates reach no order: `on_book` would do nothing.
                            if sim.book_reaches(ev):
                                out = sim.on_book(ev, ts)
                                if out:
                                    self._at(ts + resp, self._apply, out)
                    elif cls is Trade:
                        sim = sims[ev.venue]
                        if sim.resting.get(ev.instrument):
                            fill_used = True
                            out = sim.on_trade(ev, ts)
                            if out:
                                self._at(ts + resp, self._apply, out)
                    elif cls is Status and ev.status is StatusKind.MARKET_RESOLVED:
                        self._resolve(ev)
                    elif cls is Status and ev.status is StatusKind.FUNDING:
                        self._funding(ev)
                    kind = ev.kind
                    slots = routes.get((ev.venue, ev.instrument, kind), ()) if kind is not None else route(ev)
                    if slots:
                        routed = True
                        for slot in slots:
                            slot.received += 1
                            if slot.coro is not None or slot.phase != "on_event" or slot.failure is not None:
                                deliver(slot, ev)
                                continue
                            # `_deliver` inline for its common case (a strategy idle in `on_event`):
                            # a call less per strategy and event, the same steps in the same order.
                            coro = slot.strategy.on_event(ev)
                            try:
                                awaited = next(coro.__await__(), _FINISHED)
                            except Exception as exc:  # a strategy's bug: logged and counted
                                self._strategy_error(slot, exc)
                            except BaseException as exc:
                                self._fault(slot, exc)
                                continue
                            else:
                                if awaited is not _FINISHED:
                                    if type(awaited) is _Wait:
                                        slot.coro = coro
                                        self._park(slot, awaited)
                                        continue
                                    self._unsimulated(slot, coro, awaited)
                            if slot.waiting:
                                waiting = slot.mailbox.get_nowait()
                                if waiting is not None:
                                    self._drive(slot, slot.strategy.on_event(waiting), None, None)
                if not routed:
                    if events:
                        unrouted_by[idx] += 1
                        if fill_used:
                            fill_used_by[idx] += 1
                        elif len(events) == 1:  # most frames: one book update, keyed by its book
                            if cls is BookUpdate:
                                if ev.venue == venue_of[idx]:  # keyed by its instrument: no tuple
                                    single = book_frame_by[idx]
                                    inst = ev.instrument
                                    single[inst] = single.get(inst, 0) + 1
                                else:  # another venue's book (a decoder's own choice): as a set of one
                                    one = ((ev.venue, ev.instrument),)
                                    counts = book_frames_by[idx]
                                    counts[one] = counts.get(one, 0) + 1
                        else:
                            books = tuple(
                                dict.fromkeys(
                                    (e.venue, e.instrument) for e in events if type(e) is BookUpdate
                                )
                            )
                            if books:
                                counts = book_frames_by[idx]
                                counts[books] = counts.get(books, 0) + 1
                    else:
                        no_event(idx, venue_of[idx])
            if ts >= next_sample:
                self._sample(ts)
                next_sample += interval * ((ts - next_sample) // interval + 1)
                if len(registry) != self._registry_size:
                    self._refresh_expiries()
                    next_expiry = self._expiries[0][0] if self._expiries else math.inf
            if frames & (_CHECKPOINT_EVERY - 1) == 0:
                if self.progress is not None:
                    self.progress(sum(r.bytes_read for r in readers), total_bytes)
                await trio.lowlevel.checkpoint()
            if ts >= next_expiry:
                self._expire_instruments(ts)
                next_expiry = self._expiries[0][0] if self._expiries else math.inf
        self.malformed = malformed
        self._stopped = stopped = bool(cut)
        self._data_end(readers, files=not stopped)
        if self.data_path == "cache":  # said at the end, in market time as the run's other lines
            self.log.info("evcache.read", file=str(self.cache_entry))
        if writer is not None and not stopped:
            self._commit(writer, readers)
        end_ns = self.now if started else None
        if started:  # the window, where the data covers it (else its first or last frame)
            if warmed and window_start is not None:
                start_ns = window_start
            if stopped:
                end_ns = window_end
        # A window the data has no frame in: nothing to trade, no strategy started (or stopped).
        if not started and (warmed or stopped):
            self._empty_window = (self.now if warmed else None, cut[0][0] if stopped else None)
        elif not strategies_started:
            for slot in self.slots:
                self._drive(slot, slot.strategy.on_start(), None, None)
        # What was in flight when the data ended still happens (against the last books).
        self._run_timers(math.inf)
        for slot in self.slots:
            if started and slot.coro is None and slot.failure is None:  # a failed one's on_stop has run
                slot.phase = "on_stop"
                self._drive(slot, slot.strategy.on_stop(), None, None)
        self._run_timers(math.inf)
        if started:
            self._next_equity = self.now  # the end is always on the equity curve
            self._sample(self.now)
        self.events = events_count
        self.frames = frames
        for slot in self.slots:
            slot.keys_seen.update(slot.keys)
        self._warnings()
        result = self._result(time.perf_counter() - wall0, start_ns, end_ns, readers)
        if writer is not None and stopped:
            # The cache entry is the whole data set's (the one every window of it reads): the
            # rest of the data is decoded into it, after the result (which it does not change).
            await self._drain(cut[0], it, decoders, total_bytes, readers)
            self._commit(writer, readers)
        if self.progress is not None:
            self.progress(total_bytes, total_bytes)
        return result

    def _loop_consts(self, decoders: list[Any], venue_of: list[str], resp: int) -> tuple[Any, ...]:
        """What the compiled loop calls and reads, in its order (`_kernel.c`, enum `C_*`)."""
        return (
            decoders,
            venue_of,
            self.sims,
            self.router.routes,
            self.router.route,
            self.market.on_ticker,
            self._deliver,
            self._timers,
            self._frames_by,
            self._unrouted_by,
            self._fill_used_by,
            self._book_frames_by,
            self._book_frame_by,
            self._no_event,
            resp,
            self._at,
            self._apply,
            self._run_timers,
            self._strategy_error,
            self._fault,
            self._park,
            self._unsimulated,
            self._drive,
            self._resolve,
            self._funding,
            Ticker,
            BookUpdate,
            Trade,
            Status,
            StatusKind.MARKET_RESOLVED,
            StatusKind.FUNDING,
            _Wait,
            MalformedFrame,
            _CHECKPOINT_EVERY - 1,
            OrderBook,  # the books whose best levels the venue check reads from their slots
            # The market whose `on_ticker` the loop does in C for its common case (the method
            # for the rest), where it is that method.
            self.market if type(self.market) is MarketState else None,
            _Slot,  # the slots whose members the delivery reads and writes by their offsets
        )

    def _commit(self, writer: CacheWriter, readers: list[Any]) -> None:
        self._evc_writer = None
        entry = writer.commit(self.decoders, readers, self._cut_files(readers))
        if entry is not None:
            self.data_path = "frames, cache written"
            self.cache_entry = entry
            self.log.info("evcache.written", file=str(entry))

    def _bare_frame(self, readers: list[Any], idx: int) -> None:
        """One bare line among timestamped ones is a bad line: reported, skipped."""
        where = getattr(readers[idx], "where", None)
        path, lineno = where() if where is not None else (readers[idx].path, None)
        self._bare_by[idx] += 1
        self._bad_line(path, lineno or 0, "a bare frame has no receive time")

    async def _warm_up(
        self,
        stream: Iterator[tuple[Any, int, Any]],
        readers: list[Any],
        decoders: list[Callable[[Any, int], list[MarketEvent]]],
        start: int,
        total_bytes: int,
    ) -> tuple[tuple[Any, int, Any] | None, int]:
        """The frames before the window's `start`: decoded (the books, and a cache entry being
        written, follow them), their tickers kept (marks, index prices: USD rates), instruments
        expiring as they do; nothing routed, no strategy started, nothing sampled; the frames
        are not the result's (`frames`, and a malformed one is skipped quietly: it is not the
        window's). Bad lines and bare frames met are counted (`bad_lines`), as read: a reader
        counts its bad lines as it meets them, and a run from the cache entry reports them the
        same way, so the window's report is the same on either path. Returns the first frame at
        or after `start` (None: the data ended before it) and how many were read."""
        on_ticker = self.market.on_ticker
        registry = self.registry
        frames = 0
        for item in stream:
            ts, idx, frame = item
            if ts is None:
                if not frames:  # bare frames from the start: not a recording at all
                    raise DataError(
                        f"{readers[idx].path}: a bare frame has no receive time and cannot be replayed"
                    )
                self._bare_frame(readers, idx)
                continue
            if ts >= start:
                return item, frames
            self.now = ts
            frames += 1
            try:
                events = decoders[idx](frame, ts)
            except MalformedFrame:
                continue
            for ev in events:
                if ev.__class__ is Ticker:
                    on_ticker(ev)
            if len(registry) != self._registry_size:
                self._refresh_expiries()
            if self._expiries and self._expiries[0][0] <= ts:
                self._expire_instruments(ts, notify=False)
            if frames & (_CHECKPOINT_EVERY - 1) == 0:
                if self.progress is not None:
                    self.progress(sum(r.bytes_read for r in readers), total_bytes)
                await trio.lowlevel.checkpoint()
        return None, frames

    async def _drain(
        self,
        first: tuple[Any, int, Any],
        stream: Iterator[tuple[Any, int, Any]],
        decoders: list[Callable[[Any, int], list[MarketEvent]]],
        total_bytes: int,
        readers: list[Any],
    ) -> None:
        """Past the window's end, for the cache entry being written only: every frame decoded
        (through the writer's decoders), nothing else done or said."""
        self._draining = True
        for n, (ts, idx, frame) in enumerate(itertools.chain((first,), stream), 1):
            if ts is not None:
                # A malformed frame is recorded by the writer as such; this run is over.
                with contextlib.suppress(MalformedFrame):
                    decoders[idx](frame, ts)
            if n & (_CHECKPOINT_EVERY - 1) == 0:
                if self.progress is not None:
                    self.progress(sum(r.bytes_read for r in readers), total_bytes)
                await trio.lowlevel.checkpoint()

    def _instrument_names(self, strategies: Mapping[str, StrategyResult]) -> dict[str, str]:
        """The name a venue's catalog gives each instrument the strategies' results list (their
        positions, charts and fills), by `venue:symbol`: a Polymarket token's market (its slug,
        else its question) and outcome, `will-btc-hit-100k / Yes`. An instrument no catalog
        knows has none (its symbol is its name: `BTC-PERPETUAL`)."""
        keys: set[str] = set()
        for s in strategies.values():
            keys.update(s.positions)
            if s.series is not None:
                keys.update(s.series.positions)
                keys.update(f.instrument for f in s.series.fills)
        names: dict[str, str] = {}
        for key in sorted(keys):
            venue, _, symbol = key.partition(":")
            catalog = self.catalogs.get(venue)
            market = None if catalog is None else catalog.find_by_token_id(symbol)
            if market is not None and symbol in market.token_ids:
                names[key] = f"{market.slug or market.question} / {market.outcome_of(symbol)}"
        return names

    # -- what did nothing --------------------------------------------------------------------
    def _warn(self, kind: str, message: str) -> None:
        # One line for people, which may hold a venue's text (a book's id, a channel) or a
        # strategy's: made inert (`line_text`) here, where every warning is made, not where one
        # is printed, since several print it on a terminal: the summary, this log event and a
        # sweep's last line (which reads it from report.json, so the report keeps this text too).
        message = line_text(message)
        self.warnings.append(message)
        self.log.warning("backtest.warning", kind=kind, message=message)

    def _warnings(self) -> None:
        """After the run: one line per thing that made a strategy, or a data file, do nothing,
        which a table of zeros would not explain (README, "Backtest warnings"). Each also logged
        once as `backtest.warning` with its `kind`."""
        if self._empty_window is not None:  # the one thing to say: nothing else ran
            self._window_warning(*self._empty_window)
            return
        data_venues = sorted({src.venue for src in self.sources})
        subscribed = {key[0] for slot in self.slots for key in slot.keys_seen}
        for slot in self.slots:
            self._strategy_warnings(slot, data_venues)
        self._funding_warnings()
        for i, src in enumerate(self.sources):
            self._file_warning(i, src, subscribed)
        for venue, decoder in sorted(self.decoders.items()):
            self._gap_warning(venue, decoder)

    def _funding_warnings(self) -> None:
        """Funding a strategy's position was due but nothing was booked (`_funding`): one line
        per strategy and perpetual, with how many events and what was missing, as an expiry
        with no index price is said (`expiry_unpriced`)."""
        for (name, venue, symbol), (count, missing) in sorted(self._funding_unpriced.items()):
            self._warn(
                "funding_unpriced",
                f"{name}: {count:,} funding event(s) of {venue}:{symbol} not booked, no"
                f" {' and no '.join(sorted(missing))} in the data then: its PnL lacks that funding",
            )

    def _gap_warning(self, venue: str, decoder: Decoder) -> None:
        """A venue's book gaps (a broken chain, a crossed book, a damaged frame's book): the
        changes after one are ignored until a snapshot, which a recording may never bring, so
        events are lost that only the report's decoders section counted. The books are named
        where the decoder keeps them by instrument (`gapped_books`), the gaps of the books it
        keeps no count of (beyond its first 100: `BookGaps`) in one total after them."""
        stats = decoder.stats
        gaps = stats.gaps
        if not gaps:
            return
        line = f"{venue}: {gaps:,} book gap{'s' if gaps != 1 else ''}"
        ignored = stats.ignored_changes
        if ignored:
            line += f"; {ignored:,} book changes ignored until a snapshot"
        books = decoder.gapped_books
        other = gaps - sum(books.values())
        if books:
            rest = f", and {other:,} gap{'s' if other != 1 else ''} of other books" if other > 0 else ""
            line += f" ({', '.join(sorted(books))}{rest})"
        self._warn("book_gaps", line)

    def _window_warning(self, before: int | None, after: int | None) -> None:
        """The window holds no frame: where the data is (its last frame before the window, its
        first after)."""
        start, end = self.settings.start_ns, self.settings.end_ns
        first = "the data's start" if start is None else format_ts(start)
        last = "the data's end" if end is None else format_ts(end)
        window = f"{first} -> {last}"
        if after is None:
            where = f"the data ends at {format_ts(before)}, before it" if before is not None else ""
        elif before is None:
            where = f"the data starts at {format_ts(after)}, after it"
        else:
            where = f"the data has a gap from {format_ts(before)} to {format_ts(after)}"
        self._warn(
            "empty_window", f"the window {window} holds no frame of the data, so no strategy ran: {where}"
        )

    def _fills_by(self, i: int) -> int:
        """How many frames of source `i` no strategy received but the simulated venue used: as
        they came, or by keeping the book of an instrument some strategy ordered (its orders
        fill against that book, the updates before the first order included)."""
        ordered = {key for slot in self.slots for key in slot.ordered}
        kept = sum(n for books, n in self._book_frames_by[i].items() if not ordered.isdisjoint(books))
        venue = self.sources[i].venue
        kept += sum(n for inst, n in self._book_frame_by[i].items() if (venue, inst) in ordered)
        return self._fill_used_by[i] + kept

    def _underlyings(self, venue: str) -> str:
        found = sorted({inst.base for inst in self.registry if inst.venue == venue})
        return ", ".join(found) if found else "none"

    def _strategy_warnings(self, slot: _Slot, data_venues: list[str]) -> None:
        name = slot.name
        said = False
        venues = sorted({key[0] for key in slot.keys_seen})
        for venue in venues:
            if venue not in data_venues:
                said = True
                self._warn(
                    "venue_without_data",
                    f"{name}: subscribes to {venue}, but no data file is of {venue}"
                    f" (the data files are of {', '.join(data_venues)}): it got nothing from there",
                )
        missing: dict[str, list[str]] = {}
        for venue, symbol, _ in sorted(slot.keys_seen):
            if (
                venue in data_venues
                and self.registry.get(venue, symbol) is None
                and self.market.ticker(venue, symbol) is None
                and self.book(venue, symbol) is None
            ):  # neither defined, nor quoted, in the data
                missing.setdefault(venue, []).append(symbol)
        for venue, symbols in missing.items():
            said = True
            names = ", ".join(dict.fromkeys(symbols))
            self._warn(
                "instrument_not_in_data",
                f"{name}: subscribes to {venue} {names}, which the data does not have"
                f" (its {venue} underlyings: {self._underlyings(venue)})",
            )
        if slot.received == 0 and slot.failure is None and not said:
            what = f"{len(slot.keys_seen):,} subscription(s)" if slot.keys_seen else "nothing"
            self._warn("no_events", f"{name}: received no market event from the data (subscribed to {what})")
        # What the strategy itself found missing (e.g. GammaScalp: no option of its underlying).
        found = getattr(slot.strategy, "data_warnings", None)
        if callable(found) and slot.failure is None:
            try:
                lines = [str(line) for line in found()]
            except Exception as exc:  # a strategy's bug: logged and counted, the run is done
                self._strategy_error(slot, exc)
                lines = []
            for line in lines:
                self._warn("strategy", f"{name}: {line}")
        unbooked: dict[str, list[str]] = {}
        orders: dict[str, int] = {}
        for (venue, symbol), count in sorted(slot.ordered.items()):
            if (venue, symbol) not in slot.filled_on and self.book(venue, symbol) is None:
                unbooked.setdefault(venue, []).append(symbol)
                orders[venue] = orders.get(venue, 0) + count
        for venue, symbols in unbooked.items():
            self._warn(
                "no_book",
                f"{name}: {orders[venue]:,} order(s) on {venue} {', '.join(symbols)} could not fill:"
                " the data holds no order book for them (record their book channel)",
            )

    def _file_warning(self, i: int, src: DataSource, subscribed: set[str]) -> None:
        """A data file whose frames reached no strategy, or hold channels its venue's decoder
        does not read (another venue's data?): where each of its frames went."""
        frames = self._frames_by[i]
        where = f"data file {src.path} ({src.venue})"
        if frames == 0:
            self._warn("data_file_empty", f"{where}: no frame read from it")
            return
        malformed = self._malformed_by[i]
        control, unread = self._control_by[i], self._unread_by[i]
        other = self._no_event_by[i] - control - unread
        fills = self._fills_by(i)
        unrouted = self._unrouted_by[i] - fills
        routed = frames - malformed - self._no_event_by[i] - unrouted - fills
        if not unread and routed + fills > 0:
            return
        why: list[str] = []
        if malformed:
            why.append(f"{malformed:,} malformed")
        if unread:
            example = self.decoders[src.venue].last_unknown_channel
            why.append(
                f"{unread:,} of channels the {src.venue} decoder does not read ("
                + (f"e.g. {example}: " if example else "")
                + f"is it {src.venue} data?)"
            )
        if control:
            why.append(f"{control:,} control (responses, heartbeats)")
        if other:
            why.append(f"{other:,} with no market event")
        if unrouted:
            whose = (
                f"of {src.venue}, which no strategy subscribes to"
                if src.venue not in subscribed
                else "of instruments or channels no strategy subscribed to"
            )
            why.append(f"{unrouted:,} {whose}")
        used = f" ({fills:,} more kept books or trades the fills used)" if fills else ""
        self._warn(
            "data_file_unused" if routed + fills == 0 else "data_file_unread",
            f"{where}: {frames:,} frames read, {frames - routed - fills:,} not routed to any strategy"
            f"{used}: " + "; ".join(why),
        )

    def _result(
        self, duration: float, start_ns: int | None, end_ns: int | None, readers: list[FrameSource]
    ) -> BacktestResult:
        out: dict[str, StrategyResult] = {}
        for slot in self.slots:
            ledger = self.flow.ledger(slot.name)
            unrealized = ledger.unrealized_usd()
            stats = slot.mailbox.stats
            trips = slot.trips
            sent = self.flow.orders_sent.get(slot.name, 0)
            out[slot.name] = StrategyResult(
                orders=self.flow.orders_sent.get(slot.name, 0),
                fills=ledger.fills,
                rejected=self.flow.rejected.get(slot.name, 0),
                errors=slot.errors,
                fees=ledger.fees_usd,
                realized_pnl=ledger.realized_usd,
                unrealized_pnl=unrealized,
                net_pnl=ledger.realized_usd + unrealized - ledger.fees_usd,
                max_drawdown=slot.max_dd,
                sharpe=_sharpe(slot.samples, self.settings.equity_interval_s),
                turnover=sum((p.turnover_usd for p in ledger), _ZERO),
                positions={
                    f"{p.instrument.venue}:{p.instrument.symbol}": str(p.qty) for p in ledger if p.qty != 0
                },
                conflated=stats.conflated,
                merged=stats.merged,
                dropped=stats.dropped,
                equity_curve=tuple(slot.samples),
                sortino=(
                    sortino_ratio([e for _, e in slot.samples], self.settings.equity_interval_s)
                    if len(slot.samples) >= 3
                    else None
                ),
                round_trips=trips.count,
                win_rate=trips.wins / trips.count if trips.count else None,
                avg_holding_s=trips.held_ns / trips.count / _NS if trips.count else None,
                filled_orders=len(slot.filled_ids),
                fill_ratio=len(slot.filled_ids) / sent if sent else None,
                funding=ledger.funding_usd,
                waiting_fills=ledger.waiting,
                drawdown_points=slot.dd_points,
                series=StrategySeries(
                    step_s=self.chart_step_s * slot.chart.stride,
                    ts=tuple(slot.chart.ts),
                    equity=tuple(slot.chart.equity),
                    positions={k: tuple(v) for k, v in sorted(slot.chart.positions.items())},
                    prices={k: tuple(v) for k, v in sorted(slot.chart.prices.items())},
                    fills=tuple(slot.fills),
                    fills_dropped=slot.fills_dropped,
                ),
                failure=slot.failure,
            )
        fills = [self._fills_by(i) for i in range(len(self.sources))]
        # Bad lines by source: as its reader counted them (the whole file: a cache entry keeps
        # that count), or, stopped at the window's end, those met on the way (either path).
        bad = [r.bad_lines for r in readers]
        if self._stopped:
            bad = [0] * len(readers)
            for path, n in self._bad_read.items():
                for i, src in enumerate(self.sources):
                    if path == src.path or src.path in path.parents:
                        bad[i] += n
                        break
        return BacktestResult(
            events=self.events,
            frames=self.frames,
            malformed_frames=self.malformed,
            bad_lines=sum(bad) + sum(self._bare_by),
            duration_s=duration,
            start_ns=start_ns,
            end_ns=end_ns,
            strategies=out,
            decoder_stats={v: attrs.asdict(d.stats) for v, d in sorted(self.decoders.items())},
            equity_interval_s=self.settings.equity_interval_s,
            warnings=tuple(self.warnings),
            instrument_names=self._instrument_names(out),
            files=tuple(
                DataFileStats(
                    venue=src.venue,
                    path=str(src.path),
                    bad_lines=bad[i] + self._bare_by[i],
                    malformed_frames=self._malformed_by[i],
                    unfinished=tuple((str(p), last) for p, last in self._unfinished[i]),
                    frames=self._frames_by[i],
                    control=self._control_by[i],
                    unread_channel=self._unread_by[i],
                    no_event=self._no_event_by[i] - self._control_by[i] - self._unread_by[i],
                    unrouted=self._unrouted_by[i] - fills[i],
                    fills=fills[i],
                )
                for i, (src, r) in enumerate(zip(self.sources, readers, strict=True))
            ),
        )
