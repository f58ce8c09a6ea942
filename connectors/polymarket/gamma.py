"""The Gamma API client (VENUES.md §2.7): Polymarket's market metadata over HTTP.

The one module that talks HTTP to Gamma (DESIGN.md: httpx stays behind one small module). It
takes an injected `httpx.AsyncClient` (tests hand in one whose transport is the Gamma simulator),
pages through `/markets` by offset, and retries what is worth retrying:

- HTTP 429 and 5xx, and transport errors (connection refused or reset, timeouts): up to
  `max_attempts` tries, waiting a jittered exponential backoff between them (full jitter:
  uniform in [0, min(max_backoff, backoff * 2**n)]), or the server's `Retry-After` when it
  sends one. When the tries run out: `RateLimited` (429) or `VenueError`, with the status.
- Anything else (another 4xx, a body that is not the JSON array or object expected): a
  `VenueError` at once, with the status and the start of the body.

Paging: `/markets?limit=L&offset=O&order=id&ascending=true&include_tag=true`. Ordering by id makes
offsets stable while markets are being created (new markets have higher ids, so they join at the
end instead of shifting every page). Pages are fetched `concurrency` at a time, in waves, and
handed to the caller in offset order; the listing ends at the first page shorter than `limit`.
A short page followed by a non-empty one means the server capped `limit`: that is an error, not
something to step over silently (markets would be missed).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import msgspec
import structlog
import trio

from tradingd.engine.venue import MalformedFrame, RateLimited, VenueError, check_nesting, loads_untyped

__all__ = ["DEFAULT_GAMMA_URL", "GammaClient"]

DEFAULT_GAMMA_URL = "https://gamma-api.polymarket.com"  # VENUES.md §2.1
VENUE = "polymarket"

log = structlog.get_logger("tradingd.polymarket.gamma")

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 524})
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])

PageSink = Callable[[list[bytes]], Awaitable[None]]


class GammaClient:
    """Reads Gamma's `/markets` endpoints through an injected `httpx.AsyncClient`.

    `page_size` is the `limit` asked per page; `sleep` and `rng` are injectable so tests can run
    the backoff on a mock clock and check the delays.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_GAMMA_URL,
        page_size: int = 500,
        concurrency: int = 4,
        max_attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the Gamma URL must start with http:// or https://, got {base_url!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff < 0 or max_backoff < 0:
            raise ValueError("backoff and max_backoff must not be negative")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.requests = 0  # HTTP requests sent, retries included
        self.retries = 0

    # -- one request ------------------------------------------------------------------------
    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """How long to wait before try `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            try:
                wanted = float(retry_after)
            except ValueError:
                wanted = -1.0  # an HTTP date: fall back on our own backoff
            if wanted >= 0:
                return min(wanted, self.max_backoff)
        cap = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """GET `path` and return the body of a 200 answer, retrying as the module says."""
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            retry_after: str | None = None
            try:
                resp = await self.http.get(url, params=params, timeout=self.timeout)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                status: int | None = None
            else:
                if resp.status_code == 200:
                    return resp.content
                status = resp.status_code
                body = resp.text[:200]
                if status not in _RETRY_STATUS:
                    raise VenueError(
                        f"Gamma GET {path} answered HTTP {status}: {body}",
                        venue=VENUE,
                        code=status,
                        venue_message=body,
                    )
                failure = f"HTTP {status}"
                retry_after = resp.headers.get("retry-after")
            if attempt >= self.max_attempts:
                message = f"Gamma GET {path} failed after {attempt} attempt(s): {failure}"
                if status == 429:
                    raise RateLimited(message, venue=VENUE, code=status)
                raise VenueError(message, venue=VENUE, code=status)
            delay = self._delay(attempt, retry_after)
            self.retries += 1
            log.warning(
                "gamma.retry",
                venue=VENUE,
                path=path,
                failure=failure,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            await self._sleep(delay)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body = await self.get(path, params)
        try:
            return loads_untyped(body, VENUE, "answer")  # schemaless: its nesting bounded first
        except MalformedFrame as exc:
            raise VenueError(f"Gamma GET {path}: {exc}", venue=VENUE) from None

    # -- markets ----------------------------------------------------------------------------
    async def markets_page(
        self, offset: int, *, limit: int | None = None, filters: Mapping[str, Any] | None = None
    ) -> list[bytes]:
        """One page of `/markets`, each market as the exact bytes Gamma sent for it."""
        params: dict[str, Any] = {
            "limit": limit or self.page_size,
            "offset": offset,
            "order": "id",
            "ascending": "true",
            "include_tag": "true",
        }
        if filters:
            params.update(filters)
        body = await self.get("/markets", params)
        try:
            # Finding each item's end walks its nesting down the C stack, like a parse: bounded
            # first (engine/venue/plugins.py).
            check_nesting(body, VENUE, where=f"Gamma GET /markets (offset {offset})")
            items = _raw_list.decode(body)
        except MalformedFrame as exc:
            raise VenueError(str(exc), venue=VENUE) from None
        except (msgspec.DecodeError, UnicodeError):
            raise VenueError(
                f"Gamma GET /markets (offset {offset}): expected a JSON array, got {body[:120]!r}",
                venue=VENUE,
            ) from None
        out: list[bytes] = []
        for i, raw in enumerate(items):
            item = bytes(raw)
            if item[:1] != b"{":
                raise VenueError(
                    f"Gamma GET /markets (offset {offset}): item {i} is not a JSON object: {item[:80]!r}",
                    venue=VENUE,
                )
            if b"\n" in item or b"\r" in item:  # pretty-printed: one line per market in the cache
                try:
                    item = msgspec.json.encode(loads_untyped(item, VENUE, f"item {i}"))
                except MalformedFrame as exc:
                    raise VenueError(f"Gamma GET /markets (offset {offset}): {exc}", venue=VENUE) from None
            out.append(item)
        return out

    async def all_markets(self, sink: PageSink, *, filters: Mapping[str, Any] | None = None) -> int:
        """Page through every market (see the module docstring), awaiting `sink(page)` for each
        page in offset order; returns how many markets were handed over."""
        limit = self.page_size
        offset = 0
        total = 0
        while True:
            offsets = [offset + i * limit for i in range(self.concurrency)]
            pages: dict[int, list[bytes]] = {}
            failures: list[VenueError] = []

            async with trio.open_nursery() as nursery:

                async def fetch(
                    at: int,
                    pages: dict[int, list[bytes]] = pages,
                    failures: list[VenueError] = failures,
                    cancel: trio.CancelScope = nursery.cancel_scope,
                ) -> None:
                    try:
                        pages[at] = await self.markets_page(at, limit=limit, filters=filters)
                    except VenueError as exc:  # the first failure stops the wave and is raised alone
                        failures.append(exc)
                        cancel.cancel()

                for at in offsets:
                    nursery.start_soon(fetch, at)
            if failures:
                raise failures[0]
            for i, at in enumerate(offsets):
                page = pages[at]
                if page:
                    await sink(page)
                    total += len(page)
                if len(page) < limit:
                    later = [len(pages[o]) for o in offsets[i + 1 :] if pages[o]]
                    if later:
                        raise VenueError(
                            f"Gamma GET /markets returned {len(page)} markets at offset {at} (asked for "
                            f"{limit}) but more after it: the server caps the page size; use a page_size "
                            f"of at most {len(page)}",
                            venue=VENUE,
                        )
                    return total
            offset = offsets[-1] + limit

    async def market(self, market_id: str) -> dict[str, Any]:
        """`/markets/{id}`: one market as a dict."""
        return await self._object(f"/markets/{market_id}")

    async def market_by_slug(self, slug: str) -> dict[str, Any]:
        """`/markets/slug/{slug}`: one market as a dict."""
        return await self._object(f"/markets/slug/{slug}")

    async def _object(self, path: str) -> dict[str, Any]:
        obj = await self.get_json(path, {"include_tag": "true"})
        if not isinstance(obj, dict):
            raise VenueError(
                f"Gamma GET {path}: expected a JSON object, got {type(obj).__name__}", venue=VENUE
            )
        return obj
