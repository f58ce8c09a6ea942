"""`tradingd catalog ...`: a venue's market catalog from the shell (DESIGN.md, command line).

    tradingd catalog search QUERY... [--limit N]     best matches first, with their score
    tradingd catalog slug SLUG                       one market by its exact slug
    tradingd catalog regex PATTERN                   every market whose slug matches (re.search)
    tradingd catalog token TOKEN_ID                  the market an outcome token belongs to
    tradingd catalog get CONDITION_ID                one market by its condition id
    tradingd catalog refresh [--gamma-url URL]       fetch every market from Gamma, rewrite the cache
    tradingd catalog price-markets [--underlying BTC] [--recording PATH]
                                                     the crypto price markets read, then the
                                                     crypto-looking ones not read, with why

Each takes `--venue V` (default: the one catalog installed; Polymarket's today), `--cache PATH`
(default: the venue's cache in `[catalog]` of `--config PATH`, e.g. `polymarket_cache`, else the
user cache folder) and `--json`. With `--json` a market is an object with `slug`, `question`,
`condition_id`, `active`, `closed`, `end_date`, `tokens` (`[{"outcome", "token_id"}]`, in outcome
order) and the rest of `CatalogMarket.to_dict`; `search` gives a list of them, each with its
`score`; `regex` a list. Without it, lists print as an aligned table and single markets as a block.

Exit status: 0 found, 1 not found / no cache / refresh failed, 2 usage (bad pattern, bad limit).
The catalog class is found by venue name (entry point group `tradingd.catalogs`), so neither
the engine nor this command names a venue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from tradingd.config import load_catalog_settings
from tradingd.engine.logs.setup import configure_logging
from tradingd.engine.model.errors import ConfigError, DataError
from tradingd.engine.model.words import line_text
from tradingd.engine.venue.catalog import CatalogMarket, InvalidPattern, MarketCatalog, SearchResult, iso_utc
from tradingd.engine.venue.plugins import load_catalog_class, load_venue

from .recorded import recorded_catalogs
from .settings import catalog_settings

__all__ = ["cmd_get", "cmd_price_markets", "cmd_refresh", "cmd_regex", "cmd_search", "cmd_slug", "cmd_token"]

_EXIT_NOT_FOUND = 1
_EXIT_USAGE = 2


# --------------------------------------------------------------------------- settings


def _installed() -> list[str]:
    """The venues with a catalog installed (entry point group `tradingd.catalogs`)."""
    return sorted(ep.name for ep in entry_points(group="tradingd.catalogs"))


def _installed_text() -> str:
    return ", ".join(_installed()) or "none"


def _venue(args: argparse.Namespace) -> str:
    """The venue whose catalog: `--venue`, else the one catalog installed."""
    installed = _installed()
    if args.venue:
        if args.venue not in installed:
            raise ConfigError(f"no catalog for venue {args.venue!r} (installed: {_installed_text()})")
        venue: str = args.venue
        return venue
    if len(installed) != 1:
        raise ConfigError(
            "no market catalog installed (entry point group tradingd.catalogs)"
            if not installed
            else f"several catalogs installed: give --venue ({_installed_text()})"
        )
    return installed[0]


def _catalog_class(venue: str) -> Any:
    """The catalog implementation, found by venue name (nothing here names a venue)."""
    cls = load_catalog_class(venue)
    if cls is None:
        raise ConfigError(f"no catalog for venue {venue!r} (installed: {_installed_text()})")
    return cls


def _settings(args: argparse.Namespace, venue: str) -> tuple[Path | None, str | None, float]:
    """(cache path or None for the default, source URL or None for the default, refresh_after_s)."""
    cache: Path | None = None
    url: str | None = None
    refresh_after_s = 86_400.0
    if args.config:
        path = Path(args.config)
        settings = catalog_settings(load_catalog_settings(path), path.parent, venue)
        cache, url, refresh_after_s = settings.cache, settings.source_url, settings.refresh_after_s
    if args.cache:
        cache = Path(args.cache).expanduser()
    if getattr(args, "gamma_url", None):
        url = args.gamma_url
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"the Gamma URL must start with http:// or https://, got {url!r}")
    return cache, url, refresh_after_s


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _open(args: argparse.Namespace) -> MarketCatalog:
    """The catalog of the configured cache, loaded (indexing it first if needed). A missing
    cache is an error here: there is nothing to look up."""
    configure_logging(args.log_level or "error", args.log_format or "auto", sys.stderr)
    venue = _venue(args)
    cls = _catalog_class(venue)
    cache, _, refresh_after_s = _settings(args, venue)
    catalog: Any = cls.from_cache(cache, notify=_err, refresh_after_s=refresh_after_s)
    if catalog.last_updated() is None:
        raise DataError(f"no catalog cache at {catalog.cache_path}: run `tradingd catalog refresh` first")
    stats = catalog.stats
    if stats.bad_lines:
        first = f" ({stats.problems[0]})" if stats.problems else ""
        _err(f"warning: {stats.bad_lines} unusable line(s) in {catalog.cache_path} skipped{first}")
    if catalog.is_stale():
        _err(f"note: the catalog is {_age(catalog.age_s())} old; `tradingd catalog refresh` updates it")
    result: MarketCatalog = catalog
    return result


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "of unknown age"
    if seconds >= 86_400 * 2:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


# --------------------------------------------------------------------------- output


def _json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _status(m: CatalogMarket) -> str:
    if m.closed:
        return "closed"
    if not m.active:
        return "inactive"
    if m.accepting_orders is False:
        return "paused"
    return "open"


def _ends(when: dt.datetime | None) -> str:
    return "-" if when is None else when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%MZ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """An aligned table; the last column is cut to the terminal width on a terminal. The cells are
    the venue's text: what could steer the terminal or break a line shows as `?` (`line_text`)."""
    rows = [[line_text(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header[:-1])]
    room: int | None = None
    if sys.stdout.isatty():
        room = max(20, shutil.get_terminal_size((120, 24)).columns - sum(w + 2 for w in widths))
    out = []
    for row in [header, *rows]:
        last = row[-1]
        if room is not None and len(last) > room:
            last = last[: room - 1] + "…"
        out.append("  ".join([c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [last]).rstrip())
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def _show(m: CatalogMarket) -> None:
    pairs = [
        ("slug", m.slug),
        ("question", m.question),
        ("condition_id", m.condition_id),
        ("market_id", m.market_id or "-"),
        ("status", f"{_status(m)} (active={str(m.active).lower()}, closed={str(m.closed).lower()})"),
        ("end_date", iso_utc(m.end_date) or "-"),
        ("neg_risk", f"yes (market {m.neg_risk_market_id})" if m.neg_risk else "no"),
        ("event", m.event_slug or "-"),
        ("tick/min", f"{m.tick_size or '-'} / {m.min_size or '-'}"),
        ("tags", ", ".join(m.tags) or "-"),
    ]
    lines = [f"{k:<13}{line_text(v)}" for k, v in pairs]  # the venue's text, inert (`_table`)
    if m.tokens:
        outcomes = [line_text(t.outcome) for t in m.tokens]
        width = max(len(o) for o in outcomes)
        for i, (t, o) in enumerate(zip(m.tokens, outcomes, strict=True)):
            lines.append(f"{'tokens' if i == 0 else '':<13}{o:<{width}}  {line_text(t.token_id)}")
    else:
        lines.append(f"{'tokens':<13}- (not on the CLOB)")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _one(args: argparse.Namespace, what: str, find: Callable[[MarketCatalog], CatalogMarket | None]) -> int:
    catalog = _open(args)
    market = find(catalog)
    if market is None:
        if args.json:
            _json(None)
        _err(f"tradingd: no market with {what} in the catalog ({len(catalog):,} markets)")
        return _EXIT_NOT_FOUND
    if args.json:
        _json(market.to_dict())
    else:
        _show(market)
    return 0


# --------------------------------------------------------------------------- commands


def cmd_search(args: argparse.Namespace) -> int:
    if args.limit < 1:
        _err(f"tradingd: error: --limit must be at least 1, got {args.limit}")
        return _EXIT_USAGE
    catalog = _open(args)
    results: list[SearchResult] = catalog.search(" ".join(args.query), args.limit)
    if args.json:
        _json([{"score": round(r.score, 6), **r.market.to_dict()} for r in results])
    elif results:
        _table(
            ("SCORE", "SLUG", "STATUS", "ENDS", "QUESTION"),
            [(f"{r.score:.3f}", r.market.slug, _status(r.market), _ends(r.market.end_date), r.market.question)
             for r in results],
        )  # fmt: skip
    if not results:
        _err(f"tradingd: nothing matches {' '.join(args.query)!r} ({len(catalog):,} markets)")
        return _EXIT_NOT_FOUND
    return 0


def cmd_slug(args: argparse.Namespace) -> int:
    return _one(args, f"slug {args.slug!r}", lambda c: c.find_by_slug(args.slug))


def cmd_token(args: argparse.Namespace) -> int:
    return _one(args, f"token id {args.token_id}", lambda c: c.find_by_token_id(args.token_id))


def cmd_get(args: argparse.Namespace) -> int:
    return _one(args, f"condition id {args.condition_id}", lambda c: c.get(args.condition_id))


def cmd_regex(args: argparse.Namespace) -> int:
    catalog = _open(args)
    try:
        markets = catalog.find_by_slug_regex(args.pattern, tradable_only=args.open)
    except InvalidPattern as exc:
        _err(f"tradingd: error: {exc}")
        return _EXIT_USAGE
    if args.json:
        _json([m.to_dict() for m in markets])
    elif markets:
        _table(
            ("SLUG", "STATUS", "ENDS", "QUESTION"),
            [(m.slug, _status(m), _ends(m.end_date), m.question) for m in markets],
        )
    _err(f"{len(markets):,} market(s) match {args.pattern!r}")
    return 0 if markets else _EXIT_NOT_FOUND


def cmd_refresh(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "warning", args.log_format or "auto", sys.stderr)
    venue = _venue(args)
    cls = _catalog_class(venue)
    cache, url, refresh_after_s = _settings(args, venue)
    tty = sys.stderr.isatty()

    def progress(n: int) -> None:
        if tty:
            print(f"\rfetched {n:,} markets...", end="", file=sys.stderr, flush=True)

    async def run() -> tuple[Any, int]:
        async with httpx.AsyncClient() as http:
            catalog = cls.for_http(http, cache, gamma_url=url, refresh_after_s=refresh_after_s)
            count = await catalog.refresh(progress=progress)
            return catalog, count

    t0 = time.perf_counter()
    try:
        catalog, count = trio.run(run)
    finally:
        if tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    stats = catalog.stats
    if args.json:
        _json(
            {
                "count": count,
                "cache": str(catalog.cache_path),
                "refreshed_at": iso_utc(catalog.last_updated()),
                "source": catalog.gamma.base_url,
                "bad_lines": stats.bad_lines,
                "seconds": round(seconds, 3),
            }
        )
    else:
        print(f"{count:,} markets from {catalog.gamma.base_url} in {seconds:.1f} s -> {catalog.cache_path}")
    if stats.bad_lines:
        _err(f"warning: {stats.bad_lines} market(s) Gamma sent could not be used ({stats.problems[0]})")
    return 0


def _recorded(args: argparse.Namespace) -> MarketCatalog:
    """The catalog of the markets a recording defines (`--recording`), for the venue asked."""
    configure_logging(args.log_level or "error", args.log_format or "auto", sys.stderr)
    venue = _venue(args)
    path = Path(args.recording).expanduser()
    if not path.exists():
        raise DataError(f"no recording at {path}")
    found = recorded_catalogs([(venue, path)], {venue: load_venue(venue)})
    if venue not in found:
        raise DataError(f"{path} defines no {venue} markets (no market definitions recorded in it)")
    return found[venue]


def _when(ns: int) -> str:
    """`2026-04-09 16:00:59Z`: to the second (a candle's close is 59.999 s after its open)."""
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_price_markets(args: argparse.Namespace) -> int:
    catalog = _recorded(args) if args.recording else _open(args)
    read, unread = catalog.price_markets(args.underlying)
    if args.json:
        _json({"markets": [p.to_dict() for p in read], "unrecognized": [u.to_dict() for u in unread]})
    else:
        if read:
            _table(
                ("UNDERLYING", "CONDITION", "RESOLVES (UTC)", "SOURCE", "SLUG"),
                [(p.underlying, p.describe().split(" ", 1)[1], _when(p.resolves_at_ns), p.source,
                  p.market.slug) for p in read],
            )  # fmt: skip
        if unread:
            if read:
                sys.stdout.write("\n")
            sys.stdout.write(f"not read ({len(unread):,}):\n")
            _table(
                ("UNDERLYING", "SLUG", "REASON"),
                [(u.underlying or "-", u.market.slug, u.reason) for u in unread],
            )
    which = f" of {args.underlying}" if args.underlying else ""
    _err(f"{len(read):,} price market(s){which} read, {len(unread):,} not read ({len(catalog):,} markets)")
    return 0 if read else _EXIT_NOT_FOUND
