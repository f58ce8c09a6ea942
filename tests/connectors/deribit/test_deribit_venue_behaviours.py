"""The Deribit connector against the behaviours of the real venue the simulator shows (issue 15):
an empty book side written 0 / 0, a new listing whose book starts with a change from
`prev_change_id: 0`, subscriptions batched under the venue's 32 KiB frame limit, and order
answers that outrun or trail the user channel (the order's fate is never guessed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio

from tests.support.deribit_live import PERP, serve_sim, start
from tests.support.live_support import Probe, late_frames_sent, until
from tradingd.connectors.deribit.settings import DeribitSettings
from tradingd.connectors.deribit.stream import DeribitSession
from tradingd.engine import (
    BookUpdate,
    ConfigError,
    Fill,
    OrderState,
    OrderUpdate,
    StatusKind,
    Subscription,
    Ticker,
)
from tradingd.engine.runtime.live import LiveEngine
from tradingd.simulators.deribit.simulator import MAX_FRAME_BYTES, DeribitSimulator


@pytest.fixture
async def sim(nursery: trio.Nursery) -> tuple[DeribitSimulator, str]:
    return await serve_sim(nursery)


def an_option(simulator: DeribitSimulator) -> str:
    return next(name for name, listing in simulator.listings.items() if listing.is_option)


async def test_an_empty_side_is_no_quote_in_tickers_and_books(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery
) -> None:
    simulator, base = sim
    option = an_option(simulator)
    probe = Probe("p", [Subscription("deribit", option, {"ticker", "book"})])
    await start(nursery, base, probe)
    await until(lambda: probe.of(Ticker, option) and probe.of(BookUpdate, option))
    simulator.apply_faults({"no_quotes": {"instrument": option, "side": "buy"}})
    n = len(probe.of(Ticker, option))
    await until(lambda: len(probe.of(Ticker, option)) > n + 1, within=15)
    assert simulator.tickers[option]["best_bid_price"] == 0.0 == simulator.tickers[option]["best_bid_amount"]
    last = probe.of(Ticker, option)[-1]
    assert last.bid is None and last.bid_size is None and last.ask is not None and last.ask > 0
    book = probe.of(BookUpdate, option)[-1]
    assert book.best_bid is None and book.best_ask is not None
    assert not probe.statuses(StatusKind.BOOK_GAP)


async def test_a_new_listings_first_change_from_zero_starts_the_book(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery
) -> None:
    simulator, base = sim
    simulator.apply_faults({"listing": PERP})
    probe = Probe("p", [Subscription("deribit", PERP, {"book"})])
    await start(nursery, base, probe)
    await until(lambda: len(probe.of(BookUpdate, PERP)) > 3)
    first, *rest = probe.of(BookUpdate, PERP)
    assert first.best_bid is not None and first.best_ask is not None and first.best_bid < first.best_ask
    assert all(b.sequence > first.sequence for b in rest)
    assert not probe.statuses(StatusKind.BOOK_GAP)  # accepted as the start of the chain, not a gap
    assert not simulator.deribit_faults.listing  # the switch was used by the subscription


def test_the_connectors_subscribe_batches_stay_under_the_venues_frame_limit() -> None:
    # The longest channels the connector asks for: `book.`/`ticker.` of a long instrument name
    # (combos and fractional-strike linear options run to ~30 characters; 64 is a wide margin).
    channels = [f"ticker.{'X' * 64}-{i:05d}.agg2" for i in range(DeribitSession.subscribe_batch)]
    request = {"jsonrpc": "2.0", "id": 2**53, "method": "private/subscribe", "params": {"channels": channels}}
    assert len(orjson.dumps(request)) < MAX_FRAME_BYTES


async def test_subscribing_every_instrument_is_batched_and_granted(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery
) -> None:
    simulator, base = sim
    subs = [Subscription("deribit", name) for name in simulator.listings]  # 34 x 3 channels
    probe = Probe("p", subs)
    engine = await start(nursery, base, probe)
    live: Any = engine.venues["deribit"]
    await until(lambda: len(live._current) >= 3 * len(subs))
    assert simulator.requests_for("public/subscribe") + simulator.requests_for("private/subscribe") >= 2
    assert not probe.statuses(StatusKind.SUBSCRIPTION_REFUSED)


async def delivered(simulator: DeribitSimulator, late: int, faults: dict[str, Any]) -> None:
    """The order's notifications have reached the connector: held back (`user_delay_s`), the
    simulator must have sent them (one never sent fails the test); else they went out with or
    before the answer, and a moment lets the connector take them."""
    if faults.get("user_delay_s"):
        await late_frames_sent(simulator, late)
    else:
        await trio.sleep(0.2)


@pytest.mark.parametrize(
    "faults",
    [
        {"order_answer": "answer_first"},
        {"answer_delay_s": 0.5},
        {"user_delay_s": 0.5},
        {"order_answer": "answer_first", "user_delay_s": 0.5},
    ],
)
async def test_order_answers_that_outrun_or_trail_the_user_channel(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery, faults: dict[str, Any]
) -> None:
    simulator, base = sim
    probe = Probe("p", [Subscription("deribit", PERP, {"ticker"})])
    await start(nursery, base, probe)
    await until(lambda: bool(probe.of(Ticker, PERP)))
    simulator.apply_faults(faults)
    # A marketable order: filled at once. However the answer and the notifications interleave,
    # the order ends filled, its fill is booked once, and the position is its size.
    late = simulator.late_sent
    filled = await probe.ctx.buy("deribit", PERP, 30)
    assert filled.status is OrderState.FILLED
    (at_venue,) = [o for o in simulator.orders.values() if o.label == filled.client_order_id]
    trade_ids = {t["trade_id"] for t in next(iter(simulator.accounts.values())).trades}
    await delivered(simulator, late, faults)  # the delayed notifications arrive
    fills = [e for e in probe.mine(filled.client_order_id) if isinstance(e, Fill)]
    assert {f.trade_id for f in fills} == trade_ids and len(fills) == len(trade_ids)
    assert sum(f.size for f in fills) == 30 == probe.ctx.position("deribit", PERP)
    statuses = [e.status for e in probe.mine(filled.client_order_id) if isinstance(e, OrderUpdate)]
    assert statuses[-1] is OrderState.FILLED and OrderState.CANCELLED not in statuses
    assert at_venue.state == "filled"
    # A resting order and its cancel: the late notification of the open order does not reopen it.
    bid = probe.of(Ticker, PERP)[-1].bid
    late = simulator.late_sent
    resting = await probe.ctx.buy("deribit", PERP, 10, price=Decimal(int(bid * 0.9)))
    assert resting.status is OrderState.OPEN
    cancelled = await probe.ctx.cancel_order(resting.client_order_id or "")
    assert cancelled.status is OrderState.CANCELLED
    await delivered(simulator, late, faults)
    updates = [e for e in probe.mine(resting.client_order_id) if isinstance(e, OrderUpdate)]
    assert updates[-1].status is OrderState.CANCELLED


async def test_raw_channels_without_credentials_stop_the_engine_before_it_connects(
    sim: tuple[DeribitSimulator, str], nursery: trio.Nursery
) -> None:
    """Deribit refuses a whole subscribe asking for `raw` on a connection that has not
    authenticated (13778, VENUES.md §1.4; cryptofeed's issue #768 has the real answer; the
    simulator does the same): a market-data-only engine set to `raw` without credentials is a
    configuration error, said at start, before any connection (the connector still takes a 13778
    as a refusal of the batch, never a reason to reconnect)."""
    simulator, base = sim
    probe = Probe("p", [Subscription("deribit", PERP, {"ticker"})])
    with pytest.raises(ConfigError, match='interval = "raw" needs credentials'):
        LiveEngine(
            [probe],
            {
                "deribit": DeribitSettings(
                    url=f"ws://{base}/ws/api/v2", rest_url=f"http://{base}", interval="raw"
                )
            },
            mode="paper",
            environ={},
            paper_latency_s=0.0,
        )
    assert simulator.requests_for("public/subscribe") == 0
