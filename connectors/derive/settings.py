"""`[venues.derive]`: how tradingd connects to Derive (VENUES.md §3.1, §3.4, §3.6, §3.7)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import attrs

from tradingd.engine.venue import at_least

from .instruments import InstrumentType

__all__ = ["ENDPOINTS", "DeriveSettings"]

# §3.1 (v2 hosts; §3.0 on v3): (WebSocket, REST) per environment.
ENDPOINTS = {
    "testnet": ("wss://api-demo.lyra.finance/ws", "https://api-demo.lyra.finance"),
    "mainnet": ("wss://api.lyra.finance/ws", "https://api.lyra.finance"),
}
_TYPES = ("option", "perp", "erc20")


def _one_of(*allowed: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name}: expected one of {', '.join(map(str, allowed))}, got {value}")

    return check


def _currencies(_: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: expected at least one currency")
    for c in value:
        if not c.isalnum():
            raise ValueError(f"{attribute.name}: expected currency codes like ETH, got {c!r}")


def _types(_: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: expected at least one of {', '.join(_TYPES)}")
    for t in value:
        if t not in _TYPES:
            expected = ", ".join(_TYPES)
            raise ValueError(f"{attribute.name}: expected instrument types among {expected}, got {t!r}")


def _fraction(_: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    # NaN first: a Decimal NaN raises InvalidOperation in a comparison.
    if not value.is_finite() or not 0 < value < 1:
        raise ValueError(f"{attribute.name}: expected a fraction between 0 and 1, got {value}")


def _margin(_: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    # A margin of Infinity would sign an unbounded max_fee; NaN no bound at all.
    if not value.is_finite() or not value >= 1:
        raise ValueError(f"{attribute.name}: expected at least 1 (a finite number), got {value}")


@attrs.frozen
class DeriveSettings:
    """`[venues.derive]`. Testnet unless `environment = "mainnet"` (the environment also picks the
    signing domain: `connectors.derive.signing.DOMAINS`). `url`/`rest_url` override the endpoints
    (the local simulator: `url = "ws://127.0.0.1:8766/ws"`, `rest_url = "http://127.0.0.1:8766"`).
    Credentials are never here: see `connectors.derive.signing.Credentials`.

    Market data: `currencies` x `instrument_types` are the `public/get_instruments` calls made on
    connecting and every `instruments_refresh_s` (§3.2); `ticker_interval` is the `ticker_slim`
    interval in ms; `book_group`/`book_depth` pick the `orderbook.{instrument}.{group}.{depth}`
    channel (§3.4); `check_publish_ids` reports skipped orderbook `publish_id`s as `book_gap`
    (harmless on Derive, whose books are whole snapshots, but worth knowing).

    Trading: `private` logs in and follows the `{subaccount}.orders` / `.trades` channels;
    `signature_ttl_s` is how long an order's signature, hence the order, lives (§3.6: more than
    5 minutes); `max_fee_margin` multiplies the fee the schedule expects into the signed
    `max_fee`; `market_slippage` is how far beyond the top of the book a market order's signed
    worst price goes (§3.6: Derive needs a limit price on market orders too).

    Keepalive (§3.1: the venue pings at the WebSocket level; there is no application heartbeat):
    after `keepalive_s` without a frame the session asks `public/get_time`, and after
    `stale_after_s` it declares the feed stale and reconnects.

    Rate limits (§3.7, the Trader tier): `matching_tps` (orders, cancels), `non_matching_tps`
    (everything else), `instrument_tps` (matching requests per instrument), each with a burst of
    `burst_multiplier` seconds' worth; `cancel_all_tps` for `private/cancel_all`. They are the
    venue's published limits (VENUES.md §3.7: 5 TPS each, bursts of 5x, `cancel_all` 1 TPS; set
    your tier's): the session paces itself 10% below them (`CreditBucket.below`), because our
    buckets and the venue's run on two clocks and an order refused for rate (-32000) is never
    re-sent.
    """

    environment: Literal["testnet", "mainnet"] = "testnet"
    url: str | None = None
    rest_url: str | None = None
    currencies: list[str] = attrs.field(factory=lambda: ["BTC", "ETH"], validator=_currencies)
    instrument_types: list[InstrumentType] = attrs.field(factory=lambda: ["option", "perp"], validator=_types)
    ticker_interval: Literal[100, 1000] = 1000
    book_group: int = attrs.field(default=1, validator=_one_of(1, 10, 100))
    book_depth: int = attrs.field(default=10, validator=_one_of(1, 10, 20, 100))
    check_publish_ids: bool = True
    private: bool = True
    signature_ttl_s: int = attrs.field(default=3600, validator=at_least(330))
    max_fee_margin: Decimal = attrs.field(default=Decimal(2), validator=_margin)
    market_slippage: Decimal = attrs.field(default=Decimal("0.05"), validator=_fraction)
    keepalive_s: float = attrs.field(default=10.0, validator=at_least(0.1))
    stale_after_s: float = attrs.field(default=30.0, validator=at_least(0.5))
    request_timeout_s: float = attrs.field(default=10.0, validator=at_least(0.1))
    reconnect_base_s: float = attrs.field(default=0.5, validator=at_least(0.01))
    reconnect_cap_s: float = attrs.field(default=30.0, validator=at_least(0.01))
    instruments_refresh_s: float = attrs.field(default=900.0, validator=at_least(1.0))
    # §3.7's Trader limits, as published (the session keeps 10% below them).
    matching_tps: float = attrs.field(default=5.0, validator=at_least(0.1))
    non_matching_tps: float = attrs.field(default=5.0, validator=at_least(0.1))
    instrument_tps: float = attrs.field(default=5.0, validator=at_least(0.1))
    cancel_all_tps: float = attrs.field(default=1.0, validator=at_least(0.01))
    burst_multiplier: float = attrs.field(default=5.0, validator=at_least(1.0))
    fees: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url or ENDPOINTS[self.environment][0]

    @property
    def http_url(self) -> str:
        return (self.rest_url or ENDPOINTS[self.environment][1]).rstrip("/")
