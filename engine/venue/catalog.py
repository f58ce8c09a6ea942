"""Market discovery: the venue-neutral `MarketCatalog` interface and the market types it returns.

A catalog answers "which markets exist, and which instruments trade them?" at run time, so a
strategy can find markets created after it started (the daily "Will Bitcoin be above $X on <date>?"
markets of Polymarket) and subscribe to them:

    async with PolymarketCatalog.open() as catalog:   # or the catalog the engine hands a strategy
        for market in catalog.find_by_slug_regex(r"^will-bitcoin-be-above-\\d+-on-", tradable_only=True):
            ctx.subscribe(market.subscriptions())

Lookups are synchronous and fast (an index, not a scan); `refresh` is the only method that does
network I/O, and a catalog keeps answering from its previous contents while a refresh runs.
`search` is the one lookup that can take milliseconds (tens of them at 300,000 markets): a strategy
that searches live awaits `search_async` instead, which runs it in a worker thread so the event
loop (the router, the other strategies) keeps going; in a backtest the same call answers at once,
without yielding, so the run stays deterministic.
`PolymarketCatalog` (`connectors.polymarket.catalog`) is the implementation for Polymarket.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..model.errors import TradingError
from ..model.events import DataKind, Subscription

if TYPE_CHECKING:  # pricemarket.py imports this module (CatalogMarket)
    from .pricemarket import PriceMarket, Recognizer, Unrecognized

__all__ = [
    "CatalogMarket",
    "CatalogSettings",
    "InvalidPattern",
    "LayeredCatalog",
    "MarketCatalog",
    "OutcomeToken",
    "SearchResult",
    "StaticCatalog",
    "compile_slug_pattern",
    "iso_utc",
]


class InvalidPattern(TradingError, ValueError):
    """Raised by `MarketCatalog.find_by_slug_regex` when the pattern is not a valid regular
    expression. `pattern` is the text given, `position` where the parser stopped (or None)."""

    def __init__(self, pattern: str, reason: str, position: int | None = None) -> None:
        self.pattern = pattern
        self.reason = reason
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"invalid slug pattern {pattern!r}: {reason}{where}")


@attrs.frozen
class OutcomeToken:
    """One outcome of a market and the instrument that trades it (a Polymarket CLOB token id)."""

    outcome: str
    token_id: str


@attrs.frozen
class CatalogMarket:
    """A market as a catalog knows it, whatever the venue.

    `tokens` lists the outcomes in the venue's order, each with the instrument id that trades it
    (`Subscription(market.venue, token.token_id)`). Binary markets have two ("Yes"/"No",
    "Up"/"Down", two team names); multi-outcome markets more. In a neg-risk event (`neg_risk`)
    every candidate is its own binary market and `neg_risk_market_id` names the event they share.

    `active`/`closed` are the venue's flags; `tradable` combines them. `end_date` is when the
    market is scheduled to end (UTC), None when the venue gave none. `tick_size`/`min_size` are the
    order constraints the venue published with the market (VENUES.md §2.6), None when absent.
    `tokens` and `tags` are tuples (the market is frozen and hashable). Build it with keywords.
    """

    venue: str
    slug: str
    question: str
    condition_id: str
    tokens: tuple[OutcomeToken, ...]
    active: bool
    closed: bool
    end_date: dt.datetime | None
    neg_risk: bool = False
    description: str = ""
    tags: tuple[str, ...] = ()
    market_id: str | None = None  # the venue's own id for the market (Gamma `id`)
    event_slug: str | None = None
    neg_risk_market_id: str | None = None
    tick_size: Decimal | None = None
    min_size: Decimal | None = None
    accepting_orders: bool | None = None

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcome names, in the venue's order."""
        return tuple(t.outcome for t in self.tokens)

    @property
    def token_ids(self) -> tuple[str, ...]:
        """The instrument ids of the outcomes, in the same order as `outcomes`."""
        return tuple(t.token_id for t in self.tokens)

    @property
    def tradable(self) -> bool:
        """Active, not closed, with instruments to trade, and not refusing orders."""
        return self.active and not self.closed and bool(self.tokens) and self.accepting_orders is not False

    def token_id(self, outcome: str) -> str:
        """The instrument id of `outcome` (exact name first, then ignoring case).
        Raises KeyError naming the market's outcomes when there is no such outcome."""
        for t in self.tokens:
            if t.outcome == outcome:
                return t.token_id
        folded = outcome.casefold()
        for t in self.tokens:
            if t.outcome.casefold() == folded:
                return t.token_id
        raise KeyError(
            f"market {self.slug!r} has no outcome {outcome!r} (outcomes: {', '.join(self.outcomes)})"
        )

    def outcome_of(self, token_id: str) -> str:
        """The outcome that `token_id` trades. Raises KeyError when it is not one of this market's."""
        for t in self.tokens:
            if t.token_id == token_id:
                return t.outcome
        raise KeyError(f"token {token_id} is not an outcome of market {self.slug!r}")

    def subscriptions(self, kinds: Iterable[DataKind | str] | None = None) -> list[Subscription]:
        """One `Subscription` per outcome token (all kinds of data unless `kinds` says which)."""
        if kinds is None:
            return [Subscription(self.venue, t.token_id) for t in self.tokens]
        wanted = frozenset(DataKind(k) for k in kinds)
        return [Subscription(self.venue, t.token_id, wanted) for t in self.tokens]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`tradingd catalog ... --json`): every field, `end_date` as ISO-8601 UTC,
        `tokens` as `[{"outcome": ..., "token_id": ...}]` in outcome order, decimals as strings."""
        return {
            "venue": self.venue,
            "slug": self.slug,
            "question": self.question,
            "condition_id": self.condition_id,
            "market_id": self.market_id,
            "active": self.active,
            "closed": self.closed,
            "end_date": iso_utc(self.end_date),
            "neg_risk": self.neg_risk,
            "neg_risk_market_id": self.neg_risk_market_id,
            "event_slug": self.event_slug,
            "tick_size": None if self.tick_size is None else str(self.tick_size),
            "min_size": None if self.min_size is None else str(self.min_size),
            "accepting_orders": self.accepting_orders,
            "tags": list(self.tags),
            "tokens": [{"outcome": t.outcome, "token_id": t.token_id} for t in self.tokens],
            "description": self.description,
        }


def iso_utc(when: dt.datetime | None) -> str | None:
    """`2026-03-12T09:25:00Z` (microseconds only when there are some), or None."""
    if when is None:
        return None
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    return text


@attrs.frozen
class SearchResult:
    """A market found by `MarketCatalog.search` and how well it matched: higher is better. Scores
    compare results of one query; they mean nothing across queries or catalogs."""

    market: CatalogMarket
    score: float


def compile_slug_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` compiled, or `InvalidPattern` saying what is wrong with it."""
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise InvalidPattern(repr(pattern), f"expected a string, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidPattern(pattern, exc.msg, exc.pos) from None


class MarketCatalog(abc.ABC):
    """What strategies use to discover markets at run time, whatever the venue.

    Every lookup answers from the catalog's current contents, which a refresh replaces as a whole:
    a caller sees the markets before a refresh or after it, never a mix. Lookups do no I/O.
    """

    venue: str

    def __init__(self) -> None:
        self._generation = 0
        self._updated = trio.Event()
        # Where `search_async` runs a search: in a worker thread for a catalog serving an event
        # loop (an implementation's async `open` sets it), on the caller's stack otherwise
        # (a backtest, whose kernel drives strategies without trio, and scripts).
        self.search_in_thread = False

    @property
    def generation(self) -> int:
        """Increases each time the contents are replaced (a refresh, a reload)."""
        return self._generation

    async def wait_updated(self, seen_generation: int) -> int:
        """Wait until the contents differ from those at `seen_generation`; returns the new
        generation. A strategy that follows new markets loops on it:

            seen = catalog.generation
            while True:
                subscribe_to(catalog.find_by_slug_regex(pattern))
                seen = await catalog.wait_updated(seen)
        """
        while self._generation == seen_generation:
            await self._updated.wait()
        return self._generation

    def _contents_replaced(self) -> None:
        """Implementations call this right after swapping in new contents."""
        self._generation += 1
        self._updated.set()
        self._updated = trio.Event()

    @abc.abstractmethod
    def search(self, query: str, limit: int = 10) -> list[SearchResult]:
        """Markets matching the words of `query`, best first, at most `limit`. Each word is
        looked for in the slug, the question, the tags and the description, and a match counts
        8, 4, 2 and 1 times respectively (see the implementation for the exact score)."""

    async def search_async(self, query: str, limit: int = 10) -> list[SearchResult]:
        """`search`, without holding up the event loop: with `search_in_thread` (a catalog
        opened live) it runs in a worker thread; otherwise it runs here and returns without
        yielding (a backtest's kernel simulates only what the context awaits, and the result
        must not depend on timing). Either way the answer is exactly `search`'s. A bad `limit`
        is refused here, before any thread starts."""
        _check_limit(limit)
        if not self.search_in_thread:
            return self.search(query, limit)
        # Not abandoned on cancellation: the thread finishes its query (milliseconds) first.
        return await trio.to_thread.run_sync(self.search, query, limit)

    @abc.abstractmethod
    def find_by_slug(self, slug: str) -> CatalogMarket | None:
        """The market whose slug is exactly `slug`."""

    @abc.abstractmethod
    def find_by_slug_regex(
        self, pattern: str | re.Pattern[str], *, tradable_only: bool = False
    ) -> list[CatalogMarket]:
        """Every market whose slug matches `pattern` (`re.search`, so anchor with `^`), in slug
        order; with `tradable_only`, only those that can be traded now (`CatalogMarket.tradable`).
        Raises `InvalidPattern` for a pattern that does not compile."""

    @abc.abstractmethod
    def find_by_token_id(self, token_id: str) -> CatalogMarket | None:
        """The market one of whose outcomes `token_id` trades."""

    @abc.abstractmethod
    def get(self, condition_id: str) -> CatalogMarket | None:
        """The market with this condition id (the venue's market identifier)."""

    @abc.abstractmethod
    def all(self) -> Sequence[CatalogMarket]:
        """Every market in the catalog, in a stable order."""

    @abc.abstractmethod
    async def refresh(self) -> int:
        """Fetch every market from the venue, replace the catalog's contents, and return how
        many markets it now holds. Raises `VenueError` when the venue cannot be read; the
        catalog then keeps its previous contents."""

    @abc.abstractmethod
    def last_updated(self) -> dt.datetime | None:
        """When the contents were fetched from the venue (UTC), None if never."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many markets the catalog holds."""

    def price_markets(self, underlying: str | None = None) -> tuple[list[PriceMarket], list[Unrecognized]]:
        """The tradable markets that are crypto price questions ("Will the price of Bitcoin be
        above $102,000 on November 8?"), read (`PriceMarket`: underlying, condition, strikes, the
        instant the settling price is taken, its source, the YES and NO tokens), and those that
        look like one but could not be read (`Unrecognized`, with the reason), for `underlying`
        ("BTC"; None: every one). A catalog that cannot read its venue's market texts answers
        `([], [])` (this default); Polymarket's reads them (connectors/polymarket/pricemarkets.py)."""
        return [], []

    async def price_markets_async(
        self, underlying: str | None = None
    ) -> tuple[list[PriceMarket], list[Unrecognized]]:
        """`price_markets`, without holding up the event loop: like `search_async`, in a worker
        thread for a catalog opened live (`search_in_thread`: reading a few thousand crypto
        markets of 300,000 takes a tenth of a second or more), on the caller's stack otherwise
        (a backtest: no yield, deterministic). The answer is exactly `price_markets`'."""
        if not self.search_in_thread:
            return self.price_markets(underlying)
        return await trio.to_thread.run_sync(self.price_markets, underlying)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")


@attrs.frozen
class CatalogSettings:
    """How to open one venue's catalog, as the command line read it from a config (the engine
    reads no config file): its cache file (None: the catalog's default, the user cache folder),
    how old a cache may grow before it is refreshed, and the API it refreshes from (None: the
    venue's own)."""

    cache: Path | None = None
    refresh_after_s: float = 86_400.0
    source_url: str | None = None


# --------------------------------------------------------------------------- in-memory catalogs

_WORDS = re.compile(r"[^\W_]+")
# Too common to narrow a search; dropped unless the query has nothing else (as the Polymarket
# catalog drops them).
_STOP_WORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its",
     "of", "on", "or", "the", "to", "vs", "was", "will", "with")
)  # fmt: skip
_FIELD_WEIGHTS = (8.0, 4.0, 2.0, 1.0)  # slug, question, tags, description: the catalog's weights


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


class StaticCatalog(MarketCatalog):
    """A catalog of markets held in memory, fixed when it is made: a backtest's, built from the
    market definitions its recordings carry (cli/recorded.py), or a test's.

    Lookups are dictionary reads. A market listed twice (same condition id) is the later one, in
    the earlier one's place. `search` is simple and exact: a market matches when every word of
    the query (stop words dropped when others remain) is one of its words, in the slug, the
    question, the tags or the description; its score adds, for each word, how often it appears in
    each field times the field's weight (8, 4, 2, 1, as the Polymarket catalog weighs them); when
    no market has every word, markets with any of them. Ties go to the later market.
    `recognize` is the venue's reader of crypto price markets (`price_markets`; None: it reads
    none). `updated` is when the definitions were fetched (`last_updated`). `refresh` fetches
    nothing: it keeps the contents and returns their count.
    """

    def __init__(
        self,
        venue: str,
        markets: Iterable[CatalogMarket],
        *,
        recognize: Recognizer | None = None,
        updated: dt.datetime | None = None,
    ) -> None:
        super().__init__()
        self.venue = venue
        self.recognize = recognize
        self._fetched_at = updated
        by_condition: dict[str, CatalogMarket] = {}
        for m in markets:
            if m.venue != venue:
                raise ValueError(f"market {m.slug!r} is of venue {m.venue!r}, not {venue!r}")
            by_condition[m.condition_id] = m
        self._markets = list(by_condition.values())
        self._by_condition = by_condition
        self._by_slug = {m.slug: m for m in self._markets}
        self._by_token = {t.token_id: m for m in self._markets for t in m.tokens}
        self._fields = [
            tuple(_words(text) for text in (m.slug, m.question, " ".join(m.tags), m.description))
            for m in self._markets
        ]
        self._contents_replaced()

    def __repr__(self) -> str:
        return f"StaticCatalog({self.venue!r}, {len(self)} markets)"

    def search(self, query: str, limit: int = 10) -> list[SearchResult]:
        _check_limit(limit)
        words = _words(query)
        kept = [w for w in words if w not in _STOP_WORDS] or words
        if not kept:
            return []
        scored: list[tuple[float, int, bool]] = []
        for i, fields in enumerate(self._fields):
            counts = [sum(field.count(w) for field in fields) for w in kept]
            if not any(counts):
                continue
            score = sum(
                weight * field.count(w)
                for w in kept
                for weight, field in zip(_FIELD_WEIGHTS, fields, strict=True)
            )
            scored.append((score, i, all(counts)))
        if any(every for _, _, every in scored):
            scored = [s for s in scored if s[2]]
        scored.sort(key=lambda s: (-s[0], -s[1]))
        return [SearchResult(self._markets[i], score) for score, i, _ in scored[:limit]]

    def find_by_slug(self, slug: str) -> CatalogMarket | None:
        return self._by_slug.get(slug)

    def find_by_slug_regex(
        self, pattern: str | re.Pattern[str], *, tradable_only: bool = False
    ) -> list[CatalogMarket]:
        search = compile_slug_pattern(pattern).search
        found = [m for m in self._markets if search(m.slug) and (m.tradable or not tradable_only)]
        return sorted(found, key=lambda m: m.slug)

    def find_by_token_id(self, token_id: str) -> CatalogMarket | None:
        return self._by_token.get(str(token_id).strip())

    def get(self, condition_id: str) -> CatalogMarket | None:
        return self._by_condition.get(condition_id.strip().lower()) or self._by_condition.get(condition_id)

    def all(self) -> Sequence[CatalogMarket]:
        return list(self._markets)

    async def refresh(self) -> int:
        return len(self)

    def last_updated(self) -> dt.datetime | None:
        return self._fetched_at

    def __len__(self) -> int:
        return len(self._markets)

    def price_markets(self, underlying: str | None = None) -> tuple[list[PriceMarket], list[Unrecognized]]:
        if self.recognize is None:
            return [], []
        from .pricemarket import sort_price_markets

        return sort_price_markets(self._markets, self.recognize, underlying)


class LayeredCatalog(MarketCatalog):
    """Two catalogs of one venue answering as one: `first` wins wherever both know a market (the
    same condition id; a slug or token lookup asks `first` first), `second` answers the rest. A
    backtest's catalog is the markets its recordings define (`first`: what the recorded run knew,
    at the time) over the venue's cache on disk (`second`: today's, which may have changed or
    closed them since).

    `search` lists `first`'s results, then `second`'s that `first` does not hold (scores of two
    catalogs do not compare), at most `limit`; `find_by_slug_regex` and `all` merge both, `first`'s
    version of a market kept; `price_markets` reads both likewise. `refresh` refreshes `second`
    (the recorded markets are fixed); `last_updated` is `second`'s, else `first`'s.
    """

    def __init__(self, first: MarketCatalog, second: MarketCatalog) -> None:
        super().__init__()
        if first.venue != second.venue:
            raise ValueError(f"cannot layer a {first.venue!r} catalog over a {second.venue!r} one")
        self.venue = first.venue
        self.first = first
        self.second = second
        self.search_in_thread = second.search_in_thread
        self._contents_replaced()

    def __repr__(self) -> str:
        return f"LayeredCatalog({self.first!r} over {self.second!r})"

    def _shadowed(self, m: CatalogMarket) -> bool:
        return self.first.get(m.condition_id) is not None

    def search(self, query: str, limit: int = 10) -> list[SearchResult]:
        _check_limit(limit)
        out = self.first.search(query, limit)
        if len(out) < limit:
            out += [r for r in self.second.search(query, limit) if not self._shadowed(r.market)]
        return out[:limit]

    def find_by_slug(self, slug: str) -> CatalogMarket | None:
        return self.first.find_by_slug(slug) or self.second.find_by_slug(slug)

    def find_by_slug_regex(
        self, pattern: str | re.Pattern[str], *, tradable_only: bool = False
    ) -> list[CatalogMarket]:
        ours = self.first.find_by_slug_regex(pattern, tradable_only=tradable_only)
        # `second`'s version of a market `first` holds is dropped even when only it is tradable.
        theirs = [m for m in self.second.find_by_slug_regex(pattern) if not self._shadowed(m)]
        theirs = [m for m in theirs if m.tradable or not tradable_only]
        return sorted([*ours, *theirs], key=lambda m: m.slug)

    def find_by_token_id(self, token_id: str) -> CatalogMarket | None:
        return self.first.find_by_token_id(token_id) or self.second.find_by_token_id(token_id)

    def get(self, condition_id: str) -> CatalogMarket | None:
        return self.first.get(condition_id) or self.second.get(condition_id)

    def all(self) -> Sequence[CatalogMarket]:
        return [*self.first.all(), *(m for m in self.second.all() if not self._shadowed(m))]

    async def refresh(self) -> int:
        await self.second.refresh()
        self._contents_replaced()
        return len(self)

    def last_updated(self) -> dt.datetime | None:
        return self.second.last_updated() or self.first.last_updated()

    def __len__(self) -> int:
        shadowed = sum(1 for m in self.first.all() if self.second.get(m.condition_id) is not None)
        return len(self.first) + len(self.second) - shadowed

    def price_markets(self, underlying: str | None = None) -> tuple[list[PriceMarket], list[Unrecognized]]:
        read, unread = self.first.price_markets(underlying)
        more, more_unread = self.second.price_markets(underlying)
        read += [p for p in more if not self._shadowed(p.market)]
        unread += [u for u in more_unread if not self._shadowed(u.market)]
        return read, unread
