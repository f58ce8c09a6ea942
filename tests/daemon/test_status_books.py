"""Issue 12, follow-up: `tradingd status` shows, per venue, what its books went through (the
decoder's book gaps, the resnapshots made and held back, Polymarket's changes for tokens without
a book, Derive's crossed books) and the frames kept out of a recording, beside `malformed`."""

from __future__ import annotations

from typing import Any

import pytest

from tradingd.cli.status import _print_status
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.connectors.derive.settings import DeriveSettings
from tradingd.connectors.derive.stream import DeriveSession
from tradingd.connectors.polymarket.settings import PolymarketSettings
from tradingd.connectors.polymarket.stream import PolymarketSession
from tradingd.engine.daemon.service import book_health
from tradingd.engine.model import InstrumentRegistry
from tradingd.engine.runtime.router import MarketRouter


class _Sink:
    async def market(self, events: list[Any]) -> None:
        return None

    def private(self, events: list[Any]) -> None:
        return None


def _kw() -> dict[str, Any]:
    return {"registry": InstrumentRegistry(), "router": MarketRouter(), "sink": _Sink()}


def test_deribit_status_counts_its_books() -> None:
    live = DeribitSession(DeribitSettings(), **_kw())
    live.decoder.stats.gaps = 3
    live.stats.resubscribed_books = 2
    live.stats.deferred_resnapshots = 1
    live.stats.unrecorded = 7
    live.stats.refused_instruments = 1
    assert book_health(live) == {
        "book_gaps": 3,
        "resubscribed_books": 2,
        "deferred_resnapshots": 1,
        "refused_instruments": 1,
        "unrecorded": 7,
    }  # no `bookless_changes`: Deribit's decoder has none (left out, not shown as 0)


def test_polymarket_status_adds_up_both_connections_and_shows_bookless_changes() -> None:
    live = PolymarketSession(PolymarketSettings(), **_kw())
    live.decoder.stats.gaps = 4
    live.decoder.bookless_changes = 9
    live.market.stats.resubscribed_books = 2
    live.market.stats.unrecorded = 1
    health = book_health(live)
    assert health["book_gaps"] == 4 and health["bookless_changes"] == 9
    assert health["resubscribed_books"] == 2 and health["unrecorded"] == 1


def test_derive_status_shows_its_crossed_books() -> None:
    live = DeriveSession(DeriveSettings(), **_kw())
    live.decoder.crossed_books = 5
    assert book_health(live)["crossed_books"] == 5


def test_each_venue_shows_the_records_its_execution_client_left_out() -> None:
    """The counters of the venues' execution clients (records left out of an answer, funding held
    back, balances not said) were read by nothing: the status shows them per venue, once the
    client exists (never made just to be read: Polymarket's needs credentials)."""
    deribit = DeribitSession(DeribitSettings(), **_kw())
    assert "trades_refused" not in book_health(deribit)
    client = deribit.execution()
    client.trades_refused, client.orders_refused, client.funding_refused = 2, 1, 3
    client.history_truncated = 5
    health = book_health(deribit)
    assert (health["trades_refused"], health["orders_refused"], health["funding_refused"]) == (2, 1, 3)
    assert health["history_truncated"] == 5
    derive = DeriveSession(DeriveSettings(), **_kw())
    derive.execution().funding_held = 4
    assert book_health(derive)["funding_held"] == 4
    polymarket = PolymarketSession(PolymarketSettings(), **_kw())
    assert "balances_unknown" not in book_health(polymarket)  # no client without credentials


def _status(**venue: Any) -> dict[str, Any]:
    row = {"connected": True, "ready": True, "subscriptions": 1, "channels": 3, "frames": 10}
    row.update(venue)
    return {
        "running": True,
        "age_s": 0.5,
        "pid": 1,
        "mode": "paper",
        "started_ns": 0,
        "updated_ns": 0,
        "status": "paper",
        "venues": {"polymarket": row},
        "strategies": {},
    }


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's width: every cell on one line


def test_tradingd_status_prints_the_book_counters(capsys: pytest.CaptureFixture[str]) -> None:
    _print_status(
        _status(
            malformed=2,
            book_gaps=31,
            resubscribed_books=17,
            deferred_resnapshots=6,
            bookless_changes=44,
            unrecorded=0,
        )
    )
    out = capsys.readouterr().out
    assert "book gaps/resnaps" in out and "31/17" in out
    assert "changes for tokens without a book 44" in out
    assert "resnapshots held back (a book that keeps breaking) 6" in out
    assert "frames kept out of the recording" not in out  # zero: not said


def test_tradingd_status_prints_the_records_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    _print_status(_status(malformed=0, trades_refused=3, balances_unknown=1, orders_refused=0))
    out = capsys.readouterr().out
    assert "trade history records left out (unreadable) 3" in out
    assert "balances the venue could not say 1" in out
    assert "open orders records left out" not in out  # zero: not said


def test_tradingd_status_reads_an_older_status_file(capsys: pytest.CaptureFixture[str]) -> None:
    _print_status(_status(malformed=0))  # written by a daemon without the book counters
    out = capsys.readouterr().out
    assert "polymarket" in out and "-/-" in out
