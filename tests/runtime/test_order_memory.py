"""Memory stays bounded over a long session: final orders leave memory for the journal, and a
late report about one of them is still matched there (a late fill booked once, a repeated one a
duplicate), a client order id used before is still refused."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import NoReturn
from unittest.mock import patch

import pytest
import structlog
import trio

from tests.support.flows import make_flow
from tests.support.helpers import PERP, request, ticker
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import (
    Fill,
    Liquidity,
    OrderRejected,
    OrderState,
    OrderUpdate,
    PrivateEvent,
    Side,
    VenueError,
)
from tradingd.engine.model import Order, OrderTracker
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000
HALF_S = S // 2  # 2 orders/s, the rate the issue measured the leak at


def cancelled(flow: OrderFlow, n: int, *, start: int = 0) -> None:
    """`n` orders placed at 2/s, each named by the venue and then cancelled (final)."""
    for i in range(start, start + n):
        now = (i + 1) * HALF_S
        order = flow.accept(
            request(size="10", price="90000", instrument=PERP.symbol, cid=f"s-{i}"), now_ns=now
        )
        flow.assign_order_id(order, f"V{i}")
        flow.on_update(
            OrderUpdate(
                venue="deribit",
                instrument=PERP.symbol,
                ts_exchange=None,
                ts_local=now,
                order_id=f"V{i}",
                client_order_id=f"s-{i}",
                status=OrderState.CANCELLED,
                side=Side.BUY,
                price=Decimal("90000"),
                size=Decimal("10"),
                filled_size=Decimal(0),
            )
        )


def late_fill(oid: str, trade_id: str, ts: int) -> Fill:
    """A fill naming the order by venue id only (as Deribit's user trades do)."""
    return Fill(
        venue="deribit",
        instrument=PERP.symbol,
        ts_exchange=None,
        ts_local=ts,
        order_id=oid,
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal("90000"),
        size=Decimal("4"),
        fee=Decimal("0.0001"),
        fee_currency="BTC",
        liquidity=Liquidity.MAKER,
    )


def held(flow: OrderFlow) -> int:
    return sum(1 for _ in flow.tracker.orders())


def test_after_many_final_orders_the_tracker_holds_at_most_a_bound(tmp_path: Path) -> None:
    flow = make_flow(OrderJournal(tmp_path / "j.sqlite"))
    cancelled(flow, 3000)  # 25 minutes at 2 orders/s
    # Final orders are kept a minute (120 at 2/s) and let go in sweeps every 64 new orders.
    assert held(flow) <= 120 + 64
    # Nothing lost: the journal has every one of them, final.
    assert len(flow.journal.orders(final_since_ns=0)) == 3000  # type: ignore[union-attr]


def test_without_a_journal_final_orders_are_still_bounded() -> None:
    tracker = OrderTracker()
    for i in range(12_000):
        order = tracker.add(request(size="1", price="1", cid=f"b-{i}"), now_ns=i)
        order.transition(OrderState.CANCELLED, now_ns=i)
    assert sum(1 for _ in tracker.orders()) <= 10_000 + 64


def test_a_late_fill_of_an_order_let_go_is_booked_once_from_the_journal(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    cancelled(flow, 1000)
    assert flow.tracker.find("deribit", order_id="V0") is not None  # brought back from the journal
    cancelled(flow, 300, start=1000)  # ... and let go again
    assert all(o.client_order_id != "s-0" for o in flow.tracker.orders())
    now = 1300 * HALF_S  # just after the last order above
    # The venue reports a fill of the first order (cancelled long ago): booked, once.
    booked = flow.on_fill(late_fill("V0", "T-late", now))
    assert booked is not None and booked.client_order_id == "s-0" and booked.strategy == "s"
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    assert flow.tracker.stats.late_fills == 1
    # Reported again at once (an order answer and a notification, say): a duplicate.
    assert flow.on_fill(late_fill("V0", "T-late", now)) is None
    assert flow.tracker.stats.duplicate_fills == 1
    # And again after the order has been let go once more: the journal's fills say so.
    cancelled(flow, 300, start=1300)
    assert all(o.client_order_id != "s-0" for o in flow.tracker.orders())
    assert flow.on_fill(late_fill("V0", "T-late", 1601 * HALF_S)) is None
    assert flow.tracker.stats.duplicate_fills == 2
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    fills = [e for e in journal.ledger() if e.kind == "fill"]
    assert [(e.event.trade_id, e.event.client_order_id) for e in fills] == [("T-late", "s-0")]  # type: ignore[union-attr]
    # The order's record has the fill too (a cancelled order, partly filled).
    row = journal.find_order("deribit", order_id="V0")
    assert row is not None and row.state is OrderState.CANCELLED and row.filled_size == Decimal(4)
    assert flow.journal_failures == 0


def test_a_client_order_id_used_by_an_order_let_go_is_still_refused(tmp_path: Path) -> None:
    flow = make_flow(OrderJournal(tmp_path / "j.sqlite"))
    cancelled(flow, 500)
    assert flow.tracker.get("s-0") is not None  # from the journal
    cancelled(flow, 200, start=500)
    with pytest.raises(OrderRejected, match="duplicate client order id s-1"):
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=800 * S)
    assert flow.journal_failures == 0


def test_the_order_rate_window_keeps_only_the_last_minute(tmp_path: Path) -> None:
    flow = make_flow(OrderJournal(tmp_path / "j.sqlite"))
    cancelled(flow, 1000)  # no rate limit configured: the window must not keep every order anyway
    assert all(len(times) <= 121 for times in flow.risk._sent.values())


def test_the_oldest_order_is_remembered_after_it_is_let_go(tmp_path: Path) -> None:
    """Where a catch-up of fills missed while disconnected (or down) starts: the oldest order
    tracked, even once it has left memory for the journal."""
    path = tmp_path / "j.sqlite"
    flow = make_flow(OrderJournal(path))
    cancelled(flow, 400)
    assert flow.tracker.get("s-0") is not None
    cancelled(flow, 300, start=400)
    assert all(o.client_order_id != "s-0" for o in flow.tracker.orders())
    assert flow.tracker.first_created_ns == {"deribit": HALF_S}
    # After a restart too (the orders final within the restore window come back, then go).
    again = make_flow(None)
    again.restore(OrderJournal(path), now_ns=700 * HALF_S)
    again.tracker.sweep(700 * HALF_S)
    assert held(again) <= 130
    assert again.tracker.first_created_ns == {"deribit": HALF_S}


def _disk_full(*args: object, **kwargs: object) -> NoReturn:
    raise sqlite3.OperationalError("database or disk is full")


def test_a_fill_the_journal_could_not_record_is_never_booked_twice(tmp_path: Path) -> None:
    """A final order's late fill arrives while the disk is full: booked in memory only. Its
    journal record now lacks that fill, so the order must never leave memory: a copy recalled
    from the journal would take the venue's repeat of that fill (a reconnect's catch-up) for
    news and book it again."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    cancelled(flow, 10)
    journal.fill = _disk_full  # type: ignore[method-assign]
    assert flow.on_fill(late_fill("V0", "T1", 11 * HALF_S)) is not None
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    assert flow.journal_failures == 1
    del journal.fill  # the disk has room again
    cancelled(flow, 400, start=10)  # 200 s later: every other order of then has been let go
    assert flow.tracker.get("s-1") is not None and flow.tracker.recalled == 1  # from the journal
    # The venue repeats the same trade: a duplicate, not a second booking.
    assert flow.on_fill(late_fill("V0", "T1", 420 * HALF_S)) is None
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    assert flow.tracker.stats.duplicate_fills == 1
    assert any(o.client_order_id == "s-0" for o in flow.tracker.orders())  # never let go
    assert flow.tracker.dirty == 1


def test_no_final_order_is_let_go_while_the_journal_fails(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    cancelled(flow, 100)
    before = held(flow)
    journal.note = _disk_full  # type: ignore[method-assign]
    order = flow.tracker.get("s-99")
    assert order is not None
    flow.state_unknown(order, VenueError("timeout"))  # a write that names no order's record
    assert flow.journal_failures == 1
    assert flow.tracker.sweep(10_000 * S) == 0  # every order is old enough; none let go
    assert held(flow) == before
    del journal.note
    flow.state_unknown(order, VenueError("timeout"))  # the journal writes again
    assert flow.tracker.sweep(10_000 * S) == before
    assert held(flow) == 0


def test_a_journal_lookup_that_fails_is_not_taken_as_not_found(tmp_path: Path) -> None:
    """Whether the journal knows an order is unknown when it cannot be read: a client order
    id used before cannot be told from a new one (refused), and a late fill of an order let go
    cannot be matched to its booked fills (left unbooked, alerted at critical level)."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    cancelled(flow, 400)
    assert all(o.client_order_id != "s-1" for o in flow.tracker.orders())  # let go

    def unreadable(*args: object, **kwargs: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    journal.find_order = unreadable  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(OrderRejected, match="client order id s-1 cannot be checked"):
            flow.accept(
                request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=401 * HALF_S
            )
        assert flow.on_fill(late_fill("V1", "T1", 402 * HALF_S)) is None
    critical = [e["event"] for e in logs if e["log_level"] == "critical"]
    assert critical == ["journal.lookup_failed", "journal.lookup_failed", "fill.unknown_order"]
    assert logs[-1]["journal_unreadable"] is True
    assert flow.tracker.stats.archive_failures == 2
    assert flow.unmatched_fills == flow.fills_not_booked == 1
    assert flow.position("s", "deribit", PERP.symbol) == 0
    # Readable again: the client order id is a duplicate, the fill (reported again) is booked once.
    del journal.find_order
    with pytest.raises(OrderRejected, match="duplicate client order id s-1"):
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=403 * HALF_S)
    assert flow.on_fill(late_fill("V1", "T1", 404 * HALF_S)) is not None
    assert flow.on_fill(late_fill("V1", "T1", 405 * HALF_S)) is None
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)


def test_while_the_journal_fails_final_orders_beyond_the_cap_are_still_let_go(tmp_path: Path) -> None:
    """A full disk that lasts: every new order is refused (its journal record cannot be
    written) and final. Clean final orders beyond `max_final` are still let go, so memory stays
    bounded; an order whose record lacks what memory has (dirty) stays for good."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    flow.tracker.max_final = 50
    cancelled(flow, 10)
    journal.fill = _disk_full  # type: ignore[method-assign]
    assert flow.on_fill(late_fill("V0", "T1", 11 * HALF_S)) is not None  # s-0 is now dirty
    journal.request = _disk_full  # type: ignore[method-assign]
    for i in range(10, 400):
        with pytest.raises(OrderRejected, match="could not record"):
            flow.accept(
                request(size="10", price="90000", instrument=PERP.symbol, cid=f"s-{i}"),
                now_ns=(i + 1) * HALF_S,
            )
    assert flow.tracker.hold_final and flow.journal_failures == 391
    assert held(flow) <= 50 + 1 + 64  # the cap, the dirty one, those since the last sweep
    assert flow.tracker.get("s-0") is not None and flow.tracker.dirty == 1  # never let go
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)


def _unreadable(*args: object, **kwargs: object) -> None:
    raise sqlite3.DatabaseError("database disk image is malformed")


class _Venue:
    """A venue's trade history (`recent_fills`): the fills at or after `since`, as venues list
    them."""

    def __init__(self, fills: list[Fill]) -> None:
        self.fills = fills
        self.asked: list[int] = []

    async def recent_fills(self, since_ns: int) -> list[Fill]:
        self.asked.append(since_ns)
        return [f for f in self.fills if f.ts_local >= since_ns]

    # The rest of a reconciler (engine.venue.spi.Reconciler): a catch-up of fills asks none of it.
    async def open_orders(self) -> list[OrderUpdate]:
        raise AssertionError("a catch-up of fills lists no orders")

    async def order_status(self, order: Order) -> list[PrivateEvent]:
        raise AssertionError("a catch-up of fills asks no order's status")

    async def cancel_by_order_id(self, instrument: str, order_id: str) -> None:
        raise AssertionError("a catch-up of fills cancels nothing")


_CREDS = {"DERIBIT_CLIENT_ID": "id", "DERIBIT_CLIENT_SECRET": "zq-s51-x"}  # never used: nothing connects


def _engine(journal: OrderJournal, now: list[int]) -> LiveEngine:
    engine = LiveEngine(
        [], {"deribit": DeribitSettings()}, mode="live", journal=journal, clock=lambda: now[0], environ=_CREDS
    )
    engine.registry.add(PERP)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    return engine


async def test_a_fill_the_journal_could_not_be_read_for_is_caught_up_later_once(tmp_path: Path) -> None:
    """A catch-up of fills meets the late fill of an order let go while the journal cannot be
    read: left unbooked. The next catch-up (the journal reads again) must still ask for it,
    though it is older than the last catch-up, and book it once; the one after, not again."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    now = [401 * HALF_S]
    engine = _engine(journal, now)
    flow = engine.flow
    cancelled(flow, 400)
    assert all(o.client_order_id != "s-1" for o in flow.tracker.orders())  # let go
    venue = _Venue([late_fill("V1", "T1", 100 * S)])

    with patch.object(journal, "find_order", _unreadable), structlog.testing.capture_logs() as logs:
        await engine._catch_up_fills("deribit", venue)
    assert flow.position("s", "deribit", PERP.symbol) == 0
    now[0] = 600 * S  # minutes later: a catch-up from its own time would start after the fill
    await engine._catch_up_fills("deribit", venue)
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    now[0] = 700 * S
    await engine._catch_up_fills("deribit", venue)
    assert flow.position("s", "deribit", PERP.symbol) == Decimal(4)
    assert venue.asked[-1] == 600 * S - 60 * S  # booked: back to catching up from the last one
    restored = journal.find_order("deribit", order_id="V1")
    assert restored is not None
    assert [t for t, *_ in restored.fills] == ["T1"]
    assert "fills.catch_up_incomplete" in [e["event"] for e in logs if e["log_level"] == "critical"]


async def test_a_live_fill_the_journal_could_not_be_read_for_has_the_venue_reconciled(
    tmp_path: Path,
) -> None:
    """A fill on the user channel for an order let go, while the journal cannot be read: left
    unbooked (critical), and a reconciliation of its venue is started at once, whose catch-up
    asks for it even where an earlier catch-up went past it."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    now = [401 * HALF_S]
    engine = _engine(journal, now)
    cancelled(engine.flow, 400)
    engine._caught_up_ns["deribit"] = 300 * S  # a catch-up that finished after the fill's time
    reconciled: list[str] = []

    async def reconcile(name: str) -> bool:
        reconciled.append(name)
        return False  # as the real one answers when it did not finish

    engine._reconcile = reconcile  # type: ignore[method-assign]
    journal.find_order = _unreadable  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        engine._nursery = nursery
        assert engine.flow.on_fill(late_fill("V1", "T1", 200 * S)) is None
    assert reconciled == ["deribit"]
    del journal.find_order
    venue = _Venue([late_fill("V1", "T1", 200 * S)])
    now[0] = 400 * S
    await engine._catch_up_fills("deribit", venue)
    assert venue.asked == [200 * S - 60 * S]
    assert engine.flow.position("s", "deribit", PERP.symbol) == Decimal(4)
