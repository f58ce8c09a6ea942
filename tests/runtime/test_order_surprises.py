"""Issue 13: what a venue reports that our order state machine cannot reach is the venue's word.
It is taken (the order's state, and its journal record, follow the venue), alerted at critical
level with both states and the order's ids, and counted (`venue_overrides`): never raised, so
one odd answer never stops the daemon. A report that goes back (a working state after a final
one, a smaller filled size) is taken only when `verified` (the venue's answer to a question
asked after everything we hold); on the channels it crossed a newer one and is stale."""

from __future__ import annotations

from collections.abc import MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import structlog
from structlog.testing import LogCapture

from tests.support.flows import make_flow
from tests.support.helpers import OPTION, PERP, request
from tradingd.engine import Fill, FillReversal, Liquidity, OrderState, OrderUpdate, Side
from tradingd.engine.model import Order, OrderTracker
from tradingd.engine.store.journal import OrderJournal

S = OrderState


def update(status: OrderState, filled: str = "0", *, ts: int = 2) -> OrderUpdate:
    return OrderUpdate(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id="V1",
        client_order_id="s-bt-1",
        status=status,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal("1"),
        filled_size=Decimal(filled),
    )


def fill(size: str, trade_id: str, *, ts: int = 3) -> Fill:
    return Fill(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id="V1",
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal(size),
        fee=Decimal("0.0003"),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )


def tracker() -> tuple[OrderTracker, LogCapture]:
    capture = LogCapture()
    log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    return OrderTracker(log=log), capture


def alerts(capture: LogCapture, event: str) -> list[MutableMapping[str, Any]]:
    found = [e for e in capture.entries if e["event"] == event]
    assert all(e["log_level"] == "critical" for e in found)
    return found


def reach(t: OrderTracker, state: OrderState) -> None:
    """Take the order `s-bt-1` (size 1) to `state` the ordinary way."""
    t.add(request(), now_ns=0)
    t.apply_update(update(S.OPEN))
    if state is S.PARTIALLY_FILLED:
        t.apply_fill(fill("0.4", "a"))
    elif state is S.PENDING_CANCEL:
        order = t.get("s-bt-1")
        assert order is not None
        order.transition(S.PENDING_CANCEL, now_ns=2)
    elif state.is_final:
        t.apply_update(update(state, ts=3))
    order = t.get("s-bt-1")
    assert order is not None and order.state is state


@pytest.mark.parametrize("ours", [S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_rejected_after_it_worked_is_taken_alerted_and_counted(ours: OrderState) -> None:
    t, capture = tracker()
    reach(t, ours)
    out = t.apply_update(update(S.REJECTED, "0.4" if ours is S.PARTIALLY_FILLED else "0", ts=5))
    order = t.get("s-bt-1")
    assert order is not None and order.state is S.REJECTED and order.updated_ns == 5
    assert [u.status for u in out] == [S.REJECTED]  # the strategy hears it
    assert order not in t.open_orders()
    assert t.stats.venue_overrides == 1
    (alert,) = alerts(capture, "order.venue_state_taken")
    assert (alert["ours"], alert["venue_state"]) == (ours.value, "rejected")
    assert (alert["venue"], alert["client_order_id"], alert["order_id"]) == ("deribit", "s-bt-1", "V1")
    # Said again: a repeat, nothing more.
    assert t.apply_update(update(S.REJECTED, ts=6)) == [] and t.stats.venue_overrides == 1


def test_a_different_final_state_is_the_venues() -> None:
    # We had it cancelled (the cancel's answer); the venue then reports it filled: it traded
    # before the cancel reached it. A venue's final state never changes, so this is no
    # reordering: the venue's word.
    t, capture = tracker()
    reach(t, S.CANCELLED)
    out = t.apply_update(update(S.FILLED, "1", ts=5))
    order = t.get("s-bt-1")
    assert order is not None and order.state is S.FILLED and order.filled_size == Decimal(1)
    assert [u.status for u in out] == [S.FILLED] and t.stats.venue_overrides == 1
    (alert,) = alerts(capture, "order.venue_state_taken")
    assert (alert["ours"], alert["venue_state"], alert["verified"]) == ("cancelled", "filled", False)


@pytest.mark.parametrize("path", ["apply_update", "apply_update_general"])
@pytest.mark.parametrize("verified", [True, False])
def test_a_final_state_said_again_with_more_filled_is_the_venues(path: str, verified: bool) -> None:
    # We hold it cancelled with nothing filled; the venue (a reconciliation's read, or the
    # channel) says cancelled with 0.5 filled: it traded before the cancel, and we missed it.
    # Not a repeat: the venue's word, taken and alerted with both filled sizes.
    t, capture = tracker()
    reach(t, S.CANCELLED)
    apply = getattr(t, path)
    out = apply(update(S.CANCELLED, "0.5", ts=4), verified=verified)
    order = t.get("s-bt-1")
    assert order is not None and order.state is S.CANCELLED and order.filled_size == Decimal("0.5")
    assert [(u.status, u.filled_size) for u in out] == [(S.CANCELLED, Decimal("0.5"))]
    assert t.stats.venue_overrides == 1 and t.stats.stale_updates == 0
    (alert,) = alerts(capture, "order.venue_state_taken")
    assert (alert["ours"], alert["ours_filled"], alert["venue_state"], alert["filled"]) == (
        "cancelled",
        "0",
        "cancelled",
        "0.5",
    )
    # Said again as we now hold it: a repeat (stale), nothing more.
    assert apply(update(S.CANCELLED, "0.5", ts=5), verified=verified) == []
    assert t.stats.stale_updates == 1 and t.stats.venue_overrides == 1
    # Less filled: on the channels an older report (stale); asked, the venue's word, alerted once.
    assert t.apply_update(update(S.CANCELLED, "0.2", ts=6)) == []
    assert t.stats.stale_updates == 2 and t.stats.venue_overrides == 1
    out = apply(update(S.CANCELLED, "0.2", ts=7), verified=True)
    assert [(u.status, u.filled_size) for u in out] == [(S.CANCELLED, Decimal("0.2"))]
    assert order.state is S.CANCELLED and order.updated_ns == 7
    assert t.stats.venue_overrides == 2 and t.stats.stale_updates == 2
    assert len(alerts(capture, "order.venue_filled_less")) == 1
    assert len(alerts(capture, "order.venue_state_taken")) == 1


def test_a_final_state_said_again_with_more_filled_is_journaled_as_the_venues(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    flow.accept(request(), now_ns=1)
    flow.on_update(update(S.OPEN))
    flow.on_update(update(S.CANCELLED, ts=3))
    delivered = flow.on_update(update(S.CANCELLED, "0.5", ts=4), verified=True)
    assert [(u.status, u.filled_size) for u in delivered] == [(S.CANCELLED, Decimal("0.5"))]
    kinds = [row[0] for row in journal._db.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds[-1] == "venue_override"


def test_a_working_state_after_a_final_one_is_taken_only_when_verified() -> None:
    t, capture = tracker()
    reach(t, S.CANCELLED)
    # On the channels: a report that crossed the cancellation on its way. Stale.
    assert t.apply_update(update(S.OPEN, ts=4)) == []
    assert t.stats.stale_updates == 1 and t.stats.venue_overrides == 0
    # The venue's answer when asked about it (a reconciliation): it still works. Its word wins,
    # and the order is working again (the kill switch and the risk checks count it).
    out = t.apply_update(update(S.OPEN, ts=5), verified=True)
    order = t.get("s-bt-1")
    assert order is not None and order.state is S.OPEN and [u.status for u in out] == [S.OPEN]
    assert t.open_orders() == [order]
    assert t.stats.venue_overrides == 1
    (alert,) = alerts(capture, "order.venue_state_taken")
    assert (alert["ours"], alert["venue_state"], alert["verified"]) == ("cancelled", "open", True)


def test_a_smaller_filled_size_is_alerted_never_below_the_fills_booked() -> None:
    t, capture = tracker()
    reach(t, S.OPEN)
    t.apply_fill(fill("0.3", "a"))
    t.apply_update(update(S.PARTIALLY_FILLED, "0.6", ts=4))  # the venue counted 0.6 filled
    order = t.get("s-bt-1")
    assert order is not None and order.filled_size == Decimal("0.6") and order.fills_size == Decimal("0.3")
    # On the channels, a smaller figure is an older report: stale.
    assert t.apply_update(update(S.PARTIALLY_FILLED, "0.1", ts=5)) == []
    assert order.filled_size == Decimal("0.6") and t.stats.venue_overrides == 0
    # Asked, the venue says 0.1: taken down to the fills we booked (0.3; only a reversal takes a
    # booked fill out of the positions), and alerted with every figure.
    out = t.apply_update(update(S.PARTIALLY_FILLED, "0.1", ts=6), verified=True)
    assert order.filled_size == Decimal("0.3") and order.state is S.PARTIALLY_FILLED
    assert [u.filled_size for u in out] == [Decimal("0.3")]
    assert t.stats.venue_overrides == 1
    (alert,) = alerts(capture, "order.venue_filled_less")
    assert (alert["ours"], alert["booked"], alert["venue_filled"]) == ("0.6", "0.3", "0.1")


@pytest.mark.parametrize(("size", "state"), [("0.4", S.PARTIALLY_FILLED), ("1", S.FILLED)])
def test_a_fill_on_an_order_we_had_as_rejected_is_the_venues(size: str, state: OrderState) -> None:
    # We took the order for never received (rejected); the venue has it, and it traded.
    t, capture = tracker()
    t.add(request(), now_ns=0)
    order = t.get("s-bt-1")
    assert order is not None
    t.set_order_id(order, "V1")
    order.transition(S.REJECTED, now_ns=1, reason="never_sent")
    events = t.apply_fill(fill(size, "a"))
    assert [type(e).__name__ for e in events] == ["Fill", "OrderUpdate"]
    assert isinstance(events[-1], OrderUpdate)
    assert order.state is state and events[-1].status is state
    assert order.fills_size == Decimal(size) and t.stats.venue_overrides == 1
    assert (order in t.open_orders()) is (state is S.PARTIALLY_FILLED)
    (alert,) = alerts(capture, "order.venue_state_taken")
    assert (alert["ours"], alert["venue_state"]) == ("rejected", state.value)


def test_the_journal_record_follows_the_venues_word(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    order = flow.accept(request(), now_ns=1)
    flow.on_update(update(S.OPEN))
    delivered = flow.on_update(update(S.REJECTED, ts=5))  # never raised out of the flow
    assert [u.status for u in delivered] == [S.REJECTED] and order.state is S.REJECTED
    (restored,) = journal.orders(final_since_ns=0)
    assert restored.state is S.REJECTED
    kinds = [row[0] for row in journal._db.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds[-1] == "venue_override"
    (data,) = journal._db.execute("SELECT data FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    assert orjson.loads(data)["state"] == "rejected"


@pytest.mark.parametrize(
    ("size", "price"),
    [("0", "0.05"), ("-0.4", "0.05"), ("NaN", "0.05"), ("Infinity", "0.05"), ("0.4", "NaN")],
)
def test_a_fill_of_no_size_or_price_is_refused_alerted_never_applied(size: str, price: str) -> None:
    # A venue's absurd execution report (Polymarket's trade `size` "0" passed its decoder): the
    # order's average price divided by zero (decimal.InvalidOperation out of the flow, and out of
    # a reconciliation's catch-up, which does not guard each fill) and the fill's id was kept.
    t, capture = tracker()
    reach(t, S.OPEN)
    order = t.get("s-bt-1")
    assert order is not None
    bad = msgspec.structs.replace(fill("0.4", "z"), size=Decimal(size), price=Decimal(price))
    assert t.apply_fill(bad) == []
    assert order.state is S.OPEN and order.avg_fill_price is None
    assert order.fills_size == order.filled_size == 0
    assert not order.has_fill("z") and t.stats.refused_fills == 1
    (alert,) = alerts(capture, "fill.refused")
    assert (alert["trade_id"], alert["size"], alert["price"]) == ("z", size, price)
    # The flow neither raises nor books it.
    flow = make_flow(None)
    flow.accept(request(), now_ns=1)
    ours = flow.tracker.get("s-bt-1")
    assert ours is not None
    flow.tracker.set_order_id(ours, "V1")
    assert flow.on_fill(bad) is None
    assert flow.position("s", "deribit", OPTION.symbol) == 0 and flow.fills.get("s", 0) == 0


@pytest.mark.parametrize("price", ["-0.05", "0"])
def test_a_combo_fill_at_or_below_zero_is_booked(price: str) -> None:
    # A Deribit combo (future_combo, option_combo: a spread of two legs) trades at 0 and below
    # zero (connectors/deribit/codec.py): the tracker refused every fill at a price <= 0, so a
    # real fill of ours was never booked (review of r11, item 3).
    t, capture = tracker()
    reach(t, S.OPEN)
    order = t.get("s-bt-1")
    assert order is not None
    spread = msgspec.structs.replace(fill("0.4", "c"), price=Decimal(price))
    assert any(isinstance(e, Fill) for e in t.apply_fill(spread))
    assert order.fills_size == Decimal("0.4") and order.avg_fill_price == Decimal(price)
    assert t.stats.refused_fills == 0 and not alerts(capture, "fill.refused")
    flow = make_flow(None)
    flow.accept(request(), now_ns=1)
    ours = flow.tracker.get("s-bt-1")
    assert ours is not None
    flow.tracker.set_order_id(ours, "V1")
    assert flow.on_fill(spread) is not None
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.4") and flow.fills.get("s", 0) == 1


@pytest.mark.parametrize("price", ["-5", "0", "1E-300", "0.25", "0.4999"])
def test_a_fill_at_or_below_zero_on_an_inverse_contract_is_refused_before_anything_is_booked(
    price: str,
) -> None:
    # Below the tick size (BTC-PERPETUAL's 0.5) too: a Deribit fill at 1e-300 was booked, a
    # cost of 1e301 coins, the ledger's equity 9e305 USD (hostile-input review, r13 MEDIUM 1).
    # An inverse contract's cost basis is size / price: at 0 the ledger raised DivisionByZero out
    # of on_fill with the tracker's fill and the position's size already applied (half booked);
    # below 0 it booked a meaningless cost. Refused, counted and alerted, nothing applied
    # (review of r11's fixes, HIGH 1). A linear combo still books (the test above).
    capture = LogCapture()
    flow = make_flow(None)
    flow.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    flow.accept(request(size="10", price="90000", instrument=PERP.symbol), now_ns=1)
    ours = flow.tracker.get("s-bt-1")
    assert ours is not None
    flow.tracker.set_order_id(ours, "V1")
    at = msgspec.structs.replace(fill("10", "z"), instrument=PERP.symbol, price=Decimal(price))
    state = ours.state
    assert flow.on_fill(at) is None
    assert ours.fills_size == 0 and ours.state is state
    assert flow.position("s", "deribit", PERP.symbol) == 0 and flow.fills.get("s", 0) == 0
    assert flow.tracker.stats.refused_fills == 1
    (alert,) = alerts(capture, "fill.refused")
    assert alert["price"] == price and alert["instrument"] == PERP.symbol
    assert alert["tick_size"] == "0.5" and alert["size"] == "10" and alert["trade_id"] == "z"


def test_a_fill_at_the_tick_size_on_an_inverse_contract_is_booked() -> None:
    # The refusal's edge: the finest price the venue can trade is a fill like any other.
    capture = LogCapture()
    flow = make_flow(None)
    flow.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    flow.accept(request(size="10", price="90000", instrument=PERP.symbol), now_ns=1)
    ours = flow.tracker.get("s-bt-1")
    assert ours is not None
    flow.tracker.set_order_id(ours, "V1")
    at = msgspec.structs.replace(fill("10", "z"), instrument=PERP.symbol, price=Decimal("0.5"))
    assert flow.on_fill(at) is not None
    assert flow.position("s", "deribit", PERP.symbol) == 10 and flow.tracker.stats.refused_fills == 0
    assert not alerts(capture, "fill.refused")


def test_a_fill_beyond_the_orders_size_is_booked_and_alerted() -> None:
    # The venue's word (its position moved) but a surprise: it was counted where nobody looks.
    t, capture = tracker()
    reach(t, S.PARTIALLY_FILLED)  # 0.4 of 1
    events = t.apply_fill(fill("0.8", "b"))
    order = t.get("s-bt-1")
    assert order is not None and order.fills_size == Decimal("1.2") and order.state is S.FILLED
    assert any(isinstance(e, Fill) for e in events) and t.stats.overfills == 1
    (alert,) = alerts(capture, "fill.beyond_order_size")
    assert (alert["size"], alert["fills_before"], alert["order_size"]) == ("0.8", "0.4", "1")


# ------------------------------------------- two orders under one venue id (review of r12, 2)


def _two_orders(t: OrderTracker) -> tuple[Order, Order]:
    """`s-bt-1` open as V1 (the ordinary way), and `s-bt-2`, pending, with no venue id yet."""
    reach(t, S.OPEN)
    first = t.get("s-bt-1")
    second = t.add(request(cid="s-bt-2"), now_ns=1)
    assert first is not None and first.order_id == "V1"
    return first, second


def test_a_venue_id_two_working_orders_claim_is_contested_and_a_report_naming_it_alone_names_neither() -> (
    None
):
    """The venue names `s-bt-2` by V1, which `s-bt-1` (working) holds. The id becomes
    contested: alerted (critical, both orders), counted, out of the index, and every report
    naming it alone (by V1 only, as Polymarket's do, or with a client id neither order has) is
    applied to neither and counted. Before (r12), the holder kept V1 in the index: its reports
    naming only V1 went to it, though the venue may have meant the other. Neither order's
    becoming final ends the contest (a late fill naming V1 may be either's), and a third
    claimant joins it."""
    t, capture = tracker()
    first, second = _two_orders(t)
    assert t.set_order_id(second, "V1", source="acknowledged") is False
    assert t.contested("deribit", "V1") and t.find("deribit", order_id="V1") is None
    assert (first.order_id, second.order_id) == ("V1", None) and t.stats.order_id_conflicts == 1
    (alert,) = alerts(capture, "order.venue_id_conflict")
    assert (alert["holder"], alert["client_order_id"], alert["source"]) == (
        "s-bt-1",
        "s-bt-2",
        "acknowledged",
    )
    only_id = msgspec.structs.replace(update(S.FILLED, "1", ts=4), client_order_id=None)
    named_other = msgspec.structs.replace(update(S.OPEN, ts=4), client_order_id="s-bt-7")
    assert t.apply_update(only_id) == [] and t.apply_update(named_other) == []
    assert t.apply_fill(fill("0.5", "x")) == []  # names V1 only
    assert (first.state, first.fills_size, second.state) == (S.OPEN, Decimal(0), S.PENDING_NEW)
    assert t.stats.contested_reports == 3 and t.stats.order_id_conflicts == 1
    assert len([e for e in capture.entries if e["event"] == "order.report_not_applied"]) == 3
    # Both final (their client ids alone name them): still contested.
    t.apply_update(msgspec.structs.replace(update(S.CANCELLED, ts=5), order_id=None))
    t.apply_update(msgspec.structs.replace(update(S.REJECTED, ts=5), order_id=None, client_order_id="s-bt-2"))
    assert first.state.is_final and second.state.is_final
    assert t.apply_fill(fill("0.5", "y")) == [] and t.find("deribit", order_id="V1") is None
    third = t.add(request(cid="s-bt-3"), now_ns=6)
    assert t.set_order_id(third, "V1") is False and third.order_id is None
    assert t.stats.order_id_conflicts == 2 and t.contested("deribit", "V1")


def test_a_report_naming_a_contested_id_with_a_claimants_client_id_is_that_orders(tmp_path: Path) -> None:
    """Deribit's and Derive's reports carry our client order id beside the venue's: one naming
    V1 and a claimant's client id is the venue pairing the two, applied to that order (its state,
    its fills, a cancel's answer), after a restart too. Before, every report naming V1 was
    refused: both orders froze (no fill booked, no cancel taken), and a restart froze them again."""
    t, _ = tracker()
    first, second = _two_orders(t)
    assert t.set_order_id(second, "V1", source="acknowledged") is False
    second_open = msgspec.structs.replace(update(S.OPEN, ts=4), client_order_id="s-bt-2")
    assert t.apply_update(second_open) and second.state is S.OPEN
    second_fill = msgspec.structs.replace(fill("0.5", "B1", ts=4), client_order_id="s-bt-2")
    assert any(isinstance(e, Fill) for e in t.apply_fill(second_fill))
    assert t.apply_update(update(S.CANCELLED, ts=5)) and first.state is S.CANCELLED  # s-bt-1, V1
    assert (first.fills_size, second.fills_size) == (Decimal(0), Decimal("0.5"))
    assert t.stats.contested_reports == 0 and t.contested("deribit", "V1")
    # A restart restoring both working under V1 contests it again; their reports still apply.
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    for cid in ("s-bt-1", "s-bt-2"):
        order = flow.accept(request(cid=cid), now_ns=1)
        flow.tracker._by_venue_id.clear()  # as before r12: nothing refused the second
        assert flow.assign_order_id(order, "V1", source="acknowledged")
    restarted = make_flow(journal)
    restarted.restore(journal, now_ns=2)
    assert restarted.tracker.contested("deribit", "V1")
    assert restarted.on_fill(msgspec.structs.replace(fill("1", "A1"), client_order_id="s-bt-1")) is not None
    assert restarted.position("s", "deribit", OPTION.symbol) == 1 and restarted.unmatched_fills == 0


def test_an_id_computed_before_sending_that_a_working_order_holds_is_refused_uncontested() -> None:
    """`prepare`'s id (`sent=False`): the second order is then not sent, so the venue knows one
    order by V1: the holder keeps it (its fills still booked to it), alerted and counted."""
    t, capture = tracker()
    first, second = _two_orders(t)
    assert t.set_order_id(second, "V1", source="prepare", sent=False) is False
    assert not t.contested("deribit", "V1") and t.find("deribit", order_id="V1") is first
    assert t.stats.order_id_conflicts == 1 and len(alerts(capture, "order.venue_id_conflict")) == 1
    assert any(isinstance(e, Fill) for e in t.apply_fill(fill("0.5", "x")))
    assert first.fills_size == Decimal("0.5") and second.order_id is None
    # The holder final, the id may go to another (the venue reused it), said in the log.
    t.apply_update(update(S.CANCELLED, ts=5))
    assert t.set_order_id(second, "V1") is True and t.find("deribit", order_id="V1") is second
    assert [e["event"] for e in capture.entries if e["event"] == "order.venue_id_reused"] == [
        "order.venue_id_reused"
    ]


def _contested_flow(journal: OrderJournal | None = None) -> tuple[Any, LogCapture, Order, Order]:
    """A flow whose `s-bt-1` is open as V1 and has booked trade T1 (0.5, naming V1 and its
    client id); then the venue names `s-bt-2` V1 too: contested."""
    capture = LogCapture()
    flow = make_flow(journal)
    flow.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    first = flow.accept(request(), now_ns=1)
    flow.on_update(update(S.OPEN))
    assert flow.on_fill(msgspec.structs.replace(fill("0.5", "T1"), client_order_id="s-bt-1")) is not None
    second = flow.accept(request(cid="s-bt-2"), now_ns=1)
    assert not flow.assign_order_id(second, "V1", source="acknowledged")
    assert flow.tracker.contested("deribit", "V1")
    return flow, capture, first, second


def test_a_booked_fill_repeated_on_a_contested_id_is_a_duplicate_not_a_fill_to_book() -> None:
    """T1, booked to `s-bt-1` before V1 was contested, is reported again (a channel's repeat,
    Deribit's catch-up at each reconnect): naming V1 alone, or even the other claimant's client
    id, it is a duplicate (the trade id pins it), never `fill.not_booked`. Before, each repeat
    was alerted and counted as a fill to book: a person following the log booked it twice."""
    flow, capture, first, second = _contested_flow()
    for cid in (None, None, "s-bt-2"):
        assert flow.on_fill(msgspec.structs.replace(fill("0.5", "T1"), client_order_id=cid)) is None
    assert not [e for e in capture.entries if e["event"] in ("fill.not_booked", "fill.unknown_order")]
    assert flow.unmatched_fills == 0 and flow.tracker.stats.duplicate_fills == 3
    assert (first.fills_size, second.fills_size) == (Decimal("0.5"), Decimal(0))
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")


def test_a_fill_not_booked_on_a_contested_id_is_alerted_journaled_and_counted_once(tmp_path: Path) -> None:
    """A new trade naming V1 alone is booked to neither: alerted at critical level with all a
    person needs to book it (fee, liquidity, time, strategy), journaled, counted, once however
    often the venue repeats it. Before, each repeat was alerted and counted again, without the
    fee, liquidity, time or strategy, and nothing was journaled."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow, capture, first, second = _contested_flow(journal)
    for _ in range(3):
        assert flow.on_fill(fill("0.25", "T2", ts=7)) is None
    assert (
        flow.fills_not_booked == 1
        and flow.unmatched_fills == 0
        and first.fills_size == Decimal("0.5")
        and second.fills_size == 0
    )
    (alert,) = alerts(capture, "fill.not_booked")
    terms = ("trade_id", "size", "price", "fee", "fee_currency", "liquidity", "ts_exchange", "strategy")
    expected = ("T2", "0.25", "0.05", "0.0003", "BTC", "maker", 7, "s")
    assert tuple(alert[k] for k in terms) == expected
    assert alert["contested"] == ["s-bt-1", "s-bt-2"]
    (note,) = [e for e in journal.events() if e["kind"] == "fill_not_booked"]
    assert tuple(note[k] for k in terms) == expected and note["order_id"] == "V1"


def test_two_legs_of_one_trade_on_two_contested_ids_are_each_alerted_and_journaled(tmp_path: Path) -> None:
    """One trade can fill two orders of ours (Polymarket's maker legs), each named by its own
    venue id; with both ids contested, each leg is a fill not booked of its own: alerted,
    journaled, counted, never booked later. Before, the memory of trades not booked was keyed by
    the trade alone: the second leg was taken for a repeat of the first (logged at info, no
    alert, no note), and once its contest was settled it would have been booked."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow, capture, _, _ = _contested_flow(journal)
    third = flow.accept(request(cid="s-bt-3"), now_ns=1)
    assert flow.assign_order_id(third, "V2", source="acknowledged")
    fourth = flow.accept(request(cid="s-bt-4"), now_ns=1)
    assert not flow.assign_order_id(fourth, "V2", source="acknowledged")
    legs = [fill("0.25", "T5"), msgspec.structs.replace(fill("0.1", "T5"), order_id="V2")]
    for _ in range(2):
        for leg in legs:
            assert flow.on_fill(leg) is None
    assert flow.fills_not_booked == 2
    assert sorted(a["order_id"] for a in alerts(capture, "fill.not_booked")) == ["V1", "V2"]
    notes = [e for e in journal.events() if e["kind"] == "fill_not_booked"]
    assert sorted(n["order_id"] for n in notes) == ["V1", "V2"]
    assert all(flow.refused_trade(leg) for leg in legs)
    assert not flow.refused_trade(msgspec.structs.replace(fill("0.1", "T5"), order_id="V3"))


def test_a_reversal_on_a_contested_id_goes_to_the_order_that_booked_the_trade(tmp_path: Path) -> None:
    """The venue voids T1, booked to `s-bt-1` before V1 was contested, naming V1 alone: the trade
    id pins it to `s-bt-1`, taken out of its order and position. A reversal of a trade neither
    has is alerted at critical level (`fill.reversal_not_applied`, all its terms), journaled and
    counted with the unmatched fills (shown and watched). Before, both were dropped with an
    error line: the ledger kept a position the venue had voided."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow, capture, first, second = _contested_flow(journal)

    def voided(trade_id: str) -> FillReversal:
        return FillReversal(
            venue="deribit",
            instrument=OPTION.symbol,
            ts_exchange=8,
            ts_local=8,
            order_id="V1",
            trade_id=trade_id,
            side=Side.BUY,
            price=Decimal("0.05"),
            size=Decimal("0.5"),
            fee=Decimal("0.0003"),
            fee_currency="BTC",
            reason="FAILED",
        )

    assert flow.on_reversal(voided("T1")) is not None
    assert first.fills_size == 0 and flow.position("s", "deribit", OPTION.symbol) == 0
    assert flow.unmatched_fills == 0
    assert flow.on_reversal(voided("T9")) is None
    (alert,) = alerts(capture, "fill.reversal_not_applied")
    assert (alert["trade_id"], alert["size"], alert["fee"], alert["ts_exchange"], alert["strategy"]) == (
        "T9",
        "0.5",
        "0.0003",
        8,
        "s",
    )
    assert flow.fills_not_booked == 1 and second.fills_size == 0
    assert [e["trade_id"] for e in journal.events() if e["kind"] == "fill_reversal_not_applied"] == ["T9"]


def test_a_fill_naming_an_order_and_another_working_orders_id_contests_it_and_is_that_orders() -> None:
    """A fill naming `s-bt-2` (no venue id yet) by V1, which `s-bt-1` holds: V1 is contested
    (alerted, counted), and the fill is `s-bt-2`'s, the venue pairing the two (Deribit's fills
    carry both ids). Before, it was booked to neither."""
    capture = LogCapture()
    flow = make_flow(None)
    flow.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    flow.tracker.log = flow.log
    first, second = _two_orders(flow.tracker)
    named = msgspec.structs.replace(fill("0.5", "x"), client_order_id="s-bt-2")
    assert flow.on_fill(named) is not None
    assert flow.tracker.contested("deribit", "V1") and flow.tracker.stats.order_id_conflicts == 1
    assert len(alerts(capture, "order.venue_id_conflict")) == 1
    assert (first.fills_size, second.fills_size) == (Decimal(0), Decimal("0.5"))
    assert flow.unmatched_fills == 0 and not [e for e in capture.entries if e["event"] == "fill.not_booked"]


def _record(cid: str, state: OrderState, *, fills: tuple[tuple[str, Decimal, Decimal], ...] = ()) -> Any:
    from tradingd.engine.model.orders import RestoredOrder

    filled = sum((f[1] for f in fills), Decimal(0))
    return RestoredOrder(
        request=request(cid=cid),
        order_id="V1",
        state=state,
        price=Decimal("0.05"),
        size=Decimal("1"),
        filled_size=filled,
        avg_fill_price=None,
        reason=None,
        created_ns=1,
        updated_ns=1,
        fills=fills,
    )


def test_a_journaled_working_order_whose_id_another_working_order_holds_contests_it() -> None:
    """Restored from the journal, a working order whose venue id another working order holds
    keeps the id its record gives (never read as "never sent"); the id is contested (alerted,
    counted), never raised out of a restart."""
    t, capture = tracker()
    first, _ = _two_orders(t)
    restored = t.restore(_record("s-bt-9", S.OPEN))
    assert (restored.order_id, first.order_id) == ("V1", "V1")
    assert t.contested("deribit", "V1") and t.find("deribit", order_id="V1") is None
    assert t.stats.order_id_conflicts == 1 and alerts(capture, "order.venue_id_conflict")
    (line,) = alerts(capture, "order.venue_id_conflict")
    assert line["state"] == "open"  # its state as restored, not pending_new


def test_a_journaled_final_order_whose_id_a_working_order_holds_is_simply_not_indexed() -> None:
    """A final order restored (a restart, a late report's recall) whose id a working order
    holds: its record keeps the id, the holder keeps the index, and that is no conflict (logged
    at info level, not counted, not contested): the final order's reports are over. Before, it
    was a critical conflict, counted, the order said to be pending_new."""
    t, capture = tracker()
    first, _ = _two_orders(t)
    restored = t.restore(_record("s-bt-9", S.CANCELLED))
    assert restored.order_id == "V1" and t.find("deribit", order_id="V1") is first
    assert t.stats.order_id_conflicts == 0 and not t.contested("deribit", "V1")
    assert not [e for e in capture.entries if e["log_level"] == "critical"]
    (line,) = [e for e in capture.entries if e["event"] == "order.venue_id_not_indexed"]
    assert (line["log_level"], line["state"], line["holder"]) == ("info", "cancelled", "s-bt-1")


def test_a_late_fill_of_a_recalled_final_order_whose_id_a_working_order_holds_is_a_duplicate(
    tmp_path: Path,
) -> None:
    """`s-bt-1` filled (trade T1) and let go to the journal; after a restart `s-bt-2` works
    under V1 (the venue reused it). The venue repeats T1 naming `s-bt-1`: recalled, it is a
    duplicate, nothing more. Before, the recall counted a conflict and the flow reported the
    repeat as `fill.not_booked` (critical, an unmatched fill)."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    flow.accept(request(), now_ns=1)
    flow.on_update(update(S.OPEN))
    assert flow.on_fill(msgspec.structs.replace(fill("1", "T1"), client_order_id="s-bt-1")) is not None
    restarted = make_flow(journal)
    restarted.restore(journal, now_ns=10 * 86_400 * 10**9)  # beyond the window: not in memory
    assert restarted.tracker.get("s-bt-2") is None and len(restarted.tracker) == 0
    restarted.accept(request(cid="s-bt-2"), now_ns=10 * 86_400 * 10**9)
    second = restarted.tracker.get("s-bt-2")
    assert second is not None and restarted.assign_order_id(second, "V1", source="acknowledged")
    capture = LogCapture()
    restarted.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    repeat = msgspec.structs.replace(fill("1", "T1"), client_order_id="s-bt-1", order_id=None)
    assert restarted.on_fill(repeat) is None
    assert restarted.tracker.stats.duplicate_fills == 1 and restarted.unmatched_fills == 0
    assert restarted.tracker.stats.order_id_conflicts == 0
    assert restarted.tracker.find("deribit", order_id="V1") is second
    assert not [e for e in capture.entries if e["event"] == "fill.not_booked"]


def test_a_restart_restores_two_working_orders_journaled_under_one_id_as_contested(tmp_path: Path) -> None:
    """The flow's restart path (`OrderFlow.restore`): two working orders the journal has under
    V1 (as a tradingd before r12 journaled them, the second taking the id) come back contested:
    alerted, counted, a fill naming V1 booked to neither (`fill.not_booked`), never raised out of
    the restart."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    for cid in ("s-bt-1", "s-bt-2"):
        order = flow.accept(request(cid=cid), now_ns=1)
        flow.tracker._by_venue_id.clear()  # as before r12: nothing refused the second
        assert flow.assign_order_id(order, "V1", source="acknowledged")
    restarted = make_flow(journal)
    capture = LogCapture()
    restarted.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    restarted.restore(journal, now_ns=2)
    tracker = restarted.tracker
    first, second = tracker.get("s-bt-1"), tracker.get("s-bt-2")
    assert first is not None and second is not None
    assert (first.order_id, second.order_id) == ("V1", "V1")
    assert tracker.contested("deribit", "V1") and tracker.stats.order_id_conflicts == 1
    assert restarted.on_fill(fill("0.5", "x")) is None and restarted.fills_not_booked == 1
    assert first.fills_size == second.fills_size == 0
    assert len(alerts(capture, "fill.not_booked")) == 1
