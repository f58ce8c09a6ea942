"""`[venues.deribit]`: how tradingd connects to Deribit (VENUES.md §1.1, §1.5, §1.10)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from tradingd.engine.venue import at_least

__all__ = ["ENDPOINTS", "DeribitSettings"]

ENDPOINTS = {
    "testnet": ("wss://test.deribit.com/ws/api/v2", "https://test.deribit.com"),
    "mainnet": ("wss://www.deribit.com/ws/api/v2", "https://www.deribit.com"),
}


@attrs.frozen
class DeribitSettings:
    """Testnet unless `environment = "mainnet"`. `url`/`rest_url` override the endpoints (the
    local simulator: `url = "ws://127.0.0.1:8765/ws/api/v2"`, `rest_url = "http://127.0.0.1:8765"`).
    Credentials are never here: see `connectors.deribit.signing.Credentials`."""

    environment: Literal["testnet", "mainnet"] = "testnet"
    url: str | None = None
    rest_url: str | None = None
    auth: Literal["client_signature", "client_credentials"] = "client_signature"
    interval: Literal["100ms", "raw", "agg2"] = "100ms"  # raw needs an authenticated session (§1.6)
    currencies: list[str] = attrs.field(factory=lambda: ["BTC", "ETH"])  # whose instruments to load
    private: bool = True  # trade: authenticate and follow user.orders / user.trades
    heartbeat_s: int = attrs.field(default=10, validator=at_least(10))  # §1.5: at least 10 s
    stale_after_s: float = attrs.field(default=30.0, validator=at_least(1.0))
    request_timeout_s: float = attrs.field(default=10.0, validator=at_least(0.1))
    reconnect_base_s: float = attrs.field(default=0.5, validator=at_least(0.01))
    reconnect_cap_s: float = attrs.field(default=30.0, validator=at_least(0.01))
    matching_rate: float = attrs.field(default=5.0, validator=at_least(0.1))  # §1.10 tier 4
    matching_burst: float = attrs.field(default=20.0, validator=at_least(1.0))
    instruments_refresh_s: float = attrs.field(default=3600.0, validator=at_least(1.0))
    fees: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url or ENDPOINTS[self.environment][0]

    @property
    def http_url(self) -> str:
        return (self.rest_url or ENDPOINTS[self.environment][1]).rstrip("/")
