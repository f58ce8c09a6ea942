"""`[venues.polymarket]`: how tradingd connects to Polymarket's CLOB (VENUES.md §2.1-§2.4).

Credentials are never here: they come from the environment (`connectors.polymarket.signing.
Credentials.from_env`: `POLYMARKET_PRIVATE_KEY`, `POLYMARKET_API_KEY` / `_SECRET` /
`_PASSPHRASE`, each also as a `_FILE`).
"""

from __future__ import annotations

from typing import Any

import attrs

from tradingd.engine.venue import at_least

__all__ = ["MAINNET_REST", "MAINNET_WS", "PolymarketSettings"]

# §2.1: the market channel is `<ws>/market`, the user channel `<ws>/user`.
MAINNET_WS = "wss://ws-subscriptions-clob.polymarket.com/ws"
MAINNET_REST = "https://clob.polymarket.com"


def _chain(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value not in (137, 80002):
        raise ValueError(f"{attribute.name}: expected 137 (Polygon) or 80002 (Amoy), got {value}")


def _urls(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    schemes = ("ws://", "wss://") if attribute.name == "url" else ("http://", "https://")
    if not value.startswith(schemes):
        raise ValueError(f"{attribute.name}: expected a {' or '.join(schemes)} URL, got {value!r}")


@attrs.frozen
class PolymarketSettings:
    """Polygon mainnet's CLOB by default. The local simulator (`tradingd simulate polymarket
    --port 8766`): `url = "ws://127.0.0.1:8766/ws"`, `rest_url = "http://127.0.0.1:8766"`,
    `chain_id = 80002`.

    - `markets`: condition ids whose tokens are loaded at start (so that a strategy finds them
      among its instruments); tokens a strategy subscribes to are loaded when subscribed.
    - `max_assets_per_connection`: third parties report a limit of about 500 assets per market
      connection (§2.2, [U]): tokens beyond it are refused with a `subscription_refused` status
      rather than silently missing. Raise it if the venue allows more.
    - `snapshot_timeout_s`: how long a subscribed token's book may take to come from the venue
      (its initial dump, §2.2) before it is fetched over REST. It also bounds the first
      readiness: the market connection is `ready` once the first subscription's books are in,
      or after this long, naming the tokens still without one (`late_books`).
    - `market_stale_after_s`: how long the market connection may go without a market message
      (a book, a change, a trade: `PONG` does not count) while it has tokens subscribed before it
      asks for one: one of its tokens subscribed again, which the venue answers with the token's
      book. A market message within `snapshot_timeout_s` answers it (the market is only quiet:
      the connection stays); none, and the connection is replaced (reconnected and
      resubscribed). The venue is known to keep a connection open, answering `PING`, while
      sending no book data for hours (py-clob-client #292), which `stale_after_s` alone (any
      frame, `PONG` included) never notices.
    - `order_heartbeat_s`: when > 0, `POST /v1/heartbeats` every that many seconds: if they stop
      (the daemon dies), the venue cancels every open order (§2.3). 0 disables it.
    - `order_rate` / `order_burst`: a local limit on order requests (per second, burst), so a
      runaway strategy waits here instead of being refused by the venue.
    """

    url: str = attrs.field(default=MAINNET_WS, validator=_urls)
    rest_url: str = attrs.field(default=MAINNET_REST, validator=_urls)
    chain_id: int = attrs.field(default=137, validator=_chain)
    markets: list[str] = attrs.field(factory=list)
    private: bool = True  # trade: follow the user channel
    custom_features: bool = True  # best_bid_ask, new_market, market_resolved (§2.2)
    ping_s: float = attrs.field(default=10.0, validator=at_least(1.0))  # §2.2 "Keepalive"
    stale_after_s: float = attrs.field(default=30.0, validator=at_least(1.0))
    market_stale_after_s: float = attrs.field(default=120.0, validator=at_least(1.0))
    request_timeout_s: float = attrs.field(default=10.0, validator=at_least(0.1))
    reconnect_base_s: float = attrs.field(default=0.5, validator=at_least(0.01))
    reconnect_cap_s: float = attrs.field(default=30.0, validator=at_least(0.01))
    snapshot_timeout_s: float = attrs.field(default=5.0, validator=at_least(0.1))
    max_assets_per_connection: int = attrs.field(default=500, validator=at_least(1))
    order_heartbeat_s: float = attrs.field(default=0.0, validator=at_least(0.0))
    order_rate: float = attrs.field(default=50.0, validator=at_least(0.1))
    order_burst: float = attrs.field(default=100.0, validator=at_least(1.0))
    fill_wait_s: float = attrs.field(default=2.0, validator=at_least(0.0))
    fees: dict[str, Any] = attrs.field(factory=dict)

    @property
    def market_url(self) -> str:
        return self.url.rstrip("/") + "/market"

    @property
    def user_url(self) -> str:
        return self.url.rstrip("/") + "/user"

    @property
    def http_url(self) -> str:
        return self.rest_url.rstrip("/")
