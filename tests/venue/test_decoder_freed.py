"""A decoder that is dropped is freed at once, by reference counting, whatever it decoded: it
holds no reference to itself (a bound method of its own kept in its state: Deribit's compiled
entry, the JSON-RPC route memo, Polymarket's appliers) that only the cyclic collector would
break: with the collector held back (or slow), each kept its books, registry and memos alive.
Code that holds a decoder directly (a live session's reconnects, `tradingd decode`, a tool) frees
it when it lets go; a backtest's decoders go with their finished kernel, freed the same way
(tests/backtest/test_kernel_freed.py)."""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.collector import no_collector
from tradingd.connectors.deribit.codec import DeribitDecoder
from tradingd.connectors.derive import PLUGIN as DERIVE
from tradingd.connectors.polymarket import PLUGIN as POLYMARKET
from tradingd.engine import MalformedFrame
from tradingd.engine.model import InstrumentRegistry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _frames(venue: str) -> list[bytes]:
    """Every captured message of the venue, twice (the memos' second lookups too), as sent."""
    frames = [p.read_bytes() for p in sorted((FIXTURES / venue).rglob("*.json"))]
    return frames + frames


MAKERS: dict[str, Callable[[InstrumentRegistry], Any]] = {
    "deribit": DeribitDecoder,
    "deribit-python": lambda registry: DeribitDecoder(registry, compiled=False),
    "derive": DERIVE.decoder,
    "polymarket": POLYMARKET.decoder,
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_dropped_decoder_is_freed_at_once(name: str) -> None:
    frames = _frames(name.split("-")[0])
    decoded = 0
    with no_collector():
        decoder = MAKERS[name](InstrumentRegistry())
        for frame in frames:
            with contextlib.suppress(MalformedFrame):
                decoder.decode(frame, 1_700_000_000_000_000_000)
                decoded += 1
        assert decoder.stats.frames == len(frames) and decoded > len(frames) // 4
        gone = weakref.ref(decoder)
        del decoder
        assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]
