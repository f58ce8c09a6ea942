"""A funding payment the venue holds back (Derive's, listed with a record that cannot be read) is
booked once the record reads: the engine's funding window keeps its start at the oldest payment
held (`FundingPayments.held_since_ns`), past the look-back, and says so once
(`funding.held_beyond_lookback`). Before (review of r12), the window moved on with the look-back:
after 24 h the payments left it, never booked, `funding_held` back to 0, nothing alerted.

Never further back than `funding_max_lookback_s` (8 days): a payment held (or waiting for its
USD rate) past that is given up loudly (`funding.not_booked`, a journal note, counted), and the
payments not booked are journaled (each with what is known of it), so that the first round after
a restart reads back to them and gives up, once, each past the cap (review of r13: the window
grew without bound, and a restart forgot the held payment; then, the journal kept only the
oldest time, given up again at every restart, and apart from the booking)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from tests.support.canned_execution import Routed, _derive
from tests.support.flows import restored_flow
from tests.support.helpers import PERP, request
from tests.support.reduced_engine import _Venue
from tradingd.engine import Fill, Liquidity, Side, VenueError
from tradingd.engine.model.settlement import FundingPayment, HeldFunding
from tradingd.engine.runtime.router import MarketRouter
from tradingd.engine.store.journal import OrderJournal

S = 1_000_000_000
H = 3600 * S
D = 24 * H
ETH = attrs.evolve(
    PERP,
    venue="derive",
    symbol="ETH-PERP",
    base="ETH",
    inverse=False,
    settle="USDC",
    contract_size="1",
    min_size="0.01",
)


def record(funding: str, at_ns: int) -> dict[str, Any]:
    return {"funding": funding, "instrument_name": ETH.symbol, "timestamp": at_ns // 1_000_000, "pnl": "0"}


def venue(events: list[dict[str, Any]]) -> Routed:
    """Derive answering its funding history from the window asked (`start_timestamp`, ms, on)."""

    def history(params: dict[str, Any]) -> dict[str, Any]:
        listed = [e for e in events if e["timestamp"] >= params["start_timestamp"]]
        return {"events": listed, "pagination": {"count": len(listed), "num_pages": 1}}

    empty = {"trades": [], "pagination": {"count": 0, "num_pages": 1}}
    return Routed({"private/get_funding_history": history, "private/get_trade_history": empty})


def engine_over(
    events: list[dict[str, Any]], now: list[int], journal: OrderJournal | None = None
) -> tuple[Any, Any]:
    """A live engine reduced to its funding poll over the Derive client (holding 1 ETH-PERP since
    t = 1 h), its fills caught up; restarted from `journal` when it holds that fill already."""
    flow = restored_flow(journal)
    if flow.registry.get("derive", ETH.symbol) is None:
        flow.registry.add(ETH)
    if not flow.ledger("s").position("derive", ETH.symbol):
        order = flow.accept(
            attrs.evolve(request("buy", "1", "2000", instrument=ETH.symbol, cid="s-x-1"), venue="derive"),
            now_ns=0,
        )
        flow.assign_order_id(order, "V1")
        fill = Fill(venue="derive", instrument=ETH.symbol, ts_exchange=1 * H, ts_local=1 * H, order_id="V1",
                    trade_id="T1", side=Side.BUY, price=Decimal(2000), size=Decimal(1), fee=Decimal(0),
                    fee_currency="USDC", liquidity=Liquidity.MAKER)  # fmt: skip
        assert flow.on_fill(fill) is not None
    client = _derive(venue(events))
    from tradingd.engine.runtime.live import LiveEngine

    engine: Any = LiveEngine.__new__(LiveEngine)
    engine.flow, engine.venues, engine.mode = flow, {"derive": _Venue(client)}, "live"
    engine.clock = lambda: now[0]
    engine.log = structlog.get_logger("test")
    engine.market_state, engine.paper = flow.market, {}
    engine._send, engine._receive = trio.open_memory_channel[Any](100)
    engine.router = MarketRouter()
    engine._caught_up_ns, engine._unbooked_ns, engine._catching_up = {}, {}, set()
    engine._init_settlements()
    trio.run(engine._catch_up_fills, "derive", client)
    return engine, client


def test_a_payment_held_past_the_lookback_is_booked_once_its_record_reads() -> None:
    """At t = 2 h a payment of -1 and, in the same millisecond, one whose record cannot be read
    (it holds the other back: their ids are numbered together); at 3 h a payment of -2. Polled at
    4 h: -2 booked, the 2 h ones held. Polled again 30 h later (the look-back is 24 h): still
    held, asked for (the window starts at them), alerted once however many polls. Then the record
    reads (-0.5): both are booked, once."""
    events = [record("-1", 2 * H), record("NaN", 2 * H), record("-2", 3 * H)]
    now = [4 * H]
    engine, client = engine_over(events, now)
    assert engine.funding_lookback_s == 24 * 3600  # what the times below assume
    ledger = engine.flow.ledger("s")
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
        assert ledger.funding_usd == Decimal(-2)
        assert (client.funding_refused, client.funding_held) == (1, 1)
        for hours in (32, 33, 34):  # past the look-back: 2 h is no longer in [now - 24 h, now]
            now[0] = hours * H
            trio.run(engine._book_funding, "derive")
            assert ledger.funding_usd == Decimal(-2)
            assert client.funding_held == 1  # still listed, still held: in the window
    alerts = [e for e in logs if e["event"] == "funding.held_beyond_lookback"]
    assert [(e["log_level"], e["venue"], e["held_since_ns"]) for e in alerts] == [("error", "derive", 2 * H)]
    events[1] = record("-0.5", 2 * H)  # the record reads again
    now[0] = 35 * H
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
        assert ledger.funding_usd == Decimal("-3.5")
        assert client.funding_held == 0
        now[0] = 36 * H
        trio.run(engine._book_funding, "derive")  # nothing held: the window moves on
    assert ledger.funding_usd == Decimal("-3.5")
    assert not [e for e in logs if e["event"] == "funding.held_beyond_lookback"]
    asked = [p["start_timestamp"] for m, p in client.session.asked if m == "private/get_funding_history"]
    assert asked[-1] * 1_000_000 >= 36 * H - 24 * H - S  # back to the look-back's start


def given_up(logs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["log_level"], e["venue"], e["instrument"], e["ts_ns"], e["amount"], e["currency"])
        for e in logs
        if e["event"] == "funding.not_booked"
    ]


def test_a_payment_held_past_the_max_lookback_is_given_up_loudly_and_never_asked_for_again(
    tmp_path: Path,
) -> None:
    """The held payments of the test above, their record never read: the window keeps its start
    at them for 8 days (`funding_max_lookback_s`), never longer. Past that, the payment of -1 and
    the unreadable record beside it are each given up once, at critical level with all that was
    read of them, journaled as a note for a person to book, counted; the window starts at the
    cap. A record that reads after that is not booked (the person booked it). Before, the window
    stayed at 2 h forever, and the read grew without bound."""
    events = [record("-1", 2 * H), record("NaN", 2 * H), record("-2", 3 * H)]
    now = [4 * H]
    journal = OrderJournal(tmp_path / "journal.sqlite")
    engine, client = engine_over(events, now, journal)
    assert engine.funding_max_lookback_s == 8 * 24 * 3600  # what the times below assume
    ledger = engine.flow.ledger("s")
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
        now[0] = 2 * H + 8 * D - 60 * S  # the last round that still reaches 2 h
        trio.run(engine._book_funding, "derive")
        assert given_up(logs) == []
        assert ledger.funding_usd == Decimal(-2) and client.funding_held == 1
        for at in (2 * H + 8 * D, 2 * H + 8 * D + 60 * S, 2 * H + 8 * D + 120 * S):
            now[0] = at
            trio.run(engine._book_funding, "derive")
    asked = [p["start_timestamp"] for m, p in client.session.asked if m == "private/get_funding_history"]
    assert asked[1] * 1_000_000 <= 2 * H  # still reaching the held payment before the cap
    for start, at in zip(
        asked[2:], (2 * H + 8 * D, 2 * H + 8 * D + 60 * S, 2 * H + 8 * D + 120 * S), strict=True
    ):
        assert start * 1_000_000 >= at - 8 * D - 1_000_000  # never further back than the cap
    assert given_up(logs) == [
        ("critical", "derive", ETH.symbol, 2 * H, "-1", "USDC"),
        ("critical", "derive", ETH.symbol, 2 * H, None, "USDC"),
    ]
    [read, unreadable] = [e for e in logs if e["event"] == "funding.not_booked"]
    assert "unreadable funding record" in read["held"] and "cannot be read" in unreadable["held"]
    assert "funding_max_lookback_s" in read["reason"]
    assert engine.flow.funding_payments_not_booked == 2
    notes = [e for e in journal.events() if e["kind"] == "funding_not_booked"]
    assert [(n["instrument"], n["ts_ns"], n["amount"]) for n in notes] == [
        (ETH.symbol, 2 * H, "-1"),
        (ETH.symbol, 2 * H, None),
    ]
    events[1] = record("-0.5", 2 * H)  # reads at last: given up already, a person books it
    now[0] = 2 * H + 8 * D + 180 * S
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
    assert ledger.funding_usd == Decimal(-2) and given_up(logs) == []
    assert engine.flow.funding_payments_not_booked == 2
    assert journal.funding_pending("derive") == []  # nothing held now


def test_a_payment_held_before_a_restart_is_read_again_after_it(tmp_path: Path) -> None:
    """Held at 2 h (its record unreadable), the -2 at 3 h booked; the daemon stops, and starts
    again 30 h later, the record readable: the first round reads back to 2 h (the journal kept
    it held), not only from the last booking (3 h), and books -1 and -0.5 once. Before, the held
    time was not journaled: the first round started at 3 h and they were never booked."""
    events = [record("-1", 2 * H), record("NaN", 2 * H), record("-2", 3 * H)]
    now = [4 * H]
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    engine, _ = engine_over(events, now, journal)
    trio.run(engine._book_funding, "derive")
    assert engine.flow.ledger("s").funding_usd == Decimal(-2)
    journal.close()
    events[1] = record("-0.5", 2 * H)
    now[0] = 32 * H  # the look-back (24 h) alone reaches 8 h; the last booking is at 3 h
    journal = OrderJournal(path)
    engine, client = engine_over(events, now, journal)
    ledger = engine.flow.ledger("s")
    assert ledger.funding_usd == Decimal(-2)  # restored
    trio.run(engine._book_funding, "derive")
    [asked] = [p["start_timestamp"] for m, p in client.session.asked if m == "private/get_funding_history"]
    assert asked * 1_000_000 <= 2 * H
    assert ledger.funding_usd == Decimal("-3.5")
    assert journal.funding_pending("derive") == []  # booked: the hold is cleared


class _Down:
    """A venue whose funding history does not answer."""

    positions: None = None
    delivery: None = None

    @property
    def funding(self) -> _Down:
        return self

    async def funding_payments(self, since_ns: int) -> list[FundingPayment]:
        raise VenueError("private/get_funding_history: timed out", venue="derive")


def test_a_payment_held_before_a_restart_past_the_max_lookback_is_given_up_at_the_restart(
    tmp_path: Path,
) -> None:
    """Held at 2 h, the daemon down 9 days: the first round asks no further back than 8 days,
    and each payment the journal says was held is given up loudly (with what the journal knows
    of it), journaled and counted, once, however many rounds it takes the venue to answer."""
    events = [record("-1", 2 * H), record("NaN", 2 * H), record("-2", 3 * H)]
    now = [4 * H]
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    engine, _ = engine_over(events, now, journal)
    trio.run(engine._book_funding, "derive")
    journal.close()
    now[0] = 2 * H + 9 * D
    journal = OrderJournal(path)
    engine, client = engine_over(events, now, journal)
    derive = engine.venues["derive"]
    engine.venues["derive"] = _Venue(_Down())
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")  # the venue does not answer: asked again
        now[0] += 60 * S
        engine.venues["derive"] = derive
        trio.run(engine._book_funding, "derive")
        now[0] += 60 * S
        trio.run(engine._book_funding, "derive")
    notes = [e for e in journal.events() if e["kind"] == "funding_not_booked"]
    said = [(n["venue"], n["instrument"], n["ts_ns"], n["amount"], n["currency"]) for n in notes]
    assert said == [("derive", ETH.symbol, 2 * H, "-1", "USDC"), ("derive", ETH.symbol, 2 * H, None, "USDC")]
    assert given_up(logs) == [("critical", *s) for s in said]
    assert engine.flow.funding_payments_not_booked == 2
    asked = [p["start_timestamp"] for m, p in client.session.asked if m == "private/get_funding_history"]
    assert asked[0] * 1_000_000 >= 2 * H + 9 * D - 8 * D - 1_000_000
    assert journal.funding_pending("derive") == []


class _Listing:
    """A venue listing `payments` from the window asked (`since_ns` on), holding none back."""

    positions: None = None
    delivery: None = None

    @property
    def funding(self) -> _Listing:
        return self

    def __init__(self, payments: list[FundingPayment]) -> None:
        self.payments = payments
        self.asked: list[int] = []

    async def funding_payments(self, since_ns: int) -> list[FundingPayment]:
        self.asked.append(since_ns)
        return [p for p in self.payments if p.ts_ns >= since_ns]


def test_a_payment_waiting_for_its_usd_rate_past_the_max_lookback_is_given_up_loudly(tmp_path: Path) -> None:
    """A payment in a currency whose USD rate never comes waits, asked for again each round, for
    8 days at most, then is given up as a held one is (with its event id), once; the read no
    longer reaches it. Before, it was asked for however old it got."""
    waiting = FundingPayment(venue="derive", instrument=ETH.symbol, event_id=f"{ETH.symbol}:7200000",
                             ts_ns=2 * H, amount=Decimal("-1.25"), currency="XYZ")  # fmt: skip
    now = [4 * H]
    journal = OrderJournal(tmp_path / "journal.sqlite")
    engine, _ = engine_over([], now, journal)
    venue = engine.venues["derive"] = _Venue(_Listing([waiting]))
    with structlog.testing.capture_logs() as logs:
        for at in (4 * H, 2 * H + 8 * D, 2 * H + 8 * D + 60 * S, 2 * H + 8 * D + 120 * S):
            now[0] = at
            trio.run(engine._book_funding, "derive")
    asked = venue.client.asked
    assert asked[1] <= 2 * H and asked[2] >= 2 * H + 60 * S  # the cap: 8 days before each round
    assert [e["event"] for e in logs].count("funding.waiting") == 2
    assert given_up(logs) == [("critical", "derive", ETH.symbol, 2 * H, "-1.25", "XYZ")]
    [line] = [e for e in logs if e["event"] == "funding.not_booked"]
    assert line["event_id"] == waiting.event_id
    [note] = [e for e in journal.events() if e["kind"] == "funding_not_booked"]
    assert (note["event_id"], note["amount"], note["currency"]) == (waiting.event_id, "-1.25", "XYZ")
    assert engine.flow.ledger("s").funding_usd == 0 and engine.flow.funding_payments_not_booked == 1


def notes_of(journal: OrderJournal) -> list[tuple[Any, ...]]:
    return [
        (e["instrument"], e["ts_ns"], e["amount"], e["currency"], e.get("event_id"))
        for e in journal.events()
        if e["kind"] == "funding_not_booked"
    ]


def test_a_payment_given_up_at_a_restart_is_never_given_up_again_however_many_restarts_follow(
    tmp_path: Path,
) -> None:
    """Held at 2 h; the daemon restarts 9 days later, and again, and again, each time before the
    venue answers: each held payment is given up (a note, a critical line) at the first of those
    restarts only, and a last restart with the venue answering gives up nothing more. Before
    (review of r13), each restart gave the journal's oldest unbooked time up again: three notes
    for one payment, which a person booking from the notes would book three times."""
    events = [record("-1", 2 * H), record("NaN", 2 * H), record("-2", 3 * H)]
    now = [4 * H]
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    engine, _ = engine_over(events, now, journal)
    trio.run(engine._book_funding, "derive")
    journal.close()
    counted = []
    for k in range(4):  # three restarts with the venue down, the fourth answering
        now[0] = 2 * H + 9 * D + k * 60 * S
        journal = OrderJournal(path)
        engine, _ = engine_over(events, now, journal)
        if k < 3:
            engine.venues["derive"] = _Venue(_Down())
        trio.run(engine._book_funding, "derive")
        counted.append(engine.flow.funding_payments_not_booked)
        journal.close()
    assert counted == [2, 0, 0, 0]  # each restart counts what it gave up itself
    journal = OrderJournal(path)
    assert notes_of(journal) == [
        (ETH.symbol, 2 * H, "-1", "USDC", None),
        (ETH.symbol, 2 * H, None, "USDC", None),
    ]
    assert journal.funding_pending("derive") == []


def _failing(*args: Any, **kwargs: Any) -> None:
    raise sqlite3.OperationalError("disk I/O error")


def test_a_payment_booked_while_the_pending_ones_cannot_be_written_is_never_given_up(tmp_path: Path) -> None:
    """A payment waits for its USD rate (journaled pending), then is booked in a round whose
    write of the pending payments fails: 9 days later a restart neither gives it up nor books it
    again (the booking took it out of the pending ones in its own transaction). Before (review of
    r13), the pending row was written apart from the booking: the restart said a booked payment
    was not booked (a note, a critical line), for a person to book it a second time."""
    waiting = FundingPayment(venue="derive", instrument=ETH.symbol, event_id=f"{ETH.symbol}:7200000",
                             ts_ns=2 * H, amount=Decimal("-1.25"), currency="USDC")  # fmt: skip
    path = tmp_path / "journal.sqlite"
    now = [4 * H]
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    listing = _Listing([attrs.evolve(waiting, currency="XYZ")])  # no USD rate for XYZ: it waits
    engine.venues["derive"] = _Venue(listing)
    trio.run(engine._book_funding, "derive")
    listing.payments[:] = [waiting]
    journal.hold_funding = _failing  # type: ignore[method-assign]
    now[0] = 5 * H
    trio.run(engine._book_funding, "derive")
    assert engine.flow.ledger("s").funding_usd == Decimal("-1.25")
    journal.close()
    now[0] = 2 * H + 9 * D
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    engine.venues["derive"] = _Venue(_Listing([waiting]))
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
    assert given_up(logs) == [] and notes_of(journal) == [] and engine.flow.funding_payments_not_booked == 0
    assert engine.flow.ledger("s").funding_usd == Decimal("-1.25")  # restored, booked once


def test_a_payment_held_without_an_id_and_booked_while_the_pending_ones_cannot_be_written_is_never_given_up(
    tmp_path: Path,
) -> None:
    """Two payments held back with no id (Derive's never carry one): one held as -0.50, one whose
    amount could not be read; both booked (as -0.5 and -2) in a round whose write of the pending
    payments fails. 9 days later a restart gives neither up. Before (re-review of r13), the
    booking took an id-less one out only if its amount TEXT matched ('-0.50' is not '-0.5', an
    unread amount never matches) and a restart kept every id-less one: two notes for payments
    booked, for a person to book them a second time."""
    booked = [
        FundingPayment(
            venue="derive",
            instrument=ETH.symbol,
            event_id=f"{ETH.symbol}:{t // 10**6}",
            ts_ns=t,
            amount=Decimal(a),
            currency="USDC",
        )
        for t, a in ((2 * H, "-0.5"), (3 * H, "-2"))
    ]
    held = [
        HeldFunding(
            venue="derive",
            instrument=ETH.symbol,
            ts_ns=2 * H,
            amount=Decimal("-0.50"),
            currency="USDC",
            reason="unreadable id",
        ),
        HeldFunding(
            venue="derive",
            instrument=ETH.symbol,
            ts_ns=3 * H,
            amount=None,
            currency=None,
            reason="unreadable amount",
        ),
    ]
    path = tmp_path / "journal.sqlite"
    now = [4 * H]
    journal = OrderJournal(path)
    journal.hold_funding("derive", held)
    journal.close()
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    engine.venues["derive"] = _Venue(_Listing(list(booked)))
    journal.hold_funding = _failing  # type: ignore[method-assign]
    trio.run(engine._book_funding, "derive")
    assert engine.flow.ledger("s").funding_usd == Decimal("-2.5")
    journal.close()
    now[0] = 3 * H + 9 * D
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    engine.venues["derive"] = _Venue(_Down())
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
    assert given_up(logs) == [] and notes_of(journal) == [] and engine.flow.funding_payments_not_booked == 0
    assert engine.flow.ledger("s").funding_usd == Decimal("-2.5")


def test_each_payment_pending_at_a_restart_past_the_max_lookback_is_given_up_with_its_fields(
    tmp_path: Path,
) -> None:
    """Two payments waiting for their USD rate at 2 h and 3 h; the daemon down 9 days: at the
    restart each is given up on its own, with its instrument, time, amount, currency and event
    id (a note and a critical line each, counted 2). Before (review of r13), the journal kept
    only the oldest time: one note with no instrument, amount nor id, counted 1."""
    waiting = [
        FundingPayment(
            venue="derive",
            instrument=ETH.symbol,
            event_id=f"{ETH.symbol}:{t // 10**6}",
            ts_ns=t,
            amount=Decimal(a),
            currency="XYZ",
        )
        for t, a in ((2 * H, "-1.25"), (3 * H, "0.5"))
    ]
    path = tmp_path / "journal.sqlite"
    now = [4 * H]
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    engine.venues["derive"] = _Venue(_Listing(list(waiting)))
    trio.run(engine._book_funding, "derive")
    journal.close()
    now[0] = 3 * H + 9 * D
    journal = OrderJournal(path)
    engine, _ = engine_over([], now, journal)
    engine.venues["derive"] = _Venue(_Down())
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
    said = [(ETH.symbol, p.ts_ns, str(p.amount), "XYZ", p.event_id) for p in waiting]
    assert notes_of(journal) == said
    assert [(e["instrument"], e["ts_ns"], e["amount"], e["currency"], e["event_id"])
            for e in logs if e["event"] == "funding.not_booked"] == said  # fmt: skip
    assert engine.flow.funding_payments_not_booked == 2


def test_a_record_whose_time_cannot_be_read_held_round_after_round_is_written_and_alerted_once(
    tmp_path: Path,
) -> None:
    """A record whose time cannot be read, listed round after round (the venue lists it by a
    time of its own): the payments held are journaled when they change only, and
    `funding.held_beyond_lookback` said once for them, not at every round. Before (review of
    r13), the window's start walked 1 ns each round: a journal write and an error line a round."""
    bad = {"funding": "-3", "instrument_name": ETH.symbol, "timestamp": "x", "pnl": "0", "_t": 8 * D // 10**6}
    events = [record("-1", 2 * H), bad, record("-2", 3 * H)]

    def history(params: dict[str, Any]) -> dict[str, Any]:
        listed = [e for e in events if e.get("_t", e["timestamp"]) >= params["start_timestamp"]]
        return {"events": listed, "pagination": {"count": len(listed), "num_pages": 1}}

    empty = {"trades": [], "pagination": {"count": 0, "num_pages": 1}}
    now = [4 * H]
    journal = OrderJournal(tmp_path / "journal.sqlite")
    engine, _ = engine_over([], now, journal)
    routes = {"private/get_funding_history": history, "private/get_trade_history": empty}
    engine.venues["derive"] = _Venue(_derive(Routed(routes)))
    trio.run(engine._book_funding, "derive")
    now[0] = 9 * D  # past the cap: the window starts at the cap, which moves each round
    trio.run(engine._book_funding, "derive")
    writes = journal.stats.writes
    with structlog.testing.capture_logs() as logs:
        for k in (1, 2, 3):
            now[0] = 9 * D + k * 60 * S
            trio.run(engine._book_funding, "derive")
    assert engine.flow.ledger("s").funding_usd == 0  # all of ETH-PERP held with the record
    assert journal.stats.writes == writes
    assert [e["event"] for e in logs].count("funding.held_beyond_lookback") == 0  # said at 9 days


def test_the_payments_pending_are_written_after_the_first_round_whatever_the_journal_said(
    tmp_path: Path,
) -> None:
    """The journal's pending payments cannot be read at a start (logged, the window from the
    cap): the first round's answer, nothing pending, is written over them all the same, so a
    stale row does not outlive it. Before (review of r13), a write was made only when the
    round's answer differed from what the start had read, so a row the start could not read
    stayed."""
    events = [record("-2", 3 * H)]
    path = tmp_path / "journal.sqlite"
    journal = OrderJournal(path)
    engine, _ = engine_over(events, [4 * H], journal)
    journal.set_meta("funding_pending:derive", "not a list")
    journal.close()
    journal = OrderJournal(path)
    engine, _ = engine_over(events, [5 * H], journal)
    with structlog.testing.capture_logs() as logs:
        trio.run(engine._book_funding, "derive")
    assert [e["event"] for e in logs if e["event"] == "funding.journal_unreadable"] != []
    assert engine.flow.ledger("s").funding_usd == Decimal(-2)
    assert journal.meta("funding_pending:derive") == []
