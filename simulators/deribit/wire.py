"""The simulator's own encoding of Deribit's JSON-RPC frames (VENUES.md §1.2, §1.6, §1.7), with
the field sets and key order of the real captures (`tests/fixtures/deribit`,
`/work/shared/fixtures/deribit`). Numbers go out as JSON numbers (Deribit writes floats: `10.0`,
`9.21e4`), from the simulator's exact Decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import orjson

__all__ = [
    "NOTE_PREFIX",
    "grouped_levels",
    "notification",
    "notification_prefix",
    "num",
    "portfolio",
    "response",
]

NOTE_PREFIX: Final = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
_SUFFIX: Final = b"}}"
# The heads of notifications by channel: channels are few and reused, their prefixes are cached.
_PREFIXES: dict[str, bytes] = {}


def num(x: Decimal | int | float) -> float:
    """A Deribit number on the wire (a JSON float)."""
    return float(x)


def notification_prefix(channel: str) -> bytes:
    prefix = _PREFIXES.get(channel)
    if prefix is None:
        if len(_PREFIXES) > 100_000:  # a hostile client's made-up channels are never kept
            _PREFIXES.clear()
        prefix = _PREFIXES[channel] = NOTE_PREFIX + orjson.dumps(channel)[1:-1] + b'","data":'
    return prefix


def notification(channel: str, data: Any | bytes) -> bytes:
    """`{"jsonrpc":"2.0","method":"subscription","params":{"channel":…,"data":…}}` (§1.2);
    `data` may come already encoded (one encoding for every subscriber)."""
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return notification_prefix(channel) + body + _SUFFIX


def response(rid: Any, us_out: int, *, result: Any = None, error: dict[str, Any] | None = None) -> bytes:
    """A JSON-RPC answer with Deribit's timing fields (§1.2). `rid` None: an answer to a request
    whose id could not be read (Deribit then sends no `id`, e.g. the -32600 refusal of a frame
    too large)."""
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if rid is not None:
        body["id"] = rid
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    body.update(usIn=us_out - 150, usOut=us_out, usDiff=150, testnet=True)
    return orjson.dumps(body)


def grouped_levels(
    levels: list[tuple[Decimal, Decimal]], group: Decimal | None, *, bids: bool, depth: int
) -> list[list[float]]:
    """A side of `book.{instrument}.{group}.{depth}.{interval}` (§1.6): `[price, amount]` pairs,
    best first, prices grouped down (bids) or up (asks) to a multiple of `group` (None: `none`)."""
    out: dict[Decimal, Decimal] = {}
    for price, amount in levels:
        if group is not None:
            steps = price / group
            whole = steps.to_integral_value(rounding="ROUND_FLOOR" if bids else "ROUND_CEILING")
            price = whole * group
        if price not in out and len(out) >= depth:
            break
        out[price] = out.get(price, Decimal(0)) + amount
    return [[num(p), num(a)] for p, a in out.items()]


def portfolio(currency: str, balance: Decimal, *, upl: Decimal = Decimal(0)) -> dict[str, Any]:
    """`user.portfolio.{currency}` data / the core of `get_account_summary`: the field set of the
    real capture (`ws_portfolio.json`), with the simulator's balance; no margin is modelled."""
    b = num(balance)
    return {
        "total_maintenance_margin_usd": 0.0,
        "projected_initial_margin": 0.0,
        "total_delta_total_usd": 0.0,
        "options_gamma_map": {},
        "options_session_rpl": 0.0,
        "options_session_upl": 0.0,
        "futures_session_rpl": 0.0,
        "fee_balance": 0.0,
        "projected_maintenance_margin": 0.0,
        "session_upl": num(upl),
        "projected_delta_total": 0.0,
        "initial_margin": 0.0,
        "options_pl": 0.0,
        "options_vega_map": {},
        "margin_balance": b,
        "balance": b,
        "maintenance_margin": 0.0,
        "total_initial_margin_usd": 0.0,
        "additional_reserve": 0.0,
        "locked_balance": 0.0,
        "options_value": 0.0,
        "options_delta": 0.0,
        "margin_model": "segregated_sm",
        "portfolio_margining_enabled": False,
        "options_gamma": 0.0,
        "available_funds": b,
        "cross_collateral_enabled": False,
        "delta_total": 0.0,
        "options_theta_map": {},
        "spot_reserve": 0.0,
        "total_equity_usd": 0.0,
        "options_theta": 0.0,
        "futures_session_upl": 0.0,
        "delta_total_map": {},
        "session_rpl": 0.0,
        "futures_pl": 0.0,
        "available_withdrawal_funds": b,
        "options_vega": 0.0,
        "equity": b,
        "total_pl": 0.0,
        "currency": currency,
        "total_margin_balance_usd": 0.0,
    }
