"""What each strategy sees, and when, is the recording read line by line and decoded frame by
frame in order (the reference, written here without the kernel): a witness for the kernel's
fast paths (the recording tagging its own lines, the strategy step taken with `next`), which
must neither reorder, drop nor repeat an event, nor change the clock a strategy reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tradingd.connectors.deribit import PLUGIN
from tradingd.engine import BookUpdate, MarketEvent, Strategy, Subscription, Ticker, Trade
from tradingd.engine.backtest.kernel import BacktestKernel, DataSource
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.model.errors import MalformedFrame
from tradingd.engine.store.recording import RecordingReader
from tradingd.simulators.deribit import SIMULATOR as DERIBIT_SIM

_MARKET = (Ticker, BookUpdate, Trade)


class Witness(Strategy):
    """Records (clock, event) for each market event; `answer` makes `on_event` return a value
    (a coroutine's return value must not count as anything)."""

    def __init__(self, name: str, subs: list[Subscription], answer: bool = False) -> None:
        super().__init__(name)
        self.subs = subs
        self.answer = answer
        self.seen: list[tuple[int, MarketEvent]] = []

    def required_subscriptions(self) -> list[Subscription]:
        return self.subs

    async def on_event(self, event: MarketEvent) -> Any:
        if isinstance(event, _MARKET):
            self.seen.append((self.ctx.now_ns(), event))
        return len(self.seen) if self.answer else None


def _wanted(subs: list[Subscription], ev: MarketEvent) -> bool:
    return isinstance(ev, _MARKET) and any(
        s.venue == ev.venue and s.instrument == ev.instrument and ev.kind in s.kinds for s in subs
    )


def test_each_strategy_sees_the_frames_events_in_order_at_their_times(tmp_path: Path) -> None:
    path = tmp_path / "sample.rec.zst"
    DERIBIT_SIM.generate_sample(path, {"seed": 5, "hours": 0.05})
    subs = {
        "all_btc": [Subscription("deribit", "BTC-PERPETUAL")],
        "eth_tickers": [Subscription("deribit", "ETH-PERPETUAL", {"ticker"})],
        "both_books": [
            Subscription("deribit", "ETH-PERPETUAL", {"book", "trades"}),
            Subscription("deribit", "BTC-PERPETUAL", {"book"}),
        ],
    }
    strategies = [Witness(name, s, answer=name == "eth_tickers") for name, s in subs.items()]
    kernel = BacktestKernel({"deribit": PLUGIN}, [DataSource("deribit", path)], strategies)
    result = trio.run(kernel.run)

    decoder = PLUGIN.decoder(InstrumentRegistry())
    expected: dict[str, list[tuple[int, MarketEvent]]] = {name: [] for name in subs}
    frames = 0
    for ts, frame in RecordingReader(path):
        assert ts is not None
        frames += 1
        try:
            events = decoder.decode(frame, ts)
        except MalformedFrame:
            continue
        for ev in events:
            for name, s in subs.items():
                if _wanted(s, ev):
                    expected[name].append((ts, ev))

    assert kernel.frames == frames > 1000
    for w in strategies:
        assert len(w.seen) > 100, w.name
        assert w.seen == expected[w.name], w.name
        assert result.strategies[w.name].errors == 0
