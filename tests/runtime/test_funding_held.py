"""A funding payment the venue holds back (Derive's, listed with a record that cannot be read) is
booked once the record reads, however long after: the engine's funding window keeps its start at
the oldest payment held (`FundingPayments.held_since_ns`), past the look-back, and says so once
(`funding.held_beyond_lookback`). Before (review of r12), the window moved on with the look-back:
after 24 h the payments left it, never booked, `funding_held` back to 0, nothing alerted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from tests.support.canned_execution import Routed, _derive
from tests.support.flows import restored_flow
from tests.support.helpers import PERP, request
from tests.support.reduced_engine import _Venue
from tradingd.engine import Fill, Liquidity, Side
from tradingd.engine.runtime.router import MarketRouter

S = 1_000_000_000
H = 3600 * S
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


def engine_over(events: list[dict[str, Any]], now: list[int]) -> tuple[Any, Any]:
    """A live engine reduced to its funding poll over the Derive client (holding 1 ETH-PERP since
    t = 1 h), its fills caught up."""
    flow = restored_flow()
    flow.registry.add(ETH)
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
