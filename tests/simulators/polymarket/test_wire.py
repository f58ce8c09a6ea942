"""The simulator's JSON (`simulators/polymarket/wire.py`, and what the simulator sends through it)
against real captures (`tests/fixtures/polymarket/`: NautilusTrader's live `nt_py_*` messages and the
captured REST answers) and against py-clob-client-v2's book hash."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from py_clob_client_v2.utilities import (  # type: ignore[import-untyped]
    generate_orderbook_summary_hash,
    parse_raw_orderbook_summary,
)

from tests.support.sim_clock import fixed_clock
from tradingd.simulators.polymarket import wire
from tradingd.simulators.polymarket.simulator import PolymarketSimulator

FIXTURES = Path(__file__).parents[2] / "fixtures" / "polymarket"
D = Decimal


def capture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def rest_order(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": "0x" + "ab" * 32,
        "status": "LIVE",
        "owner": "3e2c94ca-8124-c4c1-c7ea-be1ea21b71fe",
        "maker_address": "0xa3D82Ed56F4c68d2328Fb8c29e568Ba2cAF7d7c8",
        "market": "0x" + "cd" * 32,
        "asset_id": "123",
        "side": "BUY",
        "original_size": D(5),
        "size_matched": D(0),
        "price": D("0.513"),
        "outcome": "Yes",
        "expiration": 0,
        "order_type": "GTC",
        "associate_trades": [],
        "created_at_s": 1725842520,
    }
    return wire.open_order(**{**fields, **changes})


def test_an_open_order_has_the_captured_fields_and_types() -> None:
    ours = rest_order()
    theirs = capture("http_open_order.json")
    assert set(ours) == set(theirs)
    assert isinstance(ours["created_at"], int) and isinstance(theirs["created_at"], int)
    assert all(isinstance(ours[k], str) for k in ("original_size", "size_matched", "price"))


@pytest.mark.parametrize("kind", ["PLACEMENT", "UPDATE", "CANCELLATION"])
def test_an_order_event_has_the_live_captures_fields_and_types(kind: str) -> None:
    ours = wire.order_event(rest_order(), kind=kind, timestamp_ms=1725842520990)
    theirs = capture("nt_py_order_placement.json")
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if key != "associate_trades":  # null in the capture, a list of trade ids in ours
            assert type(ours[key]) is type(value), key
    assert ours["created_at"] == "1725842520" and len(ours["timestamp"]) == 13  # s and ms, as captured
    assert (ours["event_type"], ours["type"], ours["order_owner"]) == ("order", kind, ours["owner"])


def trade_fields(**changes: Any) -> dict[str, Any]:
    maker = wire.maker_order(
        order_id="0x" + "01" * 32,
        owner="78132bc3-22af-6aa2-79ae-11929f821cae",
        maker_address="0xFfd192468b7a05b38c37C82d09fA941289FaEB23",
        matched_amount=D(10),
        price=D("0.482"),
        asset_id="123",
        outcome="Yes",
        side="SELL",
    )
    fields: dict[str, Any] = {
        "trade_id": "83b5c849-620e-4c23-b63b-2e779c04a6e7",
        "taker_order_id": "0x" + "02" * 32,
        "market": "0x" + "cd" * 32,
        "asset_id": "123",
        "side": "BUY",
        "size": D(10),
        "price": D("0.482"),
        "status": "MATCHED",
        "match_s": 1725868859,
        "last_update_s": 1725868885,
        "outcome": "Yes",
        "owner": "092dab0c-74fa-5ba7-4b67-572daeace198",
        "maker_address": "0x64B7a036c378f9CF8163A5480437CD12Ae14b6A1",
        "transaction_hash": "",
        "maker_orders": [maker],
        "trader_side": "TAKER",
        "timestamp_ms": 1725868885871,
    }
    return {**fields, **changes}


@pytest.mark.parametrize("name", ["nt_py_user_trade1.json", "nt_py_user_trade2.json", "ws_user_trade.json"])
def test_a_trade_event_has_the_live_captures_fields_and_types(name: str) -> None:
    ours = wire.trade(**trade_fields())
    theirs = capture(name)
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    for key, value in theirs.items():
        assert type(ours[key]) is type(value), key
    (mine,) = ours["maker_orders"]
    (first, *_) = theirs["maker_orders"]
    # The REST report's maker orders carry `side` too (`http_trade_report.json`); the live ones may not.
    assert set(first) <= set(mine) <= set(first) | {"side"}
    assert all(type(mine[k]) is type(v) for k, v in first.items())


def test_a_trade_of_the_trades_page_has_the_captured_fields() -> None:
    ours = wire.trade(**trade_fields(), rest=True)
    theirs = capture("http_trade_report.json")
    assert set(ours) == set(theirs)
    assert set(ours["maker_orders"][0]) == set(theirs["maker_orders"][0])


def test_a_last_trade_price_has_the_captured_fields_in_their_order() -> None:
    ours = wire.last_trade_price(
        asset_id="123",
        market="0x" + "cd" * 32,
        price=D("0.491"),
        side="SELL",
        size=D("85.36"),
        timestamp_ms=1,
    )
    assert list(ours) == list(capture("nt_py_last_trade_price.json"))


def test_the_simulators_book_is_hashed_as_the_official_client_hashes_it() -> None:
    sim = PolymarketSimulator(seed=3, clock=fixed_clock())
    for token in list(sim.tokens)[:4]:
        summary = sim.summary(token)
        assert summary["hash"] == generate_orderbook_summary_hash(parse_raw_orderbook_summary(summary))
        # Best levels last, as the captured REST book and the docs' book event show them.
        bids = [D(level["price"]) for level in summary["bids"]]
        asks = [D(level["price"]) for level in summary["asks"]]
        assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
        event = wire.book_event(summary)
        assert set(capture("ws_market_book_msg.json")) <= set(event)
        assert (event["hash"], event["bids"], event["asks"]) == (
            summary["hash"],
            summary["bids"],
            summary["asks"],
        )
    # A change of the book changes its hash.
    summary = sim.summary(token)
    moved = {**summary, "bids": summary["bids"][:-1]}
    assert wire.summary_hash(moved) != summary["hash"]


def test_numbers_are_written_as_the_venue_writes_them() -> None:
    assert [wire.fmt(D(x)) for x in ("0.50", "100.00", "12.340", "-0", "1E+2", "0.0001")] == [
        "0.5",
        "100",
        "12.34",
        "0",
        "100",
        "0.0001",
    ]


def test_the_market_channels_frames_have_the_captured_fields() -> None:
    """What the synthetic market sends (`generator.py`, through `wire.py`), kind by kind, against
    the live captures of each kind."""
    from tradingd.simulators.polymarket.generator import PolymarketFeed

    captured = {
        "price_change": capture("nt_py_price_change_v2.json"),
        "tick_size_change": capture("nt_py_tick_size_change.json"),
        "best_bid_ask": capture("ws_market_best_bid_ask_msg.json"),
        "market_resolved": capture("ws_market_resolved_msg.json"),
        "book": capture("nt_py_book.json"),
        "last_trade_price": capture("nt_py_last_trade_price.json"),
    }
    feed = PolymarketFeed.create(seed=7, start_ns=1_795_000_000 * 10**9)
    seen: dict[str, dict[str, Any]] = {}
    for _, frame in feed.frames(1.0):
        if frame == b"PONG":
            continue
        msg = orjson.loads(frame)
        for event in msg if isinstance(msg, list) else [msg]:
            if "event_type" in event:
                seen.setdefault(event["event_type"], event)
    assert set(captured) <= set(seen)
    for kind, theirs in captured.items():
        ours = seen[kind]
        assert set(ours) == set(theirs), kind
        assert all(type(ours[k]) is type(v) for k, v in theirs.items()), kind
    # Entries as the docs write them (the captures' key order differs; JSON does not care).
    ours_entry = seen["price_change"]["price_changes"][0]
    assert set(ours_entry) == set(captured["price_change"]["price_changes"][0])
