"""The methods a Deribit client calls first: `public/hello`, `public/status`,
`public/get_index_price` and `public/get_book_summary_by_currency` (and the account's trades by
instrument or currency, which ccxt's `fetch_my_trades` asks for), answered over WebSocket and
REST (`/api/v2/<method>`) from the simulator's own market (its instrument list, the top of its
books, the last ticker and index value it published), in the shapes of Deribit's documentation:

- `public/hello` (docs.deribit.com api-reference/supporting/public-hello): `client_name` and
  `client_version` are required; the answer is `{"version": ...}`, the API version `public/test`
  also reports.
- `public/status` (…/supporting/public-status, OpenAPI schema): `locked` is a *string*,
  `"true"`, `"partial"` or `"false"`, with `locked_indices`, the indices locked platform-wide.
  The page's example (`"locked": true`, `locked_currencies`) contradicts its own schema; the
  schema wins, and so does real Deribit: ccxt's `fetch_status` quotes a real answer,
  `{"locked": "false"}`, and compares with the string.
- `public/get_index_price` (…/market-data/public-get_index_price): `index_name` (`btc_usd`, …)
  -> `{"index_price", "estimated_delivery_price"}`.
- `public/get_book_summary_by_currency` (…/market-data/public-get_book_summary_by_currency,
  OpenAPI `book_summary`): one summary per instrument settled in `currency`, of one `kind` when
  given. `bid_price` / `ask_price` / `mid_price` are `null` when the side is empty (where the
  ticker writes 0), `last` / `high` / `low` / `price_change` `null` before the first trade;
  `creation_timestamp` is when the summary was made (ms); `volume_notional` is for futures,
  `current_funding` / `funding_8h` for perpetuals, `mark_iv`, `interest_rate`,
  `underlying_index`, `underlying_price` for options (`mark_iv` is in the schema; the real
  answers ccxt quotes in its `fetch_option_chain` omit it). Numbers are JSON floats, as Deribit
  writes them.

Which instruments a currency names: Deribit lists an instrument under its *settlement* currency
(`BTC_USDC-PERPETUAL` is a USDC instrument, `BTC-PERPETUAL` a BTC one; OpenBB's Deribit
provider documents `currency` so), so the filter is on `settlement_currency`. Deribit's other
currencies (USDC, USDT, EURR) are valid and, when the simulator lists nothing settled in them,
answer an empty list; any other is `Invalid params`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, NoReturn, Protocol

__all__ = ["METHODS", "Market", "book_summary", "index_price"]

API_VERSION: Final = "1.2.26"  # `public/test` and `public/hello` report it (VENUES.md §1.5)
# The currencies Deribit answers `get_book_summary_by_currency` for (the OpenAPI enum).
_CURRENCIES: Final = frozenset({"BTC", "ETH", "USDC", "USDT", "EURR"})
_KINDS: Final = frozenset({"future", "option", "spot", "future_combo", "option_combo"})


class Market(Protocol):
    """What these methods read of the simulator: the `get_instruments` items it serves, the
    last ticker (`ticker.*` data) it published per instrument, the last value of each index
    (`deribit_price_index.*`), and its clock (ns)."""

    @property
    def instrument_items(self) -> list[dict[str, Any]]: ...

    @property
    def index_prices(self) -> Mapping[str, Decimal]: ...

    def top(self, instrument: str) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """(bid, bid amount, ask, ask amount) of the book now, 0 / 0 for an empty side."""
        ...

    @property
    def tickers(self) -> Mapping[str, Mapping[str, Any]]: ...

    def clock(self) -> int: ...


def _invalid(param: str, reason: str) -> NoReturn:
    """Deribit's answer to a missing or malformed parameter: -32602 `Invalid params` naming it."""
    # Imported here: the simulator's method table imports this module.
    from .simulator import RpcError

    raise RpcError(-32602, "Invalid params", {"param": param, "reason": reason})


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _side(price: Decimal, amount: Decimal) -> Decimal | None:
    """A best price as the summary writes it: None for an empty side (the book's `0 / 0`)."""
    return price if amount and price else None


def index_price(market: Market, index_name: str) -> dict[str, float] | None:
    """The index `index_name` now, as `deribit_price_index.{index_name}` last published it; None
    before its first value. The simulator models no delivery averaging, so the estimated
    delivery price is what the index's perpetual's ticker says (the index itself)."""
    price = market.index_prices.get(index_name)
    if price is None:
        return None
    delivery = next(
        (
            market.tickers.get(item["instrument_name"], {}).get("estimated_delivery_price")
            for item in market.instrument_items
            if item.get("price_index") == index_name and item.get("settlement_period") == "perpetual"
        ),
        None,
    )
    return {
        "index_price": float(price),
        "estimated_delivery_price": float(price) if delivery is None else float(delivery),
    }


def book_summary(
    item: Mapping[str, Any],
    ticker: Mapping[str, Any],
    top: tuple[Decimal, Decimal, Decimal, Decimal],
    now_ms: int,
) -> dict[str, Any]:
    """One instrument's `book_summary` from its `get_instruments` item, its last ticker (marks,
    stats, open interest) and the top of its book now (bid, ask: the book may have moved since
    the ticker)."""
    stats = ticker.get("stats") or {}
    bid, ask = _side(top[0], top[1]), _side(top[2], top[3])
    mid = None if bid is None or ask is None else (bid + ask) / 2
    summary: dict[str, Any] = {
        "instrument_name": item["instrument_name"],
        "base_currency": item["base_currency"],
        "quote_currency": item["quote_currency"],
        "bid_price": _number(bid),
        "ask_price": _number(ask),
        "mid_price": _number(mid),
        "mark_price": _number(ticker.get("mark_price")),
        "last": _number(ticker.get("last_price")),
        "high": _number(stats.get("high")),
        "low": _number(stats.get("low")),
        "price_change": _number(stats.get("price_change")),
        "volume": float(stats.get("volume") or 0.0),
        "volume_usd": float(stats.get("volume_usd") or 0.0),
        "open_interest": float(ticker.get("open_interest") or 0.0),
        "estimated_delivery_price": _number(ticker.get("estimated_delivery_price")),
        "creation_timestamp": now_ms,
    }
    if item.get("kind") == "option":
        summary["mark_iv"] = _number(ticker.get("mark_iv"))
        summary["interest_rate"] = float(ticker.get("interest_rate") or 0.0)
        summary["underlying_index"] = ticker.get("underlying_index", "index_price")
        summary["underlying_price"] = _number(ticker.get("underlying_price", ticker.get("index_price")))
    else:
        summary["volume_notional"] = float(stats.get("volume_notional", stats.get("volume_usd")) or 0.0)
    if item.get("settlement_period") == "perpetual":
        summary["current_funding"] = _number(ticker.get("current_funding"))
        summary["funding_8h"] = _number(ticker.get("funding_8h"))
    return summary


def _hello(market: Market, p: Mapping[str, Any], *_: Any) -> Any:
    for param in ("client_name", "client_version"):
        if not isinstance(p.get(param), str):
            _invalid(param, "must be a string")
    return {"version": API_VERSION}


def _status(market: Market, p: Mapping[str, Any], *_: Any) -> Any:
    # The simulator never locks a currency; the fault switches drop or stall instead.
    return {"locked": "false", "locked_indices": []}


def _get_index_price(market: Market, p: Mapping[str, Any], *_: Any) -> Any:
    name = p.get("index_name")
    if not isinstance(name, str):
        _invalid("index_name", "must be present")
    known = {str(item.get("price_index")) for item in market.instrument_items}
    if name not in known:
        _invalid("index_name", f"must be one of {sorted(known)}")
    value = index_price(market, name)
    if value is None:  # listed, but nothing has quoted yet (the simulator's first instant)
        _invalid("index_name", "no price yet")
    return value


def _get_book_summary_by_currency(market: Market, p: Mapping[str, Any], *_: Any) -> Any:
    currency = p.get("currency")
    settled = {str(item.get("settlement_currency")) for item in market.instrument_items}
    if not isinstance(currency, str) or currency not in _CURRENCIES | settled:
        _invalid("currency", "wrong format")
    kind = p.get("kind")
    if kind is not None and kind not in _KINDS:
        _invalid("kind", "wrong format")
    now_ms = market.clock() // 1_000_000
    out = []
    for item in market.instrument_items:
        if item.get("settlement_currency") != currency or kind not in (None, item.get("kind")):
            continue
        ticker = market.tickers.get(item["instrument_name"])
        top = market.top(item["instrument_name"])
        if ticker is not None and top is not None:  # not yet quoted: no summary to give
            out.append(book_summary(item, ticker, top, now_ms))
    return out


class _Holder(Protocol):
    """An account as these methods read it: its trades (user-trade JSON), oldest first."""

    @property
    def trades(self) -> list[dict[str, Any]]: ...


def _integer(p: Mapping[str, Any], name: str, default: int, low: int = 0, high: int = 2**62) -> int:
    """An integer parameter (a REST query gives it as a string) within [low, high]."""
    value = p.get(name, default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _invalid(name, f"must be an integer in [{low}, {high}]")
    return value


def _count(p: Mapping[str, Any]) -> int:
    return _integer(p, "count", 10, 1, 1000)


# Deribit keeps our trades two ways ("Accessing historical trades and orders using API",
# docs.deribit.com/articles/accessing-historical-trades-orders): asked without `historical` (or
# with it false), the recent ones, kept 24 hours "before removal"; with `historical: true`, all of
# them, indefinitely, but "available after a short delay for indexing". The simulator serves the
# recent trades as the last `RECENT_TRADES_MS` by its clock, and the historical ones once they
# are `HISTORICAL_DELAY_MS` old (Deribit names no figure for the delay: a few seconds here).
RECENT_TRADES_MS: Final = 24 * 3_600_000
HISTORICAL_DELAY_MS: Final = 5_000


def kept_trades(trades: list[dict[str, Any]], p: Mapping[str, Any], now_ms: int) -> list[dict[str, Any]]:
    """The account's trades a user-trades method can answer with, by its `historical` switch
    (a JSON boolean, or "true"/"false" in a REST query) and the simulator's clock (ms)."""
    historical = p.get("historical", False)
    if historical in ("true", "false"):
        historical = historical == "true"
    if not isinstance(historical, bool):
        _invalid("historical", "must be a boolean")
    if historical:
        return [t for t in trades if t["timestamp"] <= now_ms - HISTORICAL_DELAY_MS]
    return [t for t in trades if t["timestamp"] >= now_ms - RECENT_TRADES_MS]


def _page(found: list[dict[str, Any]], p: Mapping[str, Any]) -> dict[str, Any]:
    """`{"trades", "has_more"}`, newest first unless `sorting = "asc"` (`default` is the order
    Deribit's store gives, newest first), at most `count`."""
    sorting = p.get("sorting", "default")
    if sorting not in ("asc", "desc", "default"):
        _invalid("sorting", "must be asc, desc or default")
    ordered = found if sorting == "asc" else found[::-1]
    count = _count(p)
    return {"trades": ordered[:count], "has_more": len(ordered) > count}


def _user_trades_by_instrument(
    market: Market, p: Mapping[str, Any], session: Any, account: _Holder | None, *_: Any
) -> Any:
    """`private/get_user_trades_by_instrument` (docs …/trading/private-get_user_trades_by_instrument):
    the account's trades in `instrument_name`, within `start_seq`..`end_seq` of `trade_seq`."""
    assert account is not None  # the method table refuses private methods without an account
    name = p.get("instrument_name")
    if name not in {item["instrument_name"] for item in market.instrument_items}:
        _invalid("instrument_name", "unknown instrument")
    first, last = _integer(p, "start_seq", 0), _integer(p, "end_seq", 2**62)
    kept = kept_trades(account.trades, p, market.clock() // 1_000_000)
    found = [t for t in kept if t["instrument_name"] == name and first <= t["trade_seq"] <= last]
    return _page(found, p)


def _user_trades_by_currency(
    market: Market, p: Mapping[str, Any], session: Any, account: _Holder | None, *_: Any
) -> Any:
    """`private/get_user_trades_by_currency` (docs …/trading/private-get_user_trades_by_currency):
    the account's trades in instruments settled in `currency`, of one `kind` when given."""
    assert account is not None
    currency, kind = p.get("currency"), p.get("kind", "any")
    if kind not in _KINDS | {"any"}:
        _invalid("kind", "wrong format")
    names = {
        item["instrument_name"]
        for item in market.instrument_items
        if item.get("settlement_currency") == currency and kind in ("any", item.get("kind"))
    }
    if not isinstance(currency, str) or currency not in _CURRENCIES:
        _invalid("currency", "wrong format")
    kept = kept_trades(account.trades, p, market.clock() // 1_000_000)
    return _page([t for t in kept if t["instrument_name"] in names], p)


# The simulator's method table takes these as they are: handler(simulator, params, session,
# account, after), the extra arguments unused.
METHODS: Final[Mapping[str, Callable[..., Any]]] = {
    "public/hello": _hello,
    "public/status": _status,
    "public/get_index_price": _get_index_price,
    "public/get_book_summary_by_currency": _get_book_summary_by_currency,
    # ccxt's fetch_my_trades asks these (by instrument when given a symbol, else by currency).
    "private/get_user_trades_by_instrument": _user_trades_by_instrument,
    "private/get_user_trades_by_currency": _user_trades_by_currency,
}
