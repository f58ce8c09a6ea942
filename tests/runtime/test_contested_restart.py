"""A contested venue id (two working orders of ours claimed it, `OrderTracker.contested`) outlives
a restart: the journal records the contest when it starts, and a restart rebuilds it from there
whatever state its claimants are in, so a fill naming the id alone (the one refused before the
restart, caught up again, or a new one) is booked to neither, never to whichever claimant's record
names the id. And a catch-up of fills hands a fill naming a contested id to the flow (refused,
alerted, journaled, counted), never drops it as not ours."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from structlog.testing import LogCapture

from tests.runtime.test_order_memory import _CREDS, _Venue
from tests.runtime.test_order_surprises import fill, update
from tests.support.flows import make_flow
from tests.support.helpers import OPTION, PERP, request, ticker
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.engine import FillReversal, OrderState, Side
from tradingd.engine.runtime import OrderFlow
from tradingd.engine.runtime.live import LiveEngine
from tradingd.engine.store.journal import OrderJournal

S = OrderState


def _capture(flow: OrderFlow) -> LogCapture:
    capture = LogCapture()
    flow.log = structlog.wrap_logger(
        None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    return capture


def _contest(flow: OrderFlow, *, holder: OrderState) -> None:
    """`s-bt-1` open as V1 books T1 (its client id named); the venue names `s-bt-2` V1 too
    (contested); T2 naming V1 alone is refused (`fill.not_booked`); `s-bt-1` then ends as
    `holder` says."""
    flow.accept(request(), now_ns=1)
    flow.on_update(update(S.OPEN))
    assert flow.on_fill(msgspec.structs.replace(fill("0.5", "T1"), client_order_id="s-bt-1")) is not None
    second = flow.accept(request(cid="s-bt-2"), now_ns=1)
    assert not flow.assign_order_id(second, "V1", source="acknowledged")
    assert flow.on_fill(fill("0.25", "T2", ts=4)) is None and flow.fills_not_booked == 1
    if holder is S.CANCELLED:
        flow.on_update(update(holder, "0.5", ts=5))


def _events(capture: LogCapture, event: str) -> list[Any]:
    return [e for e in capture.entries if e["event"] == event]


@pytest.mark.parametrize("holder", [S.PARTIALLY_FILLED, S.CANCELLED])
def test_a_contest_is_journaled_and_rebuilt_at_restart_so_the_id_alone_stays_refused(
    tmp_path: Path, holder: OrderState
) -> None:
    """After a restart the journal's contest stands, the holder working or cancelled: T2 (refused
    before) reported again naming V1 alone is booked to neither and not alerted again; T3, new,
    is refused and alerted; a report naming `s-bt-2`'s client id is still that order's. The open
    contest is a critical line at startup. Before, the second claimant's id was never journaled:
    V1 came back as the holder's alone and T2 and T3 were booked to it."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    _contest(make_flow(journal), holder=holder)
    (note,) = [e for e in journal.events() if e["kind"] == "venue_id_contested"]
    assert (note["venue"], note["order_id"], note["claimants"]) == ("deribit", "V1", ["s-bt-1", "s-bt-2"])

    restarted = make_flow(journal)
    capture = _capture(restarted)
    restarted.restore(journal, now_ns=10)
    tracker = restarted.tracker
    assert tracker.contested("deribit", "V1")
    assert tracker.contests() == {("deribit", "V1"): ["s-bt-1", "s-bt-2"]}
    (opened,) = _events(capture, "order.venue_id_contested_open")
    assert opened["log_level"] == "critical" and opened["contested"] == ["s-bt-1", "s-bt-2"]
    first, second = tracker.get("s-bt-1"), tracker.get("s-bt-2")
    assert first is not None and second is not None and first.state is holder

    assert restarted.on_fill(fill("0.25", "T2", ts=4)) is None  # refused before the restart
    assert _events(capture, "fill.not_booked") == [] and restarted.fills_not_booked == 0
    assert restarted.on_fill(fill("0.125", "T3", ts=11)) is None
    assert len(_events(capture, "fill.not_booked")) == 1 and restarted.fills_not_booked == 1
    assert (first.fills_size, second.fills_size) == (Decimal("0.5"), Decimal(0))
    assert restarted.position("s", "deribit", OPTION.symbol) == Decimal("0.5")
    # A claimant's client id still pins a report to it.
    pinned = msgspec.structs.replace(fill("0.25", "T4", ts=12), client_order_id="s-bt-2")
    assert restarted.on_fill(pinned) is not None and second.fills_size == Decimal("0.25")
    # No second note of the same contest: it is one contest, as the journal has it.
    assert len([e for e in journal.events() if e["kind"] == "venue_id_contested"]) == 1


def test_a_contest_a_journal_records_only_by_its_unbooked_fill_is_rebuilt(tmp_path: Path) -> None:
    """A journal written before contests were journaled has only the `fill_not_booked` note
    (its `order_id` and `contested` claimants): that rebuilds the contest all the same."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    journal.note(
        "fill_not_booked", None, venue="deribit", order_id="V9", trade_id="T9", contested=["a-1", "a-2"]
    )
    restarted = make_flow(journal)
    restarted.restore(journal, now_ns=10)
    assert restarted.tracker.contests() == {("deribit", "V9"): ["a-1", "a-2"]}


def test_a_contest_a_person_settled_in_the_journal_is_not_rebuilt(tmp_path: Path) -> None:
    """Both claimants final, the person notes the contest settled (README: a
    `venue_id_contest_settled` note): the next restart does not contest V1 again, and says
    nothing of it at startup."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    flow = make_flow(journal)
    _contest(flow, holder=S.CANCELLED)
    second = msgspec.structs.replace(update(S.CANCELLED, ts=6), client_order_id="s-bt-2")
    flow.on_update(second)
    restarted = make_flow(journal)
    restarted.restore(journal, now_ns=10)
    assert restarted.tracker.contested("deribit", "V1")  # not settled yet
    journal.note("venue_id_contest_settled", None, venue="deribit", order_id="V1", by="ops")
    journal.note("venue_id_contest_settled", None, venue="deribit", order_id="VI", by="ops")  # a typo
    settled = make_flow(journal)
    capture = _capture(settled)
    settled.restore(journal, now_ns=11)
    assert not settled.tracker.contested("deribit", "V1") and settled.tracker.contests() == {}
    assert _events(capture, "order.venue_id_contested_open") == []
    # The person's word is said at startup; one that settles no contest (a typo) is warned of.
    (said,) = _events(capture, "order.venue_id_contest_settled")
    assert (said["log_level"], said["order_id"], said["contested"], said["by"]) == (
        "info",
        "V1",
        ["s-bt-1", "s-bt-2"],
        "ops",
    )
    (typo,) = _events(capture, "order.venue_id_contest_settled_unknown")
    assert (typo["log_level"], typo["order_id"]) == ("warning", "VI")


def _engine(journal: OrderJournal) -> LiveEngine:
    engine = LiveEngine(
        [], {"deribit": DeribitSettings()}, mode="live", journal=journal, clock=lambda: 20, environ=_CREDS
    )
    engine.registry.add(PERP)
    engine.registry.add(OPTION)
    engine.market_state.on_ticker(ticker(PERP.symbol, index=90_000.0, mark=90_010.0))
    engine.market_state.on_ticker(ticker(OPTION.symbol, index=90_000.0, mark=0.05))
    return engine


@pytest.mark.parametrize("holder", [S.PARTIALLY_FILLED, S.CANCELLED])
async def test_a_catch_up_after_a_restart_books_no_fill_refused_on_a_contested_id(
    tmp_path: Path, holder: OrderState
) -> None:
    """The restart's catch-up of fills (from the oldest order) lists T2, refused before the
    restart as naming V1 alone: booked to neither, whether the holder works or is cancelled.
    Before, the catch-up found V1 the holder's and booked T2 to it."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    _contest(make_flow(journal), holder=holder)
    engine = _engine(journal)
    flow = engine.flow
    await engine._catch_up_fills("deribit", _Venue([fill("0.25", "T2", ts=4)]))
    first, second = flow.tracker.get("s-bt-1"), flow.tracker.get("s-bt-2")
    assert first is not None and second is not None
    assert (first.fills_size, second.fills_size) == (Decimal("0.5"), Decimal(0))
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")
    assert len([e for e in journal.events() if e["kind"] == "fill_not_booked"]) == 1


async def test_a_catch_up_hands_a_fill_naming_a_contested_id_alone_to_the_flow(tmp_path: Path) -> None:
    """A catch-up of fills lists T5, never reported on the channel, naming contested V1 alone:
    refused by the flow, alerted (`fill.not_booked`), journaled and counted once, however often
    a catch-up lists it. Before, `find` said None and the catch-up dropped it as not ours, with
    no trace."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    engine = _engine(journal)
    flow = engine.flow
    _contest(flow, holder=S.PARTIALLY_FILLED)
    capture = _capture(flow)
    venue = _Venue([fill("0.25", "T5", ts=6)])
    await engine._catch_up_fills("deribit", venue)
    await engine._catch_up_fills("deribit", venue)
    assert flow.fills_not_booked == 2  # T2 (on the channel) and T5 (caught up), once each
    (alert,) = _events(capture, "fill.not_booked")
    assert alert["trade_id"] == "T5" and alert["contested"] == ["s-bt-1", "s-bt-2"]
    assert [e["trade_id"] for e in journal.events() if e["kind"] == "fill_not_booked"] == ["T2", "T5"]
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")


def _settled(journal: OrderJournal) -> None:
    """The README's settling: both claimants final at the venue (`s-bt-2` cancelled too), then a
    `venue_id_contest_settled` note, the daemon stopped."""
    flow = make_flow(journal)
    _contest(flow, holder=S.CANCELLED)
    flow.on_update(msgspec.structs.replace(update(S.CANCELLED, ts=6), client_order_id="s-bt-2"))
    journal.note("venue_id_contest_settled", None, venue="deribit", order_id="V1", by="ops")


async def test_a_trade_refused_on_a_contested_id_is_never_booked_once_the_contest_is_settled(
    tmp_path: Path,
) -> None:
    """`s-bt-1` holds V1 and books T1 (0.5); `s-bt-2` claims V1; T2 (0.25, naming V1 alone) is
    refused; both cancelled; a person settles the contest. After the restart V1 is the holder's
    again, and the catch-up lists T2 (then the channel repeats it): never booked, the position
    stays 0.5, T2 is left to the person's own accounting; said at info, not alerted again.
    Before, the catch-up found V1 the holder's and booked T2 to it: 0.75, T2 counted twice."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    _settled(journal)
    engine = _engine(journal)
    flow = engine.flow
    capture = _capture(flow)
    assert not flow.tracker.contested("deribit", "V1")
    venue = _Venue([fill("0.25", "T2", ts=4)])
    await engine._catch_up_fills("deribit", venue)
    assert flow.on_fill(fill("0.25", "T2", ts=4)) is None
    first = flow.tracker.get("s-bt-1")
    assert first is not None and first.fills_size == Decimal("0.5")
    assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")
    booked = [
        (e["kind"], e.get("trade_id")) for e in journal.events() if e["kind"] in ("fill", "fill_not_booked")
    ]
    assert booked == [("fill", "T1"), ("fill_not_booked", "T2")]
    assert flow.fills_not_booked == 0 and _events(capture, "fill.not_booked") == []
    repeated = _events(capture, "fill.not_booked_repeated")
    assert len(repeated) == 2 and {r["log_level"] for r in repeated} == {"info"}


def _voided(trade_id: str, *, ts: int = 8, order_id: str | None = "V1") -> FillReversal:
    return FillReversal(
        venue="deribit",
        instrument=OPTION.symbol,
        ts_exchange=ts,
        ts_local=ts,
        order_id=order_id,
        trade_id=trade_id,
        side=Side.BUY,
        price=Decimal("0.05"),
        size=Decimal("0.25"),
        fee=Decimal("0.0003"),
        fee_currency="BTC",
        reason="FAILED",
    )


@pytest.mark.parametrize("order_id", ["V1", None])
@pytest.mark.parametrize("settled", [False, True])
async def test_a_catch_up_alerts_a_reversal_of_a_refused_trade_once(
    tmp_path: Path, settled: bool, order_id: str | None
) -> None:
    """The venue voids T2, refused on contested V1 (`fill.not_booked`), and a catch-up lists the
    reversal (naming V1, or no venue order id), the contest open or settled: alerted at critical
    level (`fill.reversal_not_applied`), journaled and counted once, however many catch-ups list
    it, restarts' included; nothing taken out of the holder. Before, the catch-up dropped it
    silently (no claimant holds T2; settled, the holder does not have it); and a restart skipped
    the note of one naming no venue order id, so it was alerted again after every restart."""
    journal = OrderJournal(tmp_path / "journal.sqlite")
    if settled:
        _settled(journal)
    else:
        _contest(make_flow(journal), holder=S.PARTIALLY_FILLED)
    venue = _Venue([fill("0.25", "T2", ts=4), _voided("T2", order_id=order_id)])  # type: ignore[list-item]
    for restart in range(3):
        engine = _engine(journal)
        flow = engine.flow
        capture = _capture(flow)
        await engine._catch_up_fills("deribit", venue)
        await engine._catch_up_fills("deribit", venue)
        alerts = _events(capture, "fill.reversal_not_applied")
        if restart == 0:
            (alert,) = alerts
            assert (alert["log_level"], alert["trade_id"], alert["size"]) == ("critical", "T2", "0.25")
            assert alert["order_id"] == order_id
            assert flow.fills_not_booked == 1
        else:
            assert alerts == [] and flow.fills_not_booked == 0
        assert len(_events(capture, "fill.reversal_not_applied_repeated")) == 1 + (restart > 0)
        assert flow.position("s", "deribit", OPTION.symbol) == Decimal("0.5")
        engine.flow.release()
    notes = [e["trade_id"] for e in journal.events() if e["kind"] == "fill_reversal_not_applied"]
    assert notes == ["T2"]
