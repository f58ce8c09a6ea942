"""`PolymarketDecoder` against the real captured messages (tests/fixtures/polymarket, VENUES.md §2.2
samples) and against hypothesis-generated garbage: every market and user event, REST answers that
teach the registry, book resynchronisation, the trade lifecycle (MATCHED ... CONFIRMED / FAILED),
and the error contract (only `MalformedFrame`, and nothing changed)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tests.support.polymarket_frames import MARKET, TOKEN, T, frame, load, state_of, wire
from tradingd.cli.main import main
from tradingd.connectors.polymarket import PLUGIN, PolymarketSettings
from tradingd.connectors.polymarket.book import summary_hash
from tradingd.connectors.polymarket.codec import PolymarketDecoder, TradeSettlement, TradeStatus
from tradingd.connectors.polymarket.fees import PolymarketFees
from tradingd.connectors.polymarket.instruments import FeeSchedule, Outcomes
from tradingd.engine import (
    BookUpdate,
    Fill,
    FillReversal,
    InstrumentKind,
    Liquidity,
    MalformedFrame,
    MarketEvent,
    OrderState,
    OrderUpdate,
    Side,
    Status,
    StatusKind,
    Ticker,
    Trade,
    event_to_dict,
)
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.venue import Decoder

ORDER_ID = "0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef12"
NVDA_YES = "76043073756653678226373981964075571318267289248134717369284518995922789326425"
NVDA_NO = "31690934263385727664202099278545688007799199447969475608906331829650099442770"
NVDA = "0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1"


@pytest.fixture
def dec() -> PolymarketDecoder:
    return PolymarketDecoder(InstrumentRegistry())


# --------------------------------------------------------------------------- the plugin


def test_the_plugin_builds_a_decoder_that_follows_the_protocol() -> None:
    registry = InstrumentRegistry()
    decoder = PLUGIN.decoder(registry)
    assert isinstance(decoder, Decoder) and isinstance(decoder, PolymarketDecoder)
    assert decoder.registry is registry and decoder.venue == PLUGIN.name == "polymarket"
    assert PLUGIN.Settings is PolymarketSettings and PolymarketSettings().fees == {}
    fees = PLUGIN.fee_model({"default_rate": "0.02"})
    assert isinstance(fees, PolymarketFees) and fees.default_rate == Decimal("0.02")
    with pytest.raises(ValueError, match="unknown fee setting"):
        PLUGIN.fee_model({"nope": 1})


# --------------------------------------------------------------------------- market channel


def test_book_then_price_change_then_trade(dec: PolymarketDecoder) -> None:
    (book,) = dec.decode(frame("ws_market_book_msg.json"), T)
    assert isinstance(book, BookUpdate) and book.sequence is None
    (trade,) = dec.decode(frame("ws_market_last_trade_msg.json"), T + 1)
    assert isinstance(trade, Trade)
    assert (trade.instrument, trade.price, trade.size, trade.side, trade.trade_id) == (
        TOKEN,
        0.51,
        25.0,
        Side.BUY,
        "",
    )
    assert trade.ts_exchange == 1_703_875_202_000 * 1_000_000 and trade.ts_local == T + 1
    # The same message as captured without event_type.
    (again,) = dec.decode(frame("ws_last_trade.json"), T + 2)
    assert isinstance(again, Trade) and again.price == trade.price


def test_best_bid_ask_is_a_ticker(dec: PolymarketDecoder) -> None:
    (t,) = dec.decode(frame("ws_market_best_bid_ask_msg.json"), T)
    assert isinstance(t, Ticker)
    assert (t.bid, t.ask, t.bid_size, t.ask_size, t.mid) == (0.73, 0.77, None, None, 0.75)
    assert t.ts_exchange == 1_766_789_469_958 * 1_000_000
    msg = {**load("ws_market_best_bid_ask_msg.json"), "best_bid": "0", "best_ask": "1"}
    (empty,) = dec.decode(wire(msg), T)
    assert isinstance(empty, Ticker) and (empty.bid, empty.ask) == (None, None)


def test_tick_size_change_updates_the_registry(dec: PolymarketDecoder) -> None:
    dec.decode(frame("gamma_market.json"), T)
    up = "104239898038807136052399800151408521467737075933964991162589336683346093173875"
    inst = dec.registry.get("polymarket", up)
    assert inst is not None and inst.tick_size == Decimal("0.01")
    msg = {
        **load("ws_market_tick_size_msg.json"),
        "asset_id": up,
        "old_tick_size": "0.01",
        "new_tick_size": "0.001",
    }
    (ev,) = dec.decode(wire(msg), T + 1)
    assert isinstance(ev, Status) and ev.status is StatusKind.TICK_SIZE_CHANGE and ev.instrument == up
    assert ev.data == {"market": MARKET, "old_tick_size": 0.01, "new_tick_size": 0.001}
    changed = dec.registry.get("polymarket", up)
    assert changed is not None and changed.tick_size == Decimal("0.001")
    assert changed.min_size == inst.min_size and changed.taker_fee == inst.taker_fee


def test_tick_size_change_fixtures(dec: PolymarketDecoder) -> None:
    for name in ("ws_market_tick_size_msg.json", "ws_tick_size_change.json"):
        (ev,) = dec.decode(frame(name), T)
        assert isinstance(ev, Status) and ev.status is StatusKind.TICK_SIZE_CHANGE
        assert (ev.data["old_tick_size"], ev.data["new_tick_size"]) == (0.1, 0.01)
    with pytest.raises(MalformedFrame, match="unknown tick size"):
        dec.decode(wire({**load("ws_market_tick_size_msg.json"), "new_tick_size": "0.003"}), T)


def test_new_market_learns_its_tokens_without_overwriting(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(frame("ws_market_new_market_msg.json"), T)
    assert isinstance(ev, Status) and ev.status is StatusKind.INSTRUMENT_STATE and ev.instrument == ""
    assert ev.data["event"] == "new_market" and ev.data["assets_ids"] == [NVDA_YES, NVDA_NO]
    assert ev.data["learned"] == 2 and ev.data["tick_size"] == 0.01
    yes = dec.registry.get("polymarket", NVDA_YES)
    assert yes is not None and yes.kind is InstrumentKind.OUTCOME and yes.base == NVDA
    assert (yes.tick_size, yes.min_size, yes.quote, yes.settle) == (
        Decimal("0.01"),
        Decimal(5),
        "pUSD",
        "pUSD",
    )
    outcome = dec.outcomes.get(NVDA_YES)
    assert outcome is not None
    assert (outcome.outcome, outcome.complement, outcome.neg_risk) == ("Yes", NVDA_NO, None)
    # Learned once: a second announcement (or a poorer source) does not replace a definition.
    (again,) = dec.decode(frame("ws_market_new_market_msg.json"), T)
    assert isinstance(again, Status) and again.data["learned"] == 0


def test_market_resolved_pays_the_winner_and_deactivates(dec: PolymarketDecoder) -> None:
    dec.decode(frame("ws_market_new_market_msg.json"), T)
    yes_ev, no_ev = dec.decode(frame("ws_market_resolved_msg.json"), T + 1)
    assert isinstance(yes_ev, Status) and isinstance(no_ev, Status)
    assert (yes_ev.instrument, yes_ev.status, yes_ev.data["payout"]) == (
        NVDA_YES,
        StatusKind.MARKET_RESOLVED,
        1.0,
    )
    assert (no_ev.instrument, no_ev.data["payout"], no_ev.data["winning_outcome"]) == (NVDA_NO, 0.0, "Yes")
    for token in (NVDA_YES, NVDA_NO):
        inst = dec.registry.get("polymarket", token)
        assert inst is not None and not inst.active


def test_array_frames_are_applied_in_order(dec: PolymarketDecoder) -> None:
    book = load("ws_market_book_msg.json")
    other = {**book, "asset_id": "42", "bids": [{"price": "0.3", "size": "1"}]}
    events = dec.decode(wire([book, other]), T)
    assert [e.instrument for e in events] == [TOKEN, "42"]
    assert all(isinstance(e, BookUpdate) and e.snapshot for e in events)
    assert dec.stats.events == 2


def test_a_bad_event_anywhere_in_an_array_changes_nothing(dec: PolymarketDecoder) -> None:
    dec.decode(frame("ws_market_book_msg.json"), T)
    before = state_of(dec)
    good = {**load("ws_market_book_msg.json"), "bids": [{"price": "0.2", "size": "1"}]}
    bad = {**load("ws_market_price_change_msg.json")}
    bad["price_changes"] = [{**bad["price_changes"][0], "size": "-3"}]
    with pytest.raises(MalformedFrame, match="price_change"):
        dec.decode(wire([good, bad]), T + 1)
    assert state_of(dec) == before
    # An unknown event type in an array is counted; the rest is applied.
    events = dec.decode(wire([good, {"event_type": "mystery"}]), T + 2)
    assert len(events) == 1 and dec.last_unknown_channel == "mystery"


def test_control_frames(dec: PolymarketDecoder) -> None:
    for control in (b"PONG", "PONG", b"PONG\n", bytearray(b"PING"), memoryview(b"PONG"), b"[]"):
        assert dec.decode(control, T) == []
    assert dec.stats.control == 6 and dec.stats.malformed == 0
    with pytest.raises(MalformedFrame, match="not JSON"):
        dec.decode(b"PANG", T)


def test_unknown_event_types_are_counted_and_named(dec: PolymarketDecoder) -> None:
    assert dec.decode(b'{"event_type":"rfq_quote","x":1}', T) == []
    assert dec.stats.unknown_channel == 1 and dec.last_unknown_channel == "rfq_quote"
    # A REST answer that is nothing the decoder knows (a POST /order response, §2.3).
    assert dec.decode(b'{"success":true,"orderID":"0x12","errorMsg":null}', T) == []
    assert dec.last_unknown_channel == "an object without event_type"


def test_decode_cli_reads_a_polymarket_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        b"2026-11-24T00:00:00.0000000Z " + frame("ws_market_book_msg.json"),
        b"2026-11-24T00:00:00.5000000Z PONG",
        frame("ws_market_best_bid_ask_msg.json"),
        b'{"event_type":"mystery"}',
        b"{broken",
        frame("ws_user_order_msg.json"),
    ]
    path = tmp_path / "pm.rec"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["decode", "--venue", "polymarket", str(path)]) == 1
    out, err = capsys.readouterr()
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events] == ["book", "ticker", "order"]
    assert events[0]["ts_local"] == 1_795_478_400_000_000_000 and events[0]["best_bid"] == 0.5
    assert events[2]["status"] == "open" and events[2]["size"] == 100.0
    assert "line 4: unknown channel 'mystery'" in err
    assert "line 5: malformed frame" in err


# --------------------------------------------------------------------------- REST answers


def test_gamma_market_teaches_the_registry(dec: PolymarketDecoder) -> None:
    assert dec.decode(frame("gamma_market.json"), T) == []
    assert dec.stats.control == 1 and len(dec.registry) == 2
    up = dec.registry.get(
        "polymarket", "104239898038807136052399800151408521467737075933964991162589336683346093173875"
    )
    assert up is not None
    assert (up.tick_size, up.min_size, up.active, up.base) == (
        Decimal("0.01"),
        Decimal(5),
        True,
        "0x78443f961b9a65869dcb39359de9960165c7e5cbad0904eac7f29cd77872a63b",
    )
    # feesEnabled, but this capture has no feeSchedule: the rate is unknown, not zero.
    assert up.taker_fee is None
    outcome = dec.outcomes.get(up.symbol)
    assert outcome is not None and (outcome.outcome, outcome.neg_risk, outcome.index) == ("Up", False, 0)


def test_gamma_fee_schedule_and_closed_markets(dec: PolymarketDecoder) -> None:
    dec.decode(frame("gamma_market_sports_market_money_line.json"), T)
    faze = "89972346417086440659189114668296975440208562769200022591480064439842896371398"
    inst = dec.registry.get("polymarket", faze)
    assert inst is not None and not inst.active  # closed
    assert (inst.tick_size, inst.taker_fee, inst.maker_fee) == (Decimal("0.001"), Decimal("0.03"), Decimal(0))
    outcome = dec.outcomes.get(faze)
    assert outcome is not None
    assert outcome.fees == FeeSchedule(rate="0.03", exponent=1, rebate_rate="0.25", taker_only=True)
    assert outcome.outcome == "FaZe"
    # Legacy markets without a tick size are skipped and counted.
    dec.decode(frame("gamma_market_closed_nonbinary_legacy.json"), T)
    assert dec.stats.skipped_instruments == 1


def test_gamma_event_makes_its_markets_neg_risk(dec: PolymarketDecoder) -> None:
    dec.decode(frame("gamma_event.json"), T)
    event = load("gamma_event.json")[0]
    tokens = [t for m in event["markets"] for t in orjson.loads(m["clobTokenIds"])]
    assert len(tokens) == 2 * len(event["markets"]) and len(dec.registry) == len(tokens)
    for token in tokens:
        outcome = dec.outcomes.get(token)
        assert outcome is not None and outcome.neg_risk is True
        assert outcome.neg_risk_market_id == event["negRiskMarketID"]


def test_clob_market_objects_and_pages(dec: PolymarketDecoder) -> None:
    dec.decode(frame("clob_market_closed_binary_accepting_true.json"), T)
    yes = dec.registry.get(
        "polymarket", "22978793223071892222859460592277435458011604214087068523744633723809814935807"
    )
    assert yes is not None and not yes.active  # closed, though accepting orders
    assert (yes.tick_size, yes.min_size, yes.taker_fee) == (Decimal("0.01"), Decimal(5), None)
    page = {
        "data": [load("clob_market_closed_binary_accepting_false.json"), {"bad": 1}],
        "next_cursor": "LTE=",
    }
    assert dec.learn_markets(wire(page)) == 2  # the market's two tokens; the other item is skipped
    assert dec.stats.skipped_instruments == 1
    no = dec.registry.get(
        "polymarket", "89711174926330519158043401581181146613785179104141808554061413232025882707365"
    )
    assert no is not None and no.tick_size == Decimal("0.001")
    page["data"] = [load("clob_market_closed_binary_accepting_true.json")]
    assert dec.learn_markets(page) == 2
    assert dec.learn_markets(frame("gamma_event.json")) == 2 * len(load("gamma_event.json")[0]["markets"])
    with pytest.raises(MalformedFrame, match="markets answer"):
        dec.learn_markets(b"{not json")


def test_rest_book_with_hash_and_market_fields(dec: PolymarketDecoder) -> None:
    body: dict[str, Any] = {
        "market": NVDA,
        "asset_id": NVDA_YES,
        "timestamp": "1728799418260",
        "hash": "",
        "bids": [{"price": "0.01", "size": "1000"}, {"price": "0.1", "size": "125"}],
        "asks": [{"price": "0.98", "size": "5000"}, {"price": "0.14", "size": "705"}],
        "min_order_size": "5",
        "tick_size": "0.001",
        "neg_risk": True,
        "last_trade_price": "0.12",
    }
    body["hash"] = summary_hash(body)
    tampered = {**body, "bids": [{"price": "0.01", "size": "1001"}, body["bids"][1]]}
    before = state_of(dec)
    with pytest.raises(MalformedFrame, match="does not match its content"):
        dec.decode(wire(tampered), T)
    assert state_of(dec) == before
    (ev,) = dec.decode(wire(body), T)
    assert isinstance(ev, BookUpdate) and ev.snapshot and (ev.best_bid, ev.best_ask) == (0.1, 0.14)
    inst = dec.registry.get("polymarket", NVDA_YES)
    assert inst is not None and (inst.tick_size, inst.min_size, inst.base) == (
        Decimal("0.001"),
        Decimal(5),
        NVDA,
    )
    outcome = dec.outcomes.get(NVDA_YES)
    assert outcome is not None and outcome.neg_risk is True
    # A later answer updates the tick, keeps what it does not say.
    body2 = {**body, "tick_size": "0.01", "min_order_size": "15"}
    body2["hash"] = summary_hash(body2)
    dec.decode(wire(body2), T)
    inst = dec.registry.get("polymarket", NVDA_YES)
    assert inst is not None and (inst.tick_size, inst.min_size) == (Decimal("0.01"), Decimal(15))
    lenient = PolymarketDecoder(InstrumentRegistry(), verify_hashes=False)
    assert len(lenient.decode(wire(tampered), T)) == 1


def test_a_resnapshot_revalidates_a_gapped_book(dec: PolymarketDecoder) -> None:
    dec.decode(frame("ws_market_book_msg.json"), T)
    (gap,) = dec.decode(frame("ws_market_price_change_msg.json"), T + 1)
    assert isinstance(gap, Status) and gap.status is StatusKind.BOOK_GAP
    resync, snap = dec.decode(
        frame("clob_book_response.json").replace(b"12345678901234567890", TOKEN.encode()), T + 2
    )
    assert isinstance(resync, Status) and resync.status is StatusKind.BOOK_RESYNC
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.best_ask == 0.51
    book = dec.book(TOKEN)
    assert book is not None and book.valid
    dec.invalidate_books()
    assert not book.valid


# --------------------------------------------------------------------------- user channel: orders


@pytest.mark.parametrize(
    ("name", "status", "filled", "reason"),
    [
        ("ws_user_order_msg.json", OrderState.OPEN, "0", None),
        ("ws_user_order_placement.json", OrderState.OPEN, "0", None),
        ("ws_user_order_update.json", OrderState.PARTIALLY_FILLED, "25", None),
        ("ws_user_order_matched.json", OrderState.FILLED, "100", None),
        ("ws_user_order_cancellation.json", OrderState.CANCELLED, "0", "cancelled"),
        ("ws_user_order_venue_cancel.json", OrderState.CANCELLED, "0", "cancelled by the venue: INVALID"),
        ("http_open_order.json", OrderState.PARTIALLY_FILLED, "25", None),
    ],
)
def test_order_events(
    dec: PolymarketDecoder, name: str, status: OrderState, filled: str, reason: str | None
) -> None:
    (ev,) = dec.decode(frame(name), T)
    assert isinstance(ev, OrderUpdate)
    assert (ev.status, ev.filled_size, ev.reason) == (status, Decimal(filled), reason)
    assert ev.side is Side.BUY and ev.ts_local == T and ev.client_order_id is None and ev.strategy is None
    assert ev.price == Decimal("0.5") or name == "ws_user_order_venue_cancel.json"


def test_order_event_fields(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(frame("ws_user_order_msg.json"), T)
    assert isinstance(ev, OrderUpdate)
    assert (ev.order_id, ev.instrument, ev.price, ev.size) == (
        ORDER_ID,
        TOKEN,
        Decimal("0.5"),
        Decimal("100.0"),
    )
    assert ev.ts_exchange == 1_703_875_200_001 * 1_000_000
    d = event_to_dict(ev)
    assert d["type"] == "order" and d["status"] == "open" and d["filled_size"] == 0.0


def test_killed_fok_order(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode(frame("ws_user_order_fok_killed.json"), T)
    assert isinstance(ev, OrderUpdate) and ev.status is OrderState.CANCELLED
    assert ev.filled_size == 0  # size_matched: ""
    assert ev.reason == "order couldn't be fully filled. FOK orders are fully filled or killed."


def test_order_timestamps_in_seconds_are_understood(dec: PolymarketDecoder) -> None:
    # The PM-DOCS order sample (§2.2) has seconds where captures have ms.
    msg = {**load("ws_user_order_msg.json"), "timestamp": "1672290687"}
    (ev,) = dec.decode(wire(msg), T)
    assert ev.ts_exchange == 1_672_290_687 * 1_000_000_000


def test_open_orders_page(dec: PolymarketDecoder) -> None:
    events = dec.decode(frame("http_open_orders_page.json"), T)
    assert len(events) == len(load("http_open_orders_page.json")["data"])
    assert all(isinstance(e, OrderUpdate) for e in events)


# --------------------------------------------------------------------------- user channel: trades


def trade_msg(status: str, **over: Any) -> bytes:
    return wire({**load("ws_user_trade_msg.json"), "status": status, **over})


def test_trade_lifecycle_confirmed(dec: PolymarketDecoder) -> None:
    fill, matched = dec.decode(trade_msg("MATCHED"), T)
    assert isinstance(fill, Fill) and isinstance(matched, TradeSettlement)
    assert (fill.order_id, fill.trade_id, fill.side, fill.price, fill.size) == (
        ORDER_ID,
        "trade-0xabcdef1234",
        Side.BUY,
        Decimal("0.5"),
        Decimal("25.0"),
    )
    assert (fill.liquidity, fill.fee, fill.fee_currency, fill.ts_local) == (
        Liquidity.TAKER,
        Decimal(0),
        "pUSD",
        T,
    )
    assert (matched.status, matched.fill_reported, matched.size) == (
        TradeStatus.MATCHED,
        True,
        Decimal("25.0"),
    )
    for status in ("MINED", "RETRYING", "MINED", "CONFIRMED"):
        (settlement,) = dec.decode(trade_msg(status), T + 1)
        assert isinstance(settlement, TradeSettlement) and settlement.status is TradeStatus[status]
        assert settlement.fill_reported
    assert dec.failed_fills == 0
    d = event_to_dict(settlement)
    assert d["type"] == "settlement" and d["status"] == "confirmed" and d["trade_id"] == "trade-0xabcdef1234"


def test_trade_that_fails_after_its_fill(dec: PolymarketDecoder) -> None:
    fill, _ = dec.decode(trade_msg("MATCHED"), T)
    (retry,) = dec.decode(trade_msg("RETRYING"), T + 1)
    assert isinstance(retry, TradeSettlement) and retry.status is TradeStatus.RETRYING
    reversal, failed = dec.decode(trade_msg("FAILED", transaction_hash="0xdead"), T + 2)
    assert isinstance(failed, TradeSettlement)
    assert (failed.status, failed.fill_reported, failed.transaction_hash) == (
        TradeStatus.FAILED,
        True,
        "0xdead",
    )
    # The engine's undoing of that very fill: same trade, order, terms and fee.
    assert isinstance(reversal, FillReversal) and isinstance(fill, Fill)
    assert (reversal.order_id, reversal.trade_id, reversal.side, reversal.price, reversal.size) == (
        fill.order_id,
        fill.trade_id,
        fill.side,
        fill.price,
        fill.size,
    )
    assert (reversal.fee, reversal.fee_currency, reversal.ts_local) == (fill.fee, fill.fee_currency, T + 2)
    assert reversal.reason == "trade failed on chain (transaction 0xdead)"
    assert event_to_dict(reversal)["type"] == "fill_reversal"
    # A repeated FAILED report reverses nothing more.
    (again,) = dec.decode(trade_msg("FAILED"), T + 3)
    assert isinstance(again, TradeSettlement) and again.fill_reported
    assert dec.failed_fills == 1


def test_trade_first_seen_failed_never_fills(dec: PolymarketDecoder) -> None:
    (failed,) = dec.decode(trade_msg("FAILED"), T)
    assert isinstance(failed, TradeSettlement) and not failed.fill_reported
    (later,) = dec.decode(trade_msg("CONFIRMED"), T + 1)  # a late, out-of-order report: no fill
    assert isinstance(later, TradeSettlement) and not later.fill_reported
    assert dec.failed_fills == 0


def test_trade_first_seen_confirmed_fills_once(dec: PolymarketDecoder) -> None:
    fill, settlement = dec.decode(frame("ws_user_trade.json"), T)  # captured without event_type
    assert isinstance(fill, Fill) and isinstance(settlement, TradeSettlement)
    assert settlement.status is TradeStatus.CONFIRMED
    assert [type(e) for e in dec.decode(frame("ws_user_trade_msg.json"), T)] == [TradeSettlement]


def test_maker_trade_fills_our_maker_orders_only() -> None:
    dec = PolymarketDecoder(InstrumentRegistry(), api_key="me")
    msg = load("http_trade_report.json")
    msg["trader_side"] = "MAKER"
    msg["owner"] = "me"
    msg["maker_orders"][1]["owner"] = "me"
    # One of our maker orders without a side: on the same token, the other side of the taker.
    del msg["maker_orders"][1]["side"]
    events = dec.decode(wire(msg), T)
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 1
    (fill,) = fills
    assert (fill.order_id, fill.size, fill.side, fill.liquidity) == (
        msg["maker_orders"][1]["order_id"],
        Decimal("5.0000"),
        Side.SELL,
        Liquidity.MAKER,
    )
    # On the complementary token (a mint), a maker buys like the taker.
    msg2 = copy.deepcopy(msg)
    msg2["id"] = "trade-2"
    msg2["maker_orders"][1]["asset_id"] = "999"
    (fill2,) = [e for e in dec.decode(wire(msg2), T) if isinstance(e, Fill)]
    assert (fill2.instrument, fill2.side) == ("999", Side.BUY)
    # A maker trade none of whose maker orders is ours cannot be attributed: loud, not silent.
    msg3 = {**msg, "id": "trade-3", "owner": "someone", "maker_orders": msg["maker_orders"][:1]}
    with pytest.raises(MalformedFrame, match="none of its maker orders"):
        PolymarketDecoder(InstrumentRegistry()).decode(wire(msg3), T)


def test_taker_fee_follows_the_markets_schedule() -> None:
    outcomes = Outcomes()
    dec = PolymarketDecoder(InstrumentRegistry(), outcomes)
    dec.decode(frame("gamma_market_sports_market_money_line.json"), T)
    faze = "89972346417086440659189114668296975440208562769200022591480064439842896371398"
    msg = {
        **load("ws_user_trade_msg.json"),
        "asset_id": faze,
        "price": "0.4",
        "size": "100",
        "fee_rate_bps": "300",
    }
    fill, _ = dec.decode(wire({**msg, "status": "MATCHED"}), T)
    assert isinstance(fill, Fill) and fill.fee == Decimal("0.72")  # 100 x 0.03 x 0.4 x 0.6
    # `fee_rate_bps` "0" does not make a fee-bearing market's taker fill free (fees.py).
    zero = {**msg, "id": "t2", "fee_rate_bps": "0", "status": "MATCHED"}
    fill, _ = dec.decode(wire(zero), T)
    assert isinstance(fill, Fill) and fill.fee == Decimal("0.72")


def test_a_v2_taker_fill_pays_its_schedules_fee_in_pusd_whatever_fee_rate_bps_says() -> None:
    """The live V2 taker fill of py-clob-client-v2 #107 (fees.py): BUY 25 @ 0.13 on a market
    whose schedule is `{"r": 0.05, "e": 1, "to": true}`; its trade record read `fee_rate_bps`
    0, yet the account received all 25 shares and paid 3.25 + 0.14 pUSD. The fill is the 25
    shares, and its fee the schedule's 25 x 0.05 x 0.13 x 0.87 = 0.141375, floored to 0.14137
    pUSD; a taker SELL's fee is pUSD too, and so is a maker's (none: taker only)."""
    gamma = {
        **load("gamma_market_sports_market_money_line.json"),
        "feeSchedule": {"exponent": 1, "rate": 0.05, "rebateRate": 0.25, "takerOnly": True},
    }
    dec = PolymarketDecoder(InstrumentRegistry(), Outcomes())
    dec.decode(wire(gamma), T)
    token = "89972346417086440659189114668296975440208562769200022591480064439842896371398"
    msg = {
        **load("ws_user_trade_msg.json"),
        "asset_id": token,
        "price": "0.13",
        "size": "25",
        "fee_rate_bps": "0",
        "status": "CONFIRMED",
    }
    (fill, _) = dec.decode(wire(msg), T)
    assert isinstance(fill, Fill)
    assert (fill.side, fill.size, fill.fee, fill.fee_currency, fill.liquidity) == (
        Side.BUY,
        Decimal(25),
        Decimal("0.14137"),
        "pUSD",
        Liquidity.TAKER,
    )
    (sold, _) = dec.decode(wire({**msg, "id": "t-sell", "side": "SELL"}), T)
    assert isinstance(sold, Fill)
    assert (sold.side, sold.size, sold.fee, sold.fee_currency) == (
        Side.SELL,
        Decimal(25),
        Decimal("0.14137"),
        "pUSD",
    )
    # A market without fees (`feesEnabled: false`) charges nothing.
    free = {**gamma, "feesEnabled": False, "feeSchedule": None}
    dec2 = PolymarketDecoder(InstrumentRegistry(), Outcomes())
    dec2.decode(wire(free), T)
    (gratis, _) = dec2.decode(wire(msg), T)
    assert isinstance(gratis, Fill) and gratis.fee == 0


def test_unknown_trade_status_is_malformed(dec: PolymarketDecoder) -> None:
    before = state_of(dec)
    with pytest.raises(MalformedFrame, match="unknown status 'SETTLED'"):
        dec.decode(trade_msg("SETTLED"), T)
    assert state_of(dec) == before


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"size": "0"}, "trade size: a fill's size must be above 0"),
        ({"size": ""}, "trade size: a fill's size must be above 0"),  # "" reads as 0
        ({"id": ""}, "trade: no id"),
    ],
)
def test_a_trade_that_is_no_fill_of_ours_is_malformed(dec: PolymarketDecoder, change: Any, why: str) -> None:
    # A fill of size 0 divided its order's average price by zero in the engine; one without an id
    # was booked again by every reconciliation (the trade id is what books a fill once).
    before = state_of(dec)
    with pytest.raises(MalformedFrame, match=why):
        dec.decode(trade_msg("MATCHED", **change), T)
    assert state_of(dec) == before


def test_a_maker_fill_of_nothing_is_malformed() -> None:
    dec = PolymarketDecoder(InstrumentRegistry(), api_key="me")
    msg = load("http_trade_report.json")
    msg["trader_side"] = "MAKER"
    msg["maker_orders"] = [{**msg["maker_orders"][0], "owner": "me", "matched_amount": "0"}]
    with pytest.raises(MalformedFrame, match="maker order matched_amount: a fill's size must be above 0"):
        dec.decode(wire(msg), T)
    assert dec._trades == {}


@pytest.mark.parametrize("winner", ["", "42", NVDA.upper()])
def test_a_resolution_whose_winner_is_none_of_its_tokens_settles_nothing(
    dec: PolymarketDecoder, winner: str
) -> None:
    # Each token settles at the payout the event names: a winner that is not one of them made
    # every token pay 0, and the engine closed every position of ours in the market at 0.
    dec.decode(frame("ws_market_new_market_msg.json"), T)
    before = state_of(dec)
    with pytest.raises(MalformedFrame, match="is not one of its assets_ids"):
        dec.decode(wire({**load("ws_market_resolved_msg.json"), "winning_asset_id": winner}), T + 1)
    assert state_of(dec) == before  # the tokens still trade (active)


# --------------------------------------------------------------------------- the error contract

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
NUMBERS = (
    st.sampled_from(["0.5", "0.51", ".5", "0", "1", "-1", "2", "0.00005", "", "x", "1e3", "nan"])
    | JSON_SCALARS
)
LEVEL = st.fixed_dictionaries({}, optional={"price": NUMBERS, "size": NUMBERS})
FIELDS = {
    "event_type": st.sampled_from(
        ["book", "price_change", "tick_size_change", "last_trade_price", "best_bid_ask", "new_market",
         "market_resolved", "order", "trade", "other"]
    ) | JSON_SCALARS,
    "asset_id": st.sampled_from([TOKEN, "42"]) | JSON_SCALARS,
    "market": st.just(MARKET) | JSON_SCALARS,
    "bids": st.lists(LEVEL, max_size=3) | JSON,
    "asks": st.lists(LEVEL, max_size=3) | JSON,
    "price_changes": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "asset_id": st.sampled_from([TOKEN, "42"]),
                "price": NUMBERS,
                "size": NUMBERS,
                "side": st.sampled_from(["BUY", "SELL", "buy"]),
                "best_bid": NUMBERS,
                "best_ask": NUMBERS,
                "hash": JSON_SCALARS,
            },
        ),
        max_size=3,
    )
    | JSON,
    "price": NUMBERS,
    "size": NUMBERS,
    "side": st.sampled_from(["BUY", "SELL"]) | JSON_SCALARS,
    "new_tick_size": NUMBERS,
    "timestamp": st.sampled_from(["1703875200000", "", "x"]) | JSON_SCALARS,
    "status": st.sampled_from(["MATCHED", "FAILED", "LIVE", "CANCELED"]) | JSON_SCALARS,
    "type": st.sampled_from(["PLACEMENT", "UPDATE", "CANCELLATION", "TRADE"]) | JSON_SCALARS,
    "id": st.sampled_from(["t1", "o1"]) | JSON_SCALARS,
    "original_size": NUMBERS,
    "size_matched": NUMBERS,
    "taker_order_id": st.just(ORDER_ID) | JSON_SCALARS,
    "assets_ids": st.lists(st.sampled_from([TOKEN, "42"]), max_size=2) | JSON,
    "winning_asset_id": st.just(TOKEN) | JSON_SCALARS,
    "clobTokenIds": st.just('["1", "2"]') | JSON_SCALARS,
    "orderPriceMinTickSize": NUMBERS,
    "conditionId": st.just(MARKET) | JSON_SCALARS,
}  # fmt: skip
MESSAGES = st.fixed_dictionaries({}, optional=FIELDS) | JSON
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("CODEC_EXAMPLES", 0)) or examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_decode(dec: PolymarketDecoder, raw: bytes) -> None:
    """Decode `raw`: either events, or `MalformedFrame` with every piece of state unchanged."""
    before = state_of(dec)
    frames, malformed = dec.stats.frames, dec.stats.malformed
    error: MalformedFrame | None = None
    try:
        events = dec.decode(raw, T)
    except MalformedFrame as exc:
        error = exc
    if error is not None:
        assert error.venue == "polymarket"
        assert state_of(dec) == before
        assert dec.stats.malformed == malformed + 1
    else:
        assert isinstance(events, list) and all(isinstance(e, MarketEvent) for e in events)
        assert dec.stats.malformed == malformed
        for e in events:
            orjson.dumps(event_to_dict(e), default=float)  # the JSON contract holds
    assert dec.stats.frames == frames + 1
    for book in dec.books().values():
        assert book.best_bid_ticks == (max(book.bids) if book.bids else None)
        assert book.best_ask_ticks == (min(book.asks) if book.asks else None)


def seeded() -> PolymarketDecoder:
    dec = PolymarketDecoder(InstrumentRegistry())
    dec.decode(frame("ws_market_book_msg.json"), T)
    dec.decode(frame("gamma_market.json"), T)
    return dec


@HYPOTHESIS
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_malformed_frame(raw: bytes) -> None:
    check_decode(seeded(), raw)


@HYPOTHESIS
@given(msgs=st.lists(MESSAGES | st.lists(MESSAGES, max_size=3), min_size=1, max_size=4))
def test_arbitrary_messages_never_break_the_decoder(msgs: list[Any]) -> None:
    dec = seeded()
    for msg in msgs:
        # The stdlib encoder: hypothesis draws integers beyond what orjson writes.
        check_decode(dec, json.dumps(msg).encode())


def test_decode_message_takes_a_parsed_message(dec: PolymarketDecoder) -> None:
    (ev,) = dec.decode_message(load("ws_market_book_msg.json"), T)
    assert isinstance(ev, BookUpdate)
    with pytest.raises(MalformedFrame, match="not a JSON message"):
        dec.decode_message({"x": object()}, T)
    assert dec.stats.malformed == 1 and dec.stats.frames == 2


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: m.update(bids=None), "needs bids and asks"),
        (lambda m: m["bids"].append({"price": "1.5", "size": "1"}), "book"),
        (lambda m: m["bids"].append({"price": "0.5", "size": "abc"}), "book"),
        (lambda m: m.update(timestamp="soon"), "book"),
        (lambda m: m.pop("asset_id"), "asset_id"),
    ],
)
def test_malformed_books_are_named(dec: PolymarketDecoder, mutate: Any, match: str) -> None:
    msg = load("ws_market_book_msg.json")
    mutate(msg)
    with pytest.raises(MalformedFrame, match=match):
        dec.decode(wire(msg), T)
    assert dec.books() == {}


def test_the_benchmark_runs() -> None:
    """Not timed here, only kept runnable: a renamed attribute must not break it."""
    root = Path(__file__).resolve().parent.parent.parent.parent
    r = subprocess.run(
        [sys.executable, str(root / "bench" / "bench_polymarket.py"), "--frames", "300", "--repeat", "1",
         "--replay-hours", "0.01"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for line in ("price_change (2 tokens)", "changes/s", "orders/s", "replay:"):
        assert line in r.stdout
