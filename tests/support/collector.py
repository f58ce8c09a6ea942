"""The cyclic collector held back, for tests that prove something is freed by reference
counting alone: whatever is still alive after its last outside reference went is kept by a
cycle (which a long backtest or a sweep would carry until a full collection)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_collector() -> Iterator[None]:
    """A collection first (nothing left over from before), then none until the block ends."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
