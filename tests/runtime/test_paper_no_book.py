"""Paper mode fills only against an order book: an order on an instrument of which no book has been
received (its strategy subscribed to the `ticker` only, as the example strategies do for options)
never fills, and that must not be silent. The first such order per instrument logs
`paper.no_book` naming the channel to subscribe; every one is counted in the status file."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pytest
import structlog
import trio
from rich.console import Console

from tests.support.helpers import OPTION, registry
from tests.support.live_support import Probe, paper_deribit, until
from tests.support.simulated_venue import order
from tradingd.cli.settings import daemon_settings
from tradingd.cli.status import _print_status
from tradingd.config import load_config
from tradingd.connectors.deribit.fees import DeribitFees
from tradingd.engine import OrderState, OrderUpdate, Subscription, Ticker, TimeInForce
from tradingd.engine.daemon.service import Daemon
from tradingd.engine.model import SimulatedVenue
from tradingd.engine.runtime.live import PaperExecution
from tradingd.simulators.deribit.simulator import DeribitSimulator, serve

BOOKED = "BTC-PERPETUAL"  # book and ticker
QUOTED = "ETH-PERPETUAL"  # ticker only


@pytest.fixture
async def base(nursery: trio.Nursery) -> str:
    simulator = DeribitSimulator(seed=5, step_s=0.05, heartbeat_scale=0.1)
    binds = await nursery.start(functools.partial(serve, simulator))
    return str(binds[0]).removeprefix("http://")


async def test_a_paper_order_with_no_book_warns_once_per_instrument_and_is_counted(
    base: str, nursery: trio.Nursery
) -> None:
    probe = Probe(
        "p",
        [
            Subscription("deribit", BOOKED, {"book", "ticker"}),
            Subscription("deribit", QUOTED, {"ticker"}),
        ],
    )
    engine, live = await paper_deribit(nursery, base, probe)

    def book_ready() -> bool:
        book = live.decoder.book(BOOKED)
        return book is not None and bool(book.valid)

    def asks_of(name: str) -> list[float]:
        return [t.ask for t in probe.of(Ticker, name) if t.ask]

    await until(book_ready, what="the booked instrument's book")
    asks = {
        name: await until(functools.partial(asks_of, name), what=f"{name}'s ask") for name in (BOOKED, QUOTED)
    }

    with structlog.testing.capture_logs() as logs:
        # Through the ask: marketable against the book; the ticker-only one has none to meet.
        booked = await probe.ctx.buy(
            "deribit", BOOKED, 10, price=str(round(asks[BOOKED][-1] * 1.01)), time_in_force=TimeInForce.IOC
        )
        quoted = [
            await probe.ctx.buy(
                "deribit",
                QUOTED,
                1,
                price=str(round(asks[QUOTED][-1] * 1.01, 1)),
                time_in_force=TimeInForce.IOC,
            )
            for _ in range(2)
        ]
    assert booked.status is OrderState.FILLED
    assert [u.status for u in quoted] == [OrderState.CANCELLED] * 2  # nothing to fill against
    warned = [e for e in logs if e["event"] == "paper.no_book"]
    assert len(warned) == 1  # once per instrument, however many orders
    assert warned[0]["log_level"] == "warning"
    assert warned[0]["instrument"] == QUOTED and warned[0]["strategy"] == "p"
    assert "`book` channel" in warned[0]["why"]
    assert engine.paper["deribit"].no_book == {QUOTED: 2}


def test_the_status_file_counts_paper_orders_with_no_book(tmp_path: Path) -> None:
    config = tmp_path / "paper.toml"
    config.write_text(  # a venue never reached (port 9): the status is read before any run
        'mode = "paper"\n[venues.deribit]\nurl = "ws://127.0.0.1:9/ws/api/v2"\n'
        'rest_url = "http://127.0.0.1:9"\ncurrencies = ["BTC"]\n[daemon]\nstate_dir = "state"\n'
        '[[strategies]]\nname = "once"\nclass = "tests.support.daemon_strategies:PlaceOnce"\n',
        encoding="utf-8",
    )
    daemon = Daemon(daemon_settings(load_config(config)), environ={})
    assert daemon.status()["paper_no_book"] is None  # none yet: nothing to show
    daemon.engine.paper["deribit"].no_book.update({"BTC-11DEC26-90000-C": 235, "BTC-11DEC26-90000-P": 3})
    assert daemon.status()["paper_no_book"] == {
        "deribit:BTC-11DEC26-90000-C": 235,
        "deribit:BTC-11DEC26-90000-P": 3,
    }


@pytest.mark.parametrize(
    ("subscribed", "says"),
    [
        (False, "subscribe a strategy to its `book` channel"),
        (True, "its `book` channel is subscribed but no book has arrived yet"),
    ],
)
async def test_the_warning_says_whether_the_book_is_missing_or_still_coming(
    subscribed: bool, says: str
) -> None:
    """An order sent before the first snapshot of a subscribed book is told apart from one whose
    book nobody subscribed: only the latter asks for a change of subscriptions."""
    sim = SimulatedVenue("deribit", registry(), DeribitFees(), lambda instrument: None)
    paper = PaperExecution(sim, book_subscribed=lambda instrument: subscribed)
    with structlog.testing.capture_logs() as logs:
        events = await paper.place(order(price="0.06", time_in_force="ioc"))
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == [OrderState.CANCELLED]
    (warned,) = [e for e in logs if e["event"] == "paper.no_book"]
    assert says in warned["why"] and warned["instrument"] == OPTION.symbol
    assert paper.no_book == {OPTION.symbol: 1}
    # An instrument the venue does not list is rejected for that reason: no book to blame.
    with structlog.testing.capture_logs() as logs:
        await paper.place(order("s-bt-2", instrument="BTC-1JAN27-1-C", price="0.06"))
    assert not [e for e in logs if e["event"] == "paper.no_book"] and paper.no_book == {OPTION.symbol: 1}


def test_tradingd_status_shows_paper_orders_with_no_book() -> None:
    status = {
        "running": True,
        "age_s": 0.5,
        "pid": 1,
        "mode": "paper",
        "started_ns": 0,
        "updated_ns": 0,
        "status": "paper",
        "venues": {},
        "strategies": {},
        "open_orders": [],
        "paper_no_book": {"deribit:BTC-25DEC26-92000-C": 235},
    }
    out = io.StringIO()
    _print_status(status, Console(file=out, width=80))
    flat = " ".join(out.getvalue().split())
    assert "235 paper orders on deribit:BTC-25DEC26-92000-C could not fill" in flat
    assert "subscribe its `book` channel" in flat
