"""A simulator clock starting on a fixed date, for tests whose outcome depends on the synthetic
market's path: the market is built from the seed and the clock's first reading (its instruments'
expiries, its opening prices), so the default `time.time_ns` makes such a test depend on the day
it runs. This clock starts at `START_NS` and advances with the monotonic clock, so orders,
signatures and timeouts still see time pass."""

from __future__ import annotations

import time
from collections.abc import Callable

START_NS = 1_781_000_000_000_000_000  # 2026-06-09T10:13:20Z
START_MS = START_NS // 1_000_000
START_S = START_NS // 1_000_000_000


def fixed_clock(start_ns: int = START_NS) -> Callable[[], int]:
    origin = time.monotonic_ns()
    return lambda: start_ns + time.monotonic_ns() - origin
