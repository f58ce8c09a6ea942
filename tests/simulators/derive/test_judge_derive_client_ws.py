"""The Derive simulator judged by Derive's official Python client (`derive-client` 0.3.16, its
asyncio `WebSocketClient`, run in a worker thread) over one WebSocket on loopback: it logs in,
connects (account, session keys, instruments, subaccount, all over the socket), subscribes with its
own channel API to the order book, slim ticker and trades of an instrument and to its
subaccount's orders, trades, settled trades and balances, places a resting order, fills another,
cancels the first, and hears all of it.

Every notification the client receives is recorded as it arrives (before the client's own
dispatch) and decoded again with the client's own schema for its channel (`msgspec.convert`, as
its session does, which drops and logs a notification that does not fit): none may fail, and
every channel must have been heard. (Not subscribed: the public `trades.{type}.{currency}.settled`,
on which the simulator publishes its trades still `requested`, without a `tx_hash`: every one
fails the client's `TradeSettledPublicResponseSchema`; reported to the simulator's owner.)"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import trio
from derive_client import WebSocketClient  # type: ignore[import-untyped]
from derive_client.data_types import Environment  # type: ignore[import-untyped]
from derive_client.data_types.channel_models import (  # type: ignore[import-untyped]
    Depth,
    Group,
    InstrumentType,
    Interval,
    TxStatus5,
)
from derive_client.data_types.generated_models import (  # type: ignore[import-untyped]
    Direction,
    OrderStatus,
    TimeInForce,
)

from tests.support.derive_judges import loopback_env, venue
from tradingd.simulators.derive.simulator import (
    DEMO_SESSION_KEY,
    DEMO_SUBACCOUNT,
    DEMO_WALLET,
    DeriveSimulator,
)

__all__ = ["loopback_env", "venue"]  # the fixtures, used by name

INSTRUMENT = "ETH-PERP"


async def _session(sim: DeriveSimulator, env: Environment, quote: dict[str, str]) -> dict[str, Any]:
    """The scripted session, in the client's asyncio world. Returns what it saw."""
    client = WebSocketClient(
        wallet=DEMO_WALLET, session_key=DEMO_SESSION_KEY, subaccount_id=DEMO_SUBACCOUNT, env=env
    )
    session = client._session
    raw: list[bytes | str] = []
    dispatch = session._dispatch_message

    async def recording(data: bytes | str) -> None:
        raw.append(data)
        await dispatch(data)

    session._dispatch_message = recording  # the receive loop looks it up per message
    heard: dict[str, list[Any]] = {}

    def hear(channel: str) -> Any:
        def handler(notification: Any) -> None:
            heard.setdefault(channel, []).append(notification)

        return handler

    await client.connect()
    sub = str(DEMO_SUBACCOUNT)
    public = client.public_channels
    private = client.private_channels
    book = f"orderbook.{INSTRUMENT}.1.10"
    await public.orderbook_group_depth_by_instrument_name(
        INSTRUMENT, Group.field_1, Depth.field_10, hear(book)
    )
    ticker = f"ticker_slim.{INSTRUMENT}.100"
    await public.ticker_slim_interval_by_instrument_name(INSTRUMENT, Interval.field_100, hear(ticker))
    trades = f"trades.{INSTRUMENT}"
    await public.trades_by_instrument_name(INSTRUMENT, hear(trades))
    by_type = "trades.perp.ETH"
    await public.trades_by_instrument_type(InstrumentType.perp, "ETH", hear(by_type))
    channels = {
        f"{sub}.orders": private.orders_by_subaccount_id,
        f"{sub}.trades": private.trades_by_subaccount_id,
        f"{sub}.balances": private.balances_by_subaccount_id,
    }
    for channel, subscribe in channels.items():
        await subscribe(sub, hear(channel))
    settled = f"{sub}.trades.settled"
    await private.trades_tx_status_by_subaccount_id(DEMO_SUBACCOUNT, TxStatus5.settled, hear(settled))

    step = Decimal(quote["step"])
    resting = await client.orders.create(
        amount=step * 2,
        direction=Direction.sell,
        instrument_name=INSTRUMENT,
        limit_price=Decimal(quote["ask"]) * Decimal("1.2"),
        label="judge-ws-rest",
    )
    filled = await client.orders.create(
        amount=step,
        direction=Direction.buy,
        instrument_name=INSTRUMENT,
        limit_price=Decimal(quote["ask"]) * Decimal("1.01"),
        time_in_force=TimeInForce.ioc,
        label="judge-ws-fill",
    )
    await client.orders.cancel(instrument_name=INSTRUMENT, order_id=resting.order_id)
    wanted = [book, ticker, trades, by_type, *channels, settled]
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline and not all(heard.get(c) for c in wanted):
        await asyncio.sleep(0.05)
    types = dict(session._channel_types)
    await client.disconnect()
    return {
        "raw": raw,
        "heard": heard,
        "types": types,
        "wanted": wanted,
        "resting": resting,
        "filled": filled,
    }


async def test_every_notification_fits_the_clients_schemas(
    venue: DeriveSimulator, loopback_env: Environment
) -> None:
    quote = {"ask": str(venue.tickers[INSTRUMENT]["a"])}
    quote["step"] = next(i for i in venue.instrument_items if i["instrument_name"] == INSTRUMENT)[
        "amount_step"
    ]
    seen = await trio.to_thread.run_sync(lambda: asyncio.run(_session(venue, loopback_env, quote)))

    assert seen["resting"].order_status is OrderStatus.open
    assert seen["filled"].order_status is OrderStatus.filled
    missing = [c for c in seen["wanted"] if not seen["heard"].get(c)]
    assert missing == [], f"channels never heard: {missing}"

    failures: list[str] = []
    notifications = 0
    for data in seen["raw"]:
        msg = orjson.loads(data)
        if msg.get("method") != "subscription":
            continue
        channel = msg["params"]["channel"]
        notifications += 1
        try:
            msgspec.convert(msg["params"]["data"], type=seen["types"][channel])
        except (msgspec.ValidationError, KeyError) as exc:
            failures.append(f"{channel}: {exc}")
    assert failures == []
    assert notifications == sum(len(v) for v in seen["heard"].values())

    orders = [o for batch in seen["heard"][f"{DEMO_SUBACCOUNT}.orders"] for o in batch]
    states = {(o.label, o.order_status) for o in orders}
    assert ("judge-ws-rest", OrderStatus.cancelled) in states
    assert ("judge-ws-fill", OrderStatus.filled) in states
    [fill] = [t for batch in seen["heard"][f"{DEMO_SUBACCOUNT}.trades"] for t in batch]
    assert fill.order_id == seen["filled"].order_id and fill.trade_amount == Decimal(quote["step"])
    balances = [b for batch in seen["heard"][f"{DEMO_SUBACCOUNT}.balances"] for b in batch]
    # The fill's fee, out of the USDC balance. (Derive's channel spec, as the client documents
    # `balances_by_subaccount_id`, also reports the positions' changes, perps with a `Q-{ccy}-PERP`
    # quote balance; the simulator reports USDC only: left to the simulator's owner.)
    [usdc] = [b for b in balances if b.name == "USDC"]
    assert usdc.previous_balance - usdc.new_balance == fill.trade_fee
