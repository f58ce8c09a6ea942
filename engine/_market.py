"""What the engine knows of the market right now: the latest ticker per instrument and the
latest index price per currency (to turn coin amounts into USD)."""

from __future__ import annotations

from collections.abc import Callable

from ._events import Ticker
from ._instruments import Instrument, InstrumentRegistry

__all__ = ["USD_LIKE", "MarketState", "notional_usd"]

_INF = float("inf")
USD_LIKE = frozenset({"USD", "USDC", "USDT", "PUSD", "USDE"})


class MarketState:
    """Latest tickers and index prices, fed by every ticker the engine sees."""

    __slots__ = ("_base", "index", "on_first_rate", "registry", "tickers")

    def __init__(self, registry: InstrumentRegistry) -> None:
        self.registry = registry
        self.tickers: dict[tuple[str, str], Ticker] = {}
        self.index: dict[tuple[str, str], float] = {}
        self._base: dict[tuple[str, str], str | None] = {}
        # Called with (venue, currency) when a currency's first USD rate (index price) arrives:
        # the ledgers book the fills that waited for it (engine/_portfolio.py).
        self.on_first_rate: list[Callable[[str, str], None]] = []

    def on_ticker(self, ticker: Ticker) -> None:
        key = (ticker.venue, ticker.instrument)
        self.tickers[key] = ticker
        if ticker.index is not None:
            base = self._base.get(key, "")
            if base == "":
                inst = self.registry.get(*key)
                base = self._base[key] = inst.base if inst is not None else None
            if base is not None:
                rate_key = (ticker.venue, base)
                prev = self.index.get(rate_key)
                self.index[rate_key] = ticker.index
                # None before, or one no money can be booked at (0, NaN, inf), and a good one now.
                if (prev is None or not 0 < prev < _INF) and 0 < ticker.index < _INF and self.on_first_rate:
                    for listener in self.on_first_rate:
                        listener(*rate_key)

    def ticker(self, venue: str, instrument: str) -> Ticker | None:
        return self.tickers.get((venue, instrument))

    def usd_rate(self, venue: str, currency: str) -> float | None:
        """USD per unit of `currency` (1 for USD-like currencies), None when no index seen yet."""
        if currency.upper() in USD_LIKE:
            return 1.0
        return self.index.get((venue, currency))

    def mark(self, venue: str, instrument: str) -> float | None:
        """The venue's mark price, else the mid, else the last trade price."""
        t = self.tickers.get((venue, instrument))
        if t is None:
            return None
        if t.mark is not None:
            return t.mark
        mid = t.mid
        return mid if mid is not None else t.last


def notional_usd(
    inst: Instrument, size: float, price: float | None, usd_rate_base: float | None
) -> float | None:
    """The USD exposure of `size` of `inst`: for inverse contracts the size is already USD; for
    options (and anything quoted in the coin) the underlying's value, size x index; for
    USD-quoted linear instruments size x price. None when a needed price is unknown."""
    if inst.inverse:  # sized in the quote currency (USD) already: contract_size is its granularity
        return size if inst.quote.upper() in USD_LIKE else None
    cs = float(inst.contract_size)
    if inst.quote.upper() in USD_LIKE:
        return None if price is None else size * cs * price
    return None if usd_rate_base is None else size * cs * usd_rate_base
