"""Fault paths of a live session: a decoder fault tells the strategies which books broke; a venue's
error answer whose `code` is not a number or text still fails its request at once; refused
credentials end the daemon only if that venue's session never logged in."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio

from tests.support.daemon_inprocess import _daemon
from tests.support.live_support import Probe, paper_deribit, until
from tests.support.sessions import venue_session
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.engine import BookUpdate, Status, StatusKind, Subscription
from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

BOOK = "BTC-PERPETUAL"


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    return simulator, binds[0].removeprefix("http://")


async def test_a_decoder_fault_reports_a_book_gap_per_held_book_and_resnapshots_it(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codec raising part way through a book frame (as a 1e308 price once made it) drops the
    decoder's books: the strategy hears a `book_gap` (reason "decoder_fault") for the book the
    decoder held, and the book is snapshotted again (it does not wait silently)."""
    import tradingd.connectors.deribit.codec as deribit_codec

    _, base = sim
    probe = Probe("p", [Subscription("deribit", BOOK, {"book"})])
    _, live = await paper_deribit(nursery, base, probe)
    await until(lambda: probe.of(BookUpdate, BOOK))
    held = list(live.decoder._books)  # the books this connection's decoder holds
    assert BOOK in held
    real_apply = deribit_codec._apply
    faults = 0

    def half_applied(book: Any, bids: Any, asks: Any) -> Any:
        nonlocal faults
        if book is not live.decoder.book(BOOK):  # the simulator's own decoder: not this one
            return real_apply(book, bids, asks)
        faults += 1
        monkeypatch.setattr(deribit_codec, "_apply", real_apply)  # once
        book.clear()
        raise OverflowError("cannot convert float infinity to integer")

    before = live.stats.resubscribed_books
    monkeypatch.setattr(deribit_codec, "_apply", half_applied)
    gaps = await until(
        lambda: [s for s in probe.statuses(StatusKind.BOOK_GAP) if s.data.get("reason") == "decoder_fault"],
        what="a decoder_fault book_gap",
    )
    assert faults == 1
    assert sorted(s.instrument for s in gaps) == sorted(held)
    assert all(isinstance(s, Status) and s.venue == "deribit" for s in gaps)
    await until(lambda: live.stats.resubscribed_books > before, what="the resnapshot")
    mended = len(probe.of(BookUpdate, BOOK))
    await until(lambda: len(probe.of(BookUpdate, BOOK)) > mended, what="the book again")
    book = live.decoder.book(BOOK)
    assert book is not None and book.valid


# ------------------------------------------- 2: an error answer whose code is no number or text


def _deribit() -> Any:
    from tests.support.offline_sessions import _Sink
    from tradingd.connectors.deribit.stream import DeribitSession
    from tradingd.engine.model import InstrumentRegistry
    from tradingd.engine.runtime.router import MarketRouter

    return DeribitSession(
        DeribitSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink()
    )


def _derive() -> Any:
    from tests.support.offline_sessions import _Sink
    from tradingd.connectors.derive.settings import DeriveSettings
    from tradingd.connectors.derive.stream import DeriveSession
    from tradingd.engine.model import InstrumentRegistry
    from tradingd.engine.runtime.router import MarketRouter

    return DeriveSession(DeriveSettings(), registry=InstrumentRegistry(), router=MarketRouter(), sink=_Sink())


@pytest.mark.parametrize("make", [pytest.param(_deribit, id="deribit"), pytest.param(_derive, id="derive")])
@pytest.mark.parametrize("code", [b"[1]", b'{"a":1}', b"1.5", b"true", b"null"])
async def test_an_error_answer_with_an_odd_code_reaches_its_caller_at_once(make: Any, code: bytes) -> None:
    from tests.support.offline_sessions import error_answer
    from tradingd.engine import AuthError, OrderRejected, RateLimited, VenueError

    exc = await error_answer(make(), b'{"code":%s,"message":"m"}' % code)
    # No code it knows: the outcome is unknown (never read as a rejection, never guessed).
    assert type(exc) is VenueError and exc.code is None, exc
    assert not isinstance(exc, RateLimited | AuthError | OrderRejected)


# ------------------------------- 3: refused credentials end the daemon only before that venue's login


def _refused() -> Any:
    from tradingd.engine.model.errors import CredentialsRefused

    return CredentialsRefused("deribit refused the credentials (13004)", venue="deribit", code=13004)


def test_a_refusal_after_that_venue_logged_in_is_retried_even_before_ready(tmp_path: Any) -> None:
    """Another venue still down keeps the daemon not ready; the venue that logged in fine and is
    refused later (a clock step, a key rotated) is retried, never an exit 78."""
    daemon = _daemon(tmp_path)
    session = venue_session(daemon.engine, "deribit", DeribitSession)
    session._started = True  # its first handshake (login included) succeeded
    assert not daemon.engine.ready.is_set() and not daemon._trading()
    assert session.refusal_is_fatal is not None  # the daemon hooked itself in
    assert session.refusal_is_fatal(_refused()) is False
    assert daemon.refused is None and "deribit" in daemon.refusals


def test_a_refusal_before_that_venue_ever_logged_in_is_still_fatal_at_start(tmp_path: Any) -> None:
    daemon = _daemon(tmp_path)
    stops: list[Any] = []
    daemon._nursery = type("N", (), {"start_soon": lambda *a: stops.append(a), "cancel_scope": None})()
    session = venue_session(daemon.engine, "deribit", DeribitSession)
    assert not session._started
    assert session.refusal_is_fatal is not None  # the daemon hooked itself in
    assert session.refusal_is_fatal(_refused()) is True
    assert daemon.refused is not None and len(stops) == 1
