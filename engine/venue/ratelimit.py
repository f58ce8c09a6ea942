"""Rate limiting and reconnection pacing for venue sessions.

`CreditBucket` is a leaky bucket of credits, the model Deribit documents (VENUES.md §1.10): each
request costs credits, the pool refills at a fixed rate, and a request waits locally until its
credits are there, so a burst of orders never gets the session cut off by the venue.
`Backoff` paces reconnection attempts: exponential with jitter, reset after a session that lasted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

import trio

__all__ = ["VENUE_MARGIN", "Backoff", "CreditBucket"]

# The share of a venue's published rate limit a client uses (`CreditBucket.below`).
VENUE_MARGIN: Final = 0.9


class CreditBucket:
    """A pool of `capacity` credits refilled at `refill_per_s`; `acquire(cost)` waits until the
    pool holds `cost` credits and takes them. Waiters are served in arrival order."""

    def __init__(
        self, capacity: float, refill_per_s: float, *, clock: Callable[[], float] = trio.current_time
    ) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("a credit bucket needs a positive capacity and refill rate")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._clock = clock
        self._credits = float(capacity)
        self._stamp: float | None = None
        self._lock = trio.Lock()  # FIFO: a big request is not starved by small ones
        self.waited = 0  # requests that had to wait

    @classmethod
    def below(cls, capacity: float, refill_per_s: float, **kwargs: Any) -> CreditBucket:
        """A bucket kept `VENUE_MARGIN` below a venue's published limit (`capacity` credits,
        refilled at `refill_per_s`). Our bucket counts a request when it is sent, the venue's when
        it arrives: network jitter bunches requests up on the way, so a client running at exactly
        the venue's rate finds the venue's pool a credit short now and then, and an order refused
        for rate is never re-sent (its outcome must stay certain). Settings name the venue's
        limits as the venue publishes them; the margin is kept here, in one place."""
        return cls(max(capacity * VENUE_MARGIN, min(capacity, 1.0)), refill_per_s * VENUE_MARGIN, **kwargs)

    def _refill(self) -> None:
        now = self._clock()
        if self._stamp is not None:
            self._credits = min(self.capacity, self._credits + (now - self._stamp) * self.refill_per_s)
        self._stamp = now

    def available(self) -> float:
        self._refill()
        return self._credits

    async def acquire(self, cost: float = 1.0) -> None:
        if cost > self.capacity:
            raise ValueError(f"a request of {cost} credits can never fit a pool of {self.capacity}")
        # The common case, without a pass of the scheduler (the lock's acquire yields even when it
        # is free, and an order waits for that pass before its bytes leave): nobody waits before
        # us (the lock is free: it stays taken while anyone waits, so arrival order holds) and the
        # credits are there. A caller cancelled by now still takes nothing.
        if not self._lock.locked():
            await trio.lowlevel.checkpoint_if_cancelled()
            self._refill()
            if self._credits >= cost:
                self._credits -= cost
                return
        async with self._lock:
            self._refill()
            if self._credits < cost:
                self.waited += 1
                await trio.sleep((cost - self._credits) / self.refill_per_s)
                self._refill()
            self._credits -= cost

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take `cost` credits if the pool holds them now (a venue's side of the limit)."""
        self._refill()
        if self._credits < cost:
            return False
        self._credits -= cost
        return True

    def drain(self) -> None:
        """The venue said we went too fast: start from an empty pool."""
        self._refill()
        self._credits = 0.0


class Backoff:
    """Delays between reconnection attempts: `base * 2**n` capped at `cap`, jittered uniformly
    between half and all of that, so that many clients do not reconnect in step and none
    retries at once."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, *, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def first_delay(self) -> float:
        """The first step's delay (jittered), without counting an attempt: for a retry whose
        wait the venue's limits set, not the number of failures before it."""
        return self._rng.uniform(self.base / 2, self.base)

    def reset(self) -> None:
        self.attempts = 0
