"""A local Gamma API (VENUES.md §2.7) as an ASGI app, serving market objects from memory.

Endpoints, with Gamma's shapes (plain JSON arrays, offset paging; VENUES.md §2.7):

- `GET /markets`: `limit` (default 20, capped at `max_limit`), `offset`, `order` (a field name;
  `id` sorts numerically) and `ascending`, filters `closed`, `active`, `slug` / `id` /
  `condition_ids` (comma lists or repeated), `clob_token_ids` (repeated), and `include_tag`:
  markets carry their `tags` list only when it is `true`, as Gamma's do.
- `GET /markets/{id}` and `GET /markets/slug/{slug}`: one object, or 404.

Fault switches for tests: `fail_next(n, status)` answers the next `n` requests with `status`
(500, 429 with a `Retry-After`, ...), `delay` holds every answer that many seconds, and `requests`
records each request's path and query. The later full Polymarket simulator mounts this app under
its Gamma prefix; in tests, drive it in-process with
`httpx.AsyncClient(transport=httpx.ASGITransport(app))`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
import trio

__all__ = ["GammaSimulator"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class _BadRequest(Exception):
    pass


def _bool(name: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _BadRequest(f"{name} must be true or false, got {value!r}")


def _int(name: str, value: str, *, minimum: int = 0) -> int:
    try:
        n = int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, got {value!r}") from None
    if n < minimum:
        raise _BadRequest(f"{name} must be at least {minimum}, got {n}")
    return n


def _sort_key(field: str) -> Callable[[dict[str, Any]], Any]:
    def key(m: dict[str, Any]) -> Any:
        v = m.get(field)
        if field == "id":
            try:
                return (0, int(v), "")  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return (1, 0, str(v))
        if isinstance(v, bool | int | float):
            return (0, float(v), "")
        return (1, 0, "" if v is None else str(v))

    return key


class GammaSimulator:
    """The Gamma API over a list of market objects (see the module docstring). `markets` may be
    replaced or appended to between requests (a test adding a market Polymarket just created)."""

    def __init__(self, markets: Iterable[dict[str, Any]] = (), *, max_limit: int = 500) -> None:
        self.markets: list[dict[str, Any]] = list(markets)
        self.max_limit = max_limit
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._failures: list[tuple[int, dict[str, str]]] = []

    def fail_next(self, n: int = 1, status: int = 500, *, retry_after: float | None = None) -> None:
        """Answer the next `n` requests with HTTP `status` (with `Retry-After` when given)."""
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        self._failures.extend([(status, headers)] * n)

    # -- ASGI -------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = unquote(scope["path"])
        query: dict[str, list[str]] = {}
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
            query.setdefault(k, []).append(v)
        self.requests.append((path, query))
        if self.delay:
            await trio.sleep(self.delay)
        if self._failures:
            status, headers = self._failures.pop(0)
            await _respond(send, status, {"error": f"simulated failure (HTTP {status})"}, headers)
            return
        if scope.get("method", "GET") != "GET":
            await _respond(send, 405, {"error": "method not allowed"})
            return
        try:
            status, body = self._route(path, query)
        except _BadRequest as exc:
            status, body = 400, {"error": str(exc)}
        await _respond(send, status, body)

    # -- routes -----------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        include_tag = _bool("include_tag", query["include_tag"][-1]) if "include_tag" in query else False
        if parts == ["markets"]:
            return 200, [self._shape(m, include_tag) for m in self._list(query)]
        if len(parts) == 2 and parts[0] == "markets":
            found = next((m for m in self.markets if str(m.get("id")) == parts[1]), None)
            return (
                (404, {"error": "id not found"}) if found is None else (200, self._shape(found, include_tag))
            )
        if len(parts) == 3 and parts[:2] == ["markets", "slug"]:
            found = next((m for m in self.markets if m.get("slug") == parts[2]), None)
            return (
                (404, {"error": "slug not found"})
                if found is None
                else (200, self._shape(found, include_tag))
            )
        return 404, {"error": f"no route for {path}"}

    @staticmethod
    def _shape(market: dict[str, Any], include_tag: bool) -> dict[str, Any]:
        if include_tag or "tags" not in market:
            return market
        return {k: v for k, v in market.items() if k != "tags"}

    def _list(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        def values(name: str) -> set[str]:
            return {p for v in query.get(name, []) for p in v.split(",") if p}

        limit = min(_int("limit", query["limit"][-1]), self.max_limit) if "limit" in query else 20
        offset = _int("offset", query["offset"][-1]) if "offset" in query else 0
        rows: Iterable[dict[str, Any]] = self.markets
        for flag in ("closed", "active"):
            if flag in query:
                want = _bool(flag, query[flag][-1])
                rows = [m for m in rows if bool(m.get(flag)) is want]
        for param, field in (("slug", "slug"), ("id", "id"), ("condition_ids", "conditionId")):
            wanted = values(param)
            if wanted:
                rows = [m for m in rows if str(m.get(field)) in wanted]
        tokens = values("clob_token_ids")
        if tokens:
            rows = [m for m in rows if tokens & set(_token_ids(m))]
        rows = list(rows)
        if "order" in query:
            ascending = _bool("ascending", query["ascending"][-1]) if "ascending" in query else False
            rows.sort(key=_sort_key(query["order"][-1]), reverse=not ascending)
        return rows[offset : offset + limit]


def _token_ids(market: dict[str, Any]) -> list[str]:
    raw = market.get("clobTokenIds")
    if isinstance(raw, str):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []
    return [str(v) for v in raw] if isinstance(raw, list) else []


async def _respond(send: Send, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
    payload = orjson.dumps(body)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
