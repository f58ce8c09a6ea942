"""Latency histograms the engine keeps as it runs (tick-to-order, order acknowledgement, journal
writes, the event loop's lateness), read by the daemon's metrics at scrape time.

An observation is one `bisect` and two additions into preallocated counts: about 150 ns, against
about 900 ns for `prometheus_client.Histogram.observe` (which takes a lock on every call; both
measured with `python -m timeit`, engine.metrics). The hot path keeps these; the exposition
(engine.metrics) turns a copy of them into Prometheus's cumulative buckets.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import pairwise
from typing import Final, NamedTuple

__all__ = ["LATENCY_BUCKETS_S", "SLOW_BUCKETS_S", "Histogram", "HistogramCopy"]

# Bucket upper bounds in seconds (Prometheus's `le`): the latencies an order path has, from 100 us
# to 2.5 s; the journal's writes and the event loop's lateness the same, up to 5 s.
LATENCY_BUCKETS_S: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
SLOW_BUCKETS_S: Final = (*LATENCY_BUCKETS_S, 5.0)


class HistogramCopy(NamedTuple):
    """A histogram as it was (`Histogram.copy`): its bounds, its counts per bucket (one more
    than the bounds: the last is above them all), their sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float


class Histogram:
    """Counts of observations per bucket (`counts[i]`: those at most `bounds[i]` and above the
    bound before; the last, those above every bound) and their sum. Not cumulative: each
    observation touches one count. Callers pass seconds of their own clocks, finite and not
    negative (a clock that steps back is theirs to clamp): `observe` checks nothing."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        if not bounds or any(not (math.isfinite(b) and b > 0) for b in bounds):
            raise ValueError(f"histogram bounds must be positive finite numbers, got {bounds}")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"histogram bounds must increase, got {bounds}")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> HistogramCopy:
        """The histogram as it is now (taken where it is observed, in the trio thread, so that
        its counts and its sum agree)."""
        return HistogramCopy(self.bounds, tuple(self.counts), self.sum)

    def __repr__(self) -> str:
        return f"Histogram({self.count} observations, sum {self.sum:.6f} s)"
