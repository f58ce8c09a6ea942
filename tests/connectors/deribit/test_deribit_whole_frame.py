"""The compiled whole-frame functions (`codec._WHOLE_FRAME`, issue 17) against the reference.

The hook: `decode` tries a channel's whole-frame function first on a compiled decoder (bytes
frames only), counts the frame and its events when it returns a list, and goes on to the msgspec
route (then the reference) when it returns None; a decoder built with `compiled=False` never
calls it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tradingd.connectors.deribit import codec
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry

T_LOCAL = 1_700_000_000_123_456_789
PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
QUOTE = (
    PREFIX + b'quote.BTC-PERPETUAL","data":{"timestamp":1700000000000,"instrument_name":"BTC-PERPETUAL",'
    b'"best_bid_price":42500.0,"best_bid_amount":10.0,"best_ask_price":42500.5,"best_ask_amount":20.0}}}'
)


def _stats(dec: DeribitDecoder) -> tuple[int, int, int]:
    return dec.stats.frames, dec.stats.events, dec.stats.malformed


def test_the_hook_takes_a_list_counts_it_and_goes_on_after_none(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, bytes, int]] = []
    answer: list[Any] = [None]

    def whole(decoder: Any, frame: bytes, ts_local: int) -> Any:
        calls.append((decoder, frame, ts_local))
        return answer[0]

    monkeypatch.setitem(codec._WHOLE_FRAME, DeribitDecoder._on_quote, whole)
    ref = DeribitDecoder(InstrumentRegistry(), compiled=False)
    dec = DeribitDecoder(InstrumentRegistry())
    if not dec.compiled:
        pytest.skip("the compiled path is not built")
    want = ref.decode(QUOTE, T_LOCAL)
    assert dec.decode(QUOTE, T_LOCAL) == want  # None: the msgspec route's events
    assert calls == [(dec, QUOTE, T_LOCAL)] and _stats(dec) == _stats(ref) == (1, 1, 0)
    answer[0] = ["a", "b"]
    assert dec.decode(QUOTE, T_LOCAL) == answer[0]
    assert _stats(dec) == (2, 3, 0)
    # a str frame, and a decoder built with compiled=False, never reach it
    assert dec.decode(QUOTE.decode(), T_LOCAL) == want
    assert ref.decode(QUOTE, T_LOCAL) == want
    assert len(calls) == 2


def test_the_hook_counts_a_raise_as_the_body_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def malformed(decoder: Any, frame: bytes, ts_local: int) -> Any:
        raise MalformedFrame("bad", venue="deribit")

    monkeypatch.setitem(codec._WHOLE_FRAME, DeribitDecoder._on_quote, malformed)
    dec = DeribitDecoder(InstrumentRegistry())
    if not dec.compiled:
        pytest.skip("the compiled path is not built")
    with pytest.raises(MalformedFrame):
        dec.decode(QUOTE, T_LOCAL)
    assert _stats(dec) == (1, 0, 1)
