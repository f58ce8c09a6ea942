"""What the decode benchmarks share: the best of several timed runs, and the timing of one
venue's decoder over a list of frames next to a generic JSON parse of the same frames."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import msgspec

__all__ = ["Decoder", "best_of", "decoding"]


class Decoder(Protocol):
    def decode(self, frame: bytes, ts_local: int) -> Sequence[object]: ...


_D = TypeVar("_D", bound=Decoder)


def best_of(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs of `run` (a garbage collection before each, not timed)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def decoding(
    make: Callable[[], _D],
    prelude: Sequence[bytes],
    frames: Sequence[bytes],
    repeat: int,
    check: Callable[[_D], None],
) -> tuple[float, float, int]:
    """(seconds to decode `frames` with a fresh decoder `make()` that has seen `prelude`, seconds
    for a generic `msgspec.json.decode` of the same frames (0 when they are not JSON), events
    produced), best of `repeat` each. `check(decoder)` asserts after each run that the frames took
    the normal path (no gap, nothing malformed): the benchmark measures that path."""
    events = 0

    def decode_all() -> None:
        nonlocal events
        dec = make()
        for frame in prelude:
            dec.decode(frame, 0)
        decode = dec.decode
        count = 0
        for i, frame in enumerate(frames):
            count += len(decode(frame, i))
        check(dec)
        events = count

    def parse_all() -> None:
        loads = msgspec.json.decode
        for frame in frames:
            loads(frame)

    json_frames = frames[0][:1] in (b"{", b"[")
    return best_of(decode_all, repeat), best_of(parse_all, repeat) if json_frames else 0.0, events
