"""The order journal: written before acting, survives a kill -9, and rebuilds orders and
positions exactly after a restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import structlog.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.flows import fill, make_flow, update
from tests.support.helpers import OPTION, PERP, registry, request, ticker
from tradingd.engine import FillReversal, OrderRejected, OrderState, Side
from tradingd.engine.model import InstrumentRegistry, MarketState
from tradingd.engine.model.settlement import FundingPayment, HeldFunding
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.store.journal import JournalError, OrderJournal

S = 1_000_000_000
H = 3600 * S


def views(flow: OrderFlow) -> dict[str, tuple[object, ...]]:
    return {
        name: (
            dict(ledger.view().positions.items()),
            round(ledger.realized_usd, 9),
            round(ledger.fees_usd, 9),
            ledger.fills,
        )
        for name, ledger in flow.ledgers.items()
    }


def test_a_restart_rebuilds_orders_and_positions_exactly(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    working = flow.accept(request(size="30", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(working, "V1")
    flow.on_update(update("V1", "s-1", OrderState.OPEN))
    flow.on_fill(fill("T1", "10", "90000", oid="V1"))
    done = flow.accept(request(size="1", price="0.05", cid="s-2"), now_ns=2 * S)
    flow.assign_order_id(done, "V2")
    flow.on_fill(fill("T2", "1", "0.05", oid="V2", inst=OPTION.symbol))
    flow.on_fill(fill("T3", "10", "90100", oid="V1"))
    flow.on_reversal(
        FillReversal(
            venue="deribit",
            instrument=PERP.symbol,
            ts_exchange=None,
            ts_local=6 * S,
            order_id="V1",
            trade_id="T3",
            side=Side.BUY,
            price=Decimal("90100"),
            size=Decimal("10"),
            fee=Decimal("0.0001"),
            fee_currency="BTC",
            reason="settlement failed",
        )
    )
    before = views(flow)
    journal.close()

    # A fresh process: no market data yet, the registry empty until the venues connect.
    again = OrderJournal(path)
    restored = make_flow(None, InstrumentRegistry())
    counts = restored.restore(again, now_ns=10 * S)
    assert counts == {"orders": 2, "live": 1, "ledger": 4}
    assert views(restored) == before
    order = restored.tracker.get("s-1")
    assert order is not None
    assert (order.order_id, order.state, order.filled_size) == (
        "V1",
        OrderState.PARTIALLY_FILLED,
        Decimal(10),
    )
    assert order.avg_fill_price == Decimal(90000)
    assert restored.tracker.find("deribit", order_id="V2") is not None  # filled: kept for dedupe
    assert [o.client_order_id for o in restored.tracker.open_orders()] == ["s-1"]
    # The same trade reported again after the restart is not booked twice.
    assert restored.on_fill(fill("T1", "10", "90000", oid="V1")) is None
    assert views(restored) == before
    # The audit trail has every step of the order, in order.
    kinds = [e["kind"] for e in again.events("s-1")]
    assert kinds == ["request", "order_id", "update", "fill", "fill", "reversal"]


def test_an_order_is_in_the_journal_before_it_is_sent_and_refused_if_it_cannot_be(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.sqlite")
    flow = make_flow(journal)
    flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-1"), now_ns=S)
    assert [r.request.client_order_id for r in OrderJournal(tmp_path / "j.sqlite").orders()] == ["s-1"]
    real_request = journal.request

    def disk_full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    journal.request = disk_full  # type: ignore[method-assign]
    with pytest.raises(OrderRejected, match="journal could not record it"):
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-2"), now_ns=2 * S)
    assert flow.tracker.get("s-2").state is OrderState.REJECTED  # type: ignore[union-attr]
    assert flow.journal_failures == 1
    journal.request = real_request  # type: ignore[method-assign]
    journal._db.close()  # the disk is gone, say
    # A new order's client order id cannot even be checked against the journal now: refused.
    with pytest.raises(OrderRejected, match="cannot be checked against the journal"):
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-3"), now_ns=3 * S)
    assert flow.tracker.stats.archive_failures == 1
    # A venue report still applies in memory (and the failure is counted), the daemon goes on.
    order = flow.tracker.get("s-1")
    assert order is not None
    flow.tracker.set_order_id(order, "V1")
    assert flow.on_update(update("V1", "s-1", OrderState.OPEN))
    assert flow.journal_failures == 2


def test_a_kill_9_right_after_a_write_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    child = textwrap.dedent(
        f"""
        import os, signal
        from decimal import Decimal
        from tradingd.engine.model import MarketState
        from tradingd.engine.runtime import OrderFlow
        from tradingd.engine.store.journal import OrderJournal
        from tests.support.helpers import PERP, registry, request
        journal = OrderJournal({str(path)!r})
        flow = OrderFlow(registry(), MarketState(registry()), lambda _: None, journal=journal)
        flow.accept(request(size="10", price="90000", instrument=PERP.symbol, cid="s-kill"), now_ns=1)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).parent.parent.parent, check=False)
    assert proc.returncode == -signal.SIGKILL
    orders = OrderJournal(path).orders()
    assert [(o.request.client_order_id, o.state) for o in orders] == [("s-kill", OrderState.PENDING_NEW)]
    assert os.stat(path).st_mode & 0o077 == 0  # nobody else reads it


_STEP = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 30).map(lambda n: Decimal(n * 10)),
    st.integers(80_000, 100_000).map(Decimal),
    st.booleans(),  # voided afterwards?
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_STEP, min_size=1, max_size=10))
def test_positions_rebuilt_from_any_history_equal_the_live_ones(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Decimal, Decimal, bool]]
) -> None:
    path = tmp_path_factory.mktemp("j") / "j.sqlite"
    journal = OrderJournal(path)
    flow = make_flow(journal)
    for i, (side, size, price, voided) in enumerate(steps):
        cid, oid = f"s-{i}", f"V{i}"
        order = flow.accept(
            request(side, str(size), str(price), instrument=PERP.symbol, cid=cid), now_ns=(i + 1) * S
        )
        flow.assign_order_id(order, oid)
        f = fill(f"T{i}", str(size), str(price), oid=oid, side=Side(side))
        flow.on_fill(f)
        flow.market.on_ticker(ticker(PERP.symbol, index=float(price), mark=float(price)))
        if voided:
            flow.on_reversal(
                FillReversal(
                    venue="deribit",
                    instrument=PERP.symbol,
                    ts_exchange=None,
                    ts_local=f.ts_local,
                    order_id=oid,
                    trade_id=f.trade_id,
                    side=f.side,
                    price=f.price,
                    size=f.size,
                    fee=f.fee,
                    fee_currency=f.fee_currency,
                )
            )
    before = views(flow)
    journal.close()
    restored = make_flow(None, InstrumentRegistry())
    restored.restore(OrderJournal(path), now_ns=100 * S)
    assert views(restored) == before


def test_a_fill_before_the_first_index_waits_across_a_restart_and_keeps_its_first_rate(
    tmp_path: Path,
) -> None:
    """Issue 13: a fill journaled before any index price was booked at rate 0, and the journal
    replayed it at 0 forever (buy at 0.05 BTC, sell at 0.05 BTC: +5,000 USD). Now it is
    journaled without rates, waits (in the position, not in the USD PnL), is booked at the first
    index price, and the journal keeps that rate for the next restart."""
    path = tmp_path / "journal.sqlite"
    reg = registry()
    journal = OrderJournal(path)
    flow = OrderFlow(reg, MarketState(reg), lambda _: None, journal=journal)  # no index price yet
    buy = flow.accept(request(size="1", price="0.05", cid="s-1"), now_ns=1 * S)
    flow.assign_order_id(buy, "V1")
    flow.on_fill(fill("T1", "1", "0.05", oid="V1", inst=OPTION.symbol))
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal(1)
    journal.close()

    # Restarted before any index price: the fill waits again, its quantity counted.
    journal = OrderJournal(path)
    market = MarketState(InstrumentRegistry())
    flow = OrderFlow(market.registry, market, lambda _: None)
    flow.restore(journal, now_ns=2 * S)
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal(1)
    assert flow.equity("s") == 0
    assert flow.waiting_fills() == 1
    market.on_ticker(ticker(OPTION.symbol, index=100_000.0, mark=0.05))  # the first index
    assert flow.waiting_fills() == 0
    assert flow.ledger("s").fees_usd == Decimal(10)  # 0.0001 BTC at 100000
    journal.close()

    # Restarted again, the market elsewhere now: the fill keeps the rate it was booked at.
    journal = OrderJournal(path)
    market = MarketState(InstrumentRegistry())
    flow = OrderFlow(market.registry, market, lambda _: None)
    flow.restore(journal, now_ns=3 * S)
    assert flow.waiting_fills() == 0
    market.on_ticker(ticker(OPTION.symbol, index=100_000.0, mark=0.05))
    sell = flow.accept(request("sell", size="1", price="0.05", cid="s-2"), now_ns=4 * S)
    flow.assign_order_id(sell, "V2")
    flow.on_fill(fill("T2", "1", "0.05", oid="V2", side=Side.SELL, inst=OPTION.symbol))
    ledger = flow.ledger("s")
    assert ledger.position("deribit", OPTION.symbol) == 0
    assert ledger.realized_usd == 0  # bought and sold at 5,000 USD: not +5,000
    assert ledger.fees_usd == Decimal(20)
    rates = [(e.kind, e.rates) for e in journal.ledger()]
    assert rates == [("fill", (100_000.0, 100_000.0, 100_000.0)), ("fill", (100_000.0, 100_000.0, 100_000.0))]


def _contests_plan(journal: OrderJournal) -> list[str]:
    """SQLite's plan for the query `contests()` actually runs (caught as it runs, not a copy)."""
    ran: list[str] = []
    journal._db.set_trace_callback(ran.append)
    try:
        journal.contests()
    finally:
        journal._db.set_trace_callback(None)
    (query,) = [q for q in ran if "FROM events" in q]
    return [row[-1] for row in journal._db.execute(f"EXPLAIN QUERY PLAN {query}")]


def test_the_contest_notes_read_back_oldest_first_by_their_own_index(tmp_path: Path) -> None:
    """`contests()` (what a restart rebuilds contested venue ids from) reads its four kinds of
    note, oldest first, and no other; through the partial index, so a long audit trail is not
    scanned at every start, and the other notes cost nothing more to write."""
    journal = OrderJournal(tmp_path / "j.sqlite")
    journal.note("venue_id_contested", None, venue="deribit", order_id="V1", claimants=["a", "b"])
    journal.note("foreign_order", None, venue="deribit", order_id="V2")
    journal.note("fill_not_booked", None, venue="deribit", order_id="V1", trade_id="T2")
    journal.note("fill_reversal_not_applied", None, venue="deribit", order_id="V1", trade_id="T2")
    journal.note("venue_id_contest_settled", None, venue="deribit", order_id="V1")
    assert [(n["kind"], n["order_id"]) for n in journal.contests()] == [
        ("venue_id_contested", "V1"),
        ("fill_not_booked", "V1"),
        ("fill_reversal_not_applied", "V1"),
        ("venue_id_contest_settled", "V1"),
    ]
    assert any("events_contest_notes" in row for row in _contests_plan(journal))


@pytest.mark.parametrize("before", ["no index", "three-kind index"])
def test_a_schema_2_journal_without_the_contest_index_gets_it_on_open(tmp_path: Path, before: str) -> None:
    """A schema-2 journal written before the contest notes had their index (none: main before
    this round; `events_contests` without the reversals: this round's first form) gets it when
    opened, and `contests()` reads through it. Before, only a new journal or the schema-1
    migration created it: every start of an existing one scanned the whole audit trail."""
    path = tmp_path / "j.sqlite"
    journal = OrderJournal(path)
    journal.note("fill_not_booked", None, venue="deribit", order_id="V1", trade_id="T2")
    assert journal.close() is None
    with sqlite3.connect(path) as db:
        listed = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
        for (name,) in listed.fetchall():
            db.execute(f"DROP INDEX {name}")  # as main wrote it: no index on the events
        if before == "three-kind index":
            db.execute(
                "CREATE INDEX events_contests ON events (kind) WHERE kind IN "
                "('venue_id_contested', 'fill_not_booked', 'venue_id_contest_settled')"
            )
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
    reopened = OrderJournal(path)
    indexes = {r[0] for r in reopened._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    plan = _contests_plan(reopened)
    assert any("USING INDEX events_contest_notes" in row for row in plan), plan
    assert "events_contests" not in indexes
    assert [n["trade_id"] for n in reopened.contests()] == ["T2"]


# A journal main's tradingd wrote (8a3aa5f: before the funding payments not booked were
# journaled), as SQL text: tests/fixtures/journal/make_journal.py says how.
MAIN_JOURNAL = Path(__file__).parent.parent / "fixtures" / "journal" / "main-8a3aa5f.sql"


def test_more_funding_payments_pending_than_kept_keeps_the_oldest_and_says_how_many_are_dropped(
    tmp_path: Path,
) -> None:
    """1,005 payments pending, said newest first: the journal keeps the oldest 1,000 (the newest
    are read again by the next round's window) and logs an error with the 5 dropped. Before
    (re-review of r13), the first 1,000 as listed were kept (here the newest), silently."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    pending = [
        HeldFunding(
            venue="derive",
            instrument="ETH-PERP",
            ts_ns=t * H,
            amount=Decimal(-1),
            currency="USDC",
            reason="held back",
        )
        for t in range(1005, 0, -1)
    ]
    with structlog.testing.capture_logs() as logs:
        journal.hold_funding("derive", pending)
    assert [h.ts_ns for h in journal.funding_pending("derive")] == [t * H for t in range(1, 1001)]
    assert [(e["event"], e["log_level"], e["dropped"]) for e in logs] == [
        ("funding.pending_dropped", "error", 5)
    ]
    journal.close()


def test_a_journal_main_wrote_holds_no_funding_and_keeps_what_is_said_after(tmp_path: Path) -> None:
    """An older journal has no funding payments pending (`funding_pending`: [], its fill and
    payment read as before); said (`hold_funding`), each is read back after a reopening with
    what was known of it, per venue, and cleared with []. A booking takes its payment out in its
    own transaction (by event id; one whose id was held back, by instrument and time). They are
    kept oldest first (a time unknown counts oldest).
    A value that is no such list is refused naming the journal."""
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MAIN_JOURNAL.read_text())
    db.close()
    journal = OrderJournal(path)
    assert journal.migrated is None
    assert journal.funding_pending("derive") == []
    assert journal.last_booked_ns("derive") == 3 * 3600 * 10**9  # its funding payment
    assert [e.kind for e in journal.ledger()] == ["fill", "funding"]
    waiting = FundingPayment(venue="derive", instrument="ETH-PERP", event_id="ETH-PERP:7200000",
                             ts_ns=2 * H, amount=Decimal("-1.25"), currency="XYZ")  # fmt: skip
    held = HeldFunding(venue="derive", instrument="ETH-PERP", ts_ns=4 * H, amount=Decimal("-0.5"),
                       currency="USDC", reason="held back")  # fmt: skip
    unreadable = HeldFunding(venue="derive", instrument=None, ts_ns=None, amount=None, currency=None,
                             reason="its record cannot be read")  # fmt: skip
    journal.hold_funding("derive", [waiting, held, unreadable])
    assert journal.close() is None
    journal = OrderJournal(path)
    back = [
        (h.instrument, h.ts_ns, h.amount, h.currency, h.event_id) for h in journal.funding_pending("derive")
    ]
    assert back == [
        (None, None, None, None, None),
        ("ETH-PERP", 2 * H, Decimal("-1.25"), "XYZ", "ETH-PERP:7200000"),
        ("ETH-PERP", 4 * H, Decimal("-0.5"), "USDC", None),
    ]
    assert journal.funding_pending("deribit") == []
    inst = next(i for i in journal.instruments() if i.symbol == "ETH-PERP")
    shares = [("s", Decimal("-0.5"), Decimal(1))]
    assert journal.funding(inst, "ETH-PERP:14400000", "USDC", shares, total=Decimal("-0.5"), rate=None,
                           usd_rate=1.0, ts_ns=4 * H)  # fmt: skip
    assert [h.event_id for h in journal.funding_pending("derive")] == [None, "ETH-PERP:7200000"]
    shares = [("s", Decimal("-1.25"), Decimal(1))]
    assert journal.funding(inst, "ETH-PERP:7200000", "XYZ", shares, total=Decimal("-1.25"), rate=None,
                           usd_rate=1.0, ts_ns=2 * H)  # fmt: skip
    assert [h.reason for h in journal.funding_pending("derive")] == ["its record cannot be read"]
    journal.hold_funding("derive", [])
    assert journal.funding_pending("derive") == []
    nan = {"ts_ns": 1, "amount": "NaN", "instrument": None, "currency": None, "event_id": None, "reason": ""}
    for odd in (7200, "x", [{"ts_ns": -1}], [nan], [nan | {"amount": None, "event_id": 5}]):
        journal.set_meta("funding_pending:derive", odd)
        with pytest.raises(JournalError, match=r"journal\.sqlite: funding_pending:derive"):
            journal.funding_pending("derive")
    journal.close()
