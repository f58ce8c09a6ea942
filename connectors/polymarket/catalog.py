"""PolymarketCatalog: every Polymarket market, searchable, from a cache refreshed in the background.

Three layers, each replaced whole, never patched:

1. **The cache**, `polymarket_markets.jsonl` (default folder: `$XDG_CACHE_HOME/tradingd/`, else
   `~/.cache/tradingd/`). Line 1 is a header, `{"_tradingd_cache": 1, "venue": "polymarket",
   "source": <Gamma URL>, "started_at": <ISO>, "refreshed_at": <ISO>, "count": N}` padded with
   spaces to 512 bytes; every other line is one Gamma market object exactly as `/markets?
   include_tag=true` returned it (VENUES.md §2.7). A refresh writes a temporary file in the same
   folder, fsyncs it and `os.replace`s it over the cache, so a crash at any point leaves the old
   cache or the new one, never a torn one. Loading tolerates a missing or unreadable header (the
   refresh time is then the file's modification time) and counts lines it cannot use (not JSON,
   no slug or condition id, outcomes and token ids that do not pair up), naming the first few.

2. **The index**, `<cache>.index.sqlite3` beside the cache: a SQLite database (the standard
   library's `sqlite3`) with the markets' fields, B-tree indexes on slug, condition id and token
   id, and an FTS5 full-text index over slug, question, tags and description (`porter unicode61`
   tokenizer: slugs split on `-`, words stemmed, accents folded). It records which cache it was
   built from (size, modification time, inode, first line), so a process that finds it current
   opens it in milliseconds instead of parsing a gigabyte of JSON; otherwise it is rebuilt (in a
   worker thread), written to a temporary file and renamed into place.

3. **The snapshot**: a read-only connection to one index. Every lookup goes to the snapshot the
   catalog holds at the time; `refresh`/`load` build a new one completely, then swap it in with
   one assignment. Readers see the old contents or the new ones, never a half-built state.

Search (`search`): the query's words (stop words like "will" or "the" dropped when others remain)
must all appear, in any of the four fields; when no market has them all, markets with any of them
are returned instead. Ranking is SQLite's FTS5 BM25 with column weights slug 8, question 4, tags
2, description 1: each occurrence of a word counts its column's weight towards the word's term
frequency, so a word in the slug counts twice what it counts in the question, and so on. FTS5's
`bm25()` returns lower-is-better negative numbers; `SearchResult.score` is its negation (higher is
better). Ties go to the newer market.

FTS5 scores every market a query matches before it can sort them, about a microsecond each: fine
for "bitcoin above 100000 december" (a few hundred matches), 200 ms for "crypto" (half of
Polymarket). So when a query matches more than `rank_window` markets (5,000 by default), the
5,000 newest matches are ranked (a refresh writes markets in Gamma id order, so a later line is a
newer market), which bounds a search to ~20 ms. A word in that many markets tells BM25 little
anyway (its idf is near zero), and the newest markets are the ones still trading. Below the
window the ranking is exact; `rank_window=None` makes it exact always.

At 300,000 markets `bm25()` spends most of a search counting, for each word of the query, the
markets that contain it (it walks the word's whole posting list: 13 ms for a word in every
description) and, for each market it scores, looking its length up in the index (a B-tree lookup
a row). The index keeps the counts (`terms`), and the compiled `_rank` module (`_rank.c`, built
by the install when a C compiler and SQLite's header are there) ranks with `bm25idf()`: FTS5's
bm25 with the counts handed in and the lengths read from an array loaded once, the same doubles
from the same arithmetic (p99 about 6 ms instead of 20). Queries it cannot take (a prefix
`word*`, a word FTS5 splits in two, more than 64 words) and installs without it use `bm25()`
itself, the reference the tests compare it with. Live, `search_async` runs either in a worker
thread; both release the GIL while SQLite works, so the event loop runs meanwhile.

Background refresh: `maintain()` (started by `PolymarketCatalog.open`) refreshes when the cache is
older than `refresh_after_s` (one day by default) and again each time it gets that old, retries a
failed refresh after `retry_s`, and reloads the cache when another process (`tradingd catalog
refresh`) has replaced it. Fetching is network I/O on trio; writing, parsing and indexing run in
worker threads, so the router and strategies keep running throughout.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import hashlib
import math
import os
import re
import secrets
import sqlite3
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Self, TypeVar, cast

import attrs
import httpx
import msgspec
import orjson
import structlog
import trio

from tradingd.engine.venue import (
    CatalogMarket,
    ConfigError,
    DataError,
    MalformedFrame,
    MarketCatalog,
    OutcomeToken,
    PriceMarket,
    SearchResult,
    Unrecognized,
    VenueError,
    compile_slug_pattern,
    iso_utc,
    loads_untyped,
    positional_builder,
    sort_price_markets,
)

from .gamma import DEFAULT_GAMMA_URL, GammaClient

try:  # the compiled ranking (module docstring); without it, FTS5's own bm25()
    from ._rank import Ranker
except ImportError:  # pragma: no cover - an install without a C compiler or SQLite's header
    Ranker = None  # type: ignore[assignment,misc]

__all__ = [
    "CACHE_FILE_NAME",
    "LoadStats",
    "PolymarketCatalog",
    "RecordedMarkets",
    "default_cache_path",
    "market_from_clob",
    "market_from_gamma",
    "markets_from_definitions",
    "write_cache",
]

VENUE = "polymarket"
CACHE_FILE_NAME = "polymarket_markets.jsonl"
HEADER_KEY = "_tradingd_cache"
HEADER_WIDTH = 512  # bytes, newline included: the header is rewritten in place once the count is known
INDEX_SUFFIX = ".index.sqlite3"
INDEX_VERSION = 2  # 2: the `terms` table (each word's number of markets)
WEIGHTS = (8.0, 4.0, 2.0, 1.0)  # slug, question, tags, description (the seed's weights)
RANK_WINDOW = 5_000  # a query matching more markets ranks the newest this many (module docstring)
_SEP = "\x1f"  # joins tags / outcomes / token ids in one column: no market text contains it
_BATCH = 5_000
_MAX_PROBLEMS = 10
_STALE_TEMP_S = 3_600.0

log = structlog.get_logger("tradingd.polymarket.catalog")

# Words too common to narrow a search; dropped unless the query has nothing else.
_STOP_WORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its",
     "of", "on", "or", "the", "to", "vs", "was", "will", "with")
)  # fmt: skip
_WORD = re.compile(r"[^\W_]+\*?")


def default_cache_path(env: dict[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/tradingd/polymarket_markets.jsonl`, else `~/.cache/tradingd/...` (a
    relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "tradingd" / CACHE_FILE_NAME


# --------------------------------------------------------------------------- Gamma objects


class _Tag(msgspec.Struct):
    label: str | None = None
    slug: str | None = None


class _EventRef(msgspec.Struct):
    slug: str | None = None


class _GammaMarket(msgspec.Struct, rename="camel"):
    """The fields of a Gamma market object the catalog uses; the others are skipped unread."""

    id: str | int | None = None
    slug: str | None = None
    question: str | None = None
    description: str | None = None
    condition_id: str | None = None
    active: bool | None = None
    closed: bool | None = None
    end_date: str | None = None
    neg_risk: bool | None = None
    neg_risk_market_id: str | None = msgspec.field(default=None, name="negRiskMarketID")
    outcomes: str | list[str] | None = None
    clob_token_ids: str | list[str] | None = None
    order_price_min_tick_size: int | float | str | None = None
    order_min_size: int | float | str | None = None
    accepting_orders: bool | None = None
    tags: list[_Tag | str] | None = None
    events: list[_EventRef] | None = None


_decode_market = msgspec.json.Decoder(_GammaMarket).decode


class _BadMarket(ValueError):
    pass


def _string_list(value: str | list[str] | None, name: str) -> list[str]:
    """`outcomes` / `clobTokenIds`: JSON-encoded strings in Gamma objects (VENUES.md §2.7)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _BadMarket(f"{name} is not a JSON-encoded list: {value[:60]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadMarket(f"{name} is not a list of strings")
    return value


def _decimal(value: int | float | str | None) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return str(d) if d.is_finite() and d > 0 else None


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


_Row = tuple[Any, ...]


def _row(m: _GammaMarket) -> _Row:
    """The index row of one Gamma market (column order of the `markets` table, rowid excluded).
    Raises `_BadMarket` saying what makes it unusable."""
    if not m.slug:
        raise _BadMarket("no slug")
    if not m.condition_id:
        raise _BadMarket("no conditionId")
    outcomes = _string_list(m.outcomes, "outcomes")
    token_ids = _string_list(m.clob_token_ids, "clobTokenIds")
    if token_ids:
        if len(token_ids) != len(outcomes):
            raise _BadMarket(
                f"{len(outcomes)} outcomes but {len(token_ids)} clobTokenIds: they must pair up in order"
            )
        if not all(t.isdigit() for t in token_ids):
            raise _BadMarket("a clobTokenIds entry is not a decimal token id")
        if len(set(token_ids)) != len(token_ids):
            raise _BadMarket("clobTokenIds repeats a token id")
    if any(_SEP in o for o in outcomes):
        raise _BadMarket("an outcome name contains a control character")
    tags = []
    for t in m.tags or ():
        label = t if isinstance(t, str) else (t.label or t.slug)
        if label and _SEP not in label:
            tags.append(label)
    event_slug = next((e.slug for e in m.events or () if e.slug), None)
    return (
        m.slug,
        m.question or "",
        _SEP.join(tags),
        m.description or "",
        m.condition_id.lower(),
        None if m.id is None else str(m.id),
        bool(m.active),
        bool(m.closed),
        _timestamp(m.end_date),
        bool(m.neg_risk),
        m.neg_risk_market_id or None,
        event_slug,
        _SEP.join(outcomes) if token_ids else "",
        _SEP.join(token_ids),
        _decimal(m.order_price_min_tick_size),
        _decimal(m.order_min_size),
        m.accepting_orders,
    )


# `CatalogMarket.tradable`, in SQL.
_TRADABLE = (
    "active = 1 AND closed = 0 AND token_ids != '' AND (accepting_orders IS NULL OR accepting_orders = 1)"
)

_COLUMNS = (
    "slug, question, tags, description, condition_id, market_id, active, closed, end_ts, neg_risk, "
    "neg_risk_market_id, event_slug, outcomes, token_ids, tick_size, min_size, accepting_orders"
)


# Markets are built by the thousand (a regex over recurring markets, `all()`): fill the frozen
# classes' slots directly, as the decoders do for events (engine.model.events.positional_builder).
_new_market = positional_builder(CatalogMarket)
_new_token = positional_builder(OutcomeToken)
_decimals: dict[str, Decimal] = {}  # tick and minimum sizes: a handful of distinct values


def _dec(text: str | None) -> Decimal | None:
    if text is None:
        return None
    d = _decimals.get(text)
    if d is None:
        d = _decimals[text] = Decimal(text)
    return d


def _market(row: Sequence[Any]) -> CatalogMarket:
    (slug, question, tags, description, condition_id, market_id, active, closed, end_ts, neg_risk,
     neg_risk_market_id, event_slug, outcomes, token_ids, tick, min_size, accepting) = row  # fmt: skip
    tokens = tuple(map(_new_token, outcomes.split(_SEP), token_ids.split(_SEP))) if token_ids else ()
    # The field order of CatalogMarket (engine/venue/catalog.py).
    return _new_market(
        VENUE,
        slug,
        question,
        condition_id,
        tokens,
        bool(active),
        bool(closed),
        None if end_ts is None else dt.datetime.fromtimestamp(end_ts, dt.UTC),
        bool(neg_risk),
        description,
        tuple(tags.split(_SEP)) if tags else (),
        market_id,
        event_slug,
        neg_risk_market_id,
        _dec(tick),
        _dec(min_size),
        None if accepting is None else bool(accepting),
    )


def market_from_gamma(obj: bytes | str | dict[str, Any]) -> CatalogMarket:
    """A `CatalogMarket` from one Gamma market object (bytes, text, or an already parsed dict),
    read exactly as the catalog reads its cache. Raises ValueError saying what is wrong."""
    try:
        if isinstance(obj, dict):
            m = msgspec.convert(obj, _GammaMarket)
        else:
            m = _decode_market(obj.encode() if isinstance(obj, str) else obj)
        return _market(_row(m))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a Gamma market object: {exc}") from None
    except _BadMarket as exc:
        raise ValueError(f"unusable Gamma market: {exc}") from None


def market_from_clob(obj: dict[str, Any]) -> CatalogMarket:
    """A `CatalogMarket` from one CLOB market object (`GET /markets/{condition_id}` on the CLOB,
    VENUES.md §2.3: `condition_id`, `market_slug`, `tokens: [{"token_id", "outcome"}]`,
    `end_date_iso`, `minimum_tick_size`...), read as its Gamma equivalent is (`market_from_gamma`:
    the same checks). It has no Gamma id (`market_id` None). Raises ValueError saying what is wrong."""
    tokens = obj.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise ValueError("unusable CLOB market: tokens is not a list of objects")
    tags = obj.get("tags")
    gamma = {
        "slug": obj.get("market_slug"),
        "question": obj.get("question"),
        "description": obj.get("description"),
        "conditionId": obj.get("condition_id"),
        "active": obj.get("active"),
        "closed": obj.get("closed"),
        "endDate": obj.get("end_date_iso"),
        "negRisk": obj.get("neg_risk"),
        "negRiskMarketID": obj.get("neg_risk_market_id") or None,
        "outcomes": [str(t.get("outcome", "")) for t in tokens],
        "clobTokenIds": [str(t.get("token_id", "")) for t in tokens],
        "orderPriceMinTickSize": obj.get("minimum_tick_size"),
        "orderMinSize": obj.get("minimum_order_size"),
        "acceptingOrders": obj.get("accepting_orders"),
        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else None,
    }
    return market_from_gamma(gamma)


@attrs.define
class RecordedMarkets:
    """What `markets_from_definitions` read: the markets (later definitions of a condition id
    replace earlier ones), the frames it parsed, and the objects it could not use (counted, the
    first few named)."""

    markets: list[CatalogMarket] = attrs.Factory(list)
    frames: int = 0
    skipped: int = 0
    problems: list[str] = attrs.Factory(list)
    last_ts: int | None = None  # the receive time of the last frame that defined a market

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(why)


def _definition_objects(obj: Any) -> Iterable[tuple[str, dict[str, Any]]]:
    """(kind, object) for each market definition in a parsed frame: a Gamma market, the markets
    of a Gamma event (its slug and description lent to them), a CLOB market, in a list or a
    cursor page (`{"data": [...], "next_cursor": ...}`) or alone."""
    if isinstance(obj, dict) and isinstance(obj.get("data"), list) and "next_cursor" in obj:
        obj = obj["data"]
    for item in obj if isinstance(obj, list) else [obj]:
        if not isinstance(item, dict):
            continue
        if "clobTokenIds" in item:
            yield "gamma", item
        elif isinstance(item.get("markets"), list):
            event_slug, description = item.get("slug"), item.get("description")
            for m in item["markets"]:
                if isinstance(m, dict) and "clobTokenIds" in m:
                    lent = dict(m)
                    if not lent.get("events") and isinstance(event_slug, str):
                        lent["events"] = [{"slug": event_slug}]
                    if not lent.get("description") and isinstance(description, str):
                        lent["description"] = description
                    yield "gamma", lent
        elif "condition_id" in item and "tokens" in item and "market_slug" in item:
            yield "clob", item


def markets_from_definitions(frames: Iterable[tuple[int | None, bytes]]) -> RecordedMarkets:
    """The markets that recorded frames define (Gamma market and event objects, CLOB market
    objects, alone, in arrays or in cursor pages: what a recorder fetched and recorded as lines
    of their own, simulators/polymarket/generator.py), in recording order, a later definition of
    a condition id replacing the earlier one. Frames that are no JSON, or define nothing, are
    passed over; objects that do not make a market are counted in `skipped`."""
    out = RecordedMarkets()
    by_condition: dict[str, CatalogMarket] = {}
    for ts, frame in frames:
        try:
            obj = loads_untyped(frame, VENUE, "recorded market definitions")
        except MalformedFrame as exc:
            out.skip(str(exc))
            continue
        out.frames += 1
        for kind, item in _definition_objects(obj):
            try:
                market = market_from_gamma(item) if kind == "gamma" else market_from_clob(item)
            except ValueError as exc:
                out.skip(f"{item.get('slug') or item.get('market_slug') or '?'}: {exc}")
                continue
            by_condition[market.condition_id] = market
            if ts is not None:
                out.last_ts = ts
    out.markets = list(by_condition.values())
    return out


# --------------------------------------------------------------------------- the cache file


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen
class LoadStats:
    """What loading a cache found. `bad_lines` were skipped (`problems` names the first few, with
    their line numbers); `duplicates` are markets that appeared again later in the file (the later
    line wins); `expected_count` is the header's count, None without a header."""

    lines: int = 0
    markets: int = 0
    bad_lines: int = 0
    duplicates: int = 0
    header: bool = False
    expected_count: int | None = None
    problems: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class _Fingerprint:
    """Which cache file an index was built from."""

    size: int
    mtime_ns: int
    inode: int
    first_line: str  # blake2b of line 1 (the header: its refresh time makes it unique)

    @classmethod
    def of(cls, st: os.stat_result, first_line: bytes) -> _Fingerprint:
        return cls(
            st.st_size, st.st_mtime_ns, st.st_ino, hashlib.blake2b(first_line, digest_size=16).hexdigest()
        )

    def same_file(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)


def _parse_header(line: bytes) -> dict[str, Any] | None:
    if b'"' + HEADER_KEY.encode() + b'"' not in line:
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and HEADER_KEY in obj else None


def _header_time(header: dict[str, Any] | None, st: os.stat_result) -> float:
    """The refresh time the header records, else the file's modification time."""
    if header is not None:
        value = header.get("refreshed_at")
        ts = _timestamp(value) if isinstance(value, str) else None
        if ts is not None:
            return ts
    return st.st_mtime


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _remove_stale_temps(final: Path, now: float) -> None:
    """Temporary files a crashed process left behind (a live writer keeps its file fresh)."""
    with contextlib.suppress(OSError):
        for p in final.parent.glob(f".{final.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > _STALE_TEMP_S:
                    p.unlink()


class _IdOnly(msgspec.Struct):
    id: str | int | None = None


_decode_id = msgspec.json.Decoder(_IdOnly).decode


class _CacheWriter:
    """Writes a new cache next to the old one and replaces it atomically (module docstring)."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self.started_at = clock()
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path, time.time())
        self.tmp = _temp_path(path)
        self.file: IO[bytes] | None = open(self.tmp, "wb")  # noqa: SIM115  (closed in commit/discard)
        self.file.write(b" " * (HEADER_WIDTH - 1) + b"\n")  # the real header is written last
        self.count = 0
        self.duplicates = 0
        self._seen: set[str] = set()

    def write_page(self, page: list[bytes]) -> None:
        assert self.file is not None
        out = []
        for item in page:
            try:
                market_id = _decode_id(item).id
            except (msgspec.DecodeError, msgspec.ValidationError):
                market_id = None  # kept as sent; loading will count it if it is unusable
            if market_id is not None:
                key = str(market_id)
                if key in self._seen:  # a market that moved across a page boundary mid-listing
                    self.duplicates += 1
                    continue
                self._seen.add(key)
            out.append(item)
        self.file.write(b"\n".join(out) + b"\n" if out else b"")
        self.count += len(out)

    def commit(self, source: str) -> None:
        assert self.file is not None
        header = {
            HEADER_KEY: 1,
            "venue": VENUE,
            "source": source[:200],
            "started_at": iso_utc(dt.datetime.fromtimestamp(self.started_at, dt.UTC)),
            "refreshed_at": iso_utc(dt.datetime.fromtimestamp(self.clock(), dt.UTC)),
            "count": self.count,
        }
        text = orjson.dumps(header)
        if len(text) > HEADER_WIDTH - 1:
            raise DataError(f"cache header too long ({len(text)} bytes)")
        self.file.seek(0)
        self.file.write(text.ljust(HEADER_WIDTH - 1) + b"\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def write_cache(
    path: str | os.PathLike[str],
    markets: Iterable[bytes | dict[str, Any]],
    *,
    refreshed_at: float | None = None,
    source: str = "local",
) -> int:
    """Write `markets` (Gamma objects, as JSON bytes or dicts) as a catalog cache at `path`,
    atomically, as a refresh would; `refreshed_at` (Unix seconds) defaults to now. Returns the
    number of markets written (a repeated market id is written once). For tests, benchmarks and
    importing a dump made elsewhere."""
    when = time.time() if refreshed_at is None else refreshed_at
    writer = _CacheWriter(Path(path), lambda: when)
    try:
        page: list[bytes] = []
        for m in markets:
            page.append(m if isinstance(m, bytes) else orjson.dumps(m))
            if len(page) >= _BATCH:
                writer.write_page(page)
                page = []
        writer.write_page(page)
        writer.commit(source)
    except BaseException:
        writer.discard()
        raise
    return writer.count


# --------------------------------------------------------------------------- the index


_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE markets(
    rowid INTEGER PRIMARY KEY,  -- the market's line number in the cache
    slug TEXT NOT NULL, question TEXT NOT NULL, tags TEXT NOT NULL, description TEXT NOT NULL,
    condition_id TEXT NOT NULL, market_id TEXT, active INTEGER NOT NULL, closed INTEGER NOT NULL,
    end_ts REAL, neg_risk INTEGER NOT NULL, neg_risk_market_id TEXT, event_slug TEXT,
    outcomes TEXT NOT NULL, token_ids TEXT NOT NULL, tick_size TEXT, min_size TEXT,
    accepting_orders INTEGER
);
CREATE TABLE tokens_raw(token_id TEXT NOT NULL, market INTEGER NOT NULL);
CREATE VIRTUAL TABLE fts USING fts5(
    slug, question, tags, description,
    content='markets', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2'
);
"""
_TOKENIZE = "porter unicode61 remove_diacritics 2"  # the `fts` table's, for query words too
_FINISH = """
CREATE INDEX markets_slug ON markets(slug);
CREATE INDEX markets_condition ON markets(condition_id);
CREATE TABLE tokens(token_id TEXT PRIMARY KEY, market INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO tokens SELECT token_id, max(market) FROM tokens_raw GROUP BY token_id;
DROP TABLE tokens_raw;
INSERT INTO fts(fts) VALUES('rebuild');
INSERT INTO fts(fts) VALUES('optimize');
CREATE VIRTUAL TABLE temp.fts_words USING fts5vocab(main, fts, row);
CREATE TABLE terms(term TEXT PRIMARY KEY, doc INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO terms SELECT term, doc FROM temp.fts_words;
DROP TABLE temp.fts_words;
"""
_INSERT = f"INSERT INTO markets(rowid, {_COLUMNS}) VALUES ({', '.join('?' * 18)})"


class _Stopped(Exception):
    """The build was asked to stop (its caller was cancelled)."""


def _problem(lineno: int, reason: str) -> str:
    return f"line {lineno}: {reason}"


def _fill(con: sqlite3.Connection, f: IO[bytes], first: bytes, stop: threading.Event | None) -> LoadStats:
    """Parse the cache (positioned after `first`) into the index tables."""
    header = _parse_header(first)
    lines = markets = bad = duplicates = 0
    problems: list[str] = []
    by_condition: dict[str, int] = {}
    superseded: list[int] = []
    rows: list[_Row] = []
    tokens: list[tuple[str, int]] = []
    decode = _decode_market

    def flush() -> None:
        con.executemany(_INSERT, rows)
        con.executemany("INSERT INTO tokens_raw VALUES (?, ?)", tokens)
        rows.clear()
        tokens.clear()
        if stop is not None and stop.is_set():
            raise _Stopped

    def add(lineno: int, line: bytes) -> None:
        nonlocal bad, markets, duplicates
        try:
            row = _row(decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            bad += 1
            if len(problems) < _MAX_PROBLEMS:
                problems.append(_problem(lineno, f"not a Gamma market object ({exc})"))
            return
        except _BadMarket as exc:
            bad += 1
            if len(problems) < _MAX_PROBLEMS:
                problems.append(_problem(lineno, str(exc)))
            return
        earlier = by_condition.get(row[4])
        if earlier is not None:
            duplicates += 1
            superseded.append(earlier)
        else:
            markets += 1
        by_condition[row[4]] = lineno
        rows.append((lineno, *row))
        if row[13]:
            tokens.extend((t, lineno) for t in row[13].split(_SEP))
        if len(rows) >= _BATCH:
            flush()

    if header is None and first.strip():
        lines += 1
        add(1, first)
    for lineno, line in enumerate(f, 2):
        if not line.strip():
            continue
        lines += 1
        add(lineno, line)
    flush()
    for i in range(0, len(superseded), 500):
        chunk = superseded[i : i + 500]
        con.execute(f"DELETE FROM markets WHERE rowid IN ({', '.join('?' * len(chunk))})", chunk)
    expected = header.get("count") if header is not None else None
    return LoadStats(
        lines=lines,
        markets=markets,
        bad_lines=bad,
        duplicates=duplicates,
        header=header is not None,
        expected_count=expected if isinstance(expected, int) else None,
        problems=tuple(problems),
    )


def _connect_ro(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    con.execute("PRAGMA mmap_size = 2147483648")  # read through the page cache, not copies
    return con


def _meta(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM meta").fetchall())


def _open_ranker(path: Path, cache: str) -> Ranker | None:
    """The compiled ranking's own connection to the index at `path` (None without the module),
    checked to read the index built from the same cache as the snapshot's connection (`cache`:
    its fingerprint; an index built from one cache is the same whoever builds it)."""
    if Ranker is None:
        return None
    try:
        ranker = Ranker(f"{path.resolve().as_uri()}?mode=ro&immutable=1")
        same = ranker.rows("SELECT (SELECT value FROM meta WHERE key = 'cache') = ?, 0.0", (cache,))
    except (OSError, ValueError) as exc:
        log.warning("catalog.ranker_unavailable", venue=VENUE, index=str(path), error=str(exc))
        return None
    if same != [(1, 0.0)]:  # replaced between the two opens: rank with bm25() instead
        ranker.close()
        return None
    return ranker


# Query words as FTS5 tokenizes them (`"word"` in a MATCH): asked of FTS5 itself, in a table of
# its own with the index's tokenizer, so stemming and folding are FTS5's to the letter.
_tokenizer_lock = threading.Lock()
_tokenizer: sqlite3.Connection | None = None
_tokens_of: dict[str, tuple[str, ...]] = {}


def _query_tokens(word: str) -> tuple[str, ...]:
    global _tokenizer
    found = _tokens_of.get(word)
    if found is not None:
        return found
    with _tokenizer_lock:  # searches run in worker threads
        if _tokenizer is None:
            con = sqlite3.connect(":memory:", check_same_thread=False)
            con.executescript(
                f"CREATE VIRTUAL TABLE q USING fts5(x, tokenize='{_TOKENIZE}');"
                "CREATE VIRTUAL TABLE q_words USING fts5vocab(q, instance);"
            )
            _tokenizer = con
        _tokenizer.execute("DELETE FROM q")
        _tokenizer.execute("INSERT INTO q(x) VALUES (?)", (word,))
        found = tuple(r[0] for r in _tokenizer.execute("SELECT term FROM q_words ORDER BY offset"))
    if len(_tokens_of) >= 10_000:  # bounded: queries are typed by people and strategies
        _tokens_of.clear()
    _tokens_of[word] = found
    return found


_DOCUMENTS_SQL = "SELECT coalesce((SELECT doc FROM terms WHERE term = ?), 0), 0.0"
_BY_IDS_SQL = f"SELECT rowid, {_COLUMNS} FROM markets WHERE rowid IN (SELECT value FROM json_each(?))"
_MAX_PHRASES = 64  # _rank.c's MAX_PHRASES
_RANK_SQL = (
    "SELECT id, score FROM "
    f"(SELECT rowid AS id, -bm25idf(fts, ?, {', '.join(str(x) for x in WEIGHTS)}) AS score FROM fts "
    "WHERE fts MATCH ? ORDER BY rowid DESC LIMIT ?) ORDER BY score DESC, id DESC LIMIT ?"
)


_R = TypeVar("_R")


def _as_read(row: Any) -> tuple[Any, ...]:
    return cast(tuple[Any, ...], row)  # sqlite3's rows are tuples


def _scored_market(row: Any) -> SearchResult:
    """A search's row: its score, then the market's columns."""
    return SearchResult(_market(row[1:]), float(row[0]))


def _keyed_market(row: Any) -> tuple[int, CatalogMarket]:
    """(rowid, market) of a row that starts with the rowid."""
    return row[0], _market(row[1:])


class _Snapshot:
    """One complete, immutable version of the catalog (a read-only index connection).
    The catalog swaps whole snapshots; nothing in one ever changes."""

    def __init__(
        self,
        con: sqlite3.Connection | None,
        *,
        fingerprint: _Fingerprint | None,
        refreshed_at: float | None,
        stats: LoadStats,
        count: int,
        ranker: Ranker | None = None,
    ) -> None:
        self.con = con
        self.ranker = ranker  # the compiled ranking on this same index, None: bm25()
        self._documents: dict[str, int] = {}  # word -> markets containing it, from `terms`
        self.fingerprint = fingerprint
        self.refreshed_at = refreshed_at
        self.stats = stats
        self.count = count
        self._slugs: list[str] | None = None
        self._slug_rowids: list[int] = []
        # Searches running in worker threads (`MarketCatalog.search_async`) and whether the
        # snapshot was swapped out meanwhile: the last reader closes the connection, so a swap
        # never closes it under a query in flight.
        self._guard = threading.Lock()
        self._readers = 0
        self._closing = False
        # One query on the connection at a time (`_rows`): from Python 3.12 the sqlite3 module
        # hands two threads the same cached statement of the same SQL at once, and both then
        # read from it: "bad parameter or other API misuse", or wrong rows without an error
        # (python/cpython#118172). SQLite runs one call at a time on a connection anyway; the
        # compiled ranking opens its own connection and prepares a statement per call.
        self._sql = threading.Lock()

    @classmethod
    def empty(cls) -> _Snapshot:
        return cls(None, fingerprint=None, refreshed_at=None, stats=LoadStats(), count=0)

    @classmethod
    def from_index(cls, con: sqlite3.Connection, fingerprint: _Fingerprint, path: Path) -> _Snapshot:
        meta = _meta(con)
        return cls(
            con,
            fingerprint=fingerprint,
            refreshed_at=float(meta["refreshed_at"]),
            stats=LoadStats(**orjson.loads(meta["stats"])),
            count=int(meta["count"]),
            ranker=_open_ranker(path, meta["cache"]),
        )

    def close(self) -> None:
        """Close the connection now, or, while searches still read it, once the last one ends."""
        with self._guard:
            self._closing = True
            if self._readers:
                return
        self._close_now()

    def _close_now(self) -> None:
        if self.ranker is not None:
            self.ranker.close()
        if self.con is not None:
            with self._sql:  # not under a query of a caller that did not `acquire`
                self.con.close()

    def acquire(self) -> bool:
        """Register a reader (a search about to run); False once the snapshot has been swapped
        out (the caller takes the catalog's current one instead). Pair with `release`."""
        with self._guard:
            if self._closing:
                return False
            self._readers += 1
            return True

    def release(self) -> None:
        with self._guard:
            self._readers -= 1
            last = self._readers == 0 and self._closing
        if last:
            self._close_now()

    # -- lookups ----------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any], make: Callable[[Any], _R]) -> list[_R]:
        """`make` of every row of one query on the connection, read whole while no other
        thread's query runs on it (see `_sql`): every read of the connection goes through here.
        The rows are made as they are read (a whole catalog's rows are not held twice)."""
        assert self.con is not None
        with self._sql:
            return [make(r) for r in self.con.execute(sql, params)]

    def one(self, where: str, arg: str) -> CatalogMarket | None:
        if self.con is None:
            return None
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM markets WHERE {where} ORDER BY rowid DESC LIMIT 1", (arg,), _market
        )
        return rows[0] if rows else None

    def by_token(self, token_id: str) -> CatalogMarket | None:
        if self.con is None:
            return None
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM tokens JOIN markets ON markets.rowid = tokens.market "
            "WHERE tokens.token_id = ?",
            (token_id,),
            _market,
        )
        return rows[0] if rows else None

    def all(self) -> list[CatalogMarket]:
        if self.con is None:
            return []
        return self._rows(f"SELECT {_COLUMNS} FROM markets ORDER BY rowid", (), _market)

    def search(self, query: str, limit: int, window: int | None) -> list[SearchResult]:
        if self.con is None:
            return []
        words = _WORD.findall(query.casefold())
        kept = [w for w in words if w.rstrip("*") not in _STOP_WORDS] or words
        terms = [f'"{w[:-1]}"*' if w.endswith("*") else f'"{w}"' for w in kept if w.rstrip("*")]
        if not terms:
            return []
        w = ", ".join(str(x) for x in WEIGHTS)
        # Innermost: the matches, newest first, at most `window` of them (FTS5 walks its index
        # in rowid order, so this stops early), each with its BM25 score. Then the best `limit`.
        sql = (
            f"SELECT r.score, {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM "
            "(SELECT id, score FROM "
            f"(SELECT rowid AS id, -bm25(fts, {w}) AS score FROM fts WHERE fts MATCH ? "
            "ORDER BY rowid DESC LIMIT ?) ORDER BY score DESC, id DESC LIMIT ?) AS r "
            "JOIN markets AS m ON m.rowid = r.id ORDER BY r.score DESC, r.id DESC"
        )
        cap = -1 if window is None else window
        if self.ranker is not None and len(terms) <= _MAX_PHRASES and not any(t.endswith("*") for t in terms):
            tokens = [_query_tokens(w) for w in kept if w.rstrip("*")]
            if all(len(t) == 1 for t in tokens):
                return self._ranked(self.ranker, [t[0] for t in tokens], terms, cap, limit)
        rows = self._rows(sql, (" ".join(terms), cap, limit), _scored_market)
        if not rows and len(terms) > 1:  # nothing has every word: anything with some of them
            rows = self._rows(sql, (" OR ".join(terms), cap, limit), _scored_market)
        return rows

    def _ranked(
        self, ranker: Ranker, tokens: list[str], terms: list[str], cap: int, limit: int
    ) -> list[SearchResult]:
        """`search` through the compiled ranking: each phrase's idf as fts5Bm25GetData computes
        it (fts5_aux.c), from the counts the index keeps instead of a walk of its postings."""
        assert self.con is not None
        rows = self.count
        idfs = []
        for token in tokens:
            hits = self._documents.get(token)
            if hits is None:
                if len(self._documents) >= 100_000:  # bounded: words never seen are cached too
                    self._documents.clear()
                hits = self._documents[token] = ranker.rows(_DOCUMENTS_SQL, (token,))[0][0]
            idf = math.log((rows - hits + 0.5) / (hits + 0.5))
            idfs.append(idf if idf > 0.0 else 1e-6)
        packed = struct.pack(f"={len(idfs)}d", *idfs)
        ranked = ranker.rows(_RANK_SQL, (packed, " ".join(terms), cap, limit))
        if not ranked and len(terms) > 1:  # nothing has every word: anything with some of them
            ranked = ranker.rows(_RANK_SQL, (packed, " OR ".join(terms), cap, limit))
        if not ranked:
            return []
        ids = orjson.dumps([r[0] for r in ranked]).decode()  # any `limit`: no SQL variable per id
        found = dict(self._rows(_BY_IDS_SQL, (ids,), _keyed_market))
        return [SearchResult(found[i], score) for i, score in ranked]

    def naming(self, words: Sequence[str]) -> list[CatalogMarket]:
        """The tradable markets whose question holds one of `words` (through the full-text index:
        a few hundred of 300,000, without reading the others), in cache order."""
        if self.con is None or not words:
            return []
        match = "question : (" + " OR ".join(f'"{w}"' for w in words) + ")"
        return self._rows(
            f"SELECT {_COLUMNS} FROM markets WHERE rowid IN (SELECT rowid FROM fts WHERE fts MATCH ?) "
            f"AND {_TRADABLE} ORDER BY rowid",
            (match,),
            _market,
        )

    def load_slugs(self) -> list[str]:
        """Every slug in order (and their rowids): what `regex` scans, loaded once (150 ms at
        300k markets; `PolymarketCatalog.load` does it in its worker thread)."""
        if self._slugs is None:
            pairs = self._rows("SELECT slug, rowid FROM markets ORDER BY slug", (), _as_read)
            self._slug_rowids = [p[1] for p in pairs]
            self._slugs = [p[0] for p in pairs]
        return self._slugs

    def regex(self, pattern: re.Pattern[str], tradable_only: bool) -> list[CatalogMarket]:
        if self.con is None:
            return []
        slugs, rowids = self.load_slugs(), self._slug_rowids
        lo, hi = 0, len(slugs)
        prefix = _literal_prefix(pattern)
        if prefix:  # `^will-bitcoin-...`: only the slugs in that range of the sorted list can match
            lo = bisect.bisect_left(slugs, prefix)
            hi = bisect.bisect_left(slugs, prefix + "\U0010ffff", lo)
        search = pattern.search
        hits = [rowids[i] for i in range(lo, hi) if search(slugs[i])]  # in slug order
        if not hits:
            return []
        where = f" AND {_TRADABLE}" if tradable_only else ""
        rows = self._rows(
            f"SELECT rowid, {_COLUMNS} FROM markets WHERE rowid IN (SELECT value FROM json_each(?)){where}",
            (orjson.dumps(hits).decode(),),
            _keyed_market,
        )
        found = dict(rows)  # cheaper than having SQLite sort by slug
        return [found[h] for h in hits if h in found]


def _literal_prefix(pattern: re.Pattern[str]) -> str:
    """The literal text every match must start with, for a pattern anchored with `^` and without
    alternation ("" when unsure: the caller then scans every slug)."""
    text = pattern.pattern
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or not text.startswith("^") or "|" in text:
        return ""
    out: list[str] = []
    for ch in text[1:]:
        if ch in ".^$*+?{}[]\\|()":
            if ch in "*?{" and out:  # the last literal is optional or repeated: not part of the prefix
                out.pop()
            break
        out.append(ch)
    return "".join(out)


def _open_index(index: Path, fingerprint: _Fingerprint) -> _Snapshot | None:
    """The existing index, if it was built from this very cache by this version of the code."""
    if not index.exists():
        return None
    con: sqlite3.Connection | None = None
    try:
        con = _connect_ro(index)
        meta = _meta(con)
        if (
            meta.get("version") != str(INDEX_VERSION)
            or meta.get("cache") != orjson.dumps(attrs.asdict(fingerprint)).decode()
        ):
            con.close()
            return None
        return _Snapshot.from_index(con, fingerprint, index)
    except (sqlite3.Error, KeyError, ValueError, TypeError) as exc:
        if con is not None:
            con.close()
        log.warning("catalog.index_unreadable", venue=VENUE, index=str(index), error=str(exc))
        return None


def _build_index(
    f: IO[bytes],
    first: bytes,
    st: os.stat_result,
    fingerprint: _Fingerprint,
    index: Path,
    stop: threading.Event | None,
) -> _Snapshot:
    """Index the cache `f` (positioned after its first line) into a new file, rename it over
    `index`, and return a snapshot on it. A folder that cannot be written gets an in-memory index."""
    tmp: Path | None
    try:
        _remove_stale_temps(index, time.time())
        path = _temp_path(index)
        con = sqlite3.connect(path, check_same_thread=False)
        tmp = path
    except (OSError, sqlite3.OperationalError) as exc:
        log.warning("catalog.index_in_memory", venue=VENUE, folder=str(index.parent), error=str(exc))
        tmp = None
        con = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        try:
            con.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;" + _SCHEMA
            )
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):
                raise DataError(
                    f"this Python's SQLite ({sqlite3.sqlite_version}) was built without FTS5, which the "
                    "catalog's search index needs (python.org and most Linux builds include it)"
                ) from None
            raise
        con.execute("BEGIN")
        stats = _fill(con, f, first, stop)
        con.executescript(_FINISH)  # commits the inserts first
        count = con.execute("SELECT count(*) FROM markets").fetchone()[0]
        refreshed = _header_time(_parse_header(first), st)
        meta = {
            "version": str(INDEX_VERSION),
            "cache": orjson.dumps(attrs.asdict(fingerprint)).decode(),
            "stats": orjson.dumps(attrs.asdict(stats)).decode(),
            "refreshed_at": repr(refreshed),
            "count": str(count),
        }
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        con.commit()
        if tmp is None:
            return _Snapshot(con, fingerprint=fingerprint, refreshed_at=refreshed, stats=stats, count=count)
        con.close()
    except BaseException:
        con.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        ro = _connect_ro(tmp)  # opened before the rename: it reads this file whoever renames next
        snapshot = _Snapshot.from_index(ro, fingerprint, tmp)  # the ranker too, before the rename
        os.replace(tmp, index)
        _fsync_dir(index.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return snapshot


def _load(
    cache: Path,
    index: Path,
    *,
    stop: threading.Event | None = None,
    notify: Callable[[str], None] | None = None,
    slugs: bool = False,
) -> _Snapshot:
    """The snapshot of the cache as it is now: from its index when current, else indexed anew
    (with its slug list loaded too when `slugs`). A missing cache gives an empty snapshot; an
    unreadable one a `DataError`."""
    snapshot = _load_snapshot(cache, index, stop=stop, notify=notify)
    if slugs and snapshot.con is not None:
        snapshot.load_slugs()
    return snapshot


def _load_snapshot(
    cache: Path,
    index: Path,
    *,
    stop: threading.Event | None = None,
    notify: Callable[[str], None] | None = None,
) -> _Snapshot:
    try:
        f = open(cache, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return _Snapshot.empty()
    except OSError as exc:
        raise DataError(f"cannot read the catalog cache {cache}: {exc.strerror or exc}") from None
    with f:
        try:
            st = os.fstat(f.fileno())
            first = f.readline()
        except OSError as exc:  # a directory, an I/O error
            raise DataError(f"cannot read the catalog cache {cache}: {exc.strerror or exc}") from None
        fingerprint = _Fingerprint.of(st, first)
        snapshot = _open_index(index, fingerprint)
        if snapshot is not None:
            return snapshot
        if notify is not None:
            notify(f"indexing the catalog cache {cache} ({st.st_size / 1e6:,.0f} MB), once per refresh...")
        t0 = time.perf_counter()
        snapshot = _build_index(f, first, st, fingerprint, index, stop)
    s = snapshot.stats
    log.info(
        "catalog.indexed",
        venue=VENUE,
        cache=str(cache),
        markets=snapshot.count,
        bad_lines=s.bad_lines,
        duplicates=s.duplicates,
        seconds=round(time.perf_counter() - t0, 3),
    )
    if s.bad_lines:
        log.warning(
            "catalog.bad_lines", venue=VENUE, cache=str(cache), bad_lines=s.bad_lines, first=list(s.problems)
        )
    if s.expected_count is not None and s.expected_count != s.lines:
        log.warning(
            "catalog.count_mismatch",
            venue=VENUE,
            cache=str(cache),
            header_count=s.expected_count,
            lines=s.lines,
        )
    return snapshot


async def _in_thread(fn: Callable[[threading.Event], _Snapshot]) -> _Snapshot:
    """Run `fn(stop)` in a worker thread. If the caller is cancelled, `stop` is set so `fn` gives
    up at its next batch (cleaning up after itself), and the cancellation goes on once it has."""
    stop = threading.Event()

    async def watch() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stop.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        try:
            result = await trio.to_thread.run_sync(fn, stop)
        except _Stopped:
            await trio.lowlevel.checkpoint()  # the cancellation that set `stop` is raised here
            raise
        nursery.cancel_scope.cancel()
    return result


# --------------------------------------------------------------------------- the catalog


class PolymarketCatalog(MarketCatalog):
    """Every Polymarket market, searchable (see the module docstring).

    Build one with `PolymarketCatalog.open(...)` in async code (it loads the cache and keeps it
    fresh in the background until the `async with` block ends), or with `from_cache(path)` for a
    one-off read (the CLI). The constructor itself does no I/O: the catalog is empty until
    `load()`.
    """

    venue = VENUE

    def __init__(
        self,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        gamma: GammaClient | None = None,
        refresh_after_s: float = 86_400.0,
        retry_s: float = 300.0,
        poll_s: float = 60.0,
        rank_window: int | None = RANK_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if refresh_after_s <= 0 or retry_s <= 0 or poll_s <= 0:
            raise ValueError("refresh_after_s, retry_s and poll_s must be positive")
        if rank_window is not None and rank_window < 1:
            raise ValueError(f"rank_window must be positive or None, got {rank_window}")
        self.rank_window = rank_window
        self.cache_path = Path(cache_path) if cache_path is not None else default_cache_path()
        self.index_path = self.cache_path.with_name(self.cache_path.name + INDEX_SUFFIX)
        self.gamma = gamma
        self.refresh_after_s = refresh_after_s
        self.retry_s = retry_s
        self.poll_s = poll_s
        self._clock = clock
        self._snap = _Snapshot.empty()
        self._lock = trio.Lock()  # one refresh or load at a time
        self._refreshes = 0
        self.refreshing = False
        self.last_error: Exception | None = None  # of the last background refresh, None after a success

    def __repr__(self) -> str:
        return f"PolymarketCatalog({str(self.cache_path)!r}, {len(self)} markets)"

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_cache(
        cls,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A catalog loaded now, synchronously (blocking: for scripts and the CLI, not in trio
        code). `notify` is told when the cache has to be indexed first (seconds, at full size)."""
        catalog = cls(cache_path, **kwargs)
        catalog._swap(_load(catalog.cache_path, catalog.index_path, notify=notify))
        return catalog

    @classmethod
    def for_http(
        cls,
        http: httpx.AsyncClient,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        gamma_url: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A catalog (not loaded yet) that refreshes from `gamma_url` (default: Polymarket's
        Gamma API) through `http`."""
        gamma = GammaClient(http, base_url=gamma_url or DEFAULT_GAMMA_URL)
        return cls(cache_path, gamma=gamma, **kwargs)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        gamma: GammaClient | None = None,
        gamma_url: str = DEFAULT_GAMMA_URL,
        **kwargs: Any,
    ) -> AsyncIterator[Self]:
        """Load the cache (in a worker thread) and keep the catalog fresh in the background
        (`maintain`) while the block runs: a cache older than `refresh_after_s`, or none, is
        refreshed at once, and the catalog serves the old contents meanwhile. Without `gamma`,
        an HTTP client for `gamma_url` is made here and closed on exit."""
        async with contextlib.AsyncExitStack() as stack:
            if gamma is None:
                http = await stack.enter_async_context(httpx.AsyncClient())
                gamma = GammaClient(http, base_url=gamma_url)
            catalog = cls(cache_path, gamma=gamma, **kwargs)
            catalog.search_in_thread = True  # serving an event loop: `search_async` off it
            await catalog.load()
            async with trio.open_nursery() as nursery:
                await nursery.start(catalog.maintain)
                try:
                    yield catalog
                finally:
                    nursery.cancel_scope.cancel()

    async def load(self) -> bool:
        """Read the cache as it is on disk now (in a worker thread) and swap it in. Returns False
        when the catalog already holds that very cache (nothing to do)."""
        async with self._lock:
            return await self._load_locked()

    async def _load_locked(self) -> bool:
        current = self._snap.fingerprint
        try:
            st: os.stat_result | None = os.stat(self.cache_path)
        except OSError:
            st = None
        if st is None and self._snap.refreshed_at is not None:
            # The cache went away under a loaded catalog: keep serving what we have.
            log.warning("catalog.cache_missing", venue=VENUE, cache=str(self.cache_path))
            return False
        if st is None and current is None and self._generation > 0:
            return False  # still no cache: nothing changed
        if st is not None and current is not None and current.same_file(st):
            return False
        cache, index = self.cache_path, self.index_path
        snapshot = await _in_thread(lambda stop: _load(cache, index, stop=stop, slugs=True))
        self._swap(snapshot)
        return True

    def _swap(self, snapshot: _Snapshot) -> None:
        old, self._snap = self._snap, snapshot
        self._contents_replaced()
        if old is not snapshot:
            old.close()

    # -- refreshing ---------------------------------------------------------------------------
    def age_s(self) -> float | None:
        """Seconds since the contents were fetched, None if never."""
        ts = self._snap.refreshed_at
        return None if ts is None else max(0.0, self._clock() - ts)

    def is_stale(self) -> bool:
        """No cache, or one older than `refresh_after_s`."""
        age = self.age_s()
        return age is None or age >= self.refresh_after_s

    async def refresh(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Fetch every market from Gamma, write a new cache (atomically), index it, swap it in,
        and return how many markets the catalog now holds. A call made while another refresh
        runs waits for that one and returns its result instead of fetching again. `progress` is
        called with the number of markets fetched so far after each page.

        Raises `VenueError` (`RateLimited`) when Gamma cannot be read after the client's retries,
        `DataError` when the cache cannot be written; the catalog keeps its contents either way.
        """
        if self.gamma is None:
            raise ConfigError(
                "this PolymarketCatalog has no Gamma client to refresh from: pass gamma=GammaClient(...) "
                "or use PolymarketCatalog.open()"
            )
        gamma = self.gamma
        before = self._refreshes
        async with self._lock:
            if self._refreshes != before:  # someone refreshed while we waited for the lock
                return len(self)
            self.refreshing = True
            t0 = time.perf_counter()
            log.info(
                "catalog.refresh_started", venue=VENUE, source=gamma.base_url, cache=str(self.cache_path)
            )
            try:
                try:
                    writer = await trio.to_thread.run_sync(_CacheWriter, self.cache_path, self._clock)
                except OSError as exc:
                    raise DataError(
                        f"cannot write the catalog cache in {self.cache_path.parent}: {exc.strerror or exc}"
                    ) from None
                try:

                    async def sink(page: list[bytes]) -> None:
                        await trio.to_thread.run_sync(writer.write_page, page)
                        if progress is not None:
                            progress(writer.count + writer.duplicates)

                    fetched = await gamma.all_markets(sink)
                    await trio.to_thread.run_sync(writer.commit, gamma.base_url)
                except BaseException:
                    writer.discard()
                    raise
                await self._load_locked()
            except OSError as exc:
                raise DataError(f"cannot write the catalog cache {self.cache_path}: {exc}") from None
            finally:
                self.refreshing = False
            self._refreshes += 1
            log.info(
                "catalog.refreshed",
                venue=VENUE,
                markets=len(self),
                fetched=fetched,
                duplicates=writer.duplicates,
                requests=gamma.requests,
                seconds=round(time.perf_counter() - t0, 3),
            )
            return len(self)

    async def maintain(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the catalog fresh until cancelled (see the module docstring). Failures are
        logged and kept in `last_error`; the catalog serves its current contents meanwhile."""
        task_status.started()
        warned_offline = False
        while True:
            wait = self.poll_s
            if self.is_stale() and self.gamma is not None:
                try:
                    await self.refresh()
                    self.last_error = None
                except (VenueError, DataError) as exc:
                    self.last_error = exc
                    log.error("catalog.refresh_failed", venue=VENUE, error=str(exc), retry_in_s=self.retry_s)
                    wait = self.retry_s
            elif self.is_stale() and not warned_offline:
                warned_offline = True
                log.warning(
                    "catalog.stale_offline", venue=VENUE, cache=str(self.cache_path), age_s=self.age_s()
                )
            else:
                try:
                    if await self.load():
                        log.info(
                            "catalog.reloaded", venue=VENUE, cache=str(self.cache_path), markets=len(self)
                        )
                except DataError as exc:
                    self.last_error = exc
                    log.error("catalog.reload_failed", venue=VENUE, error=str(exc))
            age = self.age_s()
            if age is not None and self.gamma is not None and not self.is_stale():
                wait = min(wait, self.refresh_after_s - age)
            await trio.sleep(max(wait, 0.0))

    # -- MarketCatalog ------------------------------------------------------------------------
    @property
    def stats(self) -> LoadStats:
        """What loading the current cache found (bad lines, duplicates)."""
        return self._snap.stats

    def search(self, query: str, limit: int = 10) -> list[SearchResult]:
        """Markets matching the words of `query`, best first (see the module docstring for the
        words that count, the score, and `rank_window`)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        # Searches may run in worker threads (`search_async`) while a refresh swaps snapshots on
        # the event loop: hold the snapshot so the swap leaves its closing to the last reader.
        snapshot = self._snap
        while not snapshot.acquire():  # swapped out just now: the newer one answers
            snapshot = self._snap
        try:
            return snapshot.search(query, limit, self.rank_window)
        finally:
            snapshot.release()

    def find_by_slug(self, slug: str) -> CatalogMarket | None:
        return self._snap.one("slug = ?", slug)

    def find_by_slug_regex(
        self, pattern: str | re.Pattern[str], *, tradable_only: bool = False
    ) -> list[CatalogMarket]:
        return self._snap.regex(compile_slug_pattern(pattern), tradable_only)

    def find_by_token_id(self, token_id: str) -> CatalogMarket | None:
        return self._snap.by_token(str(token_id).strip())

    def get(self, condition_id: str) -> CatalogMarket | None:
        return self._snap.one("condition_id = ?", condition_id.strip().lower())

    def all(self) -> list[CatalogMarket]:
        return self._snap.all()

    def price_markets(self, underlying: str | None = None) -> tuple[list[PriceMarket], list[Unrecognized]]:
        """The tradable crypto price markets, read by `pricemarkets.classify` (see there for what
        is read and what is reported), for `underlying` (None: every asset it knows). Only the
        markets whose question names an asset are read (the full-text index finds them): about
        0.1 s for BTC's and 0.5 s for every asset's in a generated 300,000-market catalog (800 and
        4,800 read, bench figures of issue 20); a live strategy awaits `price_markets_async`,
        which runs it in a worker thread."""
        from .pricemarkets import ASSETS, classify

        if underlying is None:
            words = [w for names in ASSETS.values() for w in names]
        else:
            words = list(ASSETS.get(underlying.strip().upper(), ()))
        # May run in a worker thread (`price_markets_async`): the snapshot is held as `search` holds it.
        snapshot = self._snap
        while not snapshot.acquire():
            snapshot = self._snap
        try:
            markets = snapshot.naming(words)
        finally:
            snapshot.release()
        return sort_price_markets(markets, classify, underlying)

    def last_updated(self) -> dt.datetime | None:
        ts = self._snap.refreshed_at
        return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)

    def __len__(self) -> int:
        return self._snap.count
