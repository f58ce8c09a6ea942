"""How many examples a property test draws (`examples`): the count written in the test in the
default run (the suite's, CI's), ten times it with `TRADINGD_THOROUGH=1`: a longer hunt, outside
the suite's time budget, as the long fuzz and soak runs are."""

from __future__ import annotations

import os

SCALE = 10 if os.environ.get("TRADINGD_THOROUGH") == "1" else 1


def examples(n: int) -> int:
    """`n` examples in the default run, `10 * n` in a thorough one."""
    return n * SCALE
