"""What the engine knows of the market right now: the latest ticker per instrument and the
latest index price per currency (to turn coin amounts into USD)."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from .events import Ticker
from .instruments import Instrument, InstrumentRegistry

__all__ = ["USD_LIKE", "MarketState", "index_currency", "notional_usd"]

_INF = float("inf")
USD_LIKE = frozenset({"USD", "USDC", "USDT", "PUSD", "USDE"})


def index_currency(inst: Instrument) -> str | None:
    """The currency a fill's `index_price` prices in USD, or None when it is not a USD rate.
    Deribit and Derive report the underlying's index (USD per base coin) with each trade: a USD
    rate for the base when the instrument is quoted in a USD-like currency (Derive's options,
    USDC-settled perps), inverse (BTC-PERPETUAL: USD per BTC), or quoted in its own base
    (Deribit's coin-quoted options). For a pair quoted in another coin (ETH_BTC spot) the
    index is in that coin, not USD."""
    if inst.inverse or inst.quote == inst.base or inst.quote.upper() in USD_LIKE:
        return inst.base
    return None


def _usable(x: float | None) -> bool:
    return x is not None and 0 < x < _INF


# Whether a currency is USD-like (`currency.upper() in USD_LIKE`), by its name as given: the
# rates of every fill look it up, and a few currency names ever come.
_USD_LIKE_NAMES: dict[str, bool] = {}


def _usd_like(currency: str) -> bool:
    known = _USD_LIKE_NAMES.get(currency)
    if known is None:
        known = currency.upper() in USD_LIKE
        if len(_USD_LIKE_NAMES) < 4096:  # (bounded, whatever names a caller makes up)
            _USD_LIKE_NAMES[currency] = known
    return known


class MarketState:
    """Latest tickers and index prices, fed by every ticker the engine sees."""

    __slots__ = (
        "_rate_key",
        "fill_rates",
        "index",
        "listener_errors",
        "log",
        "on_first_rate",
        "rates_learned",
        "registry",
        "tickers",
    )

    def __init__(self, registry: InstrumentRegistry) -> None:
        self.registry = registry
        self.tickers: dict[tuple[str, str], Ticker] = {}
        self.index: dict[tuple[str, str], float] = {}
        # USD rates learned from fills' own index prices (`learn_index`): for booking money when
        # no ticker has given one yet, never for marks.
        self.fill_rates: dict[tuple[str, str], float] = {}
        self._rate_key: dict[tuple[str, str], tuple[str, str]] = {}
        # Called with (venue, currency) when a currency's first USD rate (index price) arrives:
        # the ledgers book the fills that waited for it (engine/model/ledger.py).
        self.on_first_rate: list[Callable[[str, str], None]] = []
        # How many times a currency's USD rate became usable for booking (`_first_rate`): the
        # only way an entry waiting for a rate can become bookable. A ledger tries its waiting
        # head again only once this moved since its last try (`Ledger._drain`).
        self.rates_learned = 0
        self.listener_errors = 0
        self.log = structlog.get_logger("tradingd.market")

    def on_ticker(self, ticker: Ticker) -> None:
        key = (ticker.venue, ticker.instrument)
        self.tickers[key] = ticker
        index = ticker.index
        if index is not None:
            # (venue, base) per instrument, kept: every ticker of the backtest's hot loop comes
            # here, and building that key once per instrument, not per ticker, is a tuple less.
            rate_key = self._rate_key.get(key)
            if rate_key is None:
                inst = self.registry.get(*key)
                if inst is None:  # not known yet: looked up again on its next ticker
                    return
                rate_key = self._rate_key[key] = (ticker.venue, inst.base)
            rates = self.index
            prev = rates.get(rate_key)
            rates[rate_key] = index
            # None before, or one no money can be booked at (0, NaN, inf), and a good one now.
            if (prev is None or not 0 < prev < _INF) and 0 < index < _INF and self.on_first_rate:
                self._first_rate(*rate_key)

    def learn_index(self, inst: Instrument, index: float | None) -> None:
        """A fill in `inst` carried the venue's index price: where it is a USD rate
        (`index_currency`), it is one for booking (`booking_rate`), and what waited for it is
        booked now (`on_first_rate`), before anything booked after it."""
        if not _usable(index):
            return
        currency = index_currency(inst)
        if currency is None:
            return
        key = (inst.venue, currency)
        known = _usable(self.booking_rate(*key))
        assert index is not None
        self.fill_rates[key] = index
        if not known:
            self._first_rate(*key)

    def _first_rate(self, venue: str, currency: str) -> None:
        """Tell every listener; one that fails is alerted and counted, never raised into the
        market-data path (nor allowed to keep the others from hearing it)."""
        self.rates_learned += 1
        for listener in self.on_first_rate:
            try:
                listener(venue, currency)
            except Exception as exc:  # a ledger's bug must not stop market data
                self.listener_errors += 1
                self.log.critical(
                    "market.rate_listener_failed", venue=venue, currency=currency, error=repr(exc)
                )

    def ticker(self, venue: str, instrument: str) -> Ticker | None:
        return self.tickers.get((venue, instrument))

    def index_of(self, venue: str) -> Callable[[str], float | None]:
        """`venue`'s latest index of an underlying (`BTC` -> 91,000.0), as a function: what the
        simulated venue reads to value an option or settle a fill, in backtests and paper alike."""
        index = self.index

        def lookup(base: str) -> float | None:
            return index.get((venue, base))

        return lookup

    def usd_rate(self, venue: str, currency: str) -> float | None:
        """USD per unit of `currency` (1 for USD-like currencies), None when no index seen yet."""
        if _usd_like(currency):
            return 1.0
        return self.index.get((venue, currency))

    def booking_rate(self, venue: str, currency: str) -> float | None:
        """The USD rate money is booked at now: the market's (`usd_rate`) when usable, else the
        latest one a fill carried (`learn_index`); None when neither is known."""
        # `usd_rate` and `_usable`, inline (every fill's rates come here).
        if _usd_like(currency):
            return 1.0
        key = (venue, currency)
        rate = self.index.get(key)
        if rate is not None and 0 < rate < _INF:
            return rate
        return self.fill_rates.get(key)

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
