"""The Derive methods a client calls to set itself up and to read the market in bulk, answered from
the simulator's own state in Derive's v2 shapes. Without them Derive's official client
(`derive-client`) cannot connect: its `connect()` asks `private/get_account`,
`private/session_keys`, `public/get_all_instruments` (each instrument type, paged) and
`private/get_subaccount` before anything else.

Shapes: the result schemas of `derive-client` 0.3.16 (`data_types/generated_models.py`, generated
from Derive's v2 OpenAPI), with the semantics of docs.derive.xyz (private/get_account,
public/get_tickers) and VENUES.md §3.3 (tickers). All numbers are decimal strings, timestamps
and counts integers (VENUES.md §4.1).

- `private/get_account {wallet}`: the wallet's subaccounts, its WebSocket rate limits (the
  simulator's own buckets), no fee discounts, cancel-on-disconnect off, not an RFQ maker.
- `private/session_keys {wallet}`: the wallet's registered keys (`scope` admin; a key registered
  without an expiry is reported expiring at the end of year 9999, `_NEVER_S`).
- `private/get_subaccount {subaccount_id}`: collaterals (the account's balances), open orders (the
  simulator's own `private/get_open_orders` answer), positions (its `private/get_positions`
  answer; their value the sum of their `mark_value`), standard margin (`SM`)
  with no margin requirement modelled (margins "0": the simulator does not model margin);
  `private/get_all_portfolios {wallet}` gives it for every subaccount, `private/get_collaterals
  {subaccount_id}` its collaterals alone.
- `public/get_all_instruments {instrument_type, expired, currency?, page?, page_size?}`: paged as
  Derive pages (`page` from 1, `page_size` up to 1000, a page past the last answers the last one
  again), `{instruments, pagination: {count, num_pages}}`; `expired: false` lists the live
  instruments, `true` adds the ones no longer active.
- `public/get_tickers {instrument_type, currency?, expiry_date?}`: `{tickers: {name: slim ticker}}`,
  the last `ticker_slim` of each instrument; `expiry_date` (`YYYYMMDD`) is required for options and
  refused otherwise (docs.derive.xyz public/get_tickers: options need `currency` and an 8-digit
  `expiry_date`, perps and spot reject it; VENUES.md §3.3 for the error texts).
- `public/get_ticker` gains what the simulator's answer lacked and the client's schema requires:
  `open_interest` (`{margin type: [{current_open_interest, interest_cap, manager_currency}]}`:
  the slim ticker's `stats.oi`, all under standard margin; the simulator caps no open interest and
  reports 1000 times the instrument's maximum order amount as the cap),
  `five_percent_bid_depth` / `five_percent_ask_depth` (the amount resting within 5% of the mark)
  and `stats` (the Feb-2026 shape, VENUES.md §3.3 and the captured `http_ticker_eth_snapshot.json`:
  `contract_volume, num_trades, open_interest, high, low, percent_change, usd_change`).
- `public/get_trade_history {instrument_name?, currency?, instrument_type?, tx_status?,
  from_timestamp?, to_timestamp?, trade_id?, tx_hash?, subaccount_id?, page?, page_size?}`: every
  trade printed on the venue (the feed's and the clients'), newest first, paged, each in the
  settled-trade shape (`TradeSettledPublicResponseSchema`); by default (`tx_status` settled) only
  trades settled on chain. A feed trade settles `settle_after_s` after it printed (its `tx_hash`
  the keccak of its id: deterministic; its account, which the public channel does not name, the
  zero address's subaccount 0); a client trade carries its own account and settlement state.

Registered by `register(methods)` into the simulator's dispatch table. The simulator state read
here: `accounts` (wallet, subaccounts, session_keys, balances, rate buckets), `instrument_items`,
`tickers` (the last slim ticker per instrument), its book, `public_tape`, `settle_after_s`, `clock()`,
and the simulator's own method handlers for open orders and trade history.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson

from ..matching import Side

if TYPE_CHECKING:
    from .simulator import DeriveSimulator, SimAccount

__all__ = ["PublicTape", "page_of", "register"]

Handler = Callable[..., Any]

_NEVER_S: Final = 253402300799  # 9999-12-31T23:59:59Z: a key registered without an expiry
_MAX_PAGE: Final = 1000
T = TypeVar("T")
_INSTRUMENT_TYPES: Final = ("erc20", "option", "perp")
_PUBLIC_TX_STATUSES: Final = ("settled", "reverted", "timed_out")  # the client's TxStatus5
_TAPE: Final = 20_000  # public trades kept for the history (the newest)
_ZERO: Final = "0"
_NOBODY: Final = "0x0000000000000000000000000000000000000000"


def _text(d: Decimal) -> str:
    """A Decimal as Derive writes numbers: plain, no exponent, no trailing zeros."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _dec(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return d if d.is_finite() else Decimal(0)


def page_of(
    items: list[T], p: Mapping[str, Any], error: Callable[..., Exception]
) -> tuple[list[T], dict[str, int]]:
    """One page of a history (§3.6 paging): `page` from 1, `page_size` 1..1000 (default 100),
    integers; a page past the last answers the last one again, as Derive does. `error` is the
    simulator's RpcError(code, message, data)."""
    page, size = p.get("page", 1), p.get("page_size", 100)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise error(-32602, "Invalid params", "page must be an integer from 1")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= _MAX_PAGE:
        raise error(-32602, "Invalid params", f"page_size must be 1 to {_MAX_PAGE}")
    pages = -(-len(items) // size)
    page = min(page, max(pages, 1))
    return items[(page - 1) * size : page * size], {"count": len(items), "num_pages": pages}


class PublicTape:
    """The trades printed on the simulated venue's public `trades.{instrument}` channels, newest
    last (bounded), for `public/get_trade_history`."""

    def __init__(self, size: int = _TAPE) -> None:
        self.trades: deque[dict[str, Any]] = deque(maxlen=size)

    def record(self, frame: bytes) -> None:
        """Keep the trades of one published frame (other frames are ignored)."""
        if not frame.startswith(b'{"method":"subscription","params":{"channel":"trades.'):
            return
        try:
            data = orjson.loads(frame)["params"]["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if not isinstance(data, list):
            return
        for t in data:
            if isinstance(t, dict) and "trade_id" in t:
                # The public channel names no account (production's shape): in the settled-trade
                # shape the history needs one, and the zero address's subaccount 0 stands for
                # "another account".
                self.trades.append({"wallet": _NOBODY, "subaccount_id": 0, **t})


class _Methods:
    """The methods, bound to the simulator's dispatch table (for the handlers they build on)."""

    def __init__(self, table: MutableMapping[str, Handler], error: Callable[..., Exception]) -> None:
        self.table = table
        self.error = error  # the simulator's RpcError(code, message, data)
        self.base_ticker = table["public/get_ticker"]

    # -- helpers -------------------------------------------------------------------------------
    def _ask(self, sim: DeriveSimulator, method: str, params: dict[str, Any], account: Any) -> Any:
        """One of the simulator's own methods, answered without counting it as a request."""
        return self.table[method](sim, params, None, account, [])

    def _wallet(self, p: dict[str, Any], account: SimAccount | None) -> SimAccount:
        assert account is not None
        wallet = p.get("wallet")
        if not isinstance(wallet, str) or not wallet:
            raise self.error(-32602, "Invalid params", "wallet is required")
        if wallet.lower() != account.wallet.lower():
            raise self.error(14000, "Account not found", f"wallet {wallet} is not the one authenticated")
        return account

    @staticmethod
    def _item(sim: DeriveSimulator, name: str) -> dict[str, Any] | None:
        return next((i for i in sim.instrument_items if i["instrument_name"] == name), None)

    # -- account ---------------------------------------------------------------------------------
    def get_account(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        acct = self._wallet(p, account)
        matching = int(acct.matching.rate) if acct.matching is not None else 0
        non_matching = int(acct.non_matching.rate) if acct.non_matching is not None else 0
        return {
            "wallet": acct.wallet,
            "subaccount_ids": sorted(acct.subaccounts),
            "cancel_on_disconnect": False,
            "is_rfq_maker": False,
            "creation_timestamp_sec": sim.feed.market.start_ns // 1_000_000_000,
            "referral_code": None,
            "fee_info": {
                "base_fee_discount": _ZERO,
                "rfq_maker_discount": _ZERO,
                "rfq_taker_discount": _ZERO,
            },
            "per_endpoint_tps": {},
            "websocket_matching_tps": matching,
            "websocket_non_matching_tps": non_matching,
            # Derive also limits perp and option messages apart; the simulator has one matching bucket.
            "websocket_perp_tps": matching,
            "websocket_option_tps": matching,
        }

    def session_keys(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        acct = self._wallet(p, account)
        registered = sim.feed.market.start_ns // 1_000_000_000
        return {
            "public_session_keys": [
                {
                    "public_session_key": key,
                    "expiry_sec": _NEVER_S if expiry is None else expiry,
                    "ip_whitelist": [],
                    "label": "",
                    "registered_sec": registered,
                    "scope": "admin",
                }
                for key, expiry in sorted(acct.session_keys.items())
            ]
        }

    def _sub(self, p: dict[str, Any], account: Any) -> int:
        assert account is not None
        sub = p.get("subaccount_id")
        if isinstance(sub, bool) or not isinstance(sub, int):
            raise self.error(-32602, "Invalid params", "subaccount_id must be an integer")
        if sub not in account.subaccounts:
            raise self.error(14001, "Subaccount not found", f"subaccount {sub} is not {account.wallet}'s")
        return sub

    def _collaterals(self, account: Any, now_ms: int) -> list[dict[str, Any]]:
        return [
            self._collateral(currency, amount, now_ms)
            for currency, amount in sorted(account.balances.items())
            if amount != 0
        ]

    def get_subaccount(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        sub = self._sub(p, account)
        now_ms = sim.clock() // 1_000_000
        orders = self._ask(sim, "private/get_open_orders", {"subaccount_id": sub}, account)["orders"]
        positions = self._ask(sim, "private/get_positions", {"subaccount_id": sub}, account)["positions"]
        collaterals = self._collaterals(account, now_ms)
        collateral_value = sum((_dec(c["mark_value"]) for c in collaterals), Decimal(0))
        positions_value = sum((_dec(q["mark_value"]) for q in positions), Decimal(0))
        return {
            "subaccount_id": sub,
            "label": "",
            "currency": "USDC",
            "margin_type": "SM",
            "is_under_liquidation": False,
            "collaterals": collaterals,
            "collaterals_value": _text(collateral_value),
            "collaterals_initial_margin": _ZERO,
            "collaterals_maintenance_margin": _ZERO,
            "positions": positions,
            "positions_value": _text(positions_value),
            "positions_initial_margin": _ZERO,
            "positions_maintenance_margin": _ZERO,
            "open_orders": orders,
            "open_orders_margin": _ZERO,
            "initial_margin": _ZERO,
            "maintenance_margin": _ZERO,
            "projected_margin_change": _ZERO,
            "subaccount_value": _text(collateral_value + positions_value),
        }

    @staticmethod
    def _collateral(currency: str, amount: Decimal, now_ms: int) -> dict[str, Any]:
        return {
            "asset_name": currency,
            "asset_type": "erc20",
            "currency": currency,
            "amount": _text(amount),
            "amount_step": "0.000001",
            "average_price": "1",
            "average_price_excl_fees": "1",
            "creation_timestamp": now_ms,
            "cumulative_interest": _ZERO,
            "pending_interest": _ZERO,
            "delta": "1",
            "delta_currency": currency,
            "initial_margin": _ZERO,
            "maintenance_margin": _ZERO,
            "open_orders_margin": _ZERO,
            "mark_price": "1",
            "mark_value": _text(amount),
            "realized_pnl": _ZERO,
            "realized_pnl_excl_fees": _ZERO,
            "total_fees": _ZERO,
            "unrealized_pnl": _ZERO,
            "unrealized_pnl_excl_fees": _ZERO,
        }

    def get_collaterals(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        sub = self._sub(p, account)
        now_ms = sim.clock() // 1_000_000
        return {"subaccount_id": sub, "collaterals": self._collaterals(account, now_ms)}

    def get_all_portfolios(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        acct = self._wallet(p, account)
        return [
            self.get_subaccount(sim, {"subaccount_id": sub}, peer, acct, after)
            for sub in sorted(acct.subaccounts)
        ]

    # -- instruments and tickers -----------------------------------------------------------------
    def get_all_instruments(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        kind, expired, currency = p.get("instrument_type"), p.get("expired"), p.get("currency")
        if kind not in _INSTRUMENT_TYPES:
            raise self.error(
                -32602, "Invalid params", f"instrument_type must be one of {list(_INSTRUMENT_TYPES)}"
            )
        if not isinstance(expired, bool):
            raise self.error(-32602, "Invalid params", "expired (bool) is required")
        if currency is not None and not isinstance(currency, str):
            raise self.error(-32602, "Invalid params", "currency must be a string")
        items = [
            item
            for item in sim.instrument_items
            if item["instrument_type"] == kind
            and (currency is None or item["base_currency"] == currency.upper())
            and (expired or item["is_active"])
        ]
        page, pagination = page_of(items, p, self.error)
        return {"instruments": page, "pagination": pagination}

    def get_tickers(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        kind, currency, expiry = p.get("instrument_type"), p.get("currency"), p.get("expiry_date")
        if kind not in _INSTRUMENT_TYPES:
            raise self.error(
                -32602, "Invalid params", f"instrument_type must be one of {list(_INSTRUMENT_TYPES)}"
            )
        if currency is not None and not isinstance(currency, str):
            raise self.error(-32602, "Invalid params", "currency must be a string")
        day: str | None = None
        if kind == "option":
            if currency is None or expiry is None:
                raise self.error(-32602, "Invalid params", "Expiry date is required for options")
            day = str(expiry)
            if len(day) != 8 or not day.isdigit():
                raise self.error(-32602, "Invalid params", "Expiry date must be in the format YYYYMMDD")
        elif expiry is not None:
            raise self.error(-32602, "Invalid params", "expiry_date is for options only")
        tickers = {}
        for item in sim.instrument_items:
            name = item["instrument_name"]
            if item["instrument_type"] != kind or not item["is_active"] or name not in sim.tickers:
                continue
            if currency is not None and item["base_currency"] != currency.upper():
                continue
            if day is not None:
                expiry_s = int(item["option_details"]["expiry"])
                if dt.datetime.fromtimestamp(expiry_s, dt.UTC).strftime("%Y%m%d") != day:
                    continue
            tickers[name] = sim.tickers[name]
        return {"tickers": tickers}

    def get_ticker(self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any) -> Any:
        answer = dict(self.base_ticker(sim, p, peer, account, after))
        name = answer["instrument_name"]
        slim = sim.tickers.get(name, {})
        stats = slim.get("stats") or {}
        mark = _dec(answer.get("mark_price") or slim.get("M", 0))
        bids, asks = _book_levels(sim, name)
        if "five_percent_bid_depth" not in answer:
            answer["five_percent_bid_depth"] = _text(
                sum((a for px, a in bids if px >= mark * Decimal("0.95")), Decimal(0))
            )
        if "five_percent_ask_depth" not in answer:
            answer["five_percent_ask_depth"] = _text(
                sum((a for px, a in asks if px <= mark * Decimal("1.05")), Decimal(0))
            )
        if "open_interest" not in answer:
            answer["open_interest"] = {
                "SM": [
                    {
                        "current_open_interest": _text(_dec(stats.get("oi", 0))),
                        "interest_cap": _text(_dec(answer.get("maximum_amount", 0)) * 1000),
                        "manager_currency": None,
                    }
                ]
            }
        if "stats" not in answer:
            change = _dec(stats.get("p", 0))
            answer["stats"] = {
                "contract_volume": _text(_dec(stats.get("c", 0))),
                "num_trades": str(int(stats.get("n", 0) or 0)),
                "open_interest": _text(_dec(stats.get("oi", 0))),
                "high": _text(_dec(stats.get("h", 0))),
                "low": _text(_dec(stats.get("l", 0))),
                "percent_change": _text(change),
                # The change in USD the percent change stands for, from the mark it ends at.
                "usd_change": _text(mark - mark / (1 + change) if change != -1 else mark),
            }
        return answer

    # -- public trades ---------------------------------------------------------------------------
    def get_trade_history(
        self, sim: DeriveSimulator, p: dict[str, Any], peer: Any, account: Any, after: Any
    ) -> Any:
        status = p.get("tx_status", "settled")
        if status not in _PUBLIC_TX_STATUSES:
            raise self.error(
                -32602, "Invalid params", f"tx_status must be one of {list(_PUBLIC_TX_STATUSES)}"
            )
        kind, currency, name = p.get("instrument_type"), p.get("currency"), p.get("instrument_name")
        if kind is not None and kind not in _INSTRUMENT_TYPES:
            raise self.error(
                -32602, "Invalid params", f"instrument_type must be one of {list(_INSTRUMENT_TYPES)}"
            )
        start, end = p.get("from_timestamp", 0), p.get("to_timestamp", 2**64)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
            raise self.error(-32602, "Invalid params", "from_timestamp and to_timestamp are integers (ms)")
        kinds = {
            i["instrument_name"]: (i["instrument_type"], i["base_currency"]) for i in sim.instrument_items
        }
        now_ms = sim.clock() // 1_000_000
        found = []
        for t in self._all_trades(sim, now_ms):
            if t["tx_status"] != status or not start <= t["timestamp"] <= end:
                continue
            t_kind, t_ccy = kinds.get(t["instrument_name"], (None, None))
            if (
                (name is not None and t["instrument_name"] != name)
                or (kind is not None and t_kind != kind)
                or (currency is not None and t_ccy != str(currency).upper())
                or any(
                    p.get(k) is not None and t.get(k) != p[k]
                    for k in ("trade_id", "tx_hash", "subaccount_id")
                )
            ):
                continue
            found.append(t)
        found.sort(key=lambda t: t["timestamp"], reverse=True)
        page, pagination = page_of(found, p, self.error)
        return {"trades": page, "pagination": pagination}

    def _all_trades(self, sim: DeriveSimulator, now_ms: int) -> Iterable[dict[str, Any]]:
        """Every trade printed, in the settled-trade shape with its settlement state now."""
        settle_ms = int(sim.settle_after_s * 1000)
        for t in sim.public_tape.trades:
            settled = now_ms - t["timestamp"] >= settle_ms
            yield self._public(
                t,
                tx_status="settled" if settled else "requested",
                tx_hash=_keccak_hex(t["trade_id"]) if settled else None,
            )
        for acct in sim.accounts.values():
            for t in acct.trades:
                yield self._public(
                    {**t, "wallet": acct.wallet}, tx_status=t["tx_status"], tx_hash=t["tx_hash"]
                )

    @staticmethod
    def _public(t: dict[str, Any], *, tx_status: str, tx_hash: str | None) -> dict[str, Any]:
        keys = (
            "direction", "expected_rebate", "extra_fee", "index_price", "instrument_name", "liquidity_role",
            "mark_price", "quote_id", "realized_pnl", "realized_pnl_excl_fees", "rfq_id", "subaccount_id",
            "timestamp", "trade_amount", "trade_fee", "trade_id", "trade_price", "wallet",
        )  # fmt: skip
        out = {k: t.get(k) for k in keys}
        out.update(tx_status=tx_status, tx_hash=tx_hash)
        for k in ("expected_rebate", "extra_fee", "realized_pnl", "realized_pnl_excl_fees", "trade_fee"):
            out[k] = out[k] if out[k] is not None else _ZERO
        out["liquidity_role"] = out["liquidity_role"] or "taker"
        return out


def _book_levels(
    sim: DeriveSimulator, name: str
) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """The simulator's book of `name` (the market's and the clients' orders) as (price, amount)
    levels, best first, per side."""
    book = sim.book(name)
    return book.levels(Side.BUY), book.levels(Side.SELL)


def _keccak_hex(text: str) -> str:
    from eth_hash.auto import keccak

    digest: bytes = keccak(text.encode())
    return "0x" + digest.hex()


def register(table: MutableMapping[str, Handler], error: Callable[..., Exception]) -> None:
    """Add this module's methods to the simulator's dispatch table `table` (method name ->
    handler(sim, params, peer, account, after)); `error(code, message, data)` builds the
    simulator's JSON-RPC error. `public/get_ticker` is wrapped: the simulator's answer plus the
    fields above it lacks."""
    m = _Methods(table, error)
    table.update(
        {
            "private/get_account": m.get_account,
            "private/session_keys": m.session_keys,
            "private/get_subaccount": m.get_subaccount,
            "private/get_collaterals": m.get_collaterals,
            "private/get_all_portfolios": m.get_all_portfolios,
            "public/get_all_instruments": m.get_all_instruments,
            "public/get_tickers": m.get_tickers,
            "public/get_ticker": m.get_ticker,
            "public/get_trade_history": m.get_trade_history,
        }
    )
