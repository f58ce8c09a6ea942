"""The CLOB's market-data reads the official client (`py-clob-client-v2`, `endpoints.py`) has
beyond the book and price endpoints the simulator answers itself: `/simplified-markets`,
`/sampling-markets`, `/sampling-simplified-markets` (cursor pages) and `/prices-history`, each
from the simulator's own state (its CLOB market objects, `PolymarketSimulator.clob_market`, and
its books, `PolymarketSimulator.summary`).

Shapes, from docs.polymarket.com (api-reference/markets, get-simplified-markets,
get-sampling-simplified-markets, get-prices-history) and the captured CLOB market object
(tests/fixtures/polymarket/clob_market_closed_binary_accepting_true.json):

- a page: `{"limit": n, "next_cursor": "...", "count": n, "data": [...]}`; the cursor is the base64
  of the next offset, `"MA=="` the first page, `"LTE="` (base64 "-1") after the last (VENUES.md
  §2.3); an unreadable cursor is 400 `{"error": "invalid next_cursor"}`;
- a simplified market: `condition_id`, `rewards` (`rates[{asset_address, rewards_daily_rate}]`,
  `min_size`, `max_spread`), `tokens[{token_id, outcome, price, winner}]`, `active`, `closed`,
  `archived`, `accepting_orders`;
- sampling markets are those with liquidity rewards (the full market object, or simplified);
  the simulator rewards every market while it accepts orders (`REWARDS`, its own choice: the
  real schedule is the venue's business);
- `/prices-history?market=<token>&startTs=&endTs=` or `&interval=1m|1h|6h|1d|1w|max`, `fidelity`
  in minutes: `{"history": [{"t": <unix s>, "p": <number>}]}`, the token's midpoint as the
  simulator sampled it (once a second, `sample`), one point per `fidelity` bucket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

from . import wire

if TYPE_CHECKING:
    from .simulator import PolymarketSimulator

__all__ = ["REWARDS", "ClobReads"]

# The collateral the captured market's rewards were paid in (USDC.e on Polygon, the capture's
# `rewards.rates[0].asset_address`).
REWARDS: Final = {
    "rates": [{"asset_address": "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174", "rewards_daily_rate": 10}],
    "min_size": 50,
    "max_spread": 3.5,
}
_NO_REWARDS: Final = {"rates": None, "min_size": 0, "max_spread": 0}
_INTERVALS_S: Final = {"1m": 60, "1h": 3_600, "6h": 21_600, "1d": 86_400, "1w": 604_800, "max": None}
_HISTORY_POINTS: Final = 86_400  # a day of one-second samples per token, at most


class _Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(status, error)
        self.status = status
        self.error = error


@attrs.define
class ClobReads:
    """The reads above, answered from `sim`. `page_size`: markets per page (the venue's `limit`
    is 100 per the captured pages of VENUES.md §2.3; tests lower it to walk cursors)."""

    sim: PolymarketSimulator
    page_size: int = 100
    history: dict[str, deque[tuple[int, float]]] = attrs.field(factory=dict)
    _last_sample_s: int = -1

    def answer(self, method: str, path: str, query: dict[str, str]) -> tuple[int, bytes] | None:
        """(status, JSON body) for a read of this module; None for any other request."""
        handler = _ROUTES.get((method, path))
        if handler is None:
            return None
        try:
            return 200, orjson.dumps(handler(self, query))
        except _Refused as exc:
            return exc.status, orjson.dumps({"error": exc.error})

    # -- markets ------------------------------------------------------------------------------
    def _condition_ids(self) -> list[str]:
        return [m.condition_id for m in self.sim.feed.markets]

    def _market(self, condition_id: str) -> dict[str, Any]:
        market = dict(self.sim.clob_market(condition_id))
        market["rewards"] = REWARDS if market.get("accepting_orders") else _NO_REWARDS
        return market

    @staticmethod
    def _simplified(market: dict[str, Any]) -> dict[str, Any]:
        return {
            "condition_id": market["condition_id"],
            "rewards": market["rewards"],
            "tokens": market["tokens"],
            "active": market["active"],
            "closed": market["closed"],
            "archived": market["archived"],
            "accepting_orders": market["accepting_orders"],
        }

    def _page(self, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        page = wire.cursor_page(items, query.get("next_cursor"), self.page_size)
        if page is None:
            raise _Refused(400, "invalid next_cursor")
        return page

    def _markets_page(self, query: dict[str, str], *, sampling: bool, simplified: bool) -> dict[str, Any]:
        # Paged by condition id: a cursor stays good while the markets' states change.
        ids = self._condition_ids()
        markets = [self._market(c) for c in ids]
        if sampling:
            markets = [m for m in markets if m["rewards"]["rates"]]
        return self._page([self._simplified(m) if simplified else m for m in markets], query)

    def simplified_markets(self, query: dict[str, str]) -> dict[str, Any]:
        return self._markets_page(query, sampling=False, simplified=True)

    def sampling_markets(self, query: dict[str, str]) -> dict[str, Any]:
        return self._markets_page(query, sampling=True, simplified=False)

    def sampling_simplified_markets(self, query: dict[str, str]) -> dict[str, Any]:
        return self._markets_page(query, sampling=True, simplified=True)

    # -- price history -------------------------------------------------------------------------
    def _mid(self, token: str) -> float | None:
        book = self.sim.summary(token)
        if not book["bids"] or not book["asks"]:
            return None
        return (float(book["bids"][-1]["price"]) + float(book["asks"][-1]["price"])) / 2  # best last

    def sample(self, now_ns: int) -> None:
        """Record each token's midpoint, once a second (the simulator calls it every step)."""
        now_s = now_ns // 1_000_000_000
        if now_s == self._last_sample_s:
            return
        self._last_sample_s = now_s
        for m in self.sim.feed.markets:
            for token in (m.yes, m.no):
                mid = self._mid(token)
                if mid is not None:
                    points = self.history.setdefault(token, deque(maxlen=_HISTORY_POINTS))
                    points.append((now_s, round(mid, 6)))

    def prices_history(self, query: dict[str, str]) -> dict[str, Any]:
        token = query.get("market", "")
        if token not in {t for m in self.sim.feed.markets for t in (m.yes, m.no)}:
            raise _Refused(400, "invalid market")
        now_s = self.sim.clock() // 1_000_000_000
        try:
            if "interval" in query:
                if query["interval"] not in _INTERVALS_S:
                    raise _Refused(400, f"invalid interval: {query['interval']}")
                span = _INTERVALS_S[query["interval"]]
                start, end = (0 if span is None else now_s - span), now_s
            elif "startTs" in query and "endTs" in query:
                start, end = int(float(query["startTs"])), int(float(query["endTs"]))
            else:
                raise _Refused(400, "startTs and endTs, or interval, are required")
            fidelity_s = max(1, int(float(query.get("fidelity") or 1) * 60))
        except ValueError:
            raise _Refused(400, "invalid startTs, endTs or fidelity") from None
        points: list[dict[str, Any]] = []
        bucket = None
        for t, p in self.history.get(token, ()):
            if start <= t <= end and t // fidelity_s != bucket:
                bucket = t // fidelity_s
                points.append({"t": t, "p": p})
        return {"history": points}


_ROUTES: Final[dict[tuple[str, str], Callable[[ClobReads, dict[str, str]], Any]]] = {
    ("GET", "/simplified-markets"): ClobReads.simplified_markets,
    ("GET", "/sampling-markets"): ClobReads.sampling_markets,
    ("GET", "/sampling-simplified-markets"): ClobReads.sampling_simplified_markets,
    ("GET", "/prices-history"): ClobReads.prices_history,
}
